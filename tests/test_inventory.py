"""A GHG Protocol inventory: dual scope 2, biogenic CO2, scope checks, unit and name rules,
`carbonlake report` and its restatement.

Expected numbers are computed here with ``decimal`` from the factor table's own cells
(and, for biogenic CO2, the EPA GHG Emission Factors Hub's published values), never
from the code under test.
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from carbonlake.calculate.units import conversion
from carbonlake.cli import cli

from .conftest import FACTORS_CSV

HEADER = (
    "activity_event_id,asset_id,geo,origin_measurement_timestamp,scope,category,activity,"
    "source,raw_data,units,scope3_category"
)
GASOLINE = "Motor Gasoline - Gasoline Passenger Cars"
B100 = "Biodiesel (100%) - Biodiesel Medium- and Heavy-duty Vehicles"
AIR = "Air Travel - Short Haul (< 300 miles) "  # the table's own name ends with a space
ROWS = [
    f"g1,car1,,2023-01,1,mobile-combustion,{GASOLINE},x,100,gal,",
    f"b1,truck1,,2023-02,1,mobile-combustion,{B100},x,1000,gal,",
    # The same 10 MWh entered location-based and market-based: never added.
    "e1,site1,,2023-03,2,grid-region-location-based,AKGD,x,10,MWh,",
    "e2,site1,,2023-03,2,egrid-subregion-residual-mix-market-based,AKGD,x,10,MWh,",
    # Grid electricity tagged scope 1: not calculated.
    "e3,site1,,2023-04,1,grid-region-location-based,AKGD,x,10,MWh,",
    # "mwh": milli or mega? refused.
    "e4,site2,,2023-04,2,grid-region-location-based,AKGD,x,10,mwh,",
    # Typed without the table's trailing space, other case, a no-break space: found.
    "a1,emp1,,2023-05,3,transport,air travel -\u00a0short haul (< 300 miles),x,500,"
    "passenger-mile,6",
    "a2,emp2,,2023-06,3,transport,Air Travel - Short Haul (< 300 miles),x,100,passenger-mile,",
]


def factor(category: str, activity: str) -> dict[str, str]:
    with FACTORS_CSV.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["category"] == category and row["lookup name"] == activity:
                return row
    raise AssertionError(f"no {category} / {activity} in the table")


def gases(category: str, activity: str, quantity: D, grams: bool = False) -> dict[str, D]:
    """Tonnes of each gas and AR4/AR5 CO2e from the table's cells, by hand."""
    row = factor(category, activity)
    scale = D(1000) if grams else D(1)

    def cell(name: str) -> D:
        text = row[name].strip()
        return D(text) if text else D(0)

    return {
        "co2": quantity * cell("CO2 Factor (kg / unit)") / 1000,
        "ch4": quantity * cell("CH4 Factor (kg / unit)") / scale / 1000,
        "n2o": quantity * cell("N2O Factor (kg / unit)") / scale / 1000,
        "ar4": quantity * cell("AR4 (kgCO2e)") / 1000,
        "ar5": quantity * cell("AR5 (kgCO2e)") / 1000,
    }


def add(*parts: dict[str, D]) -> dict[str, D]:
    return {k: sum((p[k] for p in parts), D(0)) for k in parts[0]}


GAS = gases("mobile-combustion", GASOLINE, D(100))
BIO = gases("mobile-combustion", B100, D(1000))
LOCATION = gases("grid-region-location-based", "AKGD", D(10_000))  # 10 MWh in kWh
MARKET = gases("egrid-subregion-residual-mix-market-based", "AKGD", D(10_000))
AIR_6 = gases("transport", AIR, D(500), grams=True)
AIR_NONE = gases("transport", AIR, D(100), grams=True)
SCOPE_1 = add(GAS, BIO)
SCOPE_3 = add(AIR_6, AIR_NONE)
BIOGENIC = D(1000) * D("9.45") / 1000  # EPA Hub: biodiesel (100%) 9.45 kg CO2/gal


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("inventory")
    source = tmp / "activity.csv"
    source.write_text(HEADER + "\n" + "\n".join(ROWS) + "\n", encoding="utf-8")
    ws = str(tmp / "ws")
    result = invoke("run", str(source), "--workspace", ws, "--json")
    assert result.exit_code == 1, result.output  # two records could not be calculated
    return ws, json.loads(result.stdout)[0]


def close(actual: float, expected: D) -> None:
    assert actual == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


