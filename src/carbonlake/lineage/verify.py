"""Verify the lineage ledger, and checkpoint it so it can later be shown to have only grown.

What :func:`verify` checks, in this order (it stops at the first problem unless
asked for all of them):

1. every node's hash against its fields and its recorded parent hash, and every
   node's parent link: the parent exists in the same root, was recorded before
   it, has the action the child's action needs and still has the hash the child
   was chained to; each root has exactly one ``RAW_DATA_INPUT``;
2. that no root stopped half-way: a ``RAW_DATA_INPUT``, ``PROFILE_COMPLETE`` or
   ``DQ_CHECK_PASS`` node without children is a trail that ends nowhere;
3. every object a node points at against the SHA-256 recorded when the node was
   written (an object the pipeline moved on is checked where it went);
4. every record of every batch file has exactly one terminal node, with the
   record's row number (nothing silently dropped), and every result the database
   says an admin deleted has its ``RECORD_DELETED`` node; every current result is the
   record of a verified enriched file with the same numbers, no calculated record
   lacks one, and every finished execution's stored output totals its files;
5. the ledger's insertion order has no holes, and, given a checkpoint, that the
   first ``size`` nodes still give the checkpoint's RFC 6962 Merkle root;
6. (whole ledger only) that every object in the raw, error, transformed, enriched
   and dq-results buckets is named by a node: an object nobody recorded means the
   ledger was replaced, emptied or cut short (files of an execution that has not
   succeeded yet are left out; landing holds files still waiting for a run).

The ledger hash is the RFC 6962 Merkle tree hash over the nodes' hashes in
insertion (``seq``) order: leaf = SHA-256(0x00 || node hash), interior node =
SHA-256(0x01 || left || right).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .. import calculate as calc
from .. import transform
from .._exceptions import (
    ConfigurationError,
    DatabaseError,
    InputDataError,
    LineageError,
    StopVerifying,
    StorageError,
)
from ..database import RESULT_NUMBER_COLUMNS, RESULTS_TABLE, Database, utc_now
from ..storage import Storage
from .nodes import (
    CALCULATION_COMPLETE,
    DQ_CHECK_FAIL,
    DQ_CHECK_PASS,
    GLUE_BATCH_SPLIT,
    PARENT_ACTIONS,
    PROFILE_COMPLETE,
    RAW_DATA_INPUT,
    RECALCULATION,
    RECORD_ACTIONS,
    RECORD_DELETED,
    RECORD_FOLLOW_UPS,
    RECORD_NODES,
    SEALED_ACTIONS,
    sibling_hash,
    sibling_template,
)

ALGORITHM = "RFC6962-SHA256"
"""How the ledger hash is computed: RFC 6962 Merkle tree hash over the node hashes."""

_EXPECTS_CHILDREN: dict[str, str] = {
    RAW_DATA_INPUT: "PROFILE_COMPLETE or DQ_CHECK_PASS/DQ_CHECK_FAIL",
    PROFILE_COMPLETE: "DQ_CHECK_PASS or DQ_CHECK_FAIL",
    DQ_CHECK_PASS: "GLUE_BATCH_SPLIT",
}
_SHOWN_ROWS = 10

UNRECORDED_BUCKETS = ("raw", "error", "transformed", "enriched", "dq-results")
"""Buckets whose every object a node must name (landing: files waiting for a run;
lineage-archive: exports of the ledger)."""
ROOT_FOLDER_BUCKETS = ("transformed", "enriched", "dq-results")
"""Buckets whose objects sit in a folder named after their root_id."""
_RESULT_ACTIONS = (CALCULATION_COMPLETE, RECALCULATION)
_FOLLOW_UP_CHUNK = 50_000
"""Parents of RECALCULATION / RECORD_DELETED nodes looked up per query."""
RESULT_COLUMNS = RESULT_NUMBER_COLUMNS
"""The numbers of a current result that verify compares with its enriched record."""
RESULT_BATCH_ROWS = 50_000
"""Results compared at a time (with their enriched files' records)."""
RESULT_BATCH_FILES = 50
"""Enriched files without results compared at a time."""


# -- Merkle tree (RFC 6962) --------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def interior_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleAccumulator:
    """The RFC 6962 Merkle tree hash of a stream of leaves, in O(log n) memory.

    The stack holds the roots of the perfect subtrees the leaves so far make up,
    largest first; folding them from the right gives the tree hash of RFC 6962's
    left-balanced tree (the split at the largest power of two below n). Leaves are
    hashed a chunk of 2**12 at a time, level by level, which is several times
    faster in Python than pushing them one by one.
    """

    _CHUNK_HEIGHT = 12

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self._pending: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        """Append one leaf."""
        self._pending.append(data)
        self.size += 1
        if len(self._pending) == 1 << self._CHUNK_HEIGHT:
            self._push(self._stack, _perfect_root(self._pending), self._CHUNK_HEIGHT)
            self._pending = []

    @staticmethod
    def _push(stack: list[tuple[int, bytes]], node: bytes, height: int) -> None:
        while stack and stack[-1][0] == height:
            node = interior_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))

    def root(self) -> bytes:
        """The tree hash of the leaves so far (SHA-256 of nothing for no leaves)."""
        stack = list(self._stack)
        for data in self._pending:
            self._push(stack, leaf_hash(data), 0)
        if not stack:
            return hashlib.sha256(b"").digest()
        node = stack[-1][1]
        for _, left in reversed(stack[:-1]):
            node = interior_hash(left, node)
        return node


def _perfect_root(leaves: list[bytes]) -> bytes:
    """The tree hash of a power-of-two number of leaves."""
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + data).digest() for data in leaves]
    while len(level) > 1:
        level = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)
        ]
    return level[0]


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash of a sequence of leaves."""
    accumulator = MerkleAccumulator()
    for leaf in leaves:
        accumulator.add(leaf)
    return accumulator.root()


def leaf_data(stored_node_hash: str | None) -> bytes:
    """The Merkle leaf of a ledger node: its hash's 32 bytes (the text if not hex)."""
    if stored_node_hash is None:
        return b""
    try:
        data = bytes.fromhex(stored_node_hash)
    except ValueError:
        return stored_node_hash.encode()
    return data if len(data) == 32 else stored_node_hash.encode()


