"""DataBrew's whole check language and ruleset files as users have them.

The checks are the ones of AWS DataBrew's "Available checks" page, written as its
SDK examples write them; each expected value is computed here, in Python, from
the rows the test writes. The ruleset files are the shapes users have: a list, the
``describe-ruleset`` output, a CloudFormation resource and templates in JSON and YAML.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonlake import ConfigurationError
from carbonlake.cli import cli
from carbonlake.quality.gate import evaluate
from carbonlake.quality.rules import load_rules, rules_from_document

from .conftest import HEADER, activity_row

# -- the data -----------------------------------------------------------------------------------

COLUMNS = ["id", "x", "y", "url", "company", "size"]
ROWS = [
    ["a", "1", "2", "http://acme.com", "acme", "S"],
    ["b", "2", "2", "https://zeta.org", "zeta", "M"],
    ["c", "2", "1", "ftp://acme.net", "beta", "XL"],
    ["d", "10", "20", "http://beta.io", "beta", "XXL"],
    ["e", "", "5", "", "x", "M"],
    ["e", "", "5", "", "x", "M"],
]
"""Six rows; the last two are the same row; x is missing twice."""


def column(name: str) -> list[str]:
    return [row[COLUMNS.index(name)] for row in ROWS]


def numbers(name: str) -> list[float]:
    return [float(v) for v in column(name) if v.strip()]


def present(name: str) -> list[str]:
    return [v for v in column(name) if v.strip()]


def median_absolute_deviation(values: list[float]) -> float:
    middle = statistics.median(values)
    return statistics.median([abs(v - middle) for v in values])


def population_moment(values: list[float], k: int) -> float:
    mean = statistics.fmean(values)
    return sum((v - mean) ** k for v in values) / len(values)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def results_of(tmp_path: Path, rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    path = write_csv(tmp_path / "data.csv", COLUMNS, ROWS)
    report, _ = evaluate(path, rules_from_document(rules, "test"))
    return {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}


X = numbers("x")
COUNTS_X = Counter(present("x"))

# (CheckExpression as the page writes it, SubstitutionMap, ColumnSelectors or None, the
# observed value computed here). The page's examples use ColumnSelectors (implicit column).
AGGREGATES: list[tuple[str, dict[str, str], list[dict[str, str]] | None, Any]] = [
    ("AGG(ROWS_COUNT) > :val", {":val": "1"}, None, 6),
    ("AGG(COLUMNS_COUNT) == :val", {":val": "6"}, None, 6),
    ("AGG(DUPLICATE_ROWS_COUNT) < :val", {":val": "100"}, None, 1),
    ("AGG(DUPLICATE_ROWS_PERCENTAGE) < :val", {":val": "50"}, None, 100 / 6),
    ("AGG(MISSING_VALUES_COUNT) < :val", {":val": "5"}, [{"Name": "x"}], 2),
    ("AGG(MISSING_VALUES_PERCENTAGE) < :val", {":val": "50"}, [{"Name": "x"}], 200 / 6),
    ("AGG(DUPLICATE_VALUES_COUNT) < :val", {":val": "5"}, [{"Name": "x"}], 1),
    ("AGG(DUPLICATE_VALUES_PERCENTAGE) < :val", {":val": "50"}, [{"Name": "x"}], 100 / 6),
    ("AGG(VALID_VALUES_COUNT) > :val", {":val": "1"}, [{"Name": "x"}], 4),
    ("AGG(VALID_VALUES_PERCENTAGE) > :val", {":val": "1"}, [{"Name": "x"}], 400 / 6),
    ("AGG(DISTINCT_VALUES_COUNT) > :val", {":val": "1"}, [{"Name": "x"}], 3),
    ("AGG(DISTINCT_VALUES_PERCENTAGE) >= :val", {":val": "1"}, [{"Name": "x"}], 50.0),
    ("AGG(UNIQUE_VALUES_COUNT) > :val", {":val": "1"}, [{"Name": "x"}], 2),
    ("AGG(UNIQUE_VALUES_PERCENTAGE) > :val", {":val": "1"}, [{"Name": "x"}], 200 / 6),
    (
        "AGG(Z_SCORE_OUTLIERS_COUNT, :zscore_dev) < :val",
        {":zscore_dev": "1", ":val": "100"},
        [{"Name": "x"}],
        sum(1 for v in X if abs(v - statistics.fmean(X)) / statistics.stdev(X) > 1),
    ),
    ("AGG(Z_SCORE_OUTLIERS_PERCENTAGE) < :val", {":val": "5"}, [{"Name": "x"}], 0.0),
    ("AGG(MIN) > :val", {":val": "0"}, [{"Name": "x"}], min(X)),
    ("AGG(MAX) < :val", {":val": "100"}, [{"Name": "x"}], max(X)),
    ("AGG(MEDIAN) >= :val", {":val": "1"}, [{"Name": "x"}], statistics.median(X)),
    ("AGG(MEAN) <= :val", {":val": "10"}, [{"Name": "x"}], statistics.fmean(X)),
    ("AGG(MODE) > :val", {":val": "0"}, [{"Name": "x"}], COUNTS_X.most_common(1)[0][0]),
    ("AGG(STANDARD_DEVIATION) > :val", {":val": "0"}, [{"Name": "x"}], statistics.stdev(X)),
    (
        "AGG(ENTROPY) > :val",
        {":val": "0"},
        [{"Name": "x"}],
        -sum(n / len(present("x")) * math.log2(n / len(present("x"))) for n in COUNTS_X.values()),
    ),
    ("AGG(SUM) > :val", {":val": "0"}, [{"Name": "x"}], math.fsum(X)),
    (
        "AGG(KURTOSIS) > :val",
        {":val": "-10"},
        [{"Name": "x"}],
        population_moment(X, 4) / population_moment(X, 2) ** 2 - 3,
    ),
    (
        "AGG(SKEWNESS) > :val",
        {":val": "0"},
        [{"Name": "x"}],
        population_moment(X, 3) / population_moment(X, 2) ** 1.5,
    ),
    ("AGG(VARIANCE) > :val", {":val": "0"}, [{"Name": "x"}], statistics.variance(X)),
    (
        "AGG(MEDIAN_ABSOLUTE_DEVIATION) > :val",
        {":val": "0"},
        [{"Name": "x"}],
        median_absolute_deviation(X),
    ),
    (
        "AGG(QUANTILE, :pct) > :val",
        {":pct": "0.25", ":val": "0"},
        [{"Name": "x"}],
        quantile(X, 0.25),
    ),
]


@pytest.mark.parametrize(("expression", "substitutions", "selectors", "expected"), AGGREGATES)
def test_every_aggregate_check_of_the_databrew_page(
    tmp_path: Path,
    expression: str,
    substitutions: dict[str, str],
    selectors: list[dict[str, str]] | None,
    expected: Any,
) -> None:
    rule: dict[str, Any] = {"Name": "r", "CheckExpression": expression}
    rule["SubstitutionMap"] = substitutions
    if selectors:
        rule["ColumnSelectors"] = selectors
    result = results_of(tmp_path, [rule])["r"]
    assert result["reason"] is None or "cannot be evaluated" not in result["reason"]
    observed = result["observedValue"]
    if selectors:
        observed = observed["x"]
    assert observed == (expected if isinstance(expected, str) else pytest.approx(expected))
    # The page's example thresholds are chosen so that each of these passes.
    assert result["status"] == "SUCCEEDED", result["reason"]


# (CheckExpression as the page writes it, SubstitutionMap, whether a row passes: computed here)
Row = dict[str, str]
PER_ROW: list[tuple[str, dict[str, str], Callable[[Row], bool]]] = [
    (
        ":col IN :list",
        {":col": "`size`", ":list": '["S","M","L","XL"]'},
        lambda r: r["size"] in ("S", "M", "L", "XL"),
    ),
    (
        ":col NOT IN :list",
        {":col": "`size`", ":list": '["XXL","XL"]'},
        lambda r: r["size"] not in ("XXL", "XL"),
    ),
    (
        ":col STARTS_WITH :val",
        {":col": "`url`", ":val": "http"},
        lambda r: r["url"].startswith("http"),
    ),
    (
        ":col1 contains :col2",
        {":col1": "`url`", ":col2": "`company`"},
        lambda r: bool(r["url"]) and r["company"] in r["url"],
    ),
    (
        ":col IS_BETWEEN :val1 and :val2",
        {":col": "`x`", ":val1": "0", ":val2": "5"},
        lambda r: r["x"] != "" and 0 <= float(r["x"]) <= 5,
    ),
    (
        ":col1 <= :col2",
        {":col1": "`x`", ":col2": "`y`"},
        lambda r: r["x"] != "" and float(r["x"]) <= float(r["y"]),
    ),
    (
        "length(:col) IS_BETWEEN :val1 and :val2",
        {":col": "`url`", ":val1": "14", ":val2": "15"},
        lambda r: 14 <= len(r["url"]) <= 15,
    ),
    (
        "length(:col1) <= :col2",
        {":col1": "`company`", ":col2": "`y`"},
        lambda r: len(r["company"]) <= float(r["y"]),
    ),
    # The string comparisons the page lists: starts with, doesn't start with, ends with,
    # doesn't end with, contains, doesn't contain, is equals, is not equals, matches,
    # doesn't match.
    (
        ":c NOT STARTS_WITH :v",
        {":c": "`url`", ":v": "http"},
        lambda r: bool(r["url"]) and not r["url"].startswith("http"),
    ),
    (":c ENDS_WITH :v", {":c": "`url`", ":v": ".com"}, lambda r: r["url"].endswith(".com")),
    (
        ":c NOT ENDS_WITH :v",
        {":c": "`url`", ":v": ".com"},
        lambda r: bool(r["url"]) and not r["url"].endswith(".com"),
    ),
    (":c CONTAINS :v", {":c": "`url`", ":v": "acme"}, lambda r: "acme" in r["url"]),
    (
        ":c NOT CONTAINS :v",
        {":c": "`url`", ":v": "acme"},
        lambda r: bool(r["url"]) and "acme" not in r["url"],
    ),
    (":c == :v", {":c": "`company`", ":v": "beta"}, lambda r: r["company"] == "beta"),
    (":c != :v", {":c": "`company`", ":v": "beta"}, lambda r: r["company"] != "beta"),
    (":c MATCHES :v", {":c": "`size`", ":v": "X+L"}, lambda r: r["size"] in ("XL", "XXL")),
    (":c NOT MATCHES :v", {":c": "`size`", ":v": "X+L"}, lambda r: r["size"] not in ("XL", "XXL")),
    # DataBrew's condition names and their synonyms (is, eq, lt, lte, gt, gte, ...)
    (":c is :v", {":c": "`company`", ":v": "beta"}, lambda r: r["company"] == "beta"),
    (":c is not :v", {":c": "`company`", ":v": "beta"}, lambda r: r["company"] != "beta"),
    (":c not eq :v", {":c": "`company`", ":v": "beta"}, lambda r: r["company"] != "beta"),
    (":c eq :v", {":c": "`x`", ":v": "2"}, lambda r: r["x"] == "2"),
    (":c lt :v", {":c": "`x`", ":v": "2"}, lambda r: r["x"] != "" and float(r["x"]) < 2),
    (
        ":c less_than_equal :v",
        {":c": "`x`", ":v": "2"},
        lambda r: r["x"] != "" and float(r["x"]) <= 2,
    ),
    (":c gt :v", {":c": "`x`", ":v": "2"}, lambda r: r["x"] != "" and float(r["x"]) > 2),
    (":c GTE :v", {":c": "`x`", ":v": "2"}, lambda r: r["x"] != "" and float(r["x"]) >= 2),
    (":c greater_than :v", {":c": "`x`", ":v": "1"}, lambda r: r["x"] != "" and float(r["x"]) > 1),
    (":c not lt :v", {":c": "`x`", ":v": "2"}, lambda r: r["x"] != "" and float(r["x"]) >= 2),
]


@pytest.mark.parametrize(("expression", "substitutions", "passes"), PER_ROW)
def test_every_per_row_check_of_the_databrew_page(
    tmp_path: Path,
    expression: str,
    substitutions: dict[str, str],
    passes: Callable[[Row], bool],
) -> None:
    rule = {"Name": "r", "CheckExpression": expression, "SubstitutionMap": substitutions}
    result = results_of(tmp_path, [rule])["r"]
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    failing = [number for number, row in enumerate(rows, start=1) if not passes(row)]
    assert result["failedCount"] == len(failing), result["reason"]
    assert [s["row_number"] for s in result["failingSamples"]] == failing
    assert result["status"] == ("SUCCEEDED" if not failing else "FAILED")


def test_implicit_condition_words_with_column_selectors(tmp_path: Path) -> None:
    rule = {
        "Name": "r",
        "CheckExpression": "gte :v",
        "SubstitutionMap": {":v": "2"},
        "ColumnSelectors": [{"Name": "x"}, {"Name": "y"}],
    }
    result = results_of(tmp_path, [rule])["r"]
    per_column = {c["name"]: c["failedCount"] for c in result["columnResults"]}
    expected = {
        name: sum(1 for v in column(name) if not (v and float(v) >= 2)) for name in ("x", "y")
    }
    assert per_column == expected


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.integers(min_value=-1000, max_value=1000).map(lambda i: i / 8), min_size=1, max_size=40
    )
)
def test_median_absolute_deviation_matches_its_definition(
    tmp_path: Path, values: list[float]
) -> None:
    rules = [
        {
            "Name": "explicit",
            "CheckExpression": "AGG(:c, MEDIAN_ABSOLUTE_DEVIATION) >= :v",
            "SubstitutionMap": {":c": "`x`", ":v": "0"},
        },
        {
            "Name": "selected",
            "CheckExpression": "AGG(MEDIAN_ABSOLUTE_DEVIATION) < :v",
            "SubstitutionMap": {":v": "100000"},
            "ColumnSelectors": [{"Regex": "x"}],
        },
    ]
    path = write_csv(tmp_path / "mad.csv", ["x", "other"], [[repr(v), "z"] for v in values])
    report, _ = evaluate(path, rules_from_document(rules, "test"))
    results = {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}
    expected = median_absolute_deviation(values)
    assert results["explicit"]["observedValue"] == pytest.approx(expected)
    assert results["selected"]["observedValue"] == {"x": pytest.approx(expected)}
    assert results["explicit"]["status"] == results["selected"]["status"] == "SUCCEEDED"


def test_median_absolute_deviation_skips_values_that_are_not_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ["x"], [["1"], ["2"], ["abc"], [""], ["4"], ["10"]])
    rule = {
        "Name": "mad",
        "CheckExpression": "AGG(:c, MEDIAN_ABSOLUTE_DEVIATION) <= :v",
        "SubstitutionMap": {":c": "`x`", ":v": "1"},
    }
    report, _ = evaluate(path, rules_from_document([rule], "test"))
    (result,) = report["rulesetResults"][0]["ruleResults"]
    # median of 1, 2, 4, 10 is 3; deviations 2, 1, 1, 7; their median is 1.5
    assert result["observedValue"] == 1.5 == median_absolute_deviation([1, 2, 4, 10])
    assert result["status"] == "FAILED"
    assert "MEDIAN_ABSOLUTE_DEVIATION of x = 1.5" in result["reason"]


# -- ruleset files ------------------------------------------------------------------------------

RULES = [
    {
        "Name": "ids present",
        "Disabled": False,
        "CheckExpression": "AGG(MISSING_VALUES_COUNT) <= :max",
        "SubstitutionMap": {":max": "0"},
        "ColumnSelectors": [{"Name": "activity_event_id"}],
    },
    {
        "Name": "amounts not negative",
        "CheckExpression": ":col >= :zero",
        "SubstitutionMap": {":col": "`raw_data`", ":zero": "0"},
        "Threshold": {"Value": 90, "Type": "GREATER_THAN_OR_EQUAL", "Unit": "PERCENTAGE"},
    },
]

DESCRIBE_RULESET = {
    "Name": "activity-rules",
    "Description": "as aws databrew describe-ruleset prints it",
    "TargetArn": "arn:aws:databrew:us-east-1:111122223333:dataset/activity",
    "Rules": RULES,
    "CreateDate": "2026-03-01T10:00:00+00:00",
    "CreatedBy": "arn:aws:iam::111122223333:user/ghg",
    "LastModifiedDate": "2026-03-02T10:00:00+00:00",
    "ResourceArn": "arn:aws:databrew:us-east-1:111122223333:ruleset/activity-rules",
    "Tags": {"team": "ghg"},
}

TEMPLATE_YAML = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: DataBrew rulesets for activity data
Parameters:
  MaxMissing:
    Type: Number
    Default: 0
  DatasetName:
    Type: String
    Default: activity
Resources:
  ActivityDataset:
    Type: AWS::DataBrew::Dataset
    Properties:
      Name: !Ref DatasetName
      Input:
        S3InputDefinition:
          Bucket: !ImportValue LandingBucketName
  ActivityRuleset:
    Type: AWS::DataBrew::Ruleset
    Properties:
      Name: activity-rules
      Description: the rules of the activity files
      TargetArn: !Sub "arn:aws:databrew:${AWS::Region}:${AWS::AccountId}:dataset/${DatasetName}"
      Rules:
        - Name: ids present
          Disabled: false
          CheckExpression: AGG(MISSING_VALUES_COUNT) <= :max
          SubstitutionMap:
            - ValueReference: ":max"
              Value: !Ref MaxMissing
          ColumnSelectors:
            - Name: activity_event_id
        - Name: amounts not negative
          CheckExpression: ":col >= :zero"
          SubstitutionMap:
            - ValueReference: ":col"
              Value: "`raw_data`"
            - ValueReference: ":zero"
              Value: "0"
          Threshold:
            Type: GREATER_THAN_OR_EQUAL
            Unit: PERCENTAGE
            Value: 90
      Tags:
        - Key: team
          Value: ghg
  StrictRuleset:
    Type: AWS::DataBrew::Ruleset
    Properties:
      Name: strict-rules
      TargetArn: !GetAtt ActivityDataset.Arn
      Rules:
        - Name: at least 10 rows
          CheckExpression: AGG(ROWS_COUNT) >= :n
          SubstitutionMap:
            - ValueReference: ":n"
              Value: 10
"""


