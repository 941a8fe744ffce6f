"""Profile a whole CSV file and evaluate a ruleset over it, column-wise.

The file is parsed once, by Polars' streaming engine, into a temporary Parquet
copy of its records (:mod:`.staging`); the same pass counts rows and empty
rows. The profile then reads that copy one column at a time
(:mod:`.profiling`), and answers every aggregate it already knows (missing,
distinct, unique, duplicate and valid counts, number statistics); one
streaming pass counts every per-row rule's failing rows; the remaining
aggregates are evaluated rule by rule; and, only for rules that failed, one
short query each reads the first failing rows. Nothing is evaluated row by row
in Python, and no pass holds the file: memory is one column's state at most.
Problems with the file itself (empty, binary, not UTF-8, malformed CSV, no
rows) become failed checks of the report with a reason a person can act on;
they never raise.

The report has DataBrew's validation-report shape (``rulesetResults[]
.ruleResults[]`` with ``name``, ``definition``, ``status``, ``failedCount``,
``columnResults``) and adds what DataBrew does not give: each aggregate's
observed value, up to :data:`MAX_SAMPLES` failing rows per rule, the rule's
severity, a reason sentence and a summary.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .. import csvfile
from .._exceptions import CarbonlakeError, InputDataError
from . import compiler as c
from . import rules as r
from . import staging
from .profiling import NUMBER_STATS, TOP_VALUES, ColumnStats
from .profiling import profile as profile_columns
from .structure import (
    FileCheck,
    check_bytes,
    check_header,
    check_shape,
    check_width,
    records_problem,
)

_log = logging.getLogger(__name__)

DEFAULT_MAX_COLUMNS = 1000
"""Files with more columns fail the gate at once (``[quality] max_columns``)."""

__all__ = [
    "MAX_SAMPLES",
    "RECORD_ID",
    "TOP_VALUES",
    "ListResolver",
    "evaluate",
    "evaluate_rules",
    "failed_results",
    "prepare_rules",
    "table_rows",
]

RECORD_ID = "activity_event_id"
MAX_SAMPLES = 20
_ROW = csvfile.ROW_NUMBER

ListResolver = Callable[[str], list[Any]]
"""Returns the run-time list a rule names (e.g. ``@factor_set.category_activity``);
raises a CarbonlakeError when it cannot."""


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
    known: dict[r.Agg, Any] = field(default_factory=dict)
    """Aggregates the profile already answered, by aggregate."""
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
    if rule.problem is not None:
        return _result(rule, "FAILED", reason=f"the rule cannot be evaluated: {rule.problem}")
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


_UNKNOWN = object()
_COPIES = "__carbonlake_copies"
_CELLS = "__carbonlake_cells"


@dataclass
class _RowCopies:
    """Rows identical in every cell to another row (``DUPLICATE_ROWS``).

    Found by a 64-bit hash of each row (8 bytes a row in memory), then counted
    exactly: only the rows whose hash repeats are grouped by their cells, so what
    is held beyond the hashes is one entry per distinct row that may repeat.
    """

    count: int
    """Rows identical to an earlier row."""
    repeated: pl.DataFrame
    """Each distinct row that occurs more than once (its cells, as one struct)."""


def _row_hash(columns: list[str]) -> pl.Expr:
    return c.value_hash(pl.struct(columns))


def _repeated_values(hashes: pl.Series) -> pl.Series:
    """The values that occur more than once in a sorted series."""
    n = hashes.len()
    if n < 2:
        return hashes.clear()
    same = hashes.slice(1) == hashes.slice(0, n - 1)
    return hashes.slice(1).filter(same).unique()


def _find_row_copies(frame: pl.LazyFrame, columns: list[str]) -> _RowCopies:
    hashes = frame.select(_row_hash(columns)).collect(engine="streaming").to_series().sort()
    repeated = _repeated_values(hashes)
    del hashes
    if repeated.len() == 0:
        return _RowCopies(
            0, pl.DataFrame(schema={_CELLS: pl.Struct(dict.fromkeys(columns, pl.String))})
        )
    groups = (
        frame.filter(_row_hash(columns).is_in(repeated.implode()))
        .group_by(pl.struct(columns).alias(_CELLS))
        .agg(pl.len().alias(_COPIES))
        .collect(engine="streaming")
    )
    count = int(groups.get_column(_COPIES).sum()) - groups.height
    return _RowCopies(count, groups.filter(pl.col(_COPIES) > 1).select(_CELLS))


def _duplicate_row_rows(
    frame: pl.LazyFrame, columns: list[str], copies: _RowCopies, fields: list[pl.Expr]
) -> pl.DataFrame:
    """The first rows identical in every cell to another row, checked on the cells."""
    hashes = copies.repeated.select(c.value_hash(pl.col(_CELLS))).to_series()
    shown = _row_hash(columns).is_in(hashes.implode())
    first = _first_rows(frame, shown, [*fields, pl.struct(columns).alias(_CELLS)])
    real = first.join(
        copies.repeated, on=_CELLS, how="semi", nulls_equal=True, maintain_order="left"
    )
    if real.height == first.height:
        return real.drop(_CELLS)
    return _first_rows(frame, pl.struct(columns).is_duplicated(), fields)  # a hash collision


def _known_aggregate(
    agg: r.Agg,
    stats: Mapping[str, ColumnStats],
    rows: int,
    columns: list[str],
    copies: _RowCopies | None = None,
) -> Any:
    """The aggregate's value from the profile (or the duplicate rows found), as
    :func:`compiler.agg_expr` computes it; ``_UNKNOWN`` when it is not known."""
    if agg.column is None:
        if agg.stat == "ROWS_COUNT":
            return rows
        if agg.stat == "COLUMNS_COUNT":
            return len(columns)
        if copies is not None and agg.stat == "DUPLICATE_ROWS_COUNT":
            return copies.count
        if copies is not None and agg.stat == "DUPLICATE_ROWS_PERCENTAGE":
            return copies.count * 100.0 / rows if rows > 0 else 0.0
        return _UNKNOWN
    column = stats.get(agg.column)
    if column is None:
        return _UNKNOWN
    counts = {
        "MISSING_VALUES": rows - column.present,
        "DUPLICATE_VALUES": column.present - column.distinct,
        "DISTINCT_VALUES": column.distinct,
        "UNIQUE_VALUES": column.unique,
        "VALID_VALUES": column.valid,
    }
    for prefix, count in counts.items():
        if agg.stat == f"{prefix}_COUNT":
            return count
        if agg.stat == f"{prefix}_PERCENTAGE":
            return count * 100.0 / rows if rows > 0 else 0.0
    if agg.stat in column.numbers:
        return column.numbers[agg.stat]
    if agg.stat == "QUANTILE":
        return column.quantiles.get(agg.param if agg.param is not None else 0.5, _UNKNOWN)
    return _UNKNOWN


def _wanted(jobs: list[tuple[str, _Pending]]) -> dict[str, set[Any]]:
    """What each column's aggregates ask of the profile beyond its own statistics:
    quantiles (floats) and number statistics (names)."""
    wanted: dict[str, set[Any]] = {}
    for _, pending in jobs:
        for unit in pending.units if pending.aggregate else []:
            for agg in r.aggregates_of(unit.check):
                if agg.column is None:
                    continue
                if agg.stat == "QUANTILE":
                    q = agg.param if agg.param is not None else 0.5
                    wanted.setdefault(agg.column, set()).add(float(q))
                elif agg.stat in NUMBER_STATS:
                    wanted.setdefault(agg.column, set()).add(agg.stat)
    return wanted


def _moments(stats: Mapping[str, ColumnStats]) -> dict[str, tuple[Any, Any]]:
    """(mean, standard deviation) of each column's numbers, for z-scores."""
    return {name: (s.numbers["MEAN"], s.numbers["STANDARD_DEVIATION"]) for name, s in stats.items()}


