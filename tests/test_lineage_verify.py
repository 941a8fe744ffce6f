"""Tamper evidence: `lineage verify` on a real database and real files after each kind of change.

Every test runs the pipeline for real, then edits the SQLite ledger (UPDATE, DELETE,
INSERT with sqlite3), the Parquet file of record nodes that a RECORD_NODES node seals, or
the stored files, and asserts that verify exits 1 and names the node or the file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from carbonlake import Pipeline, transform
from carbonlake.cli import cli
from carbonlake.executions import Context
from carbonlake.lineage import node_hash, outline, render_outline, trace, tree
from carbonlake.lineage.archive import archive
from carbonlake.lineage.openlineage import run_events
from carbonlake.lineage.verify import checkpoint, verify
from carbonlake.settings import load_settings

from .conftest import activity_row


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


class Ledger:
    """A workspace with two processed files and raw access to its SQLite ledger."""

    def __init__(self, tmp_path: Path, make_csv: Callable[..., Path]) -> None:
        settings = load_settings(
            tmp_path / "ws", environ={}, overrides={"pipeline": {"batch_size": 4}}
        )
        self.workspace = settings.workspace
        self.context = Context.open(settings)
        pipeline = Pipeline(self.context)
        rows = [activity_row(f"r{i}", raw_data=str(i)) for i in range(1, 11)]
        rows[7] = activity_row("r8", units="parsec")
        self.first = pipeline.run_file(make_csv(rows, name="first.csv"))
        second_rows = [activity_row(f"s{i}") for i in range(1, 6)]
        self.second = pipeline.run_file(make_csv(second_rows, name="second.csv"))
        self.root = self.first["root_id"]
        self.db_path = Path(settings.database_url.removeprefix("sqlite:///"))

    def sql(self, statement: str, *params: Any) -> int:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(statement, params).rowcount

    def node(self, node_id: str) -> dict[str, Any]:
        found = self.context.database.lineage_node(self.root, node_id)
        assert found is not None
        return found

    def rehash(self, node_id: str) -> None:
        """Recompute a node's hash from its (changed) fields, as a careful forger would."""
        n = self.node(node_id)
        fresh = node_hash(
            n["root_id"],
            n["node_id"],
            n["parent_id"],
            n["action_taken"],
            n["storage_location"],
            n["recorded_at"],
            n["object_sha256"],
            n["row_number"],
            n["parent_hash"],
        )
        self.sql(
            "UPDATE lineage SET node_hash = ? WHERE node_id = ? AND root_id = ?",
            fresh,
            node_id,
            self.root,
        )

    def sealing_node(self) -> dict[str, Any]:
        """The RECORD_NODES node of the first file (its map made one group, one file)."""
        with sqlite3.connect(self.db_path) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM lineage WHERE action_taken = 'RECORD_NODES' AND root_id = ?",
                (self.root,),
            ).fetchall()
        assert len(rows) == 1
        return dict(rows[0])

    def edit_records(
        self,
        change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
        *,
        rehash: Sequence[str] = (),
        reseal: bool = False,
    ) -> None:
        """Rewrite the first file's record nodes with ``change``; recompute the hashes of
        the nodes in ``rehash`` and, with ``reseal``, the file's SHA-256 in its RECORD_NODES
        node and that node's hash (as a careful forger would)."""
        sealing = self.sealing_node()
        path = self.file(sealing["storage_location"])
        table = pq.read_table(path)
        rows = change(table.to_pylist())
        for row in rows:
            if row["node_id"] in rehash:
                row["node_hash"] = node_hash(
                    *(row[k] for k in HASHED_FIELDS), parent_hash=row["parent_hash"]
                )
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
        if reseal:
            self.sql(
                "UPDATE lineage SET object_sha256 = ? WHERE node_id = ?",
                hashlib.sha256(path.read_bytes()).hexdigest(),
                sealing["node_id"],
            )
            self.rehash(sealing["node_id"])

    def verify(self, *extra: str | Path) -> tuple[int, dict[str, Any]]:
        result = invoke("lineage", "verify", *extra, "--workspace", self.workspace, "--json")
        return result.exit_code, json.loads(result.stdout)

    def file(self, location: str) -> Path:
        return Path(location.removeprefix("file://"))


