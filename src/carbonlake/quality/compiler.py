"""Parsed checks compiled to Polars expressions, evaluated over the whole file at once.

Conventions every check shares (``docs/quality.md`` explains them to users):

- a cell's value is its text with surrounding spaces removed; a cell that is
  null, empty or only spaces is *missing*, and a missing value fails every
  per-row condition except ``IS_MISSING``;
- a value is a *number* when it reads as a finite decimal number (``12``,
  ``-0.5``, ``1e3``); comparing with a number, ``length(...)`` or a numeric
  list compares numbers, and a value that is not a number fails;
- two columns compare as numbers where both values are numbers, else as text;
- percentages are of all rows of the file (empty rows excluded).

Aggregates become scalar expressions (one row of results for the whole file);
per-row conditions become boolean expressions, true where the row passes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import polars as pl

from ..calculate.names import name_key_expr, name_keys
from .rules import (
    Agg,
    Between,
    Check,
    Column,
    ColumnTuple,
    Compare,
    InList,
    Length,
    ListValue,
    Literal,
    Logical,
    MissingTest,
    Operand,
    Reference,
    StringTest,
)

TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])"
    r"(-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?)?)?$"
)
"""A date (``2019-10``, ``2019-10-31``) or date-time (``2019-10-31T08:15:00Z``) as activity
files write them; the shipped ruleset checks ``origin_measurement_timestamp`` with it."""

BOOLEAN_TEXTS = ("true", "false")
TYPES = ("number", "timestamp", "boolean", "string")
"""Types a column is inferred to have: the first of number, timestamp, boolean that more
than half of its present values have; otherwise string."""

_TUPLE_SEPARATOR = "\x1f"

Lists = dict[str, list[Any]]
"""Run-time lists by reference name (e.g. ``@factor_set.category_activity``)."""


# -- values ---------------------------------------------------------------------------


def text(column: str) -> pl.Expr:
    """The column's values with surrounding spaces removed; missing values are null."""
    stripped = pl.col(column).str.strip_chars()
    return pl.when(stripped.str.len_bytes() > 0).then(stripped)


HASH_SEED = 0x0C0FFEE
"""Seed of the 64-bit value hashes that distinct, unique and duplicate counts use."""


def hashed(column: str) -> pl.Expr:
    """The column's present values as 64-bit hashes.

    Counting distinct values by hash keeps memory at 16 bytes per distinct value
    instead of the value itself (10 million record ids: about 160 MB, not
    gigabytes). Two different values share a hash with probability about
    n^2 / 2^65 (under 1e-5 for 10 million distinct values); such a collision can
    only make a count of duplicates too high, never hide a duplicate.
    """
    return value_hash(text(column).drop_nulls())


def value_hash(values: pl.Expr) -> pl.Expr:
    """64-bit hashes of text values (of :func:`text`), as :func:`hashed` computes them."""
    return values.hash(seed=HASH_SEED)


def missing(column: str) -> pl.Expr:
    """True where the cell is null, empty or only spaces."""
    return text(column).is_null()


def numeric(column: str) -> pl.Expr:
    """The column read as finite numbers; anything else is null."""
    values = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(values.is_finite()).then(values)


def type_counts(column: str) -> dict[str, pl.Expr]:
    """How many present values of the column have each type."""
    values = text(column)
    return {
        "present": values.is_not_null().sum(),
        "number": numeric(column).is_not_null().sum(),
        "timestamp": values.str.contains(TIMESTAMP_PATTERN).fill_null(False).sum(),
        "boolean": values.str.to_lowercase().is_in(pl.Series(BOOLEAN_TEXTS).implode()).sum(),
    }


def inferred_type(counts: dict[str, int]) -> str:
    """The column's type from :func:`type_counts` results."""
    present = counts["present"]
    if present == 0:
        return "string"
    for name in ("number", "timestamp", "boolean"):
        if counts[name] * 2 > present:
            return name
    return "string"


def _valid_count(column: str) -> pl.Expr:
    counts = type_counts(column)
    present = counts["present"]
    return (
        pl.when(counts["number"] * 2 > present)
        .then(counts["number"])
        .when(counts["timestamp"] * 2 > present)
        .then(counts["timestamp"])
        .when(counts["boolean"] * 2 > present)
        .then(counts["boolean"])
        .otherwise(present)
    )


