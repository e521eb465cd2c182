"""Engines and schema migration for the store.

:func:`make_engine` builds an engine for a database URL. For SQLite it turns
on WAL (readers do not block the writer), foreign keys and a busy timeout,
and lets the store start write transactions with ``BEGIN IMMEDIATE`` so two
processes writing at once wait for each other instead of failing with
"database is locked" halfway through a transaction.

:func:`migrate` makes or upgrades the schema on start. It creates missing
tables (``create_all``), then applies every migration newer than the version
recorded in ``schema_version``, all inside one write transaction (on SQLite
the immediate lock, on Postgres an advisory lock), so two processes starting
at once migrate one after the other. Migrations are additive and idempotent:
each checks what exists before it adds. Running ``migrate`` twice is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from worker.store.models import SCHEMA_VERSION, Base, SchemaVersion

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
WRITE_OPTION = "callworker_write"

Migration = tuple[int, str, Callable[[Connection], None]]
"""(version, description, function): brings the schema from ``version - 1`` to ``version``."""


class StoreError(Exception):
    """Base of the store's errors."""


class SchemaError(StoreError):
    """The database schema cannot be used by this version of callworker."""


class CallNotFound(StoreError):
    """No call with this GoTo call id is in the store."""

    def __init__(self, goto_call_id: str) -> None:
        self.goto_call_id = goto_call_id
        super().__init__(f"call {goto_call_id} is not in the store")


MIGRATIONS: Sequence[Migration] = ()
"""Migrations after version 1 (version 1 is what ``create_all`` makes). None yet."""


def add_column_if_missing(conn: Connection, table: str, column: str, ddl_type: str) -> bool:
    """Additive migration step: ``ALTER TABLE ... ADD COLUMN`` unless the column exists."""
    columns = {c["name"] for c in inspect(conn).get_columns(table)}
    if column in columns:
        return False
    conn.execute(text(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {ddl_type}'))
    return True


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and immediate write locks."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (the "begin" hook below) issue BEGIN, not the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def writer(engine: Engine) -> Engine:
    """The same engine, marked so its transactions take the write lock at BEGIN."""
    return engine.execution_options(**{WRITE_OPTION: True})


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(724001)"))


def current_version(conn: Connection) -> int:
    """The recorded schema version, 0 if none is recorded yet."""
    if not inspect(conn).has_table(SchemaVersion.__tablename__):
        return 0
    row = conn.execute(select(SchemaVersion.version).where(SchemaVersion.id == 1)).first()
    return int(row[0]) if row else 0


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Create or upgrade the schema; return the version the database is now at."""
    target = max([SCHEMA_VERSION, *(m[0] for m in migrations)])
    with writer(engine).begin() as conn:
        _lock(conn)
        found = current_version(conn)
        if found > target:
            raise SchemaError(
                f"database schema is at version {found}, newer than this callworker "
                f"understands ({target}); upgrade callworker"
            )
        Base.metadata.create_all(conn)
        version = found or 1
        for number, description, apply in sorted(migrations, key=lambda m: m[0]):
            if number > version:
                log.info("migrating store schema to version %d: %s", number, description)
                apply(conn)
                version = number
        if found == 0:
            conn.execute(insert(SchemaVersion).values(id=1, version=version))
        elif version != found:
            conn.execute(update(SchemaVersion).where(SchemaVersion.id == 1).values(version=version))
    return version
