"""Migrations: one head, the schema they build matches the tables the code queries, no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from registry_models import SIGNATURE

from maas.registry import Registry
from maas.registry.database import MIGRATIONS_DIR
from maas.registry.schema import metadata


def test_migrations_have_one_head() -> None:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_migrated_schema_matches_code(registry: Registry, registry_url: str) -> None:
    engine = sa.create_engine(registry_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert context.get_current_revision() == "0005"
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_reopening_keeps_data(
    registry: Registry, registry_url: str, artifacts_dir: Path, onnx_model: bytes
) -> None:
    registry.register("iris", onnx_model, signature=SIGNATURE)
    again = Registry(registry_url, artifacts_dir)
    try:
        assert [mv.version for mv in again.list_versions("iris")] == [1]
    finally:
        again.close()


def test_registry_imports_without_torch() -> None:
    code = "import sys, maas.registry, maas.cli.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.postgres
def test_plain_postgresql_url_uses_psycopg(postgres_database: str, tmp_path: Path) -> None:
    plain = postgres_database.replace("postgresql+psycopg://", "postgresql://")
    with Registry(plain, tmp_path) as registry:
        assert registry.list_models() == []
