"""The Registry: model versions, aliases, lineage and audit in SQL; artifacts on disk by digest.

Writes are crash-safe by ordering: artifact files are written (atomically) first, then every row of
a change is committed in one transaction together with its audit row. A crash in between leaves at
most an unreferenced file, never a version without its bytes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa

from maas.actors import Actor, AnyActor, actor_name
from maas.errors import Conflict, InvalidInput, MaasError, NotFound, Unavailable
from maas.registry import queries, schema, serving_configs
from maas.registry.artifacts import ArtifactStore, ReencryptReport
from maas.registry.database import create_engine, upgrade
from maas.registry.encryption import ArtifactCipher, cipher_from_settings
from maas.registry.exports import read_export
from maas.registry.onnx_files import check_onnx_file
from maas.registry.refs import LATEST, check_alias, check_name, normalize_ref
from maas.registry.serving_configs import StoredServingConfig
from maas.registry.versions import AliasEvent, AuditEntry, ModelSummary, ModelVersion
from maas.signature import Signature

if TYPE_CHECKING:
    from maas.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 20  # concurrent writers of one model collide rarely; this many tries is plenty
RETRY_DELAY_S = 0.02  # base of the randomized back-off between tries
_RETRYABLE = (sa.exc.IntegrityError, sa.exc.OperationalError)


class SignatureVerifier(Protocol):
    """Checks a version's stored signature bundle (None: unsigned); raises IntegrityError."""

    def verify(self, mv: ModelVersion, bundle: str | None) -> None:
        """Raise IntegrityError unless `bundle` is a valid signature of `mv`."""


