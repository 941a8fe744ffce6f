"""The database-facing behaviour on both back ends: SQLite and a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from carbonlake import Pipeline
from carbonlake.calculate.factors import import_factor_file
from carbonlake.database import Database
from carbonlake.db import EmissionFilter
from carbonlake.executions import Context
from carbonlake.lineage import trace
from carbonlake.lineage.verify import verify
from carbonlake.settings import load_settings

from .conftest import HEADER, SAMPLE, activity_row

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'carbonlake.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def open_context(workspace: Path, url: str, **more: dict[str, Any]) -> Context:
    return Context.open(
        load_settings(workspace, environ={}, overrides={"database": {"url": url}, **more})
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, ...]]:
    context = Context.open(load_settings(tmp_path_factory.mktemp("ref") / "ws", environ={}))
    Pipeline(context).run_file(SAMPLE)
    rows = {
        r["activity_event_id"]: (r["co2_tonnes"], r["co2e_ar4_tonnes"], r["co2e_ar6_tonnes"])
        for r in context.database.emissions_of_root(None)
    }
    context.close()
    return rows


def test_sample_record_for_record(
    tmp_path: Path, database_url: str, reference: dict[str, tuple[Any, ...]]
) -> None:
    context = open_context(tmp_path / "ws", database_url)
    summary = Pipeline(context).run_file(SAMPLE)
    assert summary["status"] == "SUCCEEDED", summary["error"]
    rows = {
        r["activity_event_id"]: (r["co2_tonnes"], r["co2e_ar4_tonnes"], r["co2e_ar6_tonnes"])
        for r in context.database.emissions_of_root(None)
    }
    assert rows == reference
    chain = trace(context.database, next(iter(rows)))
    assert chain[0]["action_taken"] == "RAW_DATA_INPUT"
    report = verify(context.database, context.storage)
    assert report.ok, report.problems[:3]
    events = context.database.execution_events(summary["execution_id"])
    assert events[0]["event_type"] == "ExecutionStarted"
    assert events[-1]["event_type"] == "ExecutionSucceeded"
    again = Pipeline(context).run_file(SAMPLE)
    assert again["status"] == "SKIPPED" and again["duplicate_of"] == summary["execution_id"]
    context.close()


def test_redrive_and_factor_import(tmp_path: Path, database_url: str) -> None:
    context = open_context(tmp_path / "ws", database_url)
    source = tmp_path / "m.csv"
    source.write_text(
        "\n".join([HEADER, activity_row("a"), activity_row("u", activity="Unicorn Power")]) + "\n"
    )
    failed = Pipeline(context).run_file(source)
    assert (failed["status"], failed["records_failed"]) == ("FAILED", 1)
    assert context.database.failure_stats(EmissionFilter())["records_failed"] == 1
    factors = tmp_path / "unicorn.json"
    factors.write_text(
        json.dumps(
            {
                "format": "carbonlake-factors/1",
                "factors": [
                    {
                        "category": "mobile-combustion",
                        "activity": "Unicorn Power",
                        "unit": "gal (US)",
                        "co2": {"value": 1.0, "unit": "kg"},
                    }
                ],
            }
        )
    )
    imported, created = import_factor_file(factors, context.database)
    assert created
    assert [s["version"] for s in context.database.factor_sets()] == [imported.version]
    context.close()
    context = open_context(tmp_path / "ws", database_url, calculate={"factor_set": imported.label})
    after = Pipeline(context).redrive(failed["execution_id"])
    assert (after["status"], after["records_calculated"], after["records_failed"]) == (
        "SUCCEEDED",
        2,
        0,
    )
    assert context.database.emission("u")["co2_tonnes"] == pytest.approx(0.01)
    # The record calculated now is no longer a failure (cleared in the group's commit).
    assert context.database.failure_stats(EmissionFilter())["records_failed"] == 0
    assert verify(context.database, context.storage).ok
    context.close()


def test_concurrent_writers_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    Database(postgres_url).close()  # migrate once, then many writers
    env = {
        **os.environ,
        "CARBONLAKE_DATABASE__URL": postgres_url,
        "CARBONLAKE_PIPELINE__BATCH_SIZE": "100",
    }
    sources = []
    for n in range(3):
        path = tmp_path / f"site-{n}.csv"
        lines = [HEADER] + [
            activity_row(f"s{n}-{i}", raw_data=str(i % 50 + 1)) for i in range(2000)
        ]
        path.write_text("\n".join(lines) + "\n")
        sources.append(path)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "carbonlake.cli",
                "run",
                str(path),
                "--workspace",
                str(tmp_path / "ws"),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for path in sources
    ]
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        assert json.loads(out)[0]["records_calculated"] == 2000
    database = Database(postgres_url)
    assert database.emissions_count() == 6000
    assert len(database.executions()) == 3
    database.close()


def test_bulk_reads_on_another_fsspec_store_keep_order_and_name_a_missing_object() -> None:
    """read_many takes pyarrow's client on S3 only: another fsspec store (here fsspec's
    in-memory one) is read through its own bulk ``cat``, and DuckDB is given the store's
    own filesystem."""
    import uuid

    from carbonlake._exceptions import ObjectMissing
    from carbonlake.storage import Storage

    storage = Storage(f"memory://bulk-{uuid.uuid4().hex[:8]}")
    storage.ensure_buckets()
    objects = [(storage.url("enriched", f"r/part_{i}"), bytes([i]) * (i + 1)) for i in range(6)]
    storage.write_many(objects)
    urls = [url for url, _ in reversed(objects)]
    assert storage.read_many(urls) == [data for _, data in reversed(objects)]
    gone = storage.url("enriched", "r/part_99")
    with pytest.raises(ObjectMissing, match=r"part_99 does not exist"):
        storage.read_many([urls[0], gone, urls[1]])
    assert storage.read_filesystem("enriched") is storage.filesystem("enriched")
