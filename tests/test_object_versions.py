"""Reliability, issue 17 items 1, 2 and 11: an input, once landed, is never overwritten,
and every execution works on exactly the bytes it landed, even when keys collide."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from carbonlake.executions import Context, Pipeline
from carbonlake.lineage.verify import verify
from carbonlake.settings import load_settings

from .conftest import activity_row

CARBONLAKE = (sys.executable, "-m", "carbonlake.cli")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def objects(workspace: Path, bucket: str) -> dict[str, str]:
    """Relative key -> SHA-256 of every object in a bucket folder."""
    base = workspace / bucket
    return {str(p.relative_to(base)): sha256(p) for p in sorted(base.rglob("*")) if p.is_file()}


def calculated_ids(context: Context, root_id: str) -> set[str]:
    rows = context.database.emissions_of_root(root_id)
    return {str(r["activity_event_id"]) for r in rows}


def test_reusing_a_key_keeps_both_inputs_and_verify_stays_green(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    k1 = make_csv([activity_row("a-1"), activity_row("a-2")], name="k1.csv")
    k2 = make_csv([activity_row("b-1", raw_data="20")], name="k2.csv")
    pipeline = Pipeline(context)
    first = pipeline.run_file(k1, "fleet.csv")
    second = pipeline.run_file(k2, "fleet.csv")
    assert (first["status"], second["status"]) == ("SUCCEEDED", "SUCCEEDED")
    workspace = context.settings.workspace
    raw = objects(workspace, "raw")
    # Both versions are kept, each exactly once, the first under the key itself.
    assert sorted(raw.values()) == sorted([sha256(k1), sha256(k2)])
    assert raw["fleet.csv"] == sha256(k1)
    assert first["storage_location"].endswith("/raw/fleet.csv")
    assert second["storage_location"] != first["storage_location"]
    assert sha256(k2)[:16] in second["storage_location"]
    assert objects(workspace, "landing") == {}
    report = verify(context.database, context.storage)
    assert report.ok, report.problems


def test_a_version_that_fails_quality_is_not_in_two_buckets_under_one_key(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    good = make_csv([activity_row("a-1")], name="good.csv")
    bad = make_csv(["x,y"], name="bad.csv", header="not,activity")
    pipeline = Pipeline(context)
    assert pipeline.run_file(good, "fleet.csv")["status"] == "SUCCEEDED"
    failed = pipeline.run_file(bad, "fleet.csv")
    assert failed["status"] == "FAILED"
    workspace = context.settings.workspace
    raw, error = objects(workspace, "raw"), objects(workspace, "error")
    assert raw == {"fleet.csv": sha256(good)}
    assert list(error.values()) == [sha256(bad)]
    assert "fleet.csv" not in error  # one key, one bucket
    assert verify(context.database, context.storage).ok


def test_same_key_same_content_again_with_force_keeps_one_good_copy(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    k1 = make_csv([activity_row("a-1")], name="k1.csv")
    pipeline = Pipeline(context)
    pipeline.run_file(k1, "fleet.csv")
    again = pipeline.run_file(k1, "fleet.csv", force=True)
    assert again["status"] == "SUCCEEDED"
    assert set(objects(context.settings.workspace, "raw").values()) == {sha256(k1)}
    assert verify(context.database, context.storage).ok


def test_two_runs_of_one_key_at_once_each_calculate_their_own_bytes(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    """`run A.csv --key fleet.csv & run B.csv --key fleet.csv`, as two processes."""
    workspace = tmp_path / "ws"
    a_rows = [activity_row(f"a-{i}") for i in range(300)]
    b_rows = [activity_row(f"b-{i}", raw_data="3") for i in range(300)]
    a = make_csv(a_rows, name="A.csv")
    b = make_csv(b_rows, name="B.csv")
    # Create the workspace first so both processes open an existing one.
    Context.open(load_settings(workspace, environ={})).close()
    procs = [
        subprocess.Popen(
            [
                *CARBONLAKE,
                "run",
                str(p),
                "--key",
                "fleet.csv",
                "--json",
                "--workspace",
                str(workspace),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in (a, b)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    summaries = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        summaries.append(json.loads(out)[0] if out.lstrip().startswith("[") else json.loads(out))
    context = Context.open(load_settings(workspace, environ={}))
    try:
        for summary, prefix in zip(summaries, ("a-", "b-"), strict=True):
            assert summary["status"] == "SUCCEEDED"
            assert summary["records_calculated"] == 300
            ids = calculated_ids(context, summary["root_id"])
            assert ids == {f"{prefix}{i}" for i in range(300)}
        raw = objects(workspace, "raw")
        assert sorted(raw.values()) == sorted([sha256(a), sha256(b)])
        assert verify(context.database, context.storage).ok
    finally:
        context.close()


def test_uploads_racing_for_one_key_in_threads_keep_both(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    """Two API-style uploads with the same filename, one right after the other."""
    files = [
        make_csv([activity_row(f"{n}-{i}") for i in range(50)], name=f"{n}.csv") for n in ("p", "q")
    ]
    summaries: dict[str, dict[str, object]] = {}

    def run(path: Path) -> None:
        own = Context.open(context.settings)
        try:
            summaries[path.stem] = Pipeline(own).run_file(path, "upload.csv")
        finally:
            own.close()

    threads = [threading.Thread(target=run, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for name in ("p", "q"):
        summary = summaries[name]
        assert summary["status"] == "SUCCEEDED"
        ids = calculated_ids(context, str(summary["root_id"]))
        assert ids == {f"{name}-{i}" for i in range(50)}
    assert verify(context.database, context.storage).ok


def test_an_object_replaced_in_landing_mid_run_is_not_calculated_as_the_first(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    """An outside writer replaces landing/fleet.csv while its execution profiles it."""
    from carbonlake.kickoff import s3_put_event

    first = make_csv([activity_row("a-1")], name="first.csv")
    second = make_csv([activity_row("b-1"), activity_row("b-2")], name="second.csv")
    landing = context.settings.workspace / "landing" / "fleet.csv"
    landing.write_bytes(first.read_bytes())

    def replace_during_profile(state: str, done: int, total: int) -> None:
        if state == "DQ_PROFILE" and done == 0:
            landing.write_bytes(second.read_bytes())

    pipeline = Pipeline(context)
    (summary,) = pipeline.run_event(
        s3_put_event("landing", "fleet.csv"), progress=replace_during_profile
    )
    assert summary["status"] == "FAILED"
    assert "was replaced while execution" in str(summary["error"])
    assert calculated_ids(context, str(summary["root_id"])) == set()
    # The new bytes wait in landing for a run of their own, which calculates them.
    assert sha256(landing) == sha256(second)
    (again,) = pipeline.run_event(s3_put_event("landing", "fleet.csv"))
    assert again["status"] == "SUCCEEDED"
    assert calculated_ids(context, str(again["root_id"])) == {"b-1", "b-2"}


def test_concurrent_force_runs_of_one_file_both_succeed(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    """Issue 17 item 11: `run --force` of one file twice at once."""
    workspace = tmp_path / "ws"
    source = make_csv([activity_row(f"f-{i}") for i in range(200)], name="fleet.csv")
    Context.open(load_settings(workspace, environ={})).close()
    command = [*CARBONLAKE, "run", str(source), "--force", "--json", "--workspace", str(workspace)]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        summary = json.loads(out)
        summary = summary[0] if isinstance(summary, list) else summary
        assert summary["status"] == "SUCCEEDED", summary
        assert summary["records_calculated"] == 200
    context = Context.open(load_settings(workspace, environ={}))
    try:
        assert set(objects(workspace, "raw").values()) == {sha256(source)}
        assert objects(workspace, "landing") == {}
        assert verify(context.database, context.storage).ok
    finally:
        context.close()


def test_redrive_after_the_batches_were_deleted_says_to_run_again(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    """Issue 17 item 11: redrive cannot rebuild deleted batch files; it says what can."""
    import shutil

    source = make_csv([activity_row("r-1"), activity_row("r-2", raw_data="5", units="furlong")])
    pipeline = Pipeline(context)
    summary = pipeline.run_file(source)
    assert summary["status"] == "FAILED"  # one record with a unit that cannot convert
    shutil.rmtree(context.settings.workspace / "transformed" / str(summary["root_id"]))
    again = pipeline.redrive(str(summary["execution_id"]))
    assert again["status"] == "FAILED"
    message = str(again["error"])
    assert "is gone" in message and "carbonlake run FILE --force" in message
    assert "raw/activity.csv" in message
    # No retries were spent on it: a missing batch file is final, not transient.
    events = context.database.execution_events(str(summary["execution_id"]))
    assert not [e for e in events if e["event_type"] == "RetryScheduled"]


def test_a_moved_workspace_verifies_exports_and_runs(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    """Issue 17 item 10: stored locations name the old folder; the moved one still works."""
    import shutil

    first = tmp_path / "first" / "ws"
    context = Context.open(load_settings(first, environ={}))
    summary = Pipeline(context).run_file(make_csv([activity_row("m-1"), activity_row("m-2")]))
    assert summary["status"] == "SUCCEEDED"
    context.close()
    moved = tmp_path / "elsewhere" / "restored-ws"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    workspace = str(moved)
    done = subprocess.run(
        [*CARBONLAKE, "lineage", "verify", "--json", "--workspace", workspace],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True
    out = tmp_path / "export.jsonl"
    done = subprocess.run(
        [*CARBONLAKE, "emissions", "export", "-o", str(out), "--workspace", workspace],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["activity_event_id"] for line in out.read_text().splitlines()} == {
        "m-1",
        "m-2",
    }
    # New work lands in the new place, and the whole ledger still verifies.
    context = Context.open(load_settings(moved, environ={}))
    try:
        shown = Pipeline(context).summary(str(summary["execution_id"]))
        assert shown["storage_location"] == (moved / "raw" / "activity.csv").as_uri()
        again = Pipeline(context).run_file(make_csv([activity_row("m-3")], name="more.csv"))
        assert again["status"] == "SUCCEEDED"
        assert again["storage_location"].startswith(moved.as_uri())
        report = verify(context.database, context.storage)
        assert report.ok, report.problems
    finally:
        context.close()


def test_a_result_replaced_by_another_file_is_reported_in_the_summary(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    """Issue 17, also: a record id that another file already had is not replaced silently."""
    first = make_csv([activity_row(f"x{i}") for i in range(1, 4)], name="january.csv")
    second = make_csv([activity_row(f"x{i}", raw_data="20") for i in range(2, 6)], name="feb.csv")
    pipeline = Pipeline(context)
    one = pipeline.run_file(first)
    assert "replaced_results" not in one
    two = pipeline.run_file(second)
    assert two["replaced_results"] == {
        "records": 2,
        "from_roots": [{"root_id": one["root_id"], "records": 2}],
    }
    # The summary stays the same when read back later (executions show).
    assert pipeline.summary(str(two["execution_id"]))["replaced_results"]["records"] == 2
    done = subprocess.run(
        [
            *CARBONLAKE,
            "run",
            str(second),
            "--force",
            "--workspace",
            str(context.settings.workspace),
        ],
        capture_output=True,
        text=True,
    )
    assert "replaced      4 earlier result(s)" in done.stdout, done.stdout


def test_the_report_coverage_counts_results_replaced_by_another_file(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    from carbonlake.report import inventory

    pipeline = Pipeline(context)
    pipeline.run_file(make_csv([activity_row(f"y{i}") for i in range(1, 5)], name="a.csv"))
    assert inventory(context.database)["coverage"]["records_replaced_by_another_file"] == 0
    pipeline.run_file(make_csv([activity_row(f"y{i}") for i in range(3, 7)], name="b.csv"))
    coverage = inventory(context.database)["coverage"]
    assert coverage["records_replaced_by_another_file"] == 2  # y3 and y4
    assert coverage["records_calculated"] == 6  # y1..y6, each once
