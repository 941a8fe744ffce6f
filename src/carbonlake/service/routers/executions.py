"""Executions: the list with live status, one execution's stages, its event history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ...database import EXECUTION_LIST_FIELDS
from ...executions.states import MapState, State, base_state
from .._problems import ProblemError, responses
from .._state import Service, ServiceDep

ExecutionStatus = Literal[
    "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "ABORTED", "SKIPPED", "REJECTED"
]

LIST_FIELDS = EXECUTION_LIST_FIELDS

STAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("landed", "Landed", (State.RAW_DATA_INPUT,)),
    (
        "profile",
        "Data-quality profile",
        (State.DQ_SETUP, State.DQ_PROFILE, State.DQ_CLEANUP, State.PROFILE_COMPLETE),
    ),
    (
        "check",
        "Data-quality check",
        (
            State.DQ_CHECK_RESULTS,
            State.DQ_CHECK_PASS,
            State.DQ_CHECK_FAIL,
            State.DQ_ERROR_NOTIFICATION,
        ),
    ),
    ("transform", "Transform", (State.TRANSFORM,)),
    ("split", "Split into batches", (State.BATCH_SPLIT,)),
    ("calculate", "Calculate emissions", (State.MAP,)),
)
"""The stages a page shows, and the spec's states in each."""


def _brief(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if not summary:
        return None
    keys = ("records_in", "records_calculated", "records_failed", "co2e_tonnes")
    return {key: summary.get(key) for key in keys}


def stages(
    events: list[dict[str, Any]], summary: dict[str, Any], status: str
) -> list[dict[str, Any]]:
    """Each stage's status (pending, running, succeeded, failed, skipped), times and, for
    the calculation, batches done of all."""
    state_of: dict[str, str] = {}
    started: dict[str, str] = {}
    finished: dict[str, str] = {}
    for event in events:
        state = event.get("state") or ""
        base = base_state(state)
        kind = event["event_type"]
        if kind in ("StateEntered", "MapIterationStarted"):
            started.setdefault(base, event["at"])
            state_of.setdefault(state, "running")
        elif kind in ("TaskSucceeded", "MapIterationSucceeded"):
            state_of[state] = "succeeded"
            finished[base] = event["at"]
        elif kind in ("TaskFailed", "MapIterationFailed"):
            state_of[state] = "failed"
            finished[base] = event["at"]
    ended = status not in ("RUNNING", "QUEUED")
    dq = summary.get("data_quality") or {}
    dq_failed = dq.get("status") == "FAILED"
    found = []
    for stage, title, states in STAGES:
        if stage == "calculate":
            mine = [v for k, v in state_of.items() if MapState.is_map(k)]
        else:
            mine = [state_of[s] for s in states if s in state_of]
        if "failed" in mine or (stage == "check" and dq_failed):
            value = "failed"
        elif "running" in mine:
            value = "stopped" if ended else "running"
        elif mine and (stage != "calculate" or ended or _all_batches(summary, mine)):
            value = "succeeded"
        elif mine:
            value = "running"
        elif dq_failed and stage in ("transform", "split", "calculate"):
            value = "skipped"
        else:
            value = "pending"
        entry: dict[str, Any] = {
            "stage": stage,
            "title": title,
            "status": value,
            "started_at": started.get(State.MAP if stage == "calculate" else states[0]),
            "finished_at": max(
                (
                    finished[s]
                    for s in ((State.MAP,) if stage == "calculate" else states)
                    if s in finished
                ),
                default=None,
            ),
        }
        if stage == "calculate" and summary.get("batches") is not None:
            entry["batches_done"] = sum(1 for v in mine if v == "succeeded")
            entry["batches"] = summary["batches"]
        found.append(entry)
    return found


def _all_batches(summary: dict[str, Any], mine: list[str]) -> bool:
    total = summary.get("batches")
    return total is not None and sum(1 for v in mine if v == "succeeded") >= total


def _detail(service: Service, execution_id: str) -> dict[str, Any]:
    database = service.context.database
    execution = database.get_execution(execution_id)
    if execution is None:
        job = service.runner.job(execution_id)
        if job is None:
            raise ProblemError(404, f"no execution {execution_id!r}; GET /executions lists them")
        return {**job, "summary": None, "stages": stages([], {}, job["status"])}
    summary = service.pipeline.summary(execution_id)
    events = database.execution_events(execution_id)
    document = {key: execution[key] for key in (*LIST_FIELDS, "object_sha256", "redrive_count")}
    document["summary"] = summary
    document["stages"] = stages(events, summary, execution["status"])
    return document


def build(read: Any, write: Any) -> APIRouter:
    """The execution routes (reads)."""
    router = APIRouter(prefix="/executions", tags=["executions"], dependencies=[read])

    @router.get("", summary="List executions, newest first", responses=responses(401, 403))
    def list_executions(
        service: ServiceDep,
        status: ExecutionStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Executions with their live status (QUEUED and RUNNING ones first while they wait
        or run), each with its record counts and CO2e once known."""
        database = service.context.database
        items: list[dict[str, Any]] = []
        for job in service.runner.jobs():
            if database.get_execution(job["execution_id"]) is None and (
                status is None or job["status"] == status
            ):
                items.append({**job, "summary": None})
        if status not in ("QUEUED", "SKIPPED", "REJECTED"):
            for execution in database.executions(status, limit):
                item = {key: execution[key] for key in LIST_FIELDS}
                item["summary"] = _brief(execution["output"])
                items.append(item)
        return {"executions": items[:limit]}

    @router.get(
        "/{execution_id}",
        summary="One execution: status, stages and run summary",
        responses=responses(401, 403),
    )
    def get_execution(execution_id: str, service: ServiceDep) -> dict[str, Any]:
        """The execution's status, its stages (with batches done while it calculates) and
        its run summary: data-quality verdict and reasons, records in, calculated and
        failed, CO2e totals."""
        return _detail(service, execution_id)

    @router.get(
        "/{execution_id}/history",
        summary="An execution's event history",
        responses=responses(401, 403),
    )
    def history(execution_id: str, service: ServiceDep) -> dict[str, Any]:
        """States entered and completed, retries, map iterations, failures with their error
        and cause, in order."""
        database = service.context.database
        if database.get_execution(execution_id) is None:
            if service.runner.job(execution_id) is not None:
                return {"execution_id": execution_id, "events": []}
            raise ProblemError(404, f"no execution {execution_id!r}; GET /executions lists them")
        return {"execution_id": execution_id, "events": database.execution_events(execution_id)}

    return router
