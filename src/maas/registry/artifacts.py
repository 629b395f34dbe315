"""Content-addressed artifact files: bytes stored once under their sha256 digest, verified on read.

Layout: `<root>/sha256/<first two hex digits>/<digest>`. A file is written to a temporary name in
the same folder and moved into place with `os.replace`, so a reader never sees a partial file and a
crash leaves at most a stray temporary file.

With an `ArtifactCipher`, files are stored encrypted (see `encryption.py`); the digest stays the
sha256 of the plaintext, so versions and paths do not change, and it is checked after decrypting
in memory. Plaintext files written before encryption was turned on stay readable until
`reencrypt` converts them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from maas.errors import EncryptionError, IntegrityError
from maas.registry.encryption import OVERHEAD_BYTES, ArtifactCipher, is_encrypted, key_id_of

log = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The sha256 digest of `data` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ReencryptReport:
    """What `ArtifactStore.reencrypt` did: file counts by what happened to them."""

    encrypted: int  # plaintext files now encrypted
    rotated: int  # files moved from an old key to the current one
    unchanged: int  # files already under the current key


def _write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to a temporary file next to `target`, fsync it, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power loss
    finally:
        os.close(dir_fd)


class ArtifactStore:
    """Artifact bytes on disk, addressed by their sha256 digest.

    Args:
        root: the folder that holds the `sha256/` tree (created when missing).
        cipher: when given, new files are stored encrypted with it and encrypted files are
            decrypted with it on read.
    """

    def __init__(self, root: Path, cipher: ArtifactCipher | None = None) -> None:
        self.root = Path(root)
        self.cipher = cipher

    def path(self, digest: str) -> Path:
        """Where the artifact with `digest` lives (whether or not it exists)."""
        if not _DIGEST_RE.fullmatch(digest):
            raise IntegrityError(f"not a sha256 hex digest: {digest!r}")
        return self.root / "sha256" / digest[:2] / digest

    def write(self, data: bytes) -> str:
        """Store `data` (once: an existing intact copy is kept) and return its digest."""
        digest = sha256_hex(data)
        target = self.path(digest)
        if self._is_stored(target, len(data)):
            return digest
        stored = data if self.cipher is None else self.cipher.encrypt(data, digest)
        _write_atomically(target, stored)
        log.debug("artifact.written", extra={"digest": digest, "size_bytes": len(data)})
        return digest

    def read(self, digest: str, owner: str) -> bytes:
        """Read the artifact with `digest`, checking its bytes against the digest.

        Args:
            digest: the sha256 hex digest recorded for the artifact.
            owner: who the bytes belong to, for error messages (`"iris@3 model.onnx"`).

        Raises:
            IntegrityError: the file is missing or its bytes do not hash to `digest`.
            EncryptionError: the file is encrypted and no key, or another key, is configured.
        """
        target = self.path(digest)
        try:
            data = self._plaintext(target.read_bytes(), digest, owner)
        except FileNotFoundError as err:
            raise IntegrityError(f"artifact of {owner} is missing (sha256 {digest})") from err
        actual = sha256_hex(data)
        if actual != digest:
            raise IntegrityError(
                f"artifact of {owner} is corrupt: recorded sha256 {digest}, file hashes to {actual}"
            )
        return data

    def _is_stored(self, target: Path, plain_size: int) -> bool:
        """Whether `target` already holds the bytes in the form this store writes them."""
        if not target.is_file():
            return False
        size = target.stat().st_size
        if self.cipher is None:
            return size == plain_size
        if size != plain_size + OVERHEAD_BYTES:
            return False
        with open(target, "rb") as handle:
            return key_id_of(handle.read(OVERHEAD_BYTES)) == self.cipher.key_id

    def _plaintext(self, blob: bytes, digest: str, owner: str) -> bytes:
        if not is_encrypted(blob):
            return blob
        if self.cipher is None:
            raise EncryptionError(
                f"artifact of {owner} is encrypted with key {key_id_of(blob)}, but no key is "
                "configured: set MAAS_ENCRYPTION_KEY or MAAS_SECURITY_ENCRYPTION_KEY_FILE"
            )
        return self.cipher.decrypt(blob, digest, owner)

    def digests(self) -> list[str]:
        """Every digest with a file in the store, sorted (temporary files are skipped)."""
        tree = self.root / "sha256"
        if not tree.is_dir():
            return []
        return sorted(
            p.name for p in tree.glob("??/*") if p.is_file() and _DIGEST_RE.fullmatch(p.name)
        )

    def reencrypt(self, old_ciphers: Sequence[ArtifactCipher] = ()) -> ReencryptReport:
        """Store every file under the current key: encrypt plaintext, rotate from old keys.

        Every file is first read, decrypted and checked against its digest; if any cannot be
        (a key that is not given, a corrupt file), nothing is written. Each file is then replaced
        atomically (new file, fsync, rename), so a crash leaves every file whole under one key.
        Hold `lock(exclusive=True)` around it so no registration writes meanwhile.

        Raises:
            EncryptionError: no current key, or a file is under a key that is not given.
            IntegrityError: a file does not match its digest.
        """
        cipher = self.cipher
        if cipher is None:
            raise EncryptionError(
                "no encryption key is configured: set MAAS_ENCRYPTION_KEY or "
                "MAAS_SECURITY_ENCRYPTION_KEY_FILE"
            )
        readers = {c.key_id: c for c in (*old_ciphers, cipher)}
        plan: list[str] = []
        for digest in self.digests():
            blob = self.path(digest).read_bytes()
            if key_id_of(blob) == cipher.key_id:
                self._check(blob, digest, readers)
                continue
            self._check(blob, digest, readers)
            plan.append(digest)
        counts = {"encrypted": 0, "rotated": 0}
        for digest in plan:
            target = self.path(digest)
            blob = target.read_bytes()
            plain = self._check(blob, digest, readers)
            _write_atomically(target, cipher.encrypt(plain, digest))
            counts["rotated" if is_encrypted(blob) else "encrypted"] += 1
            log.info("artifact.reencrypted", extra={"digest": digest, "key_id": cipher.key_id})
        unchanged = len(self.digests()) - len(plan)
        return ReencryptReport(counts["encrypted"], counts["rotated"], unchanged)

    @staticmethod
    def _check(blob: bytes, digest: str, readers: dict[str, ArtifactCipher]) -> bytes:
        owner = f"sha256 {digest[:16]}..."
        if is_encrypted(blob):
            found = key_id_of(blob)
            reader = readers.get(found or "")
            if reader is None:
                known = ", ".join(sorted(readers))
                raise EncryptionError(
                    f"artifact {digest} is encrypted with key {found}, the configured key(s) "
                    f"are {known}; nothing was changed (give the old key with --rotate-from)"
                )
            blob = reader.decrypt(blob, digest, owner)
        if sha256_hex(blob) != digest:
            raise IntegrityError(f"artifact {digest} is corrupt; nothing was changed")
        return blob

    def exists(self, digest: str) -> bool:
        """Whether a file for `digest` is present (its content is not checked)."""
        return self.path(digest).is_file()

    def delete(self, digest: str) -> None:
        """Remove the artifact file for `digest` if present."""
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()
        log.debug("artifact.deleted", extra={"digest": digest})

    @contextlib.contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the store's lock: shared while adding references, exclusive while collecting.

        A registration holds it shared from writing its files until its rows are committed; a
        deletion holds it exclusively while it decides which files no version uses any more, so it
        never removes a file that a registration in flight is about to reference.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
