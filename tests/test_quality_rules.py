"""The DataBrew rule language: every aggregate, condition, Threshold and ColumnSelectors.

Each test writes a small real CSV file and evaluates rules over it with the gate;
expected values are worked out independently here (Python's statistics module,
hand counts), not by the code under test.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonlake import ConfigurationError
from carbonlake.calculate.factors import load_factor_set
from carbonlake.quality import default_rules, factor_set_lists
from carbonlake.quality.compiler import TIMESTAMP_PATTERN
from carbonlake.quality.gate import evaluate
from carbonlake.quality.rules import load_rules, parse_check, rules_from_document

SHARED_EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_EXAMPLE = SHARED_EXAMPLE / "databrew-ruleset-example.json"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def evaluate_rules(
    tmp_path: Path, header: list[str], rows: list[list[str]], rules: list[dict[str, Any]]
) -> dict[str, Any]:
    path = write_csv(tmp_path / "data.csv", header, rows)
    report, _ = evaluate(
        path,
        rules_from_document(rules, "test rules"),
        resolve=factor_set_lists(lambda: load_factor_set("")),
    )
    return report


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}


def one_result(
    tmp_path: Path, header: list[str], rows: list[list[str]], rule: dict[str, Any]
) -> dict[str, Any]:
    report = evaluate_rules(tmp_path, header, rows, [{"Name": "r", **rule}])
    return by_name(report)["r"]


def failing_rows(result: dict[str, Any]) -> list[int]:
    return [s["row_number"] for s in result["failingSamples"]]


# -- column aggregates -------------------------------------------------------------------

VALUES = ["4", "1", "2", "2", "", "  ", "abc", "7"]
"""8 rows: 2 missing (empty, spaces), present 4 1 2 2 abc 7; numbers 4 1 2 2 7."""
NUMBERS = [4.0, 1.0, 2.0, 2.0, 7.0]
PRESENT = ["4", "1", "2", "2", "abc", "7"]


def population_moment(values: list[float], k: int) -> float:
    mean = statistics.fmean(values)
    return sum((v - mean) ** k for v in values) / len(values)


def entropy_bits(values: list[str]) -> float:
    counts = {v: values.count(v) for v in set(values)}
    total = len(values)
    return -sum(c / total * math.log2(c / total) for c in counts.values())


def outliers(values: list[float], z: float) -> int:
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    return sum(1 for v in values if abs(v - mean) / sd > z)


COLUMN_STATS: list[tuple[str, Any]] = [
    ("MISSING_VALUES_COUNT", 2),
    ("MISSING_VALUES_PERCENTAGE", 25.0),
    ("DUPLICATE_VALUES_COUNT", 1),
    ("DUPLICATE_VALUES_PERCENTAGE", 12.5),
    ("DISTINCT_VALUES_COUNT", 5),
    ("DISTINCT_VALUES_PERCENTAGE", 62.5),
    ("UNIQUE_VALUES_COUNT", 4),
    ("UNIQUE_VALUES_PERCENTAGE", 50.0),
    ("VALID_VALUES_COUNT", 5),  # the column is a number column; "abc" is not valid
    ("VALID_VALUES_PERCENTAGE", 62.5),
    ("MIN", 1.0),
    ("MAX", 7.0),
    ("MEAN", statistics.fmean(NUMBERS)),
    ("MEDIAN", statistics.median(NUMBERS)),
    ("MODE", "2"),
    ("SUM", 16.0),
    ("STANDARD_DEVIATION", statistics.stdev(NUMBERS)),
    ("VARIANCE", statistics.variance(NUMBERS)),
    ("ENTROPY", entropy_bits(PRESENT)),
    ("SKEWNESS", population_moment(NUMBERS, 3) / population_moment(NUMBERS, 2) ** 1.5),
    ("KURTOSIS", population_moment(NUMBERS, 4) / population_moment(NUMBERS, 2) ** 2 - 3),
    ("Z_SCORE_OUTLIERS_COUNT", outliers(NUMBERS, 3.0)),
    ("Z_SCORE_OUTLIERS_PERCENTAGE", outliers(NUMBERS, 3.0) * 100 / 8),
]


def column_rows(values: list[str]) -> list[list[str]]:
    """Rows of (id, x): the id keeps a row with an empty x from being an empty row."""
    return [[f"r{i}", v] for i, v in enumerate(values, start=1)]


@pytest.mark.parametrize(("stat", "expected"), COLUMN_STATS)
def test_column_aggregate_observed_values(tmp_path: Path, stat: str, expected: Any) -> None:
    result = one_result(
        tmp_path,
        ["id", "x"],
        column_rows(VALUES),
        {"CheckExpression": f"AGG(:c, {stat}) == AGG(:c, {stat})", "SubstitutionMap": {":c": "x"}},
    )
    if isinstance(expected, str):
        assert result["observedValue"] == expected
    else:
        assert result["observedValue"] == pytest.approx(expected)
    assert result["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("expression", "parameter", "expected"),
    [
        ("AGG(:c, QUANTILE, :p)", "0.25", 2.0),
        ("AGG(:c, QUANTILE, :p)", "0.9", 4 + 0.6 * 3),  # linear between 4 and 7
        ("AGG(:c, Z_SCORE_OUTLIERS_COUNT, :p)", "1", outliers(NUMBERS, 1.0)),
        ("AGG(:c, z_score_outliers_percentage, :p)", "1", outliers(NUMBERS, 1.0) * 100 / 8),
    ],
)
def test_aggregates_with_a_parameter(
    tmp_path: Path, expression: str, parameter: str, expected: float
) -> None:
    result = one_result(
        tmp_path,
        ["id", "x"],
        column_rows(VALUES),
        {"CheckExpression": f"{expression} >= 0", "SubstitutionMap": {":c": "x", ":p": parameter}},
    )
    assert result["observedValue"] == pytest.approx(expected)


def test_failed_aggregate_names_the_observed_value_and_shows_the_rows(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["activity_event_id", "x"],
        [["a", "1"], ["b", ""], ["c", "3"], ["d", " "]],
        {
            "CheckExpression": "AGG(:c, MISSING_VALUES_COUNT) <= :n",
            "SubstitutionMap": {":c": "`x`", ":n": "0"},
        },
    )
    assert result["status"] == "FAILED"
    assert result["observedValue"] == 2
    assert "MISSING_VALUES_COUNT of x = 2" in result["reason"]
    assert result["failingSamples"] == [
        {"row_number": 2, "activity_event_id": "b"},
        {"row_number": 4, "activity_event_id": "d"},
    ]
    assert result["columnResults"] == [{"name": "x", "status": "FAILED"}]


def test_outlier_rule_shows_the_outlying_rows(tmp_path: Path) -> None:
    rows = [[f"id{i}", "10"] for i in range(30)] + [["far", "1000"]]
    result = one_result(
        tmp_path,
        ["activity_event_id", "x"],
        rows,
        {
            "CheckExpression": "AGG(:c, Z_SCORE_OUTLIERS_COUNT) == 0",
            "SubstitutionMap": {":c": "`x`"},
        },
    )
    assert result["status"] == "FAILED"
    assert result["observedValue"] == 1
    assert result["failingSamples"] == [{"row_number": 31, "activity_event_id": "far"}]


# -- dataset aggregates -------------------------------------------------------------------


def test_dataset_aggregates(tmp_path: Path) -> None:
    rows = [["1", "a"], ["2", "b"], ["1", "a"], ["1", "a"], ["1", " a"]]
    report = evaluate_rules(
        tmp_path,
        ["n", "t"],
        rows,
        [
            {"Name": "rows", "CheckExpression": "AGG(ROWS_COUNT) == 5"},
            {"Name": "columns", "CheckExpression": "agg(columns_count) == 2"},
            {"Name": "dup", "CheckExpression": "AGG(DUPLICATE_ROWS_COUNT) <= 1"},
            {"Name": "dup%", "CheckExpression": "AGG(DUPLICATE_ROWS_PERCENTAGE) < 50"},
        ],
    )
    results = by_name(report)
    assert results["rows"]["observedValue"] == 5
    assert results["columns"]["observedValue"] == 2
    # Rows 3 and 4 repeat row 1; row 5 differs (" a" keeps its space in the raw row).
    assert results["dup"]["observedValue"] == 2
    assert results["dup"]["status"] == "FAILED"
    assert failing_rows(results["dup"]) == [1, 3, 4]
    assert results["dup%"]["observedValue"] == pytest.approx(40.0)
    assert results["dup%"]["status"] == "SUCCEEDED"


# -- per-row conditions --------------------------------------------------------------------

ROW_HEADER = ["id", "n", "m", "t"]
ROW_DATA = [
    ["r1", "5", "5", "apple"],
    ["r2", "10", "3", "Banana"],
    ["r3", "-2", "7", "cherry pie"],
    ["r4", "", "1", ""],
    ["r5", "x", "2", "apricot"],
    ["r6", "7.0", "7", "avocado"],
]


@pytest.mark.parametrize(
    ("expression", "substitutions", "failing"),
    [
        (":n > :v", {":v": "4"}, [3, 4, 5]),
        (":n >= :v", {":v": "5"}, [3, 4, 5]),
        (":n < :v", {":v": "5"}, [1, 2, 4, 5, 6]),
        (":n <= :v", {":v": "5"}, [2, 4, 5, 6]),
        (":n == :v", {":v": "7"}, [1, 2, 3, 4, 5]),  # 7.0 is the number 7
        (":n != :v", {":v": "7"}, [4, 5, 6]),  # a value that is not a number fails
        (":n IS_BETWEEN :lo and :hi", {":lo": "0", ":hi": "7"}, [2, 3, 4, 5]),
        (":n is between :lo AND :hi", {":lo": "5", ":hi": "10"}, [3, 4, 5]),
        (":n NOT IS_BETWEEN :lo and :hi", {":lo": "0", ":hi": "7"}, [1, 4, 5, 6]),
        (":n IS NOT BETWEEN :lo and :hi", {":lo": "0", ":hi": "7"}, [1, 4, 5, 6]),
        (":n IN :list", {":list": "[5, 7, 10]"}, [3, 4, 5]),
        (":n NOT IN :list", {":list": "[5, 7, 10]"}, [1, 2, 4, 5, 6]),  # x is no number
        (":t in :list", {":list": '["apple", "Banana"]'}, [3, 4, 5, 6]),
        (":t not_in :list", {":list": '["apple", "Banana"]'}, [1, 2, 4]),
        (":t STARTS_WITH :p", {":p": "a"}, [2, 3, 4]),
        (":t NOT STARTS_WITH :p", {":p": "a"}, [1, 4, 5, 6]),
        (":t ENDS_WITH :p", {":p": "pie"}, [1, 2, 4, 5, 6]),
        (":t not_ends_with :p", {":p": "pie"}, [3, 4]),
        (":t CONTAINS :p", {":p": "an"}, [1, 3, 4, 5, 6]),
        (":t NOT CONTAINS :p", {":p": "an"}, [2, 4]),
        (":t MATCHES :p", {":p": "[a-z]+"}, [2, 3, 4]),  # the whole value must match
        (":t NOT MATCHES :p", {":p": "a.*"}, [1, 4, 5, 6]),
        ("length(:t) >= :v", {":v": "6"}, [1, 4]),
        ("LENGTH(:t) IS_BETWEEN :lo AND :hi", {":lo": "5", ":hi": "7"}, [3, 4]),
        (":n >= :m", {}, [3, 4]),  # a column on the right; x >= 2 compares as text
        (":n == :m", {}, [2, 3, 4, 5]),
        (":n > :v and :n < :w", {":v": "0", ":w": "8"}, [2, 3, 4, 5]),
        (":n < :v or :m > :w", {":v": "0", ":w": "6"}, [1, 2, 4, 5]),
        (
            "(:n < :v or :m > :w) and :t contains :p",
            {":v": "0", ":w": "6", ":p": "o"},
            [1, 2, 3, 4, 5],
        ),
        (":n < :v OR :m > :w AND :t CONTAINS :p", {":v": "0", ":w": "6", ":p": "o"}, [1, 2, 4, 5]),
        (":t IS_MISSING", {}, [1, 2, 3, 5, 6]),
        (":t is not missing", {}, [4]),
        (":t == :v", {":v": "apple"}, [2, 3, 4, 5, 6]),
    ],
)
def test_per_row_conditions(
    tmp_path: Path, expression: str, substitutions: dict[str, str], failing: list[int]
) -> None:
    result = one_result(
        tmp_path,
        ROW_HEADER,
        ROW_DATA,
        {
            "CheckExpression": expression,
            "SubstitutionMap": {":n": "`n`", ":m": "`m`", ":t": "`t`", **substitutions},
        },
    )
    assert failing_rows(result) == failing
    assert result["failedCount"] == len(failing)
    assert result["status"] == ("FAILED" if failing else "SUCCEEDED")


def test_two_text_columns_compare_as_text(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["a", "b"],
        [["2019-10", "2019-11"], ["2020-01", "2019-12"], ["10", "9"]],
        {"CheckExpression": ":a < :b", "SubstitutionMap": {":a": "`a`", ":b": "`b`"}},
    )
    # Row 3 holds two numbers, so 10 < 9 is false as numbers (as text it would be true).
    assert failing_rows(result) == [2, 3]


def test_a_column_tuple_in_a_list_of_pairs(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["c", "a"],
        [["x", "1"], ["x", "2"], ["y", "1"]],
        {
            "CheckExpression": "(:c, :a) IN :pairs",
            "SubstitutionMap": {":c": "`c`", ":a": "`a`", ":pairs": '[["x", "1"], ["y", 1]]'},
        },
    )
    assert failing_rows(result) == [2]


# -- Threshold ------------------------------------------------------------------------------

TEN_ROWS = [[str(i)] for i in range(1, 11)]  # 1..10


@pytest.mark.parametrize(
    ("threshold", "status", "observed"),
    [
        ({"Value": 7, "Type": "GREATER_THAN_OR_EQUAL", "Unit": "COUNT"}, "SUCCEEDED", 7.0),
        ({"Value": 8, "Type": "GREATER_THAN_OR_EQUAL", "Unit": "COUNT"}, "FAILED", 7.0),
        ({"Value": 7}, "SUCCEEDED", 7.0),  # defaults: GREATER_THAN_OR_EQUAL, COUNT
        ({"Value": 70, "Type": "GREATER_THAN", "Unit": "PERCENTAGE"}, "FAILED", 70.0),
        ({"Value": 69.5, "Type": "GREATER_THAN", "Unit": "PERCENTAGE"}, "SUCCEEDED", 70.0),
        ({"Value": 70, "Type": "LESS_THAN_OR_EQUAL", "Unit": "PERCENTAGE"}, "SUCCEEDED", 70.0),
        ({"Value": 7, "Type": "LESS_THAN", "Unit": "COUNT"}, "FAILED", 7.0),
    ],
)
def test_threshold_counts_passing_rows(
    tmp_path: Path, threshold: dict[str, Any], status: str, observed: float
) -> None:
    result = one_result(
        tmp_path,
        ["n"],
        TEN_ROWS,
        {
            "CheckExpression": ":n <= :v",
            "SubstitutionMap": {":n": "`n`", ":v": "7"},
            "Threshold": threshold,
        },
    )
    assert result["status"] == status
    assert result["observedValue"] == pytest.approx(observed)
    assert result["failedCount"] == 3
    assert result["definition"]["Threshold"]["Value"] == threshold["Value"]
    if status == "FAILED":
        assert "threshold" in result["reason"]


def test_without_threshold_every_row_must_pass(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["n"],
        TEN_ROWS,
        {"CheckExpression": ":n <= :v", "SubstitutionMap": {":n": "`n`", ":v": "9"}},
    )
    assert result["status"] == "FAILED"
    assert result["failedCount"] == 1
    assert result["reason"] == "1 of 10 rows do not satisfy `n` <= 9"


# -- ColumnSelectors ---------------------------------------------------------------------------


def test_column_selectors_apply_an_implicit_check_to_each_column(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["id", "q1", "q2", "other"],
        [["a", "1", "5", "-9"], ["b", "-1", "6", "-9"], ["c", "2", "-3", "-9"]],
        {
            "CheckExpression": ">= :zero",
            "SubstitutionMap": {":zero": "0"},
            "ColumnSelectors": [{"Regex": "q[0-9]"}],
            "Threshold": {"Value": 2, "Type": "GREATER_THAN_OR_EQUAL", "Unit": "COUNT"},
        },
    )
    assert result["status"] == "SUCCEEDED"  # each column has 2 of 3 rows passing
    assert result["columnResults"] == [
        {"name": "q1", "status": "SUCCEEDED", "observedValue": 2.0, "failedCount": 1},
        {"name": "q2", "status": "SUCCEEDED", "observedValue": 2.0, "failedCount": 1},
    ]
    assert result["failedCount"] == 2  # rows 2 and 3 fail in some column


def test_column_selectors_with_an_aggregate_fail_per_column(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["a", "b", "c"],
        [["1", "", "x"], ["2", "", "y"], ["3", "4", ""]],
        {
            "CheckExpression": "AGG(MISSING_VALUES_PERCENTAGE) < :p",
            "SubstitutionMap": {":p": "50"},
            "ColumnSelectors": [{"Name": "a"}, {"Name": "b"}, {"Regex": "c"}],
        },
    )
    assert result["status"] == "FAILED"
    statuses = {c["name"]: c["status"] for c in result["columnResults"]}
    assert statuses == {"a": "SUCCEEDED", "b": "FAILED", "c": "SUCCEEDED"}
    assert result["observedValue"] == pytest.approx({"a": 0.0, "b": 200 / 3, "c": 100 / 3})
    assert result["reason"].startswith("column b: observed MISSING_VALUES_PERCENTAGE of b")


def test_a_named_column_the_file_lacks_is_reported_without_reading_data(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["a"],
        [["1"]],
        {
            "CheckExpression": "AGG(MISSING_VALUES_COUNT) == 0",
            "ColumnSelectors": [{"Name": "a"}, {"Name": "raw_data"}],
        },
    )
    assert result["status"] == "FAILED"
    assert "the file has no column raw_data" in result["reason"]
    assert result["columnResults"][0]["name"] == "raw_data"


def test_a_regex_selecting_no_column_has_nothing_to_check(tmp_path: Path) -> None:
    result = one_result(
        tmp_path,
        ["a"],
        [["1"]],
        {"CheckExpression": "IS_MISSING or MATCHES :p", "SubstitutionMap": {":p": "x"}}
        | {"ColumnSelectors": [{"Regex": "geo"}]},
    )
    assert result["status"] == "SUCCEEDED"
    assert "match no column" in result["reason"]


def test_a_rule_naming_a_missing_column_does_not_stop_the_other_rules(tmp_path: Path) -> None:
    report = evaluate_rules(
        tmp_path,
        ["a"],
        [["1"], ["2"]],
        [
            {"Name": "absent", "CheckExpression": ":c > 0", "SubstitutionMap": {":c": "`nope`"}},
            {"Name": "present", "CheckExpression": ":c > 1", "SubstitutionMap": {":c": "`a`"}},
        ],
    )
    results = by_name(report)
    assert results["absent"]["status"] == "FAILED"
    assert results["absent"]["reason"].startswith("the file has no column nope")
    assert failing_rows(results["present"]) == [1]


# -- severity, keywords, substitutions -----------------------------------------------------------


def test_warnings_are_reported_but_only_errors_fail_the_file(tmp_path: Path) -> None:
    report = evaluate_rules(
        tmp_path,
        ["n"],
        [["1"], ["-1"]],
        [
            {
                "Name": "soft",
                "Severity": "WARN",
                "CheckExpression": ":n >= 0",
                "SubstitutionMap": {":n": "`n`"},
            },
            {"Name": "hard", "CheckExpression": "AGG(ROWS_COUNT) >= 1"},
        ],
    )
    assert report["passed"] is True
    assert report["rulesetResults"][0]["status"] == "SUCCEEDED"
    soft = by_name(report)["soft"]
    assert (soft["status"], soft["severity"]) == ("FAILED", "warn")
    assert report["summary"]["warnedRules"] == ["soft"]
    assert report["summary"]["failedRules"] == []


def test_cloudformation_resource_and_non_text_substitutions_load(tmp_path: Path) -> None:
    document = {
        "Type": "AWS::DataBrew::Ruleset",
        "Properties": {
            "Name": "cfn",
            "Rules": [
                {
                    "Name": "scope",
                    "CheckExpression": ":c IN :list",
                    "SubstitutionMap": [
                        {"ValueReference": ":c", "Value": "`n`"},
                        {"ValueReference": ":list", "Value": [1, 2]},
                    ],
                }
            ],
        },
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    rules = load_rules(path)
    assert rules[0].substitution_map[":list"] == "[1, 2]"
    report = evaluate_rules(tmp_path, ["n"], [["1"], ["3"]], document["Properties"]["Rules"])
    assert failing_rows(by_name(report)["scope"]) == [2]


def test_the_shared_databrew_example_loads_unchanged() -> None:
    if not SHARED_EXAMPLE.exists():
        pytest.skip("the shared example is not present")
    rules = load_rules(SHARED_EXAMPLE)
    assert [r.name for r in rules] == [r.name for r in default_rules()[:3]]
    assert [r.check_expression for r in rules] == [r.check_expression for r in default_rules()[:3]]


def test_the_default_timestamp_rule_uses_the_documented_pattern() -> None:
    rule = next(r for r in default_rules() if "origin_measurement_timestamp" in r.name)
    assert "^" + rule.substitution_map[":timestamp"] + "$" == TIMESTAMP_PATTERN


BAD_RULES: list[tuple[dict[str, Any], str]] = [
    ({"CheckExpression": "AGG(:c, NOT_A_STAT) <= 0"}, "not supported"),
    ({"CheckExpression": "AGG(:nope, MISSING_VALUES_COUNT) <= 0"}, ":nope is not in the"),
    ({"CheckExpression": "(:c > 1"}, "ends too early"),
    ({"CheckExpression": ":c > 1)"}, "unexpected ')'"),
    ({"CheckExpression": ":c ~ 1"}, "cannot read"),
    ({"CheckExpression": ":c BETWIXT 1"}, "expected a condition"),
    ({"CheckExpression": ":c IN :v", "SubstitutionMap": {":v": "a, b"}}, "JSON array"),
    ({"CheckExpression": ":c IN :v", "SubstitutionMap": {":v": "@nope"}}, "known lists"),
    (
        {"CheckExpression": ":c IN :v", "SubstitutionMap": {":v": "@factor_set.category_activity"}},
        "2-part",
    ),
    (
        {"CheckExpression": ":c MATCHES :v", "SubstitutionMap": {":v": "(unclosed"}},
        "not a valid regular",
    ),
    ({"CheckExpression": ":v > 1", "SubstitutionMap": {":v": "raw_data"}}, "backticks"),
    ({"CheckExpression": "> 1"}, "nothing on its left"),
    ({"CheckExpression": "AGG(MISSING_VALUES_COUNT) == 0"}, "needs a column"),
    ({"CheckExpression": "AGG(:c, QUANTILE) > 0"}, "needs the quantile"),
    ({"CheckExpression": "AGG(:c, QUANTILE, 2) > 0"}, "between 0 and 1"),
    ({"CheckExpression": "AGG(:c, MAX, 2) > 0"}, "takes no parameter"),
    ({"CheckExpression": "AGG(:c, ROWS_COUNT) > 0"}, "takes no column"),
    ({"CheckExpression": "AGG(:c, MAX) > 0 and :c > 1"}, "mixes AGG"),
    ({"CheckExpression": "AGG(:c, MAX) > 0", "Threshold": {"Value": 1}}, "per-row checks only"),
    ({"CheckExpression": ":c > 0", "Threshold": {"Value": 1, "Type": "MOST"}}, "Threshold Type"),
    ({"CheckExpression": ":c > 0", "Threshold": {"Value": 1, "Unit": "ROWS"}}, "Threshold Unit"),
    (
        {"CheckExpression": ":c > 0", "Threshold": {"Value": 101, "Unit": "PERCENTAGE"}},
        "out of range",
    ),
    ({"CheckExpression": ":c > 0", "Threshold": {"Type": "LESS_THAN"}}, "with a Value"),
    ({"CheckExpression": ":c > 0", "Treshold": {"Value": 1}}, "unknown field(s) Treshold"),
    ({"CheckExpression": ":c > 0", "Severity": "fatal"}, "Severity 'fatal'"),
    ({"CheckExpression": ":c > 0", "Disabled": "no"}, "Disabled 'no'"),
    ({"CheckExpression": ":c > 0", "ColumnSelectors": [{"Name": "a"}]}, "leave the column out"),
    ({"CheckExpression": "AGG(:c, MAX) > 0", "ColumnSelectors": [{"Name": "a"}]}, "not AGG(:col"),
    ({"CheckExpression": "> 0", "ColumnSelectors": [{"Name": "a", "Regex": "b"}]}, "exactly one"),
    ({"CheckExpression": "> 0", "ColumnSelectors": [{"Regex": "("}]}, "not a valid regular"),
    ({"CheckExpression": "> 0", "ColumnSelectors": []}, "non-empty list"),
    ({"CheckExpression": "(:c, :c) > 1"}, "only be used with IN"),
    ({"CheckExpression": ":c > 0", "SubstitutionMap": [{"Value": "1"}]}, "ValueReference"),
]


@pytest.mark.parametrize(("rule", "message"), BAD_RULES)
def test_a_bad_rule_fails_with_its_reason_and_the_others_still_run(
    tmp_path: Path, rule: dict[str, Any], message: str
) -> None:
    substitutions = rule.get("SubstitutionMap", {})
    if isinstance(substitutions, dict):
        substitutions = {":c": "`asset_id`", **substitutions}
    bad = {"Name": "my rule", **rule, "SubstitutionMap": substitutions}
    good = {
        "Name": "good",
        "CheckExpression": "AGG(ROWS_COUNT) == :n",
        "SubstitutionMap": {":n": "2"},
    }
    loaded = rules_from_document([bad, good], "rules.json")
    assert loaded[0].problem is not None
    assert "'my rule'" in loaded[0].problem and message in loaded[0].problem
    assert loaded[1].problem is None

    report = evaluate_rules(tmp_path, ["asset_id", "a"], [["x", "1"], ["y", "2"]], [bad, good])
    results = by_name(report)
    assert results["my rule"]["status"] == "FAILED"
    assert results["my rule"]["reason"].startswith("the rule cannot be evaluated: ")
    assert message in results["my rule"]["reason"]
    assert results["my rule"]["definition"] == bad  # as written, to fix it
    assert results["good"]["status"] == "SUCCEEDED" and results["good"]["observedValue"] == 2
    assert report["passed"] is False and report["summary"]["failedRules"] == ["my rule"]


def test_a_bad_warn_rule_only_warns(tmp_path: Path) -> None:
    bad = {
        "Name": "typo",
        "Severity": "warn",
        "CheckExpression": ":c ~ 1",
        "SubstitutionMap": {":c": "`a`"},
    }
    report = evaluate_rules(tmp_path, ["a"], [["1"]], [bad])
    assert by_name(report)["typo"]["status"] == "FAILED"
    assert report["passed"] is True and report["summary"]["warnedRules"] == ["typo"]


def test_a_rule_that_is_not_an_object_fails_by_its_number(tmp_path: Path) -> None:
    good = {
        "Name": "rows",
        "CheckExpression": "AGG(ROWS_COUNT) > :n",
        "SubstitutionMap": {":n": "0"},
    }
    report = evaluate_rules(tmp_path, ["a"], [["1"]], [good, "AGG(ROWS_COUNT) > 0"])
    results = by_name(report)
    assert results["rows"]["status"] == "SUCCEEDED"
    assert results["rule 2"]["status"] == "FAILED"
    assert "not an object" in results["rule 2"]["reason"]


def test_a_second_rule_of_the_same_name_fails(tmp_path: Path) -> None:
    rule = {"Name": "twice", "CheckExpression": "AGG(ROWS_COUNT) > 0"}
    first, second = rules_from_document([rule, rule], "rules.json")
    assert first.problem is None
    assert second.problem is not None and "rules 1 and 2 are both named 'twice'" in second.problem
    report = evaluate_rules(tmp_path, ["a"], [["1"]], [rule, rule])
    statuses = [r["status"] for r in report["rulesetResults"][0]["ruleResults"]]
    assert statuses == ["SUCCEEDED", "FAILED"]


def test_a_ruleset_that_is_not_a_ruleset_is_still_refused() -> None:
    with pytest.raises(ConfigurationError, match="must hold a list of rules"):
        rules_from_document({"rules": []}, "rules.json")
    with pytest.raises(ConfigurationError, match="must hold a list of rules"):
        rules_from_document("AGG(ROWS_COUNT) > 0", "rules.json")


def test_a_disabled_rule_is_not_parsed_or_reported(tmp_path: Path) -> None:
    report = evaluate_rules(
        tmp_path,
        ["a"],
        [["1"]],
        [{"Name": "off", "Disabled": True, "CheckExpression": "half written ("}],
    )
    assert by_name(report) == {}
    assert report["passed"] is True


# -- properties -----------------------------------------------------------------------------------

numbers = st.lists(
    st.integers(min_value=-10_000, max_value=10_000).map(lambda i: i / 4), min_size=2, max_size=40
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=numbers)
def test_number_statistics_match_python(tmp_path: Path, values: list[float]) -> None:
    stats = ["MIN", "MAX", "SUM", "MEAN", "MEDIAN", "STANDARD_DEVIATION", "VARIANCE"]
    rules = [{"Name": s, "CheckExpression": f"AGG(:c, {s}) IS_BETWEEN :lo AND :hi"} for s in stats]
    for rule in rules:
        rule["SubstitutionMap"] = {":c": "`x`", ":lo": "-1e12", ":hi": "1e12"}
    report = evaluate_rules(tmp_path, ["x"], [[repr(v)] for v in values], rules)
    observed = {name: r["observedValue"] for name, r in by_name(report).items()}
    assert observed["MIN"] == min(values)
    assert observed["MAX"] == max(values)
    assert observed["SUM"] == pytest.approx(math.fsum(values))
    assert observed["MEAN"] == pytest.approx(statistics.fmean(values))
    assert observed["MEDIAN"] == pytest.approx(statistics.median(values))
    assert observed["STANDARD_DEVIATION"] == pytest.approx(statistics.stdev(values), abs=1e-9)
    assert observed["VARIANCE"] == pytest.approx(statistics.variance(values), abs=1e-9)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.one_of(st.integers(-50, 50).map(str), st.sampled_from(["", "x", " 3 "]))),
    op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    bound=st.integers(-50, 50),
)
def test_per_row_comparison_matches_python(
    tmp_path: Path, values: list[str], op: str, bound: int
) -> None:
    rows = [[f"r{i}", v] for i, v in enumerate(values)] or [["r", "1"]]
    result = one_result(
        tmp_path,
        ["id", "x"],
        rows,
        {"CheckExpression": f":c {op} :v", "SubstitutionMap": {":c": "`x`", ":v": str(bound)}},
    )
    compare = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]

    def passes(cell: str) -> bool:
        try:
            return bool(compare(float(cell.strip()), float(bound)))
        except ValueError:  # missing or not a number: fails
            return False

    expected = sum(1 for row in rows if not passes(row[1]))
    assert result["failedCount"] == expected


def test_the_rule_examples_in_the_docs_load() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "quality.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    assert len(blocks) >= 2
    for block in blocks:
        document = json.loads(block)
        rules = rules_from_document(document if isinstance(document, list) else [document], "doc")
        assert rules


@settings(max_examples=60, deadline=None)
@given(flips=st.lists(st.booleans(), min_size=200, max_size=200))
def test_keywords_parse_the_same_in_any_case(flips: list[bool]) -> None:
    expression = (
        "(AGG(:c, z_score_outliers_count, :z) <= :n or agg(rows_count) is between :a and :b) "
        "and AGG(:c, Missing_Values_Percentage) not is_between :a and :b"
    )
    # Flip the case of letters at random, except the one-letter :references (case matters there).
    protected = {i + 1 for i, ch in enumerate(expression) if ch == ":"}
    mixed = "".join(
        ch.swapcase() if i not in protected and flip else ch
        for i, (ch, flip) in enumerate(zip(expression, flips, strict=False))
    )
    substitutions = {":c": "`x`", ":z": "2", ":n": "0", ":a": "0", ":b": "10"}

    def parsed(text: str) -> Any:
        rule = {"Name": "r", "CheckExpression": text, "SubstitutionMap": substitutions}
        return parse_check(rules_from_document([rule], "test")[0])

    assert parsed(mixed) == parsed(expression)


def test_entropy_is_the_same_on_every_run_and_matches_its_definition() -> None:
    import random
    from collections import Counter

    import polars as pl

    from carbonlake.quality.compiler import agg_expr
    from carbonlake.quality.rules import Agg

    rng = random.Random(3)
    values = [str(rng.randint(0, 50_000)) for _ in range(300_000)]
    frame = pl.DataFrame({"x": values})
    expr = agg_expr(Agg("ENTROPY", "x"), ["x"])
    found = {frame.select(expr).item() for _ in range(20)}
    assert len(found) == 1  # value_counts' order varies; the entropy must not
    counts = Counter(values).values()
    expected = -sum(n / len(values) * math.log2(n / len(values)) for n in counts)
    assert found.pop() == pytest.approx(expected, rel=1e-12)
