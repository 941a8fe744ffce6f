"""The column profile: types, counts, number statistics and most common values.

Columns are profiled one at a time from the gate's working copy of the file
(:mod:`.staging`), so what is held at once is one column's state, never the
file: the 64-bit hashes of its values (8 bytes a row, sorted once to count
distinct, unique and most common values: :func:`compiler.hashed`) and, where
its values are numbers, those numbers (8 bytes each, for the exact median).
Each column's three streaming queries (hashes, type counts, numbers) share one
read of the column and one pass over its text; the texts of the most common
values are read back afterwards, for all columns at once, from the rows that
hold them.

The statistics are the ones the rules' aggregates ask for, so
:mod:`.gate` answers ``MISSING_VALUES``, ``DISTINCT_VALUES``, ``MEDIAN`` and
the like from here instead of reading the file again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from . import compiler as c

TOP_VALUES = 5

NUMBER_STATS = (
    "MIN",
    "MAX",
    "MEAN",
    "MEDIAN",
    "MEDIAN_ABSOLUTE_DEVIATION",
    "SUM",
    "STANDARD_DEVIATION",
    "VARIANCE",
    "SKEWNESS",
    "KURTOSIS",
)
"""Aggregates over a column's numbers that the profile computes (as ``agg_expr`` does)."""

_VALUE = "__value"
_HASH = "__hash"
_NUMBER = "__number"
_INDEX = "__carbonlake_index"


@dataclass
class ColumnStats:
    """What one pass over a column found."""

    name: str
    rows: int
    present: int
    number: int
    timestamp: int
    boolean: int
    distinct: int
    unique: int
    top: list[tuple[int, int]]
    """The most common values as (hash, count): most common first, ties by hash."""
    positions: dict[int, int]
    """Hash of each most common value -> index (0-based) of a record holding it."""
    numbers: dict[str, Any]
    """NUMBER_STATS over the column's numbers (None where there are none)."""
    quantiles: dict[float, Any] = field(default_factory=dict)
    values: dict[int, str] = field(default_factory=dict)
    """Hash -> text of the most common values (filled by :func:`profile`)."""

    @property
    def counts(self) -> dict[str, int]:
        return {
            "present": self.present,
            "number": self.number,
            "timestamp": self.timestamp,
            "boolean": self.boolean,
        }

    @property
    def type_name(self) -> str:
        return c.inferred_type(self.counts)

    @property
    def valid(self) -> int:
        counts = self.counts
        return counts.get(self.type_name, self.present)

    def entry(self) -> dict[str, Any]:
        """The column's entry in the profile document."""
        entry: dict[str, Any] = {
            "name": self.name,
            "type": self.type_name,
            "count": self.rows,
            "missing": self.rows - self.present,
            "distinct": self.distinct,
            "unique": self.unique,
            "valid": self.valid,
        }
        if self.type_name == "number":
            entry.update(
                {
                    "min": c.clean(self.numbers["MIN"]),
                    "max": c.clean(self.numbers["MAX"]),
                    "mean": c.clean(self.numbers["MEAN"]),
                    "median": c.clean(self.numbers["MEDIAN"]),
                    "standardDeviation": c.clean(self.numbers["STANDARD_DEVIATION"]),
                }
            )
        common = [{"value": self.values.get(h), "count": count} for h, count in self.top]
        # Most common first, ties in value order (which tied values make the cut at the
        # TOP_VALUES boundary is decided by hash, the same on every run).
        entry["mostCommonValues"] = sorted(common, key=lambda v: (-v["count"], str(v["value"])))
        return entry


GROUP_CELLS = 2_000_000
"""At most this many cells (rows x columns) of the file are in memory at once."""


