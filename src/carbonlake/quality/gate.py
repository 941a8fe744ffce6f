"""Profile a whole CSV file and evaluate a ruleset over it, column-wise.

The file is scanned lazily with Polars (streaming engine), so neither the
profile nor the rules hold the whole file in Python objects. Problems with the
file itself (empty, not UTF-8, not CSV, missing columns) become failed checks
of the report with a reason a person can act on; they never raise.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from . import rules as r

REQUIRED_COLUMNS = (
    "activity_event_id",
    "asset_id",
    "origin_measurement_timestamp",
    "scope",
    "category",
    "activity",
    "raw_data",
    "units",
)
"""Columns every activity file must have (``geo`` and ``source`` are optional)."""

RECORD_ID = "activity_event_id"
MAX_SAMPLES = 20
_ROW = "__carbonlake_row"


@dataclass
class FileCheck:
    """A problem with the file as a whole, reported like a failed rule."""

    name: str
    reason: str

    def as_result(self) -> dict[str, Any]:
        """The report entry of this check."""
        return {
            "name": self.name,
            "definition": self.name,
            "status": "FAILED",
            "severity": "error",
            "failedCount": None,
            "observedValue": None,
            "reason": self.reason,
            "failingSamples": [],
            "columnResults": [],
        }


def _check_encoding(path: Path) -> FileCheck | None:
    """Stream-decode the file as UTF-8; name the line of the first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        offset = 0
        while chunk := handle.read(1 << 20):
            if b"\x00" in chunk:
                nul = chunk.index(b"\x00")
                nul_line = line + chunk[:nul].count(b"\n")
                return FileCheck(
                    "File is text",
                    f"the file contains NUL bytes (first at byte {offset + nul}, line "
                    f"{nul_line}): it looks like a binary file, not CSV. "
                    "Export the data as CSV (UTF-8) and upload that.",
                )
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line += chunk[: exc.start].count(b"\n")
                return FileCheck(
                    "File is UTF-8",
                    f"byte {bad} (line {line}) is not valid UTF-8 (0x{chunk[exc.start]:02x}): "
                    "the file is in another encoding. Save it as CSV UTF-8 and upload it again.",
                )
            line += chunk.count(b"\n")
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return FileCheck(
                "File is UTF-8",
                "the file ends in the middle of a UTF-8 character; it is truncated or in "
                "another encoding. Save it as CSV UTF-8 and upload it again.",
            )
    return None


def _read_header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    row = next(csv.reader(io.StringIO(first)), [])
    return [name.strip() for name in row]