# -- checkpoints -------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The ledger's size and Merkle root at one moment, to keep somewhere else."""

    size: int
    """How many nodes the ledger held."""
    root_hash: str
    """Hex RFC 6962 Merkle tree hash over those nodes' hashes in insertion order."""
    created_at: str | None = None
    algorithm: str = ALGORITHM

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint document (what ``lineage checkpoint`` prints and writes)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, document: Any, origin: str) -> Checkpoint:
        """Read a checkpoint document; ``origin`` names it in errors."""
        if not isinstance(document, dict):
            raise ConfigurationError(f"checkpoint {origin} is not a JSON object")
        size = document.get("size")
        root_hash = document.get("root_hash")
        algorithm = document.get("algorithm", ALGORITHM)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigurationError(f"checkpoint {origin}: 'size' must be a whole number >= 0")
        if not isinstance(root_hash, str) or len(root_hash) != 64:
            raise ConfigurationError(f"checkpoint {origin}: 'root_hash' must be 64 hex digits")
        try:
            bytes.fromhex(root_hash)
        except ValueError as exc:
            raise ConfigurationError(
                f"checkpoint {origin}: 'root_hash' must be 64 hex digits"
            ) from exc
        if algorithm != ALGORITHM:
            raise ConfigurationError(
                f"checkpoint {origin} uses algorithm {algorithm!r}; this ledger uses {ALGORITHM}"
            )
        created_at = document.get("created_at")
        return cls(
            size=size,
            root_hash=root_hash.lower(),
            created_at=created_at if isinstance(created_at, str) else None,
        )


def checkpoint(database: Database) -> Checkpoint:
    """The ledger's current size and Merkle root."""
    accumulator = MerkleAccumulator()
    for stored in database.iter_lineage_hashes():
        accumulator.add(leaf_data(stored))
    return Checkpoint(accumulator.size, accumulator.root().hex(), utc_now())


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint file written by ``lineage checkpoint -o``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"checkpoint {path} is not JSON: {exc}") from exc
    return Checkpoint.from_dict(document, str(path))


