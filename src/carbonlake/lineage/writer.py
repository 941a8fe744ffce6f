"""Data lineage: the spec's lineage requests, the hashed ledger writer and queries.

Every request of the spec becomes ledger nodes keyed by (``root_id``,
``node_id``). File-level nodes get a generated ``node_id`` and the SHA-256 of
the object at their ``storage_location``; record nodes use the record's
``activity_event_id`` and keep its row number in the input file. Stages hand
nodes to a :class:`LineageWriter`, which hashes each node together with its
parent's hash and inserts them in batches (never one transaction per record),
like the original system's queue in front of its ledger table.

The node hash is SHA-256 over :func:`canonical_node`: a JSON object with sorted
keys, no whitespace and UTF-8 text (RFC 8785 for these string, integer and null
fields) of the node's fields and its parent's hash. ``docs/lineage.md`` says
how to recompute it; :mod:`carbonlake.lineage.verify` does.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from .._exceptions import LineageError, StorageError
from ..database import LINEAGE_COLUMNS, Database, utc_now
from ..database import RECORD_NODES as RECORD_NODES
from ..storage import Storage

RAW_DATA_INPUT = "RAW_DATA_INPUT"
PROFILE_COMPLETE = "PROFILE_COMPLETE"
DQ_CHECK_PASS = "DQ_CHECK_PASS"
DQ_CHECK_FAIL = "DQ_CHECK_FAIL"
GLUE_BATCH_SPLIT = "GLUE_BATCH_SPLIT"
CALCULATION_COMPLETE = "CALCULATION_COMPLETE"
CALCULATION_FAILED = "CALCULATION_FAILED"
RECALCULATION = "RECALCULATION"
"""A record's result recomputed with another factor set, under the node it replaces."""
RECORD_DELETED = "RECORD_DELETED"
"""A record's result deleted by an admin (a tombstone), under the node of that result; its
``storage_location`` is the deletion note (who, when, why), whose SHA-256 it keeps."""

FILE_ACTIONS = (RAW_DATA_INPUT, PROFILE_COMPLETE, DQ_CHECK_PASS, DQ_CHECK_FAIL)
"""Actions of one node per request, for one object (``record.storage_location``)."""
RECORD_FOLLOW_UPS = (RECALCULATION, RECORD_DELETED)
"""Record actions that hang under a record's earlier node, not under a batch."""
RECORD_ACTIONS = (CALCULATION_COMPLETE, CALCULATION_FAILED, *RECORD_FOLLOW_UPS)
"""Actions of one node per record; ``node_id`` is the record's ``activity_event_id`` (with
a ``#failed-<n>``, ``#recalc-<id>`` or ``#deleted-<n>`` suffix for the later ones)."""
SEALED_ACTIONS = (CALCULATION_COMPLETE, CALCULATION_FAILED)
"""Record actions whose nodes the pipeline writes to columnar files of the lineage table,
each file sealed by a ``RECORD_NODES`` ledger node (the spec's lineage requests still add
them to the ledger's own rows)."""
TERMINAL_ACTIONS = (CALCULATION_COMPLETE, CALCULATION_FAILED, DQ_CHECK_FAIL)
"""Where a trail ends: one line each in the trace archive."""
ACTIONS = (*FILE_ACTIONS, GLUE_BATCH_SPLIT, *RECORD_ACTIONS)
"""The actions of the spec's lineage requests."""
LEDGER_ACTIONS = (*ACTIONS, RECORD_NODES)
"""Every action a ledger node may have."""

