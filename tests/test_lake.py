"""The results table as an Apache Iceberg table (issue 16): what other engines read, the
commit protocol under kill -9, time travel, and workspaces from before the lake."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from carbonlake import DatabaseError, Pipeline
from carbonlake.database import EMISSION_COLUMNS
from carbonlake.executions import Context
from carbonlake.settings import load_settings

from .conftest import HEADER, activity_row
from .test_record_delete import ROWS, expected_ar5_tonnes, write_input

ALL_IDS = [row[0] for row in ROWS]


def iceberg_table(workspace: Path, name: str = "emissions") -> Any:
    """A committed lake table (default: the results), opened by pyiceberg from its SQL
    catalog."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        "carbonlake",
        uri=f"sqlite:///{workspace / 'carbonlake.db'}",
        warehouse=(workspace / "lake").as_uri(),
    )
    return catalog.load_table(f"carbonlake.{name}")


def test_polars_reads_the_committed_table_and_gets_the_runs_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # no polars_iceberg plugin
    settings = load_settings(tmp_path / "ws", environ={})
    context = Context.open(settings)
    try:
        summary = Pipeline(context).run_file(write_input(tmp_path / "in" / "fleet.csv"))
    finally:
        context.close()
    assert summary["status"] == "SUCCEEDED", summary["error"]
    table = iceberg_table(settings.workspace)
    total = pl.scan_iceberg(table).select(pl.col("co2e_ar5_tonnes").sum()).collect().item()
    assert total == pytest.approx(float(expected_ar5_tonnes(ALL_IDS)), rel=1e-12)
    assert total == pytest.approx(summary["co2e_tonnes"]["location_based"]["ar5"], rel=1e-12)
    ids = pl.scan_iceberg(table).select("activity_event_id").collect().to_series().to_list()
    assert sorted(ids) == sorted(ALL_IDS)
    # The commit says which execution made it (a resumed execution looks for it).
    properties = table.current_snapshot().summary.additional_properties
    assert properties["carbonlake.execution_id"] == summary["execution_id"]


def test_a_forced_rerun_is_a_new_snapshot_and_the_earlier_results_stay_readable(
    tmp_path: Path,
) -> None:
    settings = load_settings(tmp_path / "ws", environ={})
    source = write_input(tmp_path / "in" / "fleet.csv")
    context = Context.open(settings)
    try:
        first = Pipeline(context).run_file(source)
        first_snapshot = iceberg_table(settings.workspace).current_snapshot().snapshot_id
        second = Pipeline(context).run_file(source, force=True)
        database = context.database
        assert second["status"] == "SUCCEEDED", second["error"]
        assert database.emissions_count() == len(ALL_IDS)
        current = database.emission("d-1")
        assert current is not None and current["execution_id"] == second["execution_id"]
        earlier = database.emission_history("d-1")
        assert [row["execution_id"] for row in earlier] == [first["execution_id"]]
        # The fully superseded file of the first run was dropped, not rewritten.
        removed = database.lake_files("emissions", "removed")
        assert {row["execution_id"] for row in removed} == {first["execution_id"]}
        assert all(row["removed_by_execution"] == second["execution_id"] for row in removed)
    finally:
        context.close()
    table = iceberg_table(settings.workspace)
    now = table.scan().to_arrow()
    assert set(now.column("execution_id").to_pylist()) == {second["execution_id"]}
    assert now.num_rows == len(ALL_IDS)
    # Time travel: the table as the first run left it.
    before = table.scan(snapshot_id=first_snapshot).to_arrow()
    assert set(before.column("execution_id").to_pylist()) == {first["execution_id"]}
    assert sorted(before.column("activity_event_id").to_pylist()) == sorted(ALL_IDS)


KILL_AT = {
    # after the map's checkpoints registered the files, before the Iceberg commit
    "before-commit": "carbonlake.lake.commit",
    # after the results table's commit, before the registry learned of it
    "before-registry": "carbonlake.database.Database.lake_sync",
    # after the results table's commit and registry, before the lineage table's commit
    "before-lineage-commit": "carbonlake.lake._commit#2",
}