def write_checkpoint(point: Checkpoint, path: Path) -> None:
    """Write a checkpoint document to a local file."""
    try:
        path.write_text(json.dumps(point.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc


def _ledger_root_of_first(database: Database, size: int) -> tuple[int, bytes]:
    accumulator = MerkleAccumulator()
    for stored in database.iter_lineage_hashes(limit=size):
        accumulator.add(leaf_data(stored))
    return accumulator.size, accumulator.root()


# -- verification ------------------------------------------------------------------


@dataclass
class Problem:
    """One thing ``verify`` found wrong."""

    kind: str
    """``node_changed``, ``parent_changed``, ``node_missing``, ``tree``, ``no_hash``,
    ``incomplete``, ``object_changed``, ``object_missing``, ``records_missing``,
    ``ledger_gap``, ``ledger_shrank`` or ``checkpoint_mismatch``."""
    message: str
    root_id: str | None = None
    node_id: str | None = None
    storage_location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class VerifyReport:
    """What ``verify`` checked and what it found."""

    root_id: str | None
    roots: int = 0
    nodes: int = 0
    objects: int = 0
    records: int = 0
    """Records of batch files matched to their terminal node."""
    results: int = 0
    """Current results matched to their enriched record."""
    ledger_size: int | None = None
    ledger_root_hash: str | None = None
    checkpoint: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    complete: bool = True
    """False when verify stopped at the first problem before checking everything."""

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        document = asdict(self)
        document["ok"] = self.ok
        return document


@dataclass
class _Node:
    seq: int
    action: str
    node_hash: str | None
    location: str | None
    object_sha256: str | None
    children: int = 0


_NO_ROW = -(2**63)
"""A node without a row number, among packed row numbers."""


class _BatchRows:
    """The record nodes under one batch node, packed (9 bytes a node, not a tuple of
    Python objects: a ledger of 10 million records is checked in about 100 MB)."""

    def __init__(self) -> None:
        self.rows = array("q")  # the node's row number, or _NO_ROW when it has none
        self.complete = bytearray()  # 1 for CALCULATION_COMPLETE

    def add(self, row_number: int | None, complete: bool) -> None:
        self.rows.append(row_number if row_number is not None else _NO_ROW)
        self.complete.append(1 if complete else 0)

    def entries(self) -> list[tuple[int | None, bool]]:
        """(row number, whether CALCULATION_COMPLETE) of each node, in ledger order."""
        return [
            (None if row == _NO_ROW else row, bool(done))
            for row, done in zip(self.rows, self.complete, strict=True)
        ]


@dataclass
class _Root:
    nodes: dict[str, _Node] = field(default_factory=dict)
    raw_nodes: list[str] = field(default_factory=list)
    waiting: list[tuple[int, str, str, str, str | None]] = field(default_factory=list)
    """Children whose parent was not seen before them: (seq, node, parent, action, hash)."""
    batch_rows: dict[str, _BatchRows] = field(default_factory=dict)
    """Record nodes under each batch node: their row numbers and which are complete."""
    record_objects: dict[tuple[str | None, str | None], tuple[str, str, int]] = field(
        default_factory=dict
    )
    """(location, sha) of record nodes -> (first node_id, action, seq)."""
    result_files: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """Enriched files of record nodes -> (action, whether the file matched its hash)."""


class _Verifier:
    def __init__(
        self, database: Database, storage: Storage, report: VerifyReport, stop_at_first: bool
    ) -> None:
        self.database = database
        self.storage = storage
        self.report = report
        self.stop_at_first = stop_at_first
        self.roots: dict[str, _Root] = {}
        self.gaps: list[tuple[int, int, str, str]] = []
        self.follow_ups: list[tuple[str, str, str, str, str | None, str]] = []
        self._template_key: tuple[Any, ...] | None = None
        self._template = ("", "", "")
        self.snapshot_at: int | None = None
        """Ledger size at which to keep the Merkle root (a checkpoint's size)."""
        self.snapshot: bytes | None = None
        self._deleted_ids: set[str] | None = None

    def problem(
        self,
        kind: str,
        message: str,
        root_id: str | None = None,
        node_id: str | None = None,
        storage_location: str | None = None,
    ) -> None:
        self.report.problems.append(Problem(kind, message, root_id, node_id, storage_location))
        if self.stop_at_first:
            raise StopVerifying

    def check_results_files(self, root_id: str | None) -> None:
        """Every current data file of the results table must have the SHA-256 its
        registration recorded (a changed, added or removed row changes the bytes; the
        record-level comparison with the enriched files names the record)."""
        for entry in self.database.lake_files(RESULTS_TABLE):
            if root_id is not None and entry["root_id"] != root_id:
                continue
            url = self.storage.current_url(entry["file_path"])
            try:
                found = self.storage.sha256(url)
            except StorageError as exc:
                self.problem(
                    "results_file_missing",
                    f"results file {url} of the results table cannot be read: {exc}",
                    entry["root_id"],
                    storage_location=url,
                )
                continue
            if entry["sha256"] and found != entry["sha256"]:
                self.problem(
                    "results_file_changed",
                    f"results file {url} changed since it was committed (SHA-256 {found}, "
                    f"registered {entry['sha256']})",
                    entry["root_id"],
                    storage_location=url,
                )

    # -- 1. nodes and links ------------------------------------------------------------

    def scan(self, root_id: str | None, merkle: MerkleAccumulator | None) -> None:
        expected_seq = 1
        for row in self.database.iter_lineage(root_id, sealed=True):
            seq, root, node, stored = row[0], row[1], row[2], row[9]
            if merkle is not None:
                if seq != expected_seq:
                    self.gaps.append((expected_seq, seq, root, node))
                expected_seq = seq + 1
                merkle.add(leaf_data(stored))
                if merkle.size == self.snapshot_at:
                    self.snapshot = merkle.root()
            self._take(row)
            if row[4] == RECORD_NODES:
                self._take_sealed(row)

    def _take_sealed(self, row: tuple[Any, ...]) -> None:
        """The record nodes of a RECORD_NODES node's file, as ledger rows at its place (the
        file's own SHA-256 is checked with the other objects)."""
        seq, root, node, location = row[0], row[1], row[2], row[5]
        try:
            for record in self.database.record_file_nodes(location):
                if record[0] != root or record[3] not in SEALED_ACTIONS:
                    self.problem(
                        "tree",
                        f"record file {location} of RECORD_NODES node {node} (root {root}) "
                        f"holds node {record[1]} of root {record[0]} with action "
                        f"{record[3]}; it holds its root's "
                        f"{' and '.join(SEALED_ACTIONS)} nodes only",
                        root,
                        record[1],
                        location,
                    )
                    continue
                self._take((seq, *record))
        except (DatabaseError, StorageError) as exc:
            if not self.storage.exists(location):
                return  # the objects' check names the missing file
            self.problem(
                "object_unreadable",
                f"record file {location} of RECORD_NODES node {node} (root {root}) cannot be "
                f"read: {exc}",
                root,
                node,
                location,
            )

    def _take(self, row: tuple[Any, ...]) -> None:
        """One ledger node: its hash, its place in its root's tree."""
        (seq, root, node, parent, action, location, at, sha, row_number, stored, phash) = row
        self.report.nodes += 1
        state = self.roots.get(root)
        if state is None:
            state = self.roots[root] = _Root()
        self._check_hash(row)
        if action in RECORD_FOLLOW_UPS:
            # Hangs under a record node (which verify does not keep in memory).
            key = (location, sha)
            if key not in state.record_objects:
                state.record_objects[key] = (node, action, seq)
            # Checked after the scan, their parents looked up many at a time (a record's
            # node may be in a record file, where one lookup reads the root's files).
            self.follow_ups.append((root, node, action, parent, phash, at))
            return
        if action in RECORD_ACTIONS:
            key = (location, sha)
            if key not in state.record_objects:
                state.record_objects[key] = (node, action, seq)
        else:
            state.nodes[node] = _Node(seq, action, stored, location, sha)
        if action == RAW_DATA_INPUT:
            state.raw_nodes.append(node)
            if parent != root:
                self.problem(
                    "tree",
                    f"RAW_DATA_INPUT node {node} of root {root} has parent_id {parent}; "
                    "the first node of a file has its root_id as parent_id",
                    root,
                    node,
                )
            return
        found = state.nodes.get(parent)
        if found is None or found.seq >= seq:
            state.waiting.append((seq, node, parent, action, phash))
        else:
            self._link(root, node, action, phash, parent, found)
        if action in RECORD_ACTIONS:
            state.batch_rows.setdefault(parent, _BatchRows()).add(
                row_number if isinstance(row_number, int) else None,
                action == CALCULATION_COMPLETE,
            )

    def check_follow_ups(self) -> None:
        """Every RECALCULATION and RECORD_DELETED node against its parent record node."""
        by_root: dict[str, list[tuple[str, str, str, str, str | None, str]]] = {}
        for entry in self.follow_ups:
            by_root.setdefault(entry[0], []).append(entry)
        for root, entries in by_root.items():
            for start in range(0, len(entries), _FOLLOW_UP_CHUNK):
                chunk = entries[start : start + _FOLLOW_UP_CHUNK]
                parents = {
                    n["node_id"]: n
                    for n in self.database.lineage_nodes(root, sorted({e[3] for e in chunk}))
                }
                for _, node, action, parent, phash, at in chunk:
                    self._check_follow_up(root, node, action, parent, phash, at, parents)
        self.follow_ups.clear()

    def _check_follow_up(
        self,
        root: str,
        node: str,
        action: str,
        parent: str,
        phash: str | None,
        at: str,
        parents: dict[str, dict[str, Any]],
    ) -> None:
        """A RECALCULATION or RECORD_DELETED node against the record node it hangs under."""
        found = parents.get(parent)
        allowed = PARENT_ACTIONS[action]
        if found is None:
            self.problem(
                "missing_parent",
                f"{action} node {node} of root {root} hangs under {parent}, which is not "
                "in the ledger",
                root,
                node,
            )
        elif found["action_taken"] not in allowed:
            self.problem(
                "tree",
                f"{action} node {node} of root {root} hangs under {parent} "
                f"({found['action_taken']}); its parent is {' or '.join(allowed)}",
                root,
                node,
            )
        elif phash != found["node_hash"]:
            self.problem(
                "parent_changed",
                f"node {parent} ({found['action_taken']}) of root {root} no longer has the hash "
                f"its child {node} ({action}) was chained to",
                root,
                parent,
                found["storage_location"],
            )
        elif found["recorded_at"] > at:
            self.problem(
                "tree",
                f"{action} node {node} of root {root} was recorded before its parent {parent}: "
                "the ledger's order was changed",
                root,
                node,
            )

    def _check_hash(self, row: tuple[Any, ...]) -> None:
        (seq, root, node, parent, action, location, at, sha, row_number, stored, phash) = row
        if stored is None:
            self.problem(
                "no_hash",
                f"node {node} ({action}) of root {root} has no recorded hash, so it cannot be "
                "verified (it was written before the ledger was hashed, or its hash was erased)",
                root,
                node,
            )
            return
        # The records of one batch share all fields but two: encode the rest once.
        key = (root, parent, action, location, at, sha, phash)
        try:
            if key != self._template_key:
                self._template = sibling_template(*key)
                self._template_key = key
            recomputed = sibling_hash(self._template, node, row_number)
        except (TypeError, ValueError):
            self._template_key = None
            recomputed = None
        if recomputed != stored:
            self.problem(
                "node_changed",
                f"node {node} ({action}) of root {root}, ledger position {seq}, was changed: "
                f"its fields no longer give its recorded hash {stored}",
                root,
                node,
                location,
            )

    def _link(
        self, root: str, node: str, action: str, phash: str | None, parent: str, found: _Node
    ) -> None:
        found.children += 1
        allowed = PARENT_ACTIONS.get(action)
        if allowed is None:
            self.problem(
                "tree",
                f"node {node} of root {root} has unknown action {action!r}",
                root,
                node,
            )
        elif found.action not in allowed:
            self.problem(
                "tree",
                f"node {node} ({action}) of root {root} hangs under {parent} ({found.action}); "
                f"a {action} node's parent is {' or '.join(allowed)}",
                root,
                node,
            )
        if phash != found.node_hash:
            self.problem(
                "parent_changed",
                f"node {parent} ({found.action}) of root {root} no longer has the hash its "
                f"child {node} ({action}) was chained to: {parent} was changed after its "
                "children were written",
                root,
                parent,
                found.location,
            )

    def resolve_waiting(self) -> None:
        for root, state in self.roots.items():
            missing: dict[str, list[tuple[str, str]]] = {}
            for seq, node, parent, action, phash in state.waiting:
                found = state.nodes.get(parent)
                if found is not None and found.seq < seq:
                    self._link(root, node, action, phash, parent, found)
                elif found is not None:
                    self.problem(
                        "tree",
                        f"node {node} ({action}) of root {root} was recorded before its parent "
                        f"{parent}: the ledger's order was changed",
                        root,
                        node,
                    )
                elif self.database.lineage_node(root, parent) is not None:
                    self.problem(
                        "tree",
                        f"node {node} ({action}) of root {root} hangs under {parent}, which is a "
                        "record node; records have no children",
                        root,
                        node,
                    )
                else:
                    missing.setdefault(parent, []).append((node, action))
            for parent, children in missing.items():
                node, action = children[0]
                more = f" and {len(children) - 1} more" if len(children) > 1 else ""
                self.problem(
                    "node_missing",
                    f"node {parent} of root {root} is missing from the ledger: "
                    f"{node} ({action}){more} name it as parent",
                    root,
                    parent,
                )

    # -- 2. the shape of each root -------------------------------------------------

    def check_roots(self) -> None:
        for root, state in self.roots.items():
            if not state.raw_nodes:
                self.problem(
                    "node_missing",
                    f"root {root} has no RAW_DATA_INPUT node: the start of its trail is missing",
                    root,
                )
            elif len(state.raw_nodes) > 1:
                self.problem(
                    "tree",
                    f"root {root} has {len(state.raw_nodes)} RAW_DATA_INPUT nodes "
                    f"({', '.join(state.raw_nodes)}); a file has one",
                    root,
                )
            for node_id, node in state.nodes.items():
                expected = _EXPECTS_CHILDREN.get(node.action)
                if expected and node.children == 0:
                    self.problem(
                        "incomplete",
                        f"root {root} is incomplete: {node.action} node {node_id} has no "
                        f"{expected} node after it{self._execution_note(root)}",
                        root,
                        node_id,
                    )

    def _execution_note(self, root: str) -> str:
        executions = self.database.executions_of_root(root)
        if not executions:
            return ""
        last = executions[-1]
        if last["status"] == "RUNNING":
            return f" (execution {last['execution_id']} is still running)"
        note = f" (execution {last['execution_id']} ended {last['status']}"
        if last.get("error"):
            note += f": {last['error']}"
        return note + ")"

    # -- 3 and 4. objects and records ------------------------------------------------

    def check_objects(self) -> None:
        for root, state in self.roots.items():
            verdicts = [
                (node_id, node)
                for node_id, node in state.nodes.items()
                if node.action in (DQ_CHECK_PASS, DQ_CHECK_FAIL)
            ]
            batches: list[tuple[str, _Node, int | None]] = []
            for node_id, node in sorted(state.nodes.items(), key=lambda item: item[1].seq):
                if node.location is None:
                    continue
                if node.action == RAW_DATA_INPUT and verdicts:
                    # The DQ check moved the file on: it is checked where it went, and it
                    # must be the same file that arrived.
                    moved_id, moved = verdicts[0]
                    if moved.object_sha256 != node.object_sha256:
                        self.report.objects += 1
                        self.problem(
                            "object_changed",
                            f"file {node.location} had SHA-256 {node.object_sha256} when it "
                            f"arrived (node {node_id}, RAW_DATA_INPUT, root {root}) but "
                            f"{moved.object_sha256} when the DQ check moved it to "
                            f"{moved.location} (node {moved_id})",
                            root,
                            node_id,
                            node.location,
                        )
                    continue
                is_batch = node.action == GLUE_BATCH_SPLIT
                data = self._object(
                    root, node_id, node.action, node.location, node.object_sha256, is_batch
                )
                if is_batch:
                    count = None if data is None else _records_in(data)
                    if data is not None and count is None:
                        self.problem(
                            "object_changed",
                            f"batch file {node.location} (node {node_id}, root {root}) matches "
                            "its recorded SHA-256 but is not a readable Parquet file",
                            root,
                            node_id,
                            node.location,
                        )
                    batches.append((node_id, node, count))
            for (location, sha), (node_id, action, _) in state.record_objects.items():
                if location is not None:
                    found = self._object(root, node_id, action, location, sha)
                    if action in _RESULT_ACTIONS:
                        state.result_files[location] = (action, found is not None)
            self._check_records(root, state, batches)

    def _object(
        self,
        root: str,
        node_id: str,
        action: str,
        location: str,
        recorded: str | None,
        content: bool = False,
    ) -> bytes | None:
        """Check one object against its recorded hash.

        Returns its content when it matches and ``content`` is asked for (batch files,
        which are small), else ``b""`` when it matches; None after a problem. Other
        objects are hashed as a stream: an input file may be larger than memory.
        """
        self.report.objects += 1
        if recorded is None:
            self.problem(
                "no_hash",
                f"node {node_id} ({action}) of root {root} recorded no SHA-256 for {location}",
                root,
                node_id,
                location,
            )
            return None
        try:
            if not self.storage.exists(location):
                self.problem(
                    "object_missing",
                    f"file {location} is missing: node {node_id} ({action}) of root {root} "
                    f"recorded it with SHA-256 {recorded}",
                    root,
                    node_id,
                    location,
                )
                return None
            if content:
                data = self.storage.read_bytes(location)
                actual = hashlib.sha256(data).hexdigest()
            else:
                data, actual = b"", self.storage.sha256(location)
        except StorageError as exc:
            self.problem(
                "object_missing",
                f"file {location} of node {node_id} ({action}), root {root}, cannot be read: {exc}",
                root,
                node_id,
                location,
            )
            return None
        if actual != recorded:
            self.problem(
                "object_changed",
                f"file {location} no longer matches: node {node_id} ({action}) of root {root} "
                f"recorded SHA-256 {recorded}, the file now has {actual}",
                root,
                node_id,
                location,
            )
            return None
        return data

    def _check_records(
        self, root: str, state: _Root, batches: list[tuple[str, _Node, int | None]]
    ) -> None:
        def order(item: tuple[str, _Node, int | None]) -> tuple[int, str]:
            index = transform.batch_index(item[1].location or "")
            return (index if index is not None else 1 << 62, item[1].location or "")

        first_row: int | None = 1
        for node_id, node, count in sorted(batches, key=order):
            if count is None:  # the batch file itself was reported
                first_row = None
                continue
            packed = state.batch_rows.get(node_id)
            entries = packed.entries() if packed is not None else []
            expected = range(first_row, first_row + count) if first_row is not None else None
            first_row = None if first_row is None else first_row + count
            where = f"batch {node.location} (node {node_id}, root {root})"
            complete = [row for row, done in entries if done and row is not None]
            completes = sum(1 for _, done in entries if done)
            absent: list[int] = []
            if expected is not None and all(row is not None for row, _ in entries):
                seen = {row for row, _ in entries if row is not None}
                stray = sorted(seen - set(expected))
                twice = (
                    sorted(r for r, n in Counter(complete).items() if n > 1)
                    if len(set(complete)) != len(complete)
                    else []
                )
                absent = sorted(set(expected) - seen)
                if twice:
                    self.problem(
                        "tree",
                        f"{where} has more than one CALCULATION_COMPLETE node for rows "
                        f"{_rows_text(twice)}",
                        root,
                        node_id,
                        node.location,
                    )
                    continue
                if stray:
                    self.problem(
                        "tree",
                        f"{where} has record nodes for rows {_rows_text(stray)}, which are not "
                        f"its rows ({expected.start}-{expected.stop - 1})",
                        root,
                        node_id,
                        node.location,
                    )
                    continue
                short = bool(absent)
            else:
                # Without row numbers only the counts can be checked.
                if completes > count:
                    self.problem(
                        "tree",
                        f"{where} holds {count} records but has {completes} "
                        "CALCULATION_COMPLETE nodes",
                        root,
                        node_id,
                        node.location,
                    )
                    continue
                short = len(entries) < count
            if short:
                named = self._records_named(node.location, absent, expected)
                detail = f"rows {_rows_text(absent)}{named}" if absent else "some of them"
                self.problem(
                    "records_missing",
                    f"{where} holds {count} records but {detail} have no "
                    "CALCULATION_COMPLETE or CALCULATION_FAILED node: their nodes went missing "
                    f"or were never written{self._execution_note(root) if not entries else ''}",
                    root,
                    node_id,
                    node.location,
                )
                continue
            self.report.records += count

    def _records_named(
        self, location: str | None, absent: list[int], expected: range | None
    ) -> str:
        """`` (record ids a, b)`` of missing rows, read from the batch file."""
        if not absent or expected is None or location is None:
            return ""
        try:
            frame = transform.read_batch_bytes(self.storage.read_bytes(location), location)
        except (StorageError, InputDataError):
            return ""
        if "activity_event_id" not in frame.columns:
            return ""
        ids = frame.get_column("activity_event_id")
        names = [
            str(ids[row - expected.start])
            for row in absent[:_SHOWN_ROWS]
            if 0 <= row - expected.start < len(ids) and ids[row - expected.start] is not None
        ]
        return f" (record ids {', '.join(names)})" if names else ""

    # -- 4b. the results table and the executions' outputs ---------------------------------

    def check_results(self, root_id: str | None) -> None:
        """Every current result must be a record of an enriched file the ledger recorded
        (and verified), with the same numbers; every calculated record must still have a
        current result (or a later one, or a recorded deletion); every execution's stored
        totals must be those of its enriched files.

        A root's results are read in groups of about RESULT_BATCH_ROWS, with their enriched
        files parsed together (only the columns compared) and matched by a join: memory
        holds one group, not the table.
        """
        roots = (
            [root_id]
            if root_id is not None
            else sorted(set(self.roots) | set(self.database.emission_roots()))
        )
        for root in roots:
            state = self.roots.get(root)
            files = state.result_files if state is not None else {}
            outputs = _Outputs()
            seen: set[str] = set()
            group: list[tuple[str, list[tuple[Any, ...]]]] = []
            size = 0
            for location, rows in self.database.iter_emission_check_rows(root):
                seen.add(location)
                group.append((location, rows))
                size += len(rows)
                if size >= RESULT_BATCH_ROWS:
                    self._check_group(root, group, files, outputs)
                    group, size = [], 0
            # Files none of whose records has a current result here: each record must
            # have a later one elsewhere, or a recorded deletion.
            group += [
                (loc, []) for loc, (_, matched) in files.items() if matched and loc not in seen
            ]
            for start in range(0, len(group), RESULT_BATCH_FILES):
                self._check_group(root, group[start : start + RESULT_BATCH_FILES], files, outputs)
            if state is not None:
                self._check_execution_outputs(root, state, outputs)

    def _deleted(self) -> set[str]:
        if self._deleted_ids is None:
            self._deleted_ids = self.database.deleted_record_ids()
        return self._deleted_ids

    def _check_group(
        self,
        root: str,
        group: list[tuple[str, list[tuple[Any, ...]]]],
        files: dict[str, tuple[str, bool]],
        outputs: _Outputs,
    ) -> None:
        """Compare a group of enriched files' records with the results that name them."""
        table_rows: list[tuple[Any, ...]] = []
        locations: list[str] = []
        for location, rows in group:
            self.report.results += len(rows)
            recorded = files.get(location)
            if recorded is None:
                if rows:
                    self.problem(
                        "result_unrecorded",
                        f"the result of record {rows[0][0]} (root {root}) says it comes from "
                        f"{location}, which no lineage node of its root records: the result "
                        f"was added or altered outside the pipeline ({len(rows)} such "
                        "result(s))",
                        root,
                        str(rows[0][0]),
                        location,
                    )
                continue
            if not recorded[1]:
                continue  # the file itself is already reported (changed or missing)
            locations.append(location)
            table_rows += [(location, *row) for row in rows]
        if not locations:
            return
        expected = self._results_of_files(locations)
        calculated = [loc for loc in locations if files[loc][0] == CALCULATION_COMPLETE]
        if calculated:
            own = expected.filter(pl.col("location").is_in(pl.Series(calculated).implode()))
            sums = own.select(calc.co2e_by_method_exprs()).row(0, named=True)
            outputs.add(len(calculated), own.height, calc.co2e_by_method(sums))
        names = ["location", "id", *(f"{c}_stored" for c in RESULT_COLUMNS)]
        table = pl.DataFrame(
            table_rows,
            schema={n: (pl.String if i < 2 else pl.Float64) for i, n in enumerate(names)},
            orient="row",
        )
        joined = table.join(expected, on=["location", "id"], how="left", coalesce=True)
        unknown = joined.filter(pl.col("known").is_null())
        if unknown.height:
            first = unknown.row(0, named=True)
            self.problem(
                "result_unrecorded",
                f"the result of record {first['id']} says it comes from {first['location']}, "
                f"which holds no such record: the result was added outside the pipeline "
                f"({unknown.height} such result(s) in this group)",
                root,
                first["id"],
                first["location"],
            )
        differs = [
            pl.when(_differs(pl.col(f"{c}_stored"), pl.col(c))).then(pl.lit(c))
            for c in RESULT_COLUMNS
        ]
        changed = (
            joined.filter(pl.col("known").is_not_null())
            .with_columns(pl.coalesce(differs).alias("changed_column"))
            .filter(pl.col("changed_column").is_not_null())
        )
        for row in changed.head(_SHOWN_ROWS if not self.stop_at_first else 1).iter_rows(named=True):
            column = row["changed_column"]
            self.problem(
                "result_changed",
                f"the result of record {row['id']} has {column} {row[f'{column}_stored']} in "
                f"the results table but {row[column]} in {row['location']}, which the ledger "
                "verified: the results table was changed",
                root,
                row["id"],
                row["location"],
            )
        # Records of the files with no result naming them must have a later one elsewhere
        # (a later calculation replaced it) or a recorded deletion.
        absent = expected.join(table.select("location", "id"), on=["location", "id"], how="anti")
        if not absent.height:
            return
        ids = absent["id"].to_list()
        elsewhere = self.database.current_locations(ids)
        deleted = self._deleted() if len(elsewhere) < len(ids) else set()
        missing = [
            (location, record_id)
            for location, record_id in absent.select("location", "id").iter_rows()
            if elsewhere.get(record_id, location) == location and record_id not in deleted
        ]
        if missing:
            shown = ", ".join(r for _, r in missing[:_SHOWN_ROWS])
            more = f" and {len(missing) - _SHOWN_ROWS} more" if len(missing) > _SHOWN_ROWS else ""
            self.problem(
                "result_missing",
                f"record(s) {shown}{more} of root {root} were calculated (in {missing[0][0]}) "
                "but have no current result: rows were deleted from the results table",
                root,
                missing[0][1],
                missing[0][0],
            )

    def _results_of_files(self, locations: list[str]) -> pl.DataFrame:
        """The compared columns of the records of some enriched files, with their location.
        The files are parsed as one buffer (JSON parsing is most of the cost, and one large
        parse uses every core), only the fields compared."""
        parts: list[bytes] = []
        where: list[str] = []
        frames: list[pl.DataFrame] = []
        for location in locations:
            data = self.storage.read_bytes(location)
            if transform.is_parquet(data):
                try:
                    parquet = pl.read_parquet(
                        io.BytesIO(data), columns=["activity_event_id", "emissions_output"]
                    )
                except pl.exceptions.PolarsError as exc:
                    raise StorageError(f"{location} is not a readable Parquet file: {exc}") from exc
                located = parquet.with_columns(pl.lit(location, dtype=pl.String).alias("location"))
                frames.append(_values_frame(located))
                continue
            # JSON Lines of a workspace written before enriched files were Parquet.
            count = sum(1 for line in data.split(b"\n") if line.strip())
            if count:
                parts.append(data if data.endswith(b"\n") else data + b"\n")
                where += [location] * count
        if parts or not frames:
            frame = (
                pl.read_ndjson(b"".join(parts), schema=_ENRICHED_SCHEMA)
                if parts
                else pl.DataFrame(schema=_ENRICHED_SCHEMA)
            )
            located = frame.with_columns(pl.Series("location", where, dtype=pl.String))
            frames.append(_values_frame(located))
        return pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]

    def _check_execution_outputs(self, root: str, state: _Root, own: _Outputs) -> None:
        """An execution's stored summary must count and total its root's enriched files."""
        outputs = [
            e
            for e in self.database.executions_of_root(root)
            if e["status"] in ("SUCCEEDED", "FAILED") and e.get("output")
        ]
        complete = [
            matched
            for action, matched in state.result_files.values()
            if action == CALCULATION_COMPLETE
        ]
        if not outputs or not all(complete) or own.files != len(complete):
            return  # nothing stored, or a file is already reported: nothing to recompute
        totals = own.totals()
        for execution in outputs:
            output = execution["output"]
            stored = output.get("records_calculated")
            stored_totals = output.get("co2e_tonnes") or {}
            wrong = stored != own.records or any(
                not _same_number((stored_totals.get(method) or {}).get(gwp), value, absolute=1e-9)
                for method, by_gwp in totals.items()
                for gwp, value in by_gwp.items()
            )
            if wrong:
                self.problem(
                    "output_changed",
                    f"execution {execution['execution_id']} (root {root}) reports {stored} "
                    f"records calculated and CO2e {stored_totals}, but its enriched files, "
                    f"which the ledger verified, hold {own.records} records and CO2e "
                    f"{totals}: its stored output was changed",
                    root,
                )

    # -- 6. objects nobody recorded ------------------------------------------------------

    def check_unrecorded(self) -> None:
        storage = self.storage
        known: set[tuple[str, str]] = set()
        for state in self.roots.values():
            locations = [n.location for n in state.nodes.values()]
            locations += [location for location, _ in state.record_objects]
            for location in locations:
                if location is None:
                    continue
                try:
                    known.add(storage.split(location))
                except StorageError:
                    continue
        # A report's profile is written beside it; the node names the report.
        known |= {
            ("dq-results", key.rpartition("/")[0] + "/profile.json")
            for bucket, key in list(known)
            if bucket == "dq-results"
        }
        unfinished = {
            e["root_id"]
            for e in self.database.executions(limit=1 << 30)
            if e["status"] != "SUCCEEDED" and e["root_id"]
        }
        for bucket in UNRECORDED_BUCKETS:
            for url in storage.list(bucket):
                key = storage.split(url)[1]
                if (bucket, key) in known:
                    continue
                if bucket in ROOT_FOLDER_BUCKETS and key.split("/", 1)[0] in unfinished:
                    continue  # an execution that has not succeeded may have left it
                self.report.objects += 1
                self.problem(
                    "object_unrecorded",
                    f"file {url} is in the {bucket} bucket but no lineage node records it: "
                    "the ledger was replaced, emptied or cut short, or the file was added "
                    "by hand (restore the workspace's database from a backup)",
                    None,
                    None,
                    url,
                )

    def check_deletions(self, root_id: str | None) -> None:
        """Every result the database says was deleted has its RECORD_DELETED node: a
        deletion cannot be hidden by removing its node alone."""
        for record_id, calculated_at in self.database.unfinished_deletions():
            self.problem(
                "deletion_unfinished",
                f"the result of record {record_id} calculated at {calculated_at} was deleted "
                "(its tombstone and RECORD_DELETED node are recorded) but is still in the "
                "results table's files, which other engines read: run `carbonlake emissions "
                f"delete {record_id} --reason ...` again to finish it",
                None,
                record_id,
            )
        for record_id, root, node_id in self.database.deletions(root_id):
            found = self.database.lineage_node(root, node_id)
            if found is None or found["action_taken"] != RECORD_DELETED:
                self.problem(
                    "node_missing",
                    f"the result of record {record_id} (root {root}) was deleted, but its "
                    f"RECORD_DELETED node {node_id} is not in the ledger",
                    root,
                    node_id,
                )

    # -- 5. the ledger as a whole ------------------------------------------------------

    def check_gaps(self) -> None:
        for expected, seq, root, node in self.gaps:
            count = seq - expected
            self.problem(
                "ledger_gap",
                f"{count} node(s) are missing from the ledger: positions {expected}-{seq - 1} "
                f"are gone (the next one left is node {node} of root {root})",
                root,
            )

    def check_checkpoint(self, point: Checkpoint) -> None:
        if self.snapshot is not None:
            size, root = point.size, self.snapshot
        else:
            size, root = _ledger_root_of_first(self.database, point.size)
        if size < point.size:
            self.problem(
                "ledger_shrank",
                f"the ledger holds {size} nodes but checkpoint {point.root_hash} of "
                f"{point.created_at or 'an earlier time'} recorded {point.size}: nodes were "
                "removed",
            )
        elif root.hex() != point.root_hash:
            self.problem(
                "checkpoint_mismatch",
                f"the ledger's first {point.size} nodes no longer give checkpoint root "
                f"{point.root_hash} (they give {root.hex()}): nodes recorded before the "
                f"checkpoint of {point.created_at or 'an earlier time'} were changed, removed "
                "or reordered",
            )


_AMOUNT = pl.Struct({"amount": pl.Float64})
_ENRICHED_SCHEMA: dict[str, Any] = {
    "activity_event_id": pl.String,
    "emissions_output": pl.Struct(
        {
            "calculated_emissions": pl.Struct(
                {
                    "co2": _AMOUNT,
                    "ch4": _AMOUNT,
                    "n2o": _AMOUNT,
                    "co2e": pl.Struct({"ar4": _AMOUNT, "ar5": _AMOUNT, "ar6": _AMOUNT}),
                }
            ),
            # Results written before factors carried their scope have neither: null.
            "emissions_factor": pl.Struct({"scope": pl.Int64, "scope2_method": pl.String}),
        }
    ),
}
"""The fields of an enriched record that verify compares (the rest is not parsed)."""


def _values_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """(location, id, the RESULT_COLUMNS, scope, scope2_method, known) of parsed records."""
    emissions = pl.col("emissions_output").struct.field("calculated_emissions")
    co2e = emissions.struct.field("co2e")
    factor = pl.col("emissions_output").struct.field("emissions_factor")

    def amount(gas: pl.Expr) -> pl.Expr:
        return gas.struct.field("amount")

    return frame.select(
        pl.col("location"),
        pl.col("activity_event_id").alias("id"),
        amount(emissions.struct.field("co2")).alias("co2_tonnes"),
        amount(emissions.struct.field("ch4")).alias("ch4_tonnes"),
        amount(emissions.struct.field("n2o")).alias("n2o_tonnes"),
        amount(co2e.struct.field("ar4")).alias("co2e_ar4_tonnes"),
        amount(co2e.struct.field("ar5")).alias("co2e_ar5_tonnes"),
        amount(co2e.struct.field("ar6")).alias("co2e_ar6_tonnes"),
        factor.struct.field("scope").alias("scope"),
        factor.struct.field("scope2_method").alias("scope2_method"),
        pl.lit(True).alias("known"),
    )


def _differs(stored: pl.Expr, recomputed: pl.Expr) -> pl.Expr:
    """Whether two numbers differ beyond float noise (both missing: the same)."""
    close = (stored - recomputed).abs() <= 1e-9 * pl.max_horizontal(stored.abs(), recomputed.abs())
    same = (stored.is_null() & recomputed.is_null()) | close.fill_null(False)
    return ~same


class _Outputs:
    """What a root's calculation files hold: files, records and CO2e sums per method."""

    def __init__(self) -> None:
        self.files = 0
        self.records = 0
        self._sums: list[dict[str, dict[str, float]]] = []

    def add(self, files: int, records: int, sums: dict[str, dict[str, float]]) -> None:
        self.files += files
        self.records += records
        self._sums.append(sums)

    def totals(self) -> dict[str, dict[str, float]]:
        every = self._sums or [calc.co2e_by_method({})]
        return {
            method: {gwp: math.fsum(s[method][gwp] for s in every) for gwp in by_gwp}
            for method, by_gwp in every[0].items()
        }


def _same_number(a: Any, b: Any, absolute: float = 0.0) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=absolute)