def activity_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "fleet.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def as_documents(rules: list[Any]) -> list[Any]:
    return [rule.to_document() for rule in rules]


def test_every_shape_of_ruleset_file_gives_the_same_rules(tmp_path: Path) -> None:
    expected = as_documents(rules_from_document(RULES, "reference"))
    assert all(rule.problem is None for rule in rules_from_document(RULES, "reference"))
    files = {
        "list.json": json.dumps(RULES),
        "describe.json": json.dumps(DESCRIBE_RULESET),
        "resource.json": json.dumps(
            {"Type": "AWS::DataBrew::Ruleset", "Properties": {"Name": "x", "Rules": RULES}}
        ),
        "template.json": json.dumps(
            {
                "Resources": {
                    "Rules": {
                        "Type": "AWS::DataBrew::Ruleset",
                        "Properties": {
                            "Name": "x",
                            "TargetArn": {"Fn::Sub": "arn:..."},
                            "Rules": RULES,
                        },
                    }
                }
            }
        ),
        "list.yaml": "- " + json.dumps(RULES[0]) + "\n- " + json.dumps(RULES[1]) + "\n",
        "template.yaml#activity-rules": TEMPLATE_YAML,
        "by-logical-id.yml#ActivityRuleset": TEMPLATE_YAML,
        "template.template#activity-rules": TEMPLATE_YAML,  # YAML without a .yaml suffix
    }
    for name, text in files.items():
        file_name = name.split("#", 1)[0]
        (tmp_path / file_name).write_text(text, encoding="utf-8")
        loaded = load_rules(str(tmp_path / name))
        assert as_documents(loaded) == expected, name