def _locate_csv_problem(path: Path, width: int) -> str:
    """Find the first row whose shape is wrong (error path only: plain csv module)."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            for row in reader:
                if reader.line_num > 1 and row and len(row) != width:
                    return (
                        f"line {reader.line_num} has {len(row)} fields but the header has "
                        f"{width}; check for an unquoted comma or a missing separator there"
                    )
        except csv.Error as exc:
            return f"line {reader.line_num}: {exc}; check the quotes on that line"
    return "the CSV parser refused the file"


def _file_checks(path: Path, columns: list[str]) -> list[FileCheck]:
    problems = []
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        problems.append(
            FileCheck(
                "Header names are unique",
                f"the header repeats the column name(s) {', '.join(duplicates)}; "
                "rename or remove the repeated columns",
            )
        )
    if any(c == "" for c in columns):
        problems.append(
            FileCheck("Header names are not empty", "the header has an empty column name")
        )
    absent = [c for c in REQUIRED_COLUMNS if c not in columns]
    if absent:
        problems.append(
            FileCheck(
                "Required columns present",
                f"missing required column(s): {', '.join(absent)}; the header has "
                f"{', '.join(columns) or 'no columns'}. Required: {', '.join(REQUIRED_COLUMNS)}",
            )
        )
    return problems


def _profile(frame: pl.LazyFrame, columns: list[str]) -> dict[str, Any]:
    """Per column: count, missing, distinct and number statistics where numeric."""
    exprs: list[pl.Expr] = [pl.len().alias("__rows")]
    for i, col in enumerate(columns):
        values = r.numeric(col)
        exprs += [
            r.missing(col).sum().alias(f"{i}_missing"),
            pl.col(col).filter(~r.missing(col)).n_unique().alias(f"{i}_distinct"),
            values.count().alias(f"{i}_numeric"),
            values.min().alias(f"{i}_min"),
            values.max().alias(f"{i}_max"),
            values.mean().alias(f"{i}_mean"),
            values.median().alias(f"{i}_median"),
            values.std().alias(f"{i}_std"),
        ]
    row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
    rows = int(row["__rows"])
    profile_columns = []
    for i, col in enumerate(columns):
        present = rows - int(row[f"{i}_missing"])
        is_numeric = present > 0 and int(row[f"{i}_numeric"]) == present
        entry: dict[str, Any] = {
            "name": col,
            "type": "number" if is_numeric else "string",
            "count": rows,
            "missing": int(row[f"{i}_missing"]),
            "distinct": int(row[f"{i}_distinct"]),
        }
        if is_numeric:
            for stat in ("min", "max", "mean", "median", "std"):
                entry[stat] = row[f"{i}_{stat}"]
        profile_columns.append(entry)
    return {"rowsCount": rows, "columnsCount": len(columns), "columns": profile_columns}


def _samples(frame: pl.LazyFrame, passes: pl.Expr, columns: list[str]) -> list[dict[str, Any]]:
    wanted = [pl.col(_ROW).alias("row_number")]
    if RECORD_ID in columns:
        wanted.append(pl.col(RECORD_ID))
    failing = frame.filter(~passes).select(wanted).head(MAX_SAMPLES).collect()
    return failing.to_dicts()


def evaluate(path: Path, rules: list[r.Rule]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Profile ``path`` and evaluate ``rules`` over all of it.

    Returns ``(report, profile)``; the report's ``passed`` says whether the file
    may enter the pipeline. The profile is None when the file could not be read.
    """
    file_checks: list[FileCheck] = []
    profile: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    columns: list[str] = []

    if path.stat().st_size == 0:
        file_checks.append(
            FileCheck("File is not empty", "the file is empty (0 bytes); upload the data file")
        )
    else:
        problem = _check_encoding(path)
        if problem:
            file_checks.append(problem)
        else:
            columns = _read_header(path)
            file_checks += _file_checks(path, columns)

    frame: pl.LazyFrame | None = None
    if not file_checks:
        frame = pl.scan_csv(path, infer_schema=False, encoding="utf8").with_row_index(
            _ROW, offset=1
        )
        try:
            profile = _profile(frame, columns)
        except pl.exceptions.NoDataError:
            file_checks.append(FileCheck("File has rows", "the file holds no CSV header"))
        except pl.exceptions.PolarsError:
            file_checks.append(
                FileCheck("File is valid CSV", _locate_csv_problem(path, len(columns)))
            )
        if profile is not None and profile["rowsCount"] == 0:
            file_checks.append(
                FileCheck(
                    "File has rows",
                    "the file has a header but no data rows; nothing would be calculated",
                )
            )

    if frame is not None and profile is not None and not file_checks:
        results = _evaluate_rules(frame, rules, columns)

    rule_results = [c.as_result() for c in file_checks] + results
    failed = [x for x in rule_results if x["status"] == "FAILED" and x["severity"] == "error"]
    warned = [x for x in rule_results if x["status"] == "FAILED" and x["severity"] == "warn"]
    report = {
        "passed": not failed,
        "status": "SUCCEEDED" if not failed else "FAILED",
        "rowsCount": profile["rowsCount"] if profile else None,
        "columnsCount": len(columns),
        "rulesetResults": [{"name": "carbonlake", "ruleResults": rule_results}],
        "summary": {
            "rules": len(rule_results),
            "failed": len(failed),
            "warnings": len(warned),
            "failedRules": [x["name"] for x in failed],
        },
    }
    return report, profile


