"""DataBrew-format rules: parsing, refusal of bad rules, column-wise evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbonlake import ConfigurationError
from carbonlake.quality import default_rules
from carbonlake.quality.gate import evaluate
from carbonlake.quality.rules import load_rules, rules_from_document

from .conftest import HEADER, activity_row

SHARED_EXAMPLE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / ("databrew-ruleset-example.json")
)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "f.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def results_by_name(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}


def test_default_rules_keep_the_original_names() -> None:
    names = [rule.name for rule in default_rules()]
    original = [
        "Check activity_event_id column For missing Values",
        "Check activity_event_id column For duplicate Values",
        "Check asset_id column For missing Values",
    ]
    assert names[:3] == original
    if SHARED_EXAMPLE.exists():  # the shared example ruleset loads unchanged
        assert [r.name for r in load_rules(SHARED_EXAMPLE)] == original


def test_cloudformation_substitution_list_and_keywords_in_any_case(tmp_path: Path) -> None:
    rules = rules_from_document(
        [
            {
                "Name": "rows",
                "CheckExpression": "agg(ROWS_COUNT) >= :n and AGG(:c, max) <= :m",
                "SubstitutionMap": [
                    {"ValueReference": ":n", "Value": "2"},
                    {"ValueReference": ":c", "Value": "`raw_data`"},
                    {"ValueReference": ":m", "Value": "50"},
                ],
            }
        ],
        "inline",
    )
    passing = write(tmp_path, [activity_row("a", "10"), activity_row("b", "20")])
    report, _ = evaluate(passing, rules)
    assert report["passed"] is True
    assert results_by_name(report)["rows"]["observedValue"] == [2.0, 20.0]
    failing = write(tmp_path, [activity_row("a", "10"), activity_row("b", "99")])
    assert evaluate(failing, rules)[0]["passed"] is False


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("AGG(:col1, MISSING_VALUES_COUNT) <=", "ends too early"),
        ("AGG(:col1, NOT_A_STAT) <= 0", "not supported"),
        ("AGG(:nope, MISSING_VALUES_COUNT) <= 0", ":nope is not in the SubstitutionMap"),
        ("AGG(:col1, MISSING_VALUES_COUNT) <= 0 and :col1 > 1", "mixes AGG"),
        ("AGG(:col1, MISSING_VALUES_COUNT) ~ 0", "cannot read"),
    ],
)
def test_bad_rules_carry_their_problem_with_the_rule_name(expression: str, message: str) -> None:
    document = [
        {
            "Name": "my rule",
            "CheckExpression": expression,
            "SubstitutionMap": {":col1": "`asset_id`"},
        }
    ]
    (rule,) = rules_from_document(document, "rules.json")
    assert rule.problem is not None
    assert "'my rule'" in rule.problem
    assert message in rule.problem


def test_a_rule_file_that_is_not_json_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_rules(bad)


def test_per_row_rule_reports_count_and_samples(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            activity_row("a", "1"),
            activity_row("b", "-2"),
            activity_row("c", "lots"),
            activity_row("d", "4"),
        ],
    )
    report, profile = evaluate(path, default_rules())
    result = results_by_name(report)["Check raw_data column is numeric and not negative"]
    assert result["status"] == "FAILED"
    assert result["failedCount"] == 2
    assert result["failingSamples"] == [
        {"row_number": 2, "activity_event_id": "b"},
        {"row_number": 3, "activity_event_id": "c"},
    ]
    assert profile is not None and profile["rowsCount"] == 4


def test_duplicate_ids_are_shown(tmp_path: Path) -> None:
    path = write(tmp_path, [activity_row("a"), activity_row("b"), activity_row("a")])
    report, _ = evaluate(path, default_rules())
    result = results_by_name(report)["Check activity_event_id column For duplicate Values"]
    assert result["status"] == "FAILED"
    assert result["observedValue"] == 1.0
    assert [s["row_number"] for s in result["failingSamples"]] == [1, 3]


def test_disabled_rules_and_warnings_do_not_fail_the_file(tmp_path: Path) -> None:
    rules = rules_from_document(
        {
            "Rules": [
                {"Name": "off", "Disabled": True, "CheckExpression": "AGG(ROWS_COUNT) > 100"},
                {"Name": "soft", "Severity": "warn", "CheckExpression": "AGG(ROWS_COUNT) > 100"},
            ]
        },
        "inline",
    )
    report, _ = evaluate(write(tmp_path, [activity_row("a")]), rules)
    assert report["passed"] is True
    assert report["summary"]["warnings"] == 1
    assert "off" not in results_by_name(report)


def test_report_is_json_serialisable(tmp_path: Path) -> None:
    report, profile = evaluate(write(tmp_path, [activity_row("a")]), default_rules())
    json.dumps(report)
    json.dumps(profile)
