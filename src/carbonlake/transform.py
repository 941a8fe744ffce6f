"""Transform (the spec's Glue job): split a raw CSV into typed Parquet batches.

The file is read a chunk of whole records at a time, typed column-wise and written
as ``transformed/<root_id>/part_NNNNN.parquet`` files of at most ``batch_size``
records (typed with :func:`batch_schema`), each written whole and renamed into
place, so visible only once complete. Typing:

- ``scope``: an integer;
- ``raw_data``: a float parsed from the cell's text (``103.45`` stays ``103.45``);
- ``geo``: the ``"[lat,long]"`` cell becomes ``{"lat": ..., "long": ...}``;
- every other column stays text. Cells that do not parse become null and the
  calculator reports those records as failed (nothing is dropped here).

The spec's documents are the task inputs and outputs, not the format of the files
between stages: :func:`read_batch_bytes` reads the Parquet batches and, for a batch
file given by hand (``tasks.calculate_co2e``) or left by an older workspace, a JSON
or JSON Lines one.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import itertools
import json
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import polars as pl

from . import csvfile
from ._exceptions import InputDataError
from .documents import EnumerateEvent, EnumerateOutput, TransformEvent
from .storage import Storage

JOB_NAME = "carbonlake-transform"
BATCH_SUFFIX = ".parquet"
"""The extension of the batch files the transform writes."""
PARQUET_MAGIC = b"PAR1"
"""The 4 bytes a Parquet file starts and ends with."""
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_GEO = rf"^\s*\[\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\]\s*$"


def batch_key(root_id: str, index: int) -> str:
    """The key of the ``index``-th batch file of a root."""
    return f"{root_id}/part_{index:05d}{BATCH_SUFFIX}"


def batch_index(location: str) -> int | None:
    """The index of a batch file named by :func:`batch_key` (None for other names);
    ``part_NNNNN.jsonl`` too, as workspaces made before Parquet batches hold."""
    match = re.fullmatch(r"part_(\d+)\.(?:parquet|jsonl)", location.rpartition("/")[2])
    return int(match.group(1)) if match else None


def enriched_name(batch_name: str) -> str:
    """The name of the enriched (Parquet) file of a batch file: ``part_00007.parquet``
    keeps its name; a ``.json`` or ``.jsonl`` batch (given by hand, or an older
    workspace's) gets ``.parquet`` instead."""
    for suffix in (".jsonl", ".json"):
        if batch_name.endswith(suffix):
            return batch_name.removesuffix(suffix) + BATCH_SUFFIX
    return batch_name


def enriched_key(batch_key: str) -> str:
    """The key in the enriched bucket of a batch file's key: :func:`enriched_name` of its
    name, in the same folder (``<root_id>/``)."""
    folder, _, name = batch_key.rpartition("/")
    return f"{folder}/{enriched_name(name)}" if folder else enriched_name(name)


def is_parquet(data: bytes) -> bool:
    """Whether these bytes are a Parquet file (its magic number at both ends)."""
    return len(data) >= 8 and data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """A frame as the bytes of one Parquet file (zstd, with column statistics)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def read_batch_bytes(
    data: bytes, location: str, schema_of: Callable[[list[str]], pl.Schema] | None = None
) -> pl.DataFrame:
    """The typed records of one batch file's content, by its content (or name).

    - Parquet (its magic number): read with the types it was written with;
    - a JSON array of records, or one JSON object (the spec's document, which may be
      pretty-printed): each object a record;
    - otherwise JSON Lines. ``schema_of`` gives the schema from the first line's keys
      for the transform's shape, which spares Polars inferring it from every line
      (about 4x faster); a file the schema does not fit is read again with inference.

    Raises :class:`InputDataError` naming ``location`` for anything else (a file named
    ``.parquet`` that is not one included).
    """
    if is_parquet(data):
        try:
            return pl.read_parquet(io.BytesIO(data))
        except pl.exceptions.PolarsError as exc:
            raise InputDataError(f"batch {location} is not a readable Parquet file: {exc}") from exc
    if location.endswith(BATCH_SUFFIX):
        raise InputDataError(
            f"batch {location} is named {BATCH_SUFFIX} but is not a Parquet file "
            "(no PAR1 magic number at its start and end)"
        )
    text = data.strip()
    if not text:
        return pl.DataFrame()
    if text[:1] == b"[":
        return _json_records(text, location)
    if schema_of is not None:
        try:
            first = text.split(b"\n", 1)[0]
            return pl.read_ndjson(io.BytesIO(text), schema=schema_of(list(json.loads(first))))
        except (pl.exceptions.PolarsError, ValueError, TypeError):
            pass  # not the transform's shape: infer, as for any other file
    try:
        return pl.read_ndjson(io.BytesIO(text), infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        if text[:1] == b"{":
            try:
                return _json_records(text, location)
            except InputDataError:
                pass
        raise InputDataError(
            f"batch {location} is not valid Parquet, JSON or JSON Lines: {exc}"
        ) from exc


def _json_records(text: bytes, location: str) -> pl.DataFrame:
    """One JSON document: an array of record objects, or one record object."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InputDataError(f"batch {location} is not valid JSON: {exc}") from exc
    records = [document] if isinstance(document, dict) else document
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputDataError(
            f"batch {location} is JSON but not a record object or an array of record objects"
        )
    if not records:
        return pl.DataFrame()
    try:
        return pl.read_ndjson(
            io.BytesIO("\n".join(json.dumps(r) for r in records).encode()),
            infer_schema_length=None,
        )
    except pl.exceptions.PolarsError as exc:
        raise InputDataError(f"batch {location} holds records Polars cannot type: {exc}") from exc


def typed(frame: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    """Cast the known columns of activity data to their types."""
    casts: list[pl.Expr] = []
    if "scope" in columns:
        casts.append(pl.col("scope").str.strip_chars().cast(pl.Int64, strict=False))
    if "raw_data" in columns:
        casts.append(pl.col("raw_data").str.strip_chars().cast(pl.Float64, strict=False))
    if "geo" in columns:
        casts.append(
            pl.struct(
                lat=pl.col("geo").str.extract(_GEO, 1).cast(pl.Float64),
                long=pl.col("geo").str.extract(_GEO, 2).cast(pl.Float64),
            ).alias("geo")
        )
    return frame.with_columns(casts) if casts else frame


def batch_schema(columns: list[str]) -> pl.Schema:
    """The schema of the batch files :func:`typed` gives for these columns."""
    types: dict[str, pl.DataType] = {
        "scope": pl.Int64(),
        "raw_data": pl.Float64(),
        "geo": pl.Struct({"lat": pl.Float64(), "long": pl.Float64()}),
    }
    return pl.Schema({column: types.get(column, pl.String()) for column in columns})


def _exact_batches(chunks: Iterator[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """Re-cut a stream of frames into frames of exactly ``size`` rows (the last may be short)."""
    carry: pl.DataFrame | None = None
    for chunk in chunks:
        carry = chunk if carry is None else pl.concat([carry, chunk], how="vertical")
        while carry.height >= size:
            yield carry.head(size)
            carry = carry.slice(size)
    if carry is not None and carry.height:
        yield carry


CHUNK_BYTES = 16 << 20
"""The split reads its file this many bytes (whole records) at a time."""


def _chunks(path: Path, columns: list[str], chunk_bytes: int) -> Iterator[pl.DataFrame]:
    """The typed records of a local CSV file, a chunk of about ``chunk_bytes`` at a time.

    Cut at record boundaries outside quotes (:func:`boundaries`), each chunk parsed
    on its own with the header in front: memory holds one chunk, whatever the size
    of the file (Polars' streaming CSV reader held 450-630 MiB of buffers here).
    """
    with path.open("rb") as handle:
        header = _header(handle)
        offsets = boundaries(handle, chunk_bytes)
        for start, end in itertools.pairwise(offsets):
            if end <= start:
                continue
            handle.seek(start)
            text = header + handle.read(end - start)
            yield typed(csvfile.records(csvfile.read_text(text), columns), columns).collect()


class WrittenBatch(NamedTuple):
    """One batch file the split wrote."""

    url: str
    records: int
    sha256: str
    """Of the bytes written (the batch's lineage node keeps it; not read back to hash)."""


WRITE_AHEAD = 32
"""The split writes its batch files this many at a time (:meth:`Storage.write_many`:
concurrently on an object store, where one file at a time waits a round trip each)."""


def split_path(
    path: Path,
    *,
    storage: Storage,
    batch_size: int,
    key_of: Callable[[int], str],
    chunk_bytes: int = CHUNK_BYTES,
) -> list[WrittenBatch]:
    """Write the typed batches of a local CSV file as Parquet files, each written whole
    and atomically (:meth:`Storage.write_many`); returns what was written, in order."""
    written: list[WrittenBatch] = []
    pending: list[tuple[str, bytes]] = []
    columns = csvfile.read_header(path)  # the rows the quality gate checked
    schema = batch_schema(columns)
    stream = _chunks(path, columns, max(chunk_bytes, 1))
    # One bulk write in flight on a thread while the next batches are parsed and encoded.
    with concurrent.futures.ThreadPoolExecutor(1, "carbonlake-split-write") as writes:
        in_flight: concurrent.futures.Future[None] | None = None
        for index, batch in enumerate(_exact_batches(stream, batch_size)):
            url = storage.url("transformed", key_of(index))
            data = parquet_bytes(batch.cast(schema))
            pending.append((url, data))
            written.append(WrittenBatch(url, batch.height, hashlib.sha256(data).hexdigest()))
            if len(pending) >= WRITE_AHEAD:
                if in_flight is not None:
                    in_flight.result()
                in_flight = writes.submit(storage.write_many, pending)
                pending = []
        if in_flight is not None:
            in_flight.result()
    storage.write_many(pending)
    return written


def split(
    raw_location: str, root_id: str, *, storage: Storage, batch_size: int
) -> list[WrittenBatch]:
    """Write the batches of one raw file."""
    with storage.local_path(raw_location) as path:
        return split_path(
            path,
            storage=storage,
            batch_size=batch_size,
            key_of=lambda index: batch_key(root_id, index),
        )


def _header(handle: IO[bytes]) -> bytes:
    """The header line (lines, if a quoted name holds a line break) from the start."""
    handle.seek(0)
    header = handle.readline()
    while header.count(b'"') % 2:  # a header with a quoted line break
        header += handle.readline()
    return header


def boundaries(handle: IO[bytes], chunk_bytes: int) -> list[int]:
    """Byte offsets that cut an open CSV file into chunks of about ``chunk_bytes``.

    The first offset is where the data starts (after the header); each one is
    the start of a line outside any quoted field (an even number of quotes before
    it), so no record is cut; the last is the end of the file. One streaming
    pass; nothing is held but a block.
    """
    handle.seek(0)
    return block_boundaries(iter(lambda: handle.read(_BLOCK), b""), chunk_bytes)


_BLOCK = 8 << 20


def block_boundaries(blocks: Iterable[bytes], chunk_bytes: int) -> list[int]:
    """:func:`boundaries` of a file given as its blocks, in order from its start."""
    offsets: list[int] = []
    quotes = 0  # quote characters before the current block
    position = 0  # offset of the current block
    wanted = 0  # the next cut is the first line start at or after this offset
    for block in blocks:
        counted, seen = 0, quotes  # quotes in block[:counted], and in the file before
        search = max(wanted - position, 0)
        while (newline := block.find(b"\n", search)) >= 0:
            seen += block.count(b'"', counted, newline)
            counted = newline
            if seen % 2 == 0:
                offsets.append(position + newline + 1)
                wanted = offsets[-1] + chunk_bytes
                search = max(wanted - position, newline + 1)
            else:
                search = newline + 1
        quotes += block.count(b'"')
        position += len(block)
    if not offsets:
        return [position, position]
    if offsets[-1] != position:
        offsets.append(position)
    return offsets


def sha256_and_boundaries(storage: Storage, url: str, chunk_bytes: int) -> tuple[str, list[int]]:
    """An object's SHA-256 and its :func:`boundaries`, in one streaming read (a large file
    on an object store is read once for both)."""
    digest = hashlib.sha256()

    def hashed(handle: IO[bytes]) -> Iterator[bytes]:
        while block := handle.read(_BLOCK):
            digest.update(block)
            yield block

    with storage.open_read(url) as handle:
        offsets = block_boundaries(hashed(handle), max(1, chunk_bytes))
    return digest.hexdigest(), offsets


def chunk_boundaries(storage: Storage, raw_location: str, chunk_bytes: int) -> list[int]:
    """:func:`boundaries` of a raw file in storage."""
    with storage.open_read(raw_location) as handle:
        return boundaries(handle, chunk_bytes)


def split_chunk(
    raw_location: str,
    root_id: str,
    chunk: int,
    start: int,
    end: int,
    *,
    storage: Storage,
    batch_size: int,
) -> list[WrittenBatch]:
    """Split one byte range of a raw file (a worker's share) into its own batch files,
    ``part_CCCC_NNNNN.parquet``."""
    # Ranged reads: a buffered remote file's readline fetched a whole block (50 MiB on
    # S3) for the header line, about 3 s of each worker's split at 1m rows.
    probe = storage.read_range(raw_location, 0, HEADER_PROBE)
    header = _header(io.BytesIO(probe))
    if len(header) == len(probe) == HEADER_PROBE:  # a header longer than the probe
        with storage.open_read(raw_location) as handle:
            header = _header(handle)
    data = storage.read_range(raw_location, start, end)
    with tempfile.TemporaryDirectory(prefix="carbonlake-chunk-") as tmp:
        path = Path(tmp) / "chunk.csv"
        path.write_bytes(header + data)
        return split_path(
            path,
            storage=storage,
            batch_size=batch_size,
            key_of=lambda index: f"{root_id}/part_{chunk:04d}_{index:05d}{BATCH_SUFFIX}",
        )


HEADER_PROBE = 1 << 16
"""A worker reads this many bytes from a raw file's start to find its header."""

ChunkRange = tuple[int, int, int]
"""``(chunk, start, end)``: one byte range of a raw file, split by one worker."""

ChunkMapper = Callable[[list[ChunkRange]], list[WrittenBatch]]
"""Splits each range (:func:`split_chunk`, on workers) and returns the batches of all of
them, in order."""


def run(
    event: TransformEvent,
    *,
    storage: Storage,
    batch_size: int,
    raw_location: str,
    chunk_bytes: int = 0,
    map_chunks: ChunkMapper | None = None,
    offsets: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The spec's Glue job: ``{"JobName", "Arguments": {"--UNIQUE_DIRECTORY"}}`` in.

    Returns ``{"job_name", "job_id", "job_state"}`` plus ``batches``, ``records`` and
    ``batch_records`` for the execution's summary, and ``batch_sha256`` (each batch
    file's, in order) for its lineage. With ``map_chunks`` the split is spread over
    workers, one range of about ``chunk_bytes`` bytes each (the output then says how
    many ``chunks``). ``offsets``: the raw file's :func:`boundaries` when already known.
    """
    arguments = event.get("Arguments") or {}
    root_id = arguments.get("--UNIQUE_DIRECTORY")
    if not root_id:
        raise InputDataError("transform needs Arguments['--UNIQUE_DIRECTORY'] (the root_id)")
    job_name = event.get("JobName") or JOB_NAME
    extra: dict[str, Any] = {}
    if map_chunks is None:
        written = split(raw_location, root_id, storage=storage, batch_size=batch_size)
    else:
        if offsets is None:
            offsets = chunk_boundaries(storage, raw_location, max(1, chunk_bytes))
        ranges = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(offsets)) if b > a]
        written = [WrittenBatch(*batch) for batch in map_chunks(ranges)]
        extra["chunks"] = len(ranges)
    return {
        "job_name": job_name,
        "job_id": f"jr_{uuid.uuid4().hex}",
        "job_state": "SUCCEEDED",
        "batches": len(written),
        "records": sum(batch.records for batch in written),
        "batch_records": [batch.records for batch in written],
        "batch_sha256": [batch.sha256 for batch in written],
        **extra,
    }


def enumerate_batches(event: EnumerateEvent, *, storage: Storage) -> EnumerateOutput:
    """The spec's enumerate step: one generated ``node_id`` per batch file of a root."""
    directory = event.get("batch_location_dir")
    if not directory:
        raise InputDataError("enumerate batches needs 'batch_location_dir' (the root_id)")
    return {
        "batches": [
            {"node_id": str(uuid.uuid4()), "storage_location": url}
            for url in storage.list("transformed", str(directory).strip("/") + "/")
        ]
    }
