"""Bad input files fail the data-quality gate cleanly: exit 1, a reason, the error bucket.

Every broken file must end as a failed data-quality check with a reason a person
can act on, be moved from ``landing`` to ``error`` (and nowhere else), and be
announced by a recorded notification; never a traceback, never a crash.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from carbonlake.cli import cli
from carbonlake.database import Database

HEADER = (
    "activity_event_id,asset_id,geo,origin_measurement_timestamp,scope,category,"
    "activity,source,raw_data,units"
)
BUCKETS_OF_A_FILE = ("landing", "raw", "error")


def row(
    event_id: str = "id-1",
    asset: str = "vehicle1",
    raw_data: str = "10",
    geo: str = '"[1.5,2.5]"',
) -> str:
    """One valid activity row (motor gasoline in gallons), with fields to break."""
    return (
        f"{event_id},{asset},{geo},2019-10,1,mobile-combustion,"
        f"Motor Gasoline - Gasoline Passenger Cars,fleet,{raw_data},gal"
    )


def csv_text(*rows: str, header: str = HEADER, newline: str = "\n") -> str:
    return newline.join([header, *rows]) + newline


def valid_bytes() -> bytes:
    return csv_text(row("id-1"), row("id-2"), row("id-3")).encode()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from the developer's shell must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("CARBONLAKE_"):
            monkeypatch.delenv(name)


def run_cli(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def single_summary(stdout: str) -> dict[str, Any]:
    """The one run summary of a one-file ``run --json`` (one JSON document)."""
    document = json.loads(stdout)
    if isinstance(document, list):
        assert len(document) == 1, document
        document = document[0]
    assert isinstance(document, dict), document
    return document


def assert_no_crash(result: Result) -> None:
    """The command ended by its own exit code, not an exception escaping click."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def reason_text(summary: dict[str, Any]) -> str:
    dq = summary["data_quality"]
    parts = list(dq["failed_rules"])
    for item in dq.get("reasons", []):
        parts += [item["rule"], item["reason"] or ""]
    parts.append(summary.get("error") or "")
    return "\n".join(parts)


def where_is(ws: Path, key: str) -> list[str]:
    """The buckets among landing, raw and error that hold object ``key``."""
    return [bucket for bucket in BUCKETS_OF_A_FILE if (ws / bucket / key).is_file()]


def notifications(ws: Path, root_id: str) -> list[dict[str, Any]]:
    database = Database(f"sqlite:///{ws}/carbonlake.db")
    try:
        return database.notifications(root_id)
    finally:
        database.close()


def run_bad_file(tmp_path: Path, name: str, data: bytes) -> tuple[dict[str, Any], Path]:
    """Run one bad file and check everything every bad file must satisfy."""
    source = tmp_path / "in" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    ws = tmp_path / "ws"

    result = run_cli("run", source, "--workspace", ws, "--json")

    assert_no_crash(result)
    assert result.exit_code == 1, result.stdout + result.stderr
    summary = single_summary(result.stdout)
    assert summary["status"] == "FAILED"
    dq = summary["data_quality"]
    assert dq["status"] == "FAILED"
    assert dq["failed_rules"], dq
    assert all(isinstance(rule, str) and rule for rule in dq["failed_rules"])
    assert summary["records_calculated"] == 0
    assert {v for m in summary["co2e_tonnes"].values() for v in m.values()} == {0.0}

    # The file moved from landing to error and exists nowhere else, unchanged.
    assert where_is(ws, name) == ["error"]
    assert (ws / "error" / name).read_bytes() == data
    assert summary["input_storage_location"] == (ws / "landing" / name).resolve().as_uri()
    assert summary["storage_location"] == (ws / "error" / name).resolve().as_uri()
    # Nothing of it was transformed or calculated.
    assert not list((ws / "transformed").glob(f"{summary['root_id']}/*"))
    assert not list((ws / "enriched").glob(f"{summary['root_id']}/*"))

    # The failure was announced, and the announcement was recorded.
    recorded = notifications(ws, summary["root_id"])
    assert recorded, "no notification was recorded for the failed file"
    assert all(n["subject"] == "Data Quality check failed" for n in recorded)
    assert any(summary["input_storage_location"] in n["message"] for n in recorded)
    for rule in dq["failed_rules"]:
        assert any(rule in n["message"] for n in recorded)
    return summary, ws


def garbage() -> bytes:
    rng = random.Random(20240501)
    return rng.randbytes(512) + b"\x00\x00\x01\x00" + rng.randbytes(512)


