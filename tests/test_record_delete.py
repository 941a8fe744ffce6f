"""The original's record fields (geo, source) and its admin-only delete, as a tombstone:
real workspaces, the real app through its test client, the real command line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from carbonlake import ConfigurationError, InputDataError, emissions
from carbonlake.calculate.recalculate import recalculate
from carbonlake.cli import cli
from carbonlake.executions import Context
from carbonlake.lineage.verify import checkpoint, verify
from carbonlake.service import create_app
from carbonlake.settings import load_settings

from .conftest import FACTORS_CSV, HEADER
from .test_service_api import assert_problem, wait

KEY = "plain-key"
ADMIN = "admin-secret-1"
BARE_ADMIN = "admin-secret-2"
GASOLINE = "Motor Gasoline - Gasoline Passenger Cars"
DIESEL = "Diesel Fuel - Diesel Passenger Cars"

# record id, geo cell, scope, activity, source, raw_data
ROWS = [
    ("d-1", '"[45.5152,-122.6784]"', "1", GASOLINE, "company_fleet_management_database", "103.45"),
    ("d-2", '"[22.4937132,91.5015009]"', "1", DIESEL, "fuel_cards", "12"),
    ("d-3", "", "1", GASOLINE, "", "7.5"),
    ("d-4", '"[0,0]"', "1", DIESEL, "fuel_cards", "250.25"),
]


def write_input(path: Path) -> Path:
    lines = [HEADER] + [
        f"{rid},vehicle-{rid},{geo},2019-10,{scope},mobile-combustion,{activity},{source},{raw},gal"
        for rid, geo, scope, activity, source, raw in ROWS
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_geo(cell: str) -> dict[str, float] | None:
    if not cell:
        return None
    lat, long = cell.strip('"[]').split(",")
    return {"lat": float(lat), "long": float(long)}


def ar5_factors() -> dict[str, Decimal]:
    """AR5 kg CO2e per US gallon by activity, read from the shipped factor table."""
    with FACTORS_CSV.open(encoding="utf-8-sig", newline="") as handle:
        return {row["lookup name"]: Decimal(row["AR5 (kgCO2e)"]) for row in csv.DictReader(handle)}


def expected_ar5_tonnes(record_ids: list[str]) -> Decimal:
    factors = ar5_factors()
    return sum(
        (
            Decimal(raw) * factors[activity] / 1000
            for rid, _, _, activity, _, raw in ROWS
            if rid in record_ids
        ),
        Decimal(0),
    )


def make_client(workspace: Path, admin_keys: str | None) -> TestClient:
    environ = {"CARBONLAKE_SERVER__API_KEYS": KEY}
    if admin_keys is not None:
        environ["CARBONLAKE_SERVER__ADMIN_KEYS"] = admin_keys
    return TestClient(
        create_app(load_settings(workspace, environ=environ)), base_url="http://localhost"
    )


def upload(client: TestClient, path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = client.post(
            "/uploads",
            files={"file": (path.name, handle, "text/csv")},
            headers={"X-API-Key": KEY},
        )
    assert response.status_code == 202, response.text
    execution = wait(client, response.json()["execution_id"])
    assert execution["status"] == "SUCCEEDED", execution
    return execution


def export_ids(context_storage: Any, database: Any, fmt: str) -> list[str]:
    out = io.BytesIO()
    emissions.export(context_storage, database, fmt, out)
    text = out.getvalue().decode()
    if fmt == "csv":
        return [row["activity_event_id"] for row in csv.DictReader(io.StringIO(text))]
    return [json.loads(line)["activity_event_id"] for line in text.splitlines() if line]


# -- geo and source -----------------------------------------------------------------------


def test_every_record_shows_its_geo_and_source(tmp_path: Path) -> None:
    with make_client(tmp_path / "ws", None) as client:
        upload(client, write_input(tmp_path / "in" / "fleet.csv"))
        page = client.get("/emissions", params={"sort": "activity_event_id"}).json()
        assert [r["activity_event_id"] for r in page["records"]] == [r[0] for r in ROWS]
        for record, (rid, geo, _, _, source, _) in zip(page["records"], ROWS, strict=True):
            assert record["geo"] == expected_geo(geo), rid
            assert record["source"] == (source or None), rid
            assert "geo_lat" not in record

            one = client.get(f"/emissions/records/{rid}").json()
            assert one["current"]["geo"] == expected_geo(geo)
            assert one["current"]["source"] == (source or None)

        by_source = client.get("/emissions", params={"sort": "source", "order": "desc"}).json()
        sources = [r["source"] for r in by_source["records"] if r["source"]]
        assert sources == sorted(sources, reverse=True)

        table = client.get("/emissions", params={"format": "csv"}).text
        rows = {row["activity_event_id"]: row for row in csv.DictReader(io.StringIO(table))}
        for rid, geo, _, _, source, _ in ROWS:
            point = expected_geo(geo)
            assert rows[rid]["source"] == source
            assert rows[rid]["geo_lat"] == ("" if point is None else str(point["lat"]))
            assert rows[rid]["geo_long"] == ("" if point is None else str(point["long"]))


# -- the admin's delete ---------------------------------------------------------------------


def test_an_admin_deletes_a_record_as_a_tombstone(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with make_client(ws, f"alice:{ADMIN},{BARE_ADMIN}") as client:
        upload(client, write_input(tmp_path / "in" / "fleet.csv"))
        everyone = [r[0] for r in ROWS]
        before = client.get("/emissions").json()
        assert before["total"] == 4
        assert float(expected_ar5_tonnes(everyone)) == pytest.approx(
            before["totals"]["co2e_tonnes"]["location_based"]["ar5"], rel=1e-12
        )
        service = client.app.state.service  # type: ignore[attr-defined]
        storage, database = service.context.storage, service.context.database
        enriched_before = {
            location: storage.read_bytes(location) for location, _ in database.enriched_locations()
        }
        shown_before = client.get("/emissions/records/d-2").json()["current"]

        # Only an admin key, and only with a reason.
        url = "/emissions/records/d-2"
        assert_problem(client.delete(url, params={"reason": "x"}), 401, "admin key")
        assert_problem(
            client.delete(url, params={"reason": "x"}, headers={"X-API-Key": KEY}),
            403,
            "admin_keys",
        )
        assert_problem(client.delete(url, headers={"X-API-Key": ADMIN}), 422, "reason")
        assert client.get("/emissions").json()["total"] == 4  # nothing happened

        answer = client.delete(
            url,
            params={"reason": "duplicate of d-4 (same fuel card)"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert answer.status_code == 200, answer.text
        deletion = answer.json()
        assert deletion["deleted_by"] == "api:alice"
        assert deletion["reason"] == "duplicate of d-4 (same fuel card)"
        assert deletion["removed"]["co2e_ar5_tonnes"] == shown_before["co2e_ar5_tonnes"]

        # It left the current results, the totals, the summaries and every export.
        rest = ["d-1", "d-3", "d-4"]
        after = client.get("/emissions").json()
        assert [r["activity_event_id"] for r in after["records"]] == rest
        assert after["total"] == 3
        assert float(expected_ar5_tonnes(rest)) == pytest.approx(
            after["totals"]["co2e_tonnes"]["location_based"]["ar5"], rel=1e-12
        )
        by_activity = {
            g["key"]: g for g in client.get("/emissions/summary?by=activity").json()["groups"]
        }
        assert by_activity[DIESEL]["records"] == 1
        assert float(expected_ar5_tonnes(["d-4"])) == pytest.approx(
            by_activity[DIESEL]["co2e_tonnes"]["location_based"]["ar5"], rel=1e-12
        )
        listed = csv.DictReader(io.StringIO(client.get("/emissions?format=csv").text))
        assert [row["activity_event_id"] for row in listed] == rest
        assert export_ids(storage, database, "jsonl") == rest
        assert export_ids(storage, database, "csv") == rest

        # The record itself says who deleted it, when and why; its result is kept.
        shown = client.get(url).json()
        assert shown["current"] is None
        assert shown["deleted"]["deleted_by"] == "api:alice"
        assert shown["deleted"]["reason"] == "duplicate of d-4 (same fuel card)"
        assert shown["deleted"]["deleted_at"] == deletion["deleted_at"]
        assert shown["previous"][-1]["co2e_ar5_tonnes"] == shown_before["co2e_ar5_tonnes"]
        assert shown["previous"][-1]["geo"] == shown_before["geo"]

        # Nothing erased: the enriched files are the same bytes, the ledger only grew.
        for location, data in enriched_before.items():
            assert storage.read_bytes(location) == data
        node = database.lineage_node(deletion["root_id"], "d-2#deleted-1")
        assert node is not None
        assert node["action_taken"] == "RECORD_DELETED"
        assert node["parent_id"] == "d-2"
        assert node["recorded_at"] == deletion["deleted_at"]
        assert node["row_number"] == 2
        assert node["parent_hash"] == database.lineage_node(deletion["root_id"], "d-2")["node_hash"]
        note_bytes = storage.read_bytes(node["storage_location"])
        assert hashlib.sha256(note_bytes).hexdigest() == node["object_sha256"]
        note = json.loads(note_bytes)
        assert (note["deleted_by"], note["reason"], note["deleted_at"]) == (
            "api:alice",
            "duplicate of d-4 (same fuel card)",
            deletion["deleted_at"],
        )
        verified = client.post("/lineage/verify").json()
        assert verified["ok"], verified

        # Twice is a conflict; an unknown record is not found.
        assert_problem(
            client.delete(url, params={"reason": "again"}, headers={"X-API-Key": ADMIN}),
            409,
            "already deleted",
            "api:alice",
        )
        assert_problem(
            client.delete(
                "/emissions/records/nope", params={"reason": "x"}, headers={"X-API-Key": ADMIN}
            ),
            404,
            "nope",
        )

        # A bare admin key is recorded by its fingerprint, never by the key.
        other = client.delete(
            "/emissions/records/d-3",
            params={"reason": "test row"},
            headers={"X-API-Key": BARE_ADMIN},
        ).json()
        fingerprint = hashlib.sha256(BARE_ADMIN.encode()).hexdigest()[:12]
        assert other["deleted_by"] == f"api:key-{fingerprint}"
        assert BARE_ADMIN not in json.dumps(other)
        assert client.get("/emissions").json()["total"] == 2
        assert client.post("/lineage/verify").json()["ok"]

        # Recalculating the file's results does not bring the deleted ones back.
        report = recalculate(storage, database, service.context.factor_set)
        assert report["records"] == 2
        assert [r["activity_event_id"] for r in client.get("/emissions").json()["records"]] == [
            "d-1",
            "d-4",
        ]
        recalculated = client.get("/emissions/records/d-1").json()["current"]
        assert recalculated["execution_id"].startswith("recalculation:")
        assert recalculated["geo"] == expected_geo(ROWS[0][1])
        assert recalculated["source"] == ROWS[0][4]
        assert client.post("/lineage/verify").json()["ok"]


def test_without_admin_keys_nobody_deletes(tmp_path: Path) -> None:
    with make_client(tmp_path / "ws", None) as client:
        upload(client, write_input(tmp_path / "in" / "fleet.csv"))
        assert_problem(
            client.delete(
                "/emissions/records/d-1", params={"reason": "x"}, headers={"X-API-Key": KEY}
            ),
            403,
            "has none",
            "[server] admin_keys",
        )
        assert client.get("/emissions").json()["total"] == 4
    with pytest.raises(ConfigurationError, match=r"admin_keys.*NAME:KEY"):
        make_client(tmp_path / "ws", "alice:")
    # An admin key is also a write key.
    with make_client(tmp_path / "ws2", f"bob:{ADMIN}") as client:
        with (tmp_path / "in" / "fleet.csv").open("rb") as handle:
            response = client.post(
                "/uploads",
                files={"file": ("fleet.csv", handle, "text/csv")},
                headers={"X-API-Key": ADMIN},
            )
        assert response.status_code == 202


# -- the command line and tamper evidence ------------------------------------------------


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_the_command_line_deletes_and_verify_still_catches_tampering(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    source = write_input(tmp_path / "in" / "fleet.csv")
    assert run_cli("run", str(source), "--workspace", str(ws)).exit_code == 0

    empty = run_cli("emissions", "delete", "d-1", "--reason", " ", "--workspace", str(ws))
    assert empty.exit_code == 2 and "--reason" in empty.stderr
    unknown = run_cli("emissions", "delete", "zz", "--reason", "x", "--workspace", str(ws))
    assert unknown.exit_code == 1 and "no calculated result" in unknown.stderr

    done = run_cli(
        "emissions", "delete", "d-4", "--reason", "meter fault", "--by", "carol",
        "--workspace", str(ws), "--json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    deletion = json.loads(done.stdout)
    assert deletion["deleted_by"] == "cli:carol" and deletion["reason"] == "meter fault"
    shown = run_cli("emissions", "show", "d-4", "--workspace", str(ws))
    assert shown.exit_code == 0 and "deleted" in shown.stdout and "meter fault" in shown.stdout
    again = run_cli("emissions", "delete", "d-4", "--reason", "x", "--workspace", str(ws))
    assert again.exit_code == 1 and "already deleted" in again.stderr
    tree = run_cli("lineage", "tree", deletion["root_id"], "--workspace", str(ws))
    assert tree.exit_code == 0 and "1 RECORD_DELETED" in tree.stdout
    assert "missing" not in tree.stdout
    trace = run_cli("lineage", "trace", "d-4#deleted-1", "--workspace", str(ws), "--json")
    assert [n["action_taken"] for n in json.loads(trace.stdout)][-2:] == [
        "CALCULATION_COMPLETE",
        "RECORD_DELETED",
    ]

    settings = load_settings(ws, environ={})
    context = Context.open(settings)
    try:
        assert sorted(r["activity_event_id"] for r in context.database.emissions_of_root(None)) == [
            "d-1",
            "d-2",
            "d-3",
        ]
        storage, database = context.storage, context.database
        assert verify(database, storage).ok
        node = database.lineage_node(deletion["root_id"], "d-4#deleted-1")
        assert node is not None
        note_url = node["storage_location"]
        note = storage.read_bytes(note_url)

        # 1. Someone rewrites the reason in the note: the object no longer matches.
        storage.write_bytes(note_url, note.replace(b"meter fault", b"meter fixed"))
        report = verify(database, storage)
        assert [p.kind for p in report.problems] == ["object_changed"]
        assert report.problems[0].node_id == "d-4#deleted-1"
        storage.write_bytes(note_url, note)
        assert verify(database, storage).ok

        # 2. Someone points the node at another time: its hash no longer fits.
        db_path = ws / "carbonlake.db"
        with sqlite3.connect(db_path) as conn:
            conn.execute(
                "UPDATE lineage SET recorded_at = '2020-01-01T00:00:00.000000Z' "
                "WHERE node_id = 'd-4#deleted-1'"
            )
        report = verify(database, storage, stop_at_first=False)
        assert "node_changed" in [p.kind for p in report.problems]
        with sqlite3.connect(db_path) as conn:
            conn.execute(
                "UPDATE lineage SET recorded_at = ? WHERE node_id = 'd-4#deleted-1'",
                (node["recorded_at"],),
            )
        assert verify(database, storage).ok

        # 3. Someone removes the deletion from the ledger to hide it: the database still
        # says the result was deleted, and a checkpoint says the ledger shrank.
        point = checkpoint(database)
        with sqlite3.connect(db_path) as conn:
            conn.execute("DELETE FROM lineage WHERE node_id = 'd-4#deleted-1'")
        report = verify(database, storage, checkpoint=point, stop_at_first=False)
        kinds = [p.kind for p in report.problems]
        assert "node_missing" in kinds and "ledger_shrank" in kinds
        assert any("d-4#deleted-1" in p.message for p in report.problems)
    finally:
        context.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_deletion_on_both_back_ends(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    from carbonlake import Pipeline

    url = (
        f"sqlite:///{tmp_path / 'carbonlake.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    settings = load_settings(tmp_path / "ws", environ={}, overrides={"database": {"url": url}})
    context = Context.open(settings)
    try:
        summary = Pipeline(context).run_file(write_input(tmp_path / "in" / "fleet.csv"))
        assert summary["status"] == "SUCCEEDED", summary["error"]
        database, storage = context.database, context.storage
        assert database.emission("d-1")["geo_lat"] == pytest.approx(45.5152)
        assert database.emission("d-1")["source"] == "company_fleet_management_database"
        done = emissions.delete_record(
            storage, database, "d-1", reason="wrong vehicle", deleted_by="cli:test"
        )
        assert database.emission("d-1") is None
        assert database.emissions_count() == 3
        assert database.deletions() == [("d-1", done["root_id"], "d-1#deleted-1")]
        shown = emissions.record_results(database, "d-1")
        assert shown["deleted"]["reason"] == "wrong vehicle"
        assert verify(database, storage).ok
        with pytest.raises(InputDataError, match="already deleted"):
            emissions.delete_record(storage, database, "d-1", reason="x", deleted_by="cli:test")
    finally:
        context.close()
