"""The numbered migrations that made the schema before Alembic, as the earlier
migrator ran them (SQLite): each script split on ``;``, its version recorded in
``schema_migrations``. Copied verbatim from ``carbonlake/database.py`` before the
move to Alembic, so that tests can build the databases existing workspaces have."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

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
    # the records Merkle roots of enriched files (lineage proofs, issue 16)
    """
    CREATE TABLE proof_records_roots (
        storage_location TEXT NOT NULL,
        object_sha256 TEXT NOT NULL,
        record_count INTEGER NOT NULL,
        records_root TEXT NOT NULL,
        computed_at TEXT NOT NULL,
        PRIMARY KEY (storage_location, object_sha256)
    )
    """,
)


def build_legacy(path: Path, upto: int = len(MIGRATIONS)) -> None:
    """A SQLite database made by the earlier migrator, migrated up to version ``upto``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA page_size = 65536")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER)")
        conn.execute("BEGIN IMMEDIATE")
        for version, script in enumerate(MIGRATIONS[:upto], start=1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
        conn.execute("COMMIT")
    finally:
        conn.close()


_POSTGRES_DDL = (
    (
        re.compile(r"INTEGER PRIMARY KEY AUTOINCREMENT"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bWHERE 0\b"), "WHERE false"),
)
"""How the earlier PostgreSQL shim spelled those statements' DDL for PostgreSQL."""


def _as_postgres(statement: str) -> str:
    text = statement.strip()
    if text[:20].upper().startswith(("CREATE TABLE", "ALTER TABLE")):
        for pattern, replacement in _POSTGRES_DDL:
            text = pattern.sub(replacement, text)
    return text


def build_legacy_postgres(url: str, upto: int = len(MIGRATIONS)) -> None:
    """A PostgreSQL database made by the earlier migrator (through its shim), migrated
    up to version ``upto``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_as_postgres("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER)"))
        with conn.transaction():
            for version, script in enumerate(MIGRATIONS[:upto], start=1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(_as_postgres(statement))
                conn.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
