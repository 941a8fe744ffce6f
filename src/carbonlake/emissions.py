"""Reading results back: the enriched records that hold each record's current result.

A record calculated twice (a re-run of the same data) has one current result,
the one the emissions table points at; export returns exactly those, once each.
An admin may delete a record's result (:func:`delete_record`): a tombstone that
takes it out of the current results, totals and exports, keeps it in the result
history and records who, when and why in the lineage ledger; nothing is erased.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._exceptions import InputDataError, LineageError

if TYPE_CHECKING:
    # Imported where used: the CLI imports this module for its choices of format, and
    # `emissions show` needs no Polars.
    import polars as pl

    from .database import Database
    from .storage import Storage

FORMATS = ("jsonl", "csv", "parquet")
RECORD_ID = "activity_event_id"
DELETION = "#deleted-"
"""A record's n-th deletion node is ``<activity_event_id>#deleted-<n>``."""
MAX_REASON_CHARS = 2000


def current_records(storage: Storage, database: Database) -> Iterator[pl.DataFrame]:
    """Frames of enriched records, one per enriched file, current results only."""
    for location, count in database.enriched_locations():
        data = storage.read_bytes(location)
        if data.strip():
            yield from _current(location, data, count, database)


def _current(location: str, data: bytes, count: int, database: Database) -> Iterator[pl.DataFrame]:
    """The current records of one enriched file (``count`` of them, per the database)."""
    import polars as pl

    from .calculate import read_enriched

    frame = read_enriched(data, location)
    if not frame.height:
        return
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
    import polars as pl

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


def export(storage: Storage, database: Database, fmt: str, out: IO[bytes]) -> int:
    """Write every current enriched record as JSON Lines (the original's JSON shape, one
    record a line), flat CSV or one Parquet file (the enriched files' nested shape);
    returns the count. Memory holds one enriched file's records at a time."""
    if fmt == "jsonl":
        written = 0
        for frame in current_records(storage, database):
            frame.write_ndjson(out)
            written += frame.height
        return written
    if fmt == "parquet":
        return _write_parquet(current_records(storage, database), out)
    return _write_csv((flatten(frame) for frame in current_records(storage, database)), out)


def _write_parquet(frames: Iterable[pl.DataFrame], out: IO[bytes]) -> int:
    """Write frames as one Parquet file; returns the rows written. Each frame is
    spilled to a temporary file first, then streamed into one (columns a frame lacks
    are null, types widened to a common one)."""
    import polars as pl

    with tempfile.TemporaryDirectory(prefix="carbonlake-export-") as folder:
        parts: list[Path] = []
        for frame in frames:
            parts.append(Path(folder) / f"{len(parts)}.parquet")
            frame.write_parquet(parts[-1], compression="lz4")
        target = Path(folder) / "export.parquet"
        if parts:
            lazy = pl.concat([pl.scan_parquet(p) for p in parts], how="diagonal_relaxed")
            lazy.sink_parquet(target, compression="zstd")
        else:
            pl.DataFrame({RECORD_ID: []}, schema={RECORD_ID: pl.String}).write_parquet(target)
        with target.open("rb") as handle:
            shutil.copyfileobj(handle, out, 1 << 20)
        return int(pl.scan_parquet(target).select(pl.len()).collect().item())


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
    import polars as pl

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
    import polars as pl

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


def api_record(row: dict[str, Any]) -> dict[str, Any]:
    """A results row as the API and ``--json`` show it: the record's ``geo`` as the
    original's ``{"lat", "long"}`` (null when the input had none), its ``source`` as is."""
    document = {k: v for k, v in row.items() if k not in ("geo_lat", "geo_long")}
    lat, long = row.get("geo_lat"), row.get("geo_long")
    document["geo"] = None if lat is None and long is None else {"lat": lat, "long": long}
    return document


def record_results(database: Database, activity_event_id: str) -> dict[str, Any]:
    """A record's current result and every earlier one it replaced (oldest first)."""
    current = database.emission(activity_event_id)
    history = database.emission_history(activity_event_id)
    if current is None and not history:
        raise InputDataError(
            f"no calculated result for activity_event_id {activity_event_id!r}; "
            "`carbonlake emissions export` lists what exists"
        )
    return {
        "activity_event_id": activity_event_id,
        "current": None if current is None else api_record(current),
        "previous": [api_record(row) for row in history],
        "deleted": deletion_of(history) if current is None else None,
    }


