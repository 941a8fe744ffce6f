"""The same pipeline on a real S3-compatible server (SeaweedFS on loopback)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from carbonlake import Pipeline
from carbonlake._exceptions import InputDataError, ObjectMissing, StorageUnavailable
from carbonlake.executions import Context
from carbonlake.settings import load_settings
from carbonlake.storage import Storage

from .conftest import HEADER, SAMPLE, activity_row

pytestmark = pytest.mark.usefixtures("s3_credentials")


def s3_client(endpoint: str) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="carbonlake",
        aws_secret_access_key="carbonlake",
        region_name="us-east-1",
    )


def s3_settings(workspace: Path, endpoint: str, prefix: str, **more: dict[str, object]) -> object:
    storage = {"root": f"s3://{prefix}", "endpoint_url": endpoint}
    return load_settings(workspace, environ={}, overrides={"storage": storage, **more})


def keys(endpoint: str, bucket: str) -> list[str]:
    listed = s3_client(endpoint).list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_sample_on_s3_equals_the_embedded_default(tmp_path: Path, s3_endpoint: str) -> None:
    bucket = f"carbon-{uuid.uuid4().hex[:8]}"
    context = Context.open(s3_settings(tmp_path / "ws", s3_endpoint, bucket))
    summary = Pipeline(context).run_file(SAMPLE, key="2026/march/fleet sample.csv")
    assert summary["status"] == "SUCCEEDED", summary["error"]
    assert summary["storage_location"] == f"s3://{bucket}/raw/2026/march/fleet sample.csv"
    objects = keys(s3_endpoint, bucket)
    assert "raw/2026/march/fleet sample.csv" in objects
    assert "landing/2026/march/fleet sample.csv" not in objects  # moved, not copied
    assert len([k for k in objects if k.startswith("enriched/")]) == 8
    assert f"dq-results/{summary['root_id']}/report.json" in objects

    local = Context.open(load_settings(tmp_path / "local", environ={}))
    reference = Pipeline(local).run_file(SAMPLE)
    s3_rows = {r["activity_event_id"]: r for r in context.database.emissions_of_root(None)}
    local_rows = {r["activity_event_id"]: r for r in local.database.emissions_of_root(None)}
    assert s3_rows.keys() == local_rows.keys() and len(s3_rows) == 8000
    for record_id, row in local_rows.items():
        for column in (
            "co2_tonnes",
            "ch4_tonnes",
            "n2o_tonnes",
            "co2e_ar4_tonnes",
            "co2e_ar5_tonnes",
            "co2e_ar6_tonnes",
        ):
            assert s3_rows[record_id][column] == row[column]
    assert summary["co2e_tonnes"] == reference["co2e_tonnes"]
    from carbonlake.lineage.verify import verify

    report = verify(context.database, context.storage)
    assert report.ok, report.problems[:3]
    context.close()
    local.close()


def test_a_failing_file_moves_to_the_error_bucket_on_s3(tmp_path: Path, s3_endpoint: str) -> None:
    prefix = f"carbon-{uuid.uuid4().hex[:8]}"
    context = Context.open(s3_settings(tmp_path / "ws", s3_endpoint, prefix))
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\n" + activity_row("x", raw_data="-5") + "\n")
    summary = Pipeline(context).run_file(bad)
    assert summary["status"] == "FAILED"
    objects = keys(s3_endpoint, prefix)
    assert "error/bad.csv" in objects and "landing/bad.csv" not in objects
    context.close()


def test_separate_buckets_events_and_moves(tmp_path: Path, s3_endpoint: str) -> None:
    tag = uuid.uuid4().hex[:8]
    buckets = {
        b: f"s3://{b.replace('-', '')}-{tag}"
        for b in (
            "landing",
            "raw",
            "error",
            "transformed",
            "enriched",
            "dq-results",
            "lineage-archive",
        )
    }
    overrides = {
        "storage": {
            **{b.replace("-", "_"): url for b, url in buckets.items()},
            "endpoint_url": s3_endpoint,
        }
    }
    context = Context.open(load_settings(tmp_path / "ws", environ={}, overrides=overrides))
    client = s3_client(s3_endpoint)
    body = (HEADER + "\n" + activity_row("e1") + "\n").encode()
    client.put_object(Bucket=f"landing-{tag}", Key="sites/north site.csv", Body=body)  # type: ignore[attr-defined]
    event = {
        "Records": [
            {
                "s3": {
                    "bucket": {"name": f"landing-{tag}"},
                    "object": {"key": "sites/north+site.csv"},
                }
            }
        ]
    }
    summary = Pipeline(context).run_event(event)[0]
    assert summary["status"] == "SUCCEEDED", summary["error"]
    assert summary["storage_location"] == f"s3://raw-{tag}/sites/north site.csv"
    assert keys(s3_endpoint, f"raw-{tag}") == ["sites/north site.csv"]
    assert keys(s3_endpoint, f"landing-{tag}") == []
    report = json.loads(
        client.get_object(  # type: ignore[attr-defined]
            Bucket=f"dqresults-{tag}", Key=f"{summary['root_id']}/report.json"
        )["Body"].read()
    )
    assert report["passed"] is True
    context.close()


def test_storage_move_streams_large_objects_between_stores(
    tmp_path: Path, s3_endpoint: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    storage = Storage(
        f"s3://big-{tag}",
        buckets={"raw": (tmp_path / "raw").as_uri()},
        options={"endpoint_url": s3_endpoint},
    )
    storage.ensure_buckets()
    source = tmp_path / "large.bin"
    with source.open("wb") as handle:
        for i in range(24):  # 24 MiB: several multipart chunks
            handle.write(bytes([i]) * (1 << 20))
    landing = storage.url("landing", "large.bin")
    storage.put_file(source, landing)
    assert storage.size(landing) == 24 << 20
    moved = storage.move(landing, "raw")
    assert Path(moved.removeprefix("file://")).read_bytes() == source.read_bytes()
    assert not storage.exists(landing)


def test_watch_polls_an_s3_landing_bucket(tmp_path: Path, s3_endpoint: str) -> None:
    from carbonlake.watch import Watcher

    prefix = f"carbon-{uuid.uuid4().hex[:8]}"
    settings = s3_settings(tmp_path / "ws", s3_endpoint, prefix, pipeline={"watch_interval_s": 0.1})
    context = Context.open(settings)
    client = s3_client(s3_endpoint)
    for i in range(3):
        body = (HEADER + "\n" + activity_row(f"w{i}") + "\n").encode()
        client.put_object(Bucket=prefix, Key=f"landing/site-{i}.csv", Body=body)  # type: ignore[attr-defined]
    client.put_object(Bucket=prefix, Key="landing/upload.csv.part", Body=b"x")  # type: ignore[attr-defined]
    summaries = Watcher(Pipeline(context), use_events=False).run(once=True)
    assert sorted(s["status"] for s in summaries) == ["SUCCEEDED"] * 3
    assert [k for k in keys(s3_endpoint, prefix) if k.startswith("landing/")] == [
        "landing/upload.csv.part"
    ]
    context.close()


def test_reusing_a_key_on_s3_keeps_both_versions(tmp_path: Path, s3_endpoint: str) -> None:
    """Issue 17 item 1 on an object store: the second file under a key gets a version key."""
    import hashlib

    from carbonlake.lineage.verify import verify

    bucket = f"carbon-{uuid.uuid4().hex[:8]}"
    context = Context.open(s3_settings(tmp_path / "ws", s3_endpoint, bucket))
    first, second = tmp_path / "k1.csv", tmp_path / "k2.csv"
    first.write_text(f"{HEADER}\n{activity_row('a-1')}\n", encoding="utf-8")
    second.write_text(f"{HEADER}\n{activity_row('b-1', raw_data='7')}\n", encoding="utf-8")
    pipeline = Pipeline(context)
    assert pipeline.run_file(first, key="fleet.csv")["status"] == "SUCCEEDED"
    assert pipeline.run_file(second, key="fleet.csv")["status"] == "SUCCEEDED"
    sha = hashlib.sha256(second.read_bytes()).hexdigest()
    raw = [k for k in keys(s3_endpoint, bucket) if k.startswith("raw/")]
    assert raw == sorted(["raw/fleet.csv", f"raw/fleet.{sha[:16]}.csv"])
    client = s3_client(s3_endpoint)
    body = client.get_object(Bucket=bucket, Key="raw/fleet.csv")["Body"].read()  # type: ignore[attr-defined]
    assert body == first.read_bytes()
    assert verify(context.database, context.storage).ok
    context.close()


def test_a_results_file_gone_from_s3_leaves_the_others_readable(
    tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = f"carbon-{uuid.uuid4().hex[:8]}"
    settings = s3_settings(tmp_path / "ws", s3_endpoint, bucket)
    context = Context.open(settings)
    try:
        pipeline = Pipeline(context)
        rows = [activity_row(f"a{i}") for i in range(3)]
        first = tmp_path / "first.csv"
        first.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
        second = tmp_path / "second.csv"
        second.write_text(HEADER + "\n" + activity_row("b0") + "\n")
        assert pipeline.run_file(first)["status"] == "SUCCEEDED"
        gone_root = pipeline.run_file(second)["root_id"]
        results = [
            k for k in keys(s3_endpoint, bucket) if k.startswith("lake/carbonlake/emissions/data/")
        ]
        (gone,) = [k for k in results if f"/{gone_root}/" in k]
        s3_client(s3_endpoint).delete_object(Bucket=bucket, Key=gone)  # type: ignore[attr-defined]
    finally:
        context.close()

    reopened = Context.open(settings)
    try:
        found = sorted(r["activity_event_id"] for r in reopened.database.emissions_of_root(None))
        assert found == ["a0", "a1", "a2"]
        assert reopened.database.emission("b0") is None
        assert reopened.database.emission("a1") is not None
        from carbonlake.lineage.verify import verify

        report = verify(reopened.database, reopened.storage, stop_at_first=False)
        missing = [p for p in report.problems if p.kind == "results_file_missing"]
        assert [p.storage_location for p in missing] == [f"s3://{bucket}/{gone}"]
    finally:
        reopened.close()


def test_bulk_reads_and_writes_keep_order_and_name_a_missing_object(
    tmp_path: Path, s3_endpoint: str
) -> None:
    # write_many / read_many go to the server concurrently (fsspec's bulk pipe; pyarrow's
    # S3 client on a thread pool);
    # one bucket is a local folder here, so a call spans both kinds of store.
    tag = uuid.uuid4().hex[:8]
    storage = Storage(
        f"s3://bulk-{tag}",
        buckets={"raw": (tmp_path / "raw").as_uri()},
        options={"endpoint_url": s3_endpoint},
    )
    storage.ensure_buckets()
    objects = [
        (storage.url("enriched", f"r/part_{i:05d}.parquet"), bytes([i]) * (i + 1))
        for i in range(40)
    ]
    objects.insert(7, (storage.url("raw", "r/local.bin"), b"on the local disk"))
    storage.write_many(objects)
    assert sorted(keys(s3_endpoint, f"bulk-{tag}")) == sorted(
        f"enriched/r/part_{i:05d}.parquet" for i in range(40)
    )
    assert (tmp_path / "raw" / "r" / "local.bin").read_bytes() == b"on the local disk"
    urls = [url for url, _ in reversed(objects)]
    assert storage.read_many(urls) == [data for _, data in reversed(objects)]
    gone = storage.url("enriched", "r/part_99999.parquet")
    with pytest.raises(ObjectMissing, match=r"part_99999\.parquet does not exist"):
        storage.read_many([urls[0], gone, urls[1]])
    assert storage.read_many([]) == []


def test_a_file_landed_from_this_machine_is_read_from_it_while_it_is_unchanged(
    tmp_path: Path, s3_endpoint: str
) -> None:
    """local_path gives the local file an object was uploaded from (no download) while the
    file is as it was uploaded; a file changed since is downloaded instead, and one that
    changes while it is read is an error naming it."""
    storage = Storage(f"s3://source-{uuid.uuid4().hex[:8]}", options={"endpoint_url": s3_endpoint})
    storage.ensure_buckets()
    import hashlib

    source = tmp_path / "fleet.csv"
    source.write_bytes(b"the bytes uploaded\n")
    url = storage.put_new(
        source, "landing", "fleet.csv", hashlib.sha256(source.read_bytes()).hexdigest()
    )
    with storage.local_path(url) as path:
        assert path == source
    changed = r"fleet\.csv changed while carbonlake was reading"
    with pytest.raises(InputDataError, match=changed), storage.local_path(url) as path:
        path.write_bytes(b"the bytes changed\n")  # the same size
    # Changed since the upload (its size differs now): the object's own bytes.
    source.write_bytes(b"other bytes, longer than before\n")
    with storage.local_path(url) as path:
        assert path != source
        assert path.read_bytes() == b"the bytes uploaded\n"
    # Once moved on, what was known of the upload is gone with it.
    raw = storage.move(url, "raw")
    with pytest.raises(ObjectMissing), storage.local_path(url):
        pass
    assert storage.read_bytes(raw) == b"the bytes uploaded\n"


def test_a_local_file_changed_after_it_landed_on_s3_is_not_what_is_calculated(
    tmp_path: Path, s3_endpoint: str
) -> None:
    """`carbonlake run FILE` on S3 profiles the file it uploaded from the local copy only
    while that copy is unchanged: a file rewritten meanwhile is read from landing, and the
    records calculated are the ones that landed."""
    bucket = f"rewritten-{uuid.uuid4().hex[:8]}"
    context = Context.open(s3_settings(tmp_path / "ws", s3_endpoint, bucket))
    source = tmp_path / "fleet.csv"
    source.write_text(f"{HEADER}\n{activity_row('a-1')}\n{activity_row('a-2')}\n")

    def rewrite_before_profile(state: str, done: int, total: int) -> None:
        if state == "DQ_PROFILE" and done == 0:
            source.write_text(f"{HEADER}\n{activity_row('b-1')}\n")

    try:
        summary = Pipeline(context).run_file(source, progress=rewrite_before_profile)
        assert summary["status"] == "SUCCEEDED"
        found = context.database.emissions_of_root(str(summary["root_id"]))
        assert sorted(str(r["activity_event_id"]) for r in found) == ["a-1", "a-2"]
    finally:
        context.close()


def test_a_copy_that_does_not_match_is_removed_and_the_original_kept(
    tmp_path: Path, s3_endpoint: str
) -> None:
    # The move verifies its copy against the SHA-256 the caller checked; here the caller's
    # hash is not the object's (as when the object was replaced after the check).
    tag = uuid.uuid4().hex[:8]
    storage = Storage(
        f"s3://mismatch-{tag}",
        buckets={"error": (tmp_path / "error").as_uri()},
        options={"endpoint_url": s3_endpoint},
    )
    storage.ensure_buckets()
    landing = storage.url("landing", "fleet.csv")
    storage.write_bytes(landing, b"the bytes in landing\n")
    for bucket in ("raw", "error"):  # a server-side copy, and a copy to a local folder
        with pytest.raises(StorageUnavailable, match="does not match the original"):
            storage.move(landing, bucket, sha256=lambda: "0" * 64)
        assert storage.read_bytes(landing) == b"the bytes in landing\n"
        assert not storage.exists(storage.url(bucket, "fleet.csv"))


def test_an_object_replaced_in_landing_mid_run_on_s3_is_not_calculated(
    tmp_path: Path, s3_endpoint: str
) -> None:
    """On an object store the move's verified copy is the landing check: an outside writer
    that replaces the object while it is profiled fails the run, naming the object, and
    the new bytes wait in landing (no copy of them in raw) for a run of their own."""
    import hashlib

    from carbonlake.kickoff import s3_put_event

    bucket = f"replaced-{uuid.uuid4().hex[:8]}"
    context = Context.open(s3_settings(tmp_path / "ws", s3_endpoint, bucket))
    client = s3_client(s3_endpoint)
    first = f"{HEADER}\n{activity_row('a-1')}\n".encode()
    second = f"{HEADER}\n{activity_row('b-1')}\n{activity_row('b-2')}\n".encode()
    client.put_object(Bucket=bucket, Key="landing/fleet.csv", Body=first)  # type: ignore[attr-defined]

    def replace_during_profile(state: str, done: int, total: int) -> None:
        if state == "DQ_PROFILE" and done == 0:
            client.put_object(Bucket=bucket, Key="landing/fleet.csv", Body=second)  # type: ignore[attr-defined]

    try:
        pipeline = Pipeline(context)
        event = s3_put_event("landing", "fleet.csv")
        (summary,) = pipeline.run_event(event, progress=replace_during_profile)
        assert summary["status"] == "FAILED"
        assert "landing/fleet.csv was replaced while execution" in str(summary["error"])
        assert hashlib.sha256(second).hexdigest() in str(summary["error"])
        assert context.database.emissions_of_root(str(summary["root_id"])) == []
        assert [k for k in keys(s3_endpoint, bucket) if k.startswith(("raw/", "error/"))] == []
        body = client.get_object(Bucket=bucket, Key="landing/fleet.csv")["Body"].read()  # type: ignore[attr-defined]
        assert body == second
        (again,) = pipeline.run_event(s3_put_event("landing", "fleet.csv"))
        assert again["status"] == "SUCCEEDED"
        found = context.database.emissions_of_root(str(again["root_id"]))
        assert sorted(str(r["activity_event_id"]) for r in found) == ["b-1", "b-2"]
    finally:
        context.close()
