"""Recalculation: recompute stored results with another factor-set version, on purpose.

Factors get revised; results either stay frozen or are recomputed deliberately.
:func:`recalculate` takes each record's current result, recomputes it from the
same input record (read back from its enriched file) with the chosen factor
set, and reports the difference per record and in total. With ``dry_run`` it
changes nothing. Otherwise it writes the new enriched records to a new file
(``enriched/<root_id>/recalculated/<recalculation_id>/part_NNNNN.parquet``, the old
file stays), replaces the current results (the previous ones move to the result
history and stay queryable), and records a ``RECALCULATION`` lineage node under
each record's previous node. A record the new set cannot calculate keeps its
current result and is reported with the reason.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import polars as pl

from .. import lake, lineage, transform
from .._exceptions import InputDataError
from ..database import EMISSION_COLUMNS, LINEAGE_TABLE, RESULTS_TABLE, Database, LakeFile
from ..storage import Storage
from . import RECORD_ID, SCOPE2_METHOD_OF, calculate_frame, enriched_bytes, read_enriched
from .factors import FactorSet

GWP_SETS = ("ar4", "ar5", "ar6")


def _tonnes(row: dict[str, Any]) -> dict[str, float]:
    return {g: float(row[f"co2e_{g}_tonnes"] or 0.0) for g in GWP_SETS}


def _methods(row: dict[str, Any]) -> list[str]:
    """The scope 2 method totals a result counts in: both, unless it is scope 2 (then
    the one of its factor, none if its factor said none)."""
    if row.get("scope") != 2:
        return list(SCOPE2_METHOD_OF)
    return [m for m, attribute in SCOPE2_METHOD_OF.items() if row.get("scope2_method") == attribute]


def _zero() -> dict[str, dict[str, float]]:
    return {m: dict.fromkeys(GWP_SETS, 0.0) for m in SCOPE2_METHOD_OF}


def _add(total: dict[str, dict[str, float]], row: dict[str, Any]) -> None:
    for method in _methods(row):
        for g, value in _tonnes(row).items():
            total[method][g] += value


def recalculate(
    storage: Storage,
    database: Database,
    factor_set: FactorSet,
    *,
    root_id: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Recompute current results with ``factor_set``; returns the per-record and total
    differences (and, unless ``dry_run``, stores the new results)."""
    current = database.emissions_of_root(root_id)
    if not current:
        where = f"root_id {root_id}" if root_id else "this workspace"
        raise InputDataError(f"no calculated results in {where} to recalculate")
    recalculation_id = uuid.uuid4().hex[:12]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in current:
        groups[(row["root_id"], row["enriched_location"])].append(row)

    details: list[dict[str, Any]] = []
    committed: list[LakeFile] = []
    failed: list[dict[str, Any]] = []
    # Totals per scope 2 method (location-based and market-based, never added).
    totals = {"before": _zero(), "after": _zero()}
    for (root, location), rows in sorted(groups.items()):
        before = {r["activity_event_id"]: r for r in rows}
        frame = read_enriched(storage.read_bytes(location), location)
        ids = pl.DataFrame({RECORD_ID: list(before)}, schema={RECORD_ID: pl.String})
        inputs = frame.join(ids, on=RECORD_ID, how="semi", maintain_order="left").drop(
            "emissions_output", strict=False
        )
        result = calculate_frame(inputs, factor_set, PurePosixPath(location).name)
        for record_id, reason in zip(
            result.failed[RECORD_ID].to_list(), result.failed["error"].to_list(), strict=True
        ):
            failed.append({"activity_event_id": record_id, "root_id": root, "reason": reason})
            # unchanged: counts the same before and after
            _add(totals["before"], before[record_id])
            _add(totals["after"], before[record_id])
        after_rows = result.database_rows.to_dicts()
        for row in after_rows:
            old, new = _tonnes(before[row["activity_event_id"]]), _tonnes(row)
            _add(totals["before"], before[row["activity_event_id"]])
            _add(totals["after"], row)
            details.append(
                {
                    "activity_event_id": row["activity_event_id"],
                    "root_id": root,
                    "factor_before": f"{before[row['activity_event_id']]['factor_set']}@"
                    f"{before[row['activity_event_id']]['factor_version']}",
                    "co2e_tonnes_before": old,
                    "co2e_tonnes_after": new,
                    "difference": {g: new[g] - old[g] for g in GWP_SETS},
                }
            )
        if not dry_run and after_rows:
            committed += _store(
                storage, database, root, location, rows, result, factor_set, recalculation_id
            )
    # One commit per root and table: a new snapshot of the results table replaces the
    # root's rows; the lineage table's snapshot adds the recalculation's record nodes.
    for root in sorted({f.root_id or "" for f in committed}):
        lake.commit(
            database,
            storage,
            f"recalculation:{recalculation_id}",
            root,
            files=[f for f in committed if (f.root_id or "") == root],
            tables=(RESULTS_TABLE, LINEAGE_TABLE),
        )
    return {
        "recalculation_id": None if dry_run else recalculation_id,
        "dry_run": dry_run,
        "factor_set": factor_set.label,
        "root_id": root_id,
        "records": len(details) + len(failed),
        "records_recalculated": len(details),
        "records_changed": sum(1 for d in details if any(d["difference"].values())),
        "records_failed": len(failed),
        "failed": failed,
        "co2e_tonnes": {
            **totals,
            "difference": {
                m: {g: totals["after"][m][g] - totals["before"][m][g] for g in GWP_SETS}
                for m in SCOPE2_METHOD_OF
            },
        },
        "records_detail": details,
    }