PARENT_ACTIONS: dict[str, tuple[str, ...]] = {
    RECALCULATION: (CALCULATION_COMPLETE, RECALCULATION),
    RECORD_DELETED: (CALCULATION_COMPLETE, RECALCULATION),
    PROFILE_COMPLETE: (RAW_DATA_INPUT,),
    # The spec's own requests go straight from RAW_DATA_INPUT to the DQ verdict.
    DQ_CHECK_PASS: (PROFILE_COMPLETE, RAW_DATA_INPUT),
    DQ_CHECK_FAIL: (PROFILE_COMPLETE, RAW_DATA_INPUT),
    GLUE_BATCH_SPLIT: (DQ_CHECK_PASS,),
    CALCULATION_COMPLETE: (GLUE_BATCH_SPLIT,),
    CALCULATION_FAILED: (GLUE_BATCH_SPLIT,),
    RECORD_NODES: (DQ_CHECK_PASS,),
}
"""The action a node's parent must have (``RAW_DATA_INPUT`` has no parent node)."""

NODE_FIELDS = (*LINEAGE_COLUMNS,)
"""The fields of a node as the queries return them."""


def new_node_id() -> str:
    """A globally unique id for a file-level or batch lineage node."""
    return str(uuid.uuid4())


# -- hashing -----------------------------------------------------------------------


def _text(value: str | None) -> str:
    return "null" if value is None else str(encode_basestring(value))


