"""`carbonlake dq check` and `carbonlake run --rules`: tables, JSON, exit codes, rulesets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from carbonlake.cli import cli

from .conftest import HEADER, activity_row


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CARBONLAKE_"):
            monkeypatch.delenv(name)


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def csv_file(tmp_path: Path, *rows: str, name: str = "fleet.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def rules_file(tmp_path: Path, rules: Any, name: str = "rules.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(rules), encoding="utf-8")
    return path


def test_dq_check_of_a_good_file_exits_0_and_moves_nothing(tmp_path: Path) -> None:
    source = csv_file(tmp_path, activity_row("a"), activity_row("b"))
    before = source.read_bytes()
    ws = tmp_path / "ws"

    result = invoke("dq", "check", source, "--workspace", ws)

    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout
    assert "Check raw_data column" in result.stdout
    assert source.read_bytes() == before
    assert not ws.exists()  # checking a file does not make a workspace


def test_dq_check_of_a_bad_file_prints_rule_status_observed_value_and_samples(
    tmp_path: Path,
) -> None:
    source = csv_file(
        tmp_path, activity_row("a"), activity_row("b", raw_data="-4"), activity_row("a")
    )

    result = invoke("dq", "check", source, "--workspace", tmp_path / "ws")

    assert result.exit_code == 1
    out = " ".join(result.stdout.split())  # the table wraps long cells
    assert "FAILED" in out
    assert "row 2 (b)" in out  # the negative raw_data
    assert "row 1 (a), row 3 (a)" in out  # the duplicate ids
    assert "1 of 3 rows do not satisfy `raw_data` >= 0" in out
    assert "observed DUPLICATE_VALUES_COUNT of activity_event_id = 1" in out


def test_dq_check_json_is_the_report_and_nothing_else(tmp_path: Path) -> None:
    source = csv_file(tmp_path, activity_row("a"), activity_row("b", raw_data="x"))

    result = invoke("dq", "check", source, "--json", "--workspace", tmp_path / "ws")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert report["location"] == source.resolve().as_uri()
    assert report["summary"]["failedRules"] == ["Check raw_data column is numeric and not negative"]
    failed = report["rulesetResults"][0]["ruleResults"][5]
    assert failed["failingSamples"] == [{"row_number": 2, "activity_event_id": "b"}]
    assert "profile" not in report


def test_dq_check_profile_flag(tmp_path: Path) -> None:
    source = csv_file(tmp_path, activity_row("a", raw_data="3"), activity_row("b", raw_data="5"))

    as_json = invoke("dq", "check", source, "--profile", "--json", "--workspace", tmp_path / "w")
    text = invoke("dq", "check", source, "--profile", "--workspace", tmp_path / "w")

    profile = json.loads(as_json.stdout)["profile"]
    raw = next(c for c in profile["columns"] if c["name"] == "raw_data")
    assert (raw["type"], raw["min"], raw["max"], raw["mean"]) == ("number", 3.0, 5.0, 4.0)
    assert text.exit_code == 0 and "profile" in text.stdout and "raw_data" in text.stdout


def test_dq_check_warnings_only_exit_0(tmp_path: Path) -> None:
    source = csv_file(tmp_path, activity_row("a", category="unheard-of"))

    result = invoke("dq", "check", source, "--json", "--workspace", tmp_path / "ws")

    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["summary"]["warnedRules"] == [
        "Warn when category and activity have no emission factor"
    ]


def test_dq_check_with_own_rules(tmp_path: Path) -> None:
    source = csv_file(tmp_path, activity_row("a"), activity_row("b"))
    rules = rules_file(
        tmp_path,
        {
            "Rules": [
                {
                    "Name": "at least 3 rows",
                    "CheckExpression": "AGG(ROWS_COUNT) >= :n",
                    "SubstitutionMap": {":n": "3"},
                }
            ]
        },
    )

    result = invoke("dq", "check", source, "--rules", rules, "--json", "--workspace", tmp_path)

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["rulesetResults"][0]["ruleResults"]] == ["at least 3 rows"]
    assert report["rulesetResults"][0]["name"] == "rules"
    assert report["rulesetResults"][0]["ruleResults"][0]["observedValue"] == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rules.json", "{not json", "is not valid JSON"),
        ("rules.yaml", "- Name: [unclosed", "is not valid YAML at line 1"),
        ("rules.json", '{"rules": []}', "must hold a list of rules"),
        ("rules.json", "\udcff", "is not UTF-8"),
    ],
)
def test_a_ruleset_file_that_cannot_be_read_is_a_configuration_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    source = csv_file(tmp_path, activity_row("a"))
    rules = tmp_path / name
    rules.write_bytes(content.encode("utf-8", "surrogateescape"))

    checked = invoke("dq", "check", source, "--rules", rules, "--json", "--workspace", tmp_path)
    ran = invoke("run", source, "--rules", rules, "--json", "--workspace", tmp_path / "ws")

    for result in (checked, ran):
        assert result.exit_code == 2
        error = json.loads(result.stdout)["error"]
        assert error["type"] == "ConfigurationError"
        assert message in error["message"] and "--rules" in error["message"]
        assert str(rules) in error["message"]
    assert not (tmp_path / "ws" / "landing" / "fleet.csv").exists()  # nothing was landed


def test_one_bad_rule_fails_that_rule_and_the_others_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = csv_file(tmp_path, activity_row("a"), activity_row("b"))
    rules = rules_file(
        tmp_path,
        [
            {
                "Name": "bad one",
                "CheckExpression": "AGG(:c, NOPE) > 1",
                "SubstitutionMap": {":c": "`a`"},
            },
            {"Name": "two rows", "CheckExpression": "AGG(ROWS_COUNT) == 2"},
        ],
    )

    checked = invoke("dq", "check", source, "--rules", rules, "--json", "--workspace", tmp_path)
    assert checked.exit_code == 1
    results = {r["name"]: r for r in json.loads(checked.stdout)["rulesetResults"][0]["ruleResults"]}
    assert results["bad one"]["status"] == "FAILED"
    assert "aggregate 'NOPE' is not supported" in results["bad one"]["reason"]
    assert results["two rows"]["status"] == "SUCCEEDED"
    assert f"ruleset {rules}: rule 'bad one': aggregate 'NOPE' is not supported" in caplog.text
    assert "the rule fails on every file until it is fixed" in caplog.text

    table = invoke("dq", "check", source, "--rules", rules, "--workspace", tmp_path)
    assert table.exit_code == 1
    assert "aggregate 'NOPE' is not supported" in table.stdout

    ws = tmp_path / "ws"
    ran = invoke("run", source, "--rules", rules, "--json", "--workspace", ws)
    assert ran.exit_code == 1
    assert (ws / "error" / "fleet.csv").exists()
    (report_path,) = (ws / "dq-results").glob("*/report.json")
    stored = json.loads(report_path.read_text())
    reasons = {r["name"]: r["reason"] for r in stored["rulesetResults"][0]["ruleResults"]}
    assert "aggregate 'NOPE' is not supported" in reasons["bad one"]
    assert reasons["two rows"] is None


def test_dq_check_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("dq", "check", tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_run_rules_flag_overrides_the_configured_ruleset(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    lenient = rules_file(
        tmp_path, [{"Name": "any rows", "CheckExpression": "AGG(ROWS_COUNT) >= 1"}], "lenient.json"
    )
    strict = rules_file(
        tmp_path, [{"Name": "many rows", "CheckExpression": "AGG(ROWS_COUNT) >= 5"}], "strict.json"
    )
    (ws / "carbonlake.toml").write_text(f'[quality]\nruleset = "{lenient}"\n')
    source = csv_file(tmp_path, activity_row("a"), activity_row("b"))

    configured = invoke("run", source, "--json", "--workspace", ws)
    flagged = invoke(
        "run", source, "--rules", strict, "--key", "again.csv", "--json", "--workspace", ws
    )

    assert configured.exit_code == 0, configured.stdout
    assert json.loads(configured.stdout)[0]["data_quality"]["failed_rules"] == []
    assert flagged.exit_code == 1
    summary = json.loads(flagged.stdout)[0]
    assert summary["data_quality"]["failed_rules"] == ["many rows"]
    assert (ws / "error" / "again.csv").is_file()


def test_configured_ruleset_applies_to_dq_check_too(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    rules = rules_file(tmp_path, [{"Name": "many rows", "CheckExpression": "AGG(ROWS_COUNT) >= 5"}])
    (ws / "carbonlake.toml").write_text(f'[quality]\nruleset = "{rules}"\n')
    source = csv_file(tmp_path, activity_row("a"))

    result = invoke("dq", "check", source, "--json", "--workspace", ws)

    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"]["failedRules"] == ["many rows"]


def test_dq_check_as_a_real_process(tmp_path: Path) -> None:
    source = tmp_path / "broken.csv"
    source.write_bytes(b"\xff\xfe" + "activity_event_id\n".encode("utf-16-le"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}

    proc = subprocess.run(
        [sys.executable, "-m", "carbonlake.cli", "dq", "check", str(source), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["failedRules"] == ["File is UTF-8"]
    assert "UTF-16" in report["rulesetResults"][0]["ruleResults"][0]["reason"]
    assert not (tmp_path / "carbonlake-data").exists()


def test_dq_commands_have_help() -> None:
    for args in (["dq", "--help"], ["dq", "check", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0
        assert len(result.stdout.strip()) > 40