BAD_FILES: list[tuple[str, bytes, list[str]]] = [
    # (id, content, words the reason must contain, case-insensitive)
    ("empty", b"", ["empty"]),
    ("header-only", (HEADER + "\n").encode(), ["no data rows"]),
    ("header-only-no-newline", HEADER.encode(), ["no data rows"]),
    (
        "latin-1",
        csv_text(row("id-1"), row("id-2", asset="v\xe9hicule")).encode("latin-1"),
        ["UTF-8", "line 3"],
    ),
    ("binary-garbage", garbage(), ["binary"]),
    (
        "missing-raw_data-column",
        csv_text(
            row("id-1").replace(",10,gal", ",gal"),
            header=HEADER.replace(",raw_data", ""),
        ).encode(),
        ["raw_data"],
    ),
    (
        "missing-asset_id-column",
        csv_text(
            row("id-1").replace(",vehicle1,", ","),
            header=HEADER.replace(",asset_id", ""),
        ).encode(),
        ["asset_id"],
    ),
    (
        "ragged-row-too-long",
        csv_text(row("id-1"), row("id-2"), row("id-3") + ",surplus", row("id-4")).encode(),
        ["line 4", "11 fields"],
    ),
    (
        "unbalanced-quotes",
        csv_text(row("id-1"), row("id-2", geo='"[1.5,2.5]'), row("id-3")).encode(),
        ["quote"],
    ),
    (
        "duplicate-header-names",
        csv_text(row("id-1") + ",fleet", header=HEADER + ",source").encode(),
        ["source", "repeat"],
    ),
    ("raw_data-negative", csv_text(row("id-1"), row("id-2", raw_data="-5")).encode(), ["raw_data"]),
    (
        "raw_data-not-numeric",
        csv_text(row("id-1"), row("id-2", raw_data="ten")).encode(),
        ["raw_data"],
    ),
    ("raw_data-missing", csv_text(row("id-1"), row("id-2", raw_data="")).encode(), ["raw_data"]),
    (
        "duplicate-activity_event_id",
        csv_text(row("id-1"), row("id-2"), row("id-1")).encode(),
        ["activity_event_id", "duplicate"],
    ),
    ("missing-asset_id", csv_text(row("id-1"), row("id-2", asset="")).encode(), ["asset_id"]),
]


@pytest.mark.parametrize(
    ("content", "expected_words"),
    [pytest.param(content, words, id=name) for name, content, words in BAD_FILES],
)
def test_bad_file_fails_data_quality_and_goes_to_error(
    tmp_path: Path, request: pytest.FixtureRequest, content: bytes, expected_words: list[str]
) -> None:
    name = f"{request.node.callspec.id}.csv"
    summary, _ = run_bad_file(tmp_path, name, content)
    text = reason_text(summary).lower()
    for word in expected_words:
        assert word.lower() in text, f"{word!r} not in the reason:\n{reason_text(summary)}"