def test_a_template_with_several_rulesets_needs_a_name(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE_YAML, encoding="utf-8")
    with pytest.raises(ConfigurationError) as several:
        load_rules(path)
    message = str(several.value)
    assert "defines 2 rulesets: activity-rules (ActivityRuleset), strict-rules (StrictRuleset)" in (
        message
    )
    assert f"{path}#NAME" in message
    with pytest.raises(ConfigurationError, match="has no AWS::DataBrew::Ruleset named 'nope'"):
        load_rules(f"{path}#nope")
    (strict,) = load_rules(f"{path}#strict-rules")
    assert strict.problem is None and strict.substitution_map == {":n": "10"}


def test_template_refs_take_the_parameter_default_and_other_functions_fail_the_rule(
    tmp_path: Path,
) -> None:
    path = tmp_path / "template.yaml"
    text = TEMPLATE_YAML.replace("Value: !Ref MaxMissing", "Value: !GetAtt Limits.Max")
    path.write_text(text, encoding="utf-8")
    ids, amounts = load_rules(f"{path}#activity-rules")
    assert ids.problem is not None and '{"Fn::GetAtt": ["Limits", "Max"]}' in ids.problem
    assert "does not evaluate" in ids.problem
    assert amounts.problem is None
    report, _ = evaluate(activity_file(tmp_path, activity_row("a")), [ids, amounts])
    results = {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}
    assert results["ids present"]["status"] == "FAILED"
    assert "Fn::GetAtt" in results["ids present"]["reason"]
    assert results["amounts not negative"]["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "Resources:\n  R: [unclosed\n", "is not valid YAML at line 3"),
        ("bad.yaml", "just text\n", "must hold a list of rules"),
        (
            "other.yaml",
            "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n",
            "without an AWS::DataBrew::Ruleset resource (it has AWS::S3::Bucket)",
        ),
        (
            "lambda.json",
            '{"Type": "AWS::Lambda::Function", "Properties": {}}',
            "is a CloudFormation AWS::Lambda::Function resource",
        ),
        ("rules.json#x", json.dumps(RULES), "is a list of rules, which has no name"),
        ("describe.json#other", json.dumps(DESCRIBE_RULESET), "not 'other'"),
        ("missing.yaml", None, "does not exist"),
    ],
)
def test_ruleset_files_that_cannot_be_used_name_the_file(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    file_name = name.split("#", 1)[0]
    if text is not None:
        (tmp_path / file_name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_rules(str(tmp_path / name))
    assert message in str(info.value)
    assert str(tmp_path / file_name) in str(info.value)


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def test_dq_check_and_run_take_a_ruleset_of_a_cloudformation_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("CARBONLAKE_")]:
        monkeypatch.delenv(name)
    template = tmp_path / "stack.yaml"
    template.write_text(TEMPLATE_YAML, encoding="utf-8")
    source = activity_file(tmp_path, activity_row("a"), activity_row("b", raw_data="-1"))

    lenient = invoke(
        "dq",
        "check",
        source,
        "--rules",
        f"{template}#activity-rules",
        "--json",
        "--workspace",
        tmp_path / "ws",
    )
    assert lenient.exit_code == 1  # 1 of 2 rows is negative: 50% pass, the threshold is 90%
    report = json.loads(lenient.stdout)
    results = {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}
    assert set(results) == {"ids present", "amounts not negative"}
    assert results["amounts not negative"]["observedValue"] == 50.0
    assert results["ids present"]["status"] == "SUCCEEDED"

    strict = invoke(
        "run",
        source,
        "--rules",
        f"{template}#StrictRuleset",
        "--json",
        "--workspace",
        tmp_path / "ws",
    )
    assert strict.exit_code == 1
    assert (tmp_path / "ws" / "error" / "fleet.csv").exists()

    ambiguous = invoke("dq", "check", source, "--rules", template, "--json")
    assert ambiguous.exit_code == 2
    assert "defines 2 rulesets" in json.loads(ambiguous.stdout)["error"]["message"]


def test_the_yaml_template_in_the_docs_loads(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "quality.md").read_text()
    (block,) = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    path = tmp_path / "stack.yaml"
    path.write_text(block, encoding="utf-8")
    (rule,) = load_rules(path)
    assert rule.problem is None
    assert rule.name == "ids present" and rule.substitution_map == {":max": "0"}
