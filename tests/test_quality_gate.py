"""The gate over whole files: report and profile shape, bad input, the stage contracts."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from carbonlake import tasks
from carbonlake.calculate.factors import load_factor_set
from carbonlake.executions import Context
from carbonlake.quality import check_file, default_rules, factor_set_lists
from carbonlake.quality.gate import MAX_SAMPLES, evaluate
from carbonlake.quality.rules import rules_from_document
from carbonlake.settings import Settings

from .conftest import HEADER, activity_row


def write_bytes(tmp_path: Path, data: bytes, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def lines(*rows: str, newline: str = "\n") -> bytes:
    return (newline.join([HEADER, *rows]) + newline).encode()


def gate(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    return evaluate(path, default_rules(), resolve=factor_set_lists(lambda: load_factor_set("")))


def results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}


def failed_reasons(report: dict[str, Any]) -> str:
    return "\n".join(
        f"{r['name']}: {r['reason']}" for r in results(report).values() if r["status"] == "FAILED"
    )


# -- the whole file ----------------------------------------------------------------------


def test_every_row_is_checked_not_only_the_first_20000(tmp_path: Path) -> None:
    rows = [activity_row(f"id-{i}") for i in range(1, 30_001)]
    rows[24_999] = activity_row("id-25000", raw_data="-1")
    report, profile = gate(write_bytes(tmp_path, lines(*rows)))
    raw = results(report)["Check raw_data column is numeric and not negative"]
    assert raw["status"] == "FAILED"
    assert raw["failingSamples"] == [{"row_number": 25_000, "activity_event_id": "id-25000"}]
    assert profile is not None and profile["rowsCount"] == 30_000
    assert report["sampleSize"] == 30_000


def test_samples_are_capped_but_the_count_is_complete(tmp_path: Path) -> None:
    rows = [activity_row(f"id-{i}", raw_data="-1" if i % 2 else "1") for i in range(1, 101)]
    report, _ = gate(write_bytes(tmp_path, lines(*rows)))
    raw = results(report)["Check raw_data column is numeric and not negative"]
    assert raw["failedCount"] == 50
    assert len(raw["failingSamples"]) == MAX_SAMPLES
    assert raw["failingSamples"][:2] == [
        {"row_number": 1, "activity_event_id": "id-1"},
        {"row_number": 3, "activity_event_id": "id-3"},
    ]


# -- report and profile ----------------------------------------------------------------------


def test_report_has_databrew_shape_plus_what_databrew_lacks(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path,
        lines(
            activity_row("a"),
            activity_row("b", category="nowhere"),
            activity_row("a", raw_data="-2"),
        ),
    )
    report, _ = gate(path)
    json.dumps(report, allow_nan=False)  # strict JSON
    assert report["passed"] is False and report["status"] == "FAILED"
    ruleset = report["rulesetResults"][0]
    assert ruleset["name"] == "carbonlake" and ruleset["status"] == "FAILED"
    for result in ruleset["ruleResults"]:
        assert {"name", "definition", "status", "failedCount", "columnResults"} <= set(result)
        assert result["status"] in ("SUCCEEDED", "FAILED")
        assert result["severity"] in ("error", "warn")
        # The definition is the rule itself: it loads back as a rule.
        assert rules_from_document([result["definition"]], "report")[0].name == result["name"]
    by_name = results(report)
    duplicate = by_name["Check activity_event_id column For duplicate Values"]
    assert duplicate["observedValue"] == 1
    assert [s["row_number"] for s in duplicate["failingSamples"]] == [1, 3]
    warning = by_name["Warn when category and activity have no emission factor"]
    assert (warning["status"], warning["severity"]) == ("FAILED", "warn")
    assert warning["failingSamples"] == [{"row_number": 2, "activity_event_id": "b"}]
    assert report["summary"] == {
        "rules": 11,
        "succeeded": 8,
        "failed": 2,
        "warnings": 1,
        "failedRules": [
            "Check activity_event_id column For duplicate Values",
            "Check raw_data column is numeric and not negative",
        ],
        "warnedRules": ["Warn when category and activity have no emission factor"],
    }


def test_profile_describes_every_column(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path,
        lines(
            activity_row("a", raw_data="4"),
            activity_row("b", raw_data="1"),
            activity_row("c", raw_data="2", units=""),
            activity_row("d", raw_data="2"),
            activity_row("e", raw_data="lots"),
        ),
    )
    _, profile = gate(path)
    assert profile is not None
    json.dumps(profile, allow_nan=False)
    columns = {c["name"]: c for c in profile["columns"]}
    assert list(columns) == HEADER.split(",")
    raw = columns["raw_data"]
    numbers = [4.0, 1.0, 2.0, 2.0]
    assert raw["type"] == "number"
    assert (raw["count"], raw["missing"], raw["distinct"], raw["unique"], raw["valid"]) == (
        5,
        0,
        4,
        3,
        4,
    )
    assert (raw["min"], raw["max"], raw["median"]) == (1.0, 4.0, 2.0)
    assert raw["mean"] == pytest.approx(statistics.fmean(numbers))
    assert raw["standardDeviation"] == pytest.approx(statistics.stdev(numbers))
    # Most common first, ties in value order.
    assert raw["mostCommonValues"] == [
        {"value": "2", "count": 2},
        {"value": "1", "count": 1},
        {"value": "4", "count": 1},
        {"value": "lots", "count": 1},
    ]
    assert columns["units"]["missing"] == 1 and columns["units"]["type"] == "string"
    assert "min" not in columns["units"]
    assert columns["origin_measurement_timestamp"]["type"] == "timestamp"
    assert columns["scope"]["type"] == "number"


def test_empty_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    data = lines(activity_row("a"), "", ",,,,,,,,,", activity_row("b"), "")
    report, profile = gate(write_bytes(tmp_path, data))
    assert report["passed"] is True, failed_reasons(report)
    assert report["emptyRowsSkipped"] == 3
    assert profile is not None and profile["rowsCount"] == 2


# -- bad input ----------------------------------------------------------------------------------

BAD: list[tuple[str, bytes, str, list[str]]] = [
    ("empty", b"", "File is not empty", ["empty"]),
    ("header only", HEADER.encode() + b"\n", "File has rows", ["no data rows"]),
    ("header and blank lines", HEADER.encode() + b"\n\n\n", "File has rows", ["2 empty rows"]),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "File is text", ["binary", "byte 8"]),
    (
        "utf-16",
        lines(activity_row("a")).decode().encode("utf-16"),
        "File is UTF-8",
        ["UTF-16"],
    ),
    (
        "latin-1",
        lines(activity_row("a"), activity_row("b").replace("vehicle1", "v\xe9hicule"))
        .decode()
        .encode("latin-1"),
        "File is UTF-8",
        ["line 3", "0xe9"],
    ),
    (
        "row too long",
        lines(activity_row("a"), activity_row("b") + ",extra"),
        "File is valid CSV",
        ["line 3 has 11 fields but the header has 10"],
    ),
    (
        "row too short",
        lines(activity_row("a"), activity_row("b").removesuffix(",gal"), activity_row("c")),
        "File is valid CSV",
        ["line 3 has 9 fields"],
    ),
    (
        "quote never closed",
        lines(activity_row("a"), activity_row("b").replace('"[1.5,2.5]"', '"[1.5,2.5]')),
        "File is valid CSV",
        ["line 3", "never closed"],
    ),
    (
        "quote inside an unquoted field",
        lines(activity_row("a"), activity_row("b").replace("vehicle1", 'vehi"cle1'), "x"),
        "File is valid CSV",
        ["line 3: a quote inside an unquoted field"],
    ),
    (
        "text after a closing quote",
        lines(activity_row("a"), activity_row("b").replace('"[1.5,2.5]"', '"[1.5,2.5]"x')),
        "File is valid CSV",
        ["line 3"],
    ),
    (
        "duplicate header names",
        (HEADER + ",units\n" + activity_row("a") + ",gal\n").encode(),
        "Header names are unique",
        ["units"],
    ),
    (
        "semicolon-separated",
        (HEADER.replace(",", ";") + "\n" + activity_row("a").replace(",", ";") + "\n").encode(),
        "File is comma-separated",
        ["semicolons", "comma-separated"],
    ),
    (
        "empty header name",
        (HEADER + ",\n" + activity_row("a") + ",x\n").encode(),
        "Header names are not empty",
        ["column(s) 11"],
    ),
]


@pytest.mark.parametrize(
    ("data", "check", "words"), [pytest.param(d, c, w, id=i) for i, d, c, w in BAD]
)
def test_bad_input_gives_a_failed_report_that_says_what_and_where(
    tmp_path: Path, data: bytes, check: str, words: list[str]
) -> None:
    report, profile = gate(write_bytes(tmp_path, data))
    assert report["passed"] is False
    assert profile is None or profile["rowsCount"] == 0
    result = results(report)[check]
    assert result["status"] == "FAILED" and result["severity"] == "error"
    for word in words:
        assert word in result["reason"], result["reason"]
    json.dumps(report, allow_nan=False)


def test_many_shape_problems_are_named_up_to_a_limit(tmp_path: Path) -> None:
    rows = [activity_row(f"id-{i}") + (",x" if i % 3 == 0 else "") for i in range(1, 40)]
    report, _ = gate(write_bytes(tmp_path, lines(*rows)))
    reason = results(report)["File is valid CSV"]["reason"]
    assert reason.startswith("line 4 has 11 fields")
    assert "line 16" in reason and "line 19" not in reason
    assert "there may be more" in reason


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            ("\ufeff" + lines(activity_row("a"), newline="\r\n").decode()).encode(), id="bom-crlf"
        ),
        pytest.param(
            lines(activity_row("a"), activity_row("b").replace("fleet", '"fleet\nmanager"')),
            id="quoted-line-break",
        ),
        pytest.param(
            lines(activity_row("a").replace("fleet", '"say ""hi"""')), id="doubled-quotes"
        ),
        pytest.param(
            (" " + HEADER.replace(",", " , ") + "\n" + activity_row("a") + "\n").encode(),
            id="spaces-around-header-names",
        ),
        pytest.param(lines(activity_row("a")).rstrip(b"\n"), id="no-final-newline"),
    ],
)
def test_good_input_in_awkward_forms_passes(tmp_path: Path, data: bytes) -> None:
    report, profile = gate(write_bytes(tmp_path, data))
    assert report["passed"] is True, failed_reasons(report)
    assert profile is not None and profile["rowsCount"] >= 1


