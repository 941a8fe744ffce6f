"""The database layer: every SQL statement of carbonlake lives in this package.

SQLAlchemy Core over SQLite (the embedded default) or PostgreSQL (psycopg 3); the
schema comes from the Alembic revisions in ``migrations/``, applied when a database is
opened. One module per domain:

- :mod:`.executions`: executions, their checkpoints (completed states) and events;
- :mod:`.ledger`: the lineage ledger's nodes;
- :mod:`.library`: factor sets, factors and data-quality resources;
- :mod:`.catalog`: facts about the workspace itself;
- :mod:`.notifications`: notifications sent;
- :mod:`.results`: current results (the lake's results table, read with DuckDB), their
  history, deletions and calculation failures (every statement on those tables is there);
- :mod:`.lake`: the lake tables' file registry and DuckDB connections;
- :mod:`.engine`: the engine, connections, transactions and the mapping of errors;
- :mod:`.migrate`: bringing a schema up to date.

:class:`Database` is all of them over one engine (see docs/database.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.engine import Connection

from .base import utc_now
from .catalog import Catalog
from .engine import LINEAGE_CACHE_KIB, PAGE_SIZE, Engine
from .executions import EXECUTION_LIST_FIELDS, Executions
from .lake import RESULTS_TABLE, Lake, LakeFile, local_file
from .ledger import LINEAGE_COLUMNS, LINEAGE_TABLE, RECORD_NODES, Ledger
from .library import FACTOR_ROW_COLUMNS, Library
from .migrate import migrate
from .notifications import Notifications
from .results import (
    EMISSION_COLUMNS,
    EMISSION_GROUPS,
    EMISSION_SORT_COLUMNS,
    EMISSION_TYPES,
    FAILURE_COLUMNS,
    INVENTORY_BUCKET,
    INVENTORY_GROUPS,
    METHODS,
    RESULT_NUMBER_COLUMNS,
    EmissionFilter,
    Results,
)

__all__ = [
    "EMISSION_COLUMNS",
    "EMISSION_GROUPS",
    "EMISSION_SORT_COLUMNS",
    "EMISSION_TYPES",
    "EXECUTION_LIST_FIELDS",
    "FACTOR_ROW_COLUMNS",
    "FAILURE_COLUMNS",
    "INVENTORY_BUCKET",
    "INVENTORY_GROUPS",
    "LINEAGE_CACHE_KIB",
    "LINEAGE_COLUMNS",
    "LINEAGE_TABLE",
    "METHODS",
    "PAGE_SIZE",
    "RECORD_NODES",
    "RESULTS_TABLE",
    "RESULT_NUMBER_COLUMNS",
    "Database",
    "EmissionFilter",
    "LakeFile",
    "local_file",
    "utc_now",
]


class Database(Executions, Ledger, Results, Lake, Library, Catalog, Notifications):
    """One carbonlake database; safe to share between threads."""

    def __init__(self, url: str, busy_timeout_ms: int = 30_000) -> None:
        self._engine = Engine(url, busy_timeout_ms)
        self.url = url
        self.is_postgres = self._engine.is_postgres
        self.path: Path | str = self._engine.path
        self.migrate()

    @property
    def engine(self) -> Engine:
        """The engine (connections, transactions, error mapping)."""
        return self._engine

    def migrate(self) -> None:
        """Bring the schema up to date."""
        migrate(self._engine)

    @contextlib.contextmanager
    def transaction(self, unique: Callable[[str], str] | None = None) -> Iterator[Connection]:
        """A short write transaction on a SQLAlchemy connection, committed on success."""
        with self._engine.transaction(unique) as conn:
            yield conn

    def close(self) -> None:
        """Close every connection this object opened."""
        self._engine.close()
