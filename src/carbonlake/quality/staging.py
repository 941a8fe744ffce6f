"""A working copy of a CSV file's records, in Parquet, that the gate reads column by column.

The CSV text is parsed once, by Polars' streaming engine, into a temporary
Parquet file (LZ4, about a quarter of the CSV's size); the same pass counts the
file's rows and empty rows. Every later pass (the profile, one column at a
time, the rules, the failing samples) reads only the columns it needs from that
copy, so no pass holds the file and none parses CSV again. The copy holds
exactly the rows :func:`carbonlake.csvfile.scan` gives (empty rows skipped,
empty cells null), in file order, and is deleted when the gate is done.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .. import csvfile
from .._exceptions import StorageError

ROW_GROUP_ROWS = 65_536
"""Rows per row group of the working copy: the unit the column passes read and drop."""


@dataclass(frozen=True)
class Staged:
    """The working copy of one CSV file."""

    path: Path
    columns: list[str]
    rows: int
    """Records (data rows, empty rows not counted)."""
    empty_rows: int
    empty_flag: str
    """Name of the copy's column that marks empty rows."""

    def frame(self, *, row_number: bool = False) -> pl.LazyFrame:
        """The records, as :func:`carbonlake.csvfile.scan` gives them."""
        frame = pl.scan_parquet(self.path, glob=False)
        if self.empty_rows:
            frame = frame.filter(~pl.col(self.empty_flag))
        frame = frame.select(self.columns)
        if row_number:
            frame = frame.with_row_index(csvfile.ROW_NUMBER, offset=1)
        return frame


@contextmanager
def stage(path: Path, columns: list[str], *, row_group_rows: int | None = None) -> Iterator[Staged]:
    """Copy the rows of the CSV file ``path`` to a temporary Parquet file.

    ``columns`` are the header's names. Raises Polars' errors when the CSV reader
    refuses the file, and StorageError when the copy cannot be written (the
    temporary folder, ``TMPDIR``, needs about a quarter of the file's size).
    """
    flag = "__carbonlake_empty"
    while flag in columns:
        flag += "_"
    try:
        workdir = tempfile.TemporaryDirectory(prefix="carbonlake-dq-")
    except OSError as exc:
        raise _unwritable(path, tempfile.gettempdir(), exc) from exc
    with workdir as folder:
        target = Path(folder) / "rows.parquet"
        # Every row, empty ones flagged rather than dropped, so that one pass (one
        # parse) gives the copy and both counts; readers skip the flagged rows.
        rows_of_file = (
            csvfile.scan_all_rows(path)
            .with_columns(csvfile.is_empty_row(columns).alias(flag))
            .with_columns(
                pl.when(pl.col(c).str.len_bytes() > 0).then(pl.col(c)).alias(c) for c in columns
            )
        )
        try:
            rows_of_file.sink_parquet(
                target,
                compression="lz4",
                row_group_size=row_group_rows or ROW_GROUP_ROWS,
                engine="streaming",
            )
        except OSError as exc:
            raise _unwritable(path, folder, exc) from exc
        counted = (
            pl.scan_parquet(target, glob=False)
            .select(pl.len().alias("rows"), pl.col(flag).sum().alias("empty"))
            .collect(engine="streaming")
            .row(0, named=True)
        )
        rows, empty = int(counted["rows"]), int(counted["empty"] or 0)
        yield Staged(target, list(columns), rows - empty, empty, flag)


def _unwritable(path: Path, folder: str, exc: OSError) -> StorageError:
    return StorageError(
        f"the data-quality gate could not write its working copy of {path.name} in {folder}: "
        f"{exc.strerror or exc}; it needs free space of about a quarter of the file's size "
        "in the temporary folder (set TMPDIR to use another one)"
    )
