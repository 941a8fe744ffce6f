"""The lineage ledger: one file's tree, one record's trail, verification."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ... import lineage as lineage_module
from ...lineage import verify as lineage_verify
from .._problems import responses
from .._state import ServiceDep


class VerifyRequest(BaseModel):
    """What to verify."""

    root_id: str | None = Field(
        None, max_length=200, description="One input file's trail; omitted: the whole ledger."
    )
    all_problems: bool = Field(
        False, strict=True, description="Go on after the first problem and list every one."
    )


def build(read: Any, write: Any) -> APIRouter:
    """The lineage routes (reads; verify recomputes but changes nothing)."""
    router = APIRouter(prefix="/lineage", tags=["lineage"], dependencies=[read])

    @router.get(
        "/trace/{node_id:path}",
        summary="A record's trail back to its raw input file",
        responses=responses(401, 403),
    )
    def trace(
        node_id: str,
        service: ServiceDep,
        root_id: Annotated[
            str | None,
            Query(max_length=200, description="The input file's root_id, when ambiguous."),
        ] = None,
    ) -> dict[str, Any]:
        """The nodes from RAW_DATA_INPUT down to the record (its activity_event_id) with
        their actions, locations, times and hashes; the record's row in the input file;
        its current result. `complete` is false where the trail breaks, and
        `missing_node_id` names the node that is not in the ledger."""
        return lineage_module.trail(service.context.database, node_id, root_id or None)

    @router.post(
        "/verify",
        summary="Verify the ledger (or one file's trail)",
        responses=responses(401, 403),
    )
    def verify(service: ServiceDep, request: VerifyRequest | None = None) -> dict[str, Any]:
        """Recompute every node's hash and parent link, check that every trail reaches
        RAW_DATA_INPUT and every batch record has a terminal node, and check every stored
        file against the SHA-256 recorded for it. `ok` is the verdict; `problems` says
        what is wrong, where."""
        request = request or VerifyRequest(root_id=None, all_problems=False)
        report = lineage_verify.verify(
            service.context.database,
            service.context.storage,
            request.root_id or None,
            stop_at_first=not request.all_problems,
        )
        document = report.to_dict()
        document["lines"] = lineage_verify.render_report(report)
        return document

    @router.get(
        "/{root_id}",
        summary="One input file's lineage tree",
        responses=responses(401, 403),
    )
    def tree(
        root_id: str,
        service: ServiceDep,
        records: Annotated[
            int, Query(ge=0, le=100, description="Record nodes shown per batch.")
        ] = 3,
        batches: Annotated[
            int, Query(ge=1, le=1000, description="Nodes shown under one node.")
        ] = 20,
    ) -> dict[str, Any]:
        """File and batch nodes in full; record nodes folded to counts per batch with the
        first few listed (`records`); nodes whose parent is missing hang under a stand-in
        marked `missing`."""
        tops = lineage_module.outline(service.context.database, root_id, records, batches)
        return {"root_id": root_id, "tree": [top.to_dict() for top in tops]}

    return router