HASHED_FIELDS = (
    "root_id",
    "node_id",
    "parent_id",
    "action_taken",
    "storage_location",
    "recorded_at",
    "object_sha256",
    "row_number",
)


def changed(node_id: str, **fields: Any) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """An edit of record nodes: one node's fields changed."""
    return lambda rows: [{**r, **fields} if r["node_id"] == node_id else r for r in rows]


@pytest.fixture
def ledger(tmp_path: Path, make_csv: Callable[..., Path]) -> Iterator[Ledger]:
    found = Ledger(tmp_path, make_csv)
    yield found
    found.context.close()


def first_problem(document: dict[str, Any]) -> dict[str, Any]:
    assert document["ok"] is False
    problem: dict[str, Any] = document["problems"][0]
    return problem


def test_an_untouched_ledger_verifies(ledger: Ledger) -> None:
    code, document = ledger.verify()
    assert code == 0, document
    assert document["ok"] is True
    assert document["roots"] == 2
    assert document["records"] == 15
    assert document["ledger_size"] == ledger.context.database.lineage_size()
    code, document = ledger.verify(ledger.root)
    assert code == 0 and document["records"] == 10

    result = invoke("lineage", "verify", "--workspace", ledger.workspace)
    assert result.exit_code == 0
    assert result.stdout.startswith("OK: the ledger (2 roots) verified")


def test_a_changed_record_node_is_named(ledger: Ledger) -> None:
    ledger.edit_records(changed("r7", row_number=2))
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "node_changed"
    assert problem["node_id"] == "r7"
    assert "r7" in problem["message"] and "CALCULATION_COMPLETE" in problem["message"]

    result = invoke("lineage", "verify", ledger.root, "--workspace", ledger.workspace)
    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED")
    assert "node_changed: node r7" in result.stdout


def test_a_changed_file_node_is_named(ledger: Ledger) -> None:
    raw = trace(ledger.context.database, "r1")[0]
    ledger.sql(
        "UPDATE lineage SET storage_location = 'file:///elsewhere.csv' WHERE node_id = ?",
        raw["node_id"],
    )
    code, document = ledger.verify(ledger.root)
    assert code == 1
    assert first_problem(document)["kind"] == "node_changed"
    assert first_problem(document)["node_id"] == raw["node_id"]


def test_a_rehashed_parent_is_caught_by_its_children(ledger: Ledger) -> None:
    batch = trace(ledger.context.database, "r1")[3]
    ledger.sql(
        "UPDATE lineage SET recorded_at = '2020-01-01T00:00:00.000000Z' WHERE node_id = ?",
        batch["node_id"],
    )
    ledger.rehash(batch["node_id"])
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "parent_changed"
    assert problem["node_id"] == batch["node_id"]
    assert "was changed after its children were written" in problem["message"]


def test_a_deleted_record_node_is_named_by_its_row_and_id(ledger: Ledger) -> None:
    ledger.edit_records(lambda rows: [r for r in rows if r["node_id"] != "r6"], reseal=True)
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "records_missing"
    assert "rows 6 (record ids r6)" in problem["message"]
    assert problem["storage_location"].endswith("part_00001.parquet")

    code, everything = ledger.verify("--all")
    kinds = [p["kind"] for p in everything["problems"]]
    assert kinds == ["records_missing"]


def test_a_record_node_deleted_from_its_file_without_resealing_names_the_file(
    ledger: Ledger,
) -> None:
    location = ledger.sealing_node()["storage_location"]
    ledger.edit_records(lambda rows: [r for r in rows if r["node_id"] != "r6"])
    code, everything = ledger.verify("--all")
    assert code == 1
    problems = {p["kind"]: p for p in everything["problems"]}
    assert sorted(problems) == ["object_changed", "records_missing"]
    assert problems["object_changed"]["storage_location"] == location
    assert "RECORD_NODES" in problems["object_changed"]["message"]
    assert "rows 6 (record ids r6)" in problems["records_missing"]["message"]