def _evaluate_rules(
    frame: pl.LazyFrame, rules: list[r.Rule], columns: list[str]
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    pending_aggs: list[tuple[r.Rule, r.Check, list[r.Agg]]] = []
    row_checks: list[tuple[r.Rule, r.Check]] = []
    for rule in rules:
        if rule.disabled:
            continue
        check = r.parse_check(rule)
        absent = sorted(r.columns_of(check) - set(columns))
        if absent:
            results.append(
                {
                    "name": rule.name,
                    "definition": rule.definition,
                    "status": "FAILED",
                    "severity": rule.severity,
                    "failedCount": None,
                    "observedValue": None,
                    "reason": f"the file has no column {', '.join(absent)}",
                    "failingSamples": [],
                    "columnResults": [{"name": c, "status": "FAILED"} for c in absent],
                }
            )
        elif r.is_aggregate(check):
            pending_aggs.append((rule, check, r.aggregates_of(check)))
        else:
            row_checks.append((rule, check))

    # One pass over the file for every aggregate and every per-row failure count.
    exprs: list[pl.Expr] = []
    agg_names: dict[r.Agg, str] = {}
    for _, _, aggs in pending_aggs:
        for agg in aggs:
            if agg not in agg_names:
                agg_names[agg] = f"agg{len(agg_names)}"
                exprs.append(r.agg_expr(agg, len(columns)).alias(agg_names[agg]))
    for index, (_, check) in enumerate(row_checks):
        exprs.append((~r.row_expr(check)).sum().alias(f"row{index}"))
    observed = frame.select(exprs).collect(engine="streaming").row(0, named=True) if exprs else {}

    for rule, check, aggs in pending_aggs:
        values = {agg: observed[agg_names[agg]] for agg in aggs}
        passed = r.evaluate_aggregate(check, values)
        samples: list[dict[str, Any]] = []
        if not passed:
            samples = _aggregate_samples(frame, aggs, columns)
        results.append(
            {
                "name": rule.name,
                "definition": rule.definition,
                "status": "SUCCEEDED" if passed else "FAILED",
                "severity": rule.severity,
                "failedCount": None,
                "observedValue": values[aggs[0]] if len(aggs) == 1 else [values[a] for a in aggs],
                "reason": None if passed else "the observed value does not satisfy the check",
                "failingSamples": samples,
                "columnResults": [
                    {"name": c, "status": "SUCCEEDED" if passed else "FAILED"}
                    for c in sorted(r.columns_of(check))
                ],
            }
        )
    for index, (rule, check) in enumerate(row_checks):
        failed_count = int(observed[f"row{index}"])
        passed = failed_count == 0
        results.append(
            {
                "name": rule.name,
                "definition": rule.definition,
                "status": "SUCCEEDED" if passed else "FAILED",
                "severity": rule.severity,
                "failedCount": failed_count,
                "observedValue": None,
                "reason": None if passed else f"{failed_count} row(s) do not satisfy the check",
                "failingSamples": [] if passed else _samples(frame, r.row_expr(check), columns),
                "columnResults": [
                    {"name": c, "status": "SUCCEEDED" if passed else "FAILED"}
                    for c in sorted(r.columns_of(check))
                ],
            }
        )
    # Report in the ruleset's order.
    order = {rule.name: i for i, rule in enumerate(rules)}
    results.sort(key=lambda x: order.get(x["name"], len(order)))
    return results


def _aggregate_samples(
    frame: pl.LazyFrame, aggs: list[r.Agg], columns: list[str]
) -> list[dict[str, Any]]:
    """Rows behind a failed missing- or duplicate-value aggregate, to act on."""
    for agg in aggs:
        if agg.column is None:
            continue
        if agg.stat.startswith("MISSING_VALUES"):
            return _samples(frame, ~r.missing(agg.column), columns)
        if agg.stat.startswith("DUPLICATE_VALUES"):
            col = agg.column
            dup = pl.col(col).is_duplicated() & ~r.missing(col)
            return _samples(frame, ~dup, columns)
    return []
