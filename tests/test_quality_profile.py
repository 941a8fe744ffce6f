"""The profile and the rules over the gate's working copy, checked against plain Python.

The gate parses the CSV once into a Parquet working copy and profiles it one
column at a time. These tests write small random files (blanks, spaces,
duplicates, numbers, text, quoted commas and line breaks, empty rows) and
compare what the gate reports with what Python's ``csv`` module and plain
counting give; and they check that how the copy is cut into row groups never
changes a report.
"""

from __future__ import annotations

import csv
import math
import random
import re
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonlake import StorageError
from carbonlake.quality import compiler
from carbonlake.quality.compiler import BOOLEAN_TEXTS, HASH_SEED, TIMESTAMP_PATTERN
from carbonlake.quality.gate import MAX_SAMPLES, evaluate
from carbonlake.quality.profiling import TOP_VALUES, hash_counts
from carbonlake.quality.rules import rules_from_document
from carbonlake.quality.structure import _QUOTED, _RECORD, record_pattern

HEADER = ["id", "amount", "kind", "mixed", "note"]

NUMBERS = ["0", "1", "2", "2", "-3", "12.5", "-0.25", "1e3", "7", "007", "99.999", "3"]
TEXTS = ["alpha", "beta", "beta", "Gamma", "a,b", 'say "hi"', "two\nlines", "x y"]
SPECIAL = ["nan", "inf", "-inf", "NaN", "TRUE", "false", "True", "2019-10", "2019-10-31"]
SPECIAL += ["2019-10-31T08:15:00Z", "2019-13", "tru"]


def _cell(rng: random.Random, pool: list[str]) -> str:
    roll = rng.random()
    if roll < 0.08:
        return ""
    if roll < 0.12:
        return rng.choice([" ", "  ", "\t"])
    value = rng.choice(pool)
    if roll < 0.2:
        value = rng.choice([" ", "\t"]) + value + rng.choice(["", " "])
    return value


def random_rows(rng: random.Random, count: int) -> list[list[str]]:
    ids = [f"id-{rng.randrange(count * 2)}" for _ in range(count)]
    rows = []
    for i in range(count):
        if rng.random() < 0.05:
            rows.append([""] * len(HEADER))  # an empty row: skipped, counted
            continue
        rows.append(
            [
                _cell(rng, [ids[i]]),
                _cell(rng, [*NUMBERS, "ten"]),
                _cell(rng, TEXTS + SPECIAL[5:8]),
                _cell(rng, NUMBERS + TEXTS + SPECIAL),
                _cell(rng, [f"n{rng.randrange(1000)}"]),
            ]
        )
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


# -- what the profile should say, by plain Python ------------------------------------------


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _hash(value: str) -> int:
    return int(pl.Series([value]).hash(seed=HASH_SEED)[0])


def expected_profile(path: Path) -> dict[str, Any]:
    with path.open(newline="", encoding="utf-8") as handle:
        header, *data = list(csv.reader(handle))
    records = [row for row in data if any(cell != "" for cell in row)]
    columns = []
    for index, name in enumerate(header):
        present = [v for v in (row[index].strip() for row in records) if v]
        numbers = [n for n in map(_number, present) if n is not None]
        counts = {
            "present": len(present),
            "number": len(numbers),
            "timestamp": sum(1 for v in present if re.search(TIMESTAMP_PATTERN, v)),
            "boolean": sum(1 for v in present if v.lower() in BOOLEAN_TEXTS),
        }
        type_name = next(
            (t for t in ("number", "timestamp", "boolean") if counts[t] * 2 > len(present)),
            "string",
        )
        frequency = Counter(present)
        top = sorted(frequency.items(), key=lambda item: (-item[1], _hash(item[0])))
        common = [{"value": v, "count": n} for v, n in top[:TOP_VALUES]]
        entry: dict[str, Any] = {
            "name": name,
            "type": type_name,
            "count": len(records),
            "missing": len(records) - len(present),
            "distinct": len(frequency),
            "unique": sum(1 for n in frequency.values() if n == 1),
            "valid": counts.get(type_name, len(present)) if type_name != "string" else len(present),
            "mostCommonValues": sorted(common, key=lambda v: (-v["count"], v["value"])),
        }
        if type_name == "number":
            entry.update(
                {
                    "min": min(numbers),
                    "max": max(numbers),
                    "mean": statistics.fmean(numbers),
                    "median": statistics.median(numbers),
                    "standardDeviation": statistics.stdev(numbers) if len(numbers) > 1 else None,
                }
            )
        columns.append(entry)
    return {
        "rowsCount": len(records),
        "columnsCount": len(header),
        "emptyRowsSkipped": len(data) - len(records),
        "columns": columns,
        "records": records,
    }