def test_a_missing_record_file_is_named(ledger: Ledger) -> None:
    location = ledger.sealing_node()["storage_location"]
    ledger.file(location).unlink()
    code, everything = ledger.verify("--all")
    assert code == 1
    missing = [p for p in everything["problems"] if p["kind"] == "object_missing"]
    assert [p["storage_location"] for p in missing] == [location]
    assert any(p["kind"] == "records_missing" for p in everything["problems"])


def test_a_deleted_batch_node_is_named(ledger: Ledger) -> None:
    batch = trace(ledger.context.database, "r9")[3]
    ledger.sql("DELETE FROM lineage WHERE node_id = ?", batch["node_id"])
    code, document = ledger.verify(ledger.root)
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "node_missing"
    assert problem["node_id"] == batch["node_id"]
    assert "r9 (CALCULATION_COMPLETE) and 1 more name it as parent" in problem["message"]


def test_a_deleted_raw_input_node_is_named(ledger: Ledger) -> None:
    raw = trace(ledger.context.database, "r1")[0]
    ledger.sql("DELETE FROM lineage WHERE node_id = ?", raw["node_id"])
    code, document = ledger.verify(ledger.root)
    assert code == 1
    assert first_problem(document)["kind"] == "node_missing"
    assert first_problem(document)["node_id"] == raw["node_id"]


def test_an_orphan_node_is_named(ledger: Ledger) -> None:
    n = ledger.node("r1")
    ledger.sql(
        "INSERT INTO lineage (root_id, node_id, parent_id, action_taken, storage_location, "
        "recorded_at, object_sha256, row_number, node_hash, parent_hash) "
        "VALUES (?, 'intruder', 'no-such-parent', 'CALCULATION_COMPLETE', ?, ?, ?, 99, ?, ?)",
        ledger.root,
        n["storage_location"],
        n["recorded_at"],
        n["object_sha256"],
        "0" * 64,
        n["parent_hash"],
    )
    ledger.rehash("intruder")
    code, document = ledger.verify(ledger.root)
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "node_missing"
    assert problem["node_id"] == "no-such-parent"
    assert "intruder (CALCULATION_COMPLETE)" in problem["message"]


def test_a_record_moved_under_another_file_node_is_refused(ledger: Ledger) -> None:
    raw = trace(ledger.context.database, "r2")[0]
    ledger.edit_records(
        changed("r2", parent_id=raw["node_id"], parent_hash=raw["node_hash"]),
        rehash=["r2"],
        reseal=True,
    )
    code, document = ledger.verify(ledger.root)
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "tree" and problem["node_id"] == "r2"
    assert "parent is GLUE_BATCH_SPLIT" in problem["message"]


def assert_file_named_changed(ledger: Ledger, location: str) -> None:
    """Verify fails, and its first problem names ``location`` as changed."""
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "object_changed"
    assert problem["storage_location"] == location
    assert f"file {location} no longer matches" in problem["message"]


@pytest.mark.parametrize(
    "which", ["raw", "batch", "enriched", "errors", "report"], ids=lambda w: f"{w}-file"
)
def test_a_changed_file_is_named(ledger: Ledger, which: str) -> None:
    chain = trace(ledger.context.database, "r8")  # the record that could not be calculated
    assert chain[4]["action_taken"] == "CALCULATION_FAILED"
    location = {
        "raw": chain[2]["storage_location"],
        "report": chain[1]["storage_location"],
        "batch": chain[3]["storage_location"],
        "errors": chain[4]["storage_location"],
        "enriched": ledger.node("r5")["storage_location"],
    }[which]
    path = ledger.file(location)
    path.write_bytes(path.read_bytes().replace(b"1", b"2", 1))
    assert_file_named_changed(ledger, location)


