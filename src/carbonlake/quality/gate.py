"""Profile a whole CSV file and evaluate a ruleset over it, column-wise.

The file is scanned lazily with Polars (streaming engine): one pass for the
profile, one for every aggregate and every per-row failure count, and one
more, only when rules failed, for their failing samples. Nothing is evaluated
row by row in Python. Problems with the file itself (empty, binary, not UTF-8,
malformed CSV, no rows) become failed checks of the report with a reason a
person can act on; they never raise.

The report has DataBrew's validation-report shape (``rulesetResults[]
.ruleResults[]`` with ``name``, ``definition``, ``status``, ``failedCount``,
``columnResults``) and adds what DataBrew does not give: each aggregate's
observed value, up to :data:`MAX_SAMPLES` failing rows per rule, the rule's
severity, a reason sentence and a summary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .. import csvfile
from .._exceptions import CarbonlakeError
from . import compiler as c
from . import rules as r
from .structure import FileCheck, check_bytes, check_header, check_records, check_shape

RECORD_ID = "activity_event_id"
MAX_SAMPLES = 20
TOP_VALUES = 5
_ROW = csvfile.ROW_NUMBER

ListResolver = Callable[[str], list[Any]]
"""Returns the run-time list a rule names (e.g. ``@factor_set.category_activity``);
raises a CarbonlakeError when it cannot."""


# -- profile ----------------------------------------------------------------------------


def _value_stats(column: str) -> dict[str, pl.Expr]:
    """Distinct and unique counts and the most common values' hashes, from one count per
    distinct value hash (see :func:`compiler.hashed`: memory stays 16 bytes per value)."""
    # One list of (hash, count), worked on inside list.eval: value_counts' order differs
    # between evaluations, so two separate uses of it would not line up.
    hashes = c.hashed(column).alias("hash")
    counts = hashes.value_counts(name="count").implode()
    item = pl.element()
    count = item.struct.field("count")
    # Most common first; ties by hash, so the profile is the same on every run.
    top = item.top_k_by([count, item.struct.field("hash")], k=TOP_VALUES, reverse=[False, True])
    return {
        "distinct": counts.list.len(),
        "unique": counts.list.eval((count == 1).sum()).list.first(),
        "top": counts.list.eval(top),
    }


def _top_values(
    frame: pl.LazyFrame, columns: list[str], tops: dict[int, list[dict[str, Any]]]
) -> dict[int, dict[int, str]]:
    """The values behind the most common hashes of each column (a second, narrow pass)."""
    exprs = []
    for i, col in tops.items():
        wanted = [item["hash"] for item in col]
        if wanted:
            value = c.text(columns[i])
            exprs.append(
                value.filter(value.hash(seed=c.HASH_SEED).is_in(wanted))
                .unique()
                .implode()
                .alias(str(i))
            )
    if not exprs:
        return {}
    row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
    found: dict[int, dict[int, str]] = {}
    for key, values in row.items():
        series = pl.Series(values, dtype=pl.String)
        found[int(key)] = dict(
            zip(series.hash(seed=c.HASH_SEED).to_list(), series.to_list(), strict=True)
        )
    return found


def profile_frame(frame: pl.LazyFrame, columns: list[str]) -> dict[str, Any]:
    """Per column: inferred type, counts, number statistics and most common values."""
    exprs: list[pl.Expr] = [pl.len().alias("__rows")]
    for i, col in enumerate(columns):
        values = c.numeric(col)
        exprs += [expr.alias(f"{i}_{name}") for name, expr in c.type_counts(col).items()]
        exprs += [expr.alias(f"{i}_{name}") for name, expr in _value_stats(col).items()]
        exprs += [
            values.min().alias(f"{i}_min"),
            values.max().alias(f"{i}_max"),
            values.mean().alias(f"{i}_mean"),
            values.median().alias(f"{i}_median"),
            values.std().alias(f"{i}_std"),
        ]
    row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
    rows = int(row["__rows"])
    values_of = _top_values(
        frame, columns, {i: list(row[f"{i}_top"] or []) for i in range(len(columns))}
    )
    profile_columns = []
    for i, col in enumerate(columns):
        counts = {
            k: int(row[f"{i}_{k}"] or 0) for k in ("present", "number", "timestamp", "boolean")
        }
        type_name = c.inferred_type(counts)
        valid = counts[type_name] if type_name in counts else counts["present"]
        entry: dict[str, Any] = {
            "name": col,
            "type": type_name,
            "count": rows,
            "missing": rows - counts["present"],
            "distinct": int(row[f"{i}_distinct"]),
            "unique": int(row[f"{i}_unique"]),
            "valid": valid,
        }
        if type_name == "number":
            entry.update(
                {
                    "min": c.clean(row[f"{i}_min"]),
                    "max": c.clean(row[f"{i}_max"]),
                    "mean": c.clean(row[f"{i}_mean"]),
                    "median": c.clean(row[f"{i}_median"]),
                    "standardDeviation": c.clean(row[f"{i}_std"]),
                }
            )
        common = [
            {"value": values_of.get(i, {}).get(item["hash"]), "count": int(item["count"])}
            for item in row[f"{i}_top"] or []
        ]
        # Most common first, ties in value order (which tied values make the cut at the
        # TOP_VALUES boundary is decided by hash, the same on every run).
        entry["mostCommonValues"] = sorted(common, key=lambda v: (-v["count"], str(v["value"])))
        profile_columns.append(entry)
    return {"rowsCount": rows, "columnsCount": len(columns), "columns": profile_columns}


# -- rule evaluation -------------------------------------------------------------------------


@dataclass
class _Unit:
    """A rule's check applied to one column (ColumnSelectors) or as written (column None)."""

    column: str | None
    check: r.Check