def deletion_of(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Who deleted a record's result, when and why, if its latest earlier result was
    deleted (rather than replaced)."""
    last = history[-1] if history else None
    if not last or not last.get("deletion_node_id"):
        return None
    return {
        "deleted_at": last["superseded_at"],
        "deleted_by": last["deleted_by"],
        "reason": last["deletion_reason"],
        "root_id": last["root_id"],
        "lineage_node_id": last["deletion_node_id"],
    }


def delete_record(
    storage: Storage,
    database: Database,
    activity_event_id: str,
    *,
    reason: str,
    deleted_by: str,
) -> dict[str, Any]:
    """Delete a record's current result as a tombstone; returns the deletion.

    The result moves to the result history (``emissions show`` still lists it) and
    leaves the current results, their totals and the exports. A deletion note, a JSON
    object with who, when, why and the result, is written to
    ``enriched/<root_id>/deleted/<id>.json``, and a ``RECORD_DELETED`` lineage node
    under the result's node points at it with its SHA-256, so ``lineage verify``
    checks the note like every other object. Nothing is erased.
    """
    from . import lake, lineage
    from .database import utc_now

    reason = reason.strip()
    if not reason:
        raise InputDataError(
            f"give the reason for deleting record {activity_event_id!r}; it is kept in the "
            "lineage ledger"
        )
    if len(reason) > MAX_REASON_CHARS:
        raise InputDataError(f"the reason is longer than {MAX_REASON_CHARS} characters")
    current = database.emission(activity_event_id)
    if current is None:
        history = database.emission_history(activity_event_id)
        deleted = deletion_of(history)
        if deleted:
            # Finish a deletion whose Iceberg delete did not happen (a stopped process).
            finished = lake.delete_result(
                database, storage, activity_event_id, history[-1]["calculated_at"]
            )
            raise InputDataError(
                f"record {activity_event_id!r} was already deleted at {deleted['deleted_at']} "
                f"by {deleted['deleted_by']}; it has no current result"
                + (
                    " (the Iceberg delete of that deletion, left undone by a stopped process, "
                    "is done now)"
                    if finished
                    else ""
                )
            )
        raise InputDataError(
            f"no calculated result for activity_event_id {activity_event_id!r}; "
            "`carbonlake emissions export` lists what exists"
        )
    root_id = current["root_id"]
    parent_id = current["lineage_node_id"] or activity_event_id
    parent = database.lineage_node(root_id, parent_id)
    if parent is None:
        raise LineageError(
            f"record {activity_event_id!r}: its result's lineage node {parent_id} of root "
            f"{root_id} is not in the ledger, so a deletion cannot be chained to it; "
            "`carbonlake lineage verify` names what is missing"
        )
    earlier = [
        node
        for root, node in database.lineage_nodes_with_prefix(activity_event_id + DELETION)
        if root == root_id
    ]
    node_id = f"{activity_event_id}{DELETION}{len(earlier) + 1}"
    deleted_at = utc_now()
    note = {
        "action_taken": lineage.RECORD_DELETED,
        "activity_event_id": activity_event_id,
        "root_id": root_id,
        "lineage_node_id": node_id,
        "parent_node_id": parent_id,
        "deleted_at": deleted_at,
        "deleted_by": deleted_by,
        "reason": reason,
        "result": api_record(current),
    }
    data = (json.dumps(note, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    location = storage.url("enriched", f"{root_id}/deleted/{uuid.uuid4().hex}.json")
    storage.write_bytes(location, data)
    sha = hashlib.sha256(data).hexdigest()
    writer = lineage.LineageWriter(database, storage, batch_size=1 << 62)
    node_hash = writer.add(
        root_id,
        node_id,
        parent_id,
        lineage.RECORD_DELETED,
        location,
        object_sha256=sha,
        row_number=parent["row_number"],
        recorded_at=deleted_at,
    )
    rows = writer.take()
    # First the tombstone: who, when and why, with its lineage node (from then on every
    # read leaves the result out); then an Iceberg delete takes it out of the results
    # table's files (the earlier snapshot still holds it). A process stopped in between
    # leaves a deletion whose Iceberg delete the next `emissions delete` of the record
    # makes, and `lineage verify` names.
    database.record_deletion(
        activity_event_id,
        root_id,
        current["calculated_at"],
        deleted_at=deleted_at,
        deleted_by=deleted_by,
        reason=reason,
        lineage_rows=rows,
    )
    if not lake.delete_result(database, storage, activity_event_id, current["calculated_at"]):
        raise InputDataError(
            f"record {activity_event_id!r} was recalculated while it was being deleted: the "
            f"deletion is recorded against the result calculated at "
            f"{current['calculated_at']}, no longer the current one; look at it again "
            "(`carbonlake emissions show`) and delete the new result if it should go too"
        )
    return {
        "activity_event_id": activity_event_id,
        "root_id": root_id,
        "deleted_at": deleted_at,
        "deleted_by": deleted_by,
        "reason": reason,
        "lineage": {
            "node_id": node_id,
            "parent_id": parent_id,
            "action_taken": lineage.RECORD_DELETED,
            "storage_location": location,
            "object_sha256": sha,
            "node_hash": node_hash,
        },
        "removed": api_record(current),
    }