def _integer(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def canonical_node(
    root_id: str,
    node_id: str,
    parent_id: str,
    action_taken: str,
    storage_location: str | None,
    recorded_at: str,
    object_sha256: str | None,
    row_number: int | None,
    parent_hash: str | None,
) -> bytes:
    """The bytes a node's hash is computed over.

    Equal to ``json.dumps(fields, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False).encode()`` of the nine fields, written out by hand
    because the writer hashes a million of them.
    """
    return (
        f'{{"action_taken":{_text(action_taken)},"node_id":{_text(node_id)},'
        f'"object_sha256":{_text(object_sha256)},"parent_hash":{_text(parent_hash)},'
        f'"parent_id":{_text(parent_id)},"recorded_at":{_text(recorded_at)},'
        f'"root_id":{_text(root_id)},"row_number":{_integer(row_number)},'
        f'"storage_location":{_text(storage_location)}}}'
    ).encode()


def node_hash(
    root_id: str,
    node_id: str,
    parent_id: str,
    action_taken: str,
    storage_location: str | None,
    recorded_at: str,
    object_sha256: str | None,
    row_number: int | None,
    parent_hash: str | None,
) -> str:
    """Hex SHA-256 of a node's canonical encoding (its fields and its parent's hash)."""
    return hashlib.sha256(
        canonical_node(
            root_id,
            node_id,
            parent_id,
            action_taken,
            storage_location,
            recorded_at,
            object_sha256,
            row_number,
            parent_hash,
        )
    ).hexdigest()


def sibling_template(
    root_id: str,
    parent_id: str,
    action_taken: str,
    storage_location: str | None,
    recorded_at: str,
    object_sha256: str | None,
    parent_hash: str | None,
) -> tuple[str, str, str]:
    """The canonical encoding of nodes sharing all fields but ``node_id`` and ``row_number``,
    as ``(head, middle, tail)``: ``head + json(node_id) + middle + json(row_number) + tail``."""
    head = f'{{"action_taken":{_text(action_taken)},"node_id":'
    middle = (
        f',"object_sha256":{_text(object_sha256)},"parent_hash":{_text(parent_hash)},'
        f'"parent_id":{_text(parent_id)},"recorded_at":{_text(recorded_at)},'
        f'"root_id":{_text(root_id)},"row_number":'
    )
    tail = f',"storage_location":{_text(storage_location)}}}'
    return head, middle, tail


def sibling_hash(template: tuple[str, str, str], node_id: str, row_number: int | None) -> str:
    """:func:`node_hash` of one node of a :func:`sibling_template`."""
    head, middle, tail = template
    encoded = f"{head}{encode_basestring(node_id)}{middle}{_integer(row_number)}{tail}"
    return hashlib.sha256(encoded.encode()).hexdigest()


def _sibling_hashes(
    root_id: str,
    node_ids: Sequence[str],
    parent_id: str,
    action_taken: str,
    storage_location: str | None,
    recorded_at: str,
    object_sha256: str | None,
    row_numbers: Sequence[int | None],
    parent_hash: str | None,
) -> list[str]:
    """:func:`node_hash` of many nodes that differ only in ``node_id`` and ``row_number``."""
    head, middle, tail = sibling_template(
        root_id, parent_id, action_taken, storage_location, recorded_at, object_sha256, parent_hash
    )
    sha256 = hashlib.sha256
    return [
        sha256(f"{head}{encode_basestring(n)}{middle}{_integer(r)}{tail}".encode()).hexdigest()
        for n, r in zip(node_ids, row_numbers, strict=True)
    ]


# -- the writer --------------------------------------------------------------------


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


def _require(request: dict[str, Any], key: str) -> Any:
    value = request.get(key)
    if value in (None, ""):
        action = request.get("action_taken", "?")
        raise LineageError(f"lineage request {action} lacks {key!r}; got keys {sorted(request)}")
    return value


def _row_number(record: dict[str, Any], action: str) -> int | None:
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
    request: dict[str, Any], writer: LineageWriter, *, written: bytes | None = None
) -> dict[str, Any]:
    """Turn one lineage request of the spec into ledger nodes; returns the spec's output.

    Beyond the spec, ``PROFILE_COMPLETE`` is accepted (a file-level request like
    ``DQ_CHECK_PASS``, pointing at the data-quality report) and each record of a
    ``CALCULATION_*`` request may carry its ``row_number`` in the input file.
    ``written``: the bytes the caller has just written, whole and atomically, to the
    request's ``storage_location``; their SHA-256 is the object's, so the object is
    not read back to hash it.
    """
    action = _require(request, "action_taken")
    root_id = _require(request, "root_id")
    parent_id = _require(request, "parent_id")
    if action not in ACTIONS:
        raise LineageError(f"unknown action_taken {action!r}; known: {', '.join(ACTIONS)}")

    if action in FILE_ACTIONS:
        record = request.get("record") or {}
        location = record.get("storage_location") or request.get("storage_location")
        if not location:
            raise LineageError(f"lineage request {action} lacks record.storage_location")
        if action == RAW_DATA_INPUT and parent_id != root_id:
            raise LineageError(
                f"RAW_DATA_INPUT is the first node of a file: its parent_id must equal "
                f"root_id {root_id}, got {parent_id}"
            )
        node_id = new_node_id()
        sha = writer.object_sha256(location, action)
        writer.add(root_id, node_id, parent_id, action, location, object_sha256=sha)
        return {
            "data_lineage": {
                "root_id": root_id,
                "action_taken": action,
                "storage_location": location,
                "node_id": node_id,
            }
        }

    records = request.get("records")
    if not isinstance(records, list):
        raise LineageError(f"lineage request {action} needs a 'records' list")

    if action == GLUE_BATCH_SPLIT:
        out = []
        for batch in records:
            if not isinstance(batch, dict):
                raise LineageError(f"GLUE_BATCH_SPLIT batch {batch!r} is not an object")
            node_id = batch.get("node_id") or new_node_id()
            location = batch.get("storage_location")
            if not location:
                raise LineageError(f"GLUE_BATCH_SPLIT batch {node_id} lacks storage_location")
            sha = writer.object_sha256(location, action)
            writer.add(root_id, node_id, parent_id, action, location, object_sha256=sha)
            out.append({"node_id": node_id, "storage_location": location})
        return {"data_lineage": {"root_id": root_id, "action_taken": action, "records": out}}

    location = _require(request, "storage_location")
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
    return {
        "data_lineage": {
            "root_id": root_id,
            "action_taken": action,
            "storage_location": location,
            "records": [{"node_id": n} for n in node_ids],
        }
    }


def with_row_numbers(
    records: Iterable[dict[str, Any]], row_numbers: dict[str, int]
) -> list[dict[str, Any]]:
    """The records of a ``CALCULATION_*`` request with each one's ``row_number`` added."""
    out = []
    for record in records:
        node_id = str(record["node_id"])
        row = row_numbers.get(node_id)
        out.append({**record, "row_number": row} if row is not None else dict(record))
    return out