@dataclass
class _Pending:
    """A rule being evaluated: its units and what the passes found."""

    rule: r.Rule
    units: list[_Unit]
    aggregate: bool
    lists: c.Lists = field(default_factory=dict)
    passed: list[bool] = field(default_factory=list)
    observed: list[Any] = field(default_factory=list)
    failed_counts: list[int] = field(default_factory=list)
    failed_rows: int | None = None
    error: str | None = None


def _select_columns(rule: r.Rule, columns: list[str]) -> tuple[list[str], list[str]]:
    """(selected columns in file order, names that Name selectors ask for but the file lacks)."""
    chosen: set[str] = set()
    absent: list[str] = []
    for selector in rule.column_selectors:
        if selector.name is not None:
            if selector.name in columns:
                chosen.add(selector.name)
            else:
                absent.append(selector.name)
        else:
            pattern = re.compile(selector.regex or "")
            chosen.update(col for col in columns if pattern.fullmatch(col))
    return [col for col in columns if col in chosen], absent


def _result(
    rule: r.Rule,
    status: str,
    *,
    reason: str | None = None,
    failed_count: int | None = None,
    observed: Any = None,
    samples: list[dict[str, Any]] | None = None,
    column_results: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "name": rule.name,
        "definition": rule.to_document(),
        "expression": rule.definition,
        "status": status,
        "severity": rule.severity,
        "failedCount": failed_count,
        "observedValue": observed,
        "reason": reason,
        "failingSamples": samples or [],
        "columnResults": column_results or [],
    }


def _prepare(
    rule: r.Rule, columns: list[str], resolve: ListResolver | None
) -> _Pending | dict[str, Any]:
    """The rule's units, or its final result when it cannot run on this file."""
    check = r.parse_check(rule)
    absent: list[str] = []
    if rule.column_selectors:
        selected, absent = _select_columns(rule, columns)
        units = [_Unit(col, r.bind(check, col)) for col in selected]
        if not units and not absent:
            return _result(
                rule,
                "SUCCEEDED",
                reason="its ColumnSelectors match no column of the file; nothing to check",
            )
    else:
        units = [_Unit(None, check)]
    absent += sorted({col for unit in units for col in r.columns_of(unit.check)} - set(columns))
    if absent:
        names = ", ".join(dict.fromkeys(absent))
        return _result(
            rule,
            "FAILED",
            reason=f"the file has no column {names}; its columns are {', '.join(columns)}",
            column_results=[
                {"name": col, "status": "FAILED", "reason": "no such column in the file"}
                for col in dict.fromkeys(absent)
            ],
        )
    lists: c.Lists = {}
    for name in r.references_of(check):
        if resolve is None:
            return _result(rule, "FAILED", reason=f"the list {name} is not available here")
        try:
            lists[name] = resolve(name)
        except CarbonlakeError as exc:
            return _result(rule, "FAILED", reason=f"the list {name} is not available: {exc}")
    return _Pending(rule, units, r.is_aggregate(check), lists)


