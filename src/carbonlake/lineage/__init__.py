"""Data lineage: the spec's lineage requests, the hashed ledger and what it answers.

``nodes`` names the actions and hashes a node, ``writer`` turns the spec's requests
into hashed ledger nodes and writes them in batches, ``queries`` answers trace, trail,
tree and outline; ``verify``, ``archive``, ``openlineage`` and ``proof`` read the whole
ledger back.

The names below are the ones stages and the command line use as ``lineage.X``.
"""

from .nodes import (
    ACTIONS,
    CALCULATION_COMPLETE,
    CALCULATION_FAILED,
    DQ_CHECK_FAIL,
    DQ_CHECK_PASS,
    FAILED_ATTEMPT,
    FILE_ACTIONS,
    GLUE_BATCH_SPLIT,
    LEDGER_ACTIONS,
    NODE_FIELDS,
    PARENT_ACTIONS,
    PROFILE_COMPLETE,
    RAW_DATA_INPUT,
    RECALCULATION,
    RECORD_ACTIONS,
    RECORD_DELETED,
    RECORD_FOLLOW_UPS,
    RECORD_NODES,
    SEALED_ACTIONS,
    TERMINAL_ACTIONS,
    canonical_node,
    new_node_id,
    node_hash,
    record_id_of,
    sibling_hash,
    sibling_template,
)
from .queries import (
    OutlineNode,
    outline,
    render_outline,
    render_trail,
    trace,
    trail,
    tree,
)
from .writer import (
    LineageWriter,
    RecordNodes,
    record_request,
    with_row_numbers,
)

__all__ = [
    "ACTIONS",
    "CALCULATION_COMPLETE",
    "CALCULATION_FAILED",
    "DQ_CHECK_FAIL",
    "DQ_CHECK_PASS",
    "FAILED_ATTEMPT",
    "FILE_ACTIONS",
    "GLUE_BATCH_SPLIT",
    "LEDGER_ACTIONS",
    "NODE_FIELDS",
    "PARENT_ACTIONS",
    "PROFILE_COMPLETE",
    "RAW_DATA_INPUT",
    "RECALCULATION",
    "RECORD_ACTIONS",
    "RECORD_DELETED",
    "RECORD_FOLLOW_UPS",
    "RECORD_NODES",
    "SEALED_ACTIONS",
    "TERMINAL_ACTIONS",
    "LineageWriter",
    "OutlineNode",
    "RecordNodes",
    "canonical_node",
    "new_node_id",
    "node_hash",
    "outline",
    "record_id_of",
    "record_request",
    "render_outline",
    "render_trail",
    "sibling_hash",
    "sibling_template",
    "trace",
    "trail",
    "tree",
    "with_row_numbers",
]