# -- questions ---------------------------------------------------------------------


FAILED_ATTEMPT = "#failed-"
"""A ``CALCULATION_FAILED`` node of a record is named ``<activity_event_id>#failed-<n>``
(attempt n), leaving the record's own id for the ``CALCULATION_COMPLETE`` node a
redrive may still write; :func:`trace` finds them by the record's id."""


def record_id_of(node_id: str, action_taken: str) -> str:
    """The record (``activity_event_id``) a record node is about: its ``node_id``, less
    the ``#failed-<n>`` of a failed attempt."""
    if action_taken == CALCULATION_FAILED:
        head, sep, attempt = node_id.rpartition(FAILED_ATTEMPT)
        if sep and attempt.isdigit():
            return head
    return node_id


def _locate(database: Database, node_id: str, root_id: str | None) -> tuple[str, str]:
    """(root_id, node_id) of the node asked for or, for a record that only failed, of
    its latest failed attempt."""
    roots = [root_id] if root_id else database.lineage_roots_of_node(node_id)
    if root_id and database.lineage_node(root_id, node_id) is None:
        roots = []
    if not roots:
        attempts = [
            (root, node)
            for root, node in database.lineage_nodes_with_prefix(node_id + FAILED_ATTEMPT)
            if root_id is None or root == root_id
        ]
        latest = {root: node for root, node in attempts}
        roots = list(latest)
        if len(roots) == 1:
            return roots[0], latest[roots[0]]
    if not roots:
        where = f" under root_id {root_id}" if root_id else " in the ledger"
        raise LineageError(f"no lineage node {node_id!r}{where}")
    if len(roots) > 1:
        raise LineageError(
            f"node {node_id!r} appears under {len(roots)} root_ids ({', '.join(roots)}); "
            "pick one with --root ROOT_ID"
        )
    return roots[0], node_id


def trace(database: Database, node_id: str, root_id: str | None = None) -> list[dict[str, Any]]:
    """The chain of nodes from ``RAW_DATA_INPUT`` down to ``node_id``.

    A missing parent ends the chain where it breaks instead of failing, so a
    damaged ledger still shows what exists; the first node's ``parent_id`` then
    points at the missing node.
    """
    root, found = _locate(database, node_id, root_id)
    node = database.lineage_node(root, found)
    if node is None:
        raise LineageError(f"no lineage node {node_id!r} under root_id {root}")
    chain = [node]
    seen = {found}
    while node["action_taken"] != RAW_DATA_INPUT:
        parent = database.lineage_node(root, node["parent_id"])
        if parent is None or parent["node_id"] in seen:
            break
        seen.add(parent["node_id"])
        chain.append(parent)
        node = parent
    chain.reverse()
    return chain


def trail(database: Database, node_id: str, root_id: str | None = None) -> dict[str, Any]:
    """A record's whole answer: its trace, its row in the input file and its current result.

    ``{"record_id", "root_id", "row_number", "complete", "missing_node_id",
    "lineage": [nodes from RAW_DATA_INPUT down], "emission": {...} | None}``;
    ``complete`` is false where the chain breaks before ``RAW_DATA_INPUT`` and
    ``missing_node_id`` then names the node that is not in the ledger.
    """
    root, _ = _locate(database, node_id, root_id)
    chain = trace(database, node_id, root)
    complete = chain[0]["action_taken"] == RAW_DATA_INPUT
    emission = None
    if chain[-1]["action_taken"] == CALCULATION_COMPLETE:
        current = database.emission(chain[-1]["node_id"])
        if current is not None and current.get("root_id") == root:
            emission = {
                key: current[key]
                for key in (
                    "co2_tonnes",
                    "ch4_tonnes",
                    "n2o_tonnes",
                    "co2e_ar4_tonnes",
                    "co2e_ar5_tonnes",
                    "co2e_ar6_tonnes",
                    "factor_id",
                    "factor_set",
                    "factor_version",
                    "enriched_location",
                    "calculated_at",
                )
                if key in current
            }
    return {
        "record_id": node_id,
        "root_id": root,
        "row_number": chain[-1].get("row_number"),
        "complete": complete,
        "missing_node_id": None if complete else chain[0]["parent_id"],
        "lineage": chain,
        "emission": emission,
    }


