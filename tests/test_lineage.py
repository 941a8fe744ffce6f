"""The lineage ledger: hashed nodes, row numbers, PROFILE_COMPLETE, trace, tree and archive."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonlake import LineageError, Pipeline, tasks
from carbonlake.cli import cli
from carbonlake.database import LINEAGE_COLUMNS, Database
from carbonlake.executions import Context
from carbonlake.lineage import (
    LineageWriter,
    RecordNodes,
    canonical_node,
    node_hash,
    outline,
    record_id_of,
    render_outline,
    trace,
    trail,
    tree,
)
from carbonlake.lineage.archive import archive
from carbonlake.lineage.nodes import _sibling_hashes, sibling_hash_column, sibling_template
from carbonlake.lineage.verify import MerkleAccumulator, interior_hash, leaf_hash, merkle_root
from carbonlake.settings import Settings, load_settings

from .conftest import activity_row


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


def run(
    tmp_path: Path, make_csv: Callable[..., Path], rows: list[str], batch_size: int = 4
) -> tuple[Context, dict[str, Any]]:
    settings = load_settings(
        tmp_path / "ws", environ={}, overrides={"pipeline": {"batch_size": batch_size}}
    )
    context = Context.open(settings)
    return context, Pipeline(context).run_file(make_csv(rows))


def mixed_rows() -> list[str]:
    """Ten records, two of which cannot be calculated (rows 3 and 8)."""
    rows = [activity_row(f"r{i}", raw_data=str(i + 1)) for i in range(1, 11)]
    rows[2] = activity_row("r3", activity="Unicorn Power")
    rows[7] = activity_row("r8", units="parsec")
    return rows


# -- the nodes the pipeline writes ---------------------------------------------------------


def test_every_record_keeps_its_row_in_the_input_file(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context, summary = run(tmp_path, make_csv, mixed_rows())
    assert summary["records_failed"] == 2
    nodes = tree(context.database, summary["root_id"])
    terminals = {
        record_id_of(n["node_id"], n["action_taken"]): n
        for n in nodes
        if n["action_taken"] in ("CALCULATION_COMPLETE", "CALCULATION_FAILED")
    }
    source = context.settings.workspace / "raw" / "activity.csv"
    with source.open(newline="") as handle:
        expected = {r["activity_event_id"]: i for i, r in enumerate(csv.DictReader(handle), 1)}
    assert {n: t["row_number"] for n, t in terminals.items()} == expected
    assert terminals["r3"]["action_taken"] == "CALCULATION_FAILED"
    assert terminals["r8"]["action_taken"] == "CALCULATION_FAILED"
    assert terminals["r8"]["storage_location"].endswith("part_00001.errors.parquet")
    # A record that only failed is traced by its own id.
    found = trail(context.database, "r8")
    assert found["lineage"][-1] == terminals["r8"]
    assert found["row_number"] == 8 and found["emission"] is None
    context.close()


def test_file_nodes_keep_the_sha256_of_their_object(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    rows = [activity_row(f"r{i}") for i in range(5)]
    context, summary = run(tmp_path, make_csv, rows)
    nodes = {n["action_taken"]: n for n in tree(context.database, summary["root_id"])}
    ws = context.settings.workspace
    input_sha = hashlib.sha256(make_csv(rows).read_bytes()).hexdigest()
    assert nodes["RAW_DATA_INPUT"]["object_sha256"] == input_sha
    assert nodes["DQ_CHECK_PASS"]["object_sha256"] == input_sha
    report = ws / "dq-results" / summary["root_id"] / "report.json"
    assert nodes["PROFILE_COMPLETE"]["storage_location"] == report.as_uri()
    assert (
        nodes["PROFILE_COMPLETE"]["object_sha256"]
        == hashlib.sha256(report.read_bytes()).hexdigest()
    )
    assert nodes["RAW_DATA_INPUT"]["row_number"] is None
    record = context.database.lineage_node(summary["root_id"], "r4")
    assert record is not None and record["row_number"] == 5
    enriched = ws / "enriched" / summary["root_id"] / "part_00001.parquet"
    assert record["storage_location"] == enriched.as_uri()
    assert record["object_sha256"] == hashlib.sha256(enriched.read_bytes()).hexdigest()
    context.close()


def test_each_node_hash_covers_its_fields_and_its_parents_hash(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context, summary = run(tmp_path, make_csv, mixed_rows())
    nodes = tree(context.database, summary["root_id"])
    by_id = {n["node_id"]: n for n in nodes}
    for node in nodes:
        parent = by_id.get(node["parent_id"])
        if node["action_taken"] == "RAW_DATA_INPUT":
            assert node["parent_hash"] is None
        else:
            assert parent is not None and node["parent_hash"] == parent["node_hash"]
        fields = {k: node[k] for k in node if k != "node_hash"}
        encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert node["node_hash"] == hashlib.sha256(encoded.encode()).hexdigest()
    context.close()


def test_profile_complete_sits_between_the_input_and_the_dq_verdict(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context, summary = run(tmp_path, make_csv, [activity_row("ok"), "bad,row"])
    assert summary["data_quality"]["status"] == "FAILED"
    chain = [n["action_taken"] for n in tree(context.database, summary["root_id"])]
    assert chain == ["RAW_DATA_INPUT", "PROFILE_COMPLETE", "DQ_CHECK_FAIL"]
    nodes = tree(context.database, summary["root_id"])
    assert nodes[2]["parent_id"] == nodes[1]["node_id"]
    assert nodes[1]["parent_id"] == nodes[0]["node_id"]
    context.close()


# -- the writer --------------------------------------------------------------------------


def test_writer_refuses_a_node_whose_parent_does_not_exist(context: Context) -> None:
    writer = LineageWriter(context.database, context.storage)
    with pytest.raises(LineageError, match="no such node under root_id r1"):
        writer.add("r1", "n1", "nowhere", "GLUE_BATCH_SPLIT", None)


def test_writer_refuses_a_location_it_cannot_hash(context: Context) -> None:
    missing = context.storage.url("landing", "never-landed.csv")
    with pytest.raises(LineageError, match=r"never-landed\.csv"):
        tasks.data_lineage(
            {
                "root_id": "r",
                "parent_id": "r",
                "action_taken": "RAW_DATA_INPUT",
                "record": {"storage_location": missing},
            },
            settings=context.settings,
        )
    assert context.database.lineage_size() == 0


def test_record_nodes_as_columns_are_the_nodes_add_many_queues(context: Context) -> None:
    writer = LineageWriter(context.database, context.storage)
    writer.remember([{"root_id": "root", "node_id": "batch", "node_hash": "f" * 64}])
    rows = [1, 2, 3, 40, 500, 6_000_000, 7]
    at = "2026-03-07T10:00:00.000000Z"
    for ids in (
        [f"bench-{i:09d}" for i in range(7)],  # hashed by Polars
        ["plain", 'quote"d', "back\\slash", "tab\there", "nul\x00\x1f", "ünï-cødé ✓", "a/b"],
    ):
        groups = [
            RecordNodes(
                ids,
                "batch",
                "CALCULATION_COMPLETE",
                "file:///w/enriched/r/part_00000.parquet",
                "a" * 64,
                rows,
            ),
            RecordNodes(
                [f"{i}#failed-1" for i in ids[:2]],
                "batch",
                "CALCULATION_FAILED",
                None,
                None,
                [None, 9],
            ),
        ]
        frame = writer.record_nodes("root", groups, recorded_at=at)
        for group in groups:
            writer.add_many(
                "root",
                group.node_ids,
                group.parent_id,
                group.action_taken,
                group.storage_location,
                object_sha256=group.object_sha256,
                row_numbers=group.row_numbers,
                recorded_at=at,
            )
        assert frame.columns == list(LINEAGE_COLUMNS)
        assert frame.rows() == writer.take()
        assert frame.height == 9
        for node in frame.iter_rows(named=True):
            fields = {k: node[k] for k in node if k != "node_hash"}
            encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert node["node_hash"] == hashlib.sha256(encoded.encode()).hexdigest()
    assert writer.record_nodes("root", []).columns == list(LINEAGE_COLUMNS)
    with pytest.raises(LineageError, match="not record nodes"):
        writer.record_nodes(
            "root", [RecordNodes(["x"], "batch", "GLUE_BATCH_SPLIT", None, None, [1])]
        )


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=7, max_size=7),
    node=st.text(min_size=1, max_size=12),
    row=st.one_of(st.none(), st.integers(min_value=1, max_value=2**62)),
)
def test_sibling_hash_column_is_node_hash_of_each_node(
    texts: list[str | None], node: str, row: int | None
) -> None:
    names = ["root_id", "parent_id", "action_taken", "storage_location", "recorded_at"]
    names += ["object_sha256", "parent_hash"]
    fields: dict[str, Any] = dict(zip(names, texts, strict=True))
    head, middle, tail = sibling_template(
        fields["root_id"],
        fields["parent_id"],
        fields["action_taken"],
        fields["storage_location"],
        fields["recorded_at"],
        fields["object_sha256"],
        fields["parent_hash"],
    )
    # A generated node id and a plain one: both sides of the fast path.
    frame = pl.DataFrame(
        {
            "head": [head, head],
            "middle": [middle, middle],
            "tail": [tail, tail],
            "node_id": [node, "plain-id"],
            "row_number": [row, row],
        },
        schema_overrides={"row_number": pl.Int64},
    )
    expected = [
        hashlib.sha256(
            json.dumps(
                {**fields, "node_id": n, "row_number": row},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        ).hexdigest()
        for n in (node, "plain-id")
    ]
    assert sibling_hash_column(frame).to_list() == expected
    assert sibling_hash_column(frame.slice(1)).to_list() == expected[1:]


def test_writer_from_many_threads_keeps_parents_before_children(context: Context) -> None:
    storage = context.storage
    landing = storage.url("landing", "x.csv")
    storage.write_bytes(landing, b"a\n")
    writer = LineageWriter(context.database, storage, batch_size=500)
    writer.add("root", "raw", "root", "RAW_DATA_INPUT", landing, object_sha256="0" * 64)
    for b in range(8):
        writer.add("root", f"batch{b}", "raw", "GLUE_BATCH_SPLIT", landing)

    def work(b: int) -> None:
        for chunk in range(10):
            ids = [f"b{b}-c{chunk}-{i}" for i in range(100)]
            writer.add_many("root", ids, f"batch{b}", "CALCULATION_COMPLETE", landing)

    threads = [threading.Thread(target=work, args=(b,)) for b in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    nodes = tree(context.database, "root")
    assert len(nodes) == 1 + 8 + 8000 == writer.written
    position = {n["node_id"]: i for i, n in enumerate(nodes)}
    assert all(position[n["parent_id"]] < position[n["node_id"]] for n in nodes[1:])


def test_tasks_accept_profile_complete_and_record_row_numbers(
    settings: Settings, context: Context
) -> None:
    storage = context.storage
    landing = storage.url("landing", "f.csv")
    storage.write_bytes(landing, b"activity_event_id\nx\n")
    report = storage.url("dq-results", "r/report.json")
    storage.write_bytes(report, b"{}")
    raw = tasks.data_lineage(
        {
            "root_id": "r",
            "parent_id": "r",
            "action_taken": "RAW_DATA_INPUT",
            "record": {"storage_location": landing},
        },
        settings=settings,
    )["data_lineage"]["node_id"]
    profile = tasks.data_lineage(
        {
            "root_id": "r",
            "parent_id": raw,
            "action_taken": "PROFILE_COMPLETE",
            "record": {"storage_location": report},
        },
        settings=settings,
    )["data_lineage"]
    assert set(profile) == {"root_id", "action_taken", "storage_location", "node_id"}
    with pytest.raises(LineageError, match="row_number"):
        tasks.data_lineage(
            {
                "root_id": "r",
                "parent_id": profile["node_id"],
                "action_taken": "CALCULATION_COMPLETE",
                "storage_location": report,
                "records": [{"node_id": "x", "row_number": 0}],
            },
            settings=settings,
        )


# -- hashing, canonical encoding and the Merkle tree -----------------------------------------

text = st.text(max_size=30)
maybe_text = st.none() | text
rows = st.none() | st.integers(min_value=1, max_value=10**12)


@settings(max_examples=200, deadline=None)
@given(text, text, text, text, maybe_text, text, maybe_text, rows, maybe_text)
def test_canonical_encoding_is_sorted_compact_json(
    root: str,
    node: str,
    parent: str,
    action: str,
    location: str | None,
    at: str,
    sha: str | None,
    row: int | None,
    phash: str | None,
) -> None:
    fields = {
        "root_id": root,
        "node_id": node,
        "parent_id": parent,
        "action_taken": action,
        "storage_location": location,
        "recorded_at": at,
        "object_sha256": sha,
        "row_number": row,
        "parent_hash": phash,
    }
    expected = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    encoded = canonical_node(root, node, parent, action, location, at, sha, row, phash)
    assert encoded == expected.encode()
    siblings = _sibling_hashes(root, [node], parent, action, location, at, sha, [row], phash)
    assert siblings == [node_hash(root, node, parent, action, location, at, sha, row, phash)]


def rfc6962(leaves: list[bytes]) -> bytes:
    """MTH of RFC 6962 section 2.1, written as the RFC defines it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return interior_hash(rfc6962(leaves[:k]), rfc6962(leaves[k:]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=70))
