"""Reliability findings of issue 17: inputs that used to crash or mislead (items 4, 5, 7, 12)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from carbonlake.executions import Context, Pipeline
from carbonlake.quality import check_file, load_ruleset

from .conftest import HEADER, activity_row

CARBONLAKE = (sys.executable, "-m", "carbonlake.cli")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CARBONLAKE, *args], capture_output=True, text=True, timeout=300)


def test_a_header_field_over_128_kib_fails_quality_with_its_reason(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    header = HEADER + "," + "x" * 140_000
    path = make_csv([activity_row("h-1") + ","], name="wide-header.csv", header=header)
    summary = Pipeline(context).run_file(path)
    assert summary["status"] == "FAILED"
    reasons = " ".join(r["reason"] for r in summary["data_quality"]["reasons"])
    assert "field larger than field limit" in reasons and "wide-header.csv" in reasons
    assert summary["storage_location"].endswith("/error/wide-header.csv")
    execution = context.database.get_execution(str(summary["execution_id"]))
    assert execution is not None and execution["status"] == "FAILED"


def test_dq_check_of_a_huge_header_field_reports_it_instead_of_a_traceback(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_csv([activity_row("h-1") + ","], header=HEADER + "," + "y" * 200_000)
    done = run_cli("dq", "check", str(path), "--json", "--workspace", str(tmp_path / "ws"))
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is False
    assert report["summary"]["failedRules"] == ["Header line is readable"]


def test_an_amount_that_overflows_is_a_failed_record_not_infinity(
    context: Context, make_csv: Callable[..., Path]
) -> None:
    path = make_csv([activity_row("big", raw_data="1e308"), activity_row("ok", raw_data="10")])
    summary = Pipeline(context).run_file(path)
    assert summary["records_calculated"] == 1 and summary["records_failed"] == 1
    (sample,) = summary["failed_records"]["samples"]
    assert sample["node_id"] == "big" and "too large" in sample["reason"]
    totals = summary["co2e_tonnes"]
    assert all(math.isfinite(v) for by_gwp in totals.values() for v in by_gwp.values())
    # The total is the good record's alone: 10 gal x its factor's AR5 kg CO2e/gal / 1000.
    row = context.database.emission("ok")
    assert row is not None
    expected = Decimal("10") * Decimal(str(row["ar5_kgco2e_per_unit"])) / Decimal(1000)
    for method in ("location_based", "market_based"):  # scope 1: the same in both
        assert math.isclose(totals[method]["ar5"], float(expected), rel_tol=1e-12)
    json.dumps(summary, allow_nan=False)  # valid JSON, no Infinity


def test_run_json_with_an_overflowing_amount_is_valid_json(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_csv([activity_row("big", raw_data="1.7e308", units="kgal")])
    done = run_cli("run", str(path), "--json", "--workspace", str(tmp_path / "ws"))
    assert done.returncode == 1, done.stderr
    assert "Infinity" not in done.stdout
    (summary,) = json.loads(done.stdout)
    assert summary["records_failed"] == 1 and summary["records_calculated"] == 0


def wide_file(make_csv: Callable[..., Path], width: int) -> Path:
    extra = [f"extra_{i}" for i in range(width - len(HEADER.split(",")))]
    header = ",".join([HEADER, *extra])
    rows = [activity_row(f"w-{r}") + "," + ",".join("1" for _ in extra) for r in range(3)]
    return make_csv(rows, name=f"wide-{width}.csv", header=header)


def test_a_file_wider_than_max_columns_fails_at_once_naming_the_setting(
    make_csv: Callable[..., Path],
) -> None:
    rules = load_ruleset("")
    report, profile = check_file(wide_file(make_csv, 1001), rules)
    assert report["passed"] is False
    (only,) = report["rulesetResults"][0]["ruleResults"]
    assert "1,001 columns" in only["reason"] and "[quality] max_columns" in only["reason"]
    assert profile is None  # refused before reading
    report, profile = check_file(wide_file(make_csv, 1001), rules, max_columns=2000)
    assert report["passed"] is True and profile is not None
    assert profile["columnsCount"] == 1001


def test_max_columns_is_a_setting(make_csv: Callable[..., Path], tmp_path: Path) -> None:
    path = wide_file(make_csv, 40)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "carbonlake.toml").write_text("[quality]\nmax_columns = 20\n", encoding="utf-8")
    done = run_cli("run", str(path), "--json", "--workspace", str(workspace))
    assert done.returncode == 1
    (summary,) = json.loads(done.stdout)
    assert summary["data_quality"]["failed_rules"] == ["File has at most max_columns columns"]


def test_an_invalid_key_is_a_usage_error(make_csv: Callable[..., Path], tmp_path: Path) -> None:
    path = make_csv([activity_row("k-1")])
    for key in ("../escape.csv", "/abs.csv", "a//b.csv"):
        done = run_cli("run", str(path), "--key", key, "--workspace", str(tmp_path / "ws"))
        assert done.returncode == 2, (key, done.stderr)
        assert "--key" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ws" / "landing").exists() or not any(
        (tmp_path / "ws" / "landing").iterdir()
    )


FORMULAS = ["=cmd|' /C calc'!A0", "+1+2", "-2+3", "@SUM(A1)", "\tx"]


def formula_file(make_csv: Callable[..., Path]) -> Path:
    rows = []
    for n, text in enumerate(FORMULAS):
        quoted = '"' + text.replace('"', '""') + '"'
        rows.append(
            f'f-{n},{quoted},"[1.5,2.5]",2019-10,1,mobile-combustion,'
            f"Motor Gasoline - Gasoline Passenger Cars,fleet,10,gal"
        )
    return make_csv(rows, name="formulas.csv", header=HEADER)


def test_csv_export_escapes_formula_cells_and_jsonl_keeps_them(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    import csv

    workspace = str(tmp_path / "ws")
    done = run_cli("run", str(formula_file(make_csv)), "--workspace", workspace)
    assert done.returncode == 0, done.stdout + done.stderr
    out_csv, out_jsonl = tmp_path / "e.csv", tmp_path / "e.jsonl"
    for fmt, out in (("csv", out_csv), ("jsonl", out_jsonl)):
        done = run_cli(
            "emissions", "export", "--format", fmt, "-o", str(out), "--workspace", workspace
        )
        assert done.returncode == 0, done.stderr
    with out_csv.open(newline="", encoding="utf-8") as handle:
        assets = {r["activity_event_id"]: r["asset_id"] for r in csv.DictReader(handle)}
    assert assets == {f"f-{n}": "'" + text for n, text in enumerate(FORMULAS)}
    records = [json.loads(line) for line in out_jsonl.read_text(encoding="utf-8").splitlines()]
    assert {r["activity_event_id"]: r["asset_id"] for r in records} == {
        f"f-{n}": text for n, text in enumerate(FORMULAS)
    }


def test_api_csv_escapes_formula_cells(make_csv: Callable[..., Path], tmp_path: Path) -> None:
    import csv
    import io

    from fastapi.testclient import TestClient

    from carbonlake.service import create_app
    from carbonlake.settings import load_settings

    workspace = tmp_path / "ws"
    done = run_cli("run", str(formula_file(make_csv)), "--workspace", str(workspace))
    assert done.returncode == 0
    client = TestClient(
        create_app(load_settings(workspace, environ={})), base_url="http://localhost"
    )
    response = client.get("/emissions", params={"format": "csv"})
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["activity_event_id"]: r["asset_id"] for r in rows} == {
        f"f-{n}": "'" + text for n, text in enumerate(FORMULAS)
    }
    # Numbers stay numbers (a negative amount would not be escaped).
    assert all(float(r["co2e_ar5_tonnes"]) > 0 for r in rows)
    json_rows = client.get("/emissions").json()
    assert {r["asset_id"] for r in json_rows["records"]} == set(FORMULAS)


def test_the_service_refuses_host_names_it_was_not_given(tmp_path: Path) -> None:
    """Issue 17 item 13: a DNS-rebinding page sends its own name as Host."""
    import httpx

    from carbonlake.service import create_app
    from carbonlake.service.server import ServerThread
    from carbonlake.settings import load_settings

    app = create_app(load_settings(tmp_path / "ws", environ={}))
    with ServerThread(app) as base:
        url = base.rstrip("/")
        port = httpx.URL(url).port
        good = httpx.get(f"{url}/emissions")
        assert good.status_code == 200
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            bad = httpx.get(f"{url}/emissions", headers={"Host": host})
            assert bad.status_code == 400, host
            assert "allowed_hosts" in bad.json()["detail"]
        assert httpx.get(f"{url}/health", headers={"Host": f"localhost:{port}"}).status_code == 200
    named = create_app(
        load_settings(
            tmp_path / "ws2", environ={"CARBONLAKE_SERVER__ALLOWED_HOSTS": "carbon.example.org"}
        )
    )
    with ServerThread(named) as base:
        url = base.rstrip("/")
        assert httpx.get(f"{url}/health", headers={"Host": "carbon.example.org"}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 400  # only the names given


def test_reads_need_a_key_when_listening_beyond_loopback(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from carbonlake.service import create_app
    from carbonlake.settings import load_settings

    environ = {
        "CARBONLAKE_SERVER__HOST": "0.0.0.0",
        "CARBONLAKE_SERVER__API_KEYS": "k-1",
        "CARBONLAKE_SERVER__ALLOWED_HOSTS": "carbon.example.org",
    }
    client = TestClient(
        create_app(load_settings(tmp_path / "ws", environ=environ)),
        base_url="http://carbon.example.org",
    )
    assert client.get("/emissions").status_code == 401
    assert client.get("/emissions", headers={"X-API-Key": "k-1"}).status_code == 200
    local = TestClient(
        create_app(load_settings(tmp_path / "ws3", environ={})), base_url="http://localhost"
    )
    assert local.get("/emissions").status_code == 200  # loopback: reads stay open


def test_watch_waits_for_a_writer_that_pauses_and_takes_the_file_once(tmp_path: Path) -> None:
    """Issue 17 item 6: a writer pauses 1.5 s mid-file; the watcher must not take the part."""
    import threading
    import time

    from carbonlake.settings import load_settings
    from carbonlake.watch import Watcher

    settings = load_settings(
        tmp_path / "ws",
        environ={},
        overrides={"pipeline": {"watch_interval_s": 0.1, "watch_settle_s": 3.0}},
    )
    context = Context.open(settings)
    target = tmp_path / "ws" / "landing" / "slow.csv"
    rows = [activity_row(f"s-{i}") for i in range(40)]
    handle = target.open("w", encoding="utf-8")
    handle.write(HEADER + "\n" + "\n".join(rows[:20]) + "\n")
    handle.flush()

    def finish() -> None:
        time.sleep(1.5)
        handle.write("\n".join(rows[20:]) + "\n")
        handle.close()

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        summaries = Watcher(Pipeline(context), use_events=True).run(once=True)
    finally:
        writer.join()
    assert [s["status"] for s in summaries] == ["SUCCEEDED"]
    assert summaries[0]["records_calculated"] == 40
    assert len(context.database.executions()) == 1
    context.close()