def test_run_summary_reports_scope_2_per_method_never_summed(
    ran: tuple[str, dict[str, Any]],
) -> None:
    _, summary = ran
    assert summary["records_calculated"] == 6 and summary["records_failed"] == 2
    for gwp in ("ar4", "ar5"):
        close(
            summary["co2e_tonnes"]["location_based"][gwp],
            SCOPE_1[gwp] + LOCATION[gwp] + SCOPE_3[gwp],
        )
        close(
            summary["co2e_tonnes"]["market_based"][gwp], SCOPE_1[gwp] + MARKET[gwp] + SCOPE_3[gwp]
        )
    reasons = {s["node_id"]: s["reason"] for s in summary["failed_records"]["samples"]}
    assert "scope 1" in reasons["e3"] and "is scope 2" in reasons["e3"]
    assert "ambiguous" in reasons["e4"] and "'MWh'" in reasons["e4"] and "'mWh'" in reasons["e4"]
    by_activity = {r["activity"]: r for r in summary["by_activity"]}
    electricity = [r for r in summary["by_activity"] if r["activity"] == "AKGD"]
    assert len(electricity) == 1  # one activity name, two factors, two methods
    close(electricity[0]["co2e_tonnes"]["location_based"]["ar5"], LOCATION["ar5"])
    close(electricity[0]["co2e_tonnes"]["market_based"]["ar5"], MARKET["ar5"])
    assert GASOLINE in by_activity