def _pass_exprs(
    pending: _Pending, columns: list[str], key: str, moments: Mapping[str, tuple[Any, Any]]
) -> list[pl.Expr]:
    """The expressions one rule adds to an evaluation pass (none when the profile answered
    all of its aggregates)."""
    if pending.aggregate:
        return [
            c.agg_expr(agg, columns, moments).alias(f"{key}_{u}_{a}")
            for u, unit in enumerate(pending.units)
            for a, agg in enumerate(r.aggregates_of(unit.check))
            if agg not in pending.known
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
            values = {
                agg: c.clean(pending.known[agg] if agg in pending.known else row[f"{key}_{u}_{a}"])
                for a, agg in enumerate(aggs)
            }
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


def _run_passes(
    frame: pl.LazyFrame,
    jobs: list[tuple[str, _Pending]],
    columns: list[str],
    rows: int,
    moments: Mapping[str, tuple[Any, Any]],
) -> None:
    """Evaluate what the profile did not answer: every per-row rule in one streaming
    pass, each aggregate rule that still needs the data in a query of its own (such an
    aggregate, a MODE or ENTROPY, may need a column's values in memory; alone, it does
    not take the other rules' columns with it)."""
    per_row = [job for job in jobs if not job[1].aggregate]
    groups = [per_row] if per_row else []
    for key, pending in jobs:
        if not pending.aggregate:
            continue
        if _pass_exprs(pending, columns, key, moments):
            groups.append([(key, pending)])
        else:
            _judge(pending, {}, key, rows)
    for group in groups:
        _run_pass(frame, group, columns, rows, moments)


def _run_pass(
    frame: pl.LazyFrame,
    jobs: list[tuple[str, _Pending]],
    columns: list[str],
    rows: int,
    moments: Mapping[str, tuple[Any, Any]],
) -> None:
    """Evaluate rules in one pass; if that fails, rule by rule to isolate the culprit."""
    try:
        exprs = [e for key, p in jobs for e in _pass_exprs(p, columns, key, moments)]
        row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
        for key, pending in jobs:
            _judge(pending, row, key, rows)
        return
    except pl.exceptions.PolarsError:
        pass
    for key, pending in jobs:
        try:
            exprs = _pass_exprs(pending, columns, key, moments)
            row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
            _judge(pending, row, key, rows)
        except pl.exceptions.PolarsError as exc:
            pending.error = f"the rule could not be evaluated: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _sample_rows(
    frame: pl.LazyFrame,
    pending: _Pending,
    columns: list[str],
    stats: Mapping[str, ColumnStats],
    fields: list[pl.Expr],
    copies: _RowCopies | None = None,
) -> pl.DataFrame | None:
    """The first MAX_SAMPLES rows to show for a failed rule (None: it has no such rows)."""
    failing = [unit for unit, ok in zip(pending.units, pending.passed, strict=True) if not ok]
    if not pending.aggregate:
        shown = pl.any_horizontal([~c.row_expr(unit.check, pending.lists) for unit in failing])
        return _first_rows(frame, shown, fields)
    types = {name: s.type_name for name, s in stats.items()}
    numbers = {name: s.numbers for name, s in stats.items()}
    for unit in failing:
        for agg in r.aggregates_of(unit.check):
            if agg.column is not None and agg.stat.startswith("DUPLICATE_VALUES"):
                return _duplicate_value_rows(frame, agg.column, fields)
            if copies is not None and agg.stat.startswith("DUPLICATE_ROWS"):
                return _duplicate_row_rows(frame, columns, copies, fields)
            rows_of = c.agg_rows(agg, columns, types, numbers)
            if rows_of is not None:
                return _first_rows(frame, rows_of, fields)
    return None


