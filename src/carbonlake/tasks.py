"""The spec's tasks as Python callables, one per heading of the spec.

Each takes the documented input dict and returns the documented output dict,
wrapper keys included (:mod:`carbonlake.documents` types them). They use the active
settings (workspace from ``CARBONLAKE_WORKSPACE`` or ``carbonlake.toml``) unless given
``settings=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from . import calculate as calc
from . import kickoff as kick
from . import lineage, notify, quality
from . import transform as tf
from ._exceptions import InputDataError
from .context import Context
from .documents import (
    CalculateEvent,
    CalculateOutput,
    DqCheckEvent,
    DqCheckOutput,
    DqCleanupEvent,
    DqProfileEvent,
    DqProfileOutput,
    DqSetupEvent,
    DqSetupOutput,
    EnumerateEvent,
    EnumerateOutput,
    KickoffOutput,
    LineageOutput,
    LineageRequest,
    NotificationEvent,
    TransformEvent,
    TransformOutput,
)
from .settings import Settings, load_settings

__all__ = [
    "calculate_co2e",
    "data_lineage",
    "dq_check_results",
    "dq_cleanup",
    "dq_error_notification",
    "dq_profile",
    "dq_setup",
    "enumerate_batches",
    "kickoff",
    "transform",
]

T = TypeVar("T")


@contextmanager
def _context(settings: Settings | None) -> Iterator[Context]:
    context = Context.open(settings or load_settings())
    try:
        yield context
    finally:
        context.close()


def _with_context(settings: Settings | None, call: Callable[[Context], T]) -> T:
    with _context(settings) as context:
        return call(context)


def kickoff(
    event: dict[str, Any], *, settings: Settings | None = None
) -> KickoffOutput | list[KickoffOutput]:
    """S3 event in; ``{"input": {"root_id", "storage_location"}}`` out.

    An event with several records gives a list with one such dict per object (an event
    that names none, an ``s3:TestEvent``, an empty list). EventBridge "Object Created"
    events and SQS messages holding either are taken too (:mod:`carbonlake.kickoff`).
    """
    outputs: list[KickoffOutput] = [
        {"input": item["input"]}
        for item in _with_context(settings, lambda c: kick.parse_event(event, c.storage))
    ]
    return outputs[0] if len(outputs) == 1 else outputs


def data_lineage(request: LineageRequest, *, settings: Settings | None = None) -> LineageOutput:
    """A lineage request of the spec in; ``{"data_lineage": {...}}`` out (written durably)."""

    def call(context: Context) -> LineageOutput:
        writer = lineage.LineageWriter(context.database, context.storage)
        output = lineage.record_request(request, writer)
        writer.flush()
        return output

    return _with_context(settings, call)


def dq_setup(event: DqSetupEvent, *, settings: Settings | None = None) -> DqSetupOutput:
    """``{"event_type": "SETUP", "storage_location", "root_id"}`` in; resource names out."""
    output = _with_context(
        settings, lambda c: quality.setup(event, database=c.database, rules=c.rules)
    )
    return {"data_quality": output["data_quality"]}


def dq_profile(event: DqProfileEvent, *, settings: Settings | None = None) -> DqProfileOutput:
    """``{"Name": job_name}`` in; ``{"data_quality": {"results": {...}}}`` out."""
    return _with_context(
        settings,
        lambda c: quality.profile(
            event,
            storage=c.storage,
            database=c.database,
            factor_set=c.factor_set,
            max_columns=c.settings.quality.max_columns,
        ),
    )


def dq_cleanup(event: DqCleanupEvent, *, settings: Settings | None = None) -> DqCleanupEvent:
    """``{"event_type": "CLEANUP", dataset/ruleset/job names}`` in; the same event out."""
    _with_context(settings, lambda c: quality.cleanup(event, database=c.database))
    return event


def dq_check_results(event: DqCheckEvent, *, settings: Settings | None = None) -> DqCheckOutput:
    """``{"storage_location", "dq_results"}`` in; ``{"status", "storage_location"}`` out."""
    return _with_context(settings, lambda c: quality.check_results(event, storage=c.storage))


def dq_error_notification(
    event: NotificationEvent, *, settings: Settings | None = None
) -> NotificationEvent:
    """``{"subject", "message"}`` in; logged, recorded, e-mailed if configured; event out."""
    return _with_context(
        settings,
        lambda c: notify.send(event, settings=c.settings.notify, database=c.database),
    )


def transform(event: TransformEvent, *, settings: Settings | None = None) -> TransformOutput:
    """``{"JobName", "Arguments": {"--UNIQUE_DIRECTORY": root_id}}`` in; job state out.

    The raw file is found from the ledger (the root's ``DQ_CHECK_PASS`` node) unless
    ``Arguments["--INPUT_LOCATION"]`` names it.
    """

    def call(context: Context) -> TransformOutput:
        arguments = event.get("Arguments") or {}
        root_id = arguments.get("--UNIQUE_DIRECTORY")
        raw_location = arguments.get("--INPUT_LOCATION")
        if not raw_location and root_id:
            passed = [
                node
                for node in context.database.lineage_of_root(root_id)
                if node["action_taken"] == lineage.DQ_CHECK_PASS
            ]
            if passed:
                raw_location = passed[-1]["storage_location"]
        if not raw_location:
            raise InputDataError(
                f"no raw file known for root_id {root_id!r}: it has no DQ_CHECK_PASS lineage "
                "node; pass Arguments['--INPUT_LOCATION']"
            )
        output = tf.run(
            event,
            storage=context.storage,
            batch_size=context.settings.pipeline.batch_size,
            raw_location=raw_location,
        )
        return {
            "job_name": output["job_name"],
            "job_id": output["job_id"],
            "job_state": output["job_state"],
        }

    return _with_context(settings, call)


def enumerate_batches(
    event: EnumerateEvent, *, settings: Settings | None = None
) -> EnumerateOutput:
    """``{"batch_location_dir": root_id}`` in; ``{"batches": [{node_id, storage_location}]}``."""
    output = _with_context(settings, lambda c: tf.enumerate_batches(event, storage=c.storage))
    return {"batches": output["batches"]}


def calculate_co2e(event: CalculateEvent, *, settings: Settings | None = None) -> CalculateOutput:
    """``{"storage_location": batch}`` in; ``{"calculations": {...}}`` out."""
    return _with_context(
        settings,
        lambda c: calc.calculate(
            event, storage=c.storage, database=c.database, factor_set=c.factor_set
        ),
    )
