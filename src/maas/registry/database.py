"""Opening the registry database: engines for SQLite and PostgreSQL, and migrations to head.

SQLite: every transaction starts with `BEGIN IMMEDIATE` (writers queue on the database lock
instead of failing half-way) and waits up to `BUSY_TIMEOUT_S` for it. PostgreSQL: migrations run
under an advisory lock, so two processes opening a fresh database at once do not race.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from maas.errors import InvalidInput

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_S = 60.0  # a writer queues this long for the SQLite lock before giving up
MIGRATION_LOCK_KEY = 0x6D616173  # "maas": the PostgreSQL advisory lock held while migrating


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite (no row locks; one writer at a time)."""
    return engine.dialect.name == "sqlite"


def create_engine(url: str) -> Engine:
    """An engine for `url`, set up for safe concurrent writers.

    Raises:
        InvalidInput: the URL cannot be parsed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as err:
        raise InvalidInput(f"invalid registry URL {url!r}: {err}") from err
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # plain URLs would pick psycopg2; we ship psycopg 3
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise InvalidInput(
        f"unsupported registry URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    in_memory = not database or database == ":memory:"
    if not in_memory and database is not None:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if in_memory:
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that BEGIN IMMEDIATE below is ours.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        if not in_memory:
            _use_wal(cursor)
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the database to WAL once; every later connection finds it already set.

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once, without
    its busy handler, when another process opens or switches the same fresh file at that moment,
    so the switch is retried until `BUSY_TIMEOUT_S` has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) and "busy" not in str(err):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe when several processes do it at once."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    log.debug("registry.migrated", extra={"url": engine.url.render_as_string(hide_password=True)})