def is_valid(column: str, type_name: str) -> pl.Expr:
    """True where the value is present and of the column's inferred type."""
    if type_name == "number":
        return numeric(column).is_not_null()
    if type_name == "timestamp":
        return text(column).str.contains(TIMESTAMP_PATTERN).fill_null(False)
    if type_name == "boolean":
        return (
            text(column)
            .str.to_lowercase()
            .is_in(pl.Series(BOOLEAN_TEXTS).implode())
            .fill_null(False)
        )
    return ~missing(column)


Moments = Mapping[str, tuple[Any, Any]]
"""(mean, sample standard deviation) of each column's numbers, when already known."""


def is_outlier(column: str, z: float, moments: Moments | None = None) -> pl.Expr:
    """True where the value is a number more than ``z`` standard deviations from the mean.

    With the column's known ``moments`` they are constants, which keeps the
    expression row by row (streaming) instead of needing the whole column first.
    """
    values = numeric(column)
    if moments is not None and column in moments:
        known_mean, known_std = moments[column]
        mean = pl.lit(known_mean, dtype=pl.Float64)
        std = pl.lit(known_std, dtype=pl.Float64)
    else:
        mean, std = values.mean(), values.std()
    return (((values - mean).abs() / std) > z).fill_null(False)


# -- aggregates --------------------------------------------------------------------------


def agg_expr(agg: Agg, columns: list[str], moments: Moments | None = None) -> pl.Expr:
    """A scalar expression for one aggregate over the file's ``columns``.

    ``moments`` (see :func:`is_outlier`) are the columns' known means and standard
    deviations.
    """
    rows = pl.len()

    def percentage(count: pl.Expr) -> pl.Expr:
        return pl.when(rows > 0).then(count * 100.0 / rows).otherwise(0.0)

    if agg.column is None:
        if agg.stat == "ROWS_COUNT":
            return rows.cast(pl.Int64)
        if agg.stat == "COLUMNS_COUNT":
            return pl.lit(len(columns), dtype=pl.Int64)
        duplicates = (rows - pl.struct(columns).n_unique()).cast(pl.Int64)
        return duplicates if agg.stat == "DUPLICATE_ROWS_COUNT" else percentage(duplicates)
    col = agg.column
    present = text(col).drop_nulls()
    counts = {
        "MISSING_VALUES": missing(col).sum(),
        "DUPLICATE_VALUES": present.count() - hashed(col).n_unique(),
        "DISTINCT_VALUES": hashed(col).n_unique(),
        "UNIQUE_VALUES": hashed(col).is_unique().sum(),
        "VALID_VALUES": _valid_count(col),
        "Z_SCORE_OUTLIERS": is_outlier(col, agg.param or 3.0, moments).sum(),
    }
    for prefix, count in counts.items():
        if agg.stat == f"{prefix}_COUNT":
            return count.cast(pl.Int64)
        if agg.stat == f"{prefix}_PERCENTAGE":
            return percentage(count.cast(pl.Int64))
    values = numeric(col)
    if agg.stat == "MODE":
        return present.mode().sort().first()
    if agg.stat == "ENTROPY":
        # Counts sorted first: value_counts' order varies between runs, and with it the
        # last digit of the sum; sorted, the same file always gives the same entropy.
        return present.value_counts().struct.field("count").sort().entropy(base=2)
    if agg.stat == "QUANTILE":
        return values.quantile(agg.param if agg.param is not None else 0.5, "linear")
    stats = {
        "MIN": values.min(),
        "MAX": values.max(),
        "MEAN": values.mean(),
        "MEDIAN": values.median(),
        "MEDIAN_ABSOLUTE_DEVIATION": (values - values.median()).abs().median(),
        "SUM": values.sum(),
        "STANDARD_DEVIATION": values.std(),
        "VARIANCE": values.var(),
        "SKEWNESS": values.skew(),
        "KURTOSIS": values.kurtosis(),
    }
    return stats[agg.stat].cast(pl.Float64)