def profile(
    frame: pl.LazyFrame,
    columns: list[str],
    rows: int,
    wanted: Mapping[str, Iterable[Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, ColumnStats]]:
    """The profile document of the records in ``frame`` and each column's statistics.

    ``rows`` is the number of records; ``wanted`` names, per column, what rules
    ask for beyond the profile: quantiles (numbers, ``AGG(:col, QUANTILE, :q)``)
    and other :data:`NUMBER_STATS` (names, ``AGG(:col, SKEWNESS)``).
    """
    wanted = wanted or {}
    stats = []
    # Columns are read from the working copy a group at a time, as many as fit in
    # GROUP_CELLS cells (one column at a time for a file of millions of rows): each
    # scan of the copy reads its footer, which lists every column, so one scan per
    # column made profiling grow with the square of the column count.
    per_group = max(1, GROUP_CELLS // max(rows, 1))
    for start in range(0, len(columns), per_group):
        group = columns[start : start + per_group]
        source = frame.select(group).collect().lazy() if per_group > 1 else frame
        for col in group:
            asked = list(wanted.get(col, ()))
            quantiles = [q for q in asked if isinstance(q, float)]
            extra = [name for name in asked if isinstance(name, str)]
            stats.append(column_stats(source, col, rows, quantiles, extra))
    _read_values(frame, stats)
    document = {
        "rowsCount": rows,
        "columnsCount": len(columns),
        "columns": [s.entry() for s in stats],
    }
    return document, {s.name: s for s in stats}


def column_stats(
    frame: pl.LazyFrame,
    column: str,
    rows: int,
    quantiles: Iterable[float] = (),
    extra: Iterable[str] = (),
) -> ColumnStats:
    """One column's counts, hash statistics and number statistics.

    The number statistics are the profile's (min, max, mean, median, standard
    deviation) and the ``extra`` ones of :data:`NUMBER_STATS` that rules ask for.
    """
    # The values without surrounding spaces; an empty one is missing. (Not nulled here,
    # as c.text does: no count below can take an empty text for a present value.)
    value = pl.col(_VALUE)
    base = frame.select(pl.col(column).str.strip_chars().alias(_VALUE))
    number = value.cast(pl.Float64, strict=False)
    short = value.filter(value.str.len_bytes().is_between(4, 5))  # "true", "false"
    hashes = base.select(pl.when(value.str.len_bytes() > 0).then(c.value_hash(value)))
    counts = base.select(
        value.str.contains(c.TIMESTAMP_PATTERN).sum().alias("timestamp"),
        # Only a text of 4 or 5 bytes can lower-case to "true" or "false".
        short.str.to_lowercase().is_in(pl.Series(c.BOOLEAN_TEXTS).implode()).sum().alias("boolean"),
    )
    numbers = base.select(number.filter(number.is_finite()).alias(_NUMBER))
    hashed, counted, numbered = pl.collect_all([hashes, counts, numbers], engine="streaming")
    per_row = hashed.to_series()
    del hashed
    missing = per_row.null_count()
    present = per_row.len() - missing
    # Sorted, nulls first, and sliced past them: no third copy of the column's hashes.
    distinct, unique, top = hash_counts(per_row.sort(nulls_last=False).slice(missing))
    positions = {h: _first_index(per_row, h) for h, _ in top}
    del per_row
    type_counts = counted.row(0, named=True)
    # One chunk, so that sums (mean, standard deviation) add up in the same order
    # however the copy was read: the statistics are the same on every run.
    values = numbered.to_series().rechunk()
    del numbered
    return ColumnStats(
        name=column,
        rows=rows,
        present=present,
        number=values.len(),
        timestamp=int(type_counts["timestamp"] or 0),
        boolean=int(type_counts["boolean"] or 0),
        distinct=distinct,
        unique=unique,
        top=top,
        positions=positions,
        numbers=number_stats(values, extra),
        quantiles=number_quantiles(values, quantiles),
    )


def number_stats(values: pl.Series, extra: Iterable[str] = ()) -> dict[str, Any]:
    """The profile's NUMBER_STATS of a column's numbers, and the ``extra`` ones, computed
    as the rules' aggregates compute them."""
    x = pl.col(_NUMBER)
    exprs = {
        "MIN": x.min(),
        "MAX": x.max(),
        "MEAN": x.mean(),
        "MEDIAN": x.median(),
        "MEDIAN_ABSOLUTE_DEVIATION": (x - x.median()).abs().median(),
        "SUM": x.sum(),
        "STANDARD_DEVIATION": x.std(),
        "VARIANCE": x.var(),
        "SKEWNESS": x.skew(),
        "KURTOSIS": x.kurtosis(),
    }
    wanted = {"MIN", "MAX", "MEAN", "MEDIAN", "STANDARD_DEVIATION", *extra}
    frame = values.rename(_NUMBER).to_frame()
    row = frame.select(e.cast(pl.Float64).alias(k) for k, e in exprs.items() if k in wanted).row(
        0, named=True
    )
    return dict(row)


def number_quantiles(values: pl.Series, quantiles: Iterable[float]) -> dict[float, Any]:
    """The given quantiles of a column's numbers (linear interpolation)."""
    wanted = sorted(set(quantiles))
    if not wanted:
        return {}
    frame = values.rename(_NUMBER).to_frame()
    row = frame.select(
        pl.col(_NUMBER).quantile(q, "linear").cast(pl.Float64).alias(str(i))
        for i, q in enumerate(wanted)
    ).row(0)
    return dict(zip(wanted, row, strict=True))


def hash_counts(hashes: pl.Series) -> tuple[int, int, list[tuple[int, int]]]:
    """(distinct, unique, most common as (hash, count)) of sorted value hashes.

    Runs of equal hashes are the values' counts. Only the runs longer than one
    (or, when those are fewer than the distinct values, all runs) are counted
    one by one, so a column of mostly distinct values needs no second array of
    its size.
    """
    n = hashes.len()
    if n == 0:
        return 0, 0, []
    if n == 1:
        return 1, 1, [(int(hashes[0]), 1)]
    change = hashes.slice(1) != hashes.slice(0, n - 1)  # change[i]: i + 1 starts a run
    starts = pl.concat([pl.Series([True]), change])
    ends = pl.concat([change, pl.Series([True])])
    single = starts & ends
    distinct = int(starts.sum())
    unique = int(single.sum())
    if unique == n:  # all distinct: the smallest hashes, once each
        return distinct, unique, [(int(h), 1) for h in hashes.head(TOP_VALUES)]
    repeated_rows = n - unique
    if repeated_rows <= distinct:
        runs = hashes.filter(~single).rle().struct.unnest()
    else:
        runs = hashes.rle().struct.unnest()
    best = runs.filter(pl.col("len") > 1).sort(["len", "value"], descending=[True, False])
    top = [(int(h), int(k)) for k, h in best.head(TOP_VALUES).select("len", "value").iter_rows()]
    if len(top) < TOP_VALUES:
        top += [(int(hashes[i]), 1) for i in _first_true(single, TOP_VALUES - len(top))]
    return distinct, unique, top


def _first_true(mask: pl.Series, k: int) -> list[int]:
    """Indexes of the first ``k`` true values of a boolean series (without copying it)."""
    found: list[int] = []
    offset = 0
    while len(found) < k and offset < mask.len():
        rest = mask.slice(offset)
        index = rest.arg_max()
        if index is None or not rest[index]:
            break
        found.append(offset + index)
        offset += index + 1
    return found


def _first_index(hashes: pl.Series, value: int) -> int:
    index = hashes.eq_missing(value).arg_max()
    assert index is not None and hashes[index] == value
    return int(index)


def _read_values(frame: pl.LazyFrame, stats: list[ColumnStats]) -> None:
    """Fill in the texts of the most common values, from the records that hold them."""
    wanted = sorted({i for s in stats for i in s.positions.values()})
    if not wanted:
        return
    index = _INDEX
    while index in {s.name for s in stats}:
        index += "_"
    rows = (
        frame.with_row_index(index)
        .filter(pl.col(index).is_in(pl.Series(wanted, dtype=pl.get_index_type()).implode()))
        .select(pl.col(index), *[c.text(s.name).alias(str(n)) for n, s in enumerate(stats)])
        .collect(engine="streaming")
    )
    by_index = {int(row[0]): row[1:] for row in rows.iter_rows()}
    for n, s in enumerate(stats):
        s.values = {h: by_index[i][n] for h, i in s.positions.items()}
