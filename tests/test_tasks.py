"""Every task of the spec, fed the documented input, returns the documented output."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from carbonlake import CalculationError, InputDataError, tasks, transform
from carbonlake.database import Database
from carbonlake.lineage import trace
from carbonlake.settings import Settings

from .conftest import activity_row


def s3_event(*keys: str, bucket: str = "landing") -> dict[str, object]:
    return {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}},
            }
            for key in keys
        ]
    }


def land(settings: Settings, source: Path, key: str) -> None:
    target = settings.workspace / "landing" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def test_kickoff_decodes_keys_and_gives_unique_root_ids(settings: Settings) -> None:
    single = tasks.kickoff(s3_event("2026/march/my+fleet%2Bdata.csv"), settings=settings)
    assert isinstance(single, dict)
    assert set(single) == {"input"}
    assert set(single["input"]) == {"root_id", "storage_location"}
    landing = settings.workspace.resolve() / "landing"
    assert single["input"]["storage_location"] == (f"file://{landing}/2026/march/my fleet+data.csv")
    many = tasks.kickoff(s3_event("a.csv", "b.csv"), settings=settings)
    assert isinstance(many, list) and len(many) == 2
    ids = {item["input"]["root_id"] for item in many} | {single["input"]["root_id"]}
    assert len(ids) == 3


def test_kickoff_refuses_events_it_cannot_use(settings: Settings) -> None:
    with pytest.raises(InputDataError, match="detail is text"):
        tasks.kickoff({"detail": "not s3"}, settings=settings)
    with pytest.raises(InputDataError, match="no 'Records'"):
        tasks.kickoff({"not": "an event"}, settings=settings)
    with pytest.raises(InputDataError, match="not in this workspace's storage"):
        tasks.kickoff(s3_event("a.csv", bucket="somewhere-else"), settings=settings)
    with pytest.raises(InputDataError, match="landing"):
        tasks.kickoff(s3_event("a.csv", bucket="raw"), settings=settings)


def test_every_stage_contract_in_spec_order(
    settings: Settings, make_csv: Callable[..., Path]
) -> None:
    rows = [activity_row(f"rec-{i}", raw_data=str(i + 1)) for i in range(5)]
    land(settings, make_csv(rows), "fleet/jan.csv")

    started = tasks.kickoff(s3_event("fleet/jan.csv"), settings=settings)
    assert isinstance(started, dict)
    root_id = started["input"]["root_id"]
    landing_url = started["input"]["storage_location"]

    raw_input = tasks.data_lineage(
        {
            "root_id": root_id,
            "parent_id": root_id,
            "action_taken": "RAW_DATA_INPUT",
            "record": {"storage_location": landing_url},
        },
        settings=settings,
    )
    assert set(raw_input["data_lineage"]) == {
        "root_id",
        "action_taken",
        "storage_location",
        "node_id",
    }
    raw_node = raw_input["data_lineage"]["node_id"]

    setup = tasks.dq_setup(
        {"event_type": "SETUP", "storage_location": landing_url, "root_id": root_id},
        settings=settings,
    )
    resources = setup["data_quality"]
    assert set(resources) == {
        "dataset_name",
        "dataset_arn",
        "ruleset_name",
        "ruleset_arn",
        "job_name",
        "job_arn",
    }
    assert resources["job_arn"].startswith("arn:") and resources["job_arn"].endswith(
        resources["job_name"]
    )

    profiled = tasks.dq_profile({"Name": resources["job_name"]}, settings=settings)
    results = profiled["data_quality"]["results"]
    location = results["Outputs"][0]["Location"]
    assert location == {"Bucket": "dq-results", "Key": f"{root_id}/report.json"}
    report = json.loads((settings.workspace / "dq-results" / location["Key"]).read_text())
    assert report["passed"] is True and report["rowsCount"] == 5

    cleanup_event = {
        "event_type": "CLEANUP",
        "dataset_name": resources["dataset_name"],
        "ruleset_name": resources["ruleset_name"],
        "job_name": resources["job_name"],
    }
    assert tasks.dq_cleanup(cleanup_event, settings=settings) == cleanup_event
    with pytest.raises(InputDataError, match="no data-quality job"):
        tasks.dq_profile({"Name": resources["job_name"]}, settings=settings)

    checked = tasks.dq_check_results(
        {"storage_location": landing_url, "dq_results": results}, settings=settings
    )
    raw_url = landing_url.replace("/landing/", "/raw/")
    assert checked == {"status": True, "storage_location": raw_url}
    assert not (settings.workspace / "landing" / "fleet" / "jan.csv").exists()
    assert (settings.workspace / "raw" / "fleet" / "jan.csv").is_file()

    passed = tasks.data_lineage(
        {
            "root_id": root_id,
            "parent_id": raw_node,
            "action_taken": "DQ_CHECK_PASS",
            "record": {"storage_location": raw_url},
        },
        settings=settings,
    )["data_lineage"]
    assert passed["action_taken"] == "DQ_CHECK_PASS" and passed["storage_location"] == raw_url

    job = tasks.transform(
        {"JobName": "carbonlake-transform", "Arguments": {"--UNIQUE_DIRECTORY": root_id}},
        settings=settings,
    )
    assert set(job) == {"job_name", "job_id", "job_state"}
    assert job["job_state"] == "SUCCEEDED" and job["job_name"] == "carbonlake-transform"

    batches = tasks.enumerate_batches({"batch_location_dir": root_id}, settings=settings)
    assert set(batches) == {"batches"}
    assert [set(b) for b in batches["batches"]] == [{"node_id", "storage_location"}]
    batch = batches["batches"][0]
    assert batch["storage_location"].endswith(f"/transformed/{root_id}/part_00000.parquet")

    split = tasks.data_lineage(
        {
            "root_id": root_id,
            "parent_id": passed["node_id"],
            "action_taken": "GLUE_BATCH_SPLIT",
            "records": batches["batches"],
        },
        settings=settings,
    )["data_lineage"]
    assert split["records"] == batches["batches"]

    calculated = tasks.calculate_co2e(
        {"storage_location": batch["storage_location"]}, settings=settings
    )
    calculations = calculated["calculations"]
    assert calculations["storage_location"].endswith(f"/enriched/{root_id}/part_00000.parquet")
    assert calculations["records"] == [{"node_id": f"rec-{i}"} for i in range(5)]

    complete = tasks.data_lineage(
        {
            "root_id": root_id,
            "parent_id": batch["node_id"],
            "action_taken": "CALCULATION_COMPLETE",
            "storage_location": calculations["storage_location"],
            "records": calculations["records"],
        },
        settings=settings,
    )["data_lineage"]
    assert complete == {
        "root_id": root_id,
        "action_taken": "CALCULATION_COMPLETE",
        "storage_location": calculations["storage_location"],
        "records": calculations["records"],
    }

    database = Database(settings.database_url)
    chain = trace(database, "rec-3", root_id)
    assert [n["action_taken"] for n in chain] == [
        "RAW_DATA_INPUT",
        "DQ_CHECK_PASS",
        "GLUE_BATCH_SPLIT",
        "CALCULATION_COMPLETE",
    ]
    assert chain[0]["storage_location"] == landing_url
    assert database.emission("rec-3")["raw_data"] == 4.0
    database.close()


def test_transform_types_columns_without_truncating(
    settings: Settings, make_csv: Callable[..., Path]
) -> None:
    land(settings, make_csv([activity_row("r1", raw_data="103.45")]), "t.csv")
    raw = settings.workspace / "raw"
    raw.mkdir(parents=True)
    shutil.move(settings.workspace / "landing" / "t.csv", raw / "t.csv")
    job = tasks.transform(
        {
            "JobName": "j",
            "Arguments": {
                "--UNIQUE_DIRECTORY": "root-1",
                "--INPUT_LOCATION": f"file://{raw.resolve()}/t.csv",
            },
        },
        settings=settings,
    )
    assert job["job_state"] == "SUCCEEDED"
    batch = pl.read_parquet(settings.workspace / "transformed" / "root-1" / "part_00000.parquet")
    assert batch.schema["raw_data"] == pl.Float64 and batch.schema["scope"] == pl.Int64
    (record,) = batch.to_dicts()
    assert record["raw_data"] == 103.45
    assert record["scope"] == 1
    assert record["geo"] == {"lat": 1.5, "long": 2.5}
    assert record["activity_event_id"] == "r1"


def test_transform_without_a_known_raw_file_says_what_to_pass(settings: Settings) -> None:
    with pytest.raises(InputDataError, match="--INPUT_LOCATION"):
        tasks.transform(
            {"JobName": "j", "Arguments": {"--UNIQUE_DIRECTORY": "nope"}}, settings=settings
        )


def test_error_notification_returns_the_event_and_records_it(settings: Settings) -> None:
    event = {
        "subject": "Data Quality check failed",
        "message": "Your Carbonlake Data Quality job has failed. Please review your dataset: x",
    }
    assert tasks.dq_error_notification(event, settings=settings) == event
    database = Database(settings.database_url)
    recorded = database.notifications()
    database.close()
    assert [(n["channel"], n["subject"], n["delivered"]) for n in recorded] == [
        ("log", "Data Quality check failed", 1)
    ]


def test_tasks_use_the_workspace_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONLAKE_WORKSPACE", str(tmp_path / "env-ws"))
    out = tasks.kickoff(s3_event("x.csv"))
    assert isinstance(out, dict)
    assert out["input"]["storage_location"] == f"file://{tmp_path / 'env-ws'}/landing/x.csv"
    assert (tmp_path / "env-ws" / "carbonlake.db").is_file()


def test_lineage_requests_are_validated(settings: Settings) -> None:
    from carbonlake import LineageError

    with pytest.raises(LineageError, match="parent_id must equal"):
        tasks.data_lineage(
            {
                "root_id": "r",
                "parent_id": "other",
                "action_taken": "RAW_DATA_INPUT",
                "record": {"storage_location": "file:///x"},
            },
            settings=settings,
        )
    with pytest.raises(LineageError, match="unknown action_taken"):
        tasks.data_lineage(
            {"root_id": "r", "parent_id": "r", "action_taken": "SOMETHING"}, settings=settings
        )


def _batch_record(record_id: str, raw_data: float) -> dict[str, object]:
    return {
        "activity_event_id": record_id,
        "asset_id": "vehicle1",
        "geo": {"lat": 1.5, "long": 2.5},
        "origin_measurement_timestamp": "2019-10",
        "scope": 1,
        "category": "mobile-combustion",
        "activity": "Motor Gasoline - Gasoline Passenger Cars",
        "source": "fleet",
        "raw_data": raw_data,
        "units": "gal",
    }


@pytest.mark.parametrize("form", ["parquet", "json", "jsonl", "json-lines-named-json"])
def test_calculate_co2e_takes_a_parquet_json_or_json_lines_batch(
    settings: Settings, form: str
) -> None:
    records = [_batch_record(f"{form}-{i}", float(i + 1)) for i in range(3)]
    name, content = {
        "parquet": ("part_00000.parquet", transform.parquet_bytes(pl.DataFrame(records))),
        "json": ("hand.json", json.dumps(records, indent=2).encode()),
        "jsonl": ("hand.jsonl", "\n".join(json.dumps(r) for r in records).encode()),
        # The content decides: JSON Lines under a .json name is read as JSON Lines.
        "json-lines-named-json": ("lines.json", "\n".join(json.dumps(r) for r in records).encode()),
    }[form]
    batch = settings.workspace / "transformed" / "hand" / name
    batch.parent.mkdir(parents=True)
    batch.write_bytes(content)
    calculations = tasks.calculate_co2e(
        {"storage_location": batch.resolve().as_uri()}, settings=settings
    )["calculations"]
    assert calculations["records"] == [{"node_id": f"{form}-{i}"} for i in range(3)]
    assert calculations["failed_records"] == []
    enriched_name = name.removesuffix(".jsonl").removesuffix(".json").removesuffix(".parquet")
    assert calculations["storage_location"].endswith(f"/enriched/hand/{enriched_name}.parquet")
    enriched = pl.read_parquet(
        settings.workspace / "enriched" / "hand" / f"{enriched_name}.parquet"
    )
    assert enriched["activity_event_id"].to_list() == [f"{form}-{i}" for i in range(3)]
    co2e = enriched["emissions_output"].struct.field("calculated_emissions")
    amounts = co2e.struct.field("co2e").struct.field("ar5").struct.field("amount").to_list()
    # 1, 2 and 3 gallons of gasoline: the amounts scale with the quantity.
    assert amounts[0] > 0 and amounts[1] == pytest.approx(2 * amounts[0])
    assert amounts[2] == pytest.approx(3 * amounts[0])


def test_calculate_co2e_names_a_batch_file_it_cannot_read(settings: Settings) -> None:
    batch = settings.workspace / "transformed" / "hand" / "part_00000.parquet"
    batch.parent.mkdir(parents=True)
    batch.write_bytes(b'{"activity_event_id": "x"}\n')
    with pytest.raises(CalculationError, match=r"part_00000\.parquet is named \.parquet"):
        tasks.calculate_co2e({"storage_location": batch.resolve().as_uri()}, settings=settings)
