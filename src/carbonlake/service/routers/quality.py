"""Data-quality results: one input file's validation report and profile."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path

from ... import quality as quality_module
from ..._exceptions import CarbonlakeError
from .._problems import ProblemError, responses
from .._state import Service, ServiceDep

ROOT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""root_ids are UUIDs; anything that could leave dq-results/ is refused."""
REPORT = "report.json"
PROFILE = "profile.json"


def _document(service: Service, root_id: str, name: str) -> dict[str, Any] | None:
    storage = service.context.storage
    if "/" in root_id:
        raise ProblemError(400, f"root_id {root_id!r} must not contain '/'")
    try:
        location = storage.url("dq-results", f"{root_id}/{name}")
    except CarbonlakeError as exc:
        raise ProblemError(400, f"root_id {root_id!r} cannot name a report: {exc}") from exc
    if not storage.exists(location):
        return None
    try:
        document: dict[str, Any] = json.loads(storage.read_bytes(location))
    except json.JSONDecodeError as exc:
        raise ProblemError(503, f"{location} is not valid JSON: {exc}") from exc
    return document


def build(read: Any, write: Any) -> APIRouter:
    """The data-quality routes (reads)."""
    router = APIRouter(prefix="/quality", tags=["quality"], dependencies=[read])

    @router.get(
        "/{root_id}",
        summary="An input file's data-quality report and profile",
        responses=responses(401, 403),
    )
    def results(
        root_id: Annotated[
            str,
            Path(
                max_length=200,
                pattern=ROOT_ID_PATTERN,
                description="The input file's root_id (its execution's root_id).",
            ),
        ],
        service: ServiceDep,
    ) -> dict[str, Any]:
        """The validation report (every rule's status, observed value, failed count,
        reason and failing samples with row numbers and record ids), one readable row per
        rule (`rules`), and the column profile."""
        report = _document(service, root_id, REPORT)
        if report is None:
            raise ProblemError(
                404, f"no data-quality report for root_id {root_id!r}; has its file been run?"
            )
        return {
            "root_id": root_id,
            "passed": quality_module.report_passed(report),
            "rules": quality_module.table_rows(report),
            "report": report,
            "profile": _document(service, root_id, PROFILE),
        }

    return router
