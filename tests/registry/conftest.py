"""Registry fixtures: real SQLite and PostgreSQL databases, and tiny real ONNX models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_models import linear_softmax_onnx

from maas.registry import Registry

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REGISTRY_TABLES = (
    "serving_configs, routes, signatures, api_keys, audit, alias_events, aliases, versions, "
    "models, alembic_version"
)


@pytest.fixture(scope="session")
def onnx_model() -> bytes:
    """A tiny real classifier in ONNX, built once per test run."""
    return linear_softmax_onnx()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this test session, dropped afterwards."""
    import psycopg

    name = f"maas_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_postgres(url: str) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {REGISTRY_TABLES} CASCADE")


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
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
    """The folder for content-addressed artifacts."""
    return tmp_path / "artifacts"


@pytest.fixture
def registry(registry_url: str, artifacts_dir: Path) -> Iterator[Registry]:
    """An open, empty Registry on SQLite or PostgreSQL."""
    reg = Registry(registry_url, artifacts_dir)
    yield reg
    reg.close()
