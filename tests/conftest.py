"""Fixtures shared by the whole suite: an isolated MAAS_HOME, the settings that point at it, and
empty registry databases (a SQLite file, or this session's own PostgreSQL database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lm_models import TinyLm, build_tiny_lm

from maas.config import Settings, load_settings
from maas.generate.model import CausalLm, LmConfig
from maas.generate.tokenizer import TextTokenizer
from maas.runtime.runner import ModelRunner


@pytest.fixture
def maas_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MAAS_HOME for one test (registry, artifacts and runs all live under it)."""
    home = tmp_path / "maas-home"
    monkeypatch.setenv("MAAS_HOME", str(home))
    return home


@pytest.fixture
def settings(maas_home: Path) -> Settings:
    """Settings reading the isolated MAAS_HOME."""
    return load_settings(home=maas_home)


PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


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
    """The folder for content-addressed artifacts."""
    return tmp_path / "artifacts"


# The tiny causal LM (onnx.helper, no torch) and what is built on it, once per run: generation
# engine tests and generative serving tests share them.


@pytest.fixture(scope="session")
def tiny_lm() -> TinyLm:
    return build_tiny_lm()


@pytest.fixture(scope="session")
def lm_config(tiny_lm: TinyLm) -> LmConfig:
    return LmConfig.from_dict(tiny_lm.config)


@pytest.fixture(scope="session")
def causal_lm(tiny_lm: TinyLm, lm_config: LmConfig) -> CausalLm:
    runner = ModelRunner(tiny_lm.model_bytes, name="tiny:1")
    runner.load()
    return CausalLm(runner, lm_config)


@pytest.fixture(scope="session")
def tokenizer(tiny_lm: TinyLm, lm_config: LmConfig) -> TextTokenizer:
    return TextTokenizer(tiny_lm.tokenizer_json, lm_config)
