"""The schema's Alembic revisions: a new database, and a workspace the numbered migrations
made before Alembic (built here with those very statements) opening without losing data."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from carbonlake import Pipeline
from carbonlake.database import EMISSION_COLUMNS, LINEAGE_COLUMNS, Database, EmissionFilter
from carbonlake.db.migrate import HEAD, SCRIPTS
from carbonlake.executions import Context
from carbonlake.settings import load_settings

from .conftest import activity_row
from .legacy_migrations import MIGRATIONS, build_legacy, build_legacy_postgres

ALEMBIC_ONLY_TABLES = ("lake_files", "emission_deletions")
"""Tables of the revisions after the numbered migrations (0012, 0013: the data lake)."""
ALEMBIC_ONLY_REVISIONS = 4
"""Revisions after the numbered migrations (0012, 0013: the two tables; 0014, 0015: columns)."""


def schema(url: str) -> dict[str, Any]:
    """Each table's columns (name, nullable, part of the primary key), unique constraints
    and indexes, as SQLAlchemy's inspector reads them (the bookkeeping tables left out)."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found: dict[str, Any] = {}
        for name in inspector.get_table_names():
            if name in ("alembic_version", "schema_migrations"):
                continue
            pk = set(inspector.get_pk_constraint(name)["constrained_columns"])
            found[name] = {
                "columns": [
                    (c["name"], bool(c["nullable"]) and c["name"] not in pk, c["name"] in pk)
                    for c in inspector.get_columns(name)
                ],
                "unique": sorted(
                    tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]))
                    for i in inspector.get_indexes(name)
                    # (PostgreSQL lists a unique constraint's index too)
                    if not i.get("duplicates_constraint")
                ),
            }
        return found
    finally:
        engine.dispose()