def _first_rows(frame: pl.LazyFrame, shown: pl.Expr, fields: list[pl.Expr]) -> pl.DataFrame:
    # A streaming filter that stops reading once it has MAX_SAMPLES rows.
    return frame.filter(shown).select(fields).head(MAX_SAMPLES).collect(engine="streaming")


def _duplicate_value_rows(frame: pl.LazyFrame, column: str, fields: list[pl.Expr]) -> pl.DataFrame:
    """The first rows whose value of ``column`` occurs more than once.

    Found by the values' 64-bit hashes (one column of hashes in memory, not the
    column's text), then checked on the text itself: a row is shown only when its
    exact value occurs twice, so a hash collision can never show a row that is not a
    duplicate (should one turn up, the rows are found by the text alone).
    """
    value = c.text(column)
    hashes = frame.select(c.hashed(column)).collect(engine="streaming").to_series().sort()
    repeated = _repeated_values(hashes)
    del hashes
    shown = c.value_hash(value).is_in(repeated.implode()) & value.is_not_null()
    first = _first_rows(frame, shown, [*fields, value.alias("__value")])
    texts = first.get_column("__value").unique()
    counts = (
        frame.select(value.alias("__value"))
        .filter(pl.col("__value").is_in(texts.implode()))
        .group_by("__value")
        .len()
        .collect(engine="streaming")
    )
    if counts.height == texts.len() and bool((counts.get_column("len") > 1).all()):
        return first.drop("__value")
    return _first_rows(frame, value.is_duplicated() & ~c.missing(column), fields)


