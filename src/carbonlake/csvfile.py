"""How carbonlake reads an input CSV file, shared by the quality gate and the transform.

One definition, so that the rows the gate checks are exactly the rows the
transform splits into batches:

- every column is text (the gate decides what parses, not a schema guess);
- header names lose surrounding spaces (``" raw_data"`` is ``raw_data``); a
  UTF-8 byte-order mark and CRLF line ends are accepted;
- empty rows (a blank line, or a line of separators only, as spreadsheets
  export) are skipped: they carry no record. The gate counts and reports them;
- empty cells are null.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from ._exceptions import InputDataError

ROW_NUMBER = "__carbonlake_row"
"""Name of the optional row-number column: 1 is the first record after the header,
empty rows not counted, so it is also the record's position in the transform's
batches (what lineage records as its row number)."""


def read_header(path: Path) -> list[str]:
    """The header's column names (surrounding spaces removed), from the first line.

    Raises InputDataError when the header cannot be read as one CSV line (a field
    longer than the CSV reader's limit of 128 KiB, for one).
    """
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    try:
        row = next(csv.reader(io.StringIO(first)), [])
    except csv.Error as exc:
        raise InputDataError(
            f"the header line of {path.name} cannot be read as CSV ({exc}; the header is "
            f"{len(first):,} characters long); check the first line holds the column names"
        ) from exc
    return [name.strip() for name in row]


def _strip_names(names: list[str]) -> list[str]:
    return [name.strip() for name in names]


def scan_all_rows(path: Path) -> pl.LazyFrame:
    """Every row as Polars reads it, empty rows included (all their cells null or empty)."""
    return pl.scan_csv(
        path,
        infer_schema=False,
        encoding="utf8",
        with_column_names=_strip_names,
        glob=False,  # a file name may hold [, * or ?
    )


def is_empty_row(columns: list[str]) -> pl.Expr:
    """True for a row whose every cell is null or empty."""
    return pl.all_horizontal(
        [pl.col(c).is_null() | (pl.col(c).str.len_bytes() == 0) for c in columns]
    )


def scan(path: Path, columns: list[str], row_number: bool = False) -> pl.LazyFrame:
    """The records of a CSV file: text columns, empty rows skipped, empty cells null.

    ``columns`` are the header's names (from :func:`read_header`); with
    ``row_number`` a :data:`ROW_NUMBER` column comes first.
    """
    return records(scan_all_rows(path), columns, row_number)


def read_text(data: bytes) -> pl.LazyFrame:
    """Every row of CSV text held in memory (a header line, then records), as
    :func:`scan_all_rows` reads a file."""
    return pl.read_csv(
        io.BytesIO(data), infer_schema=False, encoding="utf8", with_column_names=_strip_names
    ).lazy()


def records(rows: pl.LazyFrame, columns: list[str], row_number: bool = False) -> pl.LazyFrame:
    """The records among all rows (:func:`scan_all_rows`, :func:`read_text`): empty rows
    skipped, empty cells null; with ``row_number`` a :data:`ROW_NUMBER` column first."""
    frame = rows.filter(~is_empty_row(columns))
    if row_number:
        frame = frame.with_row_index(ROW_NUMBER, offset=1)
    return frame.with_columns(
        pl.when(pl.col(c).str.len_bytes() > 0).then(pl.col(c)).alias(c) for c in columns
    )