def agg_rows(
    agg: Agg,
    columns: list[str],
    types: Mapping[str, str],
    numbers: Mapping[str, Mapping[str, Any]] | None = None,
) -> pl.Expr | None:
    """The rows behind an aggregate, to show when its check fails (None: no such rows).

    ``numbers`` are the columns' known number statistics (``MIN``, ``MAX``, ``MEAN``,
    ``STANDARD_DEVIATION``): with them the rows are found row by row.
    """
    known = (numbers or {}).get(agg.column or "")
    col = agg.column
    if col is None:
        if agg.stat.startswith("DUPLICATE_ROWS"):
            return pl.struct(columns).is_duplicated()
        return None
    if agg.stat.startswith("MISSING_VALUES"):
        return missing(col)
    if agg.stat.startswith("DUPLICATE_VALUES"):
        return text(col).is_duplicated() & ~missing(col)
    if agg.stat.startswith("VALID_VALUES"):
        return ~is_valid(col, types.get(col, "string"))
    if agg.stat.startswith("Z_SCORE_OUTLIERS"):
        moments = {col: (known["MEAN"], known["STANDARD_DEVIATION"])} if known else None
        return is_outlier(col, agg.param or 3.0, moments)
    if agg.stat in ("MIN", "MAX"):
        values = numeric(col)
        extreme = values.min() if agg.stat == "MIN" else values.max()
        if known:
            extreme = pl.lit(known[agg.stat], dtype=pl.Float64)
        return (values == extreme).fill_null(False)
    return None


# -- per-row conditions ------------------------------------------------------------------


def _text_of(op: Operand) -> pl.Expr:
    if isinstance(op, Column):
        return text(op.name)
    if isinstance(op, Length):
        return text(op.column).str.len_chars().cast(pl.String)
    if isinstance(op, Literal):
        return pl.lit(op.text if isinstance(op.value, float) else op.value, dtype=pl.String)
    raise AssertionError(f"{op!r} has no per-row text")  # the compiler never asks


def _number_of(op: Operand) -> pl.Expr | None:
    if isinstance(op, Column):
        return numeric(op.name)
    if isinstance(op, Length):
        return text(op.column).str.len_chars().cast(pl.Float64)
    if isinstance(op, Literal) and isinstance(op.value, float):
        return pl.lit(op.value, dtype=pl.Float64)
    return None


def _is_numeric_operand(op: Operand) -> bool:
    return isinstance(op, Length) or (isinstance(op, Literal) and isinstance(op.value, float))