def assert_same(actual: Any, expected: Any, where: str = "") -> None:
    """Equal, except floats that are sums of many terms (mean, deviation): within 1e-12."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), where
    else:
        assert actual == expected, where


RULES = [
    {
        "Name": "no duplicate rows",
        "CheckExpression": "AGG(DUPLICATE_ROWS_COUNT) == :n",
        "SubstitutionMap": {":n": "0"},
    },
    {
        "Name": "no duplicate ids",
        "CheckExpression": "AGG(:c, DUPLICATE_VALUES_COUNT) <= :n",
        "SubstitutionMap": {":c": "`id`", ":n": "0"},
    },
    {
        "Name": "amount not negative",
        "CheckExpression": ":c >= :v",
        "SubstitutionMap": {":c": "`amount`", ":v": "0"},
    },
]


@pytest.mark.parametrize("row_group_rows", [None, 3])
@pytest.mark.parametrize("seed", range(6))
def test_profile_and_rules_match_a_plain_csv_computation(
    tmp_path: Path, seed: int, row_group_rows: int | None
) -> None:
    rng = random.Random(seed)
    path = write_csv(tmp_path / "data.csv", random_rows(rng, rng.randrange(1, 160)))
    expected = expected_profile(path)
    records = expected.pop("records")
    report, profile = evaluate(
        path, rules_from_document(RULES, "test"), row_group_rows=row_group_rows
    )
    assert profile is not None, report
    assert_same(profile, expected)

    results = {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}
    ids = [row[0].strip() for row in records]
    repeated = Counter(v for v in ids if v)
    duplicate_rows = [i for i, v in enumerate(ids, start=1) if v and repeated[v] > 1]
    duplicates = results["no duplicate ids"]
    assert duplicates["observedValue"] == sum(repeated.values()) - len(repeated)
    assert duplicates["status"] == ("FAILED" if duplicate_rows else "SUCCEEDED")
    if duplicate_rows:
        assert [s["row_number"] for s in duplicates["failingSamples"]] == (
            duplicate_rows[:MAX_SAMPLES]
        )
        assert all(set(s) == {"row_number"} for s in duplicates["failingSamples"])

    cells = [tuple(cell or None for cell in row) for row in records]
    copies = Counter(cells)
    copied = [i for i, row in enumerate(cells, start=1) if copies[row] > 1]
    duplicate_rows = results["no duplicate rows"]
    assert duplicate_rows["observedValue"] == len(cells) - len(copies)
    assert [s["row_number"] for s in duplicate_rows["failingSamples"]] == copied[:MAX_SAMPLES]

    failing = [
        i
        for i, row in enumerate(records, start=1)
        if (number := _number(row[1].strip())) is None or number < 0
    ]
    amount = results["amount not negative"]
    assert amount["failedCount"] == len(failing)
    assert [s["row_number"] for s in amount["failingSamples"]] == failing[:MAX_SAMPLES]


# -- the working copy's row groups change nothing --------------------------------------------

EVERY_KIND_OF_RULE = [
    {"Name": "rows", "CheckExpression": "AGG(ROWS_COUNT) >= :n", "SubstitutionMap": {":n": "1"}},
    {
        "Name": "duplicate rows",
        "CheckExpression": "AGG(DUPLICATE_ROWS_COUNT) == :n",
        "SubstitutionMap": {":n": "0"},
    },
    {
        "Name": "per column",
        "CheckExpression": "AGG(MISSING_VALUES_PERCENTAGE) < :p and "
        "AGG(DISTINCT_VALUES_COUNT) >= :d and AGG(UNIQUE_VALUES_PERCENTAGE) <= :u and "
        "AGG(VALID_VALUES_COUNT) > :v",
        "SubstitutionMap": {":p": "5", ":d": "3", ":u": "50", ":v": "10"},
        "ColumnSelectors": [{"Regex": ".*"}],
    },
    {
        "Name": "amount statistics",
        "CheckExpression": "AGG(:c, MEDIAN) < :m and AGG(:c, QUANTILE, :q) < :m and "
        "AGG(:c, SKEWNESS) < :s and AGG(:c, KURTOSIS) < :s and AGG(:c, SUM) < :m and "
        "AGG(:c, VARIANCE) < :m and AGG(:c, MODE) != :x and AGG(:c, ENTROPY) < :s",
        "SubstitutionMap": {":c": "`amount`", ":m": "1", ":q": "0.9", ":s": "0", ":x": "2"},
    },
    {
        "Name": "amount minimum",
        "CheckExpression": "AGG(:c, MIN) > :v",
        "SubstitutionMap": {":c": "`amount`", ":v": "0"},
    },
    {
        "Name": "amount maximum",
        "CheckExpression": "AGG(:c, MAX) < :v",
        "SubstitutionMap": {":c": "`amount`", ":v": "5"},
    },
    {
        "Name": "outliers",
        "CheckExpression": "AGG(:c, Z_SCORE_OUTLIERS_COUNT, :z) == :n",
        "SubstitutionMap": {":c": "`mixed`", ":z": "1", ":n": "0"},
    },
    {
        "Name": "mixed is valid",
        "CheckExpression": "AGG(:c, VALID_VALUES_PERCENTAGE) == :p",
        "SubstitutionMap": {":c": "`mixed`", ":p": "100"},
    },
    {
        "Name": "missing notes",
        "CheckExpression": "AGG(:c, MISSING_VALUES_COUNT) == :n",
        "SubstitutionMap": {":c": "`note`", ":n": "0"},
    },
    {
        "Name": "kinds",
        "CheckExpression": ":c IN :k or :c STARTS_WITH :b",
        "SubstitutionMap": {":c": "`kind`", ":k": '["alpha", "Gamma"]', ":b": "b"},
        "Threshold": {"Value": 90, "Unit": "PERCENTAGE"},
    },
    {
        "Name": "pairs",
        "CheckExpression": "(:a, :b) IN :pairs and LENGTH(:a) < :n",
        "SubstitutionMap": {
            ":a": "`kind`",
            ":b": "`note`",
            ":pairs": '[["alpha", "n1"], ["beta", "n2"]]',
            ":n": "5",
        },
    },
]


def _rounded(value: Any) -> Any:
    """Floats to 12 significant digits (entropy adds up in an order that may vary)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


