"""Recalculation with another factor-set version: dry run, real run, history, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from carbonlake.cli import cli
from carbonlake.database import Database
from carbonlake.lineage import trace

from .conftest import HEADER, activity_row

GASOLINE = "Motor Gasoline - Gasoline Passenger Cars"


def revised_factors(path: Path, co2_kg: float) -> Path:
    path.write_text(
        json.dumps(
            {
                "format": "carbonlake-factors/1",
                "factors": [
                    {
                        "scope": 1,
                        "category": "mobile-combustion",
                        "activity": GASOLINE,
                        "unit": "gal (US)",
                        "co2": {"value": co2_kg, "unit": "kg"},
                        "source": "revised",
                    }
                ],
            }
        )
    )
    return path


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_dry_run_then_real_run(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    source = tmp_path / "fleet.csv"
    rows = [activity_row(f"g{i}", raw_data=str(10 * (i + 1))) for i in range(4)]
    rows.append(activity_row("d1", activity="Diesel Fuel - Diesel Passenger Cars"))
    source.write_text("\n".join([HEADER, *rows]) + "\n")
    ran = invoke("run", str(source), "--workspace", ws, "--json")
    assert ran.exit_code == 0  # type: ignore[attr-defined]
    root_id = json.loads(ran.stdout)[0]["root_id"]  # type: ignore[attr-defined]
    imported = invoke(
        "factors",
        "import",
        str(revised_factors(tmp_path / "r.json", 9.0)),
        "--workspace",
        ws,
        "--json",
    )
    label = json.loads(imported.stdout)["label"]  # type: ignore[attr-defined]
    database = Database(f"sqlite:///{tmp_path / 'ws' / 'carbonlake.db'}")
    before = {
        r["activity_event_id"]: r["co2e_ar4_tonnes"] for r in database.emissions_of_root(None)
    }

    dry = invoke("recalculate", "--factor-set", label, "--dry-run", "--workspace", ws, "--json")
    assert dry.exit_code == 1  # the diesel record has no factor in the revised set
    report = json.loads(dry.stdout)  # type: ignore[attr-defined]
    assert report["dry_run"] is True and report["records_recalculated"] == 4
    assert [f["activity_event_id"] for f in report["failed"]] == ["d1"]
    assert "no emission factor" in report["failed"][0]["reason"]
    g1 = next(d for d in report["records_detail"] if d["activity_event_id"] == "g1")
    assert g1["co2e_tonnes_after"]["ar4"] == pytest.approx(20 * 9.0 / 1000)
    assert g1["difference"]["ar4"] == pytest.approx(20 * 9.0 / 1000 - before["g1"])
    total = report["co2e_tonnes"]
    for method in ("location_based", "market_based"):  # scope 1 only: the same
        assert total["before"][method]["ar4"] == pytest.approx(sum(before.values()))
        assert total["difference"][method]["ar4"] == pytest.approx(
            sum(10 * (i + 1) * 9.0 / 1000 - before[f"g{i}"] for i in range(4))
        )
    unchanged = {
        r["activity_event_id"]: r["co2e_ar4_tonnes"] for r in database.emissions_of_root(None)
    }
    assert unchanged == before  # the dry run changed nothing
    assert database.emission_history("g1") == []

    real = invoke("recalculate", "--factor-set", label, "--root", root_id, "--workspace", ws)
    assert real.exit_code == 1 and "not recalculated: d1" in real.stdout  # type: ignore[attr-defined]
    now = database.emission("g1")
    assert now is not None and now["co2e_ar4_tonnes"] == pytest.approx(0.18)
    assert f"{now['factor_set']}@{now['factor_version']}" == label
    history = database.emission_history("g1")
    assert [h["co2e_ar4_tonnes"] for h in history] == [pytest.approx(before["g1"])]
    assert database.emission("d1")["co2e_ar4_tonnes"] == pytest.approx(before["d1"])

    shown = json.loads(invoke("emissions", "show", "g1", "--workspace", ws, "--json").stdout)  # type: ignore[attr-defined]
    assert shown["current"]["factor_set"] == "r" and len(shown["previous"]) == 1

    chain = trace(database, now["lineage_node_id"])
    assert [n["action_taken"] for n in chain][-2:] == ["CALCULATION_COMPLETE", "RECALCULATION"]
    assert chain[-1]["storage_location"].endswith(f"{now['enriched_location'].rsplit('/', 1)[1]}")
    assert chain[-1]["row_number"] == chain[-2]["row_number"] == 2
    exported = invoke("emissions", "export", "--workspace", ws)
    records = [json.loads(line) for line in exported.stdout.splitlines()]  # type: ignore[attr-defined]
    g1_out = next(r for r in records if r["activity_event_id"] == "g1")
    assert g1_out["emissions_output"]["emissions_factor"]["factor_set"] == "r"
    assert len(records) == 5
    verified = invoke("lineage", "verify", "--workspace", ws)
    assert verified.exit_code == 0, verified.stdout  # type: ignore[attr-defined]
    database.close()
