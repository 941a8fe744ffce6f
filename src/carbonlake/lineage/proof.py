"""Inclusion proofs of one record against the ledger's digest, checkable without the workspace.

Like QLDB's digest and revision proofs: :func:`digest` gives one hash to keep outside the
workspace; :func:`prove` gives, for one calculated record, the record itself and the
Merkle audit paths that lead from it to that hash; :func:`verify_proof` checks such a
proof with nothing but the proof and the trusted hash (no database, no storage).

The digest is one RFC 6962 interior node over two trees (``docs/lineage.md`` has the
exact bytes)::

    root_hash = SHA-256(0x01 || ledger_root || files_root)

- ``ledger_root``: the ledger's Merkle root, as ``lineage checkpoint`` prints it;
- ``files_root``: the RFC 6962 Merkle root over one leaf per enriched file the ledger
  records, the file's canonical *entry* (its root_id, location, the SHA-256 its nodes
  recorded, the action that wrote it, the hash of its batch node, its record count and
  ``records_root``);
- ``records_root``: the RFC 6962 Merkle root over the file's records in file order, each
  leaf the canonical JSON of the record as ``emissions export --format jsonl`` gives it.

Per-record leaves are not hashed on the write path: a file's ``records_root`` is
computed the first time a digest or proof needs it, after checking the file's bytes
against the SHA-256 its ledger nodes recorded, and cached in the database by
(location, SHA-256). The list of enriched files comes from the ledger's per-file view
(:meth:`Database.lineage_record_groups`: one row per file, whatever stores the record
nodes behind it); a proof holds no per-record ledger row. Its ledger part is the
file-level trail (``RAW_DATA_INPUT`` down to the batch node) and the batch node's audit
path in the ledger tree.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import polars as pl

from .._exceptions import ConfigurationError, LineageError, StorageError
from ..calculate import read_enriched
from ..database import Database, utc_now
from ..storage import Storage
from .nodes import CALCULATION_COMPLETE, GLUE_BATCH_SPLIT, RAW_DATA_INPUT, RECALCULATION, node_hash
from .queries import trace
from .verify import ALGORITHM, checkpoint, interior_hash, leaf_data, leaf_hash

PROOF_FORMAT = "carbonlake-record-proof/1"
"""The ``format`` of a proof document."""
DIGEST_FORMAT = "carbonlake-digest/1"
"""The ``format`` of a digest document."""
FILE_ACTIONS = (CALCULATION_COMPLETE, RECALCULATION)
"""Actions whose nodes point at enriched files (calculated records)."""
RECORD_ID = "activity_event_id"
_EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofFailed(LineageError):
    """A proof does not lead to the trusted root hash; ``step`` names where it breaks."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step {step}: {message}")
        self.step = step