def _store(
    storage: Storage,
    database: Database,
    root_id: str,
    old_location: str,
    old_rows: list[dict[str, Any]],
    result: Any,
    factor_set: FactorSet,
    recalculation_id: str,
) -> list[LakeFile]:
    """Write the new enriched file and the new results file, and register it with the
    lineage nodes in one transaction (the results table commit follows)."""
    name = transform.enriched_name(PurePosixPath(old_location).name)
    location = storage.url("enriched", f"{root_id}/recalculated/{recalculation_id}/{name}")
    node_of = {
        r["activity_event_id"]: f"{r['activity_event_id']}#recalc-{recalculation_id}"
        for r in old_rows
    }
    parents = {
        r["activity_event_id"]: r["lineage_node_id"] or r["activity_event_id"] for r in old_rows
    }
    rows = result.database_rows.with_columns(
        pl.lit(root_id).alias("root_id"),
        pl.lit(f"recalculation:{recalculation_id}").alias("execution_id"),
        pl.lit(location).alias("enriched_location"),
        pl.lit(datetime.now(UTC).isoformat()).alias("calculated_at"),
        pl.col("activity_event_id").replace_strict(node_of).alias("lineage_node_id"),
    ).select(EMISSION_COLUMNS)
    results_file = lake.write_results(
        storage,
        rows,
        root_id=root_id,
        execution_id=f"recalculation:{recalculation_id}",
        name=PurePosixPath(name).stem,
    )
    data = enriched_bytes(result.enriched)
    storage.write_bytes(location, data)
    writer = lineage.LineageWriter(database, storage, batch_size=1 << 62)
    sha = hashlib.sha256(data).hexdigest()  # the bytes just written, not read back
    # The records' nodes, read at once (they may be in the ledger's record files).
    old_nodes = database.lineage_nodes(root_id, list(parents.values()))
    writer.remember(old_nodes)
    old_row_numbers = {r["node_id"]: r["row_number"] for r in old_nodes}
    record_ids = result.database_rows["activity_event_id"].to_list()
    files = [results_file] if results_file else []
    groups = [
        lineage.RecordNodes(
            [node_of[record_id]],
            parents[record_id],
            lineage.RECALCULATION,
            location,
            sha,
            [old_row_numbers.get(parents[record_id])],
        )
        for record_id in record_ids
    ]
    seal_parent = _record_files_parent(database, root_id)
    if seal_parent is None:
        # A root without the pipeline's trail (results of the calculate task alone): the
        # nodes are ledger rows, as the spec's lineage task writes them.
        for group in groups:
            writer.add_many(
                root_id,
                group.node_ids,
                group.parent_id,
                group.action_taken,
                group.storage_location,
                object_sha256=group.object_sha256,
                row_numbers=group.row_numbers,
            )
    else:
        # One file of the lineage table, sealed by a RECORD_NODES node, as the map's.
        nodes_file, nodes_bytes = lake.lineage_file(
            storage,
            writer.record_nodes(root_id, groups),
            root_id=root_id,
            execution_id=f"recalculation:{recalculation_id}",
            name=PurePosixPath(name).stem,
        )
        storage.write_bytes(nodes_file.file_path, nodes_bytes)
        writer.add(
            root_id,
            lineage.new_node_id(),
            seal_parent,
            lineage.RECORD_NODES,
            nodes_file.file_path,
            object_sha256=nodes_file.sha256,
        )
        files.append(nodes_file)
    # The new results file is registered with its lineage nodes in one transaction, then
    # committed: a new snapshot of the results table replaces the root's earlier rows.
    database.commit_results(files, record_ids, writer.take())
    return files


def _record_files_parent(database: Database, root_id: str) -> str | None:
    """The node a root's record files hang under (its DQ_CHECK_PASS node), if it has one."""
    for row in database.iter_lineage(root_id, actions=(lineage.DQ_CHECK_PASS,)):
        return str(row[2])
    return None
