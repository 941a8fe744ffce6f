"""The map over batches on a real Dask cluster (LocalCluster with worker processes),
with S3 (SeaweedFS) and PostgreSQL: the same results as the embedded default."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carbonlake import Pipeline
from carbonlake.executions import Context
from carbonlake.lineage.verify import verify
from carbonlake.settings import load_settings

from .conftest import HEADER, SAMPLE, activity_row

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    # Workers are spawned processes: they read the AWS chain from the environment.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "carbonlake")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "carbonlake")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local_cluster:
        yield local_cluster


def emissions(context: Context) -> dict[str, tuple[Any, ...]]:
    return {
        r["activity_event_id"]: (r["co2_tonnes"], r["co2e_ar4_tonnes"], r["co2e_ar5_tonnes"])
        for r in context.database.emissions_of_root(None)
    }


def test_s3_postgres_and_dask_equal_the_embedded_default(
    tmp_path: Path, cluster: Any, s3_endpoint: str, postgres_url: str
) -> None:
    bucket = f"dask-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        tmp_path / "ws",
        environ={},
        overrides={
            "storage": {"root": f"s3://{bucket}", "endpoint_url": s3_endpoint},
            "database": {"url": postgres_url},
            "pipeline": {
                "executor": "dask",
                "dask_scheduler": cluster.scheduler_address,
                "batch_size": 250,
                "split_chunk_mb": 0.1,  # about ten byte ranges, one worker task each
            },
        },
    )
    context = Context.open(settings)
    summary = Pipeline(context).run_file(SAMPLE)
    assert summary["status"] == "SUCCEEDED", summary["error"]
    execution = context.database.get_execution(summary["execution_id"])
    assert execution is not None
    checkpoints = context.database.checkpoints(summary["execution_id"])
    split = checkpoints["TRANSFORM"]
    assert split["chunks"] > 5 and split["records"] == 8000
    # The move's read of its copy in raw gave the SHA-256 and the split's ranges (after
    # the header line).
    data = SAMPLE.read_bytes()
    checked = checkpoints["DQ_CHECK_RESULTS"]
    assert checked["object_sha256"] == hashlib.sha256(data).hexdigest()
    offsets = checked["split_offsets"]
    assert offsets[0] == data.index(b"\n") + 1 and offsets[-1] == len(data)
    assert len(offsets) == split["chunks"] + 1
    assert all(data[cut - 1 : cut] == b"\n" for cut in offsets[1:-1])
    # Each worker wrote its own batch files, named by its byte range.
    assert summary["batches"] == split["batches"] >= split["chunks"]

    local = Context.open(load_settings(tmp_path / "local", environ={}))
    Pipeline(local).run_file(SAMPLE)
    assert emissions(context) == emissions(local)
    assert verify(context.database, context.storage).ok
    with SAMPLE.open() as handle:
        ids = [line.split(",", 1)[0] for line in handle.readlines()[1:]]
    rows = {
        n["node_id"]: n["row_number"]
        for n in context.database.lineage_of_root(summary["root_id"])
        if n["action_taken"] == "CALCULATION_COMPLETE"
    }
    assert rows == {record_id: i for i, record_id in enumerate(ids, start=1)}
    history = [e["event_type"] for e in context.database.execution_events(summary["execution_id"])]
    assert history.count("MapIterationSucceeded") == summary["batches"]
    context.close()
    local.close()


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    tmp_path: Path, cluster: Any
) -> None:
    source = tmp_path / "big.csv"
    lines = [HEADER] + [activity_row(f"k{i}", raw_data=str(i % 90 + 1)) for i in range(100_000)]
    source.write_text("\n".join(lines) + "\n")
    settings = load_settings(
        tmp_path / "ws",
        environ={},
        overrides={"pipeline": {"executor": "dask", "dask_scheduler": cluster.scheduler_address}},
    )
    context = Context.open(settings)
    results: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: results.update(Pipeline(context).run_file(source)), daemon=True
    )
    runner.start()
    client = distributed.Client(cluster.scheduler_address)
    try:
        deadline = time.monotonic() + 120
        killed = False
        while runner.is_alive() and time.monotonic() < deadline and not killed:
            started = [
                e
                for ex in context.database.executions()
                for e in context.database.execution_events(ex["execution_id"])
                if e["event_type"] == "MapIterationStarted"
            ]
            if started:
                pids = client.run(os.getpid)
                os.kill(next(iter(pids.values())), signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        runner.join(timeout=300)
    finally:
        client.close()
    assert killed
    assert results["status"] == "SUCCEEDED", results.get("error")
    assert results["records_calculated"] == 100_000
    rows = emissions(context)
    assert len(rows) == 100_000
    lineage = [
        n
        for n in context.database.lineage_of_root(results["root_id"])
        if n["action_taken"] == "CALCULATION_COMPLETE"
    ]
    assert len(lineage) == len({n["node_id"] for n in lineage}) == 100_000
    assert verify(context.database, context.storage).ok
    context.close()