def tree(database: Database, root_id: str) -> list[dict[str, Any]]:
    """Every node of one input file, in the order they were recorded."""
    nodes = database.lineage_of_root(root_id)
    if not nodes:
        raise LineageError(f"no lineage recorded for root_id {root_id}")
    return nodes


@dataclass
class OutlineNode:
    """One file or batch node of a tree outline, with its children folded to counts."""

    node: dict[str, Any]
    children: list[OutlineNode] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    """The first few record nodes under this node."""
    record_counts: dict[str, int] = field(default_factory=dict)
    """All record nodes under this node, by action."""
    folded_children: int = 0
    """Children beyond the ones shown (batches, when there are many)."""
    folded_record_counts: dict[str, int] = field(default_factory=dict)
    """Record nodes under the folded children, by action."""
    missing: bool = False
    """A stand-in for a parent that is not in the ledger."""
    later_counts: dict[str, int] = field(default_factory=dict)
    """On a file's first node: record nodes that hang under records' results
    (RECALCULATION, RECORD_DELETED), by action."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready nested document."""
        document: dict[str, Any] = dict(self.node)
        if self.missing:
            document["missing"] = True
        if self.later_counts:
            document["later_record_counts"] = dict(sorted(self.later_counts.items()))
        document["record_counts"] = dict(sorted(self.record_counts.items()))
        document["records"] = self.records
        document["children"] = [child.to_dict() for child in self.children]
        if self.folded_children:
            document["folded_children"] = self.folded_children
            document["folded_record_counts"] = dict(sorted(self.folded_record_counts.items()))
        return document


def _row_tuple_to_node(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(NODE_FIELDS, row[1:], strict=True))


def outline(
    database: Database, root_id: str, max_records: int = 3, max_children: int = 20
) -> list[OutlineNode]:
    """The tree of one root without loading its record nodes: file and batch nodes in
    full, records as counts plus the first ``max_records`` of each batch.

    Nodes whose parent is missing become extra top-level entries under a stand-in
    marked ``missing``, so a damaged ledger still shows everything it holds.
    """
    file_nodes = [
        _row_tuple_to_node(row)
        for row in database.iter_lineage(root_id, exclude_actions=RECORD_ACTIONS)
    ]
    counts = database.lineage_child_counts(root_id)
    if not file_nodes and not counts:
        raise LineageError(f"no lineage recorded for root_id {root_id}")
    # Nodes under records' results (RECALCULATION, RECORD_DELETED) are counted for the
    # whole file: their parents are record nodes, one each, which the outline does not load.
    first_records = database.lineage_first_children(
        root_id, (CALCULATION_COMPLETE, CALCULATION_FAILED), max_records
    )
    later: dict[str, int] = {}

    entries = {n["node_id"]: OutlineNode(n) for n in file_nodes}
    tops: list[OutlineNode] = []
    missing: dict[str, OutlineNode] = {}

    def holder(parent_id: str) -> OutlineNode:
        if parent_id in entries:
            return entries[parent_id]
        if parent_id not in missing:
            stand_in = OutlineNode(
                {"node_id": parent_id, "action_taken": None, "root_id": root_id}, missing=True
            )
            missing[parent_id] = stand_in
            tops.append(stand_in)
        return missing[parent_id]

    for n in file_nodes:
        if n["action_taken"] == RAW_DATA_INPUT or n["parent_id"] == n["node_id"]:
            tops.append(entries[n["node_id"]])
        else:
            holder(n["parent_id"]).children.append(entries[n["node_id"]])
    for parent_id, action, count in counts:
        if action in RECORD_FOLLOW_UPS and parent_id not in entries:
            later[action] = later.get(action, 0) + count
        elif action in RECORD_ACTIONS:
            holder(parent_id).record_counts[action] = count
    if later:
        first = next((t for t in tops if not t.missing), tops[0] if tops else None)
        if first is None:
            first = holder(root_id)
        first.later_counts = later
    for record in first_records:
        holder(record["parent_id"]).records.append(record)

    def fold(entry: OutlineNode) -> None:
        if len(entry.children) > max_children:
            shown, hidden = entry.children[:max_children], entry.children[max_children:]
            entry.children = shown
            entry.folded_children = len(hidden)
            for child in hidden:
                for action, count in _total_records(child).items():
                    entry.folded_record_counts[action] = (
                        entry.folded_record_counts.get(action, 0) + count
                    )
        for child in entry.children:
            fold(child)

    for top in tops:
        fold(top)
    return tops