def _compare(op: str, left: pl.Expr, right: pl.Expr) -> pl.Expr:
    return {
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def _row_compare(op: str, left: Operand, right: Operand) -> pl.Expr:
    left_number, right_number = _number_of(left), _number_of(right)
    if _is_numeric_operand(left) or _is_numeric_operand(right):
        if left_number is None or right_number is None:
            return pl.lit(None, dtype=pl.Boolean)
        return _compare(op, left_number, right_number)
    as_text = _compare(op, _text_of(left), _text_of(right))
    if left_number is not None and right_number is not None:  # two columns
        both = left_number.is_not_null() & right_number.is_not_null()
        return pl.when(both).then(_compare(op, left_number, right_number)).otherwise(as_text)
    return as_text


def _list_values(values: ListValue | Reference, lists: Lists) -> list[Any]:
    if isinstance(values, ListValue):
        return list(values.values)
    return list(lists[values.name])


def _as_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else json.dumps(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _row_in(condition: InList, lists: Lists) -> pl.Expr:
    values = _list_values(condition.values, lists)
    subject = condition.subject
    if (
        isinstance(condition.values, Reference)
        and condition.values.name.startswith("@factor_set.")
        and isinstance(subject, Column | ColumnTuple)
    ):
        # Factor names match as the calculation matches them: one rule (names.py).
        return _factor_names_in(subject, values)
    if isinstance(subject, ColumnTuple):
        joined = pl.concat_str([text(c) for c in subject.columns], separator=_TUPLE_SEPARATOR)
        keys = [_TUPLE_SEPARATOR.join(_as_text(part) for part in value) for value in values]
        return joined.is_in(pl.Series(keys, dtype=pl.String).implode())
    if values and all(_is_number(v) for v in values):
        number = _number_of(subject)
        if number is None:
            return pl.lit(None, dtype=pl.Boolean)
        floats = pl.Series([float(v) for v in values], dtype=pl.Float64)
        return number.is_in(floats.implode())
    texts = pl.Series([_as_text(v) for v in values], dtype=pl.String)
    return _text_of(subject).is_in(texts.implode())


def _factor_names_in(subject: Column | ColumnTuple, values: list[Any]) -> pl.Expr:
    """Membership in a factor-set list, names compared by their key (trimmed, spaces
    folded, case ignored), other parts (a scope) as trimmed text."""
    columns = subject.columns if isinstance(subject, ColumnTuple) else (subject.name,)
    rows = [value if isinstance(value, list | tuple) else [value] for value in values]
    # Names (category, activity) are keyed, all in one call; a trailing scope stays text.
    names = [str(part) for row in rows for part in row[:2]]
    keys_of = dict(zip(names, name_keys(names), strict=True))
    keyed = [
        [keys_of[str(part)] if i < 2 else _as_text(part) for i, part in enumerate(row)]
        for row in rows
    ]
    parts = [
        name_key_expr(text(column)) if i < 2 else text(column) for i, column in enumerate(columns)
    ]
    joined = pl.concat_str(parts, separator=_TUPLE_SEPARATOR)
    keys = [_TUPLE_SEPARATOR.join(row) for row in keyed]
    return joined.is_in(pl.Series(keys, dtype=pl.String).implode())


def _row_string_test(condition: StringTest) -> pl.Expr:
    subject = _text_of(condition.subject)
    if condition.op == "MATCHES":
        assert isinstance(condition.value, Literal)
        return subject.str.contains(f"^(?:{condition.value.text})$")
    value = _text_of(condition.value)
    if condition.op == "STARTS_WITH":
        return subject.str.starts_with(value)
    if condition.op == "ENDS_WITH":
        return subject.str.ends_with(value)
    return subject.str.contains(value, literal=True)


def row_expr(check: Check, lists: Lists | None = None) -> pl.Expr:
    """A per-row boolean: true where the row passes (missing values fail)."""
    lists = lists or {}
    if isinstance(check, Logical):
        parts = [row_expr(p, lists) for p in check.parts]
        combined = parts[0]
        for part in parts[1:]:
            combined = combined & part if check.op == "and" else combined | part
        return combined
    if isinstance(check, MissingTest):
        subject = check.subject
        is_missing = (
            missing(subject.name) if isinstance(subject, Column) else _text_of(subject).is_null()
        )
        return ~is_missing if check.negated else is_missing
    if isinstance(check, Compare):
        core = _row_compare(check.op, check.left, check.right)
    elif isinstance(check, Between):
        core = _row_compare(">=", check.subject, check.low) & _row_compare(
            "<=", check.subject, check.high
        )
    elif isinstance(check, InList):
        core = _row_in(check, lists)
    else:
        core = _row_string_test(check)
    negated = getattr(check, "negated", False)
    return (~core if negated else core).fill_null(False)


# -- aggregate verdicts (a handful of scalars, in Python) ------------------------------------


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _scalar_compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    left_number, right_number = _as_number(left), _as_number(right)
    if left_number is not None and right_number is not None:
        a: Any = left_number
        b: Any = right_number
    else:
        a, b = str(left).strip(), str(right).strip()
    return bool(
        {
            "==": a == b,
            "!=": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    )


def evaluate_aggregate(check: Check, values: dict[Agg, Any], lists: Lists | None = None) -> bool:
    """The verdict of an aggregate check, given each aggregate's observed value."""
    lists = lists or {}
    if isinstance(check, Logical):
        results = [evaluate_aggregate(p, values, lists) for p in check.parts]
        return all(results) if check.op == "and" else any(results)

    def value(side: Operand) -> Any:
        if isinstance(side, Agg):
            return values[side]
        if isinstance(side, Literal):
            return side.value
        raise AssertionError("columns are refused in aggregate checks")  # refused earlier

    if isinstance(check, MissingTest):
        is_missing = value(check.subject) is None
        return not is_missing if check.negated else is_missing
    subject = value(check.subject) if not isinstance(check, Compare) else None
    if isinstance(check, Compare):
        return _scalar_compare(check.op, value(check.left), value(check.right))
    if subject is None:
        return False
    if isinstance(check, Between):
        inside = _scalar_compare(">=", subject, value(check.low)) and _scalar_compare(
            "<=", subject, value(check.high)
        )
        return not inside if check.negated else inside
    if isinstance(check, InList):
        options = _list_values(check.values, lists)
        if options and all(_is_number(v) for v in options):
            number = _as_number(subject)
            found = number is not None and number in {float(v) for v in options}
        else:
            found = _as_text(subject) in {_as_text(v) for v in options}
        return not found if check.negated else found
    assert isinstance(check, StringTest)
    target = value(check.value)
    subject_text, target_text = _as_text(subject), str(target if target is not None else "")
    if isinstance(check.value, Literal):
        target_text = check.value.text
    if check.op == "STARTS_WITH":
        found = subject_text.startswith(target_text)
    elif check.op == "ENDS_WITH":
        found = subject_text.endswith(target_text)
    elif check.op == "CONTAINS":
        found = target_text in subject_text
    else:
        try:
            found = re.fullmatch(target_text, subject_text) is not None
        except re.error:
            found = False
    return not found if check.negated else found


def clean(value: Any) -> Any:
    """A JSON-safe observed value: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
