"""The factor library: formats, versions, validation, selection, AR6 and provenance."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from carbonlake import ConfigurationError
from carbonlake.calculate import calculate_frame
from carbonlake.calculate.factors import (
    AR6_GWP,
    import_factor_file,
    load_factor_set,
    shipped_attributes,
    shipped_factor_set,
)
from carbonlake.cli import cli
from carbonlake.database import Database

from .conftest import FACTORS_CSV, activity_row

DIESEL = "Diesel Fuel - Diesel Passenger Cars"


def original_model(co2: str = "10.21", name: str = DIESEL) -> list[dict[str, object]]:
    return [
        {
            "category": "mobile-combustion",
            "activity": name,
            "scope": "1",
            "emissions_factor_standards": {
                "ghg": {
                    "coefficients": {
                        "co2_factor": co2,
                        "ch4_factor": "0.000011",
                        "n2o_factor": "0.0000225",
                        "biofuel_co2": "",
                        "AR4-kgco2e": "",
                        "AR5-kgco2e": "",
                        "units": "gal (US)",
                    },
                    "last_updated": "2022-05-22",
                    "source": "test vector",
                }
            },
        }
    ]


def carbonlake_format() -> dict[str, object]:
    return {
        "format": "carbonlake-factors/1",
        "factors": [
            {
                "scope": 3,
                "category": "transport",
                "activity": "Passenger Car A",
                "unit": "vehicle-mile",
                "co2": {"value": 0.343, "unit": "kg"},
                "ch4": {"value": 0.019, "unit": "g"},
                "n2o": {"value": 0.011, "unit": "g"},
                "ar4_kgco2e_per_unit": 0.346753,
                "source": "EPA 2018, Table 8",
            }
        ],
    }


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_shared_csv_imported_with_the_grams_correction_is_the_shipped_version(
    database: Database,
) -> None:
    # The shipped set is the shared table read with the grams correction and the
    # shipped attributes (scope 2 methods, biogenic CO2); imported so, it is the same.
    attributes = shipped_attributes()
    imported, created = import_factor_file(
        FACTORS_CSV, database, "ghgp-2022", ("transport",), attributes
    )
    assert created
    assert imported.version == shipped_factor_set().version
    again, created_again = import_factor_file(
        FACTORS_CSV, database, "ghgp-2022", ("transport",), attributes
    )
    assert not created_again and again.version == imported.version


def test_original_json_model_imports_and_versions_never_change_in_place(
    tmp_path: Path, database: Database
) -> None:
    first = tmp_path / "model.json"
    first.write_text(json.dumps(original_model()))
    v1, _ = import_factor_file(first, database, "fleet")
    first.write_text(json.dumps(original_model(co2="10.30")))
    v2, created = import_factor_file(first, database, "fleet")
    assert created and v1.version != v2.version
    assert load_factor_set("fleet", database).version == v2.version  # newest by name
    old = load_factor_set(f"fleet@{v1.version}", database)
    assert old.factors["co2_kg_per_unit"][0] == 10.21  # the first version is intact
    assert load_factor_set(v1.version, database).version == v1.version
    # Stated CO2e is empty in this file: it is recomputed from the gases.
    assert old.factors["ar4_kgco2e_per_unit"][0] == pytest.approx(10.21698, rel=1e-9)


def test_own_format_states_gas_units_explicitly(tmp_path: Path, database: Database) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(carbonlake_format()))
    imported, _ = import_factor_file(path, database)
    car = imported.factors.row(0, named=True)
    assert car["ch4_kg_per_unit"] == pytest.approx(0.019e-3)
    assert car["ar4_kgco2e_per_unit"] == pytest.approx(0.346753)
    document = carbonlake_format()
    document["factors"][0]["ch4"]["unit"] = "kWh"  # type: ignore[index]
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match="not a unit of mass"):
        import_factor_file(path, database)


def test_unknown_factor_set_lists_what_exists(database: Database) -> None:
    with pytest.raises(ConfigurationError, match="ghgp-2022") as info:
        load_factor_set("nope", database)
    assert "carbonlake factors import" in str(info.value)


def test_ar6_methane_follows_each_factors_basis() -> None:
    # GHG Protocol, Global Warming Potential Values (August 2024): 29.8 (fossil) only for
    # fugitive fossil methane; combustion and non-fossil methane take 27.0.
    factors = shipped_factor_set().factors
    bio = factors.filter(pl.col("activity") == "Biodiesel (100%) - Biodiesel Passenger Cars")
    row = bio.row(0, named=True)
    assert row["ch4_basis"] == "non-fossil" and row["ar6_ch4_gwp"] == 27.0
    assert row["ar6_kgco2e_per_unit"] == pytest.approx(
        27.0 * row["ch4_kg_per_unit"] + 273 * row["n2o_kg_per_unit"]
    )
    gas = factors.filter(pl.col("activity") == "Motor Gasoline - Gasoline Passenger Cars")
    row = gas.row(0, named=True)
    assert row["ch4_basis"] == "combustion" and row["ar6_ch4_gwp"] == 27.0
    assert row["ar6_kgco2e_per_unit"] == pytest.approx(
        row["co2_kg_per_unit"] + 27.0 * row["ch4_kg_per_unit"] + 273 * row["n2o_kg_per_unit"]
    )
    assert AR6_GWP["ch4_fossil"] == 29.8
    assert set(factors["ch4_basis"].to_list()) == {"combustion", "non-fossil"}


def test_litres_against_a_gallon_factor_are_converted_and_recorded() -> None:
    frame = pl.DataFrame(
        [
            {
                "activity_event_id": "l1",
                "category": "mobile-combustion",
                "activity": DIESEL,
                "raw_data": 378.5411784,
                "units": "L",
            }
        ]
    )
    result = calculate_frame(frame, shipped_factor_set(), "p")
    out = result.enriched["emissions_output"][0]
    assert out["emissions_factor"]["activity_quantity"] == {
        "amount": pytest.approx(100.0),
        "unit": "gal (US)",
    }
    assert out["calculated_emissions"]["co2"]["amount"] == pytest.approx(1.021)
    assert result.enriched["raw_data"][0] == 378.5411784  # the input stays as given


def test_biofuel_result_says_which_gases_were_not_given() -> None:
    frame = pl.DataFrame(
        [
            {
                "activity_event_id": "b",
                "category": "mobile-combustion",
                "activity": "Biodiesel (100%) - Biodiesel Passenger Cars",
                "raw_data": 1.0,
                "units": "gal",
            }
        ]
    )
    out = calculate_frame(frame, shipped_factor_set(), "p").enriched["emissions_output"][0]
    assert out["emissions_factor"]["gases_not_given"] == ["co2"]
    assert out["calculated_emissions"]["co2"]["amount"] == 0.0


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_validate_lists_each_inconsistent_row_and_exits_1(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    result = invoke("factors", "validate", str(FACTORS_CSV), "--workspace", ws, "--json")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    report = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert report["consistent"] is False
    car = next(
        r
        for r in report["inconsistent"]
        if r["activity"] == "Passenger Car A" and r["gwp_set"] == "AR4"
    )
    assert car["stated_kgco2e_per_unit"] == pytest.approx(0.346753)
    assert car["recomputed_kgco2e_per_unit"] == pytest.approx(4.096)
    ok = invoke(
        "factors", "validate", str(FACTORS_CSV), "--grams-category", "transport", "--workspace", ws
    )
    assert ok.exit_code == 0 and "all 236 factors consistent" in ok.stdout  # type: ignore[attr-defined]
    missing = invoke("factors", "validate", str(tmp_path / "none.csv"), "--workspace", ws)
    assert missing.exit_code == 2  # type: ignore[attr-defined]


def test_cli_import_then_run_with_the_new_set(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    model = tmp_path / "fleet.json"
    model.write_text(json.dumps(original_model()))
    imported = invoke("factors", "import", str(model), "--workspace", ws, "--json")
    assert imported.exit_code == 0, imported.stdout  # type: ignore[attr-defined]
    label = json.loads(imported.stdout)["label"]  # type: ignore[attr-defined]
    assert label.startswith("fleet@")

    listed = invoke("factors", "list", "--factor-set", label, "--workspace", ws, "--json")
    assert [f["factor_id"] for f in json.loads(listed.stdout)] == [  # type: ignore[attr-defined]
        "mobile-combustion/diesel-fuel-diesel-passenger-cars"
    ]
    shown = invoke(
        "factors",
        "show",
        "mobile-combustion/diesel-fuel-diesel-passenger-cars",
        "--workspace",
        ws,
        "--json",
    )
    assert json.loads(shown.stdout)["factor_set"] == "ghgp-2022"  # type: ignore[attr-defined]

    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        "activity_event_id,asset_id,geo,origin_measurement_timestamp,scope,category,"
        "activity,source,raw_data,units\n" + activity_row("d1", "10", activity=DIESEL) + "\n"
    )
    ran = invoke("run", str(csv_path), "--factor-set", "fleet", "--workspace", ws, "--json")
    assert ran.exit_code == 0, ran.stdout  # type: ignore[attr-defined]
    enriched = next((tmp_path / "ws" / "enriched").rglob("part_00000.parquet"))
    factor = pl.read_parquet(enriched).row(0, named=True)["emissions_output"]["emissions_factor"]
    assert f"{factor['factor_set']}@{factor['factor_version']}" == label

    unknown = invoke("run", str(csv_path), "--factor-set", "nope", "--workspace", ws)
    assert unknown.exit_code == 2  # type: ignore[attr-defined]
    sets = invoke("factors", "sets", "--workspace", ws, "--json")
    assert {s["name"] for s in json.loads(sets.stdout)} == {"ghgp-2022", "fleet"}  # type: ignore[attr-defined]


def test_cli_import_of_an_inconsistent_table_exits_1_and_stores_nothing(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    result = invoke("factors", "import", str(FACTORS_CSV), "--workspace", ws)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "Passenger Car A" in result.stdout  # type: ignore[attr-defined]
    assert "--grams-category" in result.stderr  # type: ignore[attr-defined]
    database = Database(f"sqlite:///{tmp_path / 'ws' / 'carbonlake.db'}")
    assert database.factor_sets() == []