def _total_records(entry: OutlineNode) -> dict[str, int]:
    totals = dict(entry.record_counts)
    for child in entry.children:
        for action, count in _total_records(child).items():
            totals[action] = totals.get(action, 0) + count
    return totals


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {action}" for action, count in sorted(counts.items()))


def render_outline(tops: list[OutlineNode]) -> list[str]:
    """An indented text tree of an :func:`outline`."""
    lines: list[str] = []

    def walk(entry: OutlineNode, depth: int) -> None:
        pad = "  " * depth
        node = entry.node
        if entry.missing:
            lines.append(f"{pad}(missing node {node['node_id']}: not in the ledger)")
        else:
            location = node.get("storage_location") or ""
            lines.append(f"{pad}{node['action_taken']}  {node['node_id']}  {location}")
        for child in entry.children:
            walk(child, depth + 1)
        inner = "  " * (depth + 1)
        for record in entry.records:
            row = record.get("row_number")
            where = f"row {row}" if row is not None else "row ?"
            lines.append(f"{inner}{record['action_taken']}  {record['node_id']}  ({where})")
        total = sum(entry.record_counts.values())
        if total > len(entry.records):
            lines.append(
                f"{inner}... {total - len(entry.records)} more record nodes "
                f"({_counts_text(entry.record_counts)} in all)"
            )
        if entry.later_counts:
            lines.append(
                f"{inner}later, under records' results: {_counts_text(entry.later_counts)} "
                "(`lineage trace RECORD_ID` shows a record's)"
            )
        if entry.folded_children:
            lines.append(
                f"{inner}... {entry.folded_children} more nodes"
                + (
                    f" holding {_counts_text(entry.folded_record_counts)}"
                    if entry.folded_record_counts
                    else ""
                )
            )

    for top in tops:
        walk(top, 0)
    return lines


def render_trail(found: dict[str, Any]) -> list[str]:
    """Readable lines of a :func:`trail`: each node with action, location, time and hashes."""
    row = found.get("row_number")
    lines = [
        f"record {found['record_id']} of root {found['root_id']}"
        + (f": row {row} of the input file (1 = first row after the header)" if row else "")
    ]
    for depth, node in enumerate(found["lineage"]):
        pad = "  " * depth
        lines.append(f"{pad}{node['action_taken']}  {node['node_id']}  {node['recorded_at']}")
        lines.append(f"{pad}    location  {node['storage_location'] or '-'}")
        if node.get("object_sha256"):
            lines.append(f"{pad}    sha256    {node['object_sha256']} (the object, when recorded)")
        lines.append(f"{pad}    hash      {node.get('node_hash') or '(none recorded)'}")
    emission = found.get("emission")
    if emission:
        amounts = ", ".join(
            f"{label} {emission[key]} t"
            for label, key in (
                ("CO2e AR4", "co2e_ar4_tonnes"),
                ("AR5", "co2e_ar5_tonnes"),
                ("AR6", "co2e_ar6_tonnes"),
            )
            if emission.get(key) is not None
        )
        lines.append(
            f"result: {amounts}; factor {emission.get('factor_id')} of "
            f"{emission.get('factor_set')} version {emission.get('factor_version')}"
        )
    return lines
