"""The calculator: the original's test vectors, the units trap, failures, properties."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonlake import ConfigurationError
from carbonlake.calculate import calculate_frame
from carbonlake.calculate.factors import (
    FactorTableError,
    build_factor_set,
    load_factor_set,
    read_ghgp_csv,
)

from .conftest import FACTORS_CSV

GASOLINE = "Motor Gasoline - Gasoline Passenger Cars"


def records(*rows: dict[str, object]) -> pl.DataFrame:
    base = {
        "activity_event_id": None,
        "asset_id": "vehicle1",
        "scope": 1,
        "category": "mobile-combustion",
        "activity": GASOLINE,
        "raw_data": 1.0,
        "units": "gal",
    }
    return pl.DataFrame([{**base, **row} for row in rows])


def output_of(result_frame: pl.DataFrame, record_id: str) -> dict[str, object]:
    row = result_frame.filter(pl.col("activity_event_id") == record_id).row(0, named=True)
    return row["emissions_output"]


def test_original_test_vector_diesel_passenger_car() -> None:
    frame = records(
        {
            "activity_event_id": "r1",
            "activity": "Diesel Fuel - Diesel Passenger Cars",
            "raw_data": 103.45,
        }
    )
    result = calculate_frame(frame, load_factor_set(), "part_00000.jsonl")
    out = output_of(result.enriched, "r1")
    emissions = out["calculated_emissions"]
    assert emissions["co2"] == {"amount": pytest.approx(1.0562245, rel=1e-12), "unit": "tonnes"}
    assert emissions["co2e"]["ar4"]["amount"] == pytest.approx(1.0569472275625, rel=1e-12)
    assert emissions["co2e"]["ar5"]["amount"] == pytest.approx(1.056873907375, rel=1e-12)
    assert emissions["co2e"]["ar4"]["unit"] == "tonnes"
    factor = out["emissions_factor"]
    assert factor["ar4"] == {"amount": pytest.approx(10.21698625), "unit": "kgCO2e/unit"}
    assert factor["ar5"] == {"amount": pytest.approx(10.2162775), "unit": "kgCO2e/unit"}
    assert factor["factor_id"] == "mobile-combustion/diesel-fuel-diesel-passenger-cars"
    assert result.failed.height == 0


def test_transport_gases_are_read_as_grams_per_unit() -> None:
    # Passenger Car A: CH4 0.019 and N2O 0.011 in the table are grams per vehicle-mile.
    factors = load_factor_set().factors
    car = factors.filter(pl.col("activity") == "Passenger Car A").row(0, named=True)
    with FACTORS_CSV.open(encoding="utf-8-sig", newline="") as handle:
        source = next(r for r in csv.DictReader(handle) if r["lookup name"] == "Passenger Car A")
    assert car["ch4_kg_per_unit"] == pytest.approx(float(source["CH4 Factor (kg / unit)"]) / 1000)
    assert car["n2o_kg_per_unit"] == pytest.approx(float(source["N2O Factor (kg / unit)"]) / 1000)
    assert car["ar4_kgco2e_per_unit"] == pytest.approx(0.346753, rel=1e-6)

    frame = records(
        {
            "activity_event_id": "t1",
            "scope": 3,
            "category": "transport",
            "activity": "Passenger Car A",
            "raw_data": 1000.0,
            "units": "vehicle-mile",
        }
    )
    out = output_of(calculate_frame(frame, load_factor_set(), "p").enriched, "t1")
    ch4_tonnes = out["calculated_emissions"]["ch4"]["amount"]
    assert ch4_tonnes == pytest.approx(1000 * float(source["CH4 Factor (kg / unit)"]) / 1e6)


def test_a_table_with_the_grams_mixup_is_refused() -> None:
    # Read as its header declares (kg for every gas), the shared table must be refused,
    # naming a transport row, its stated and recomputed CO2e, and the grams explanation.
    frame = read_ghgp_csv(FACTORS_CSV.read_bytes(), "shared")
    with pytest.raises(FactorTableError, match="disagree with the gases") as info:
        build_factor_set(frame, "shared", "shared")
    error = info.value
    assert set(error.inconsistent["category"].to_list()) == {"transport"}
    assert error.inconsistent.filter(pl.col("gwp_set") == "AR4").height == 93
    assert "stated" in str(error) and "recomputed" in str(error)
    assert "grams per unit" in str(error) and "transport" in str(error)


def test_every_shipped_factor_is_consistent_and_has_an_id() -> None:
    factor_set = load_factor_set()
    frame = factor_set.factors
    assert frame.height == 236  # as the shared README counts
    assert frame["factor_id"].n_unique() == frame.height
    assert len(factor_set.version) == 12


def test_not_given_gases_stay_null_in_the_library_and_count_as_zero() -> None:
    factors = load_factor_set().factors
    bio = "Biodiesel (100%) - Biodiesel Passenger Cars"
    assert factors.filter(pl.col("activity") == bio)["co2_kg_per_unit"][0] is None
    frame = records({"activity_event_id": "b1", "activity": bio, "raw_data": 10.0})
    out = output_of(calculate_frame(frame, load_factor_set(), "p").enriched, "b1")
    assert out["calculated_emissions"]["co2"]["amount"] == 0.0
    assert out["calculated_emissions"]["co2e"]["ar4"]["amount"] > 0


@pytest.mark.parametrize("spelling", ["gal", "gal (US)", "US gal", "gallons", " GAL "])
def test_spellings_of_the_gallon_are_accepted(spelling: str) -> None:
    frame = records({"activity_event_id": "g", "raw_data": 2.0, "units": spelling})
    result = calculate_frame(frame, load_factor_set(), "p")
    assert result.failed.height == 0
    assert result.enriched.height == 1


def test_kwh_spelling_matches_the_tables_kwH() -> None:
    frame = records(
        {
            "activity_event_id": "e",
            "scope": 2,
            "category": "grid-region-location-based",
            "activity": "AKGD",
            "raw_data": 100.0,
            "units": "kWh",
        }
    )
    result = calculate_frame(frame, load_factor_set(), "p")
    assert result.enriched.height == 1


def test_each_failure_reason_keeps_the_record_and_calculates_the_rest() -> None:
    frame = records(
        {"activity_event_id": "ok", "raw_data": 5.0},
        {"activity_event_id": "no-factor", "activity": "Unicorn Power"},
        {"activity_event_id": "bad-unit", "units": "kg"},
        {"activity_event_id": "no-amount", "raw_data": None},
        {"activity_event_id": "negative", "raw_data": -3.0},
        {"activity_event_id": None, "raw_data": 1.0},
        {"activity_event_id": "dup", "raw_data": 1.0},
        {"activity_event_id": "dup", "raw_data": 2.0},
    )
    result = calculate_frame(frame, load_factor_set(), "part_00009.jsonl")
    assert result.enriched["activity_event_id"].to_list() == ["ok"]
    reasons = dict(
        zip(result.failed["__node_id"].to_list(), result.failed["error"].to_list(), strict=True)
    )
    by_id = dict(
        zip(
            result.failed["activity_event_id"].to_list(),
            result.failed["error"].to_list(),
            strict=True,
        )
    )
    assert len(reasons) == 7  # every failed record is there, none dropped
    assert "no emission factor" in by_id["no-factor"] and "Unicorn Power" in by_id["no-factor"]
    assert "'kg'" in by_id["bad-unit"] and "'gal (US)'" in by_id["bad-unit"]
    assert "raw_data is missing" in by_id["no-amount"]
    assert "negative" in by_id["negative"]
    assert reasons["part_00009.jsonl#6"] == "the record has no activity_event_id"
    assert "more than once" in by_id["dup"]


@settings(max_examples=50, deadline=None)
@given(amount=st.floats(min_value=0.001, max_value=1e9, allow_nan=False))
def test_emissions_are_linear_in_the_amount(amount: float) -> None:
    frame = records(
        {"activity_event_id": "a", "raw_data": amount},
        {"activity_event_id": "b", "raw_data": amount * 2},
    )
    result = calculate_frame(frame, load_factor_set(), "p")
    one = output_of(result.enriched, "a")["calculated_emissions"]
    two = output_of(result.enriched, "b")["calculated_emissions"]
    for gas in ("co2", "ch4", "n2o"):
        assert two[gas]["amount"] == pytest.approx(2 * one[gas]["amount"], rel=1e-12)
    for gwp in ("ar4", "ar5"):
        assert two["co2e"][gwp]["amount"] == pytest.approx(
            2 * one["co2e"][gwp]["amount"], rel=1e-12
        )


def test_factor_table_must_have_its_columns() -> None:
    bad = io.BytesIO(b"scope,category\n1,x\n").getvalue()
    with pytest.raises(ConfigurationError, match="lacks column"):
        read_ghgp_csv(bad, "tiny")


def test_batches_read_with_the_transforms_schema_equal_inference_and_odd_files_fall_back(
    tmp_path: Path,
) -> None:
    from carbonlake.calculate import read_batch
    from carbonlake.storage import Storage
    from carbonlake.transform import batch_schema

    storage = Storage(tmp_path.as_uri())
    shaped = storage.url("transformed", "root/part_00000.jsonl")
    lines = [
        {"activity_event_id": "a", "geo": {"lat": 1.5, "long": 2.0}, "scope": 1, "raw_data": 2.5},
        {
            "activity_event_id": "b",
            "geo": {"lat": None, "long": None},
            "scope": None,
            "raw_data": 7.0,
        },
    ]
    storage.write_bytes(shaped, "\n".join(json.dumps(r) for r in lines).encode() + b"\n")
    fast = read_batch(storage, shaped, batch_schema)
    assert fast.to_dicts() == read_batch(storage, shaped).to_dicts() == lines
    # Not the transform's shape (a text where the schema says a number): read with
    # inference, nothing nulled.
    odd = storage.url("transformed", "root/part_00001.jsonl")
    storage.write_bytes(odd, b'{"activity_event_id": "c", "raw_data": "12.5 kg"}\n')
    assert read_batch(storage, odd, batch_schema).to_dicts() == [
        {"activity_event_id": "c", "raw_data": "12.5 kg"}
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("aB \t\u00a0\u2003\u3000x-ÉÇ"), max_size=12)))
def test_names_keyed_together_get_the_keys_each_gets_alone(names: list[str]) -> None:
    # The data-quality gate keys a factor-set list in one call; the calculation keys one
    # name at a time: the two must agree on every name.
    from carbonlake.calculate.names import name_key, name_keys

    assert name_keys(names) == [name_key(name) for name in names]


def test_a_name_key_folds_unicode_spaces_and_case() -> None:
    from carbonlake.calculate.names import name_keys

    assert name_keys(["Hainan Province China Power Grid ", " A\u00a0\u2003b\tC "]) == [
        "hainan province china power grid",
        "a b c",
    ]