def test_streamed_merkle_root_is_rfc6962(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == rfc6962(leaves)


@pytest.mark.parametrize("size", [4095, 4096, 4097, 3 * 4096 + 5])
def test_merkle_root_of_many_leaves_is_rfc6962(size: int) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    assert merkle_root(leaves) == rfc6962(leaves)


def test_merkle_known_values_and_growth() -> None:
    assert merkle_root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle_root([b""]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    accumulator = MerkleAccumulator()
    roots = []
    for i in range(9):
        accumulator.add(bytes([i]))
        roots.append(accumulator.root())
    assert len(set(roots)) == 9
    assert roots[4] == merkle_root([bytes([i]) for i in range(5)])


# -- the questions: trace, tree, archive, also on a damaged ledger -----------------------------


def delete_node(database: Database, node_id: str) -> None:
    with database.transaction() as conn:
        conn.execute(sa.text("DELETE FROM lineage WHERE node_id = :id"), {"id": node_id})


def test_trail_answers_where_a_number_comes_from(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context, _ = run(tmp_path, make_csv, mixed_rows())
    found = trail(context.database, "r6")
    assert found["complete"] is True
    assert found["row_number"] == 6
    assert [n["action_taken"] for n in found["lineage"]] == [
        "RAW_DATA_INPUT",
        "PROFILE_COMPLETE",
        "DQ_CHECK_PASS",
        "GLUE_BATCH_SPLIT",
        "CALCULATION_COMPLETE",
    ]
    assert found["emission"]["co2e_ar4_tonnes"] == pytest.approx(
        context.database.emission("r6")["co2e_ar4_tonnes"]
    )

    result = invoke("lineage", "trace", "r6", "--workspace", context.settings.workspace)
    assert result.exit_code == 0, result.output
    assert "row 6 of the input file" in result.stdout
    for node in found["lineage"]:
        assert node["node_hash"] in result.stdout
        assert node["storage_location"] in result.stdout
        assert node["recorded_at"] in result.stdout
    assert "result: CO2e AR4" in result.stdout
    context.close()


def test_a_missing_parent_never_crashes_trace_tree_or_archive(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context, summary = run(tmp_path, make_csv, mixed_rows())
    root_id = summary["root_id"]
    batch = trace(context.database, "r6")[3]
    delete_node(context.database, batch["node_id"])
    ws = context.settings.workspace

    chain = trace(context.database, "r6")
    assert [n["action_taken"] for n in chain] == ["CALCULATION_COMPLETE"]
    result = invoke("lineage", "trace", "r6", "--workspace", ws)
    assert result.exit_code == 0
    assert batch["node_id"] in result.stderr and "lineage verify" in result.stderr

    lines = render_outline(outline(context.database, root_id))
    assert any(f"missing node {batch['node_id']}" in line for line in lines)
    result = invoke("lineage", "tree", root_id, "--workspace", ws, "--json")
    assert result.exit_code == 0
    assert any(top.get("missing") for top in json.loads(result.stdout))

    written = archive(context.database, context.storage, root_id)
    assert written.lines == 10 and written.incomplete == 4
    result = invoke("lineage", "archive", root_id, "--workspace", ws)
    assert result.exit_code == 0 and "4 trail(s) break" in result.stderr
    context.close()


def test_tree_folds_records_to_counts(tmp_path: Path, make_csv: Callable[..., Path]) -> None:
    rows = [activity_row(f"r{i}") for i in range(40)]
    context, summary = run(tmp_path, make_csv, rows, batch_size=10)
    tops = outline(context.database, summary["root_id"], max_records=2, max_children=3)
    lines = render_outline(tops)
    assert lines[0].startswith("RAW_DATA_INPUT")
    assert sum("GLUE_BATCH_SPLIT" in line for line in lines) == 3
    assert sum(line.strip().startswith("CALCULATION_COMPLETE") for line in lines) == 6
    assert any("8 more record nodes (10 CALCULATION_COMPLETE in all)" in x for x in lines)
    assert any("1 more nodes holding 10 CALCULATION_COMPLETE" in line for line in lines)
    result = invoke(
        "lineage", "tree", summary["root_id"], "--workspace", context.settings.workspace
    )
    assert result.exit_code == 0 and "GLUE_BATCH_SPLIT" in result.stdout
    context.close()


def test_archive_has_one_line_per_terminal_from_the_raw_input_down(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context, summary = run(tmp_path, make_csv, mixed_rows())
    root_id = summary["root_id"]
    result = invoke("lineage", "archive", root_id, "--workspace", context.settings.workspace)
    assert result.exit_code == 0, result.output
    raw_at = tree(context.database, root_id)[0]["recorded_at"]
    day = raw_at[:10].replace("-", "/")
    path = context.settings.workspace / "lineage-archive" / day / f"{root_id}.jsonl"
    assert str(path) in result.stdout
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 10
    assert {line["record_id"] for line in lines} == {f"r{i}" for i in range(1, 11)}
    for line in lines:
        assert set(line) == {"record_id", "root_id", "lineage"}
        assert line["root_id"] == root_id
        assert line["lineage"][0]["action_taken"] == "RAW_DATA_INPUT"
        last = line["lineage"][-1]
        assert record_id_of(last["node_id"], last["action_taken"]) == line["record_id"]
        assert line["lineage"] == trace(context.database, line["record_id"])
    failed = [
        line for line in lines if line["lineage"][-1]["action_taken"] != "CALCULATION_COMPLETE"
    ]
    assert {line["record_id"] for line in failed} == {"r3", "r8"}
    context.close()


def test_dq_failures_are_archived_too(tmp_path: Path, make_csv: Callable[..., Path]) -> None:
    context, summary = run(tmp_path, make_csv, [activity_row("ok"), "bad,row"])
    written = archive(context.database, context.storage, summary["root_id"])
    assert written.terminals == {"DQ_CHECK_FAIL": 1}
    line = json.loads(Path(written.storage_location.removeprefix("file://")).read_text())
    assert [n["action_taken"] for n in line["lineage"]] == [
        "RAW_DATA_INPUT",
        "PROFILE_COMPLETE",
        "DQ_CHECK_FAIL",
    ]
    assert line["record_id"] == line["lineage"][-1]["node_id"]
    context.close()


def test_questions_about_unknown_ids_exit_1_with_the_id(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for command in ("tree", "archive", "openlineage", "verify"):
        result = invoke("lineage", command, "no-such-root", "--workspace", ws, "--json")
        assert result.exit_code == 1, (command, result.output)
        assert "no-such-root" in json.loads(result.stdout)["error"]["message"]
