"""Durable executions: history, kill -9 and resume, redrive, retries, duplicates, ways in."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from carbonlake import Pipeline
from carbonlake.cli import cli
from carbonlake.executions import Context, retry_delays
from carbonlake.lineage import trace
from carbonlake.settings import RetrySettings, load_settings

from .conftest import HEADER, activity_row

FAST_RETRY = {"max_attempts": 3, "interval_s": 0.01, "jitter": False}


def open_context(workspace: Path, **overrides: dict[str, Any]) -> Context:
    return Context.open(load_settings(workspace, environ={}, overrides=overrides))


def write_rows(path: Path, count: int, start: int = 0, **row: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [
        activity_row(f"rec-{i}", raw_data=str(1 + i % 97), **row)
        for i in range(start, start + count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_process(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "carbonlake.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "carbonlake.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def emissions_table(workspace: Path) -> dict[str, tuple[float, float, str]]:
    """The results table's current rows, read by pyiceberg (not carbonlake's own reader,
    which lists the files from its registry): every record exactly once."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        "carbonlake",
        uri=f"sqlite:///{workspace / 'carbonlake.db'}",
        warehouse=(workspace / "lake").as_uri(),
    )
    table = catalog.load_table("carbonlake.emissions").scan().to_arrow()
    ids = table.column("activity_event_id").to_pylist()
    assert len(ids) == len(set(ids)), "a record is in the results table more than once"
    rows = table.select(
        ["activity_event_id", "co2e_ar4_tonnes", "co2e_ar5_tonnes", "factor_id"]
    ).to_pylist()
    return {
        r["activity_event_id"]: (r["co2e_ar4_tonnes"], r["co2e_ar5_tonnes"], r["factor_id"])
        for r in rows
    }


