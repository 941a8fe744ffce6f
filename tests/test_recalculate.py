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


def test_recalculated_record_nodes_are_a_sealed_file_of_the_lineage_table(tmp_path: Path) -> None:
    """A recalculation's RECALCULATION nodes are one columnar file per enriched file, sealed
    by a RECORD_NODES node and committed to the lineage table, not ledger rows; verify
    names a forged node in that file, and the file when it was changed without resealing."""
    import hashlib
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq

    from carbonlake.lineage import node_hash

    from .test_lake import iceberg_table

    ws = tmp_path / "ws"
    source = tmp_path / "fleet.csv"
    source.write_text(
        "\n".join([HEADER, *(activity_row(f"g{i}", raw_data=str(i + 1)) for i in range(3))]) + "\n"
    )
    assert invoke("run", str(source), "--workspace", str(ws)).exit_code == 0  # type: ignore[attr-defined]
    imported = invoke(
        "factors",
        "import",
        str(revised_factors(tmp_path / "r.json", 9.0)),
        "--workspace",
        str(ws),
        "--json",
    )
    label = json.loads(imported.stdout)["label"]  # type: ignore[attr-defined]
    done = invoke("recalculate", "--factor-set", label, "--workspace", str(ws), "--json")
    assert done.exit_code == 0, done.stdout  # type: ignore[attr-defined]
    recalculation_id = json.loads(done.stdout)["recalculation_id"]  # type: ignore[attr-defined]
    ids = {f"g{i}#recalc-{recalculation_id}" for i in range(3)}

    db = ws / "carbonlake.db"
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        assert (
            conn.execute(
                "SELECT count(*) FROM lineage WHERE action_taken = 'RECALCULATION'"
            ).fetchone()[0]
            == 0
        )
        seals = [
            dict(r)
            for r in conn.execute(
                "SELECT * FROM lineage WHERE action_taken = 'RECORD_NODES' ORDER BY seq"
            )
        ]
    sealing = seals[-1]
    path = Path(sealing["storage_location"].removeprefix("file://"))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sealing["object_sha256"]
    table = pq.read_table(path)
    assert set(table.column("node_id").to_pylist()) == ids
    assert set(table.column("action_taken").to_pylist()) == {"RECALCULATION"}
    assert set(table.column("parent_id").to_pylist()) == {"g0", "g1", "g2"}
    committed = iceberg_table(ws, "lineage").scan().to_arrow().column("node_id").to_pylist()
    assert ids <= set(committed)

    verified = invoke("lineage", "verify", "--workspace", str(ws), "--json")
    assert verified.exit_code == 0, verified.stdout  # type: ignore[attr-defined]
    assert json.loads(verified.stdout)["nodes"] >= 3 + 3 + len(seals)  # type: ignore[attr-defined]

    original = path.read_bytes()
    # A node taken out of the file, not resealed: the file is named.
    rows = table.to_pylist()
    kept = [r for r in rows if r["node_id"] != f"g2#recalc-{recalculation_id}"]
    pq.write_table(pa.Table.from_pylist(kept, schema=table.schema), path)
    problems = json.loads(
        invoke("lineage", "verify", "--workspace", str(ws), "--json").stdout  # type: ignore[attr-defined]
    )["problems"]
    assert any(
        p["kind"] == "object_changed"
        and "RECORD_NODES" in p["message"]
        and path.name in p["message"]
        for p in problems
    ), problems
    path.write_bytes(original)
    assert invoke("lineage", "verify", "--workspace", str(ws)).exit_code == 0  # type: ignore[attr-defined]

    # A forged node (its row number changed), the file resealed as a careful forger would.
    forged = next(r for r in rows if r["node_id"] == f"g1#recalc-{recalculation_id}")
    forged["row_number"] = 99
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE lineage SET object_sha256 = ? WHERE node_id = ?",
            (hashlib.sha256(path.read_bytes()).hexdigest(), sealing["node_id"]),
        )
        seal = conn.execute(
            "SELECT root_id, node_id, parent_id, action_taken, storage_location, recorded_at, "
            "object_sha256, row_number, parent_hash FROM lineage WHERE node_id = ?",
            (sealing["node_id"],),
        ).fetchone()
        conn.execute(
            "UPDATE lineage SET node_hash = ? WHERE node_id = ?",
            (node_hash(*seal[:8], parent_hash=seal[8]), sealing["node_id"]),
        )
    problems = json.loads(
        invoke("lineage", "verify", "--workspace", str(ws), "--json").stdout  # type: ignore[attr-defined]
    )["problems"]
    assert [(p["kind"], p.get("node_id")) for p in problems] == [
        ("node_changed", forged["node_id"])
    ]