def test_report_json_keys_and_every_total_by_hand(ran: tuple[str, dict[str, Any]]) -> None:
    ws, _ = ran
    result = invoke("report", "--workspace", ws, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {
        "scope_1",
        "scope_2_location_based",
        "scope_2_market_based",
        "scope_3",
        "total_location_based",
        "total_market_based",
        "biogenic_co2_tonnes",
        "coverage",
        "methodology",
        "gwp",
        "period",
    }
    assert report["gwp"] == "ar5"
    expected = {
        "scope_1": SCOPE_1,
        "scope_2_location_based": LOCATION,
        "scope_2_market_based": MARKET,
        "scope_3": SCOPE_3,
        "total_location_based": add(SCOPE_1, LOCATION, SCOPE_3),
        "total_market_based": add(SCOPE_1, MARKET, SCOPE_3),
    }
    for name, values in expected.items():
        total = report[name]
        assert {"co2e_tonnes", "co2_tonnes", "ch4_tonnes", "n2o_tonnes"} <= set(total)
        close(total["co2e_tonnes"], values["ar5"])
        for gas in ("co2", "ch4", "n2o"):
            close(total[f"{gas}_tonnes"], values[gas])
    categories = report["scope_3"]["by_category"]
    assert set(categories) == {"6", "unassigned"}
    assert categories["6"]["name"] == "Business travel"
    close(categories["6"]["co2e_tonnes"], AIR_6["ar5"])
    close(categories["unassigned"]["co2e_tonnes"], AIR_NONE["ar5"])
    # Biogenic CO2 is outside the scopes: in no CO2 total, and reported on its own.
    close(report["biogenic_co2_tonnes"], BIOGENIC)
    close(report["scope_1"]["co2_tonnes"], GAS["co2"])
    coverage = report["coverage"]
    assert coverage["records_calculated"] == 6 and coverage["records_failed"] == 2
    assert coverage["failed_by_reason"] == {"scope_mismatch": 1, "units_invalid": 1}
    assert coverage["share_of_records_not_covered"] == pytest.approx(2 / 8)
    methodology = report["methodology"]
    assert methodology["gwp"]["ch4"] == 28 and methodology["gwp"]["n2o"] == 265
    (factor_set,) = methodology["factor_sets"]
    assert factor_set["name"] == "ghgp-2022" and factor_set["records"] == 6
    assert factor_set["scope2_methods"] == {
        "egrid-subregion-residual-mix-market-based": "market-based",
        "grid-region-location-based": "location-based",
    }
    assert "1055.05585262" in methodology["unit_conventions"]["btu"]
    assert "105.4804" in methodology["unit_conventions"]["therm"]


def test_report_ar4_and_ar6_and_breakdown_by_quarter(ran: tuple[str, dict[str, Any]]) -> None:
    ws, _ = ran
    ar4 = json.loads(invoke("report", "--gwp", "ar4", "--workspace", ws, "--json").stdout)
    close(ar4["total_location_based"]["co2e_tonnes"], add(SCOPE_1, LOCATION, SCOPE_3)["ar4"])
    ar6 = json.loads(invoke("report", "--gwp", "ar6", "--workspace", ws, "--json").stdout)
    # AR6: every factor here is combustion or non-fossil methane: CH4 27.0, N2O 273.
    assert ar6["methodology"]["gwp"]["ch4"] == {"combustion": 27.0, "non-fossil": 27.0}
    expected = sum((p["co2"] + D("27.0") * p["ch4"] + 273 * p["n2o"] for p in (GAS, BIO)), D(0))
    close(ar6["scope_1"]["co2e_tonnes"], expected)
    by = json.loads(invoke("report", "--by", "quarter", "--workspace", ws, "--json").stdout)
    rows = {r["key"]: r for r in by["breakdown"]["rows"]}
    assert set(rows) == {"2023-Q1", "2023-Q2"}
    close(rows["2023-Q1"]["scope_2_market_based"]["co2e_tonnes"], MARKET["ar5"])
    close(rows["2023-Q2"]["total_market_based"]["co2e_tonnes"], SCOPE_3["ar5"])
    window = json.loads(
        invoke("report", "--from", "2023-05", "--to", "2023-05", "--workspace", ws, "--json").stdout
    )
    close(window["total_location_based"]["co2e_tonnes"], AIR_6["ar5"])
    assert window["coverage"]["records_failed"] == 0  # the failures are in April


@pytest.mark.parametrize("fmt", ["text", "csv", "html"])
def test_report_formats_carry_both_methods(ran: tuple[str, dict[str, Any]], fmt: str) -> None:
    ws, _ = ran
    out = Path(ws) / f"report.{fmt}"
    result = invoke("report", "--format", fmt, "-o", str(out), "--workspace", ws)
    assert result.exit_code == 0
    text = out.read_text()
    total = f"{float(add(SCOPE_1, MARKET, SCOPE_3)['ar5']):,.6f}"
    if fmt == "csv":
        rows = list(csv.reader(text.splitlines()))
        found = {r[2]: r for r in rows if r[0] == "inventory"}
        close(float(found["total_market_based"][3]), add(SCOPE_1, MARKET, SCOPE_3)["ar5"])
    else:
        assert total in text and "location-based" in text and "market-based" in text


def test_report_refuses_bad_options_with_exit_2(ran: tuple[str, dict[str, Any]]) -> None:
    ws, _ = ran
    bad = invoke("report", "--from", "2023-13", "--workspace", ws)
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    assert invoke("report", "--gwp", "ar3", "--workspace", ws).exit_code == 2
    snapshot = Path(ws) / "nothing.json"
    snapshot.write_text("[]")
    assert invoke("report", "--compare-to", str(snapshot), "--workspace", ws).exit_code == 2


def test_unit_rules_case_sensitive_prefixes_it_btu_us_therm() -> None:
    # 10 mWh is 10 milliwatt-hours: 1e-5 kWh, not 10,000.
    assert conversion("mWh", "kWh").multiplier == pytest.approx(float(D(1) / D(10) ** 6))
    assert conversion("MWh", "kWh").multiplier == pytest.approx(1000.0)
    for spelling in ("mwh", "MWH", "Mwh", "mj"):
        result = conversion(spelling, "kWh")
        assert result.multiplier is None and "ambiguous" in (result.reason or "")
        assert "accepted spellings of energy" in (result.reason or "")
    for spelling in ("kwh", "KWH", "kwH", "kWh"):
        assert conversion(spelling, "kWh").multiplier == pytest.approx(1.0)
    unknown = conversion("kwhr", "kWh")
    assert unknown.multiplier is None and "kWh, kJ, MWh" in (unknown.reason or "")
    # International Table Btu, 1055.05585262 J; US therm 105.4804 MJ.
    assert conversion("MMBtu", "kWh").multiplier == pytest.approx(
        float(D(10) ** 6 * D("1055.05585262") / D(3_600_000)), rel=1e-15
    )
    assert conversion("therm", "kWh").multiplier == pytest.approx(
        float(D("105.4804") * D(10) ** 6 / D(3_600_000)), rel=1e-15
    )
    assert conversion("EC therm", "MJ").multiplier == pytest.approx(105.506)
    assert conversion("mL", "L").multiplier == pytest.approx(1e-3)
    assert conversion("ML", "L").multiplier == pytest.approx(1e6)


def test_gate_and_calculation_share_one_name_rule(tmp_path: Path) -> None:
    # The table's name is "Hainan Province China Power Grid " (trailing space).
    rows = [
        "h1,s,,2023-01,2,grid-region-location-based,Hainan Province China Power Grid ,x,5,kWh,",
        "h2,s,,2023-01,2,Grid-Region-Location-Based,  hainan\u2002province china power grid,x,5,"
        "kWh,",
    ]
    source = tmp_path / "hainan.csv"
    source.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ws = str(tmp_path / "ws")
    checked = json.loads(invoke("dq", "check", str(source), "--workspace", ws, "--json").stdout)
    warned = checked["summary"]["warnedRules"]
    assert "Warn when category and activity have no emission factor" not in warned
    ran = json.loads(invoke("run", str(source), "--workspace", ws, "--json").stdout)[0]
    assert ran["records_calculated"] == 2 and ran["records_failed"] == 0


def test_colliding_names_and_scope_2_without_method_are_refused_on_import(
    tmp_path: Path,
) -> None:
    ws = str(tmp_path / "ws")
    factor_entry = {
        "scope": 1,
        "category": "stationary",
        "activity": "Natural Gas",
        "unit": "scf",
        "co2": {"value": 0.05, "unit": "kg"},
    }
    path = tmp_path / "twice.json"
    document = {
        "format": "carbonlake-factors/1",
        "factors": [factor_entry, {**factor_entry, "activity": " natural  GAS "}],
    }
    path.write_text(json.dumps(document))
    result = invoke("factors", "import", str(path), "--workspace", ws)
    assert result.exit_code == 2 and "spaces and case are ignored" in result.output
    grid = {**factor_entry, "scope": 2, "category": "grid", "activity": "X", "unit": "kWh"}
    path.write_text(json.dumps({"format": "carbonlake-factors/1", "factors": [grid]}))
    refused = invoke("factors", "import", str(path), "--workspace", ws)
    assert refused.exit_code == 2 and "--location-based" in refused.output
    ok = invoke("factors", "import", str(path), "--market-based", "grid", "--workspace", ws)
    assert ok.exit_code == 0, ok.output
    sets = json.loads(invoke("factors", "sets", "--workspace", ws, "--json").stdout)
    assert next(s for s in sets if s["name"] == "twice")["scope2_methods"] == {
        "grid": "market-based"
    }


def test_fugitive_methane_takes_the_fossil_ar6_value(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    path = tmp_path / "leaks.json"
    leak = {
        "scope": 1,
        "category": "fugitive",
        "activity": "Pipeline leak",
        "unit": "kg",
        "ch4": {"value": 1, "unit": "kg"},
        "ch4_basis": "fugitive-fossil",
    }
    path.write_text(json.dumps({"format": "carbonlake-factors/1", "factors": [leak]}))
    assert invoke("factors", "import", str(path), "--workspace", ws).exit_code == 0
    shown = json.loads(
        invoke(
            "factors", "show", "fugitive/pipeline-leak", "--factor-set", "leaks",
            "--workspace", ws, "--json",
        ).stdout
    )  # fmt: skip
    assert shown["ch4_basis"] == "fugitive-fossil"
    assert shown["gwp"]["ar6"] == {"ch4": 29.8, "n2o": 273.0}
    assert shown["ar6_kgco2e_per_unit"] == pytest.approx(29.8)
    source = tmp_path / "leak.csv"
    source.write_text(HEADER + "\nl1,p,,2023-01,1,fugitive,Pipeline leak,x,2,kg,\n")
    ran = invoke("run", str(source), "--factor-set", "leaks", "--workspace", ws, "--json")
    assert ran.exit_code == 0, ran.output
    enriched = next((Path(ws) / "enriched").rglob("part_00000.parquet"))
    out = pl.read_parquet(enriched).row(0, named=True)["emissions_output"]
    assert out["emissions_factor"]["gwp"]["ar6"] == {"ch4": 29.8, "n2o": 273.0}
    assert out["calculated_emissions"]["co2e"]["ar6"]["amount"] == pytest.approx(
        float(D(2) * D("29.8") / 1000)
    )


ORIGINAL_ENTRY = {
    "category": "mobile-combustion",
    "activity": "Biodiesel (100%) - Biodiesel Passenger Cars",
    "scope": "1",
    "emissions_factor_standards": {
        "ghg": {
            "coefficients": {
                "co2_factor": "",
                "ch4_factor": "0.00001125",
                "n2o_factor": "0.0000225",
                "biofuel_co2": "9.45",
                "AR4-kgco2e": "0.00698625",
                "AR5-kgco2e": "0.0062775",
                "units": "gal (US)",
            },
            "last_updated": "2022-05-22",
            "source": "ghg_protocol_emissions_factor_calculator - "
            "https://ghgprotocol.org/ghg-emissions-calculation-tool",
            "source_origin": 'EPA, "Emission Factors for Greenhouse Gas Inventories", March 9, '
            "2018; WRI, GHG Protocol - Emission Factors from Cross-Sector Tools, April 2014",
            "notes": "as published",
        },
        "other": {"coefficient": 5678, "source": "some_source"},
    },
}
"""One entry of the original system's emissions_factor_model_2022-05-22.json (AWS
Guidance for Carbon Data Lake on AWS, Apache-2.0), with an ``other`` standard as its
2022-01-07 model has."""


def test_original_json_import_keeps_every_field(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    path = tmp_path / "original.json"
    path.write_text(json.dumps([ORIGINAL_ENTRY]))
    assert invoke("factors", "import", str(path), "--workspace", ws).exit_code == 0
    shown = json.loads(
        invoke(
            "factors", "show", "mobile-combustion/biodiesel-100-biodiesel-passenger-cars",
            "--factor-set", "original", "--workspace", ws, "--json",
        ).stdout
    )  # fmt: skip
    ghg = ORIGINAL_ENTRY["emissions_factor_standards"]["ghg"]  # type: ignore[index]
    assert shown["source"] == ghg["source"]
    assert shown["source_origin"] == ghg["source_origin"]
    assert shown["last_updated"] == "2022-05-22" and shown["notes"] == "as published"
    assert shown["biogenic_co2_kg_per_unit"] == 9.45
    assert shown["original_fields"] == {
        "emissions_factor_standards": {"other": {"coefficient": 5678, "source": "some_source"}}
    }
    text = invoke(
        "factors", "show", "mobile-combustion/biodiesel-100-biodiesel-passenger-cars",
        "--factor-set", "original", "--workspace", ws,
    ).stdout  # fmt: skip
    assert "source_origin" in text and "2022-05-22" in text


def test_restatement_after_recalculate(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    source = tmp_path / "fleet.csv"
    source.write_text(HEADER + f"\ng1,car1,,2023-01,1,mobile-combustion,{GASOLINE},x,100,gal,\n")
    assert invoke("run", str(source), "--workspace", ws).exit_code == 0
    snapshot = tmp_path / "base.json"
    assert (
        invoke("report", "--format", "json", "-o", str(snapshot), "--workspace", ws).exit_code == 0
    )
    revised = tmp_path / "revised.json"
    entry = {
        "scope": 1,
        "category": "mobile-combustion",
        "activity": GASOLINE,
        "unit": "gal (US)",
        "co2": {"value": 9.0, "unit": "kg"},
    }
    revised.write_text(json.dumps({"format": "carbonlake-factors/1", "factors": [entry]}))
    assert invoke("factors", "import", str(revised), "--workspace", ws).exit_code == 0
    assert invoke("recalculate", "--factor-set", "revised", "--workspace", ws).exit_code == 0
    before = GAS["ar5"]
    after = D(100) * D(9) / 1000  # recomputed from the gases: CO2 only
    for target in ("ghgp-2022", str(snapshot)):
        result = invoke("report", "--compare-to", target, "--workspace", ws, "--json")
        assert result.exit_code == 0, result.output
        change = json.loads(result.stdout)["restatement"]["co2e_tonnes"]["total_market_based"]
        close(change["before"], before)
        close(change["after"], after)
        close(change["change"], after - before)
    text = invoke("report", "--compare-to", "ghgp-2022", "--workspace", ws).stdout
    assert "Restatement against factor_set ghgp-2022@" in text


def test_api_report_is_the_cli_report(ran: tuple[str, dict[str, Any]]) -> None:
    from fastapi.testclient import TestClient

    from carbonlake.service import create_app
    from carbonlake.settings import load_settings

    ws, _ = ran
    cli_report = json.loads(invoke("report", "--by", "month", "--workspace", ws, "--json").stdout)
    with TestClient(
        create_app(load_settings(Path(ws), environ={})), base_url="http://localhost"
    ) as client:
        answer = client.get("/report", params={"by": "month"})
        assert answer.status_code == 200
        api_report = answer.json()
        for name in ("total_location_based", "total_market_based", "scope_3", "coverage"):
            assert api_report[name] == cli_report[name]
        close(api_report["scope_2_market_based"]["co2e_tonnes"], MARKET["ar5"])
        page = client.get("/report", params={"format": "html"})
        assert page.headers["content-type"].startswith("text/html")
        assert "market-based" in page.text
        assert client.get("/report", params={"from": "2023-13"}).status_code == 422
        assert client.get("/report", params={"from": "2023-06", "to": "2023-01"}).status_code == 400
        missing = client.get("/report", params={"compare_to": "nope"})
        assert missing.status_code == 404
        # A file name is a factor set name here: the service reads no file a request names.
        assert client.get("/report", params={"compare_to": "/etc/passwd.json"}).status_code == 404