class Registry:
    """Versions, lineage, metrics and aliases of models in a database, artifacts in a folder.

    Args:
        url: SQLAlchemy URL (`sqlite:///PATH` or `postgresql+psycopg://USER@HOST/DB`).
        artifacts_dir: folder of content-addressed artifact files.
        source: recorded in the audit trail as where changes come from (`api`, `cli`, `rest`).
        cipher: encrypts new artifact files and decrypts stored ones (encryption at rest).
        signature_verifier: when given, `read_artifact` and `set_alias` refuse versions whose
            signature it rejects (`require_signatures`).

    Raises:
        InvalidInput: the URL is malformed or names an unsupported database.
        Unavailable: the database cannot be reached or migrated.
    """

    def __init__(
        self,
        url: str,
        artifacts_dir: Path,
        *,
        source: str = "api",
        cipher: ArtifactCipher | None = None,
        signature_verifier: SignatureVerifier | None = None,
    ) -> None:
        self._engine = create_engine(url)
        self._artifacts = ArtifactStore(Path(artifacts_dir), cipher)
        self._verifier = signature_verifier
        self._source = source
        try:
            upgrade(self._engine)
        except sa.exc.OperationalError as err:
            self._engine.dispose()
            raise Unavailable(f"cannot open the registry database: {err.orig}") from err

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        source: str = "api",
        signature_verifier: SignatureVerifier | None = None,
    ) -> Registry:
        """The registry that `settings` point at (`registry_url`, `artifacts_dir`, `security`).

        Args:
            settings: where the registry is, and its encryption key.
            source: recorded in the audit trail as where changes come from.
            signature_verifier: the check `security.require_signatures` asks for; build it with
                `maas.security.signing.required_verifier(settings.security)`.

        Raises:
            InvalidInput: signatures are required but no verifier was given.
        """
        verifier = signature_verifier
        if settings.security.require_signatures and verifier is None:
            raise InvalidInput(
                "signatures are required (MAAS_SECURITY_REQUIRE_SIGNATURES) but no signature "
                "verifier was given; pass maas.security.signing.required_verifier(...)"
            )
        return cls(
            settings.registry_url,
            settings.artifacts_dir,
            source=source,
            cipher=cipher_from_settings(settings.security),
            signature_verifier=verifier,
        )

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- registering ------------------------------------------------------------------------

    def register(
        self,
        name: str,
        artifact: bytes,
        *,
        signature: Signature,
        labels: Sequence[str] = (),
        metrics: Mapping[str, float] | None = None,
        lineage: Mapping[str, Any] | None = None,
        files: Mapping[str, bytes] | None = None,
        actor: AnyActor = None,
    ) -> ModelVersion:
        """Store `artifact` (and extra `files`) as the next version of model `name`.

        Raises:
            InvalidInput: the name, a file name or the artifact is unusable.
        """
        check_name(name)
        if not artifact:
            raise InvalidInput(f"refusing to register an empty artifact as {name!r}")
        extra = dict(files or {})
        for filename in extra:
            if not filename or "/" in filename or "\\" in filename:
                raise InvalidInput(f"invalid file name {filename!r}: use a plain file name")
        facts = {
            "size_bytes": len(artifact),
            "signature": signature.to_dict(),
            "labels": [str(label) for label in labels],
            "metrics": {str(k): float(v) for k, v in (metrics or {}).items()},
            "lineage": dict(lineage or {}),
        }
        with self._artifacts.lock(exclusive=False):
            facts["digest"] = self._artifacts.write(artifact)
            facts["files"] = {f: self._artifacts.write(data) for f, data in extra.items()}
            version = self._transact(lambda conn: self._insert_version(conn, name, facts, actor))
        log.info("version.registered", extra={"model": name, "version": version})
        return self.get(name, version)

    def register_export(
        self, export_dir: Path, name: str | None = None, actor: AnyActor = None
    ) -> ModelVersion:
        """Register an export folder (model.onnx + manifest.json + listed files).

        Args:
            export_dir: the folder training wrote.
            name: registers under this name instead of the manifest's.
            actor: who asked, for the audit trail.
        """
        bundle = read_export(Path(export_dir))
        return self.register(
            name or bundle.name,
            bundle.artifact,
            signature=bundle.signature,
            labels=bundle.labels,
            metrics=bundle.metrics,
            lineage=bundle.lineage,
            files=bundle.files,
            actor=actor,
        )

    def register_onnx_file(
        self, path: Path, name: str, labels: Sequence[str] = (), actor: AnyActor = None
    ) -> ModelVersion:
        """Register a user's own ONNX file after loading and running it in onnxruntime.

        Raises:
            ValidationFailed: onnxruntime cannot load or run the file.
        """
        check_name(name)
        checked = check_onnx_file(Path(path))
        return self.register(
            name,
            checked.artifact,
            signature=checked.signature,
            labels=labels,
            lineage={"source": "onnx_file", "file": Path(path).name},
            actor=actor,
        )

    def _insert_version(
        self, conn: sa.Connection, name: str, facts: dict[str, Any], actor: AnyActor
    ) -> int:
        model_id = queries.find_model_id(conn, name, create=True)
        version: int = conn.execute(
            sa.update(schema.models)
            .where(schema.models.c.id == model_id)
            .values(last_version=schema.models.c.last_version + 1)
            .returning(schema.models.c.last_version)
        ).scalar_one()
        conn.execute(
            sa.insert(schema.versions).values(
                model_id=model_id, version=version, created_at=queries.utcnow(), **facts
            )
        )
        self._audit(conn, actor, "register", f"{name}@{version}", "ok")
        return version

    # -- reading ----------------------------------------------------------------------------

    def get(self, name: str, ref: str | int = LATEST) -> ModelVersion:
        """The version of `name` that `ref` (number, alias or "latest") names.

        Raises:
            ModelNotFound: no such model, version or alias (the message lists what exists).
        """
        check_name(name)
        wanted = normalize_ref(ref)
        with self._engine.begin() as conn:
            model_id = queries.require_model(conn, name)
            number = queries.resolve(conn, model_id, name, wanted)
            row = queries.require_version(conn, model_id, name, number)
            by_version = queries.aliases_by_version(conn, model_id)
        return queries.to_model_version(name, row, by_version.get(number, ()))

    def list_models(self) -> list[ModelSummary]:
        """Every model that has at least one version, by name."""
        v = schema.versions
        query = (
            sa.select(
                schema.models.c.id,
                schema.models.c.name,
                sa.func.max(v.c.version),
                sa.func.count(v.c.id),
            )
            .join(v, v.c.model_id == schema.models.c.id)
            .group_by(schema.models.c.id, schema.models.c.name)
            .order_by(schema.models.c.name)
        )
        with self._engine.begin() as conn:
            rows = conn.execute(query).all()
            alias_rows = conn.execute(sa.select(schema.aliases)).all()
        aliases: dict[int, dict[str, int]] = {}
        for row in alias_rows:
            aliases.setdefault(row.model_id, {})[row.alias] = row.version
        return [
            ModelSummary(name, int(latest), int(count), dict(sorted(aliases.get(mid, {}).items())))
            for mid, name, latest, count in rows
        ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of `name`, oldest first.

        Raises:
            ModelNotFound: no model has that name.
        """
        check_name(name)
        with self._engine.begin() as conn:
            model_id = queries.require_model(conn, name)
            rows = conn.execute(
                sa.select(schema.versions)
                .where(schema.versions.c.model_id == model_id)
                .order_by(schema.versions.c.version)
            ).all()
            by_version = queries.aliases_by_version(conn, model_id)
        return [queries.to_model_version(name, r, by_version.get(r.version, ())) for r in rows]

    def read_artifact(self, mv: ModelVersion) -> bytes:
        """The version's ONNX bytes, verified against its digest.

        Raises:
            IntegrityError: the file is missing or does not match the recorded digest, or
                signatures are required and the version's is missing or invalid.
            EncryptionError: the file is encrypted and the configured key cannot decrypt it.
        """
        if self._verifier is not None:
            self._verifier.verify(mv, self.signature_bundle(mv))
        return self._artifacts.read(mv.digest, owner=f"{mv.ref} (model.onnx)")

    def read_file(self, mv: ModelVersion, filename: str) -> bytes:
        """One of the version's extra files, verified against its digest.

        Raises:
            NotFound: the version has no file of that name.
            IntegrityError: the file is missing or does not match the recorded digest.
        """
        digest = mv.files.get(filename)
        if digest is None:
            have = ", ".join(sorted(mv.files)) or "none"
            raise NotFound(f'{mv.ref} has no file "{filename}"; files: {have}')
        return self._artifacts.read(digest, owner=f"{mv.ref} ({filename})")

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        check_name(name)
        e = schema.alias_events
        with self._engine.begin() as conn:
            model_id = queries.require_model(conn, name)
            query = sa.select(e).where(e.c.model_id == model_id).order_by(e.c.id)
            if alias is not None:
                query = query.where(e.c.alias == alias)
            rows = conn.execute(query).all()
        return [
            AliasEvent(name, r.alias, r.old_version, r.new_version, queries.as_utc(r.at), r.actor)
            for r in rows
        ]

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest `limit` audit rows, oldest first."""
        a = schema.audit
        with self._engine.begin() as conn:
            rows = conn.execute(sa.select(a).order_by(a.c.id.desc()).limit(limit)).all()
        return [
            AuditEntry(
                queries.as_utc(r.at),
                r.actor,
                r.action,
                r.target,
                r.outcome,
                r.source,
                r.actor_kind,
                r.actor_key_id,
            )
            for r in reversed(rows)
        ]

    # -- aliases and deletion ---------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, actor: AnyActor = None) -> None:
        """Point `alias` of model `name` at `version` (creating or moving it).

        Raises:
            ModelNotFound: no such model or version.
            IntegrityError: signatures are required and the version's is missing or invalid.
        """
        check_name(name)
        check_alias(alias)
        target = f"{name}@{alias}"
        if self._verifier is not None:
            mv = self.get(name, version)
            try:
                self._verifier.verify(mv, self.signature_bundle(mv))
            except MaasError as err:
                with self._engine.begin() as conn:
                    self._audit(conn, actor, "set_alias", target, err.code.value)
                raise
        self._audited(
            actor, "set_alias", target, lambda c: self._move_alias(c, name, alias, version, actor)
        )
        log.info("alias.set", extra={"model": name, "alias": alias, "version": version})

    def _move_alias(
        self, conn: sa.Connection, name: str, alias: str, version: int, actor: AnyActor
    ) -> None:
        model_id = queries.require_model(conn, name)
        queries.require_version(conn, model_id, name, version)
        a = schema.aliases
        where = (a.c.model_id == model_id) & (a.c.alias == alias)
        old = conn.execute(sa.select(a.c.version).where(where).with_for_update()).scalar()
        if old == version:
            return
        if old is None:
            conn.execute(sa.insert(a).values(model_id=model_id, alias=alias, version=version))
        else:
            conn.execute(sa.update(a).where(where).values(version=version))
        queries.record_alias_event(conn, model_id, alias, old, version, actor_name(actor))

    def delete_version(
        self, name: str, version: int, force: bool = False, actor: AnyActor = None
    ) -> None:
        """Delete one version; its files go too unless another version shares them.

        Raises:
            ModelNotFound: no such model or version.
            Conflict: an alias points at the version and `force` is false.
        """
        check_name(name)
        target = f"{name}@{version}"
        with self._artifacts.lock(exclusive=True):
            digests = self._audited(
                actor,
                "delete_version",
                target,
                lambda c: self._drop(c, name, version, force, actor),
            )
            with self._engine.begin() as conn:
                still_used = queries.used_digests(conn)
            for digest in digests - still_used:
                self._artifacts.delete(digest)
        log.info("version.deleted", extra={"model": name, "version": version})

    def _drop(
        self, conn: sa.Connection, name: str, version: int, force: bool, actor: AnyActor
    ) -> set[str]:
        model_id = queries.require_model(conn, name)
        row = queries.require_version(conn, model_id, name, version)
        a = schema.aliases
        pointing = sorted(
            conn.execute(
                sa.select(a.c.alias).where(a.c.model_id == model_id, a.c.version == version)
            ).scalars()
        )
        if pointing and not force:
            raise Conflict(
                f"{name}@{version} is the target of alias(es) {', '.join(pointing)}; "
                "move them first or delete with --force"
            )
        for alias in pointing:
            conn.execute(sa.delete(a).where(a.c.model_id == model_id, a.c.alias == alias))
            queries.record_alias_event(conn, model_id, alias, version, None, actor_name(actor))
        conn.execute(sa.delete(schema.versions).where(schema.versions.c.id == row.id))
        return {row.digest, *row.files.values()}

    # -- signatures, encryption and other tables -----------------------------------------------

    def add_signature(self, mv: ModelVersion, bundle: str, key_id: str, actor: AnyActor) -> None:
        """Store a signature bundle for version `mv` (audited as `sign`)."""

        def insert(conn: sa.Connection) -> None:
            model_id = queries.require_model(conn, mv.name)
            row = queries.require_version(conn, model_id, mv.name, mv.version)
            conn.execute(
                sa.insert(schema.signatures).values(
                    version_id=row.id,
                    bundle=bundle,
                    key_id=key_id,
                    signed_at=queries.utcnow(),
                    actor=actor_name(actor),
                )
            )

        self._audited(actor, "sign", mv.ref, insert)

    def signature_bundle(self, mv: ModelVersion) -> str | None:
        """The newest signature bundle stored for `mv`, or None when it is unsigned."""
        s, v = schema.signatures, schema.versions
        query = (
            sa.select(s.c.bundle)
            .join(v, v.c.id == s.c.version_id)
            .join(schema.models, schema.models.c.id == v.c.model_id)
            .where(schema.models.c.name == mv.name, v.c.version == mv.version)
            .order_by(s.c.id.desc())
            .limit(1)
        )
        with self._engine.begin() as conn:
            bundle: str | None = conn.execute(query).scalar()
        return bundle

    def set_serving_config(
        self,
        name: str,
        version: int,
        profile: str,
        config: Mapping[str, Any],
        actor: AnyActor = None,
    ) -> StoredServingConfig:
        """Store the serving configuration tuned for `name@version` on hardware `profile`
        (see `maas.registry.serving_configs`); audited."""
        return serving_configs.set_serving_config(self, name, version, profile, config, actor)

    def get_serving_config(
        self, name: str, version: int, profile: str
    ) -> StoredServingConfig | None:
        """The serving configuration of `name@version` for hardware `profile`, or None."""
        return serving_configs.get_serving_config(self, name, version, profile)

    def reencrypt_artifacts(
        self, old_ciphers: Sequence[ArtifactCipher] = (), actor: AnyActor = None
    ) -> ReencryptReport:
        """Store every artifact under the configured key (see `ArtifactStore.reencrypt`)."""
        # The files are rewritten outside any transaction (it may take long); registrations wait
        # on the store's lock meanwhile, not on the database.
        with self._artifacts.lock(exclusive=True):
            try:
                report = self._artifacts.reencrypt(old_ciphers)
            except MaasError as err:
                with self._engine.begin() as conn:
                    self._audit(conn, actor, "encrypt", "artifacts", err.code.value)
                raise
        with self._engine.begin() as conn:
            self._audit(conn, actor, "encrypt", "artifacts", "ok")
        log.info("artifacts.reencrypted", extra={"rotated": report.rotated})
        return report

    def stored_digests(self) -> list[str]:
        """Every digest with a file in the artifact folder."""
        return self._artifacts.digests()

    def write_audited(
        self, actor: AnyActor, action: str, target: str, work: Callable[[sa.Connection], T]
    ) -> T:
        """Run `work` on the registry's database in one transaction together with its audit row.

        For tables kept next to the registry's own (API keys): a refusal (MaasError) is audited
        with its code and re-raised.
        """
        return self._audited(actor, action, target, work)

    def record_audit(
        self,
        actor: AnyActor,
        action: str,
        target: str,
        outcome: str = "ok",
        source: str | None = None,
    ) -> None:
        """Append one audit row for an action done outside the registry (a server loading a
        version, a refused management call); `source` overrides the registry's (`rest`, `grpc`)."""
        with self._engine.begin() as conn:
            self._audit(conn, actor, action, target, outcome, source)

    def read_rows(self, work: Callable[[sa.Connection], T]) -> T:
        """Run the read-only `work` in one transaction on the registry's database."""
        with self._engine.begin() as conn:
            return work(conn)

    # -- helpers ----------------------------------------------------------------------------

    def _transact(self, work: Callable[[sa.Connection], T]) -> T:
        """Run `work` in one transaction, retrying when a concurrent writer got in the way."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except _RETRYABLE as err:
                if attempt == MAX_ATTEMPTS:
                    kind = Conflict if isinstance(err, sa.exc.IntegrityError) else Unavailable
                    raise kind(f"registry write failed after {attempt} tries: {err.orig}") from err
                log.debug("registry.retry", extra={"attempt": attempt, "error": str(err.orig)})
                time.sleep(random.uniform(0, RETRY_DELAY_S * attempt))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

    def _audited(
        self, actor: AnyActor, action: str, target: str, work: Callable[[sa.Connection], T]
    ) -> T:
        """Run `work` and its audit row in one transaction; a refusal is audited on its own."""

        def with_audit(conn: sa.Connection) -> T:
            result = work(conn)
            self._audit(conn, actor, action, target, "ok")
            return result

        try:
            return self._transact(with_audit)
        except MaasError as err:
            with self._engine.begin() as conn:
                self._audit(conn, actor, action, target, err.code.value)
            raise

    def _audit(
        self,
        conn: sa.Connection,
        actor: AnyActor,
        action: str,
        target: str,
        outcome: str,
        source: str | None = None,
    ) -> None:
        who = actor if isinstance(actor, Actor) else Actor(actor, kind="")
        conn.execute(
            sa.insert(schema.audit).values(
                at=queries.utcnow(),
                actor=who.name,
                actor_kind=who.kind or None,
                actor_key_id=who.key_id,
                action=action,
                target=target,
                outcome=outcome,
                source=source or self._source,
            )
        )
