"""Registry behaviour on SQLite and PostgreSQL: numbering, references, aliases, deletion, audit."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from registry_models import SIGNATURE, linear_softmax_onnx

from maas.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    ModelNotFound,
    NotFound,
    Unavailable,
)
from maas.registry import Registry
from maas.registry.artifacts import ArtifactStore, sha256_hex


def register_n(registry: Registry, name: str, count: int) -> None:
    for seed in range(count):
        registry.register(name, linear_softmax_onnx(seed), signature=SIGNATURE)


def test_register_stores_every_fact(registry: Registry, onnx_model: bytes) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    mv = registry.register(
        "iris",
        onnx_model,
        signature=SIGNATURE,
        labels=["setosa", "versicolor", "virginica"],
        metrics={"test_accuracy": 0.97},
        lineage={"dataset": "iris", "parent": None, "params": {"lr": 0.01}},
        files={"spec.yaml": b"name: iris\n"},
        actor="alice",
    )
    assert (mv.name, mv.version, mv.ref) == ("iris", 1, "iris@1")
    assert mv.digest == sha256_hex(onnx_model)
    assert mv.size_bytes == len(onnx_model)
    assert mv.signature == SIGNATURE
    assert mv.labels == ("setosa", "versicolor", "virginica")
    assert mv.metrics == {"test_accuracy": 0.97}
    assert mv.lineage == {"dataset": "iris", "parent": None, "params": {"lr": 0.01}}
    assert mv.files == {"spec.yaml": sha256_hex(b"name: iris\n")}
    assert mv.created_at.tzinfo == UTC
    assert before < mv.created_at <= datetime.now(UTC)
    assert registry.get("iris", 1) == mv
    assert registry.read_artifact(mv) == onnx_model
    assert registry.read_file(mv, "spec.yaml") == b"name: iris\n"


def test_model_version_is_immutable(registry: Registry, onnx_model: bytes) -> None:
    mv = registry.register("iris", onnx_model, signature=SIGNATURE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mv.version = 2  # type: ignore[misc]  # the point of the test


def test_versions_number_per_model(registry: Registry) -> None:
    register_n(registry, "iris", 3)
    register_n(registry, "digits", 2)
    assert [mv.version for mv in registry.list_versions("iris")] == [1, 2, 3]
    assert [mv.version for mv in registry.list_versions("digits")] == [1, 2]


def test_get_by_number_alias_and_latest(registry: Registry) -> None:
    register_n(registry, "iris", 3)
    registry.set_alias("iris", "production", 2)
    assert registry.get("iris").version == 3
    assert registry.get("iris", "latest").version == 3
    assert registry.get("iris", 1).version == 1
    assert registry.get("iris", "1").version == 1
    prod = registry.get("iris", "production")
    assert (prod.version, prod.aliases) == (2, ("production",))
    assert registry.get("iris", 3).aliases == ()


@pytest.mark.parametrize(
    ("name", "ref", "message"),
    [
        ("iris", 7, 'model "iris" has no version 7; versions: 1-3'),
        ("iris", "canary", 'model "iris" has no alias "canary"; aliases: production'),
        ("nope", "latest", 'no model named "nope"; models: iris'),
    ],
)
def test_get_unknown_explains(registry: Registry, name: str, ref: str | int, message: str) -> None:
    register_n(registry, "iris", 3)
    registry.set_alias("iris", "production", 1)
    with pytest.raises(ModelNotFound) as caught:
        registry.get(name, ref)
    assert str(caught.value) == message


def test_invalid_names_are_refused(registry: Registry, onnx_model: bytes) -> None:
    with pytest.raises(InvalidInput, match="invalid model name 'Iris'"):
        registry.register("Iris", onnx_model, signature=SIGNATURE)
    with pytest.raises(InvalidInput, match="invalid file name"):
        registry.register("iris", onnx_model, signature=SIGNATURE, files={"../x": b"1"})
    assert registry.list_models() == []


def test_list_models(registry: Registry) -> None:
    register_n(registry, "iris", 3)
    register_n(registry, "digits", 1)
    registry.set_alias("iris", "production", 2)
    registry.set_alias("iris", "canary", 3)
    summaries = registry.list_models()
    assert [s.to_dict() for s in summaries] == [
        {"name": "digits", "latest_version": 1, "version_count": 1, "aliases": {}},
        {
            "name": "iris",
            "latest_version": 3,
            "version_count": 3,
            "aliases": {"canary": 3, "production": 2},
        },
    ]


def test_alias_moves_are_recorded(registry: Registry) -> None:
    register_n(registry, "iris", 3)
    registry.set_alias("iris", "production", 1, actor="alice")
    registry.set_alias("iris", "production", 3, actor="bob")
    registry.set_alias("iris", "production", 3, actor="bob")  # no move, no event
    registry.set_alias("iris", "canary", 2)
    assert registry.get("iris", "production").version == 3
    moves = [
        (e.alias, e.old_version, e.new_version, e.actor) for e in registry.alias_history("iris")
    ]
    assert moves == [
        ("production", None, 1, "alice"),
        ("production", 1, 3, "bob"),
        ("canary", None, 2, None),
    ]
    only_prod = registry.alias_history("iris", "production")
    assert [e.new_version for e in only_prod] == [1, 3]


def test_alias_to_missing_version_is_refused(registry: Registry) -> None:
    register_n(registry, "iris", 2)
    with pytest.raises(ModelNotFound, match="no version 5; versions: 1-2"):
        registry.set_alias("iris", "production", 5)
    with pytest.raises(InvalidInput):
        registry.set_alias("iris", "7", 1)
    assert registry.alias_history("iris") == []


def test_delete_version_refused_while_aliased_then_forced(registry: Registry) -> None:
    register_n(registry, "iris", 2)
    registry.set_alias("iris", "production", 1)
    with pytest.raises(Conflict, match="production"):
        registry.delete_version("iris", 1)
    assert [mv.version for mv in registry.list_versions("iris")] == [1, 2]
    registry.delete_version("iris", 1, force=True, actor="ops")
    assert [mv.version for mv in registry.list_versions("iris")] == [2]
    with pytest.raises(ModelNotFound, match='no alias "production"'):
        registry.get("iris", "production")
    last = registry.alias_history("iris")[-1]
    assert (last.alias, last.old_version, last.new_version, last.actor) == (
        "production",
        1,
        None,
        "ops",
    )


def test_deleted_numbers_are_not_reused(registry: Registry) -> None:
    register_n(registry, "iris", 3)
    registry.delete_version("iris", 3)
    assert registry.get("iris").version == 2
    mv = registry.register("iris", linear_softmax_onnx(99), signature=SIGNATURE)
    assert mv.version == 4
    with pytest.raises(ModelNotFound, match="versions: 1-2, 4"):
        registry.get("iris", 3)


def test_delete_keeps_artifacts_other_versions_share(
    registry: Registry, artifacts_dir: Path, onnx_model: bytes
) -> None:
    store = ArtifactStore(artifacts_dir)
    first = registry.register("iris", onnx_model, signature=SIGNATURE, files={"w": b"shared"})
    second = registry.register("copy", onnx_model, signature=SIGNATURE, files={"w": b"shared"})
    own = registry.register("iris", b"other bytes", signature=SIGNATURE)
    assert first.digest == second.digest
    registry.delete_version("iris", first.version)
    assert registry.read_artifact(second) == onnx_model
    assert registry.read_file(second, "w") == b"shared"
    registry.delete_version("copy", second.version)
    assert not store.exists(first.digest)
    assert not store.exists(sha256_hex(b"shared"))
    registry.delete_version("iris", own.version)
    assert not store.exists(own.digest)


def test_corrupt_artifact_raises_integrity_error(
    registry: Registry, artifacts_dir: Path, onnx_model: bytes
) -> None:
    mv = registry.register("iris", onnx_model, signature=SIGNATURE, files={"spec.yaml": b"a: 1"})
    store = ArtifactStore(artifacts_dir)
    store.path(mv.digest).write_bytes(onnx_model[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match=r"iris@1 \(model\.onnx\) is corrupt"):
        registry.read_artifact(mv)
    store.path(mv.files["spec.yaml"]).write_bytes(b"a: 2")
    with pytest.raises(IntegrityError, match=r"iris@1 \(spec\.yaml\)"):
        registry.read_file(mv, "spec.yaml")
    with pytest.raises(NotFound, match=r'no file "weights"; files: spec\.yaml'):
        registry.read_file(mv, "weights")


def test_changes_are_audited(registry: Registry) -> None:
    register_n(registry, "iris", 2)
    registry.set_alias("iris", "production", 1, actor="alice")
    with pytest.raises(Conflict):
        registry.delete_version("iris", 1, actor="mallory")
    registry.delete_version("iris", 2, actor="bob")
    rows = [(a.action, a.target, a.outcome, a.actor, a.source) for a in registry.audit_log()]
    assert rows == [
        ("register", "iris@1", "ok", None, "api"),
        ("register", "iris@2", "ok", None, "api"),
        ("set_alias", "iris@production", "ok", "alice", "api"),
        ("delete_version", "iris@1", "conflict", "mallory", "api"),
        ("delete_version", "iris@2", "ok", "bob", "api"),
    ]
    assert [a.target for a in registry.audit_log(limit=2)] == ["iris@1", "iris@2"]


def test_from_settings_uses_maas_home(maas_home: Path, onnx_model: bytes) -> None:
    from maas.config import load_settings

    registry = Registry.from_settings(load_settings())
    try:
        mv = registry.register("iris", onnx_model, signature=SIGNATURE)
    finally:
        registry.close()
    assert (maas_home / "registry.db").is_file()
    assert (maas_home / "artifacts" / "sha256" / mv.digest[:2] / mv.digest).is_file()


def test_unsupported_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unsupported registry URL"):
        Registry("mysql://u@h/db", tmp_path)


@pytest.mark.postgres
def test_missing_database_is_unavailable(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/maas_no_such_database"
    with pytest.raises(Unavailable, match="cannot open the registry database"):
        Registry(url, tmp_path)
