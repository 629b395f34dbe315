"""Security fixtures: real registries (SQLite and PostgreSQL), real Redis, real keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from onnx_models import Classifier, build_classifier
from security_helpers import REDIS_URL

from maas.registry import ModelVersion, Registry

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    """A tiny real ONNX classifier, built once per run."""
    return build_classifier(features=4, classes=3, seed=7)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session's security tests, dropped afterwards."""
    import psycopg

    name = f"maas_sec_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_postgres(url: str) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Every table, whatever migrations added since: the database is this session's own.
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty registry database: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    yield url
    _empty_postgres(url)


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    """The folder of content-addressed artifact files."""
    return tmp_path / "artifacts"


@pytest.fixture
def registry(registry_url: str, artifacts_dir: Path) -> Iterator[Registry]:
    """An open, empty registry (no encryption, no signature check)."""
    with Registry(registry_url, artifacts_dir, source="test") as reg:
        yield reg


@pytest.fixture
def registered(registry: Registry, classifier: Classifier) -> ModelVersion:
    """Version 1 of `digits`, with one extra file."""
    return registry.register(
        "digits",
        classifier.model_bytes,
        signature=classifier.signature,
        labels=classifier.labels,
        files={"labels.txt": b"class_0\nclass_1\nclass_2\n"},
        actor="alice",
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix in the real Redis on 127.0.0.1:6379, cleaned up afterwards."""
    import redis

    prefix = f"maas-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()