@pytest.mark.parametrize("seed", range(4))
def test_tiny_row_groups_give_the_same_report_as_one(tmp_path: Path, seed: int) -> None:
    rng = random.Random(100 + seed)
    rows = random_rows(rng, 150)
    full = [row for row in rows if any(row)]
    rows += [full[0], full[1], full[0]]  # three more copies of rows
    path = write_csv(tmp_path / "data.csv", rows)
    rules = rules_from_document(EVERY_KIND_OF_RULE, "test")
    one_group = evaluate(path, rules, row_group_rows=1_000_000)
    for size in (1, 2, 7):
        assert _rounded(evaluate(path, rules, row_group_rows=size)) == _rounded(one_group)
    report, _ = one_group
    results = {r["name"]: r for r in report["rulesetResults"][0]["ruleResults"]}
    assert results["duplicate rows"]["status"] == "FAILED"
    assert results["duplicate rows"]["observedValue"] >= 3
    assert results["amount minimum"]["failingSamples"]  # rows holding the minimum


# -- pieces ------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 12), max_size=60))
def test_hash_counts_match_a_count_of_each_value(values: list[int]) -> None:
    hashes = pl.Series(values, dtype=pl.UInt64).sort()
    distinct, unique, top = hash_counts(hashes)
    counts = Counter(values)
    assert distinct == len(counts)
    assert unique == sum(1 for n in counts.values() if n == 1)
    # Most common first, ties by the smaller hash.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    assert top == ranked[:TOP_VALUES]


def test_duplicates_are_exact_even_when_hashes_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hash under which every value and every row collides.
    monkeypatch.setattr(compiler, "value_hash", lambda values: values.is_null().cast(pl.UInt64))
    rows = [[f"x{i}", "1", "", "", ""] for i in range(5)] + [["x1", "1", "", "", ""]] * 2
    path = write_csv(tmp_path / "data.csv", rows)
    report, _ = evaluate(path, rules_from_document(RULES[:2], "test"))
    rows_result, values_result = report["rulesetResults"][0]["ruleResults"]
    # Duplicate rows are counted on the cells; the rows shown are the real copies only.
    assert rows_result["observedValue"] == 2
    assert [s["row_number"] for s in rows_result["failingSamples"]] == [2, 6, 7]
    # Duplicate values are counted by hash (documented): here all values share one.
    assert values_result["observedValue"] == 6
    assert [s["row_number"] for s in values_result["failingSamples"]] == [2, 6, 7]


@settings(max_examples=300, deadline=None)
@given(
    line=st.text(alphabet='a,"', max_size=14),
    width=st.integers(1, 5),
)
def test_one_pattern_checks_quotes_and_counts_fields(line: str, width: int) -> None:
    fits = pl.select(pl.lit(line).str.contains(record_pattern(width))).item()
    fields = re.sub(_QUOTED, "", line).count(",") + 1 if _RECORD.fullmatch(line) else None
    assert fits == (fields == width)


def test_the_working_copy_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    path = write_csv(tmp_path / "data.csv", random_rows(random.Random(1), 30))
    _, profile = evaluate(path, rules_from_document(RULES, "test"))
    assert profile is not None and profile["rowsCount"] > 0
    assert list(folder.iterdir()) == []


