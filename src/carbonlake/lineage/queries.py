"""Questions to the lineage ledger: a record's trace and trail, a root's tree and outline.

Each answers from the ledger's rows (and, for record nodes sealed in columnar files,
from those files through the database layer); :func:`render_outline` and
:func:`render_trail` turn the answers into the lines the command line prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import LineageError
from ..database import RESULT_NUMBER_COLUMNS, Database
from .nodes import (
    CALCULATION_COMPLETE,
    CALCULATION_FAILED,
    FAILED_ATTEMPT,
    NODE_FIELDS,
    RAW_DATA_INPUT,
    RECORD_ACTIONS,
    RECORD_FOLLOW_UPS,
)


def _locate(database: Database, node_id: str, root_id: str | None) -> dict[str, Any]:
    """The node asked for or, for a record that only failed, its latest failed attempt
    (one lookup by id across the ledger's rows and record files)."""
    named = [n for n in database.lineage_nodes_named(node_id) if root_id in (None, n["root_id"])]
    roots = list(dict.fromkeys(n["root_id"] for n in named))
    if not roots:
        attempts = [
            (root, node)
            for root, node in database.lineage_nodes_with_prefix(node_id + FAILED_ATTEMPT)
            if root_id is None or root == root_id
        ]
        latest = {root: node for root, node in attempts}
        if len(latest) == 1:
            ((root, node),) = latest.items()
            found = database.lineage_node(root, node)
            if found is not None:
                return found
        roots = list(latest)
    if not roots:
        where = f" under root_id {root_id}" if root_id else " in the ledger"
        raise LineageError(f"no lineage node {node_id!r}{where}")
    if len(roots) > 1:
        raise LineageError(
            f"node {node_id!r} appears under {len(roots)} root_ids ({', '.join(roots)}); "
            "pick one with --root ROOT_ID"
        )
    return named[0]


def trace(database: Database, node_id: str, root_id: str | None = None) -> list[dict[str, Any]]:
    """The chain of nodes from ``RAW_DATA_INPUT`` down to ``node_id``.

    A missing parent ends the chain where it breaks instead of failing, so a
    damaged ledger still shows what exists; the first node's ``parent_id`` then
    points at the missing node.
    """
    return _chain(database, _locate(database, node_id, root_id))


def _chain(database: Database, node: dict[str, Any]) -> list[dict[str, Any]]:
    root = node["root_id"]
    chain = [node]
    seen = {node["node_id"]}
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
    found = _locate(database, node_id, root_id)
    root = found["root_id"]
    chain = _chain(database, found)
    complete = chain[0]["action_taken"] == RAW_DATA_INPUT
    emission = None
    if chain[-1]["action_taken"] == CALCULATION_COMPLETE:
        current = database.emission(chain[-1]["node_id"])
        if current is not None and current.get("root_id") == root:
            emission = {
                key: current[key]
                for key in (
                    *RESULT_NUMBER_COLUMNS,
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