def _pass_exprs(pending: _Pending, columns: list[str], key: str) -> list[pl.Expr]:
    """The expressions one rule adds to the evaluation pass."""
    if pending.aggregate:
        return [
            c.agg_expr(agg, columns).alias(f"{key}_{u}_{a}")
            for u, unit in enumerate(pending.units)
            for a, agg in enumerate(r.aggregates_of(unit.check))
        ]
    passes = [c.row_expr(unit.check, pending.lists) for unit in pending.units]
    exprs = [(~p).sum().alias(f"{key}_{u}") for u, p in enumerate(passes)]
    exprs.append((~pl.all_horizontal(passes)).sum().alias(f"{key}_any"))
    return exprs


def _judge(pending: _Pending, row: dict[str, Any], key: str, rows: int) -> None:
    """Verdicts of one rule from the evaluation pass."""
    rule = pending.rule
    for u, unit in enumerate(pending.units):
        if pending.aggregate:
            aggs = r.aggregates_of(unit.check)
            values = {agg: c.clean(row[f"{key}_{u}_{a}"]) for a, agg in enumerate(aggs)}
            pending.passed.append(c.evaluate_aggregate(unit.check, values, pending.lists))
            observed = [values[agg] for agg in aggs]
            pending.observed.append(observed[0] if len(observed) == 1 else observed)
        else:
            failed = int(row[f"{key}_{u}"])
            pending.failed_counts.append(failed)
            if rule.threshold is None:
                pending.passed.append(failed == 0)
                pending.observed.append(None)
            else:
                pending.passed.append(rule.threshold.satisfied(rows - failed, rows))
                pending.observed.append(rule.threshold.measure(rows - failed, rows))
    if not pending.aggregate:
        pending.failed_rows = int(row[f"{key}_any"])


def _run_pass(frame: pl.LazyFrame, jobs: list[tuple[str, _Pending]], columns: list[str]) -> None:
    """Evaluate every rule in one pass; if that fails, rule by rule to isolate the culprit."""
    rows_expr = pl.len().alias("__rows")
    try:
        exprs = [rows_expr] + [e for key, p in jobs for e in _pass_exprs(p, columns, key)]
        row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
        for key, pending in jobs:
            _judge(pending, row, key, int(row["__rows"]))
        return
    except pl.exceptions.PolarsError:
        pass
    for key, pending in jobs:
        try:
            exprs = [rows_expr, *_pass_exprs(pending, columns, key)]
            row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
            _judge(pending, row, key, int(row["__rows"]))
        except pl.exceptions.PolarsError as exc:
            pending.error = f"the rule could not be evaluated: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _sample_filter(pending: _Pending, columns: list[str], types: dict[str, str]) -> pl.Expr | None:
    """True on the rows to show for a failed rule (None: the rule has no such rows)."""
    failing = [unit for unit, ok in zip(pending.units, pending.passed, strict=True) if not ok]
    if not pending.aggregate:
        return pl.any_horizontal([~c.row_expr(unit.check, pending.lists) for unit in failing])
    for unit in failing:
        for agg in r.aggregates_of(unit.check):
            shown = c.agg_rows(agg, columns, types)
            if shown is not None:
                return shown
    return None