def _collect_samples(
    frame: pl.LazyFrame,
    failed: list[tuple[str, _Pending]],
    columns: list[str],
    stats: Mapping[str, ColumnStats],
    copies: _RowCopies | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Up to MAX_SAMPLES (row_number, activity_event_id) per failed rule, one short query
    each."""
    # One struct per row, so each row number stays with its own id.
    fields = [pl.col(_ROW).alias("row_number")]
    if RECORD_ID in columns:
        fields.append(pl.col(RECORD_ID))
    samples: dict[str, list[dict[str, Any]]] = {}
    for key, pending in failed:
        try:
            found = _sample_rows(frame, pending, columns, stats, fields, copies)
        except pl.exceptions.PolarsError:
            continue
        if found is not None:
            samples[key] = [
                {**item, "row_number": int(item["row_number"])}
                for item in found.iter_rows(named=True)
            ]
    return samples


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


def prepare_rules(
    rules: Iterable[r.Rule], columns: list[str], resolve: ListResolver | None = None
) -> list[dict[str, Any] | tuple[str, _Pending]]:
    """Every enabled rule in the ruleset's order: its final result when it cannot run on
    this file, else the rule to evaluate (disabled rules are left out)."""
    ordered: list[dict[str, Any] | tuple[str, _Pending]] = []
    for index, rule in enumerate(rules):
        if rule.disabled:
            continue
        prepared = _prepare(rule, columns, resolve)
        ordered.append(prepared if isinstance(prepared, dict) else (f"r{index}", prepared))
    return ordered


def evaluate_rules(
    frame: pl.LazyFrame,
    prepared: list[dict[str, Any] | tuple[str, _Pending]],
    columns: list[str],
    stats: Mapping[str, ColumnStats],
    rows: int,
) -> list[dict[str, Any]]:
    """Every prepared rule's result, in order.

    ``frame`` has the records (row numbers are added for the samples); ``stats`` is
    the profile's statistics of each column and ``rows`` the number of records.
    """
    jobs = [item for item in prepared if not isinstance(item, dict)]
    aggs = [
        (pending, agg)
        for _, pending in jobs
        for unit in (pending.units if pending.aggregate else [])
        for agg in r.aggregates_of(unit.check)
    ]
    copies = None
    if any(agg.stat.startswith("DUPLICATE_ROWS") for _, agg in aggs):
        copies = _find_row_copies(frame, columns)
    for pending, agg in aggs:
        value = _known_aggregate(agg, stats, rows, columns, copies)
        if value is not _UNKNOWN:
            pending.known[agg] = value
    if jobs:
        _run_passes(frame, jobs, columns, rows, _moments(stats))
    failed = [(k, p) for k, p in jobs if not p.error and not all(p.passed)]
    numbered = frame.with_row_index(_ROW, offset=1)
    samples = _collect_samples(numbered, failed, columns, stats, copies) if failed else {}
    return [
        item if isinstance(item, dict) else _finish(item[1], rows, samples.get(item[0], []))
        for item in prepared
    ]


# -- the whole gate ------------------------------------------------------------------------


def evaluate(
    path: Path,
    rules: list[r.Rule],
    *,
    resolve: ListResolver | None = None,
    ruleset_name: str = "carbonlake",
    row_group_rows: int | None = None,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Profile ``path`` and evaluate ``rules`` over all of it.

    Returns ``(report, profile)``; the report's ``passed`` says whether the file
    may enter the pipeline (no rule of severity error failed). The profile is
    None when the file could not be read. ``row_group_rows`` sets the rows per
    row group of the working copy (:data:`staging.ROW_GROUP_ROWS`); the report
    does not depend on it. A file with more than ``max_columns`` columns fails at
    once, before it is read. An unexpected error while checking the file fails it
    too, with the error as the reason: a file the gate could not check never passes.
    """
    try:
        return _evaluate(path, rules, resolve, ruleset_name, row_group_rows, max_columns)
    except CarbonlakeError:
        raise
    except Exception as exc:  # the file must fail with its reason, never hang or crash
        _log.exception("unexpected error while checking %s", path)
        check = FileCheck(
            "File could be checked",
            f"checking the file raised {type(exc).__name__}: {_first_line(exc)}; this is "
            "a carbonlake bug, please report it with the file's first lines",
        )
        return _report([check], [], None, [], ruleset_name, 0), None


def _evaluate(
    path: Path,
    rules: list[r.Rule],
    resolve: ListResolver | None,
    ruleset_name: str,
    row_group_rows: int | None,
    max_columns: int,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    file_checks: list[FileCheck] = []
    profile: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    columns: list[str] = []
    empty_rows = 0

    problem = check_bytes(path)
    if problem:
        file_checks.append(problem)
    else:
        try:
            columns = csvfile.read_header(path)
        except InputDataError as exc:
            file_checks.append(FileCheck("Header line is readable", str(exc)))
        else:
            wide = check_width(columns, max_columns)
            file_checks += [wide] if wide else check_header(columns)
    if not file_checks:
        try:
            shape = check_shape(path, len(columns))
            if shape:
                file_checks.append(shape)
        except pl.exceptions.PolarsError as exc:
            file_checks.append(_unreadable(exc))
    if not file_checks:
        try:
            with staging.stage(path, columns, row_group_rows=row_group_rows) as staged:
                empty_rows = staged.empty_rows
                problem = records_problem(staged.rows, empty_rows)
                if problem:
                    file_checks.append(problem)
                else:
                    prepared = prepare_rules(rules, columns, resolve)
                    jobs = [item for item in prepared if not isinstance(item, dict)]
                    profile, stats = profile_columns(
                        staged.frame(), columns, staged.rows, _wanted(jobs)
                    )
                    profile["emptyRowsSkipped"] = empty_rows
                    results = evaluate_rules(staged.frame(), prepared, columns, stats, staged.rows)
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
