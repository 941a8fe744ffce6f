"""Data lineage: the spec's lineage requests, the buffered ledger writer and queries.

Every request of the spec becomes ledger nodes keyed by (``root_id``,
``node_id``). File-level nodes get a generated ``node_id``; record nodes use the
record's ``activity_event_id``. Stages hand nodes to a :class:`LineageWriter`,
which inserts them in batches (never one transaction per record), like the
original system's queue in front of its ledger table.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

from ._exceptions import LineageError
from .database import Database, utc_now

RAW_DATA_INPUT = "RAW_DATA_INPUT"
DQ_CHECK_PASS = "DQ_CHECK_PASS"
DQ_CHECK_FAIL = "DQ_CHECK_FAIL"
GLUE_BATCH_SPLIT = "GLUE_BATCH_SPLIT"
CALCULATION_COMPLETE = "CALCULATION_COMPLETE"
CALCULATION_FAILED = "CALCULATION_FAILED"

FILE_ACTIONS = (RAW_DATA_INPUT, DQ_CHECK_PASS, DQ_CHECK_FAIL)
RECORD_ACTIONS = (CALCULATION_COMPLETE, CALCULATION_FAILED)
ACTIONS = (*FILE_ACTIONS, GLUE_BATCH_SPLIT, *RECORD_ACTIONS)


def new_node_id() -> str:
    """A globally unique id for a file-level or batch lineage node."""
    return str(uuid.uuid4())


class LineageWriter:
    """Buffers lineage nodes and inserts them in batches; thread-safe.

    Call :meth:`flush` before reporting an execution finished: only then is
    everything durable.
    """

    def __init__(self, database: Database, batch_size: int = 20_000) -> None:
        self._database = database
        self._batch_size = batch_size
        self._buffer: list[tuple[str, str, str, str, str | None, str]] = []
        self._lock = threading.Lock()
        self.written = 0

    def add(
        self,
        root_id: str,
        node_id: str,
        parent_id: str,
        action_taken: str,
        storage_location: str | None,
    ) -> None:
        """Queue one node."""
        self.add_many(root_id, [node_id], parent_id, action_taken, storage_location)

    def add_many(
        self,
        root_id: str,
        node_ids: Sequence[str],
        parent_id: str,
        action_taken: str,
        storage_location: str | None,
    ) -> None:
        """Queue nodes sharing a parent, an action and a location (a batch's records)."""
        now = utc_now()
        rows = [(root_id, n, parent_id, action_taken, storage_location, now) for n in node_ids]
        with self._lock:
            self._buffer.extend(rows)
            full = len(self._buffer) >= self._batch_size
        if full:
            self.flush()

    def flush(self) -> None:
        """Write everything queued so far in one transaction."""
        with self._lock:
            rows, self._buffer = self._buffer, []
            if rows:
                self._database.insert_lineage(rows)
                self.written += len(rows)


def _require(request: dict[str, Any], key: str) -> Any:
    value = request.get(key)
    if value in (None, ""):
        action = request.get("action_taken", "?")
        raise LineageError(f"lineage request {action} lacks {key!r}; got keys {sorted(request)}")
    return value


def record_request(request: dict[str, Any], writer: LineageWriter) -> dict[str, Any]:
    """Turn one lineage request of the spec into ledger nodes; returns the spec's output."""
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
        writer.add(root_id, node_id, parent_id, action, location)
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
            node_id = batch.get("node_id") or new_node_id()
            location = batch.get("storage_location")
            if not location:
                raise LineageError(f"GLUE_BATCH_SPLIT batch {node_id} lacks storage_location")
            writer.add(root_id, node_id, parent_id, action, location)
            out.append({"node_id": node_id, "storage_location": location})
        return {"data_lineage": {"root_id": root_id, "action_taken": action, "records": out}}

    location = _require(request, "storage_location")
    node_ids: list[str] = []
    for record in records:
        record_node = record.get("node_id") if isinstance(record, dict) else None
        if not record_node:
            raise LineageError(f"{action} request has a record without node_id: {record!r}")
        node_ids.append(str(record_node))
    writer.add_many(root_id, node_ids, parent_id, action, location)
    return {
        "data_lineage": {
            "root_id": root_id,
            "action_taken": action,
            "storage_location": location,
            "records": [{"node_id": n} for n in node_ids],
        }
    }


def _resolve_root(database: Database, node_id: str, root_id: str | None) -> str:
    if root_id:
        return root_id
    roots = database.lineage_roots_of_node(node_id)
    if not roots:
        raise LineageError(f"no lineage node {node_id!r} in the ledger")
    if len(roots) > 1:
        raise LineageError(
            f"node {node_id!r} appears under {len(roots)} root_ids ({', '.join(roots)}); "
            "pick one with --root ROOT_ID"
        )
    return roots[0]


def trace(database: Database, node_id: str, root_id: str | None = None) -> list[dict[str, Any]]:
    """The chain of nodes from ``RAW_DATA_INPUT`` down to ``node_id``.

    A missing parent ends the chain where it breaks instead of failing, so a
    damaged ledger still shows what exists; the first node's ``parent_id`` then
    points at the missing node.
    """
    root = _resolve_root(database, node_id, root_id)
    node = database.lineage_node(root, node_id)
    if node is None:
        raise LineageError(f"no lineage node {node_id!r} under root_id {root}")
    chain = [node]
    seen = {node_id}
    while node["action_taken"] != RAW_DATA_INPUT:
        parent = database.lineage_node(root, node["parent_id"])
        if parent is None or parent["node_id"] in seen:
            break
        seen.add(parent["node_id"])
        chain.append(parent)
        node = parent
    chain.reverse()
    return chain


def tree(database: Database, root_id: str) -> list[dict[str, Any]]:
    """Every node of one input file, in the order they were recorded."""
    nodes = database.lineage_of_root(root_id)
    if not nodes:
        raise LineageError(f"no lineage recorded for root_id {root_id}")
    return nodes


def render_tree(nodes: list[dict[str, Any]], max_children: int = 5) -> list[str]:
    """An indented text tree; long runs of record nodes are folded to a count."""
    children: dict[str, list[dict[str, Any]]] = {}
    ids = {n["node_id"] for n in nodes}
    roots = []
    for node in nodes:
        is_root = node["action_taken"] == RAW_DATA_INPUT or node["parent_id"] not in ids
        if is_root:
            roots.append(node)
        else:
            children.setdefault(node["parent_id"], []).append(node)

    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        label = node["action_taken"]
        if node["parent_id"] not in ids and node["action_taken"] != RAW_DATA_INPUT:
            label += f" (parent {node['parent_id']} missing)"
        lines.append(f"{'  ' * depth}{label}  {node['node_id']}  {node['storage_location'] or ''}")
        kids = children.get(node["node_id"], [])
        records = [k for k in kids if k["action_taken"] in RECORD_ACTIONS]
        others = [k for k in kids if k["action_taken"] not in RECORD_ACTIONS]
        for kid in others:
            walk(kid, depth + 1)
        for kid in records[:max_children]:
            walk(kid, depth + 1)
        if len(records) > max_children:
            counts: dict[str, int] = {}
            for kid in records[max_children:]:
                counts[kid["action_taken"]] = counts.get(kid["action_taken"], 0) + 1
            folded = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
            lines.append(f"{'  ' * (depth + 1)}... and {folded} more record nodes")

    for root in roots:
        walk(root, 0)
    return lines