def _big_file(tmp_path: Path, tail: bytes, *, head: bytes = b"") -> tuple[Path, int]:
    """An ASCII CSV file of more than 2 MiB (several read blocks), then ``tail``."""
    line = b"a,b\n" + b"".join(b"x%07d,y\n" % i for i in range(250_000)) + head
    path = tmp_path / "big.csv"
    path.write_bytes(line + tail)
    return path, len(line)


def test_a_bad_byte_far_into_the_file_is_named_with_its_line(tmp_path: Path) -> None:
    path, at = _big_file(tmp_path, b"caf\xe9,1\n")
    lines_before = 1 + 250_000
    report, _ = evaluate(path, [])
    reason = report["rulesetResults"][0]["ruleResults"][0]["reason"]
    assert f"byte {at + 3} (line {lines_before + 1}) is not valid UTF-8 (0xe9)" in reason

    path, at = _big_file(tmp_path, b"x\x00y,1\n")
    report, _ = evaluate(path, [])
    reason = report["rulesetResults"][0]["ruleResults"][0]["reason"]
    assert f"first at byte {at + 1}, line {lines_before + 1}" in reason


def test_a_character_cut_by_a_read_block_is_still_valid(tmp_path: Path) -> None:
    block = 1 << 20  # the UTF-8 check reads 1 MiB blocks
    path = tmp_path / "cut.csv"
    for cut in (1, 2, 3):  # the block ends after the 1st, 2nd or 3rd byte of the character
        filler = b"z" * (block - len(b"a,b\n") - cut - 1)
        data = b"a,b\n" + filler + b",\xf0\x9f\x8c\x8d\n" + b"k,v\n" * 10
        assert data[block - cut : block + 4 - cut] == b"\xf0\x9f\x8c\x8d"
        path.write_bytes(data)
        report, profile = evaluate(path, [])
        assert report["passed"] is True, report
        assert profile is not None and profile["rowsCount"] == 11


def test_a_file_wider_than_one_pattern_is_still_checked_line_by_line(tmp_path: Path) -> None:
    width = 1001
    header = ",".join(f"c{i}" for i in range(width))
    good = ",".join(["1"] * width)
    path = tmp_path / "wide.csv"
    path.write_text(f"{header}\n{good}\n{good},extra\n")
    report, _ = evaluate(path, [], max_columns=2000)
    result = report["rulesetResults"][0]["ruleResults"][0]
    assert result["name"] == "File is valid CSV"
    assert f"line 3 has {width + 1} fields but the header has {width}" in result["reason"]
    path.write_text(f"{header}\n{good}\n{good}\n")
    report, _ = evaluate(path, [], max_columns=2000)
    assert report["passed"] is True


def test_a_character_cut_short_before_a_plain_ascii_block_is_refused(tmp_path: Path) -> None:
    block = 1 << 20
    filler = b"z" * (block - len(b"a,b\n") - 2)
    data = b"a,b\n" + filler + b",\xc3" + b"\nk,v\n" * 10  # a lead byte, then ASCII only
    assert data[block - 1 : block] == b"\xc3" and data[block:].isascii()
    path = tmp_path / "cut.csv"
    path.write_bytes(data)
    report, _ = evaluate(path, [], max_columns=2000)
    result = report["rulesetResults"][0]["ruleResults"][0]
    assert result["name"] == "File is UTF-8"
    assert "is not valid UTF-8" in result["reason"]


def test_columns_named_like_the_gates_own_work_columns(tmp_path: Path) -> None:
    names = ["__carbonlake_empty", "__carbonlake_index", "__value", "__number", "x"]
    path = tmp_path / "names.csv"
    path.write_text(",".join(names) + "\na,1,b,2,c\n,,,,\na,3,d,4,e\n")
    report, profile = evaluate(path, rules_from_document(RULES[2:], "test"))
    assert profile is not None and profile["rowsCount"] == 2
    assert profile["emptyRowsSkipped"] == 1
    columns = {c["name"]: c for c in profile["columns"]}
    assert columns["__carbonlake_empty"]["mostCommonValues"] == [{"value": "a", "count": 2}]
    assert columns["__carbonlake_index"]["median"] == 2.0
    assert report["rulesetResults"][0]["ruleResults"][0]["reason"].startswith("the file has no")


def test_no_room_for_the_working_copy_is_a_storage_error_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    path = write_csv(tmp_path / "data.csv", random_rows(random.Random(2), 10))
    with pytest.raises(StorageError, match=r"working copy of data\.csv.*TMPDIR"):
        evaluate(path, rules_from_document(RULES, "test"))
