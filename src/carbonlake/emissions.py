"""Reading results back: the enriched records that hold each record's current result.

A record calculated twice (a re-run of the same data) has one current result,
the one the emissions table points at; export returns exactly those, once each.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import polars as pl

from ._exceptions import InputDataError
from .database import Database
from .storage import Storage

FORMATS = ("jsonl", "csv")
RECORD_ID = "activity_event_id"


def current_records(storage: Storage, database: Database) -> Iterator[pl.DataFrame]:
    """Frames of enriched records, one per enriched file, current results only."""
    for location, count in database.enriched_locations():
        data = storage.read_bytes(location)
        if data.strip():
            yield from _current(location, data, count, database)


def _current(location: str, data: bytes, count: int, database: Database) -> Iterator[pl.DataFrame]:
    """The current records of one enriched file (``count`` of them, per the database)."""
    frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    if frame.height != count:
        ids = frame.get_column(RECORD_ID).cast(pl.String).drop_nulls().to_list()
        current = pl.DataFrame(
            {RECORD_ID: database.current_ids_at(location, ids)}, schema={RECORD_ID: pl.String}
        )
        frame = frame.join(current, on=RECORD_ID, how="semi", maintain_order="left")
    yield frame


def flatten(frame: pl.DataFrame) -> pl.DataFrame:
    """Struct columns become flat ``a.b.c`` columns, lists ``;``-joined text;
    ``activity_event_id`` first."""
    while True:
        structs = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Struct)]
        if not structs:
            break
        exprs: list[pl.Expr] = []
        for name, dtype in frame.schema.items():
            if isinstance(dtype, pl.Struct):
                exprs += [
                    pl.col(name).struct.field(f.name).alias(f"{name}.{f.name}")
                    for f in dtype.fields
                ]
            else:
                exprs.append(pl.col(name))
        frame = frame.select(exprs)
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    if lists:
        frame = frame.with_columns(
            pl.col(name).cast(pl.List(pl.String)).list.join(";") for name in lists
        )
    if RECORD_ID in frame.columns:
        frame = frame.select(RECORD_ID, pl.exclude(RECORD_ID))
    return frame


def _lines(data: bytes) -> int:
    """How many JSON Lines records ``data`` holds (one per non-empty line)."""
    return sum(1 for line in data.split(b"\n") if line.strip())


def export(storage: Storage, database: Database, fmt: str, out: IO[bytes]) -> int:
    """Write every current enriched record as JSON Lines or flat CSV; returns the count.

    As JSON Lines, an enriched file whose records are all current is copied as it is
    (the very bytes its lineage node's SHA-256 is of, and ten times faster than
    parsing and writing it again); one with superseded records is filtered.
    """
    written = 0
    if fmt == "jsonl":
        for location, count in database.enriched_locations():
            data = storage.read_bytes(location)
            if not data.strip():
                continue
            if _lines(data) == count:
                out.write(data if data.endswith(b"\n") else data + b"\n")
                written += count
                continue
            for frame in _current(location, data, count, database):
                frame.write_ndjson(out)
                written += frame.height
        return written
    return _write_csv((flatten(frame) for frame in current_records(storage, database)), out)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet reads a text cell starting with one of these as a formula (CSV
injection); CSV exports prefix such cells with ``'`` as OWASP recommends. JSON and
Parquet keep the value as it is."""

_FORMULA_PATTERN = r"^[=+\-@\t\r]"


def csv_safe_text(value: str) -> str:
    """A text cell as a CSV export writes it: ``'`` before a formula start."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_safe_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns (and names) of a frame with formula starts escaped; numbers, which
    a spreadsheet reads as numbers, are left as they are."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    escaped = frame.with_columns(
        pl.when(pl.col(name).str.contains(_FORMULA_PATTERN))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in text
    )
    return escaped.rename({n: csv_safe_text(n) for n in frame.columns if csv_safe_text(n) != n})


def _write_csv(frames: Iterable[pl.DataFrame], out: IO[bytes]) -> int:
    """Write flat frames as one CSV table; returns the rows written.

    The header is the union of the frames' columns (in order of first appearance), so
    the frames are first spilled to temporary Parquet files, then written one at a
    time with the columns a frame lacks left empty: memory holds one enriched file's
    records, not the whole export.
    """
    with tempfile.TemporaryDirectory(prefix="carbonlake-export-") as folder:
        columns: dict[str, None] = {}
        parts: list[Path] = []
        for frame in frames:
            columns.update(dict.fromkeys(frame.columns))
            parts.append(Path(folder) / f"{len(parts)}.parquet")
            frame.write_parquet(parts[-1], compression="lz4")
        names = list(columns)
        written = 0
        for index, part in enumerate(parts):
            frame = pl.read_parquet(part)
            lacking = [name for name in names if name not in frame.columns]
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(n) for n in lacking)
            csv_safe_frame(frame.select(names)).write_csv(out, include_header=index == 0)
            written += frame.height
        return written


def record_results(database: Database, activity_event_id: str) -> dict[str, Any]:
    """A record's current result and every earlier one it replaced (oldest first)."""
    current = database.emission(activity_event_id)
    history = database.emission_history(activity_event_id)
    if current is None and not history:
        raise InputDataError(
            f"no calculated result for activity_event_id {activity_event_id!r}; "
            "`carbonlake emissions export` lists what exists"
        )
    return {"activity_event_id": activity_event_id, "current": current, "previous": history}