@pytest.mark.parametrize("change", ["changed", "removed", "added"])
def test_a_rewritten_parquet_batch_file_is_named(ledger: Ledger, change: str) -> None:
    """A batch file rewritten as valid Parquet (a number changed, a record removed or
    one added) no longer has the SHA-256 its GLUE_BATCH_SPLIT node recorded."""
    location = trace(ledger.context.database, "r6")[3]["storage_location"]
    assert location.endswith(".parquet")
    path = ledger.file(location)
    batch = pl.read_parquet(path)
    assert batch.schema == transform.batch_schema(batch.columns)
    rewritten = {
        "changed": batch.with_columns(
            pl.when(pl.col("activity_event_id") == "r6")
            .then(pl.col("raw_data") * 10)
            .otherwise(pl.col("raw_data"))
            .alias("raw_data")
        ),
        "removed": batch.filter(pl.col("activity_event_id") != "r6"),
        "added": pl.concat(
            [batch, batch.head(1).with_columns(pl.lit("r99").alias("activity_event_id"))]
        ),
    }[change]
    path.write_bytes(transform.parquet_bytes(rewritten))
    assert_file_named_changed(ledger, location)


@pytest.mark.parametrize("change", ["number", "removed", "added"])
def test_a_rewritten_enriched_parquet_file_is_named(ledger: Ledger, change: str) -> None:
    """An enriched file rewritten as valid Parquet: one record's CO2e changed, one
    record removed or one added."""
    location = ledger.node("r5")["storage_location"]
    assert location.endswith(".parquet")
    path = ledger.file(location)
    frame = pl.read_parquet(path)
    output = frame.schema["emissions_output"]
    rows = frame.to_dicts()
    if change == "number":
        record = next(r for r in rows if r["activity_event_id"] == "r5")
        record["emissions_output"]["calculated_emissions"]["co2e"]["ar5"]["amount"] *= 1.01
    elif change == "removed":
        rows = [r for r in rows if r["activity_event_id"] != "r5"]
    else:
        rows.append({**rows[0], "activity_event_id": "r99"})
    rewritten = pl.DataFrame(rows, schema=frame.schema)
    assert rewritten.schema["emissions_output"] == output
    path.write_bytes(transform.parquet_bytes(rewritten))
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "object_changed"
    assert problem["storage_location"] == location


def test_a_deleted_file_is_named(ledger: Ledger) -> None:
    raw = trace(ledger.context.database, "r1")[2]["storage_location"]
    ledger.file(raw).unlink()
    code, document = ledger.verify(ledger.root)
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "object_missing"
    assert problem["message"].startswith(f"file {raw} is missing")


def test_a_consistent_forgery_is_caught_by_a_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    kept = tmp_path / "kept-elsewhere.json"
    result = invoke("lineage", "checkpoint", "-o", kept, "--workspace", ledger.workspace)
    assert result.exit_code == 0
    point = json.loads(kept.read_text())
    assert point["size"] == ledger.context.database.lineage_size()
    assert point["root_hash"] in result.stdout
    assert ledger.verify("--checkpoint", kept)[0] == 0

    # The ledger grows: the old checkpoint still holds.
    Pipeline(ledger.context).run_file(
        ledger.file(ledger.first["storage_location"]), key="third.csv"
    )
    code, document = ledger.verify("--checkpoint", kept)
    assert code == 0, document
    assert document["ledger_size"] > point["size"]

    # A forger changes a node and recomputes its hash: only the checkpoint notices.
    ledger.edit_records(
        changed("r4", recorded_at="2020-01-01T00:00:00.000000Z"), rehash=["r4"], reseal=True
    )
    code, document = ledger.verify()
    assert code == 0, document["problems"]
    code, document = ledger.verify("--checkpoint", kept)
    assert code == 1
    assert first_problem(document)["kind"] == "checkpoint_mismatch"
    assert point["root_hash"] in first_problem(document)["message"]