def _collect_samples(
    frame: pl.LazyFrame,
    failed: list[tuple[str, _Pending]],
    columns: list[str],
    types: dict[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """Up to MAX_SAMPLES (row_number, activity_event_id) per failed rule, in one pass."""
    exprs: list[pl.Expr] = []
    keys: list[str] = []
    for key, pending in failed:
        shown = _sample_filter(pending, columns, types)
        if shown is None:
            continue
        keys.append(key)
        # One struct per row, so each row number stays with its own id.
        fields = [pl.col(_ROW).alias("row_number")]
        if RECORD_ID in columns:
            fields.append(pl.col(RECORD_ID))
        first = pl.struct(fields).filter(shown).head(MAX_SAMPLES).implode()
        exprs.append(first.alias(key))
    if not exprs:
        return {}
    try:
        row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
    except pl.exceptions.PolarsError:
        return {}
    return {
        key: [{**item, "row_number": int(item["row_number"])} for item in row[key] or []]
        for key in keys
    }


def _reason(pending: _Pending, rows: int) -> str | None:
    if pending.error:
        return pending.error
    rule = pending.rule
    parts = []
    for index, unit in enumerate(pending.units):
        ok, observed = pending.passed[index], pending.observed[index]
        if ok:
            continue
        where = f"column {unit.column}: " if unit.column is not None else ""
        if pending.aggregate:
            aggs = r.aggregates_of(unit.check)
            values = observed if len(aggs) > 1 else [observed]
            seen = ", ".join(
                f"{agg.describe().replace(r.IMPLICIT, unit.column or '')} = {_show(v)}"
                for agg, v in zip(aggs, values, strict=True)
            )
            parts.append(f"{where}observed {seen}, which does not satisfy {rule.definition}")
        else:
            failed = pending.failed_counts[index]
            text = f"{where}{failed} of {rows} rows do not satisfy {rule.definition}"
            if rule.threshold is not None:
                measured = rule.threshold.measure(rows - failed, rows)
                unit_text = "%" if rule.threshold.unit == "PERCENTAGE" else " rows"
                text += (
                    f"; {measured:g}{unit_text} pass, the threshold needs "
                    f"{rule.threshold.describe()}"
                )
            parts.append(text)
    return "; ".join(parts) if parts else None


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def _finish(pending: _Pending, rows: int, samples: list[dict[str, Any]]) -> dict[str, Any]:
    rule = pending.rule
    if pending.error:
        return _result(rule, "FAILED", reason=pending.error)
    passed = all(pending.passed)
    column_results = []
    if rule.column_selectors:
        for u, unit in enumerate(pending.units):
            entry: dict[str, Any] = {
                "name": unit.column,
                "status": "SUCCEEDED" if pending.passed[u] else "FAILED",
                "observedValue": pending.observed[u],
            }
            if not pending.aggregate:
                entry["failedCount"] = pending.failed_counts[u]
            column_results.append(entry)
        observed: Any = {unit.column: pending.observed[u] for u, unit in enumerate(pending.units)}
    else:
        check_columns = sorted(r.columns_of(pending.units[0].check))
        column_results = [
            {"name": col, "status": "SUCCEEDED" if passed else "FAILED"} for col in check_columns
        ]
        observed = pending.observed[0]
    return _result(
        rule,
        "SUCCEEDED" if passed else "FAILED",
        reason=None if passed else _reason(pending, rows),
        failed_count=pending.failed_rows,
        observed=observed,
        samples=[] if passed else samples,
        column_results=column_results,
    )


def evaluate_rules(
    frame: pl.LazyFrame,
    rules: Iterable[r.Rule],
    columns: list[str],
    types: dict[str, str],
    resolve: ListResolver | None = None,
) -> list[dict[str, Any]]:
    """Every enabled rule's result, in the ruleset's order (disabled rules are left out)."""
    ordered: list[dict[str, Any] | tuple[str, _Pending]] = []
    jobs: list[tuple[str, _Pending]] = []
    for index, rule in enumerate(rules):
        if rule.disabled:
            continue
        prepared = _prepare(rule, columns, resolve)
        if isinstance(prepared, dict):
            ordered.append(prepared)
        else:
            job = (f"r{index}", prepared)
            jobs.append(job)
            ordered.append(job)
    rows = 0
    if jobs:
        rows = int(frame.select(pl.len()).collect(engine="streaming").item())
        _run_pass(frame, jobs, columns)
    failed = [(k, p) for k, p in jobs if not p.error and not all(p.passed)]
    samples = _collect_samples(frame, failed, columns, types) if failed else {}
    return [
        item if isinstance(item, dict) else _finish(item[1], rows, samples.get(item[0], []))
        for item in ordered
    ]


# -- the whole gate ------------------------------------------------------------------------


def evaluate(
    path: Path,
    rules: list[r.Rule],
    *,
    resolve: ListResolver | None = None,
    ruleset_name: str = "carbonlake",
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Profile ``path`` and evaluate ``rules`` over all of it.

    Returns ``(report, profile)``; the report's ``passed`` says whether the file
    may enter the pipeline (no rule of severity error failed). The profile is
    None when the file could not be read.
    """
    file_checks: list[FileCheck] = []
    profile: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    columns: list[str] = []
    empty_rows = 0

    problem = check_bytes(path)
    if problem:
        file_checks.append(problem)
    else:
        columns = csvfile.read_header(path)
        file_checks += check_header(columns)
    if not file_checks:
        try:
            shape = check_shape(path, len(columns))
            if shape:
                file_checks.append(shape)
            else:
                problems, empty_rows = check_records(path, columns)
                file_checks += problems
        except pl.exceptions.PolarsError as exc:
            file_checks.append(_unreadable(exc))
    if not file_checks:
        frame = csvfile.scan(path, columns, row_number=True)
        try:
            profile = profile_frame(frame, columns)
            profile["emptyRowsSkipped"] = empty_rows
            types = {col["name"]: col["type"] for col in profile["columns"]}
            results = evaluate_rules(frame, rules, columns, types, resolve)
        except pl.exceptions.PolarsError as exc:
            profile = None
            file_checks.append(_unreadable(exc))
    return _report(file_checks, results, profile, columns, ruleset_name, empty_rows), profile


def _unreadable(exc: Exception) -> FileCheck:
    return FileCheck(
        "File is valid CSV",
        f"the CSV reader refused the file: {_first_line(exc)}; check it opens as CSV "
        "with a header line and one record per line",
    )


def _report(
    file_checks: list[FileCheck],
    results: list[dict[str, Any]],
    profile: dict[str, Any] | None,
    columns: list[str],
    ruleset_name: str,
    empty_rows: int,
) -> dict[str, Any]:
    rule_results = [check.as_result() for check in file_checks] + results
    failed = [x for x in rule_results if x["status"] == "FAILED" and x["severity"] == "error"]
    warned = [x for x in rule_results if x["status"] == "FAILED" and x["severity"] == "warn"]
    status = "SUCCEEDED" if not failed else "FAILED"
    rows = profile["rowsCount"] if profile else None
    return {
        "passed": not failed,
        "status": status,
        "sampleSize": rows,
        "rowsCount": rows,
        "columnsCount": len(columns),
        "emptyRowsSkipped": empty_rows,
        "rulesetResults": [{"name": ruleset_name, "status": status, "ruleResults": rule_results}],
        "summary": {
            "rules": len(rule_results),
            "succeeded": sum(1 for x in rule_results if x["status"] == "SUCCEEDED"),
            "failed": len(failed),
            "warnings": len(warned),
            "failedRules": [x["name"] for x in failed],
            "warnedRules": [x["name"] for x in warned],
        },
    }


def failed_results(report: dict[str, Any], severity: str = "error") -> list[dict[str, Any]]:
    """The failed rule results of a report with the given severity."""
    return [
        result
        for ruleset in report.get("rulesetResults", [])
        for result in ruleset.get("ruleResults", [])
        if result.get("status") == "FAILED" and result.get("severity", "error") == severity
    ]


def table_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """One row of text per rule result, for a table a person reads."""
    lines = []
    for ruleset in report.get("rulesetResults", []):
        for result in ruleset.get("ruleResults", []):
            samples = result.get("failingSamples") or []
            shown = ", ".join(
                f"row {s['row_number']}"
                + (f" ({s[RECORD_ID]})" if s.get(RECORD_ID) is not None else "")
                for s in samples[:5]
            )
            if len(samples) > 5:
                shown += f", ... ({len(samples)} shown in the report)"
            failed = result.get("failedCount")
            lines.append(
                {
                    "rule": str(result["name"]),
                    "severity": str(result.get("severity", "error")),
                    "status": str(result["status"]),
                    "observed": _observed_text(result.get("observedValue")),
                    "failed": "" if failed is None else str(failed),
                    "samples": shown,
                    "reason": str(result.get("reason") or ""),
                }
            )
    return lines


def _observed_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        shown = {k: _observed_text(v) for k, v in value.items() if v is not None}
        if len(shown) > 3:
            return f"{len(shown)} columns (see the report)"
        return ", ".join(f"{k}: {v}" for k, v in shown.items())
    if isinstance(value, list):
        return ", ".join(_observed_text(v) for v in value)
    return _show(value) if not isinstance(value, str) else value
