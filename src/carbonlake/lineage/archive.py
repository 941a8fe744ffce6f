"""The trace archive of the original system: one JSON line per terminal node of a root.

``lineage-archive/YYYY/MM/DD/<root_id>.jsonl`` holds, for every
``CALCULATION_COMPLETE``, ``CALCULATION_FAILED`` and ``DQ_CHECK_FAIL`` node of
one input file, ``{"record_id", "root_id", "lineage": [nodes from
RAW_DATA_INPUT down to the terminal]}``; ``record_id`` is the record's
``activity_event_id`` (a failed attempt's node is ``<id>#failed-<n>``), or the
node id of a ``DQ_CHECK_FAIL``. The date is the day (UTC) the file's
``RAW_DATA_INPUT`` node was recorded, so archiving a root again replaces its
archive instead of copying it. Record nodes are streamed, never all loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring
from typing import Any

from .._exceptions import LineageError
from ..database import Database
from ..storage import Storage
from .nodes import NODE_FIELDS, RAW_DATA_INPUT, RECORD_ACTIONS, TERMINAL_ACTIONS, record_id_of

_LINES_PER_WRITE = 10_000


@dataclass
class ArchiveResult:
    """What one archive run wrote."""

    root_id: str
    storage_location: str
    lines: int = 0
    """One per terminal node."""
    incomplete: int = 0
    """Lines whose chain breaks before ``RAW_DATA_INPUT`` (a node is missing)."""
    terminals: dict[str, int] = field(default_factory=dict)
    """Lines by terminal action."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def archive_location(storage: Storage, root_id: str, recorded_at: str) -> str:
    """Where the archive of a root goes, by the day its trail started."""
    year, month, day = recorded_at[:10].split("-")
    return storage.url("lineage-archive", f"{year}/{month}/{day}/{root_id}.jsonl")


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return str(encode_basestring(value))
    return json.dumps(value)


def _node_text(row: tuple[Any, ...]) -> str:
    """A ledger row ``(seq, *NODE_FIELDS)`` as compact JSON, keys in ``NODE_FIELDS`` order.

    Written out by hand: an archive of a million records encodes a million nodes.
    """
    (_, root, node, parent, action, location, at, sha, row_number, nhash, phash) = row
    v = _value
    return (
        f'{{"root_id":{v(root)},"node_id":{v(node)},"parent_id":{v(parent)},'
        f'"action_taken":{v(action)},"storage_location":{v(location)},'
        f'"recorded_at":{v(at)},"object_sha256":{v(sha)},"row_number":{v(row_number)},'
        f'"node_hash":{v(nhash)},"parent_hash":{v(phash)}}}'
    )


def _node_json(row: tuple[Any, ...]) -> tuple[dict[str, Any], str]:
    return dict(zip(NODE_FIELDS, row[1:], strict=True)), _node_text(row)


def archive(database: Database, storage: Storage, root_id: str) -> ArchiveResult:
    """Write the trace archive of one root; a broken chain is archived as far as it goes."""
    file_nodes: dict[str, dict[str, Any]] = {}
    encoded: dict[str, str] = {}
    for row in database.iter_lineage(root_id, exclude_actions=RECORD_ACTIONS):
        node, text = _node_json(row)
        file_nodes[node["node_id"]] = node
        encoded[node["node_id"]] = text
    started = [
        n["recorded_at"] for n in file_nodes.values() if n["action_taken"] == "RAW_DATA_INPUT"
    ]
    if not started:
        started = [n["recorded_at"] for n in file_nodes.values()]
    if not started:
        first = next(iter(database.iter_lineage(root_id, chunk=1)), None)
        if first is None:
            raise LineageError(f"no lineage recorded for root_id {root_id}")
        started = [first[6]]
    result = ArchiveResult(root_id, archive_location(storage, root_id, min(started)))

    prefixes: dict[str, tuple[str, bool]] = {}

    def prefix(parent_id: str) -> tuple[str, bool]:
        """The JSON of the chain down to ``parent_id`` and whether it reaches RAW_DATA_INPUT."""
        if parent_id in prefixes:
            return prefixes[parent_id]
        chain: list[str] = []
        seen: set[str] = set()
        current = file_nodes.get(parent_id)
        complete = False
        while current is not None and current["node_id"] not in seen:
            seen.add(current["node_id"])
            chain.append(encoded[current["node_id"]])
            if current["action_taken"] == RAW_DATA_INPUT:
                complete = True
                break
            current = file_nodes.get(current["parent_id"])
        chain.reverse()
        prefixes[parent_id] = (",".join(chain), complete)
        return prefixes[parent_id]

    head = f',"root_id":{json.dumps(root_id, ensure_ascii=False)},"lineage":['
    with storage.open_write(result.storage_location) as out:
        pending: list[str] = []
        terminals = result.terminals
        for row in database.iter_lineage(root_id, actions=TERMINAL_ACTIONS):
            text = _node_text(row)
            chain, complete = prefix(row[3])
            body = f"{chain},{text}" if chain else text
            record_id = record_id_of(row[2], row[4])
            pending.append(f'{{"record_id":{_value(record_id)}{head}{body}]}}\n')
            result.lines += 1
            if not complete:
                result.incomplete += 1
            terminals[row[4]] = terminals.get(row[4], 0) + 1
            if len(pending) >= _LINES_PER_WRITE:
                out.write("".join(pending).encode())
                pending.clear()
        out.write("".join(pending).encode())
    return result
