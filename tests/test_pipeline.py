"""End to end on the embedded default: the sample, the failure path, lineage, export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from carbonlake import Pipeline
from carbonlake.emissions import export
from carbonlake.executions import Context
from carbonlake.lineage import trace, tree
from carbonlake.settings import load_settings

from .conftest import FACTORS_CSV, HEADER, SAMPLE, activity_row


def hand_calculation(sample: Path) -> dict[str, float]:
    """Totals straight from the factor table with the csv module, independent of the code."""
    with FACTORS_CSV.open(encoding="utf-8-sig", newline="") as handle:
        factors = {(row["category"], row["lookup name"]): row for row in csv.DictReader(handle)}
    totals = {"co2": 0.0, "ar4": 0.0, "ar5": 0.0}
    with sample.open(newline="") as handle:
        for record in csv.DictReader(handle):
            factor = factors[(record["category"], record["activity"])]
            amount = float(record["raw_data"])
            totals["co2"] += amount * float(factor["CO2 Factor (kg / unit)"] or 0) / 1000
            totals["ar4"] += amount * float(factor["AR4 (kgCO2e)"]) / 1000
            totals["ar5"] += amount * float(factor["AR5 (kgCO2e)"]) / 1000
    return totals


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, dict[str, object]]:
    workspace = tmp_path_factory.mktemp("sample") / "ws"
    context = Context.open(load_settings(workspace, environ={}))
    summary = Pipeline(context).run_file(SAMPLE)
    return context, summary


def test_sample_totals_match_a_hand_calculation(sample_run: tuple[Context, dict]) -> None:
    context, summary = sample_run
    assert summary["status"] == "SUCCEEDED", summary["error"]
    assert summary["records_in"] == 8000
    assert summary["records_calculated"] == 8000
    assert summary["records_failed"] == 0
    expected = hand_calculation(SAMPLE)
    for method in ("location_based", "market_based"):  # scope 1 only: both the same
        assert summary["co2e_tonnes"][method]["ar4"] == pytest.approx(expected["ar4"], rel=1e-10)
        assert summary["co2e_tonnes"][method]["ar5"] == pytest.approx(expected["ar5"], rel=1e-10)

    enriched_files = sorted((context.settings.workspace / "enriched").rglob("part_*.parquet"))
    assert len(enriched_files) == 8
    frames = [pl.read_parquet(f) for f in enriched_files]
    enriched = pl.concat(frames, how="vertical_relaxed")
    assert enriched.height == 8000
    assert enriched["activity_event_id"].n_unique() == 8000
    co2 = enriched.select(
        pl.col("emissions_output")
        .struct.field("calculated_emissions")
        .struct.field("co2")
        .struct.field("amount")
        .sum()
    ).item()
    assert co2 == pytest.approx(expected["co2"], rel=1e-10)


def test_enriched_record_has_the_original_shape(sample_run: tuple[Context, dict]) -> None:
    context, _ = sample_run
    first = next((context.settings.workspace / "enriched").rglob("part_00000.parquet"))
    record = pl.read_parquet(first).row(0, named=True)
    with SAMPLE.open(newline="") as handle:
        source = next(csv.DictReader(handle))
    assert record["activity_event_id"] == source["activity_event_id"]
    assert record["raw_data"] == float(source["raw_data"])
    assert set(record) == set(source) | {"emissions_output"}
    out = record["emissions_output"]
    calc = out["calculated_emissions"]
    assert set(calc) == {"co2", "ch4", "n2o", "biogenic_co2", "co2e"}
    assert all(calc[g]["unit"] == "tonnes" for g in ("co2", "ch4", "n2o", "biogenic_co2"))
    assert calc["biogenic_co2"]["amount"] is None  # gasoline: its factor gives none
    assert set(calc["co2e"]) == {"ar4", "ar5", "ar6"}
    assert all(calc["co2e"][g]["unit"] == "tonnes" for g in ("ar4", "ar5", "ar6"))
    factor = out["emissions_factor"]
    assert factor["ar4"]["unit"] == factor["ar5"]["unit"] == "kgCO2e/unit"
    assert factor["factor_set"] == "ghgp-2022"
    assert factor["factor_id"] == "mobile-combustion/motor-gasoline-gasoline-passenger-cars"
    assert factor["factor_unit"] == "gal (US)"
    assert factor["activity_quantity"] == {"amount": float(source["raw_data"]), "unit": "gal (US)"}
    assert factor["gases_not_given"] == []
    assert factor["source"].startswith("EPA")
    assert factor["scope"] == 1 and factor["scope2_method"] is None
    assert factor["ch4_basis"] == "combustion"
    assert factor["gwp"] == {
        "ar4": {"ch4": 25.0, "n2o": 298.0},
        "ar5": {"ch4": 28.0, "n2o": 265.0},
        "ar6": {"ch4": 27.0, "n2o": 273.0},
    }


def test_file_moves_to_raw_and_batches_respect_batch_size(
    sample_run: tuple[Context, dict],
) -> None:
    context, summary = sample_run
    ws = context.settings.workspace
    assert summary["storage_location"] == f"file://{ws}/raw/sample-activity-8000.csv"
    assert not (ws / "landing" / "sample-activity-8000.csv").exists()
    assert (ws / "raw" / "sample-activity-8000.csv").is_file()
    parts = sorted((ws / "transformed" / summary["root_id"]).iterdir())
    assert [p.name for p in parts] == [f"part_{i:05d}.parquet" for i in range(8)]
    sizes = [pl.read_parquet(p).height for p in parts]
    assert sizes == [1000] * 8


def test_every_record_traces_back_to_its_raw_input(sample_run: tuple[Context, dict]) -> None:
    context, summary = sample_run
    root_id = summary["root_id"]
    nodes = tree(context.database, root_id)
    actions = [n["action_taken"] for n in nodes]
    assert actions.count("RAW_DATA_INPUT") == 1
    assert actions.count("PROFILE_COMPLETE") == 1
    assert actions.count("DQ_CHECK_PASS") == 1
    assert actions.count("GLUE_BATCH_SPLIT") == 8
    assert actions.count("CALCULATION_COMPLETE") == 8000
    batch_nodes = {n["node_id"] for n in nodes if n["action_taken"] == "GLUE_BATCH_SPLIT"}
    records = [n for n in nodes if n["action_taken"] == "CALCULATION_COMPLETE"]
    assert all(n["parent_id"] in batch_nodes for n in records)

    with SAMPLE.open(newline="") as handle:
        last_id = list(csv.DictReader(handle))[-1]["activity_event_id"]
    chain = trace(context.database, last_id)
    assert [n["action_taken"] for n in chain] == [
        "RAW_DATA_INPUT",
        "PROFILE_COMPLETE",
        "DQ_CHECK_PASS",
        "GLUE_BATCH_SPLIT",
        "CALCULATION_COMPLETE",
    ]
    ws = context.settings.workspace
    assert chain[0]["storage_location"] == f"file://{ws}/landing/sample-activity-8000.csv"
    assert chain[1]["storage_location"] == f"file://{ws}/dq-results/{root_id}/report.json"
    assert chain[2]["storage_location"] == f"file://{ws}/raw/sample-activity-8000.csv"
    assert chain[3]["storage_location"].endswith(f"transformed/{root_id}/part_00007.parquet")
    assert chain[4]["storage_location"].endswith(f"enriched/{root_id}/part_00007.parquet")
    assert chain[4]["node_id"] == last_id
    assert chain[4]["row_number"] == 8000


def test_record_failures_are_reported_never_dropped(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context = Context.open(load_settings(tmp_path / "ws", environ={}))
    rows = [activity_row(f"ok-{i}") for i in range(3)]
    rows.append(activity_row("weird", activity="Unicorn Power"))
    rows.append(activity_row("kilos", units="kg"))
    summary = Pipeline(context).run_file(make_csv(rows))
    assert summary["status"] == "FAILED"
    assert summary["data_quality"]["status"] == "PASSED"
    assert (summary["records_in"], summary["records_calculated"], summary["records_failed"]) == (
        5,
        3,
        2,
    )
    failed = summary["failed_records"]
    assert {s["node_id"] for s in failed["samples"]} == {"weird", "kilos"}
    errors_file = Path(failed["errors_files"][0].removeprefix("file://"))
    assert errors_file.name.endswith(".errors.parquet")
    lines = pl.read_parquet(errors_file).to_dicts()
    assert {line["activity_event_id"]: line["error"] for line in lines}["kilos"].startswith(
        "units 'kg'"
    )
    nodes = tree(context.database, summary["root_id"])
    failed_nodes = [n for n in nodes if n["action_taken"] == "CALCULATION_FAILED"]
    assert {n["node_id"] for n in failed_nodes} == {"weird#failed-1", "kilos#failed-1"}
    assert context.database.emissions_count() == 3
    context.close()


def test_reprocessing_replaces_results_and_export_has_each_record_once(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context = Context.open(load_settings(tmp_path / "ws", environ={}))
    pipeline = Pipeline(context)
    path = make_csv([activity_row(f"r{i}", raw_data=str(i + 1)) for i in range(10)])
    first = pipeline.run_file(path, key="a.csv")
    second = pipeline.run_file(path, key="b.csv")
    assert first["status"] == second["status"] == "SUCCEEDED"
    assert first["root_id"] != second["root_id"]
    assert context.database.emissions_count() == 10

    jsonl = io.BytesIO()
    assert export(context.storage, context.database, "jsonl", jsonl) == 10
    records = [json.loads(line) for line in jsonl.getvalue().splitlines()]
    assert sorted(r["activity_event_id"] for r in records) == sorted(f"r{i}" for i in range(10))

    flat = io.BytesIO()
    export(context.storage, context.database, "csv", flat)
    table = list(csv.reader(io.StringIO(flat.getvalue().decode())))
    assert table[0][0] == "activity_event_id"
    assert "emissions_output.calculated_emissions.co2e.ar4.amount" in table[0]
    assert "geo.lat" in table[0]
    assert len(table) == 11
    context.close()


def test_concurrency_does_not_change_the_numbers(tmp_path: Path) -> None:
    totals = []
    for concurrency in (1, 4):
        settings = load_settings(
            tmp_path / f"ws{concurrency}",
            environ={},
            overrides={"pipeline": {"max_concurrency": concurrency, "batch_size": 700}},
        )
        context = Context.open(settings)
        summary = Pipeline(context).run_file(SAMPLE)
        totals.append(
            (summary["records_calculated"], summary["co2e_tonnes"]["location_based"]["ar4"])
        )
        assert len(list((settings.workspace / "enriched").rglob("part_*.parquet"))) == 12
        context.close()
    assert totals[0][0] == totals[1][0] == 8000
    assert totals[0][1] == pytest.approx(totals[1][1], rel=1e-12)


def test_a_failed_stage_is_named_and_the_file_is_not_lost(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    context = Context.open(load_settings(tmp_path / "ws", environ={}))
    # The transformed bucket is a file instead of a folder: the transform step must fail.
    transformed = context.settings.workspace / "transformed"
    transformed.rmdir()
    transformed.write_text("not a folder")
    summary = Pipeline(context).run_file(make_csv([activity_row("x1")]))
    assert summary["status"] == "FAILED"
    assert "step 'TRANSFORM' failed" in summary["error"]
    assert summary["execution_id"] in summary["error"]
    assert (context.settings.workspace / "raw" / "activity.csv").is_file()
    execution = context.database.get_execution(summary["execution_id"])
    assert execution is not None and execution["status"] == "FAILED"
    context.close()


def test_enriched_parquet_is_queried_in_place_and_exported_in_three_formats(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    import duckdb

    settings = load_settings(tmp_path / "ws", environ={}, overrides={"pipeline": {"batch_size": 3}})
    context = Context.open(settings)
    rows = [activity_row(f"r{i}", raw_data=str(i + 1)) for i in range(7)]
    rows.append(activity_row("bad", units="parsec"))  # fails: its errors file sits beside
    summary = Pipeline(context).run_file(make_csv(rows))
    assert (summary["records_calculated"], summary["records_failed"]) == (7, 1)
    enriched = settings.workspace / "enriched"
    root = enriched / summary["root_id"]
    assert sorted(p.name for p in root.glob("*.parquet")) == [
        f"part_{i:05d}.parquet" for i in range(3)
    ]
    assert [p.name for p in (root / "errors").iterdir()] == ["part_00002.errors.parquet"]
    failed = pl.read_parquet(root / "errors" / "part_00002.errors.parquet")
    assert failed["activity_event_id"].to_list() == ["bad"]
    assert failed["error"][0].startswith("units 'parsec'")

    # Other engines query the enriched files where they are, nested fields and all.
    ((count, ar5),) = duckdb.sql(
        "SELECT count(*), sum(emissions_output.calculated_emissions.co2e.ar5.amount) "
        f"FROM read_parquet('{enriched}/*/*.parquet')"
    ).fetchall()
    assert count == 7
    assert ar5 == pytest.approx(summary["co2e_tonnes"]["location_based"]["ar5"], rel=1e-12)

    jsonl, parquet, flat = io.BytesIO(), io.BytesIO(), io.BytesIO()
    assert export(context.storage, context.database, "jsonl", jsonl) == 7
    assert export(context.storage, context.database, "parquet", parquet) == 7
    assert export(context.storage, context.database, "csv", flat) == 7
    lines = jsonl.getvalue().decode().splitlines()
    # The original's JSON shape: the input columns and emissions_output, per record.
    first = json.loads(lines[0])
    assert set(first) == set(HEADER.split(",")) | {"emissions_output"}
    assert first["emissions_output"]["calculated_emissions"]["co2e"]["ar5"]["unit"] == "tonnes"
    exported = pl.read_parquet(io.BytesIO(parquet.getvalue()))
    assert (
        exported.schema["emissions_output"]
        == pl.read_parquet(root / "part_00000.parquet").schema["emissions_output"]
    )
    assert exported.to_dicts() == [json.loads(line) for line in lines]
    table = list(csv.reader(io.StringIO(flat.getvalue().decode())))
    assert [r[0] for r in table[1:]] == [json.loads(line)["activity_event_id"] for line in lines]
    context.close()