def revision_of(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_the_revisions_are_the_numbered_migrations_in_order() -> None:
    scripts = ScriptDirectory(str(SCRIPTS))
    assert scripts.get_current_head() == HEAD
    chain = [s.revision for s in scripts.walk_revisions("base", "heads")][::-1]
    # The numbered migrations first, in order; the revisions after them are Alembic's only.
    assert chain[: len(MIGRATIONS)] == [f"{n:04d}" for n in range(1, len(MIGRATIONS) + 1)]
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    assert len(chain) == len(MIGRATIONS) + ALEMBIC_ONLY_REVISIONS


def test_a_new_database_has_the_schema_the_numbered_migrations_made(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.db"
    build_legacy(legacy)
    Database(f"sqlite:///{tmp_path / 'new.db'}").close()
    assert revision_of(tmp_path / "new.db") == HEAD
    new = schema(f"sqlite:///{tmp_path / 'new.db'}")
    # The numbered migrations' tables, and those of the revisions after them.
    assert set(new) - set(schema(f"sqlite:///{legacy}")) == set(ALEMBIC_ONLY_TABLES)
    assert {k: v for k, v in new.items() if k not in ALEMBIC_ONLY_TABLES} == schema(
        f"sqlite:///{legacy}"
    )


def test_a_fully_migrated_legacy_database_is_stamped_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "carbonlake.db"
    build_legacy(path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO executions (execution_id, name, root_id, status, input_json, "
            "started_at) VALUES ('e1', 'n1', 'r1', 'SUCCEEDED', '{\"a\": 1}', '2026-01-01')"
        )
        for seq, node in ((7, "f1"), (8, "rec1")):
            conn.execute(
                "INSERT INTO lineage (seq, root_id, node_id, parent_id, action_taken, "
                "recorded_at, node_hash) VALUES (?, 'r1', ?, 'r1', 'RECORD', 't', 'h')",
                (seq, node),
            )
        conn.execute(
            "INSERT INTO notifications (notification_id, root_id, channel, subject, message, "
            "delivered, created_at) VALUES (41, 'r1', 'log', 's', 'm', 1, 't')"
        )
        conn.execute("INSERT INTO workspace_meta VALUES ('storage_root', 'file:///old')")
    database = Database(f"sqlite:///{path}")
    try:
        assert revision_of(path) == HEAD
        execution = database.get_execution("e1")
        assert execution is not None and execution["input"] == {"a": 1}
        assert [n["node_id"] for n in database.lineage_of_root("r1")] == ["f1", "rec1"]
        assert database.first_storage_root("file:///new") == "file:///old"
        # Keys go on from the stored ones (AUTOINCREMENT kept).
        database.insert_lineage([("r1", "rec2", "r1", "RECORD", None, "t", None, 2, "h", "h")])
        seqs = [row[0] for row in database.iter_lineage("r1")]
        assert seqs[:2] == [7, 8] and seqs[2] > 8
        database.record_notification("r1", "log", "s2", "m2", True, None)
        assert [n["notification_id"] for n in database.notifications("r1")][-1] > 41
    finally:
        database.close()
    assert schema(f"sqlite:///{path}") == schema(f"sqlite:///{_fresh(tmp_path)}")
    # The earlier bookkeeping is left as it was.
    with sqlite3.connect(path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_a_partly_migrated_legacy_database_is_upgraded_from_its_version(tmp_path: Path) -> None:
    path = tmp_path / "carbonlake.db"
    build_legacy(path, upto=2)
    with sqlite3.connect(path) as conn:
        # The ledger before verifiable lineage (migration 3 rebuilds the table).
        conn.executemany(
            "INSERT INTO lineage (seq, root_id, node_id, parent_id, action_taken, "
            "storage_location, recorded_at) VALUES (?, 'r1', ?, ?, ?, ?, ?)",
            [
                (1, "r1", "r1", "FILE_LANDED", "landing/a.csv", "t1"),
                (2, "b1", "r1", "BATCHED", "batches/b1.csv", "t2"),
                (3, "rec1", "b1", "CALCULATED", None, "t3"),
            ],
        )
        conn.execute(
            "INSERT INTO emissions (activity_event_id, root_id, co2_tonnes, ch4_tonnes, "
            "n2o_tonnes, co2e_ar4_tonnes, co2e_ar5_tonnes, factor_id, factor_set, "
            "factor_version, ar4_kgco2e_per_unit, ar5_kgco2e_per_unit, enriched_location, "
            "calculated_at, co2e_ar6_tonnes) VALUES ('rec1', 'r1', 0.5, 0.25, 0.125, 1.5, 1.25, "
            "'f', 'ghgp', '2022', 2.5, 2.25, 'enriched/b1.parquet', 't3', 1.75)"
        )
    database = Database(f"sqlite:///{path}")
    try:
        assert revision_of(path) == HEAD
        nodes = database.lineage_of_root("r1")
        assert [(n["node_id"], n["parent_id"], n["action_taken"]) for n in nodes] == [
            ("r1", "r1", "FILE_LANDED"),
            ("b1", "r1", "BATCHED"),
            ("rec1", "b1", "CALCULATED"),
        ]
        assert set(nodes[0]) == set(LINEAGE_COLUMNS)
        assert nodes[1]["storage_location"] == "batches/b1.csv" and nodes[2]["node_hash"] is None
        # The result stays in the table of before the lake until a context moves it to
        # the results table (lake.migrate_legacy_results, tests/test_lake.py).
        assert database.has_legacy_results()
        current, history = database.legacy_results()
        assert history == []
        emission = dict(zip(EMISSION_COLUMNS, current[0], strict=True))
        assert len(current) == 1 and emission["activity_event_id"] == "rec1"
        assert (emission["co2_tonnes"], emission["co2e_ar6_tonnes"]) == (0.5, 1.75)
        assert emission["scope2_method"] is None and emission["geo_lat"] is None
    finally:
        database.close()
    assert schema(f"sqlite:///{path}") == schema(f"sqlite:///{_fresh(tmp_path)}")


def _fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.db"
    Database(f"sqlite:///{path}").close()
    return path


def test_the_pipeline_runs_on_a_workspace_of_the_numbered_migrations(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    settings = load_settings(tmp_path / "ws", environ={})
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    build_legacy(path)
    context = Context.open(settings)
    try:
        summary = Pipeline(context).run_file(
            make_csv([activity_row("r1", "10"), activity_row("r2", "20")])
        )
        assert summary["status"] == "SUCCEEDED", summary["error"]
        rows = {r["activity_event_id"]: r for r in context.database.emissions_of_root(None)}
        assert set(rows) == {"r1", "r2"}
        # Twice the activity, twice the CO2 (the same factor).
        assert rows["r2"]["co2_tonnes"] == pytest.approx(2 * rows["r1"]["co2_tonnes"])
    finally:
        context.close()
    assert revision_of(path) == HEAD


def test_postgresql_gets_the_same_tables_and_columns(tmp_path: Path, postgres_url: str) -> None:
    Database(postgres_url).close()
    on_postgres = schema(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    on_sqlite = schema(f"sqlite:///{_fresh(tmp_path)}")
    assert on_postgres == on_sqlite


@pytest.mark.parametrize("upto", [len(MIGRATIONS), 6])
def test_a_postgresql_database_of_the_numbered_migrations_is_upgraded(
    postgres_url: str, upto: int
) -> None:
    import psycopg

    build_legacy_postgres(postgres_url, upto)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO executions (execution_id, name, root_id, status, input_json, "
            "started_at) VALUES ('e1', 'n1', 'r1', 'SUCCEEDED', '{}', '2026-01-01')"
        )
        conn.execute(
            "INSERT INTO lineage (root_id, node_id, parent_id, action_taken, recorded_at) "
            "VALUES ('r1', 'f1', 'r1', 'FILE_LANDED', 't')"
        )
    database = Database(postgres_url)
    try:
        execution = database.get_execution("e1")
        assert execution is not None and execution["status"] == "SUCCEEDED"
        database.insert_lineage([("r1", "rec1", "f1", "RECORD", None, "t", None, 1, "h", "h")])
        assert [n["node_id"] for n in database.lineage_of_root("r1")] == ["f1", "rec1"]
        database.record_failures(
            [("k1", "r1", "e1", "rec2", "rec2", None, 2, "c", "a", None, "x", "u", "R", "r", "t")]
        )
        assert database.failure_stats(EmissionFilter(root_id="r1"))["records_failed"] == 1
    finally:
        database.close()
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert found == (HEAD,)
