"""The database layer: every SQL statement of carbonlake lives here.

The embedded default is SQLite in WAL mode with a busy timeout, one connection
per thread, short explicit transactions. The schema is created by numbered
migrations so that later back ends run the same steps.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _postgres
from ._exceptions import ConfigurationError, DatabaseError, LineageError

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE executions (
        execution_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        root_id TEXT,
        status TEXT NOT NULL,
        input_json TEXT NOT NULL,
        output_json TEXT,
        error TEXT,
        started_at TEXT NOT NULL,
        stopped_at TEXT
    );
    CREATE INDEX executions_root ON executions(root_id);

    CREATE TABLE lineage (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        root_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        action_taken TEXT NOT NULL,
        storage_location TEXT,
        recorded_at TEXT NOT NULL,
        UNIQUE (root_id, node_id)
    );
    CREATE INDEX lineage_node ON lineage(node_id);
    CREATE INDEX lineage_parent ON lineage(root_id, parent_id);

    CREATE TABLE emissions (
        activity_event_id TEXT PRIMARY KEY,
        root_id TEXT NOT NULL,
        execution_id TEXT,
        asset_id TEXT,
        scope INTEGER,
        category TEXT,
        activity TEXT,
        origin_measurement_timestamp TEXT,
        raw_data REAL,
        units TEXT,
        co2_tonnes REAL NOT NULL,
        ch4_tonnes REAL NOT NULL,
        n2o_tonnes REAL NOT NULL,
        co2e_ar4_tonnes REAL NOT NULL,
        co2e_ar5_tonnes REAL NOT NULL,
        factor_id TEXT NOT NULL,
        factor_set TEXT NOT NULL,
        factor_version TEXT NOT NULL,
        ar4_kgco2e_per_unit REAL NOT NULL,
        ar5_kgco2e_per_unit REAL NOT NULL,
        enriched_location TEXT NOT NULL,
        calculated_at TEXT NOT NULL
    );
    CREATE INDEX emissions_root ON emissions(root_id);
    CREATE INDEX emissions_location ON emissions(enriched_location);

    CREATE TABLE dq_resources (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        arn TEXT NOT NULL,
        root_id TEXT NOT NULL,
        details_json TEXT NOT NULL,
        created_at TEXT NOT NULL
    );

    CREATE TABLE notifications (
        notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
        root_id TEXT,
        channel TEXT NOT NULL,
        subject TEXT NOT NULL,
        message TEXT NOT NULL,
        delivered INTEGER NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL
    );
    """,
    # factor library, AR6, unit conversion and result history (issue 3).
    """
    CREATE TABLE factor_sets (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        format TEXT NOT NULL,
        origin TEXT NOT NULL,
        factor_count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE factors (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        scope INTEGER,
        category TEXT NOT NULL,
        activity TEXT NOT NULL,
        unit TEXT NOT NULL,
        co2_kg_per_unit REAL,
        ch4_kg_per_unit REAL,
        n2o_kg_per_unit REAL,
        stated_ar4_kgco2e_per_unit REAL,
        stated_ar5_kgco2e_per_unit REAL,
        source TEXT,
        PRIMARY KEY (name, version, category, activity)
    );
    ALTER TABLE emissions ADD COLUMN co2e_ar6_tonnes REAL;
    ALTER TABLE emissions ADD COLUMN ar6_kgco2e_per_unit REAL;
    ALTER TABLE emissions ADD COLUMN quantity_used REAL;
    ALTER TABLE emissions ADD COLUMN quantity_unit TEXT;
    ALTER TABLE emissions ADD COLUMN lineage_node_id TEXT;
    CREATE TABLE emissions_history AS SELECT * FROM emissions WHERE 0;
    ALTER TABLE emissions_history ADD COLUMN superseded_at TEXT;
    CREATE INDEX emissions_history_record ON emissions_history(activity_event_id)
    """,
    # verifiable lineage (issue 5): the object's SHA-256 when the node was written, the
    # record's row number in the input file, and the node's hash chained to its parent's.
    # The table is rebuilt so that one unique index, (node_id, root_id), serves lookups by
    # record id and by (root, node): indexing a million random record ids twice cost more
    # than everything else of writing their nodes. (root_id, seq) streams a root in order.
    """
    CREATE TABLE lineage_v3 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        root_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        action_taken TEXT NOT NULL,
        storage_location TEXT,
        recorded_at TEXT NOT NULL,
        object_sha256 TEXT,
        row_number INTEGER,
        node_hash TEXT,
        parent_hash TEXT,
        UNIQUE (node_id, root_id)
    );
    INSERT INTO lineage_v3
        (seq, root_id, node_id, parent_id, action_taken, storage_location, recorded_at)
        SELECT seq, root_id, node_id, parent_id, action_taken, storage_location, recorded_at
        FROM lineage ORDER BY seq;
    DROP TABLE lineage;
    ALTER TABLE lineage_v3 RENAME TO lineage;
    CREATE INDEX lineage_parent ON lineage(root_id, parent_id);
    CREATE INDEX lineage_root ON lineage(root_id, seq)
    """,
    # durable executions (issue 6): who runs an execution, which object it is for,
    # each completed state's output (checkpoints) and the event history.
    """
    ALTER TABLE executions ADD COLUMN object_key TEXT;
    ALTER TABLE executions ADD COLUMN object_sha256 TEXT;
    ALTER TABLE executions ADD COLUMN owner TEXT;
    ALTER TABLE executions ADD COLUMN redrive_count INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX executions_object ON executions(object_key, object_sha256);
    CREATE INDEX executions_name ON executions(name);
    CREATE INDEX executions_status ON executions(status, started_at);
    CREATE TABLE execution_states (
        execution_id TEXT NOT NULL,
        state TEXT NOT NULL,
        output_json TEXT NOT NULL,
        completed_at TEXT NOT NULL,
        PRIMARY KEY (execution_id, state)
    );
    CREATE TABLE execution_events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        state TEXT,
        details_json TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX execution_events_execution ON execution_events(execution_id, event_id)
    """,
    # performance (issue 7): the index on enriched_location cost a tenth of every results
    # insert; the one reader that needed it looks records up by primary key instead.
    """
    DROP INDEX emissions_location
    """,
    # performance (issue 7): nothing looks nodes up by parent; the per-root groupings by
    # parent (lineage tree, archive) read the root through lineage_root instead, and
    # every record node no longer pays for a third index (a fifth of the ledger insert).
    """
    DROP INDEX lineage_parent
    """,
    # the original's record fields and admin deletes (issue 15): each record's geo and
    # source; a result that an admin deleted moves to the history with who and why.
    """
    ALTER TABLE emissions ADD COLUMN geo_lat REAL;
    ALTER TABLE emissions ADD COLUMN geo_long REAL;
    ALTER TABLE emissions ADD COLUMN source TEXT;
    ALTER TABLE emissions_history ADD COLUMN geo_lat REAL;
    ALTER TABLE emissions_history ADD COLUMN geo_long REAL;
    ALTER TABLE emissions_history ADD COLUMN source TEXT;
    ALTER TABLE emissions_history ADD COLUMN deleted_by TEXT;
    ALTER TABLE emissions_history ADD COLUMN deletion_reason TEXT;
    ALTER TABLE emissions_history ADD COLUMN deletion_node_id TEXT
    """,
    # reliability (issue 17): facts about the workspace itself, such as the storage root
    # its stored locations were written under (a moved workspace resolves them anew).
    """
    CREATE TABLE workspace_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    # reliability (issue 17): which root's results replaced a result of another root.
    """
    ALTER TABLE emissions_history ADD COLUMN superseded_by_root TEXT;
    CREATE INDEX emissions_history_by_root ON emissions_history(superseded_by_root)
    """,
    # a GHG Protocol inventory (issue 14): factor attributes (biogenic CO2, methane basis,
    # scope 2 method, scope 3 category, the original's provenance fields), the same on each
    # result, and the records that could not be calculated, so totals can say what they
    # leave out.
    """
    ALTER TABLE factors ADD COLUMN biogenic_co2_kg_per_unit REAL;
    ALTER TABLE factors ADD COLUMN ch4_basis TEXT;
    ALTER TABLE factors ADD COLUMN scope2_method TEXT;
    ALTER TABLE factors ADD COLUMN scope3_category INTEGER;
    ALTER TABLE factors ADD COLUMN source_origin TEXT;
    ALTER TABLE factors ADD COLUMN last_updated TEXT;
    ALTER TABLE factors ADD COLUMN notes TEXT;
    ALTER TABLE factors ADD COLUMN original_fields TEXT;
    ALTER TABLE emissions ADD COLUMN scope2_method TEXT;
    ALTER TABLE emissions ADD COLUMN scope3_category INTEGER;
    ALTER TABLE emissions ADD COLUMN biogenic_co2_tonnes REAL;
    ALTER TABLE emissions ADD COLUMN ch4_basis TEXT;
    ALTER TABLE emissions ADD COLUMN ar6_ch4_gwp REAL;
    ALTER TABLE emissions_history ADD COLUMN scope2_method TEXT;
    ALTER TABLE emissions_history ADD COLUMN scope3_category INTEGER;
    ALTER TABLE emissions_history ADD COLUMN biogenic_co2_tonnes REAL;
    ALTER TABLE emissions_history ADD COLUMN ch4_basis TEXT;
    ALTER TABLE emissions_history ADD COLUMN ar6_ch4_gwp REAL;
    CREATE TABLE calculation_failures (
        failure_key TEXT PRIMARY KEY,
        root_id TEXT NOT NULL,
        execution_id TEXT,
        activity_event_id TEXT,
        node_id TEXT NOT NULL,
        asset_id TEXT,
        scope INTEGER,
        category TEXT,
        activity TEXT,
        origin_measurement_timestamp TEXT,
        raw_data TEXT,
        units TEXT,
        reason_code TEXT NOT NULL,
        reason TEXT NOT NULL,
        failed_at TEXT NOT NULL
    );
    CREATE INDEX calculation_failures_root ON calculation_failures(root_id)
    """,
    # the data lake (issue 16): the results live in the Apache Iceberg table `emissions`
    # (docs/lake.md); the database keeps its file registry, written in the same transaction
    # as a map group's checkpoint and brought up to the table's file set after each commit:
    # state 'pending' (registered, not yet committed), 'current' (in the table's current
    # snapshot) or 'removed' (no longer; when, and by which root's commit).
    """
    CREATE TABLE lake_files (
        table_name TEXT NOT NULL,
        file_path TEXT NOT NULL,
        root_id TEXT,
        execution_id TEXT,
        record_count INTEGER NOT NULL,
        sha256 TEXT,
        state TEXT NOT NULL,
        snapshot_id TEXT,
        registered_at TEXT NOT NULL,
        removed_at TEXT,
        removed_by_root TEXT,
        removed_by_execution TEXT,
        PRIMARY KEY (table_name, file_path)
    );
    CREATE INDEX lake_files_state ON lake_files(table_name, state, execution_id)
    """,
    # the data lake (issue 16): an admin deletion is an Iceberg delete; who deleted which
    # result (record id and the deleted result's calculated_at), when and why stays here.
    """
    CREATE TABLE emission_deletions (
        activity_event_id TEXT NOT NULL,
        root_id TEXT NOT NULL,
        calculated_at TEXT NOT NULL,
        deleted_at TEXT NOT NULL,
        deleted_by TEXT NOT NULL,
        deletion_reason TEXT NOT NULL,
        deletion_node_id TEXT NOT NULL
    );
    CREATE INDEX emission_deletions_record ON emission_deletions(activity_event_id)
    """,
)

EXECUTION_LIST_FIELDS = (
    "execution_id",
    "name",
    "status",
    "root_id",
    "object_key",
    "started_at",
    "stopped_at",
    "owner",
    "error",
)
"""The fields of an execution that listings show (CLI and service)."""

PAGE_SIZE = 65_536
"""Page size of a new SQLite database, in bytes (SQLite's largest)."""

LINEAGE_CACHE_KIB = 65_536
"""Page cache of a connection that writes lineage nodes, in KiB."""

LINEAGE_COLUMNS = (
    "root_id",
    "node_id",
    "parent_id",
    "action_taken",
    "storage_location",
    "recorded_at",
    "object_sha256",
    "row_number",
    "node_hash",
    "parent_hash",
)

EMISSION_COLUMNS = (
    "activity_event_id",
    "root_id",
    "execution_id",
    "asset_id",
    "scope",
    "category",
    "activity",
    "origin_measurement_timestamp",
    "raw_data",
    "units",
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "factor_id",
    "factor_set",
    "factor_version",
    "ar4_kgco2e_per_unit",
    "ar5_kgco2e_per_unit",
    "enriched_location",
    "calculated_at",
    "co2e_ar6_tonnes",
    "ar6_kgco2e_per_unit",
    "quantity_used",
    "quantity_unit",
    "lineage_node_id",
    "geo_lat",
    "geo_long",
    "source",
    "scope2_method",
    "scope3_category",
    "biogenic_co2_tonnes",
    "ch4_basis",
    "ar6_ch4_gwp",
)

_INTEGER_COLUMNS = ("scope", "scope3_category")
_FLOAT_COLUMNS = (
    "raw_data",
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "ar4_kgco2e_per_unit",
    "ar5_kgco2e_per_unit",
    "co2e_ar6_tonnes",
    "ar6_kgco2e_per_unit",
    "quantity_used",
    "geo_lat",
    "geo_long",
    "biogenic_co2_tonnes",
    "ar6_ch4_gwp",
)
EMISSION_TYPES = {
    column: "BIGINT"
    if column in _INTEGER_COLUMNS
    else "DOUBLE"
    if column in _FLOAT_COLUMNS
    else "VARCHAR"
    for column in EMISSION_COLUMNS
}
"""The type of each results column in the results table (DuckDB / SQL names)."""

RESULTS_TABLE = "emissions"
"""The lake table of the current results (docs/lake.md)."""


@dataclass(frozen=True)
class LakeFile:
    """A data file of a lake table, as the registry keeps it."""

    table_name: str
    file_path: str
    """The file's URL, exactly as the Iceberg table's manifests name it."""
    root_id: str | None
    execution_id: str | None
    record_count: int
    sha256: str | None


def local_file(url: str) -> str:
    """The path DuckDB reads for a data file URL (``file:///abs`` -> ``/abs``)."""
    return url[len("file://") :] if url.startswith("file://") else url


FACTOR_ROW_COLUMNS = (
    "scope",
    "category",
    "activity",
    "unit",
    "co2_kg_per_unit",
    "ch4_kg_per_unit",
    "n2o_kg_per_unit",
    "stated_ar4_kgco2e_per_unit",
    "stated_ar5_kgco2e_per_unit",
    "source",
    "biogenic_co2_kg_per_unit",
    "ch4_basis",
    "scope2_method",
    "scope3_category",
    "source_origin",
    "last_updated",
    "notes",
    "original_fields",
)
"""The stored columns of a factor, in calculate.factors.FACTOR_COLUMNS order."""

EMISSION_SORT_COLUMNS = (
    "activity_event_id",
    "asset_id",
    "scope",
    "category",
    "activity",
    "origin_measurement_timestamp",
    "source",
    "raw_data",
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "co2e_ar6_tonnes",
    "calculated_at",
)
"""Columns emissions can be sorted by (a sort column is never taken from a request as is)."""

EMISSION_GROUPS = {
    "scope": "scope",
    "category": "category",
    "activity": "activity",
    "asset": "asset_id",
    "month": "substr(origin_measurement_timestamp, 1, 7)",
}
"""What emission totals can be grouped by, and the SQL expression of each."""


@dataclass(frozen=True)
class EmissionFilter:
    """Which current emission results a query covers; every value is a bound parameter."""

    scope: int | None = None
    category: str | None = None
    activity: str | None = None
    asset_id: str | None = None
    root_id: str | None = None
    execution_id: str | None = None
    search: str | None = None
    """Text anywhere in the record id, asset, category or activity (case-insensitive)."""
    measured_from: str | None = None
    """``origin_measurement_timestamp`` at or after this ISO 8601 text (``2019-10``)."""
    measured_to: str | None = None
    """``origin_measurement_timestamp`` up to and including this ISO 8601 prefix."""

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition (``WHERE ...`` or empty) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("scope", "category", "activity", "asset_id", "root_id", "execution_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.search:
            pattern = "%" + "".join(f"\\{c}" if c in "%_\\" else c for c in self.search) + "%"
            clauses.append(
                "("
                + " OR ".join(
                    f"lower({c}) LIKE lower(?) ESCAPE '\\'"
                    for c in ("activity_event_id", "asset_id", "category", "activity")
                )
                + ")"
            )
            params.extend([pattern] * 4)
        if self.measured_from:
            clauses.append("origin_measurement_timestamp >= ?")
            params.append(self.measured_from)
        if self.measured_to:
            clauses.append("substr(origin_measurement_timestamp, 1, length(?)) <= ?")
            params.extend([self.measured_to, self.measured_to])
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class _Row(tuple):  # type: ignore[type-arg]
    """A row of a lake query: by position like a tuple, by column name like sqlite3.Row."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> tuple[str, ...]:
        """The column names (so that ``dict(row)`` works)."""
        return self.names


def _rows_of(cursor: Any, rows: Iterable[tuple[Any, ...]]) -> list[_Row]:
    names = tuple(d[0] for d in cursor.description)
    found: list[_Row] = []
    for row in rows:
        item = _Row(row)
        item.names = names
        found.append(item)
    return found


def _present(url: str) -> bool:
    """Whether a data file exists (checked only on local disk; remote ones are read)."""
    return not url.startswith("file://") or Path(local_file(url)).is_file()


def _sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _read_files(paths: Sequence[str], filename: bool = False) -> str:
    """SQL: the results columns of some data files (typed, none: an empty relation)."""
    columns = ", ".join(f"CAST({c} AS {EMISSION_TYPES[c]}) AS {c}" for c in EMISSION_COLUMNS)
    if not paths:
        empty = ", ".join(f"CAST(NULL AS {EMISSION_TYPES[c]}) AS {c}" for c in EMISSION_COLUMNS)
        extra = ", CAST(NULL AS VARCHAR) AS filename" if filename else ""
        return f"SELECT {empty}{extra} WHERE false"
    listed = ", ".join(_sql_text(p) for p in paths)
    if filename:
        return f"SELECT {columns}, filename FROM read_parquet([{listed}], filename = true)"
    return f"SELECT {columns} FROM read_parquet([{listed}])"


class _Stale(Exception):
    """A row changed between reading it and writing: roll the transaction back."""


RESULT_NUMBER_COLUMNS = (
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "co2e_ar6_tonnes",
)
"""The numbers of a result that its enriched record also holds (lineage verify compares them)."""

FAILURE_COLUMNS = (
    "failure_key",
    "root_id",
    "execution_id",
    "activity_event_id",
    "node_id",
    "asset_id",
    "scope",
    "category",
    "activity",
    "origin_measurement_timestamp",
    "raw_data",
    "units",
    "reason_code",
    "reason",
    "failed_at",
)
"""A record that could not be calculated, until a later calculation of it succeeds."""

METHODS = {"location_based": "location-based", "market_based": "market-based"}
"""The two scope 2 methods as totals name them, and the factor attribute each matches."""


def _by_method(column: str, method: str) -> str:
    """SQL: ``column`` for a total of one scope 2 method. Scope 2 results of the other
    method (or of none: results calculated before factors said) count as 0, so the two
    totals are side by side and never added."""
    return (
        f"coalesce(fsum(CASE WHEN scope = 2 AND scope2_method IS DISTINCT FROM "
        f"'{METHODS[method]}' THEN 0 ELSE {column} END), 0)"
    )


def _totals_sql() -> str:
    """SELECT list of the totals every summary gives (see :func:`_totals_of`)."""
    parts = ["count(*) AS records", "coalesce(fsum(biogenic_co2_tonnes), 0) AS biogenic"]
    for method in METHODS:
        for gas in ("co2", "ch4", "n2o"):
            parts.append(f"{_by_method(f'{gas}_tonnes', method)} AS {method}_{gas}")
        for gwp in ("ar4", "ar5", "ar6"):
            parts.append(f"{_by_method(f'co2e_{gwp}_tonnes', method)} AS {method}_{gwp}")
    return ", ".join(parts)


def _totals_of(row: Any) -> dict[str, Any]:
    """Totals of a row selected with :func:`_totals_sql`: each quantity per scope 2
    method, ``{"location_based": ..., "market_based": ...}``."""
    return {
        "records": row["records"],
        **{
            f"{gas}_tonnes": {m: row[f"{m}_{gas}"] for m in METHODS}
            for gas in ("co2", "ch4", "n2o")
        },
        "co2e_tonnes": {m: {g: row[f"{m}_{g}"] for g in ("ar4", "ar5", "ar6")} for m in METHODS},
        "biogenic_co2_tonnes": row["biogenic"],
    }


INVENTORY_BUCKET = (
    "CASE WHEN scope = 1 THEN 'scope_1' "
    "WHEN scope = 2 AND scope2_method = 'location-based' THEN 'scope_2_location_based' "
    "WHEN scope = 2 AND scope2_method = 'market-based' THEN 'scope_2_market_based' "
    "WHEN scope = 3 THEN 'scope_3' ELSE 'unclassified' END"
)
"""SQL: the GHG Protocol total a result belongs to (``unclassified``: a scope 2 result
whose factor named no method, or a result without a scope)."""

INVENTORY_GROUPS = {
    "month": "substr(origin_measurement_timestamp, 1, 7)",
    "quarter": (
        "substr(origin_measurement_timestamp, 1, 4) || '-Q' || "
        "CAST((CAST(substr(origin_measurement_timestamp, 6, 2) AS INTEGER) + 2) // 3 AS TEXT)"
    ),
    "year": "substr(origin_measurement_timestamp, 1, 4)",
    "asset": "asset_id",
    "category": "category",
}
"""What an inventory can be broken down by, and the SQL expression of each."""

_ID_CHUNK = 500
"""Record ids per ``IN (...)`` list (well under every database's parameter limit)."""


def _brief(output: dict[str, Any]) -> dict[str, Any]:
    """An output small enough for the event history (long lists become counts)."""
    return {
        key: (f"{len(value)} items" if isinstance(value, list) and len(value) > 20 else value)
        for key, value in output.items()
    }


def _redact(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Database:
    """One carbonlake database; safe to share between threads."""

    def __init__(self, url: str, busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        if not (url.startswith("sqlite:///") or self.is_postgres):
            raise ConfigurationError(
                f"[database] url {_redact(url)!r} is not supported; use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DB"
            )
        self.path: Path | str = _redact(url) if self.is_postgres else Path(url[len("sqlite:///") :])
        self._busy_timeout_ms = busy_timeout_ms
        self.lake_filesystem: Any = None
        """The fsspec filesystem of the lake bucket when it is not local (DuckDB reads
        the results table's s3:// files through it; it has no httpfs here)."""
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        if isinstance(self.path, Path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the folder of database {self.path}: {exc}"
                ) from exc
        self.migrate()

    # -- connections ----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None and self.is_postgres:
            try:
                conn = _postgres.Connection(self.url, self._busy_timeout_ms / 1000)  # type: ignore[assignment]
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot open database {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=self._busy_timeout_ms / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                # Big pages for a new database (the size is fixed when the file is first
                # written, so this does nothing to an existing one): writing a million
                # results and record nodes is about 30 % faster with 64 KiB pages than
                # with the default 4 KiB (benchmarks/floor.py, docs/performance.md).
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                # Two processes opening a new workspace at once may both try to switch it
                # to WAL; the loser gets SQLITE_BUSY at once (no busy handler): try again.
                for attempt in range(50):
                    try:
                        conn.execute("PRAGMA journal_mode = WAL")
                        break
                    except sqlite3.OperationalError:
                        if attempt == 49:
                            raise
                        time.sleep(0.1)
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot open database {self.path}: {exc}") from exc
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (BEGIN IMMEDIATE), committed on success."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot start a transaction on {self.path}: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot commit to {self.path}: {exc}") from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseError(f"query on {self.path} failed: {exc}") from exc

    def _query_in(
        self,
        sql: str,
        values: Sequence[Any],
        before: Sequence[Any] = (),
        after: Sequence[Any] = (),
    ) -> list[sqlite3.Row]:
        """Rows of ``sql``, whose ``{marks}`` is an ``IN`` list of ``values``, asked
        ``_ID_CHUNK`` values at a time (``before`` and ``after`` are the parameters around
        the list)."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(values), _ID_CHUNK):
            chunk = list(values[start : start + _ID_CHUNK])
            marks = ", ".join("?" for _ in chunk)
            rows += self._query(sql.format(marks=marks), (*before, *chunk, *after))
        return rows

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def migrate(self) -> None:
        """Bring the schema up to date."""
        conn = self._connection()
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER)")
            with self.transaction():
                if self.is_postgres:  # one migrator at a time (SQLite: BEGIN IMMEDIATE)
                    conn.execute("SELECT pg_advisory_xact_lock(7254)")
                row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
                current = row[0] or 0
                for version, script in enumerate(MIGRATIONS, start=1):
                    if version <= current:
                        continue
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot migrate database {self.path}: {exc}") from exc

    # -- executions -----------------------------------------------------------

    def insert_execution(
        self,
        execution_id: str,
        name: str,
        input_document: dict[str, Any],
        *,
        root_id: str | None = None,
        object_key: str | None = None,
        object_sha256: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Record a new RUNNING execution (with its ExecutionStarted event)."""
        now = utc_now()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO executions (execution_id, name, root_id, status, input_json, "
                "started_at, object_key, object_sha256, owner) "
                "VALUES (?, ?, ?, 'RUNNING', ?, ?, ?, ?, ?)",
                (
                    execution_id,
                    name,
                    root_id,
                    json.dumps(input_document),
                    now,
                    object_key,
                    object_sha256,
                    owner,
                ),
            )
            conn.execute(
                "INSERT INTO execution_events (execution_id, event_type, state, details_json, at)"
                " VALUES (?, 'ExecutionStarted', NULL, ?, ?)",
                (execution_id, json.dumps({"input": input_document, "owner": owner}), now),
            )

    def claim_execution(self, execution_id: str, owner: str, redrive: bool = False) -> None:
        """Mark an execution RUNNING again under a new owner (resume or redrive)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE executions SET status = 'RUNNING', owner = ?, stopped_at = NULL, "
                "error = NULL, redrive_count = redrive_count + ? WHERE execution_id = ?",
                (owner, int(redrive), execution_id),
            )

    def finish_execution(
        self,
        execution_id: str,
        status: str,
        output: dict[str, Any] | None,
        error: str | None = None,
    ) -> None:
        """Record an execution's final status and output (with its closing event)."""
        now = utc_now()
        event = {
            "SUCCEEDED": "ExecutionSucceeded",
            "FAILED": "ExecutionFailed",
            "ABORTED": "ExecutionAborted",
        }.get(status, "ExecutionStopped")
        with self.transaction() as conn:
            conn.execute(
                "UPDATE executions SET status = ?, output_json = ?, error = ?, stopped_at = ? "
                "WHERE execution_id = ?",
                (status, json.dumps(output), error, now, execution_id),
            )
            conn.execute(
                "INSERT INTO execution_events (execution_id, event_type, state, details_json, at)"
                " VALUES (?, ?, NULL, ?, ?)",
                (execution_id, event, json.dumps({"error": error} if error else {}), now),
            )

    @staticmethod
    def _execution_dict(row: sqlite3.Row) -> dict[str, Any]:
        found = dict(row)
        found["input"] = json.loads(found.pop("input_json"))
        output_json = found.pop("output_json")
        found["output"] = json.loads(output_json) if output_json else None
        return found

    def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        """One execution as a dict, or None."""
        rows = self._query("SELECT * FROM executions WHERE execution_id = ?", (execution_id,))
        return self._execution_dict(rows[0]) if rows else None

    def executions(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Executions, newest first, optionally of one status."""
        if status:
            rows = self._query(
                "SELECT * FROM executions WHERE status = ? ORDER BY started_at DESC LIMIT ?",
                (status, limit),
            )
        else:
            rows = self._query(
                "SELECT * FROM executions ORDER BY started_at DESC LIMIT ?", (limit,)
            )
        return [self._execution_dict(row) for row in rows]

    def executions_named(self, name: str) -> list[dict[str, Any]]:
        """Executions started with this name (start-by-name semantics)."""
        rows = self._query("SELECT * FROM executions WHERE name = ? ORDER BY started_at", (name,))
        return [self._execution_dict(row) for row in rows]

    def executions_of_object(self, object_key: str, object_sha256: str) -> list[dict[str, Any]]:
        """Executions of the same object (same key and same content hash), oldest first."""
        rows = self._query(
            "SELECT * FROM executions WHERE object_key = ? AND object_sha256 = ? "
            "ORDER BY started_at",
            (object_key, object_sha256),
        )
        return [self._execution_dict(row) for row in rows]

    def add_event(
        self,
        execution_id: str,
        event_type: str,
        state: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event to an execution's history."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO execution_events (execution_id, event_type, state, details_json, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (execution_id, event_type, state, json.dumps(details or {}), utc_now()),
            )

    def add_events(
        self,
        execution_id: str,
        events: Sequence[tuple[str, str | None, dict[str, Any]]],
    ) -> None:
        """Append several ``(event_type, state, details)`` events in one transaction."""
        now = utc_now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO execution_events (execution_id, event_type, state, details_json, at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(execution_id, t, state, json.dumps(d), now) for t, state, d in events],
            )

    def execution_events(self, execution_id: str) -> list[dict[str, Any]]:
        """An execution's history, in order."""
        rows = self._query(
            "SELECT event_id, event_type, state, details_json, at FROM execution_events "
            "WHERE execution_id = ? ORDER BY event_id",
            (execution_id,),
        )
        events = []
        for row in rows:
            event = dict(row)
            event["details"] = json.loads(event.pop("details_json") or "{}")
            events.append(event)
        return events

    def checkpoint(
        self,
        execution_id: str,
        state: str,
        output: dict[str, Any],
        lineage_rows: Sequence[Sequence[Any]] = (),
        event_type: str = "TaskSucceeded",
    ) -> None:
        """Record a completed state: its lineage nodes, its output and its event, atomically.

        Either all of them are durable or none is, so a process killed at any moment
        leaves nothing half-written for ``resume`` to trip over.
        """
        now = utc_now()
        try:
            with self.transaction() as conn:
                if lineage_rows:
                    self._insert_lineage_rows(conn, lineage_rows)
                conn.execute(
                    "INSERT INTO execution_states "
                    "(execution_id, state, output_json, completed_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (execution_id, state) DO UPDATE SET "
                    "output_json = excluded.output_json, completed_at = excluded.completed_at",
                    (execution_id, state, json.dumps(output), now),
                )
                conn.execute(
                    "INSERT INTO execution_events "
                    "(execution_id, event_type, state, details_json, at) VALUES (?, ?, ?, ?, ?)",
                    (execution_id, event_type, state, json.dumps({"output": _brief(output)}), now),
                )
        except sqlite3.IntegrityError as exc:
            raise LineageError(
                f"state {state} of execution {execution_id}: a lineage node already exists "
                f"({exc}). Record ids (activity_event_id) must be unique within a file."
            ) from exc

    def checkpoints(self, execution_id: str) -> dict[str, dict[str, Any]]:
        """Outputs of an execution's completed states, by state name."""
        rows = self._query(
            "SELECT state, output_json FROM execution_states WHERE execution_id = ?",
            (execution_id,),
        )
        return {row["state"]: json.loads(row["output_json"]) for row in rows}

    def completed_states(self, execution_id: str, states: Sequence[str]) -> set[str]:
        """Which of ``states`` an execution has checkpointed (an indexed lookup each, so a
        map of thousands of batches does not read every checkpoint once per group)."""
        rows = self._query_in(
            "SELECT state FROM execution_states WHERE execution_id = ? AND state IN ({marks})",
            states,
            before=(execution_id,),
        )
        return {row[0] for row in rows}

    # -- lineage --------------------------------------------------------------

    def insert_lineage(self, nodes: Iterable[Sequence[Any]]) -> int:
        """Insert lineage nodes (tuples in LINEAGE_COLUMNS order) in one transaction."""
        rows = list(nodes)
        if not rows:
            return 0
        try:
            # Record ids are random keys: a larger page cache keeps the unique index's
            # pages in memory while a big batch goes in (SQLite's default is 2 MiB).
            self._connection().execute(f"PRAGMA cache_size = -{LINEAGE_CACHE_KIB}")
            with self.transaction() as conn:
                self._insert_lineage_rows(conn, rows)
        except sqlite3.IntegrityError as exc:
            raise LineageError(
                f"a lineage node already exists for one of {len(rows)} nodes "
                f"(first: root_id {rows[0][0]}, node_id {rows[0][1]}): {exc}. "
                "Record ids (activity_event_id) must be unique within a file."
            ) from exc
        return len(rows)

    @staticmethod
    def _insert_lineage_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        placeholders = ", ".join("?" for _ in LINEAGE_COLUMNS)
        conn.executemany(
            f"INSERT INTO lineage ({', '.join(LINEAGE_COLUMNS)}) VALUES ({placeholders})", rows
        )

    def lineage_node(self, root_id: str, node_id: str) -> dict[str, Any] | None:
        """One ledger node, or None."""
        rows = self._query(
            f"SELECT {', '.join(LINEAGE_COLUMNS)} FROM lineage WHERE root_id = ? AND node_id = ?",
            (root_id, node_id),
        )
        return dict(rows[0]) if rows else None

    def lineage_roots_of_node(self, node_id: str) -> list[str]:
        """The root_ids under which a node_id appears."""
        rows = self._query("SELECT DISTINCT root_id FROM lineage WHERE node_id = ?", (node_id,))
        return [row[0] for row in rows]

    def lineage_nodes_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """``(root_id, node_id)`` of the nodes whose node_id starts with ``prefix``, oldest
        first (a range on the unique index, not a scan)."""
        rows = self._query(
            "SELECT root_id, node_id FROM lineage WHERE node_id >= ? AND node_id < ? ORDER BY seq",
            (prefix, prefix + "\U0010ffff"),
        )
        return [(row[0], row[1]) for row in rows]

    def lineage_of_root(self, root_id: str) -> list[dict[str, Any]]:
        """Every node of one root, in insertion order."""
        rows = self._query(
            f"SELECT {', '.join(LINEAGE_COLUMNS)} FROM lineage WHERE root_id = ? ORDER BY seq",
            (root_id,),
        )
        return [dict(row) for row in rows]

    def iter_lineage(
        self,
        root_id: str | None = None,
        *,
        actions: Sequence[str] = (),
        exclude_actions: Sequence[str] = (),
        chunk: int = 20_000,
    ) -> Iterator[tuple[Any, ...]]:
        """Ledger rows as tuples ``(seq, *LINEAGE_COLUMNS)`` in insertion order, streamed.

        Optionally only one root, only some actions, or all but some actions.
        """
        where: list[str] = []
        params: list[Any] = []
        if root_id is not None:
            where.append("root_id = ?")
            params.append(root_id)
        if actions:
            where.append(f"action_taken IN ({', '.join('?' for _ in actions)})")
            params.extend(actions)
        if exclude_actions:
            where.append(f"action_taken NOT IN ({', '.join('?' for _ in exclude_actions)})")
            params.extend(exclude_actions)
        sql = f"SELECT seq, {', '.join(LINEAGE_COLUMNS)} FROM lineage"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        try:
            cursor = self._connection().cursor()
            cursor.row_factory = None
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk):
                yield from rows
        except sqlite3.Error as exc:
            raise DatabaseError(f"reading the lineage ledger of {self.path} failed: {exc}") from exc

    def iter_lineage_hashes(self, limit: int | None = None) -> Iterator[str | None]:
        """The ledger's ``node_hash`` values in insertion order (the first ``limit`` only)."""
        sql = "SELECT node_hash FROM lineage ORDER BY seq"
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        try:
            cursor = self._connection().cursor()
            cursor.row_factory = None
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(50_000):
                for row in rows:
                    yield row[0]
        except sqlite3.Error as exc:
            raise DatabaseError(f"reading the lineage ledger of {self.path} failed: {exc}") from exc

    def lineage_size(self) -> int:
        """How many nodes the ledger holds."""
        return int(self._query("SELECT count(*) FROM lineage")[0][0])

    def lineage_child_counts(self, root_id: str) -> list[tuple[str, str, int]]:
        """``(parent_id, action_taken, count)`` of the nodes of one root."""
        rows = self._query(
            "SELECT parent_id, action_taken, count(*) FROM lineage WHERE root_id = ? "
            "GROUP BY parent_id, action_taken",
            (root_id,),
        )
        return [(row[0], row[1], int(row[2])) for row in rows]

    def lineage_first_children(
        self, root_id: str, actions: Sequence[str], per_parent: int
    ) -> list[dict[str, Any]]:
        """The first ``per_parent`` nodes with one of ``actions`` under each parent of a root."""
        if not actions or per_parent <= 0:
            return []
        # The root's nodes in order through the (root_id, seq) index, keeping the first
        # few of each parent, then those rows by sequence number: no index by parent is
        # kept (it cost every record node's insert), and a window over the root sorted
        # by parent took twice as long.
        marks = ", ".join("?" for _ in actions)
        taken: dict[str, int] = {}
        wanted: list[int] = []
        try:
            cursor = self._connection().cursor()
            cursor.row_factory = None
            cursor.execute(
                "SELECT seq, parent_id FROM lineage WHERE root_id = ? "
                f"AND action_taken IN ({marks}) ORDER BY seq",
                (root_id, *actions),
            )
            while rows := cursor.fetchmany(50_000):
                for seq, parent in rows:
                    count = taken.get(parent, 0)
                    if count < per_parent:
                        taken[parent] = count + 1
                        wanted.append(seq)
        except sqlite3.Error as exc:
            raise DatabaseError(f"reading the lineage ledger of {self.path} failed: {exc}") from exc
        rows = self._query_in(
            f"SELECT {', '.join(LINEAGE_COLUMNS)} FROM lineage WHERE seq IN ({{marks}}) "
            "ORDER BY seq",
            wanted,
        )
        return [dict(row) for row in rows]

    def lineage_record_groups(self, root_id: str, actions: Sequence[str]) -> list[dict[str, Any]]:
        """Nodes of one root with one of ``actions``, grouped by parent, action, location and
        object hash: ``{parent_id, action_taken, storage_location, object_sha256, nodes,
        first_recorded_at, last_recorded_at}`` in the order they were recorded."""
        if not actions:
            return []
        marks = ", ".join("?" for _ in actions)
        rows = self._query(
            "SELECT parent_id, action_taken, storage_location, object_sha256, count(*) AS nodes, "
            "min(recorded_at) AS first_recorded_at, max(recorded_at) AS last_recorded_at "
            f"FROM lineage WHERE root_id = ? AND action_taken IN ({marks}) "
            "GROUP BY parent_id, action_taken, storage_location, object_sha256 ORDER BY min(seq)",
            (root_id, *actions),
        )
        return [dict(row) for row in rows]

    def executions_of_root(self, root_id: str) -> list[dict[str, Any]]:
        """The executions that processed one root, oldest first."""
        rows = self._query(
            "SELECT execution_id FROM executions WHERE root_id = ? ORDER BY started_at",
            (root_id,),
        )
        found = (self.get_execution(row[0]) for row in rows)
        return [execution for execution in found if execution is not None]

    # -- the lake: the results table's file registry ----------------------------
    #
    # The results are an Apache Iceberg table (lake.py commits it). Reads never import
    # pyiceberg: they query the table's current data files, listed in this registry, with
    # DuckDB (about 0.35 s to import, against 2.3 s for pyiceberg and SQLAlchemy).

    @staticmethod
    def _register_lake_files(conn: sqlite3.Connection, files: Sequence[LakeFile]) -> None:
        now = utc_now()
        conn.executemany(
            "INSERT INTO lake_files (table_name, file_path, root_id, execution_id, "
            "record_count, sha256, state, registered_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) "
            "ON CONFLICT (table_name, file_path) DO UPDATE SET root_id = excluded.root_id, "
            "execution_id = excluded.execution_id, record_count = excluded.record_count, "
            "sha256 = excluded.sha256, state = 'pending', registered_at = excluded.registered_at",
            [
                (
                    f.table_name,
                    f.file_path,
                    f.root_id,
                    f.execution_id,
                    f.record_count,
                    f.sha256,
                    now,
                )
                for f in files
            ],
        )

    @staticmethod
    def _clear_failures(conn: sqlite3.Connection, record_ids: Sequence[str]) -> None:
        # A record calculated now is no longer a failure (e.g. after a redrive); a failure
        # of a record with an id is keyed by that id (its primary key).
        for start in range(0, len(record_ids), _ID_CHUNK):
            ids = list(record_ids[start : start + _ID_CHUNK])
            marks = ", ".join("?" for _ in ids)
            conn.execute(f"DELETE FROM calculation_failures WHERE failure_key IN ({marks})", ids)

    def register_results(self, files: Sequence[LakeFile], record_ids: Sequence[str]) -> None:
        """Register results files (pending their table commit) in one transaction; their
        records are no longer failures."""
        with self.transaction() as conn:
            self._register_lake_files(conn, files)
            self._clear_failures(conn, record_ids)

    def lake_pending(self, table_name: str, execution_id: str | None) -> list[LakeFile]:
        """Files of one execution registered but not yet committed to their table."""
        rows = self._query(
            "SELECT table_name, file_path, root_id, execution_id, record_count, sha256 "
            "FROM lake_files WHERE table_name = ? AND state = 'pending' "
            "AND execution_id IS NOT DISTINCT FROM ? ORDER BY file_path",
            (table_name, execution_id),
        )
        return [LakeFile(*row) for row in rows]

    def lake_files(self, table_name: str, state: str = "current") -> list[dict[str, Any]]:
        """The registry's files of a table in one state ('pending', 'current', 'removed')."""
        rows = self._query(
            "SELECT * FROM lake_files WHERE table_name = ? AND state = ? ORDER BY file_path",
            (table_name, state),
        )
        return [dict(row) for row in rows]

    def lake_sync(
        self,
        table_name: str,
        live: dict[str, int],
        snapshot_id: str,
        *,
        removed: Iterable[str],
        removed_by_root: str | None,
        removed_by_execution: str | None,
        describe: Any,
    ) -> None:
        """Bring the registry to a table's current file set after a commit: ``live`` (file
        -> records) are current, ``removed`` (the files this commit removed) are removed by
        its root and execution, any other file no longer live is removed too. ``describe``
        gives ``(root_id, execution_id, sha256)`` of a live file the registry does not know
        (one the table commit wrote: a copy-on-write rewrite)."""
        now = utc_now()
        known = {
            row[0]: row[1]
            for row in self._query(
                "SELECT file_path, state FROM lake_files WHERE table_name = ?", (table_name,)
            )
        }
        unknown = {path: describe(path) for path in live if path not in known}
        removed = [path for path in removed if path in known]
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE lake_files SET state = 'removed', removed_at = ?, removed_by_root = ?, "
                "removed_by_execution = ? WHERE table_name = ? AND file_path = ?",
                [
                    (now, removed_by_root, removed_by_execution, table_name, path)
                    for path in removed
                    if path not in live
                ],
            )
            conn.executemany(
                "UPDATE lake_files SET state = 'removed', removed_at = ? "
                "WHERE table_name = ? AND file_path = ? AND state = 'current'",
                [
                    (now, table_name, path)
                    for path, state in known.items()
                    if state == "current" and path not in live
                ],
            )
            conn.executemany(
                "UPDATE lake_files SET state = 'current', snapshot_id = ?, record_count = ? "
                "WHERE table_name = ? AND file_path = ? AND state <> 'current'",
                [
                    (snapshot_id, count, table_name, path)
                    for path, count in live.items()
                    if path in known and known[path] != "current"
                ],
            )
            conn.executemany(
                "INSERT INTO lake_files (table_name, file_path, root_id, execution_id, "
                "record_count, sha256, state, snapshot_id, registered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'current', ?, ?)",
                [
                    (table_name, path, root, execution, live[path], sha, snapshot_id, now)
                    for path, (root, execution, sha) in unknown.items()
                ],
            )

    def lake_overlap(self, live: Sequence[str], new: Sequence[str]) -> dict[str, list[str]]:
        """Which records of the ``new`` results files already have a result in the ``live``
        ones (the table's current files): ``{live file: [activity_event_id]}`` (a semi-join
        in DuckDB over the files' record ids)."""
        if not live or not new:
            return {}
        found: dict[str, list[str]] = {}
        local = {local_file(path): path for path in live}
        live_sql = ", ".join(_sql_text(p) for p in local)
        new_sql = ", ".join(_sql_text(local_file(p)) for p in new)
        with self._duckdb() as con:
            cursor = con.execute(
                f"SELECT filename, activity_event_id FROM read_parquet([{live_sql}], "
                f"filename = true) SEMI JOIN read_parquet([{new_sql}]) n USING "
                "(activity_event_id)"
            )
            while rows := cursor.fetchmany(50_000):
                for filename, record_id in rows:
                    found.setdefault(local[filename], []).append(record_id)
        return found

    @contextlib.contextmanager
    def _duckdb(self) -> Iterator[Any]:
        import duckdb  # 0.35 s to import: only commands that read results pay it

        con = duckdb.connect(":memory:")
        if self.lake_filesystem is not None:
            con.register_filesystem(self.lake_filesystem)
        try:
            # SQLite's order: NULL is the smallest value.
            con.execute("SET default_null_order = 'nulls_first_on_asc_last_on_desc'")
            yield con
        except duckdb.Error as exc:
            raise DatabaseError(f"reading the results table failed: {exc}") from exc
        finally:
            con.close()

    @contextlib.contextmanager
    def _lake(self) -> Iterator[Any]:
        """A DuckDB connection with the views ``emissions`` (the current results: the
        table's current data files) and ``emissions_history`` (earlier results: rows of
        files no longer current that no current file holds, with when and by which root
        they were replaced, and who deleted them)."""
        files = self._query(
            "SELECT file_path, state, removed_at, removed_by_root FROM lake_files "
            "WHERE table_name = ? AND state IN ('current', 'removed')",
            (RESULTS_TABLE,),
        )
        # A registered local file that is gone is left out (lineage verify names it):
        # one missing file must not make every read fail.
        current = [local_file(row[0]) for row in files if row[1] == "current" and _present(row[0])]
        removed = [row for row in files if row[1] == "removed" and _present(row[0])]
        with self._duckdb() as con:
            con.execute(f"CREATE VIEW emissions AS {_read_files(current)}")
            con.execute(
                "CREATE TABLE lake_removed (path VARCHAR, removed_at VARCHAR, "
                "removed_by_root VARCHAR)"
            )
            if removed:
                con.executemany(
                    "INSERT INTO lake_removed VALUES (?, ?, ?)",
                    [(local_file(row[0]), row[2], row[3]) for row in removed],
                )
            con.execute(
                "CREATE TABLE emission_deletions (activity_event_id VARCHAR, calculated_at "
                "VARCHAR, deleted_at VARCHAR, deleted_by VARCHAR, deletion_reason VARCHAR, "
                "deletion_node_id VARCHAR)"
            )
            deletions = self._query(
                "SELECT activity_event_id, calculated_at, deleted_at, deleted_by, "
                "deletion_reason, deletion_node_id FROM emission_deletions"
            )
            if deletions:
                con.executemany(
                    "INSERT INTO emission_deletions VALUES (?, ?, ?, ?, ?, ?)",
                    [tuple(row) for row in deletions],
                )
            past = _read_files([local_file(row[0]) for row in removed], filename=True)
            con.execute(
                "CREATE VIEW emissions_history AS SELECT h.* EXCLUDE (rn, filename) REPLACE ("
                "coalesce(d.deleted_at, h.superseded_at) AS superseded_at), "
                "d.deleted_by, d.deletion_reason, d.deletion_node_id FROM ("
                "SELECT p.*, r.removed_at AS superseded_at, r.removed_by_root AS "
                "superseded_by_root, row_number() OVER (PARTITION BY p.activity_event_id, "
                "p.calculated_at, p.execution_id ORDER BY r.removed_at DESC) AS rn "
                f"FROM ({past}) p JOIN lake_removed r ON p.filename = r.path) h "
                "LEFT JOIN emission_deletions d ON d.activity_event_id = h.activity_event_id "
                "AND d.calculated_at = h.calculated_at WHERE h.rn = 1 AND NOT EXISTS ("
                "SELECT 1 FROM emissions c WHERE c.activity_event_id = h.activity_event_id "
                "AND c.calculated_at = h.calculated_at "
                "AND c.execution_id IS NOT DISTINCT FROM h.execution_id)"
            )
            yield con

    def _lake_query(self, sql: str, params: Sequence[Any] = ()) -> list[_Row]:
        with self._lake() as con:
            cursor = con.execute(sql, list(params))
            return _rows_of(cursor, cursor.fetchall())

    def _lake_stream(
        self, sql: str, params: Sequence[Any] = (), size: int = 5_000
    ) -> Iterator[tuple[Any, ...]]:
        with self._lake() as con:
            cursor = con.execute(sql, list(params))
            while rows := cursor.fetchmany(size):
                yield from rows

    def _lake_query_in(
        self,
        sql: str,
        values: Sequence[Any],
        before: Sequence[Any] = (),
        after: Sequence[Any] = (),
    ) -> list[_Row]:
        """Rows of a lake query whose ``{marks}`` is an ``IN`` list of ``values`` (one list
        parameter; ``before`` and ``after`` are the parameters around it)."""
        if not values:
            return []
        return self._lake_query(
            sql.format(marks="SELECT unnest(?::VARCHAR[])"), (*before, list(values), *after)
        )

    def lake_metadata_location(self, namespace: str, table_name: str) -> str | None:
        """Where the catalog says a lake table's current metadata file is (None: no
        such table yet)."""
        try:
            rows = (
                self._connection()
                .execute(
                    "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = ? "
                    "AND table_name = ?",
                    (namespace, table_name),
                )
                .fetchall()
            )
        except sqlite3.Error:  # the catalog's tables do not exist yet
            return None
        return str(rows[0][0]) if rows and rows[0][0] else None

    def lake_relocate(self, table_name: str, moved: dict[str, str]) -> None:
        """Rename registered files (old URL -> new URL) of a moved workspace."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE lake_files SET file_path = ? WHERE table_name = ? AND file_path = ?",
                [(new, table_name, old) for old, new in moved.items() if new != old],
            )

    def has_legacy_results(self) -> bool:
        """Whether results are still in the database tables of before the lake."""
        rows = self._query(
            "SELECT 1 FROM emissions UNION ALL SELECT 1 FROM emissions_history LIMIT 1"
        )
        return bool(rows)

    def legacy_results(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The results of before the lake: the current rows (EMISSION_COLUMNS) and the
        earlier ones (EMISSION_COLUMNS, superseded_at, superseded_by_root)."""
        columns = ", ".join(EMISSION_COLUMNS)
        current = self._query(f"SELECT {columns} FROM emissions ORDER BY activity_event_id")
        history = self._query(
            f"SELECT {columns}, superseded_at, superseded_by_root FROM emissions_history "
            "ORDER BY superseded_at"
        )
        return [tuple(row) for row in current], [tuple(row) for row in history]

    def adopt_legacy_results(
        self, files: Sequence[LakeFile], earlier: Sequence[tuple[LakeFile, str, str | None]]
    ) -> None:
        """In one transaction: register the data files written from the tables of before
        the lake (``files`` pending their commit, ``earlier`` as files of earlier results,
        with when and by which root they were replaced), keep their deletions as
        tombstones, and empty those tables."""
        now = utc_now()
        with self.transaction() as conn:
            self._register_lake_files(conn, files)
            conn.executemany(
                "INSERT INTO lake_files (table_name, file_path, root_id, execution_id, "
                "record_count, sha256, state, registered_at, removed_at, removed_by_root) "
                "VALUES (?, ?, ?, ?, ?, ?, 'removed', ?, ?, ?)",
                [
                    (
                        f.table_name,
                        f.file_path,
                        f.root_id,
                        f.execution_id,
                        f.record_count,
                        f.sha256,
                        now,
                        at,
                        by,
                    )
                    for f, at, by in earlier
                ],
            )
            conn.execute(
                "INSERT INTO emission_deletions (activity_event_id, root_id, calculated_at, "
                "deleted_at, deleted_by, deletion_reason, deletion_node_id) "
                "SELECT activity_event_id, root_id, calculated_at, superseded_at, deleted_by, "
                "coalesce(deletion_reason, ''), deletion_node_id FROM emissions_history "
                "WHERE deletion_node_id IS NOT NULL"
            )
            conn.execute("DELETE FROM emissions")
            conn.execute("DELETE FROM emissions_history")

    # -- emissions ------------------------------------------------------------

    @staticmethod
    def _insert_failure_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        columns = ", ".join(FAILURE_COLUMNS)
        marks = ", ".join("?" for _ in FAILURE_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in FAILURE_COLUMNS[1:])
        conn.executemany(
            f"INSERT INTO calculation_failures ({columns}) VALUES ({marks}) "
            f"ON CONFLICT (failure_key) DO UPDATE SET {updates}",
            rows,
        )

    def record_failures(self, rows: Sequence[Sequence[Any]]) -> None:
        """Store records that could not be calculated (FAILURE_COLUMNS order)."""
        if rows:
            with self.transaction() as conn:
                self._insert_failure_rows(conn, rows)

    def replaced_count(self, where: EmissionFilter) -> int:
        """How many current results matching ``where`` replaced an earlier result of the
        same activity_event_id that came from another input file (another root)."""
        if not self._has_removed_results():
            return 0
        condition, params = where.where()
        joiner = " AND " if condition else " WHERE "
        rows = self._lake_query(
            f"SELECT count(*) FROM emissions{condition}{joiner}activity_event_id IN ("
            "SELECT activity_event_id FROM emissions_history WHERE superseded_by_root IS NOT "
            "NULL AND root_id IS DISTINCT FROM superseded_by_root)",
            params,
        )
        return int(rows[0][0])

    def _has_removed_results(self) -> bool:
        rows = self._query(
            "SELECT 1 FROM lake_files WHERE table_name = ? AND state = 'removed' LIMIT 1",
            (RESULTS_TABLE,),
        )
        return bool(rows)

    def failure_stats(self, where: EmissionFilter) -> dict[str, Any]:
        """How many records matching ``where`` could not be calculated, by reason code."""
        condition, params = where.where()
        rows = self._query(
            "SELECT reason_code, count(*) AS records FROM calculation_failures"
            f"{condition} GROUP BY reason_code ORDER BY count(*) DESC, reason_code",
            params,
        )
        by_reason = {row["reason_code"]: row["records"] for row in rows}
        return {"records_failed": sum(by_reason.values()), "failed_by_reason": by_reason}

    def commit_results(
        self,
        files: Sequence[LakeFile],
        record_ids: Sequence[str],
        lineage_rows: Sequence[Sequence[Any]],
    ) -> None:
        """Register results files (pending their table commit) and add their lineage nodes
        in one transaction."""
        try:
            with self.transaction() as conn:
                self._register_lake_files(conn, files)
                self._clear_failures(conn, record_ids)
                if lineage_rows:
                    self._insert_lineage_rows(conn, lineage_rows)
        except sqlite3.IntegrityError as exc:
            raise LineageError(f"a lineage node already exists: {exc}") from exc

    def lineage_nodes(self, root_id: str, node_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Several nodes of one root, by node id (in no particular order)."""
        rows = self._query_in(
            f"SELECT {', '.join(LINEAGE_COLUMNS)} FROM lineage "
            "WHERE root_id = ? AND node_id IN ({marks})",
            node_ids,
            before=(root_id,),
        )
        return [dict(row) for row in rows]

    def commit_batches(
        self,
        execution_id: str,
        states: Sequence[tuple[str, dict[str, Any]]],
        lineage_rows: Sequence[Sequence[Any]],
        files: Sequence[LakeFile],
        record_ids: Sequence[str],
        failure_rows: Sequence[Sequence[Any]] = (),
    ) -> None:
        """Checkpoint map iterations: the registration of their results files (committed to
        the results table after the map), failures, lineage and outputs in one
        transaction."""
        now = utc_now()
        try:
            with self.transaction() as conn:
                if files:
                    self._register_lake_files(conn, files)
                if record_ids:
                    self._clear_failures(conn, record_ids)
                if failure_rows:
                    self._insert_failure_rows(conn, failure_rows)
                if lineage_rows:
                    self._insert_lineage_rows(conn, lineage_rows)
                conn.executemany(
                    "INSERT INTO execution_states "
                    "(execution_id, state, output_json, completed_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (execution_id, state) DO UPDATE SET "
                    "output_json = excluded.output_json, completed_at = excluded.completed_at",
                    [(execution_id, state, json.dumps(output), now) for state, output in states],
                )
                conn.executemany(
                    "INSERT INTO execution_events "
                    "(execution_id, event_type, state, details_json, at) "
                    "VALUES (?, 'MapIterationSucceeded', ?, ?, ?)",
                    [
                        (execution_id, state, json.dumps({"output": _brief(output)}), now)
                        for state, output in states
                    ],
                )
        except sqlite3.IntegrityError as exc:
            raise LineageError(
                f"execution {execution_id}: a lineage node already exists ({exc}). Record ids "
                "(activity_event_id) must be unique within a file."
            ) from exc

    def record_deletion(
        self,
        activity_event_id: str,
        root_id: str,
        calculated_at: str,
        *,
        deleted_at: str,
        deleted_by: str,
        reason: str,
        lineage_rows: Sequence[Sequence[Any]],
    ) -> None:
        """Keep who deleted a record's result (calculated at ``calculated_at``), when and
        why, with its ``RECORD_DELETED`` node, in one transaction (the result itself left
        the results table by an Iceberg delete: lake.delete_result)."""
        node_id = lineage_rows[0][1] if lineage_rows else None
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO emission_deletions (activity_event_id, root_id, calculated_at, "
                    "deleted_at, deleted_by, deletion_reason, deletion_node_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        activity_event_id,
                        root_id,
                        calculated_at,
                        deleted_at,
                        deleted_by,
                        reason,
                        node_id,
                    ),
                )
                self._insert_lineage_rows(conn, lineage_rows)
        except sqlite3.IntegrityError as exc:
            raise LineageError(
                f"cannot record the deletion of {activity_event_id!r}: {exc}"
            ) from exc

    def deletions(self, root_id: str | None = None) -> list[tuple[str, str, str]]:
        """``(activity_event_id, root_id, deletion_node_id)`` of every deleted result (of one
        root, or of all), oldest first."""
        sql = "SELECT activity_event_id, root_id, deletion_node_id FROM emission_deletions"
        params: tuple[Any, ...] = ()
        if root_id is not None:
            sql += " WHERE root_id = ?"
            params = (root_id,)
        rows = self._query(sql + " ORDER BY deleted_at", params)
        return [(row[0], row[1], row[2]) for row in rows]

    def emission_history(self, activity_event_id: str) -> list[dict[str, Any]]:
        """Earlier results of one record, oldest first (the current one is in emissions)."""
        if not self._has_removed_results():
            return []
        rows = self._lake_query(
            "SELECT * FROM emissions_history WHERE activity_event_id = ? ORDER BY superseded_at",
            (activity_event_id,),
        )
        return [dict(row) for row in rows]

    def emissions_of_root(self, root_id: str | None) -> list[dict[str, Any]]:
        """Current results, of one root or of all."""
        if root_id is None:
            rows = self._lake_query("SELECT * FROM emissions ORDER BY activity_event_id")
        else:
            rows = self._lake_query(
                "SELECT * FROM emissions WHERE root_id = ? ORDER BY activity_event_id", (root_id,)
            )
        return [dict(row) for row in rows]

    def replaced_from_other_roots(self, root_id: str) -> list[dict[str, Any]]:
        """Results of other roots that this root's records replaced (same
        activity_event_id): ``[{"root_id", "records"}]``, most first."""
        if not self._has_removed_results():
            return []
        rows = self._lake_query(
            "SELECT root_id, count(DISTINCT activity_event_id) AS records FROM emissions_history "
            "WHERE superseded_by_root = ? AND root_id IS DISTINCT FROM ? GROUP BY root_id "
            "ORDER BY records DESC, root_id",
            (root_id, root_id),
        )
        return [{"root_id": r[0], "records": int(r[1])} for r in rows]

    def first_storage_root(self, current: str) -> str:
        """The storage root URL the workspace's locations were first written under; records
        ``current`` as that root when none is recorded yet."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO workspace_meta (key, value) VALUES ('storage_root', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (current,),
            )
        rows = self._query("SELECT value FROM workspace_meta WHERE key = 'storage_root'")
        return str(rows[0][0])

    def emission_roots(self) -> list[str]:
        """The roots that have current results."""
        return [str(r[0]) for r in self._lake_query("SELECT DISTINCT root_id FROM emissions")]

    def iter_emission_check_rows(self, root_id: str) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """A root's current results grouped by enriched file, one file at a time:
        ``(enriched_location, [(activity_event_id, *RESULT_NUMBER_COLUMNS)])``,
        for lineage verify (streamed: memory holds one file's results)."""
        sql = (
            f"SELECT enriched_location, activity_event_id, {', '.join(RESULT_NUMBER_COLUMNS)} "
            "FROM emissions WHERE root_id = ? ORDER BY enriched_location"
        )
        location: str | None = None
        group: list[tuple[Any, ...]] = []
        for row in self._lake_stream(sql, (root_id,), 20_000):
            if row[0] != location:
                if location is not None:
                    yield location, group
                location, group = row[0], []
            group.append(tuple(row[1:]))
        if location is not None:
            yield location, group

    def current_locations(self, activity_event_ids: Sequence[str]) -> dict[str, str]:
        """The enriched file of each given record's current result (records without one
        are left out)."""
        found: dict[str, str] = {}
        for row in self._lake_query_in(
            "SELECT activity_event_id, enriched_location FROM emissions "
            "WHERE activity_event_id IN ({marks})",
            activity_event_ids,
        ):
            found[str(row[0])] = str(row[1])
        return found

    def deleted_record_ids(self) -> set[str]:
        """Records whose results an admin deleted (tombstones)."""
        return {record_id for record_id, _root, _node in self.deletions()}

    def enriched_locations(self) -> list[tuple[str, int]]:
        """Each enriched file that holds current results, with its record count."""
        rows = self._lake_query(
            "SELECT enriched_location, count(*) FROM emissions "
            "GROUP BY enriched_location ORDER BY min(calculated_at), enriched_location"
        )
        return [(row[0], row[1]) for row in rows]

    def current_ids_at(self, enriched_location: str, record_ids: Sequence[str]) -> list[str]:
        """Those of ``record_ids`` whose current result lives in an enriched file (primary
        key lookups: no index on the location is kept, it cost a tenth of every insert)."""
        rows = self._lake_query_in(
            "SELECT activity_event_id FROM emissions WHERE activity_event_id IN ({marks}) "
            "AND enriched_location = ?",
            record_ids,
            after=(enriched_location,),
        )
        return [row[0] for row in rows]

    def emission(self, activity_event_id: str) -> dict[str, Any] | None:
        """One record's current emissions row, or None."""
        rows = self._lake_query(
            "SELECT * FROM emissions WHERE activity_event_id = ?", (activity_event_id,)
        )
        return dict(rows[0]) if rows else None

    def emissions_count(self, root_id: str | None = None) -> int:
        """How many records have current results (optionally of one root)."""
        # The registry knows each current file's record count: no file is read.
        sql = "SELECT coalesce(sum(record_count), 0) FROM lake_files WHERE table_name = ? "
        sql += "AND state = 'current'"
        params: tuple[Any, ...] = (RESULTS_TABLE,)
        if root_id is not None:
            sql += " AND root_id = ?"
            params += (root_id,)
        return int(self._query(sql, params)[0][0])

    def emission_totals(self, root_id: str, by: str) -> list[dict[str, Any]]:
        """Record counts and tonnes of one root, grouped by a record column; every
        quantity per scope 2 method (never the two added)."""
        if by not in ("activity", "category", "scope", "asset_id"):
            raise DatabaseError(f"cannot group emissions by {by!r}")
        rows = self._lake_query(
            f"SELECT {by} AS key, {_totals_sql()} FROM emissions WHERE root_id = ? "
            f"GROUP BY {by} ORDER BY {_by_method('co2e_ar4_tonnes', 'location_based')} DESC, "
            f"{_by_method('co2e_ar4_tonnes', 'market_based')} DESC, key",
            (root_id,),
        )
        return [{by: row["key"], **_totals_of(row)} for row in rows]

    def find_emissions(
        self,
        where: EmissionFilter,
        *,
        sort: str = "activity_event_id",
        descending: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of current results matching ``where``, sorted by one of
        EMISSION_SORT_COLUMNS (then by record id)."""
        return [
            dict(zip(EMISSION_COLUMNS, row, strict=True))
            for row in self.iter_emissions(
                where, sort=sort, descending=descending, limit=limit, offset=offset
            )
        ]

    def iter_emissions(
        self,
        where: EmissionFilter,
        *,
        sort: str = "activity_event_id",
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[tuple[Any, ...]]:
        """Current results matching ``where`` as tuples in EMISSION_COLUMNS order, streamed."""
        if sort not in EMISSION_SORT_COLUMNS:
            raise DatabaseError(
                f"cannot sort emissions by {sort!r}; "
                f"choose one of {', '.join(EMISSION_SORT_COLUMNS)}"
            )
        condition, params = where.where()
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {', '.join(EMISSION_COLUMNS)} FROM emissions{condition} "
            f"ORDER BY {sort} {direction}, activity_event_id {direction} LIMIT ? OFFSET ?"
        )
        params += [2**62 if limit is None else limit, offset]
        yield from self._lake_stream(sql, params)

    def emission_stats(self, where: EmissionFilter) -> dict[str, Any]:
        """Record count and tonnes (CO2, CH4, N2O, CO2e AR4/AR5/AR6, each per scope 2
        method; biogenic CO2) of the results matching ``where``, and how many matching
        records could not be calculated."""
        condition, params = where.where()
        row = self._lake_query(f"SELECT {_totals_sql()} FROM emissions{condition}", params)[0]
        return {**_totals_of(row), **self.failure_stats(where)}

    def emissions_by(self, by: str, where: EmissionFilter) -> list[dict[str, Any]]:
        """Record counts and tonnes of the results matching ``where``, grouped by one of
        EMISSION_GROUPS (each quantity per scope 2 method), largest location-based AR5
        total first."""
        if by not in EMISSION_GROUPS:
            raise DatabaseError(
                f"cannot group emissions by {by!r}; choose one of {', '.join(EMISSION_GROUPS)}"
            )
        condition, params = where.where()
        expression = EMISSION_GROUPS[by]
        order = (
            "key"
            if by == "month"
            else f"{_by_method('co2e_ar5_tonnes', 'location_based')} DESC, key"
        )
        rows = self._lake_query(
            f"SELECT {expression} AS key, {_totals_sql()} "
            f"FROM emissions{condition} GROUP BY key ORDER BY {order}",
            params,
        )
        return [{"key": row["key"], **_totals_of(row)} for row in rows]

    def inventory_rows(
        self,
        where: EmissionFilter,
        gwp: str,
        by: str | None = None,
        factor_set: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Tonnes of the results matching ``where`` per inventory bucket
        (INVENTORY_BUCKET), scope 3 category and, with ``by``, INVENTORY_GROUPS key.

        ``factor_set`` (name, version) reads, instead of the current results, each
        current record's result with that factor set: the current one if it is, else
        the latest it replaced (the result history): the inventory as it was.
        """
        if gwp not in ("ar4", "ar5", "ar6"):
            raise DatabaseError(f"unknown GWP set {gwp!r}")
        if by is not None and by not in INVENTORY_GROUPS:
            raise DatabaseError(f"cannot break an inventory down by {by!r}")
        condition, params = where.where()
        source, source_params = "emissions", []
        if factor_set is not None:
            columns = ", ".join(EMISSION_COLUMNS)
            name, version = factor_set
            source = (
                f"(SELECT {columns} FROM emissions WHERE factor_set = ? AND factor_version = ? "
                f"UNION ALL SELECT {columns} FROM emissions_history h "
                "WHERE h.factor_set = ? AND h.factor_version = ? "
                "AND h.activity_event_id IN (SELECT activity_event_id FROM emissions) "
                "AND h.activity_event_id NOT IN (SELECT activity_event_id FROM emissions "
                "WHERE factor_set = ? AND factor_version = ?) "
                "AND h.superseded_at = (SELECT max(h2.superseded_at) FROM emissions_history h2 "
                "WHERE h2.activity_event_id = h.activity_event_id AND h2.factor_set = ? "
                "AND h2.factor_version = ?)) AS chosen"
            )
            source_params = [name, version] * 4
        key = INVENTORY_GROUPS[by] if by else "NULL"
        rows = self._lake_query(
            f"SELECT {INVENTORY_BUCKET} AS bucket, scope3_category, {key} AS key, "
            "count(*) AS records, coalesce(fsum(co2_tonnes), 0) AS co2, "
            "coalesce(fsum(ch4_tonnes), 0) AS ch4, coalesce(fsum(n2o_tonnes), 0) AS n2o, "
            f"coalesce(fsum(co2e_{gwp}_tonnes), 0) AS co2e, "
            "coalesce(fsum(biogenic_co2_tonnes), 0) AS biogenic "
            f"FROM {source}{condition} GROUP BY bucket, scope3_category, key "
            "ORDER BY key, bucket, scope3_category",
            [*source_params, *params],
        )
        return [dict(row) for row in rows]

    def inventory_methodology(self, where: EmissionFilter) -> dict[str, Any]:
        """The factor sets, methane bases and AR6 methane GWPs of the results matching
        ``where``, with record counts."""
        condition, params = where.where()
        sets = self._lake_query(
            f"SELECT factor_set, factor_version, count(*) AS records FROM emissions{condition} "
            "GROUP BY factor_set, factor_version ORDER BY factor_set, factor_version",
            params,
        )
        bases = self._lake_query(
            "SELECT coalesce(ch4_basis, 'not recorded') AS basis, ar6_ch4_gwp, "
            f"count(*) AS records FROM emissions{condition} GROUP BY basis, ar6_ch4_gwp "
            "ORDER BY basis",
            params,
        )
        return {
            "factor_sets": [dict(row) for row in sets],
            "ch4_bases": [dict(row) for row in bases],
        }

    def emission_values(self, column: str, limit: int = 1000) -> list[Any]:
        """The distinct values of one filterable column (scope, category, activity,
        asset_id), sorted; for choosing a filter."""
        if column not in ("scope", "category", "activity", "asset_id"):
            raise DatabaseError(f"cannot list values of emissions column {column!r}")
        rows = self._lake_query(
            f"SELECT DISTINCT {column} FROM emissions WHERE {column} IS NOT NULL "
            f"ORDER BY {column} LIMIT ?",
            (limit,),
        )
        return [row[0] for row in rows]

    # -- data-quality resources -----------------------------------------------

    def insert_dq_resources(self, resources: Iterable[tuple[str, str, str, str, str]]) -> None:
        """Record (name, kind, arn, root_id, details_json) DataBrew-like resources."""
        now = utc_now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO dq_resources "
                "(name, kind, arn, root_id, details_json, created_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, arn = excluded.arn, "
                "root_id = excluded.root_id, details_json = excluded.details_json, "
                "created_at = excluded.created_at",
                [(*resource, now) for resource in resources],
            )

    def dq_resource(self, name: str) -> dict[str, Any] | None:
        """One data-quality resource with its details, or None."""
        rows = self._query("SELECT * FROM dq_resources WHERE name = ?", (name,))
        if not rows:
            return None
        row = dict(rows[0])
        row["details"] = json.loads(row.pop("details_json"))
        return row

    def delete_dq_resources(self, names: Iterable[str]) -> int:
        """Delete data-quality resources by name; returns how many existed."""
        with self.transaction() as conn:
            cursor = conn.executemany(
                "DELETE FROM dq_resources WHERE name = ?", [(n,) for n in names]
            )
            return cursor.rowcount

    # -- notifications --------------------------------------------------------

    def record_notification(
        self,
        root_id: str | None,
        channel: str,
        subject: str,
        message: str,
        delivered: bool,
        error: str | None,
    ) -> None:
        """Record that a notification was sent (or could not be)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO notifications "
                "(root_id, channel, subject, message, delivered, error, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (root_id, channel, subject, message, int(delivered), error, utc_now()),
            )

    def notifications(self, root_id: str | None = None) -> list[dict[str, Any]]:
        """Recorded notifications, oldest first."""
        if root_id is None:
            rows = self._query("SELECT * FROM notifications ORDER BY notification_id")
        else:
            rows = self._query(
                "SELECT * FROM notifications WHERE root_id = ? ORDER BY notification_id",
                (root_id,),
            )
        return [dict(row) for row in rows]

    # -- factor library ---------------------------------------------------------

    def insert_factor_set(
        self,
        name: str,
        version: str,
        fmt: str,
        origin: str,
        rows: Sequence[Sequence[Any]],
    ) -> bool:
        """Store a factor set version; False if that exact version already exists."""
        with self.transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM factor_sets WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if exists:
                return False
            conn.execute(
                "INSERT INTO factor_sets (name, version, format, origin, factor_count, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, version, fmt, origin, len(rows), utc_now()),
            )
            marks = ", ".join("?" for _ in FACTOR_ROW_COLUMNS)
            conn.executemany(
                f"INSERT INTO factors (name, version, {', '.join(FACTOR_ROW_COLUMNS)}) "
                f"VALUES (?, ?, {marks})",
                [(name, version, *row) for row in rows],
            )
        return True

    def factor_sets(self) -> list[dict[str, Any]]:
        """Every imported factor set version, newest first."""
        rows = self._query("SELECT * FROM factor_sets ORDER BY created_at DESC, name")
        return [dict(row) for row in rows]

    def find_factor_set(
        self, name: str, version: str | None
    ) -> tuple[str, str, list[tuple[Any, ...]]] | None:
        """(name, version, factor rows) of a stored set: by name (newest), name and version,
        or a bare version given as ``name``."""
        if version:
            sets = self._query(
                "SELECT name, version FROM factor_sets WHERE name = ? AND version = ?",
                (name, version),
            )
        else:
            sets = self._query(
                "SELECT name, version FROM factor_sets WHERE name = ? OR version = ? "
                "ORDER BY created_at DESC LIMIT 1",
                (name, name),
            )
        if not sets:
            return None
        found_name, found_version = sets[0]["name"], sets[0]["version"]
        rows = self._query(
            f"SELECT {', '.join(FACTOR_ROW_COLUMNS)} "
            "FROM factors WHERE name = ? AND version = ? ORDER BY category, activity",
            (found_name, found_version),
        )
        return found_name, found_version, [tuple(row) for row in rows]

    def factor_set_scope2_methods(self, name: str, version: str) -> dict[str, str | None]:
        """Each scope 2 category of a stored set and its method (None: not said)."""
        rows = self._query(
            "SELECT DISTINCT category, scope2_method FROM factors "
            "WHERE name = ? AND version = ? AND scope = 2 ORDER BY category",
            (name, version),
        )
        return {row[0]: row[1] for row in rows}
