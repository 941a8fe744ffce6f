"""The lineage writer: the spec's lineage requests become hashed ledger nodes.

Every request of the spec becomes ledger nodes keyed by (``root_id``,
``node_id``). File-level nodes get a generated ``node_id`` and the SHA-256 of
the object at their ``storage_location``; record nodes use the record's
``activity_event_id`` and keep its row number in the input file. Stages hand
nodes to a :class:`LineageWriter`, which hashes each node together with its
parent's hash (:mod:`carbonlake.lineage.nodes`) and inserts them in batches
(never one transaction per record), like the original system's queue in front
of its ledger table.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import LineageError, StorageError
from ..database import LINEAGE_COLUMNS, Database, utc_now
from ..documents import BatchRef, LineageOutput, LineageRequest, RecordRef
from ..storage import Storage

if TYPE_CHECKING:
    import polars as pl

from .nodes import (
    ACTIONS,
    FILE_ACTIONS,
    GLUE_BATCH_SPLIT,
    RAW_DATA_INPUT,
    RECORD_ACTIONS,
    _sibling_hashes,
    new_node_id,
    sibling_hash_column,
    sibling_template,
)


@dataclass(frozen=True)
class RecordNodes:
    """Record nodes sharing a parent, an action and a location (a batch's records), for
    :meth:`LineageWriter.record_nodes`."""

    node_ids: Sequence[str]
    parent_id: str
    action_taken: str
    storage_location: str | None
    object_sha256: str | None
    row_numbers: Sequence[int | None]


_SHARED = (
    "root_id",
    "parent_id",
    "action_taken",
    "storage_location",
    "recorded_at",
    "object_sha256",
    "parent_hash",
)
"""The fields of a :class:`RecordNodes` group's nodes that its nodes share."""


class LineageWriter:
    """Hashes lineage nodes, buffers them and inserts them in batches; thread-safe.

    Parents must be added before their children (the pipeline does): the writer
    keeps the hashes of the file and batch nodes it wrote to chain children to
    them, and looks older parents up in the ledger. Call :meth:`flush` before
    reporting an execution finished: only then is everything durable.
    """

    def __init__(self, database: Database, storage: Storage, batch_size: int = 50_000) -> None:
        self._database = database
        self.storage = storage
        self._batch_size = batch_size
        self._buffer: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._parent_hashes: dict[tuple[str, str], str] = {}
        self.written = 0

    def object_sha256(self, location: str, action: str) -> str:
        """The SHA-256 of the object a node is about to point at."""
        try:
            return self.storage.sha256(location)
        except StorageError as exc:
            raise LineageError(
                f"cannot record {action} for {location}: {exc}. A lineage node points at an "
                "object that exists in this workspace's storage, whose SHA-256 it keeps."
            ) from exc

    def remember(self, nodes: Iterable[dict[str, Any]]) -> None:
        """Keep the hashes of nodes read from the ledger (parents of nodes about to be
        added), so that adding their children does not look each parent up."""
        with self._lock:
            for node in nodes:
                self._parent_hashes[(node["root_id"], node["node_id"])] = node["node_hash"]

    def _parent_hash(self, root_id: str, parent_id: str, action: str) -> str | None:
        if action == RAW_DATA_INPUT:
            return None
        with self._lock:
            known = self._parent_hashes.get((root_id, parent_id))
        if known is not None:
            return known
        parent = self._database.lineage_node(root_id, parent_id)
        if parent is None:
            raise LineageError(
                f"cannot record {action} under parent {parent_id}: no such node under root_id "
                f"{root_id}. Record the parent node first."
            )
        stored: str | None = parent["node_hash"]
        if stored is not None:  # a node's hash never changes: its next child needs no query
            with self._lock:
                self._parent_hashes[(root_id, parent_id)] = stored
        return stored

    def add(
        self,
        root_id: str,
        node_id: str,
        parent_id: str,
        action_taken: str,
        storage_location: str | None,
        *,
        object_sha256: str | None = None,
        row_number: int | None = None,
        recorded_at: str | None = None,
    ) -> str:
        """Queue one node; returns its hash. ``recorded_at`` defaults to now."""
        return self.add_many(
            root_id,
            [node_id],
            parent_id,
            action_taken,
            storage_location,
            object_sha256=object_sha256,
            row_numbers=[row_number],
            recorded_at=recorded_at,
        )[0]

    def add_many(
        self,
        root_id: str,
        node_ids: Sequence[str],
        parent_id: str,
        action_taken: str,
        storage_location: str | None,
        *,
        object_sha256: str | None = None,
        row_numbers: Sequence[int | None] | None = None,
        recorded_at: str | None = None,
    ) -> list[str]:
        """Queue nodes sharing a parent, an action and a location (a batch's records).

        Returns their hashes, in order. ``recorded_at`` defaults to now.
        """
        if row_numbers is None:
            row_numbers = [None] * len(node_ids)
        elif len(row_numbers) != len(node_ids):
            raise LineageError(
                f"{len(node_ids)} {action_taken} nodes were given {len(row_numbers)} row numbers"
            )
        parent_hash = self._parent_hash(root_id, parent_id, action_taken)
        now = recorded_at or utc_now()
        hashes = _sibling_hashes(
            root_id,
            node_ids,
            parent_id,
            action_taken,
            storage_location,
            now,
            object_sha256,
            row_numbers,
            parent_hash,
        )
        rows = [
            (
                root_id,
                n,
                parent_id,
                action_taken,
                storage_location,
                now,
                object_sha256,
                r,
                h,
                parent_hash,
            )
            for n, r, h in zip(node_ids, row_numbers, hashes, strict=True)
        ]
        with self._lock:
            if action_taken not in RECORD_ACTIONS:
                # Only file and batch nodes have children; records never do.
                for n, h in zip(node_ids, hashes, strict=True):
                    self._parent_hashes[(root_id, n)] = h
            self._buffer.extend(rows)
            full = len(self._buffer) >= self._batch_size
        if full:
            self.flush()
        return hashes

    def record_nodes(
        self, root_id: str, groups: Sequence[RecordNodes], recorded_at: str | None = None
    ) -> pl.DataFrame:
        """Record nodes, hashed as :meth:`add_many` hashes them, as columns
        (LINEAGE_COLUMNS) instead of queued rows: for the lineage table's files, which
        take them column-wise. One frame and one hashing pass for all ``groups``, none a
        Python tuple per record. ``recorded_at`` defaults to now (each group's own)."""
        import polars as pl

        node_ids: list[str] = []
        row_numbers: list[int | None] = []
        counts: list[int] = []
        fields: list[tuple[str | None, ...]] = []
        for group in groups:
            action = group.action_taken
            if action not in RECORD_ACTIONS:
                raise LineageError(f"{action} nodes are not record nodes")
            if len(group.row_numbers) != len(group.node_ids):
                raise LineageError(
                    f"{len(group.node_ids)} {action} nodes were given "
                    f"{len(group.row_numbers)} row numbers"
                )
            node_ids += group.node_ids
            row_numbers += group.row_numbers
            counts.append(len(group.node_ids))
            now = recorded_at or utc_now()
            parent_hash = self._parent_hash(root_id, group.parent_id, action)
            location, sha = group.storage_location, group.object_sha256
            shared = (root_id, group.parent_id, action, location, now, sha, parent_hash)
            template = sibling_template(
                root_id, group.parent_id, action, location, now, sha, parent_hash
            )
            fields.append((*shared, *template))
        # The fields each group's nodes share: one row per group, repeated for its nodes
        # (one gather, not a column built per group).
        schema = dict.fromkeys((*_SHARED, "head", "middle", "tail"), pl.String)
        groups_frame = pl.DataFrame(fields, schema=schema, orient="row")
        which = pl.Series(
            itertools.chain.from_iterable(map(itertools.repeat, range(len(counts)), counts)),
            dtype=pl.UInt32,
        )
        nodes = groups_frame.select(pl.all().gather(which)).with_columns(
            pl.Series("node_id", node_ids, dtype=pl.String),
            pl.Series("row_number", row_numbers, dtype=pl.Int64),
        )
        return nodes.with_columns(sibling_hash_column(nodes)).select(LINEAGE_COLUMNS)

    def take(self) -> list[tuple[Any, ...]]:
        """Remove and return the queued rows, to commit them with a checkpoint."""
        with self._lock:
            rows, self._buffer = self._buffer, []
        return rows

    def flush(self) -> None:
        """Write everything queued so far, in the order it was queued."""
        # One flush at a time keeps the ledger's insertion order that of the queue.
        with self._flush_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if rows:
                self._database.insert_lineage(rows)
                self.written += len(rows)


# -- requests of the spec ----------------------------------------------------------


def _require(request: Mapping[str, Any], key: str) -> Any:
    value = request.get(key)
    if value in (None, ""):
        action = request.get("action_taken", "?")
        raise LineageError(f"lineage request {action} lacks {key!r}; got keys {sorted(request)}")
    return value


def _row_number(record: Mapping[str, Any], action: str) -> int | None:
    value = record.get("row_number")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LineageError(
            f"{action} record {record.get('node_id')!r} has row_number {value!r}; "
            "it must be a positive integer (1 = the first row after the header)"
        )
    return value


def record_request(
    request: LineageRequest | Mapping[str, Any],
    writer: LineageWriter,
    *,
    written: bytes | None = None,
    known_sha256: Mapping[str, str] | None = None,
) -> LineageOutput:
    """Turn one lineage request of the spec into ledger nodes; returns the spec's output.

    Beyond the spec, ``PROFILE_COMPLETE`` is accepted (a file-level request like
    ``DQ_CHECK_PASS``, pointing at the data-quality report) and each record of a
    ``CALCULATION_*`` request may carry its ``row_number`` in the input file.
    ``written``: the bytes the caller has just written, whole and atomically, to the
    request's ``storage_location``; their SHA-256 is the object's, so the object is
    not read back to hash it. ``known_sha256``: the SHA-256, by location, of objects the
    caller has just written or hashed (the split's batch files, the landed input), which
    are not read again either. The request is checked here, key by key, as it may come
    from outside (the ``data_lineage`` task); hence any mapping is taken.
    """
    fields: Mapping[str, Any] = request
    known = known_sha256 or {}
    action = _require(fields, "action_taken")
    root_id = _require(fields, "root_id")
    parent_id = _require(fields, "parent_id")
    if action not in ACTIONS:
        raise LineageError(f"unknown action_taken {action!r}; known: {', '.join(ACTIONS)}")

    if action in FILE_ACTIONS:
        record = fields.get("record") or {}
        location = record.get("storage_location") or fields.get("storage_location")
        if not location:
            raise LineageError(f"lineage request {action} lacks record.storage_location")
        if action == RAW_DATA_INPUT and parent_id != root_id:
            raise LineageError(
                f"RAW_DATA_INPUT is the first node of a file: its parent_id must equal "
                f"root_id {root_id}, got {parent_id}"
            )
        node_id = new_node_id()
        sha = known.get(location) or writer.object_sha256(location, action)
        writer.add(root_id, node_id, parent_id, action, location, object_sha256=sha)
        return {
            "data_lineage": {
                "root_id": root_id,
                "action_taken": action,
                "storage_location": location,
                "node_id": node_id,
            }
        }

    records = fields.get("records")
    if not isinstance(records, list):
        raise LineageError(f"lineage request {action} needs a 'records' list")

    if action == GLUE_BATCH_SPLIT:
        out: list[BatchRef] = []
        for batch in records:
            if not isinstance(batch, dict):
                raise LineageError(f"GLUE_BATCH_SPLIT batch {batch!r} is not an object")
            node_id = batch.get("node_id") or new_node_id()
            location = batch.get("storage_location")
            if not location:
                raise LineageError(f"GLUE_BATCH_SPLIT batch {node_id} lacks storage_location")
            sha = known.get(location) or writer.object_sha256(location, action)
            writer.add(root_id, node_id, parent_id, action, location, object_sha256=sha)
            out.append({"node_id": node_id, "storage_location": location})
        return {"data_lineage": {"root_id": root_id, "action_taken": action, "records": out}}

    location = _require(fields, "storage_location")
    node_ids: list[str] = []
    row_numbers: list[int | None] = []
    for record in records:
        record_node = record.get("node_id") if isinstance(record, dict) else None
        if not record_node:
            raise LineageError(f"{action} request has a record without node_id: {record!r}")
        node_ids.append(str(record_node))
        row_numbers.append(_row_number(record, action))
    if written is not None:
        sha = hashlib.sha256(written).hexdigest()
    else:
        sha = writer.object_sha256(location, action)
    writer.add_many(
        root_id,
        node_ids,
        parent_id,
        action,
        location,
        object_sha256=sha,
        row_numbers=row_numbers,
    )
    nodes: list[RecordRef] = [{"node_id": n} for n in node_ids]
    return {
        "data_lineage": {
            "root_id": root_id,
            "action_taken": action,
            "storage_location": location,
            "records": nodes,
        }
    }


def with_row_numbers(
    records: Iterable[Mapping[str, Any]], row_numbers: dict[str, int]
) -> list[dict[str, Any]]:
    """The records of a ``CALCULATION_*`` request with each one's ``row_number`` added."""
    out = []
    for record in records:
        node_id = str(record["node_id"])
        row = row_numbers.get(node_id)
        out.append({**record, "row_number": row} if row is not None else dict(record))
    return out
