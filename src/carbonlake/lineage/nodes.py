"""Lineage nodes: the actions of the spec's lineage requests, node ids and the node hash.

A ledger node is keyed by (``root_id``, ``node_id``). File-level nodes get a generated
``node_id`` (:func:`new_node_id`); record nodes use the record's ``activity_event_id``.

The node hash is SHA-256 over :func:`canonical_node`: a JSON object with sorted
keys, no whitespace and UTF-8 text (RFC 8785 for these string, integer and null
fields) of the node's fields and its parent's hash. ``docs/lineage.md`` says
how to recompute it; :mod:`carbonlake.lineage.verify` does.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import TYPE_CHECKING

from ..database import LINEAGE_COLUMNS
from ..database import RECORD_NODES as RECORD_NODES

if TYPE_CHECKING:
    import polars as pl  # imported where used: opening a workspace needs no Polars

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
SEALED_ACTIONS = (CALCULATION_COMPLETE, CALCULATION_FAILED, RECALCULATION)
"""Record actions whose nodes the pipeline and ``recalculate`` write to columnar files of
the lineage table, each file sealed by a ``RECORD_NODES`` ledger node (the spec's
lineage requests, redrives and deletions still add them to the ledger's own rows)."""
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


_JSON_ESCAPED = ['"', "\\", *map(chr, range(0x20))]
"""The characters :func:`json.encoder.encode_basestring` escapes (with ``ensure_ascii``
off): a string without them is its JSON text between two quotes."""


def sibling_hash_column(nodes: pl.DataFrame) -> pl.Series:
    """:func:`sibling_hash` of every row of a frame of ``head``, ``middle`` and ``tail``
    (the parts of a :func:`sibling_template`), ``node_id`` and ``row_number``, computed by
    Polars: the canonical text by string concatenation, its SHA-256 by polars-hash; equal,
    node by node, to :func:`node_hash` of the same fields."""
    import polars as pl
    import polars_hash as plh

    ids = nodes.get_column("node_id").cast(pl.String)
    if ids.str.contains_any(_JSON_ESCAPED).any():
        # Rare (ids with quotes or control characters): Python's own JSON escaping.
        quoted = pl.Series([encode_basestring(n) for n in ids.to_list()], dtype=pl.String)
    else:
        quoted = '"' + ids + '"'
    canonical = pl.concat_str(
        [
            pl.col("head"),
            pl.lit(quoted),
            pl.col("middle"),
            pl.col("row_number").cast(pl.Int64).cast(pl.String).fill_null("null"),
            pl.col("tail"),
        ]
    )
    sha256 = plh.CryptographicHashingNameSpace(canonical).sha2_256()
    return nodes.select(sha256.alias("node_hash")).to_series()


# -- names of record nodes ----------------------------------------------------------


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
