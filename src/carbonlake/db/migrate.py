"""Bringing a database's schema up to date with the Alembic revisions in ``migrations/``.

A database is migrated when it is opened. The fast path reads the recorded revision
(``alembic_version``) and does nothing more when it is the head; otherwise one process
at a time (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory transaction lock) stamps a
database of the numbered migrations that came before Alembic and runs what is missing,
in the same transaction.

Before Alembic, the schema came from numbered migrations recorded in
``schema_migrations(version)``; revision ``0001`` ... ``0011`` are those steps, in
order, so such a database is stamped with the revision of its highest version and
upgraded from there. ``schema_migrations`` is left as it is. The revisions after
``0011`` (the data lake's registry, ``0012`` on) exist in Alembic only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .engine import Engine

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

HEAD = "0015"
"""The newest revision (tests/test_migrations.py checks it is the scripts' head)."""

SCRIPTS = Path(__file__).with_name("migrations")
"""The Alembic script directory, shipped inside the package."""

_LOCK = 7254
"""PostgreSQL advisory lock key of the migrator."""


def legacy_revision(version: int) -> str:
    """The Alembic revision of a numbered migration of the earlier migrator."""
    return f"{version:04d}"


def _at_head(conn: Connection) -> bool:
    try:
        found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        conn.rollback()
        return False
    return found == HEAD


def _upgrade(conn: Connection) -> None:
    # Alembic is imported here: opening a database that is up to date does not pay it.
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    names = sa.inspect(conn).get_table_names()
    if "alembic_version" not in names and "schema_migrations" in names:
        version = conn.execute(sa.text("SELECT max(version) FROM schema_migrations")).scalar()
        if version:
            MigrationContext.configure(conn).stamp(_scripts(), legacy_revision(int(version)))
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(SCRIPTS))


def migrate(engine: Engine) -> None:
    """Bring the schema of ``engine``'s database up to date."""
    with engine.errors("cannot migrate database {db}"), engine.connect() as conn:
        if _at_head(conn):
            return
    with engine.errors("cannot migrate database {db}"), engine.transaction() as conn:
        if engine.is_postgres:  # one migrator at a time (SQLite: BEGIN IMMEDIATE)
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        _upgrade(conn)