KILLER = """
import os, signal, sys
import carbonlake.database, carbonlake.lake
target, _, nth = sys.argv[1].partition("#")
module, _, name = target.rpartition(".")
owner = {"carbonlake.lake": carbonlake.lake,
         "carbonlake.database.Database": carbonlake.database.Database}[module]
real, calls = getattr(owner, name), []
def killer(*args, **kwargs):
    calls.append(1)
    if len(calls) >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(owner, name, killer)
from carbonlake.cli import cli
cli(sys.argv[2:])
"""
"""Runs the command line with a real SIGKILL of itself at the named function's n-th call."""

TABLES = ("emissions", "lineage")


def lake_states(workspace: Path) -> dict[str, dict[str, int]]:
    """How many registered files of each lake table are in each state."""
    with sqlite3.connect(workspace / "carbonlake.db") as conn:
        rows = conn.execute(
            "SELECT table_name, state, count(*) FROM lake_files GROUP BY table_name, state"
        ).fetchall()
    states: dict[str, dict[str, int]] = {}
    for table, state, count in rows:
        states.setdefault(table, {})[state] = count
    return states


@pytest.mark.parametrize("where", list(KILL_AT))
def test_kill_9_around_the_results_commit_then_resume_commits_every_record_once(
    tmp_path: Path, where: str
) -> None:
    ws = tmp_path / "ws"
    source = write_input(tmp_path / "in" / "fleet.csv")
    env = {**os.environ, "CARBONLAKE_PIPELINE__BATCH_SIZE": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, KILL_AT[where], "run", str(source), "--workspace", str(ws)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with sqlite3.connect(ws / "carbonlake.db") as conn:
        (execution_id,) = conn.execute("SELECT execution_id FROM executions").fetchone()
    # The map group's one results file and one record-lineage file, registered; the
    # results are current once their commit is made and the registry synced.
    results_state = "current" if where == "before-lineage-commit" else "pending"
    assert lake_states(ws) == {"emissions": {results_state: 1}, "lineage": {"pending": 1}}

    resume = ["executions", "resume", execution_id, "--workspace", str(ws), "--json"]
    resumed = subprocess.run(
        [sys.executable, "-m", "carbonlake.cli", *resume],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)[0]
    assert summary["status"] == "SUCCEEDED" and summary["records_calculated"] == len(ALL_IDS)
    table = iceberg_table(ws)
    ids = table.scan().to_arrow().column("activity_event_id").to_pylist()
    assert sorted(ids) == sorted(ALL_IDS)  # every record once
    nodes = iceberg_table(ws, "lineage").scan().to_arrow()
    assert sorted(nodes.column("node_id").to_pylist()) == sorted(ALL_IDS)  # one node each
    assert set(nodes.column("action_taken").to_pylist()) == {"CALCULATION_COMPLETE"}
    for name in TABLES:
        commits = [
            s
            for s in iceberg_table(ws, name).snapshots()
            if s.summary.additional_properties.get("carbonlake.execution_id") == execution_id
        ]
        assert len(commits) == 1, name  # the resumed execution did not commit again
    assert lake_states(ws) == {name: {"current": 1} for name in TABLES}
    with sqlite3.connect(ws / "carbonlake.db") as conn:
        files = [
            Path(r[0].removeprefix("file://"))
            for r in conn.execute("SELECT file_path FROM lake_files")
        ]
    on_disk = sorted(
        path
        for name in TABLES
        for path in (ws / "lake" / "carbonlake" / name / "data").rglob("*.parquet")
    )
    assert on_disk == sorted(files)  # no orphan file
    verify = subprocess.run(
        [sys.executable, "-m", "carbonlake.cli", "lineage", "verify", "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_workspace_from_before_the_lake_moves_its_results_on_open(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "ws", environ={})
    context = Context.open(settings)
    try:
        summary = Pipeline(context).run_file(write_input(tmp_path / "in" / "fleet.csv"))
        rows = context.database.emissions_of_root(None)
    finally:
        context.close()
    assert summary["status"] == "SUCCEEDED"
    # The workspace as it was before the lake: results rows in the database, one of them
    # replaced earlier (history) and none in the lake.
    db = settings.workspace / "carbonlake.db"
    columns = ", ".join(EMISSION_COLUMNS)
    marks = ", ".join("?" for _ in EMISSION_COLUMNS)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            f"INSERT INTO emissions ({columns}) VALUES ({marks})",
            [tuple(row[c] for c in EMISSION_COLUMNS) for row in rows],
        )
        old = {**rows[0], "execution_id": "old-run", "calculated_at": "2020-01-01T00:00:00"}
        conn.execute(
            f"INSERT INTO emissions_history ({columns}, superseded_at, superseded_by_root) "
            f"VALUES ({marks}, ?, ?)",
            (*(old[c] for c in EMISSION_COLUMNS), "2020-02-01T00:00:00Z", rows[0]["root_id"]),
        )
        conn.execute("DELETE FROM lake_files")
        conn.execute("DELETE FROM iceberg_tables")
    for path in sorted((settings.workspace / "lake").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()

    context = Context.open(settings)
    try:
        database = context.database
        assert database.emissions_count() == len(rows)
        assert database.emissions_of_root(None) == rows
        earlier = database.emission_history(rows[0]["activity_event_id"])
        assert [row["execution_id"] for row in earlier] == ["old-run"]
        assert earlier[0]["superseded_at"] == "2020-02-01T00:00:00Z"
    finally:
        context.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM emissions").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM emissions_history").fetchone() == (0,)
    total = iceberg_table(settings.workspace).scan().to_arrow().column("co2e_ar5_tonnes")
    assert sum(total.to_pylist()) == pytest.approx(float(expected_ar5_tonnes(ALL_IDS)), rel=1e-12)


def test_kill_9_between_a_deletions_tombstone_and_its_iceberg_delete(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    source = write_input(tmp_path / "in" / "fleet.csv")

    def cli_run(*args: str, killer: str | None = None) -> subprocess.CompletedProcess[str]:
        head = ["-c", KILLER, killer] if killer else ["-m", "carbonlake.cli"]
        return subprocess.run(
            [sys.executable, *head, *args, "--workspace", str(ws)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert cli_run("run", str(source)).returncode == 0
    killed = cli_run(
        "emissions", "delete", "d-4", "--reason", "meter fault",
        killer="carbonlake.lake.delete_result",
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    # The tombstone is committed: every read of carbonlake leaves the result out ...
    shown = cli_run("emissions", "show", "d-4", "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["current"] is None
    assert record["deleted"]["reason"] == "meter fault"
    exported = cli_run("emissions", "export", "--format", "csv")
    ids = [line.split(",")[0] for line in exported.stdout.splitlines()[1:]]
    assert sorted(ids) == sorted(set(ALL_IDS) - {"d-4"})
    # ... but the table's files, which other engines read, still hold it: verify says so.
    still = iceberg_table(ws).scan().to_arrow().column("activity_event_id").to_pylist()
    assert "d-4" in still
    verify = cli_run("lineage", "verify", "--json")
    assert verify.returncode == 1
    problem = json.loads(verify.stdout)["problems"][0]
    assert problem["kind"] == "deletion_unfinished" and problem["node_id"] == "d-4"
    assert "emissions delete d-4" in problem["message"]

    # Deleting it again finishes the Iceberg delete and says so.
    again = cli_run("emissions", "delete", "d-4", "--reason", "meter fault")
    assert again.returncode == 1 and "already deleted" in again.stderr
    assert "is done now" in again.stderr
    left = iceberg_table(ws).scan().to_arrow().column("activity_event_id").to_pylist()
    assert sorted(left) == sorted(set(ALL_IDS) - {"d-4"})
    assert cli_run("lineage", "verify").returncode == 0


def _run_files(context: Context, tmp_path: Path, files: dict[str, list[str]]) -> dict[str, str]:
    """Run one input file per name (its record ids given); returns name -> root_id."""
    roots = {}
    for name, ids in files.items():
        source = tmp_path / "in" / f"{name}.csv"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("\n".join([HEADER, *(activity_row(i) for i in ids)]) + "\n")
        summary = Pipeline(context).run_file(source)
        assert summary["status"] == "SUCCEEDED", summary["error"]
        roots[name] = summary["root_id"]
    return roots


def _results_file(context: Context, root_id: str) -> dict[str, Any]:
    (found,) = [f for f in context.database.lake_files("emissions") if f["root_id"] == root_id]
    return found


def test_a_lookup_reads_only_the_results_files_whose_record_range_holds_the_id(
    context: Context, tmp_path: Path
) -> None:
    roots = _run_files(context, tmp_path, {"a": ["a-3", "a-1", "a-2"], "b": ["b-2", "b-10", "b-1"]})
    first, second = _results_file(context, roots["a"]), _results_file(context, roots["b"])
    # Each file's smallest and largest record id are registered (string order).
    assert (first["min_record_id"], first["max_record_id"]) == ("a-1", "a-3")
    assert (second["min_record_id"], second["max_record_id"]) == ("b-1", "b-2")
    # Make the first file unreadable: a lookup that opened it would fail.
    Path(first["file_path"].removeprefix("file://")).write_bytes(b"not a parquet file")
    found = context.database.emission("b-10")
    assert found is not None and found["root_id"] == roots["b"]
    assert context.database.emission("b-9") is None  # inside b's range, not there
    assert context.database.emission("c-1") is None  # inside no range: no file read
    assert context.database.emission_history("b-10") == []
    with pytest.raises(DatabaseError):
        context.database.emission("a-2")  # its range holds a-2: the file is read
    # A file whose range is not known (NULL) is read by every lookup.
    with sqlite3.connect(context.settings.workspace / "carbonlake.db") as conn:
        conn.execute(
            "UPDATE lake_files SET min_record_id = NULL, max_record_id = NULL WHERE file_path = ?",
            (first["file_path"],),
        )
    with pytest.raises(DatabaseError):
        context.database.emission("b-10")


def test_results_files_are_written_in_row_groups_of_bounded_size(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from carbonlake import lake
    from carbonlake.database import EMISSION_TYPES
    from carbonlake.storage import Storage

    kinds = {"BIGINT": pl.Int64, "DOUBLE": pl.Float64, "VARCHAR": pl.String}
    records = 2 * lake.ROW_GROUP_RECORDS + 5
    ids = [f"r-{n:06d}" for n in range(records)][::-1]
    rows = pl.DataFrame(
        {
            column: pl.Series(column, [None] * records, dtype=kinds[EMISSION_TYPES[column]])
            for column in EMISSION_COLUMNS
        }
    ).with_columns(activity_event_id=pl.Series(ids))
    storage = Storage((tmp_path / "ws").as_uri())
    storage.ensure_buckets()
    written = lake.write_results(storage, rows, root_id="r", execution_id="e", name="g")
    assert written is not None
    assert (written.min_record_id, written.max_record_id) == ("r-000000", f"r-{records - 1:06d}")
    meta = pq.ParquetFile(written.file_path.removeprefix("file://")).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        lake.ROW_GROUP_RECORDS,
        lake.ROW_GROUP_RECORDS,
        5,
    ]
    # Sorted: each row group's statistics cover a disjoint range of record ids.
    ranges = [
        (meta.row_group(i).column(0).statistics.min, meta.row_group(i).column(0).statistics.max)
        for i in range(meta.num_row_groups)
    ]
    assert ranges == sorted(ranges) and ranges[0][1] < ranges[1][0] < ranges[1][1] < ranges[2][0]


def test_the_commit_describes_each_file_as_pyiceberg_reads_it(tmp_path: Path) -> None:
    """The results and lineage commits build each data file's Iceberg statistics from the
    footer its writer registered, not by reading the file back; what the table holds is
    what pyiceberg's own ``parquet_file_to_data_file`` makes of the file itself."""
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    settings = load_settings(tmp_path / "ws", environ={})
    context = Context.open(settings)
    try:
        summary = Pipeline(context).run_file(write_input(tmp_path / "in" / "fleet.csv"))
        assert summary["status"] == "SUCCEEDED", summary["error"]
        for name in ("emissions", "lineage"):
            registered = context.database.lake_files(name, "current")
            assert registered and all(f["footer"] and f["file_size"] for f in registered)
            table = iceberg_table(settings.workspace, name)
            committed = {task.file.file_path: task.file for task in table.scan().plan_files()}
            assert sorted(committed) == sorted(f["file_path"] for f in registered)
            for path, data_file in committed.items():
                assert data_file == parquet_file_to_data_file(table.io, table.metadata, path)
                assert (
                    data_file.file_size_in_bytes
                    == Path(path.removeprefix("file://")).stat().st_size
                )
    finally:
        context.close()