def _records_in(data: bytes) -> int | None:
    """The records of a batch file's content: a Parquet file's row count (from its
    footer; None when it cannot be read), else its non-blank JSON Lines."""
    if transform.is_parquet(data):
        try:
            return int(pl.scan_parquet(io.BytesIO(data)).select(pl.len()).collect().item())
        except pl.exceptions.PolarsError:
            return None
    return sum(1 for line in data.splitlines() if line.strip())


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    return shown + (f" and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else "")


def verify(
    database: Database,
    storage: Storage,
    root_id: str | None = None,
    *,
    checkpoint: Checkpoint | None = None,
    stop_at_first: bool = True,
) -> VerifyReport:
    """Recompute and check the ledger (one root, or all of it) and the objects it names.

    Returns a report whose ``problems`` are empty when everything holds. With
    ``stop_at_first`` (the default) it returns at the first problem.
    """
    report = VerifyReport(root_id=root_id)
    verifier = _Verifier(database, storage, report, stop_at_first)
    merkle = MerkleAccumulator() if root_id is None else None
    if checkpoint is not None and checkpoint.size > 0:
        verifier.snapshot_at = checkpoint.size
    try:
        verifier.scan(root_id, merkle)
        if root_id is not None and report.nodes == 0:
            raise LineageError(f"no lineage recorded for root_id {root_id}")
        verifier.check_follow_ups()
        verifier.resolve_waiting()
        verifier.check_roots()
        verifier.check_objects()
        verifier.check_deletions(root_id)
        verifier.check_gaps()
        if merkle is not None:
            report.ledger_size = merkle.size
            report.ledger_root_hash = merkle.root().hex()
        if checkpoint is not None:
            report.checkpoint = checkpoint.to_dict()
            verifier.check_checkpoint(checkpoint)
        verifier.check_results(root_id)
        verifier.check_results_files(root_id)
        if root_id is None:
            verifier.check_unrecorded()
    except StopVerifying:
        report.complete = False
    report.roots = len(verifier.roots)
    return report


def render_report(report: VerifyReport) -> list[str]:
    """Readable lines of a :class:`VerifyReport`, the verdict first."""
    roots = f"{report.roots} root" + ("" if report.roots == 1 else "s")
    scope = f"root {report.root_id}" if report.root_id else f"the ledger ({roots})"
    if report.ok:
        lines = [
            f"OK: {scope} verified: {report.nodes} nodes, {report.objects} files, "
            f"{report.records} records accounted for, {report.results} results matched"
        ]
    else:
        note = "" if report.complete else " (stopped at the first; --all lists every one)"
        lines = [f"FAILED: {scope}: {len(report.problems)} problem(s){note}"]
        lines += [f"  {p.kind}: {p.message}" for p in report.problems]
    if report.ledger_size is not None:
        lines.append(f"ledger: {report.ledger_size} nodes, root hash {report.ledger_root_hash}")
    if report.checkpoint and report.complete:
        failed = any(p.kind in ("ledger_shrank", "checkpoint_mismatch") for p in report.problems)
        lines.append(
            f"checkpoint of {report.checkpoint['size']} nodes ({report.checkpoint['root_hash']}): "
            + ("NOT consistent" if failed else "consistent, the ledger only grew")
        )
    return lines