def test_a_file_name_with_glob_characters_is_read_as_is(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, lines(activity_row("a")), name="fleet [2026] *.csv")
    report, _ = check_file(path, default_rules())
    assert report["passed"] is True, failed_reasons(report)


# -- the spec's stages ------------------------------------------------------------------------


def run_stages(settings: Settings, data: bytes, key: str = "f.csv") -> dict[str, Any]:
    landing = settings.workspace / "landing" / key
    landing.parent.mkdir(parents=True, exist_ok=True)
    landing.write_bytes(data)
    url = landing.resolve().as_uri()
    setup = tasks.dq_setup(
        {"event_type": "SETUP", "storage_location": url, "root_id": "root-1"}, settings=settings
    )["data_quality"]
    profile = tasks.dq_profile({"Name": setup["job_name"]}, settings=settings)
    return {"url": url, "results": profile["data_quality"]["results"]}


def test_profile_stage_points_the_check_stage_at_the_report(
    context: Context, settings: Settings
) -> None:
    ran = run_stages(settings, lines(activity_row("a"), activity_row("b", category="nowhere")))
    outputs = ran["results"]["Outputs"]
    assert outputs[0]["Location"] == {"Bucket": "dq-results", "Key": "root-1/report.json"}
    assert outputs[1]["Location"]["Key"] == "root-1/profile.json"
    report = json.loads((settings.workspace / "dq-results" / "root-1" / "report.json").read_text())
    assert report["root_id"] == "root-1" and report["storage_location"] == ran["url"]
    assert report["jobRunId"] == ran["results"]["RunId"]
    assert report["rulesetResults"][0]["name"] == "carbonlake-root-1-ruleset"
    # Only a warning failed: the file passes and moves to raw.
    assert report["summary"]["warnedRules"] and report["passed"] is True
    checked = tasks.dq_check_results(
        {"storage_location": ran["url"], "dq_results": ran["results"]}, settings=settings
    )
    assert checked["status"] is True
    assert checked["storage_location"].endswith("/raw/f.csv")


def test_check_stage_reads_an_original_style_output(context: Context, settings: Settings) -> None:
    """The original looked for the output whose key holds validation-report.json."""
    ran = run_stages(settings, lines(activity_row("a")))
    report_dir = settings.workspace / "dq-results" / "root-1"
    original = json.loads((report_dir / "report.json").read_text())
    original["rulesetResults"][0]["status"] = "FAILED"  # as DataBrew would write a failure
    del original["passed"]
    (report_dir / "job_jr_1_dq-validation-report.json").write_text(json.dumps(original))
    dq_results = {
        "Outputs": [
            {"Location": {"Bucket": "dq-results", "Key": "root-1/profile.json"}},
            {
                "Location": {
                    "Bucket": "dq-results",
                    "Key": "root-1/job_jr_1_dq-validation-report.json",
                }
            },
        ]
    }
    checked = tasks.dq_check_results(
        {"storage_location": ran["url"], "dq_results": dq_results}, settings=settings
    )
    assert checked["status"] is False
    assert checked["storage_location"].endswith("/error/f.csv")