def test_reason_of_a_bad_file_is_in_the_report_and_the_human_output(tmp_path: Path) -> None:
    """Without --json the reason reaches the user too, and the report file records it."""
    source = tmp_path / "fleet.csv"
    source.write_bytes(csv_text(row("id-1"), row("id-2", raw_data="-5")).encode())
    ws = tmp_path / "ws"

    result = run_cli("run", source, "--workspace", ws)

    assert_no_crash(result)
    assert result.exit_code == 1
    assert "FAILED" in result.stdout
    assert "raw_data" in result.stdout
    reports = list((ws / "dq-results").glob("*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["passed"] is False
    assert report["summary"]["failedRules"] == ["Check raw_data column is numeric and not negative"]
    failed = [x for x in report["rulesetResults"][0]["ruleResults"] if x["status"] == "FAILED"]
    assert failed[0]["failedCount"] == 1
    assert [s["activity_event_id"] for s in failed[0]["failingSamples"]] == ["id-2"]


def test_ragged_row_far_into_the_file_is_named_by_its_line(tmp_path: Path) -> None:
    rows = [row(f"id-{i}") for i in range(1, 3001)]
    rows[2499] += ",surplus"  # line 2501 (the header is line 1)
    summary, _ = run_bad_file(tmp_path, "long.csv", csv_text(*rows).encode())
    assert "line 2501" in reason_text(summary)


def test_row_with_fewer_fields_than_the_header_fails(tmp_path: Path) -> None:
    """A short row is as ragged as a long one: its fields would land in the wrong columns."""
    short = row("id-2").removesuffix(",gal")  # 9 fields, the header has 10
    summary, _ = run_bad_file(
        tmp_path, "short.csv", csv_text(row("id-1"), short, row("id-3")).encode()
    )
    assert "line 3" in reason_text(summary)


@pytest.mark.parametrize(
    "broken_row",
    [
        pytest.param(row("id-2", geo='"[1.5,2.5]'), id="quote-never-closed"),
        pytest.param(row("id-2", asset='vehi"cle1'), id="quote-inside-unquoted-field"),
    ],
)
def test_quote_problem_is_named_by_the_line_where_it_is(tmp_path: Path, broken_row: str) -> None:
    """The reason must point at the line to fix (line 3 here), not where parsing gave up."""
    rows = [row("id-1"), broken_row, row("id-3"), row("id-4"), row("id-5")]
    summary, _ = run_bad_file(tmp_path, "quotes.csv", csv_text(*rows).encode())
    text = reason_text(summary)
    assert "line 3" in text, text


def test_nested_key_of_a_bad_file_keeps_its_folders_in_error(tmp_path: Path) -> None:
    source = tmp_path / "fleet.csv"
    source.write_bytes(b"")
    ws = tmp_path / "ws"

    result = run_cli("run", "--key", "2026/march/fleet.csv", source, "--workspace", ws, "--json")

    assert_no_crash(result)
    assert result.exit_code == 1
    assert where_is(ws, "2026/march/fleet.csv") == ["error"]
    assert single_summary(result.stdout)["storage_location"].endswith("/error/2026/march/fleet.csv")


# -- files that must pass -----------------------------------------------------------


def run_good_file(tmp_path: Path, name: str, data: bytes) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / name
    source.write_bytes(data)
    ws = tmp_path / "ws"
    result = run_cli("run", source, "--workspace", ws, "--json")
    assert_no_crash(result)
    summary = single_summary(result.stdout)
    assert result.exit_code == 0, reason_text(summary) if summary.get("data_quality") else summary
    assert summary["status"] == "SUCCEEDED"
    assert summary["data_quality"]["status"] == "PASSED"
    assert summary["data_quality"]["failed_rules"] == []
    assert where_is(ws, name) == ["raw"]
    assert notifications(ws, summary["root_id"]) == []
    return summary


def test_bom_and_crlf_file_passes(tmp_path: Path) -> None:
    data = ("\ufeff" + csv_text(row("id-1"), row("id-2"), newline="\r\n")).encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    summary = run_good_file(tmp_path, "excel.csv", data)
    assert summary["records_in"] == 2
    assert summary["records_calculated"] == 2
    assert summary["records_failed"] == 0
    assert summary["co2e_tonnes"]["location_based"]["ar5"] > 0


def test_bom_crlf_file_gives_the_same_result_as_plain_utf8(tmp_path: Path) -> None:
    plain = run_good_file(tmp_path / "a", "plain.csv", valid_bytes())
    excel = run_good_file(
        tmp_path / "b",
        "excel.csv",
        ("\ufeff" + csv_text(row("id-1"), row("id-2"), row("id-3"), newline="\r\n")).encode(),
    )
    assert excel["records_calculated"] == plain["records_calculated"] == 3
    for method in ("location_based", "market_based"):
        assert excel["co2e_tonnes"][method] == pytest.approx(plain["co2e_tonnes"][method])


def test_non_ascii_utf8_text_passes(tmp_path: Path) -> None:
    data = csv_text(row("id-1", asset="véhicule-ø"), row("id-2", asset="車両")).encode("utf-8")
    summary = run_good_file(tmp_path, "utf8.csv", data)
    assert summary["records_calculated"] == 2


def test_file_without_final_newline_passes(tmp_path: Path) -> None:
    data = csv_text(row("id-1"), row("id-2")).rstrip("\n").encode()
    assert run_good_file(tmp_path, "no-newline.csv", data)["records_calculated"] == 2


@pytest.mark.parametrize("name", ["fleet[1].csv", "fleet [draft].csv", "fleet*?.csv"])
def test_valid_file_with_glob_characters_in_its_name_passes(tmp_path: Path, name: str) -> None:
    """File names are names, not patterns: brackets, stars and question marks are allowed."""
    summary = run_good_file(tmp_path, name, valid_bytes())
    assert summary["records_calculated"] == 3


def test_trailing_blank_line_is_not_a_record(tmp_path: Path) -> None:
    """Editors and spreadsheet exports often end a file with an empty line."""
    data = (csv_text(row("id-1"), row("id-2")) + "\n").encode()
    summary = run_good_file(tmp_path, "trailing-blank.csv", data)
    assert summary["records_in"] == 2
    assert summary["records_calculated"] == 2


# -- as a real process ----------------------------------------------------------------


def test_many_bad_files_in_one_real_process_no_traceback(tmp_path: Path) -> None:
    """The real command: one JSON document for all files, exit 1, no traceback on stderr."""
    chosen = {
        "empty",
        "latin-1",
        "binary-garbage",
        "ragged-row-too-long",
        "unbalanced-quotes",
        "duplicate-header-names",
        "missing-raw_data-column",
    }
    paths = []
    for name, content, _ in BAD_FILES:
        if name in chosen:
            path = tmp_path / f"{name}.csv"
            path.write_bytes(content)
            paths.append(path)
    good = tmp_path / "good.csv"
    good.write_bytes(valid_bytes())
    paths.append(good)
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "carbonlake.cli",
            "run",
            *map(str, paths),
            "--workspace",
            str(ws),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )

    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    document = json.loads(proc.stdout)
    summaries = document if isinstance(document, list) else [document]
    assert len(summaries) == len(paths)
    by_name = {Path(s["input_storage_location"]).name: s for s in summaries}
    assert set(by_name) == {p.name for p in paths}
    for path in paths:
        summary = by_name[path.name]
        if path is good:
            assert summary["status"] == "SUCCEEDED"
            assert where_is(ws, path.name) == ["raw"]
        else:
            assert summary["status"] == "FAILED"
            assert summary["data_quality"]["status"] == "FAILED"
            assert summary["data_quality"]["failed_rules"]
            assert where_is(ws, path.name) == ["error"]
            assert notifications(ws, summary["root_id"])