# -- canonical bytes and RFC 6962 paths --------------------------------------------


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys, no whitespace, UTF-8 (not ``\\u``-escaped), floats as
    Python's ``repr`` (the shortest text that reads back as the same double)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def file_records(data: bytes, location: str, position: int | None = None) -> list[dict[str, Any]]:
    """The records of an enriched file in file order (only the one at ``position``, if
    given), each the object that ``emissions export --format jsonl`` gives for it."""
    frame = read_enriched(data, location)
    if position is not None:
        frame = frame.slice(position, 1)
    if not frame.height:
        return []
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def _brace(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _deduplicated(values: list[Any], encode: Any) -> list[str]:
    # Factor amounts, units and sources repeat: encode each distinct value once. (A NaN is
    # found again by identity: the list holds the very objects put in the table.)
    table = {v: encode(v) for v in set(values)}
    return [table[v] for v in values]


def _float_token(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "null"
    return float.__repr__(float(value))


def _encoded(series: pl.Series) -> tuple[str, list[list[str]]] | None:
    """A column as a :meth:`str.format` template fragment and the columns of text that
    fill it: a struct without nulls is inlined field by field, anything else is one
    column of finished JSON texts. None for a type this encoder does not know."""
    dtype = series.dtype
    if isinstance(dtype, pl.Struct):
        unnested = series.struct.unnest()
        parts: list[str] = []
        columns: list[list[str]] = []
        for name in sorted(field.name for field in dtype.fields):
            inner = _encoded(unnested.get_column(name))
            if inner is None:
                return None
            parts.append(_brace(encode_basestring(name)) + ":" + inner[0])
            columns += inner[1]
        fragment = "{{" + ",".join(parts) + "}}"
        if not series.null_count():
            return fragment, columns
        texts = [fragment.format(*row) for row in zip(*columns, strict=True)] or ["{}"] * len(
            series
        )
        nulls = series.is_null().to_list()
        return "{}", [["null" if null else t for t, null in zip(texts, nulls, strict=True)]]
    values = series.to_list()
    if dtype.is_float():
        return "{}", [_deduplicated(values, _float_token)]
    if dtype == pl.Boolean:
        return "{}", [["null" if v is None else ("true" if v else "false") for v in values]]
    if dtype.is_integer():
        return "{}", [["null" if v is None else str(v) for v in values]]
    if dtype == pl.String:
        return "{}", [
            _deduplicated(values, lambda v: "null" if v is None else encode_basestring(v))
        ]
    if isinstance(dtype, pl.List) and (dtype.inner == pl.String or dtype.inner.is_numeric()):
        keys = [None if v is None else tuple(v) for v in values]
        try:
            return "{}", [
                _deduplicated(
                    keys, lambda v: "null" if v is None else canonical_json(list(v)).decode()
                )
            ]
        except ValueError:  # NaN inside a list: the slow path knows what export writes
            return None
    return None


def record_leaves(data: bytes, location: str) -> list[bytes]:
    """The canonical bytes of every record of an enriched file, in file order: what
    :func:`canonical_json` gives for each of :func:`file_records`, computed column by
    column (several times faster than encoding each record's object)."""
    frame = read_enriched(data, location)
    if not frame.height:
        return []
    encoded = _encoded(frame.to_struct("record"))
    if encoded is None:
        return [canonical_json(record) for record in file_records(data, location)]
    template, columns = encoded
    return [template.format(*row).encode("utf-8") for row in zip(*columns, strict=True)]


def _tree(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes (already ``SHA-256(0x00 || data)``)."""
    if not hashes:
        return _EMPTY_ROOT
    level = list(hashes)
    # Pairing level by level gives RFC 6962's left-balanced tree when an odd last node is
    # carried up unchanged.
    while len(level) > 1:
        paired = [interior_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def audit_path(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 audit path ``PATH(index, D[n])`` over leaf hashes, from the leaf up."""
    if not 0 <= index < len(hashes):
        raise AssertionError(
            f"leaf {index} of a tree of {len(hashes)}"
        )  # callers pass an index they hold
    path: list[bytes] = []
    low, high = 0, len(hashes)
    splits: list[tuple[int, int, int]] = []
    while high - low > 1:
        k = 1
        while k * 2 < high - low:
            k *= 2
        splits.append((low, low + k, high))
        if index < low + k:
            high = low + k
        else:
            low = low + k
    for start, middle, end in reversed(splits):
        if index < middle:
            path.append(_tree(hashes[middle:end]))
        else:
            path.append(_tree(hashes[start:middle]))
    return path


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root an audit path leads to from a leaf hash (RFC 9162 section 2.1.3.2), or
    None when the path cannot belong to leaf ``index`` of ``size`` leaves."""
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = interior_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = interior_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None


# -- the ledger's enriched files ---------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One enriched file as the digest covers it."""

    root_id: str
    storage_location: str
    object_sha256: str
    action_taken: str
    record_count: int
    records_root: str
    parent_node_hash: str | None
    """The ``node_hash`` of the batch node (``GLUE_BATCH_SPLIT``) the file's records hang
    under; None for a recalculated file (its records hang under their earlier nodes)."""
    parent_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry's fields (its canonical JSON is the files tree's leaf)."""
        return {
            "action_taken": self.action_taken,
            "object_sha256": self.object_sha256,
            "parent_node_hash": self.parent_node_hash,
            "record_count": self.record_count,
            "records_root": self.records_root,
            "root_id": self.root_id,
            "storage_location": self.storage_location,
        }

    def leaf(self) -> bytes:
        """The entry's leaf hash in the files tree."""
        return leaf_hash(canonical_json(self.to_dict()))


@dataclass(frozen=True)
class LedgerFile:
    """An enriched file as the ledger's file-level view records it."""

    root_id: str
    storage_location: str
    object_sha256: str
    action_taken: str
    parent_id: str | None
    parent_node_hash: str | None


def ledger_files(database: Database) -> list[LedgerFile]:
    """Every enriched file the ledger records, in the digest's order: roots in the order
    their ``RAW_DATA_INPUT`` was recorded, a root's files in the order they were first
    recorded. A pipeline file's parent is its batch node; a recalculated file has none."""
    roots = [row[1] for row in database.iter_lineage(actions=(RAW_DATA_INPUT,))]
    files: list[LedgerFile] = []
    for root_id in dict.fromkeys(roots):
        seen: set[tuple[str, str]] = set()
        parents: dict[str, str | None] = {}
        for group in database.lineage_record_groups(root_id, FILE_ACTIONS):
            key = (str(group["storage_location"]), str(group["object_sha256"]))
            if key in seen:
                continue
            seen.add(key)
            action = str(group["action_taken"])
            parent_id = str(group["parent_id"]) if action == CALCULATION_COMPLETE else None
            parent_hash = None
            if parent_id is not None:
                if parent_id not in parents:
                    node = database.lineage_node(root_id, parent_id)
                    parents[parent_id] = node["node_hash"] if node else None
                parent_hash = parents[parent_id]
                if parent_hash is None:
                    raise LineageError(
                        f"enriched file {key[0]} hangs under batch node {parent_id} of root_id "
                        f"{root_id}, which is not in the ledger: run `carbonlake lineage "
                        "verify` to see what is missing"
                    )
            files.append(LedgerFile(root_id, key[0], key[1], action, parent_id, parent_hash))
    return files


def _checked_bytes(storage: Storage, location: str, recorded_sha256: str) -> bytes:
    try:
        data = storage.read_bytes(location)
    except StorageError as exc:
        raise LineageError(
            f"cannot prove records of enriched file {location}: {exc}. Run `carbonlake "
            "lineage verify` to see what else is missing."
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded_sha256:
        raise LineageError(
            f"enriched file {location} has SHA-256 {actual}, but the ledger recorded "
            f"{recorded_sha256}: the file was changed after it was written, so none of its "
            "records can be proven. Run `carbonlake lineage verify` for the details."
        )
    return data


def _records_root(leaves: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    return hashes, _tree(hashes)


def file_entries(database: Database, storage: Storage) -> list[FileEntry]:
    """Every enriched file's entry, computing (and caching) the records roots not yet known."""
    files = ledger_files(database)
    cached = database.records_roots([(f.storage_location, f.object_sha256) for f in files])
    entries: list[FileEntry] = []
    new: list[tuple[str, str, int, str]] = []
    for file in files:
        location, sha = file.storage_location, file.object_sha256
        known = cached.get((location, sha))
        if known is None:
            leaves = record_leaves(_checked_bytes(storage, location, sha), location)
            known = (len(leaves), _records_root(leaves)[1].hex())
            new.append((location, sha, *known))
            cached[(location, sha)] = known
        entries.append(
            FileEntry(
                file.root_id,
                location,
                sha,
                file.action_taken,
                known[0],
                known[1],
                file.parent_node_hash,
                file.parent_id,
            )
        )
    database.save_records_roots(new)
    return entries


# -- digest ------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """The hash to keep outside the workspace, and what it covers."""

    root_hash: str
    ledger_size: int
    ledger_root_hash: str
    files: int
    files_root_hash: str
    records: int
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """The digest document (what ``lineage digest`` prints)."""
        return {
            "format": DIGEST_FORMAT,
            "algorithm": ALGORITHM,
            "root_hash": self.root_hash,
            "ledger": {"size": self.ledger_size, "root_hash": self.ledger_root_hash},
            "files": {
                "count": self.files,
                "root_hash": self.files_root_hash,
                "records": self.records,
            },
            "created_at": self.created_at,
        }


def _ledger_leaves(database: Database) -> list[bytes]:
    """The ledger tree's leaf hashes in insertion order (as ``lineage checkpoint`` hashes)."""
    return [leaf_hash(leaf_data(stored)) for stored in database.iter_lineage_hashes()]


def _digest_of(
    database: Database, entries: Sequence[FileEntry], ledger: Sequence[bytes] | None = None
) -> Digest:
    if ledger is None:
        point = checkpoint(database)
        ledger_size, ledger_root = point.size, point.root_hash
    else:
        ledger_size, ledger_root = len(ledger), _tree(ledger).hex()
    files_root = _tree([entry.leaf() for entry in entries])
    root = interior_hash(bytes.fromhex(ledger_root), files_root)
    return Digest(
        root_hash=root.hex(),
        ledger_size=ledger_size,
        ledger_root_hash=ledger_root,
        files=len(entries),
        files_root_hash=files_root.hex(),
        records=sum(entry.record_count for entry in entries),
        created_at=utc_now(),
    )


def digest(database: Database, storage: Storage) -> Digest:
    """The ledger's current digest: its Merkle root joined with every enriched file's entry."""
    return _digest_of(database, file_entries(database, storage))


# -- prove -------------------------------------------------------------------------


def _record_of(node_id: str, action: str) -> str:
    if action == RECALCULATION:
        return node_id.partition("#recalc-")[0]
    return node_id


def _find(storage: Storage, entry: FileEntry, record_id: str) -> tuple[bytes, int] | None:
    """The bytes of an entry's file and the record's position in it, if it holds it."""
    data = _checked_bytes(storage, entry.storage_location, entry.object_sha256)
    frame = read_enriched(data, entry.storage_location)
    if not frame.height or RECORD_ID not in frame.columns:
        return None
    ids = frame.get_column(RECORD_ID).cast(pl.String)
    hits = (ids == record_id).arg_true()
    if not len(hits):
        return None
    return data, int(hits[0])


def _choose_file(
    database: Database,
    storage: Storage,
    entries: Sequence[FileEntry],
    record_id: str,
    root_id: str | None,
) -> tuple[int, bytes, int]:
    """(entry index, the file's bytes, the record's position) of the version to prove:
    the record's current result if it has one (under ``root_id``, if given), else its
    newest calculated version."""
    candidates = [i for i, e in enumerate(entries) if root_id is None or e.root_id == root_id]
    if root_id is not None and not candidates:
        raise LineageError(f"no calculated records under root_id {root_id} in the ledger")
    current = database.emission(record_id)
    if current is not None:
        for index in candidates:
            entry = entries[index]
            if (entry.root_id, entry.storage_location) == (
                current.get("root_id"),
                current.get("enriched_location"),
            ):
                hit = _find(storage, entry, record_id)
                if hit is not None:
                    return index, *hit
    found: dict[str, tuple[int, bytes, int]] = {}
    for index in reversed(candidates):  # newest first: a root's first hit is its newest
        entry = entries[index]
        if entry.root_id in found:
            continue
        hit = _find(storage, entry, record_id)
        if hit is not None:
            found[entry.root_id] = (index, *hit)
    if not found:
        where = f" under root_id {root_id}" if root_id else ""
        raise LineageError(
            f"no calculated record {record_id!r}{where} in any enriched file the ledger "
            "records (a record that only failed has no result to prove; `carbonlake "
            f"lineage trace {record_id}` shows its trail)"
        )
    if len(found) > 1:
        raise LineageError(
            f"record {record_id!r} was calculated under {len(found)} root_ids "
            f"({', '.join(sorted(found))}) and has no current result; pick one with "
            "--root ROOT_ID"
        )
    return next(iter(found.values()))


def _status(database: Database, record_id: str, entry: FileEntry) -> dict[str, Any]:
    current = database.emission(record_id)
    if (
        current is not None
        and current.get("root_id") == entry.root_id
        and current.get("enriched_location") == entry.storage_location
    ):
        return {"current": True, "note": "this is the record's current result"}
    for old in reversed(database.emission_history(record_id)):
        if old.get("deletion_node_id") and old.get("enriched_location") == entry.storage_location:
            return {
                "current": False,
                "note": "an admin deleted this result (a tombstone): the proof shows it as "
                "it was calculated",
                "deleted_by": old.get("deleted_by"),
                "deletion_reason": old.get("deletion_reason"),
                "deletion_node_id": old.get("deletion_node_id"),
            }
    where = current.get("enriched_location") if current else None
    return {
        "current": False,
        "note": "not the record's current result"
        + (f" (that is in {where})" if where else " (it has none)"),
    }


TRAIL_FIELDS = (
    "root_id",
    "node_id",
    "parent_id",
    "action_taken",
    "storage_location",
    "recorded_at",
    "object_sha256",
    "row_number",
    "parent_hash",
    "node_hash",
)
"""The fields of a ledger node in a proof's trail (``node_hash`` last: the others give it)."""


def _trail(
    database: Database, entry: FileEntry, ledger: Sequence[bytes]
) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    """The file-level nodes from ``RAW_DATA_INPUT`` down to the file's batch node, and the
    batch node's audit path in the ledger tree (None, None for a recalculated file)."""
    if entry.parent_id is None or entry.parent_node_hash is None:
        return None, None
    chain = trace(database, entry.parent_id, entry.root_id)
    nodes = [{key: node.get(key) for key in TRAIL_FIELDS} for node in chain]
    wanted = leaf_hash(leaf_data(entry.parent_node_hash))
    try:
        index = ledger.index(wanted)
    except ValueError as exc:
        raise LineageError(
            f"batch node {entry.parent_id} of root_id {entry.root_id} is not in the ledger's "
            "tree: run `carbonlake lineage verify`"
        ) from exc
    path = audit_path(ledger, index)
    return nodes, {
        "leaf_index": index,
        "tree_size": len(ledger),
        "path": [h.hex() for h in path],
    }


def prove(
    database: Database, storage: Storage, record_id: str, root_id: str | None = None
) -> dict[str, Any]:
    """An inclusion proof of the newest calculated version of one record against the
    ledger's current digest (``root_hash``), as a JSON-ready document."""
    entries = file_entries(database, storage)
    index, data, position = _choose_file(database, storage, entries, record_id, root_id)
    entry = entries[index]
    leaves = record_leaves(data, entry.storage_location)
    hashes, records_root = _records_root(leaves)
    if records_root.hex() != entry.records_root:
        raise LineageError(
            f"enriched file {entry.storage_location} gives records root {records_root.hex()}, "
            f"but {entry.records_root} was cached for it: empty the proof_records_roots cache"
        )
    files_leaves = [e.leaf() for e in entries]
    ledger = _ledger_leaves(database)
    point = _digest_of(database, entries, ledger)
    trail, ledger_proof = _trail(database, entry, ledger)
    record = file_records(data, entry.storage_location, position)[0]
    if canonical_json(record) != leaves[position]:
        raise LineageError(
            f"record {record_id} of {entry.storage_location}: its exported object and its "
            "leaf differ; this is a bug of carbonlake's record encoder, please report it"
        )
    node_id = record_id
    if entry.action_taken == RECALCULATION:
        recalculation = entry.storage_location.split("/recalculated/")[-1].split("/")[0]
        node_id = f"{record_id}#recalc-{recalculation}"
    return {
        "format": PROOF_FORMAT,
        "algorithm": ALGORITHM,
        "record_id": record_id,
        "record": record,
        "lineage": {
            "root_id": entry.root_id,
            "node_id": node_id,
            "action_taken": entry.action_taken,
            "storage_location": entry.storage_location,
            "object_sha256": entry.object_sha256,
        },
        "record_proof": {
            "leaf_index": position,
            "tree_size": len(hashes),
            "path": [h.hex() for h in audit_path(hashes, position)],
        },
        "file": entry.to_dict(),
        "file_proof": {
            "leaf_index": index,
            "tree_size": len(entries),
            "path": [h.hex() for h in audit_path(files_leaves, index)],
        },
        "files_root_hash": point.files_root_hash,
        "trail": trail,
        "ledger_proof": ledger_proof,
        "ledger": {"size": point.ledger_size, "root_hash": point.ledger_root_hash},
        "root_hash": point.root_hash,
        "status": _status(database, record_id, entry),
        "created_at": point.created_at,
    }


# -- verify, without the workspace -------------------------------------------------


def _malformed(origin: str, what: str) -> ConfigurationError:
    return ConfigurationError(f"proof {origin} is malformed: {what}")


def _hex(value: Any, origin: str, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise _malformed(origin, f"{name} must be 64 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise _malformed(origin, f"{name} must be 64 hex digits") from exc


def _count(value: Any, origin: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(origin, f"{name} must be a whole number >= 0")
    return value


def _object(document: dict[str, Any], key: str, origin: str) -> dict[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise _malformed(origin, f"{key!r} must be a JSON object")
    return value


def _path_of(section: dict[str, Any], origin: str, name: str) -> tuple[int, int, list[bytes]]:
    index = _count(section.get("leaf_index"), origin, f"{name}.leaf_index")
    size = _count(section.get("tree_size"), origin, f"{name}.tree_size")
    steps = section.get("path")
    if not isinstance(steps, list):
        raise _malformed(origin, f"{name}.path must be a list of hex hashes")
    return index, size, [_hex(s, origin, f"{name}.path[{i}]") for i, s in enumerate(steps)]


def load_proof(text: str | bytes, origin: str) -> dict[str, Any]:
    """Parse a proof document; :class:`ConfigurationError` naming ``origin`` if it is not one."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _malformed(origin, f"not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise _malformed(origin, "not a JSON object")
    if document.get("format") != PROOF_FORMAT:
        raise _malformed(
            origin, f"'format' is {document.get('format')!r}, expected {PROOF_FORMAT!r}"
        )
    if document.get("algorithm") != ALGORITHM:
        raise _malformed(origin, f"'algorithm' must be {ALGORITHM!r}")
    return document


def verify_proof(
    document: dict[str, Any], trusted_root_hash: str, origin: str = ""
) -> dict[str, Any]:
    """Check a proof against a root hash kept outside the workspace.

    Returns ``{"ok": True, ...}``; raises :class:`ProofFailed` naming the step that
    fails, or :class:`ConfigurationError` for a document that is not a proof.
    Steps, bottom up: ``record`` (the record is the one named, and its lineage fields are
    its file's), ``record_path`` (the record's leaf and audit path give the file's
    ``records_root``), ``file_path`` (the file's entry and audit path give
    ``files_root_hash``), ``trail`` (the file-level nodes from ``RAW_DATA_INPUT`` to the
    file's batch node recompute their hashes and chain to each other and to the entry's
    ``parent_node_hash``), ``ledger_path`` (the batch node's audit path gives the ledger
    root), ``root`` (the ledger root and files root give ``root_hash``),
    ``root_hash`` (that is the trusted hash).
    """
    origin = origin or "document"
    try:
        trusted = bytes.fromhex(trusted_root_hash.strip())
    except ValueError:
        trusted = b""
    if len(trusted) != 32:
        raise ConfigurationError(
            f"--root-hash {trusted_root_hash!r} is not a root hash: it must be 64 hex digits "
            "(the root_hash of `carbonlake lineage digest`)"
        )
    record = _object(document, "record", origin)
    record_id = document.get("record_id")
    if not isinstance(record_id, str) or not record_id:
        raise _malformed(origin, "'record_id' must be a non-empty string")
    entry = _object(document, "file", origin)
    node = _object(document, "lineage", origin)
    ledger = _object(document, "ledger", origin)
    r_index, r_size, r_path = _path_of(
        _object(document, "record_proof", origin), origin, "record_proof"
    )
    f_index, f_size, f_path = _path_of(
        _object(document, "file_proof", origin), origin, "file_proof"
    )
    records_root = _hex(entry.get("records_root"), origin, "file.records_root")
    files_root = _hex(document.get("files_root_hash"), origin, "files_root_hash")
    ledger_root = _hex(ledger.get("root_hash"), origin, "ledger.root_hash")
    root = _hex(document.get("root_hash"), origin, "root_hash")
    for key in ("root_id", "storage_location", "object_sha256", "action_taken"):
        if not isinstance(entry.get(key), str):
            raise _malformed(origin, f"file.{key} must be a string")
    record_count = _count(entry.get("record_count"), origin, "file.record_count")
    try:
        leaf_data = canonical_json(record)
    except ValueError as exc:
        raise _malformed(origin, f"the record cannot be encoded canonically: {exc}") from exc

    if str(record.get(RECORD_ID)) != record_id:
        raise ProofFailed(
            "record",
            f"the record's {RECORD_ID} is {record.get(RECORD_ID)!r}, not {record_id!r}",
        )
    for key in ("root_id", "storage_location", "object_sha256", "action_taken"):
        if node.get(key) != entry[key]:
            raise ProofFailed(
                "record",
                f"the record's lineage {key} {node.get(key)!r} is not its file's {entry[key]!r}",
            )
    if _record_of(str(node.get("node_id")), entry["action_taken"]) != record_id:
        raise ProofFailed(
            "record", f"lineage node_id {node.get('node_id')!r} is not of {record_id!r}"
        )
    if r_size != record_count:
        raise ProofFailed(
            "record_path",
            f"the path is for a file of {r_size} records; the file's entry says {record_count}",
        )
    reached = root_from_path(leaf_hash(leaf_data), r_index, r_size, r_path)
    if reached != records_root:
        raise ProofFailed(
            "record_path",
            f"record {record_id}'s leaf and audit path lead to "
            f"{reached.hex() if reached else 'no root'}, not the records_root "
            f"{records_root.hex()} of {entry['storage_location']}: the record, its position "
            "or a path step was changed",
        )
    file_leaf = leaf_hash(canonical_json(entry))
    reached = root_from_path(file_leaf, f_index, f_size, f_path)
    if reached != files_root:
        raise ProofFailed(
            "file_path",
            f"the entry of {entry['storage_location']} and its audit path lead to "
            f"{reached.hex() if reached else 'no root'}, not files_root_hash "
            f"{files_root.hex()}: the file's entry or a path step was changed",
        )
    _check_trail(document, entry, ledger_root, origin)
    if interior_hash(ledger_root, files_root) != root:
        raise ProofFailed(
            "root",
            f"SHA-256(0x01 || ledger root || files root) is not the proof's root_hash "
            f"{root.hex()}: the ledger root, files root or root hash was changed",
        )
    if root != trusted:
        raise ProofFailed(
            "root_hash",
            f"the proof leads to root hash {root.hex()}, not the trusted {trusted.hex()}",
        )
    return {
        "ok": True,
        "record_id": record_id,
        "root_id": entry["root_id"],
        "storage_location": entry["storage_location"],
        "root_hash": root.hex(),
        "steps": [
            "record",
            "record_path",
            "file_path",
            *(["trail", "ledger_path"] if entry.get("parent_node_hash") else []),
            "root",
            "root_hash",
        ],
    }


def _trail_node(value: Any, origin: str, i: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(origin, f"trail[{i}] must be a JSON object")
    for key in TRAIL_FIELDS:
        field_value = value.get(key)
        if key == "row_number":
            if field_value is not None and (
                isinstance(field_value, bool) or not isinstance(field_value, int)
            ):
                raise _malformed(origin, f"trail[{i}].row_number must be a whole number or null")
        elif field_value is not None and not isinstance(field_value, str):
            raise _malformed(origin, f"trail[{i}].{key} must be a string or null")
    return value


def _check_trail(
    document: dict[str, Any], entry: dict[str, Any], ledger_root: bytes, origin: str
) -> None:
    """Steps ``trail`` and ``ledger_path`` of :func:`verify_proof`."""
    parent_hash = entry.get("parent_node_hash")
    trail = document.get("trail")
    if parent_hash is None:
        if trail is not None:
            raise ProofFailed("trail", "the file's entry has no batch node, but a trail is given")
        return
    if not isinstance(parent_hash, str):
        raise _malformed(origin, "file.parent_node_hash must be a string or null")
    if not isinstance(trail, list) or not trail:
        raise ProofFailed("trail", "the file's entry names a batch node, but no trail is given")
    nodes = [_trail_node(node, origin, i) for i, node in enumerate(trail)]
    previous: dict[str, Any] | None = None
    for i, node in enumerate(nodes):
        recomputed = node_hash(*(node[key] for key in TRAIL_FIELDS[:-1]))
        if recomputed != node["node_hash"]:
            raise ProofFailed(
                "trail",
                f"node {node['node_id']} ({node['action_taken']}) hashes to {recomputed}, not "
                f"its node_hash {node['node_hash']}: a field was changed",
            )
        if node["root_id"] != entry["root_id"]:
            raise ProofFailed("trail", f"trail[{i}] is of root_id {node['root_id']}")
        if previous is None:
            if node["action_taken"] != RAW_DATA_INPUT or node["parent_hash"] is not None:
                raise ProofFailed("trail", "the trail does not start at a RAW_DATA_INPUT node")
        elif (
            node["parent_id"] != previous["node_id"] or node["parent_hash"] != previous["node_hash"]
        ):
            raise ProofFailed(
                "trail",
                f"node {node['node_id']} is not chained to {previous['node_id']} before it",
            )
        previous = node
    last = nodes[-1]
    if last["action_taken"] != GLUE_BATCH_SPLIT or last["node_hash"] != parent_hash:
        raise ProofFailed(
            "trail",
            f"the trail ends at {last['node_id']} ({last['action_taken']}), not at the batch "
            f"node {parent_hash} the file's entry names",
        )
    section = document.get("ledger_proof")
    if not isinstance(section, dict):
        raise ProofFailed("ledger_path", "no ledger_proof for the batch node is given")
    index, size, path = _path_of(section, origin, "ledger_proof")
    reached = root_from_path(leaf_hash(leaf_data(parent_hash)), index, size, path)
    if reached != ledger_root:
        raise ProofFailed(
            "ledger_path",
            f"batch node {last['node_id']} and its audit path lead to "
            f"{reached.hex() if reached else 'no root'}, not the ledger root "
            f"{ledger_root.hex()}: the node or a path step was changed",
        )
