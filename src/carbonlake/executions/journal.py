"""The journal of an execution: a state's work run under the retry policy, then its
output, lineage nodes and history event committed as its checkpoint, once.

A state's work runs with a fresh :class:`~carbonlake.lineage.LineageWriter` per
attempt, so a failed attempt leaves no nodes behind; what the last attempt wrote
goes into the checkpoint's transaction. Every retry is a ``RetryScheduled`` event of
the history, the final failure a ``TaskFailed`` event and a
:class:`PipelineStepFailed` naming the state, the execution and the root.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .. import lineage
from .._exceptions import CarbonlakeError, ExecutionAborted, PipelineStepFailed
from .._retry import Attempts, backoff
from ..database import Database, LakeFile
from ..settings import RetrySettings
from ..storage import Storage

log = logging.getLogger("carbonlake.pipeline")

T = TypeVar("T")

StateWork = Callable[[lineage.LineageWriter], Mapping[str, Any]]
"""A state's work: its output document (a spec document's TypedDict or a plain dict)."""
"""A state's work: given the writer its lineage nodes go to, returns its output."""

_UNBUFFERED = sys.maxsize  # a state's lineage goes in with its checkpoint, never earlier


def retry_delays(policy: RetrySettings, rng: random.Random | None = None) -> list[float]:
    """The waits before each retry of a state (``max_attempts - 1`` of them)."""
    return backoff(
        policy.max_attempts,
        policy.interval_s,
        policy.backoff_rate,
        policy.max_delay_s,
        policy.jitter,
        rng,
    )


def error_fields(exc: BaseException) -> dict[str, str]:
    """The error and cause of a failure, as Step Functions records them."""
    cause = exc.__cause__ or exc
    return {"error": type(exc).__name__, "cause": f"{type(cause).__name__}: {cause}"}


class Journal:
    """Runs and checkpoints the states of one execution."""

    def __init__(
        self,
        database: Database,
        storage: Storage,
        retry: RetrySettings,
        *,
        execution_id: str,
        root_id: str,
        stop: threading.Event,
    ) -> None:
        self.database = database
        self.storage = storage
        self.retry = retry
        self.execution_id = execution_id
        self.root_id = root_id
        self.stop = stop

    def check_stop(self) -> None:
        """Raise :class:`ExecutionAborted` once a stop was requested."""
        if self.stop.is_set():
            raise ExecutionAborted(
                f"execution {self.execution_id} was asked to stop; `carbonlake executions "
                f"resume {self.execution_id}` finishes it"
            )

    def writer(self) -> lineage.LineageWriter:
        """A lineage writer whose nodes wait for the checkpoint (never flushed earlier)."""
        return lineage.LineageWriter(self.database, self.storage, batch_size=_UNBUFFERED)

    def attempts(self, state: str) -> Attempts:
        """The retry policy of a state: ``[retry]``, each retry an event of the history."""

        state = str(state)  # a State member is stored as its plain name

        def scheduled(attempt: int, delay: float, exc: BaseException) -> None:
            self.database.add_event(
                self.execution_id,
                "RetryScheduled",
                state,
                {"attempt": attempt, "delay_s": round(delay, 3), **error_fields(exc)},
            )

        return Attempts(retry_delays(self.retry), scheduled)

    def failed(self, state: str, exc: BaseException, attempts: int) -> PipelineStepFailed:
        """Record a state's final failure (``TaskFailed``) and the error that says so."""
        state = str(state)  # a State member is stored as its plain name
        self.database.add_event(
            self.execution_id, "TaskFailed", state, {"attempts": attempts, **error_fields(exc)}
        )
        message = str(exc) if isinstance(exc, CarbonlakeError) else f"{type(exc).__name__}: {exc}"
        return PipelineStepFailed(state, self.execution_id, self.root_id, message)

    def run(self, state: str, work: Callable[[], T]) -> T:
        """Run a state's work under the retry policy; a final failure (a bug included,
        which must end the execution FAILED, never RUNNING) is a PipelineStepFailed."""
        state = str(state)  # a State member is stored as its plain name
        attempts = self.attempts(state)
        try:
            return attempts.run(work)
        except CarbonlakeError as exc:
            raise self.failed(state, exc, attempts.number) from exc
        except Exception as exc:
            log.exception("unexpected error in %s of execution %s", state, self.execution_id)
            raise self.failed(state, exc, attempts.number) from exc

    def run_with_lineage(
        self, state: str, work: StateWork
    ) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        """Run a state's work under the retry policy; its output and its lineage rows."""

        def attempt() -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
            writer = self.writer()
            output = dict(work(writer))  # the checkpoint keeps a plain JSON object
            return output, writer.take()

        return self.run(state, attempt)

    def commit(
        self,
        state: str,
        work: StateWork,
        event_type: str = "TaskSucceeded",
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> dict[str, Any]:
        """Run a state's work and commit its output, lineage and ``event_type`` event as
        its checkpoint. ``on_failure`` (the map's ``MapIterationFailed`` event) is called
        with the error before a failure propagates."""
        state = str(state)  # a State member is stored as its plain name
        try:
            output, rows = self.run_with_lineage(state, work)
        except PipelineStepFailed as exc:
            if on_failure is not None:
                on_failure(exc)
            raise
        try:
            self.database.checkpoint(self.execution_id, state, output, rows, event_type=event_type)
        except CarbonlakeError as exc:
            if on_failure is not None:
                on_failure(exc)
            raise self.failed(state, exc, 1) from exc
        return output

    def commit_group(
        self,
        states: Sequence[tuple[str, dict[str, Any]]],
        lineage_rows: Sequence[Sequence[Any]],
        files: Sequence[LakeFile],
        record_ids: Sequence[str],
        failure_rows: Sequence[Sequence[Any]],
    ) -> None:
        """Checkpoint the map iterations of one group in one transaction: their outputs
        and events, lineage, the registration of the group's lake files and its records'
        failures (the group's work ran under :meth:`run`)."""
        self.database.commit_batches(
            self.execution_id, states, lineage_rows, files, record_ids, failure_rows
        )