def test_a_checkpoint_shows_when_the_ledger_shrank(ledger: Ledger, tmp_path: Path) -> None:
    point = checkpoint(ledger.context.database)
    kept = tmp_path / "cp.json"
    kept.write_text(json.dumps(point.to_dict()))
    # The last file's nodes are at the end of the ledger: no hole is left.
    ledger.sql("DELETE FROM lineage WHERE root_id = ?", ledger.second["root_id"])
    # Without a checkpoint, the cut-off root's results and files give it away (issue 17).
    code, document = ledger.verify()
    assert code == 1
    assert first_problem(document)["kind"] in ("result_unrecorded", "object_unrecorded")
    code, document = ledger.verify("--checkpoint", kept)
    assert code == 1
    assert first_problem(document)["kind"] == "ledger_shrank"


def test_a_deleted_node_in_the_middle_leaves_a_hole(ledger: Ledger) -> None:
    second_raw = tree(ledger.context.database, ledger.second["root_id"])[0]
    ledger.sql("DELETE FROM lineage WHERE root_id = ?", ledger.root)
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "ledger_gap"
    assert second_raw["node_id"] in problem["message"]


def test_a_half_written_root_is_named_without_crashing(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context = Context.open(load_settings(tmp_path / "ws", environ={}))
    transformed = context.settings.workspace / "transformed"
    transformed.rmdir()
    transformed.write_text("not a folder")
    summary = Pipeline(context).run_file(make_csv([activity_row("x1")]))
    assert summary["status"] == "FAILED"
    report = verify(context.database, context.storage, summary["root_id"])
    assert not report.ok
    problem = report.problems[0]
    assert problem.kind == "incomplete"
    assert "DQ_CHECK_PASS node" in problem.message
    assert summary["execution_id"] in problem.message
    lines = render_outline(outline(context.database, summary["root_id"]))
    assert lines[-1].strip().startswith("DQ_CHECK_PASS")
    assert archive(context.database, context.storage, summary["root_id"]).lines == 0
    events = run_events(context.database, context.storage, summary["root_id"])
    assert [(e.job.name, e.eventType.value) for e in events][-3:] == [
        ("carbonlake.pipeline.transform", "START"),
        ("carbonlake.pipeline.transform", "FAIL"),
        ("carbonlake.pipeline", "FAIL"),
    ]
    context.close()


def test_unusable_checkpoint_files_are_usage_errors(ledger: Ledger, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    for content in ("not json", '{"size": -1, "root_hash": "00"}', "[]"):
        bad.write_text(content)
        result = invoke(
            "lineage", "verify", "--checkpoint", bad, "--workspace", ledger.workspace, "--json"
        )
        assert result.exit_code == 2, content
        assert "bad.json" in json.loads(result.stdout)["error"]["message"]
    result = invoke(
        "lineage", "verify", "--checkpoint", tmp_path / "none.json", "--workspace", ledger.workspace
    )
    assert result.exit_code == 2 and "none.json" in result.stderr


@pytest.mark.parametrize("how", ["empty", "zero-bytes", "another"])
def test_a_replaced_database_is_not_accepted(
    ledger: Ledger, tmp_path: Path, make_csv: Callable[..., Path], how: str
) -> None:
    """Issue 17 item 9: verify names the objects that no node of the ledger records."""
    ledger.context.close()
    if how == "zero-bytes":
        ledger.db_path.write_bytes(b"")
    elif how == "empty":
        ledger.db_path.unlink()
    else:  # the database of another workspace, with its own (valid) ledger
        other = Ledger(tmp_path / "other", make_csv)
        other.context.close()
        ledger.db_path.write_bytes(other.db_path.read_bytes())
    ledger.context = Context.open(ledger.context.settings)
    code, document = ledger.verify("--all")
    assert code == 1
    kinds = {p["kind"] for p in document["problems"]}
    assert "object_unrecorded" in kinds
    named = {p["storage_location"] for p in document["problems"] if p["storage_location"]}
    # Each file of this workspace's runs is named (under its own root folder).
    ours = {ledger.first["root_id"], ledger.second["root_id"]}
    enriched = {u for u in named if "/enriched/" in u and any(r in u for r in ours)}
    assert len(enriched) == len(list((ledger.workspace / "enriched").rglob("*.parquet")))
    if how != "another":  # another workspace's ledger may name raw files of the same name
        assert {u for u in named if "/raw/" in u} == {
            p.as_uri() for p in (ledger.workspace / "raw").rglob("*") if p.is_file()
        }


def tamper_results(
    ledger: Ledger, record_id: str, change: Callable[[pl.DataFrame], pl.DataFrame]
) -> None:
    """Rewrite the results table's data file that holds a record (as someone with write
    access to the lake bucket could), with ``change`` applied to its rows."""
    for entry in ledger.context.database.lake_files("emissions"):
        path = Path(entry["file_path"].removeprefix("file://"))
        frame = pl.read_parquet(path)
        if record_id in frame["activity_event_id"].to_list():
            change(frame).write_parquet(path, compression="zstd")
            return
    raise AssertionError(f"no current results file holds {record_id}")


def test_a_changed_result_in_the_results_table_is_named(ledger: Ledger) -> None:
    """Issue 17 item 3: the results the API serves are covered by verify."""
    tamper_results(
        ledger,
        "r3",
        lambda f: f.with_columns(
            pl.when(pl.col("activity_event_id") == "r3")
            .then(pl.col("co2e_ar5_tonnes") * 100)
            .otherwise(pl.col("co2e_ar5_tonnes"))
            .alias("co2e_ar5_tonnes")
        ),
    )
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "result_changed"
    assert problem["node_id"] == "r3" and "co2e_ar5_tonnes" in problem["message"]


def test_a_changed_results_file_is_named_by_its_hash(ledger: Ledger) -> None:
    """A change in a results file that no compared number shows (here the factor id) is
    still found: each results file's SHA-256 is kept when it is registered."""
    tamper_results(
        ledger,
        "r3",
        lambda f: f.with_columns(
            pl.when(pl.col("activity_event_id") == "r3")
            .then(pl.lit("another-factor"))
            .otherwise(pl.col("factor_id"))
            .alias("factor_id")
        ),
    )
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "results_file_changed"
    holder = [
        e["file_path"]
        for e in ledger.context.database.lake_files("emissions")
        if "r3" in pl.read_parquet(e["file_path"].removeprefix("file://"))["activity_event_id"]
    ]
    assert problem["storage_location"] == holder[0]


def test_a_deleted_result_row_is_named(ledger: Ledger) -> None:
    tamper_results(ledger, "s2", lambda f: f.filter(pl.col("activity_event_id") != "s2"))
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "result_missing" and "s2" in problem["message"]


def test_an_inserted_fake_result_is_named(ledger: Ledger) -> None:
    tamper_results(
        ledger,
        "r1",
        lambda f: pl.concat(
            [
                f,
                f.filter(pl.col("activity_event_id") == "r1").with_columns(
                    pl.lit("fake-1").alias("activity_event_id"),
                    pl.lit("fake-1").alias("lineage_node_id"),
                ),
            ]
        ),
    )
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "result_unrecorded" and problem["node_id"] == "fake-1"


def test_a_changed_execution_output_is_named(ledger: Ledger) -> None:
    execution = ledger.context.database.get_execution(ledger.second["execution_id"])
    assert execution is not None
    output = dict(execution["output"])
    output["co2e_tonnes"] = {
        method: {gwp: v * 2 for gwp, v in by_gwp.items()}
        for method, by_gwp in output["co2e_tonnes"].items()
    }
    ledger.sql(
        "UPDATE executions SET output_json = ? WHERE execution_id = ?",
        json.dumps(output),
        ledger.second["execution_id"],
    )
    code, document = ledger.verify()
    assert code == 1
    problem = first_problem(document)
    assert problem["kind"] == "output_changed"
    assert ledger.second["execution_id"] in problem["message"]


def test_the_untouched_results_verify_and_are_counted(ledger: Ledger) -> None:
    code, document = ledger.verify()
    assert code == 0, document["problems"]
    # 10 + 5 records, one of which (r8, a parsec) could not be calculated.
    assert document["results"] == 14