def enriched_ids(workspace: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted((workspace / "enriched").rglob("*.parquet")):
        if path.name.endswith(".errors.parquet"):
            continue
        ids += pl.read_parquet(path)["activity_event_id"].to_list()
    return ids


# -- records and history --------------------------------------------------------------------


def test_history_and_listing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    good = write_rows(tmp_path / "good.csv", 250)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\n" + activity_row("x", raw_data="-1") + "\n")
    env = {"CARBONLAKE_PIPELINE__BATCH_SIZE": "100"}
    runner = CliRunner()
    ok = runner.invoke(cli, ["run", str(good), "--workspace", str(ws), "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    execution_id = json.loads(ok.stdout)[0]["execution_id"]
    failed = runner.invoke(cli, ["run", str(bad), "--workspace", str(ws), "--json"], env=env)
    assert failed.exit_code == 1

    listed = json.loads(
        runner.invoke(cli, ["executions", "list", "--workspace", str(ws), "--json"]).stdout
    )
    assert {(e["status"]) for e in listed} == {"SUCCEEDED", "FAILED"}
    assert all({"execution_id", "status"} <= set(e) for e in listed)
    only_failed = runner.invoke(
        cli, ["executions", "list", "--status", "FAILED", "--workspace", str(ws), "--json"]
    )
    assert [e["status"] for e in json.loads(only_failed.stdout)] == ["FAILED"]

    shown = json.loads(
        runner.invoke(
            cli, ["executions", "show", execution_id, "--workspace", str(ws), "--json"]
        ).stdout
    )
    assert shown["status"] == "SUCCEEDED"
    assert shown["input"]["input"]["storage_location"].endswith("/landing/good.csv")
    assert shown["output"]["records_calculated"] == 250
    assert shown["started_at"] <= shown["stopped_at"]

    history = json.loads(
        runner.invoke(
            cli, ["executions", "history", execution_id, "--workspace", str(ws), "--json"]
        ).stdout
    )
    types = [e["event_type"] for e in history]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    entered = [e["state"] for e in history if e["event_type"] == "StateEntered"]
    assert entered[:3] == ["RAW_DATA_INPUT", "DQ_SETUP", "DQ_PROFILE"]
    assert "TRANSFORM" in entered and "BATCH_SPLIT" in entered
    assert types.count("MapIterationStarted") == types.count("MapIterationSucceeded") == 3
    text = runner.invoke(cli, ["executions", "history", execution_id, "--workspace", str(ws)])
    assert "MapIterationSucceeded" in text.stdout
    missing = runner.invoke(cli, ["executions", "show", "nope", "--workspace", str(ws)])
    assert missing.exit_code == 1 and "no execution" in missing.stderr


# -- crash and resume -----------------------------------------------------------------------


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "big.csv", 30_000)
    env = {
        **os.environ,
        "CARBONLAKE_PIPELINE__BATCH_SIZE": "100",
        "CARBONLAKE_PIPELINE__MAX_CONCURRENCY": "1",
    }
    killed_ws = tmp_path / "killed"
    process = cli_process("run", str(source), "--workspace", str(killed_ws), "--json", env=env)
    database = killed_ws / "carbonlake.db"
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and process.poll() is None:
        if database.exists():
            try:
                with sqlite3.connect(database, timeout=5) as conn:
                    done = conn.execute(
                        "SELECT count(*) FROM execution_states WHERE state LIKE 'MAP:%'"
                    ).fetchone()[0]
            except sqlite3.OperationalError:
                done = 0  # tables not created yet
        if done >= 20:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed; use a larger file"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with sqlite3.connect(database) as conn:
        execution_id, status = conn.execute(
            "SELECT execution_id, status FROM executions"
        ).fetchone()
        completed = conn.execute(
            "SELECT count(*) FROM execution_states WHERE state LIKE 'MAP:%'"
        ).fetchone()[0]
    assert status == "RUNNING"
    assert 20 <= completed < 300

    resumed = run_cli(
        "executions", "resume", execution_id, "--workspace", str(killed_ws), "--json", env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)[0]
    assert summary["status"] == "SUCCEEDED"
    assert summary["records_calculated"] == 30_000 and summary["records_failed"] == 0

    clean_ws = tmp_path / "clean"
    clean = run_cli("run", str(source), "--workspace", str(clean_ws), "--json", env=env)
    assert clean.returncode == 0, clean.stderr
    reference = json.loads(clean.stdout)[0]
    assert summary["co2e_tonnes"]["location_based"]["ar4"] == pytest.approx(
        reference["co2e_tonnes"]["location_based"]["ar4"]
    )

    assert emissions_table(killed_ws) == emissions_table(clean_ws)
    ids = enriched_ids(killed_ws)
    assert len(ids) == len(set(ids)) == 30_000
    with sqlite3.connect(database) as conn:
        # Record nodes: rows of the ledger, or of the files its RECORD_NODES nodes seal (a
        # file the kill left unsealed is not counted).
        in_rows = [
            r[0]
            for r in conn.execute(
                "SELECT node_id FROM lineage WHERE action_taken = 'CALCULATION_COMPLETE'"
            )
        ]
        sealed = [
            Path(r[0].removeprefix("file://"))
            for r in conn.execute(
                "SELECT storage_location FROM lineage WHERE action_taken = 'RECORD_NODES'"
            )
        ]
        history = [
            r[0]
            for r in conn.execute(
                "SELECT event_type FROM execution_events WHERE execution_id = ? ORDER BY event_id",
                (execution_id,),
            )
        ]
    in_files = pl.concat([pl.read_parquet(path) for path in sealed]).filter(
        pl.col("action_taken") == "CALCULATION_COMPLETE"
    )
    node_ids = in_rows + in_files.get_column("node_id").to_list()
    assert len(node_ids) == len(set(node_ids)) == 30_000
    assert "ExecutionResumed" in history and history[-1] == "ExecutionSucceeded"
    verify = run_cli("lineage", "verify", "--workspace", str(killed_ws))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_resume_refuses_what_it_must_not_touch(tmp_path: Path) -> None:
    context = open_context(tmp_path / "ws", pipeline={"batch_size": 100})
    pipeline = Pipeline(context)
    ok = pipeline.run_file(write_rows(tmp_path / "a.csv", 10))
    assert pipeline.resume(ok["execution_id"])["status"] == "SUCCEEDED"  # nothing to do
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\n" + activity_row("x", raw_data="-1") + "\n")
    failed = pipeline.run_file(bad)
    from carbonlake import InputDataError

    with pytest.raises(InputDataError, match="redrive"):
        pipeline.resume(failed["execution_id"])
    with pytest.raises(InputDataError, match="failed data quality"):
        pipeline.redrive(failed["execution_id"])
    with pytest.raises(InputDataError, match="only a FAILED execution"):
        pipeline.redrive(ok["execution_id"])
    with pytest.raises(InputDataError, match="no execution"):
        pipeline.resume("nope")
    context.close()


# -- redrive ----------------------------------------------------------------------------------


def test_redrive_after_the_missing_factor_is_imported(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    rows = [activity_row(f"ok-{i}") for i in range(5)]
    rows += [
        activity_row("unicorn-1", activity="Unicorn Power"),
        activity_row("unicorn-2", activity="Unicorn Power", raw_data="3"),
    ]
    source = tmp_path / "mixed.csv"
    source.write_text("\n".join([HEADER, *rows]) + "\n")
    runner = CliRunner()
    first = runner.invoke(cli, ["run", str(source), "--workspace", str(ws), "--json"])
    assert first.exit_code == 1
    summary = json.loads(first.stdout)[0]
    assert (summary["status"], summary["records_failed"]) == ("FAILED", 2)
    assert "redrive" in summary["error"]

    factors = tmp_path / "unicorn.json"
    factors.write_text(
        json.dumps(
            {
                "format": "carbonlake-factors/1",
                "factors": [
                    {
                        "scope": 1,
                        "category": "mobile-combustion",
                        "activity": "Unicorn Power",
                        "unit": "gal (US)",
                        "co2": {"value": 2.0, "unit": "kg"},
                        "source": "test",
                    }
                ],
            }
        )
    )
    imported = runner.invoke(cli, ["factors", "import", str(factors), "--workspace", str(ws)])
    assert imported.exit_code == 0, imported.output
    env = {"CARBONLAKE_CALCULATE__FACTOR_SET": "unicorn"}
    redriven = runner.invoke(
        cli,
        ["executions", "redrive", summary["execution_id"], "--workspace", str(ws), "--json"],
        env=env,
    )
    assert redriven.exit_code == 0, redriven.output
    after = json.loads(redriven.stdout)[0]
    assert after["execution_id"] == summary["execution_id"]
    assert (after["status"], after["records_calculated"], after["records_failed"]) == (
        "SUCCEEDED",
        7,
        0,
    )
    assert after["co2e_tonnes"]["location_based"]["ar4"] == pytest.approx(
        summary["co2e_tonnes"]["location_based"]["ar4"] + 13 * 2 / 1000
    )

    context = open_context(ws)
    emission = context.database.emission("unicorn-2")
    assert emission is not None and emission["co2_tonnes"] == pytest.approx(0.006)
    chain = trace(context.database, "unicorn-2")
    assert chain[-1]["action_taken"] == "CALCULATION_COMPLETE"
    assert chain[0]["action_taken"] == "RAW_DATA_INPUT"
    assert context.database.emission("ok-1")["factor_set"] == "ghgp-2022"  # not recomputed
    context.close()
    verify = runner.invoke(cli, ["lineage", "verify", "--workspace", str(ws)])
    assert verify.exit_code == 0, verify.output


def test_transient_errors_are_retried_then_redrive_finishes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    context = open_context(ws, pipeline={"batch_size": 5}, retry=FAST_RETRY)
    source = write_rows(tmp_path / "t.csv", 12)
    # The enriched bucket is a file, not a folder: every batch write fails (an OSError).
    enriched = ws / "enriched"
    enriched.rmdir()
    enriched.write_text("in the way")
    summary = Pipeline(context).run_file(source)
    assert summary["status"] == "FAILED"
    assert summary["batches_failed"] == 3 and summary["records_failed"] == 12
    events = context.database.execution_events(summary["execution_id"])
    retries = [e for e in events if e["event_type"] == "RetryScheduled"]
    assert len(retries) == 3 * 2  # max_attempts 3: two retries per batch
    one_batch = [r for r in retries if r["state"] == retries[0]["state"]]
    assert [r["details"]["delay_s"] for r in one_batch] == [0.01, 0.02]
    assert [r["details"]["attempt"] for r in one_batch] == [1, 2]
    failed = [e for e in events if e["event_type"] == "MapIterationFailed"]
    assert len(failed) == 3 and all(e["details"]["error"] for e in failed)
    enriched.unlink()
    enriched.mkdir()
    after = Pipeline(context).redrive(summary["execution_id"])
    assert (after["status"], after["records_calculated"], after["records_failed"]) == (
        "SUCCEEDED",
        12,
        0,
    )
    context.close()


def test_tolerated_batch_failures_do_not_fail_the_execution(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    context = open_context(
        ws, pipeline={"batch_size": 5, "tolerated_failure_percentage": 100}, retry=FAST_RETRY
    )
    enriched = ws / "enriched"
    enriched.rmdir()
    enriched.write_text("in the way")
    summary = Pipeline(context).run_file(write_rows(tmp_path / "t.csv", 7))
    assert summary["status"] == "SUCCEEDED"
    assert summary["batches_failed"] == 2 and summary["records_failed"] == 7
    context.close()


def test_data_errors_are_not_retried(tmp_path: Path) -> None:
    context = open_context(tmp_path / "ws", retry=FAST_RETRY)
    rows = [activity_row("a"), activity_row("b", units="kg")]
    source = tmp_path / "d.csv"
    source.write_text("\n".join([HEADER, *rows]) + "\n")
    summary = Pipeline(context).run_file(source)
    assert summary["records_failed"] == 1
    events = context.database.execution_events(summary["execution_id"])
    assert not [e for e in events if e["event_type"] == "RetryScheduled"]
    context.close()


def test_retry_delays_back_off_and_jitter() -> None:
    policy = RetrySettings(
        max_attempts=5, interval_s=1, backoff_rate=2, max_delay_s=5, jitter=False
    )
    assert retry_delays(policy) == [1, 2, 4, 5]
    jittered = retry_delays(
        RetrySettings(max_attempts=5, interval_s=1, backoff_rate=2, max_delay_s=5, jitter=True)
    )
    assert all(0 <= d <= cap for d, cap in zip(jittered, [1, 2, 4, 5], strict=True))


# -- duplicates and names ----------------------------------------------------------------------


def test_the_same_object_is_not_processed_twice(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    source = write_rows(tmp_path / "fleet.csv", 10)
    runner = CliRunner()
    first = json.loads(
        runner.invoke(cli, ["run", str(source), "--workspace", str(ws), "--json"]).stdout
    )[0]
    again = runner.invoke(cli, ["run", str(source), "--workspace", str(ws), "--json"])
    assert again.exit_code == 0
    skipped = json.loads(again.stdout)[0]
    assert skipped["status"] == "SKIPPED"
    assert skipped["duplicate_of"] == first["execution_id"]
    assert first["execution_id"] in skipped["message"] and "--force" in skipped["message"]
    assert not list((ws / "landing").rglob("*.csv"))  # nothing was landed again
    human = runner.invoke(cli, ["run", str(source), "--workspace", str(ws)])
    assert "already processed" in human.stdout

    forced = json.loads(
        runner.invoke(cli, ["run", str(source), "--force", "--workspace", str(ws), "--json"]).stdout
    )[0]
    assert forced["status"] == "SUCCEEDED" and forced["execution_id"] != first["execution_id"]
    context = open_context(ws)
    assert context.database.emissions_count() == 10  # never double counted
    assert len(context.database.executions()) == 2
    context.close()

    other_content = write_rows(tmp_path / "fleet-v2" / "fleet.csv", 10, start=100)
    changed = json.loads(
        runner.invoke(cli, ["run", str(other_content), "--workspace", str(ws), "--json"]).stdout
    )[0]
    assert changed["status"] == "SUCCEEDED"  # same key, new content: processed


def test_start_by_name(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    source = write_rows(tmp_path / "named.csv", 10)
    runner = CliRunner()
    args = ["run", str(source), "--name", "march-fleet", "--workspace", str(ws), "--json"]
    first = json.loads(runner.invoke(cli, args).stdout)[0]
    second = json.loads(runner.invoke(cli, [*args, "--force"]).stdout)[0]
    assert second["execution_id"] == first["execution_id"]
    assert second["name"] == "march-fleet"
    other = write_rows(tmp_path / "other" / "named.csv", 3, start=50)
    clash = runner.invoke(cli, ["run", str(other), "--name", "march-fleet", "--workspace", str(ws)])
    assert clash.exit_code == 1 and "already used" in clash.stderr


# -- ways in ------------------------------------------------------------------------------------


def test_kickoff_runs_an_s3_event(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    landing = ws / "landing" / "2026" / "march"
    landing.mkdir(parents=True)
    write_rows(landing / "my fleet.csv", 10)
    write_rows(landing / "second.csv", 5, start=500)
    event = {
        "Records": [
            {"s3": {"bucket": {"name": "landing"}, "object": {"key": "2026/march/my+fleet.csv"}}},
            {"s3": {"bucket": {"name": "landing"}, "object": {"key": "2026/march/second.csv"}}},
        ]
    }
    result = CliRunner().invoke(
        cli,
        ["kickoff", "--event", "-", "--workspace", str(ws), "--json"],
        input=json.dumps(event),
    )
    assert result.exit_code == 0, result.output
    summaries = json.loads(result.stdout)
    assert [s["status"] for s in summaries] == ["SUCCEEDED", "SUCCEEDED"]
    assert (ws / "raw" / "2026" / "march" / "my fleet.csv").is_file()
    bad = CliRunner().invoke(cli, ["kickoff", "--event", "-", "--workspace", str(ws)], input="{")
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr


def test_watch_once_takes_complete_files_and_leaves_temporary_ones(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "landing" / "sub").mkdir(parents=True)
    write_rows(ws / "landing" / "a.csv", 5)
    write_rows(ws / "landing" / "sub" / "b.csv", 5, start=100)
    write_rows(ws / "landing" / "c.csv.part", 5, start=200)
    (ws / "carbonlake.toml").write_text("[pipeline]\nwatch_interval_s = 0.05\n")
    result = CliRunner().invoke(
        cli, ["watch", "--once", "--polling", "--workspace", str(ws), "--json"]
    )
    assert result.exit_code == 0, result.output
    summaries = json.loads(result.stdout)
    assert sorted(s["status"] for s in summaries) == ["SUCCEEDED", "SUCCEEDED"]
    assert (ws / "raw" / "sub" / "b.csv").is_file()
    assert (ws / "landing" / "c.csv.part").is_file()


def test_watch_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text("[pipeline]\nwatch_interval_s = 0.1\n")
    process = cli_process("watch", "--workspace", str(ws), "--json")
    try:
        deadline = time.monotonic() + 30
        while not (ws / "landing").is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
        staged = write_rows(tmp_path / "staging" / "w.csv", 5)
        os.replace(staged, ws / "landing" / "w.csv")  # a complete file appears at once
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(ws / "carbonlake.db", timeout=5) as conn:
                    finished = conn.execute(
                        "SELECT count(*) FROM executions WHERE status != 'RUNNING'"
                    ).fetchone()[0]
            except sqlite3.OperationalError:
                finished = 0  # the watcher is still creating the database
            if finished:
                break
            time.sleep(0.05)
        assert (ws / "raw" / "w.csv").is_file()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert [s["status"] for s in json.loads(out)] == ["SUCCEEDED"]
    assert "Traceback" not in err


def test_two_runs_at_once_on_one_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    env = {**os.environ, "CARBONLAKE_PIPELINE__BATCH_SIZE": "200"}
    first = write_rows(tmp_path / "one.csv", 3000)
    second = write_rows(tmp_path / "two.csv", 3000, start=10_000)
    processes = [
        cli_process("run", str(path), "--workspace", str(ws), "--json", env=env)
        for path in (first, second)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert json.loads(out)[0]["records_calculated"] == 3000
    assert len(emissions_table(ws)) == 6000
    verify = run_cli("lineage", "verify", "--workspace", str(ws))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_stop_request_aborts_and_resume_finishes(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context = open_context(tmp_path / "ws", pipeline={"batch_size": 1000, "max_concurrency": 1})
    pipeline = Pipeline(context)
    calls = {"n": 0}

    def progress(stage: str, done: int, total: int) -> None:
        calls["n"] += 1
        if stage == "calculate" and done >= 1:
            pipeline.stop_requested.set()

    summary = pipeline.run_file(write_rows(tmp_path / "s.csv", 60_000), progress=progress)
    assert summary["status"] == "ABORTED"
    assert "executions resume" in summary["error"]
    assert summary["records_calculated"] < 60_000
    pipeline.stop_requested.clear()
    finished = pipeline.resume(summary["execution_id"])
    assert (finished["status"], finished["records_calculated"]) == ("SUCCEEDED", 60_000)
    assert context.database.emissions_count() == 60_000
    context.close()
