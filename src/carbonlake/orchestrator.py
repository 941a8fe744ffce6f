"""The orchestrator: the spec's state machine, one durable execution per input file.

RAW_DATA_INPUT -> DQ_SETUP -> DQ_PROFILE -> DQ_CLEANUP -> PROFILE_COMPLETE ->
DQ_CHECK_RESULTS -> (DQ_CHECK_FAIL -> DQ_ERROR_NOTIFICATION) | (DQ_CHECK_PASS ->
TRANSFORM -> BATCH_SPLIT -> MAP over batches: calculate, CALCULATION_COMPLETE /
CALCULATION_FAILED).

Every state calls a stage with the spec's input document. When a state
completes, its output, its lineage nodes and a history event are committed in
one database transaction (a checkpoint), so a process killed at any moment
(``kill -9``) leaves an execution that :meth:`Pipeline.resume` finishes from the
last completed state and batch, with every record once in the results and the
ledger. Stage side effects are idempotent (files are written whole and renamed
into place, results are upserted by ``activity_event_id``), so a state that ran
but was not checkpointed can simply run again.

Transient errors (storage, database, I/O) are retried per ``[retry]``; data
errors are not. A stage that still fails is wrapped as :class:`PipelineStepFailed`
naming the step, the execution and the file. The map runs on a
``concurrent.futures`` executor with at most ``[pipeline] max_concurrency``
batches at once.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import os
import random
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

from . import calculate as calc
from . import kickoff as kick
from . import lake, lineage, notify, quality, transform
from ._exceptions import (
    CarbonlakeError,
    ExecutionAborted,
    InputDataError,
    PipelineStepFailed,
    StateConflict,
    StorageError,
)
from ._retry import Attempts, backoff
from .context import Context
from .database import EMISSION_COLUMNS
from .settings import RetrySettings, Settings

log = logging.getLogger("carbonlake.pipeline")

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(stage, done, total)`` while an execution runs."""

MAX_FAILED_SAMPLES = 20

_UNBUFFERED = sys.maxsize  # a state's lineage goes in with its checkpoint, never earlier
GROUP_RECORDS = 20_000
"""Records calculated per Polars call and database transaction in the map."""


def this_process() -> str:
    """The owner id of executions run by this process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that owns an execution still runs (on this host)."""
    if not owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's: cannot tell; treat as gone
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a local file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Pipeline:
    """Runs, resumes and redrives executions of the whole pipeline on one workspace."""

    def __init__(self, context: Context, executor: Executor | None = None) -> None:
        self.context = context
        self._executor = executor
        self.stop_requested = threading.Event()
        """Set it (e.g. on SIGTERM) to stop taking new states and batches."""

    # -- ways in -------------------------------------------------------------------

    def run_file(
        self,
        path: Path,
        key: str | None = None,
        progress: ProgressCallback | None = None,
        *,
        name: str | None = None,
        force: bool = False,
        execution_id: str | None = None,
    ) -> dict[str, Any]:
        """Put a local file into ``landing`` (under its name or ``key``) and run it.

        The same object (key and content) that already has an execution is not run
        again unless ``force``; a ``name`` already used for the same object returns
        that execution's summary. ``execution_id`` is the id a new execution gets
        (default: a new UUID), so a caller can follow it while it runs.
        """
        storage = self.context.storage
        key = key or path.name
        landing = storage.url("landing", key)  # validates the key before anything moves
        try:
            sha256 = file_sha256(path)
        except FileNotFoundError as exc:
            raise InputDataError(f"input file {path} does not exist") from exc
        except IsADirectoryError as exc:
            raise InputDataError(f"input {path} is a directory; give a CSV file") from exc
        earlier = self._earlier(key, sha256, name, force)
        if earlier is not None:
            return earlier
        # Never over another object: a run of the same key may be in flight (storage docs).
        landing = storage.put_new(path, "landing", key, sha256)
        root_id = kick.new_root_id()
        return self.execute(
            {"root_id": root_id, "storage_location": landing},
            progress,
            name=name,
            object_key=key,
            object_sha256=sha256,
            execution_id=execution_id,
        )

    def run_event(
        self,
        event: dict[str, Any],
        progress: ProgressCallback | None = None,
        *,
        force: bool = False,
        execution_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Run one execution per object of an S3 event notification (objects in landing).

        ``execution_id`` (for an event of one object only) is the id its execution gets.
        """
        storage = self.context.storage
        summaries = []
        items = kick.parse_event(event, storage)
        if execution_id is not None and len(items) != 1:
            raise InputDataError(
                f"an execution_id names one execution; the event has {len(items)} objects"
            )
        for item in items:
            execution_input = item["input"]
            location = execution_input["storage_location"]
            if not storage.exists(location):
                raise InputDataError(
                    f"the event names {location}, which is not in the landing bucket"
                )
            sha256 = storage.sha256(location)
            key = storage.split(location)[1]
            earlier = self._earlier(key, sha256, None, force)
            if earlier is not None:
                summaries.append(earlier)
                continue
            summaries.append(
                self.execute(
                    execution_input,
                    progress,
                    object_sha256=sha256,
                    execution_id=execution_id,
                )
            )
        return summaries

    def _earlier(
        self, key: str, sha256: str, name: str | None, force: bool
    ) -> dict[str, Any] | None:
        """The summary to return instead of starting (start-by-name, duplicates)."""
        db = self.context.database
        if name:
            named = db.executions_named(name)
            if named:
                first = named[0]
                if (first["object_key"], first["object_sha256"]) != (key, sha256):
                    raise InputDataError(
                        f"execution name {name!r} is already used by execution "
                        f"{first['execution_id']} for {first['object_key']} with other "
                        "content; choose another --name"
                    )
                return self.summary(first["execution_id"])
        if force:
            return None
        same = db.executions_of_object(key, sha256)
        if not same:
            return None
        first = same[0]
        summary = self.summary(first["execution_id"])
        summary["status"] = "SKIPPED"
        summary["duplicate_of"] = first["execution_id"]
        summary["error"] = None
        summary["message"] = (
            f"{key} with this content was already processed by execution "
            f"{first['execution_id']} ({first['status']}); not processing it again. "
            "Use --force to process it anyway (results are keyed by activity_event_id, "
            "never counted twice)."
        )
        return summary

    # -- executions ----------------------------------------------------------------

    def execute(
        self,
        execution_input: dict[str, Any],
        progress: ProgressCallback | None = None,
        *,
        name: str | None = None,
        object_key: str | None = None,
        object_sha256: str | None = None,
        execution_id: str | None = None,
    ) -> dict[str, Any]:
        """Start and run a new execution for one kicked-off file; returns its summary.

        ``execution_id`` is the id it gets (default: a new UUID); it must be new.
        ``object_key`` is the key the file was given (default: its key in landing,
        which differs when it landed under a version key).
        """
        ctx = self.context
        execution_id = execution_id or str(uuid.uuid4())
        landing = execution_input["storage_location"]
        key = object_key or ctx.storage.split(landing)[1]
        document = {
            "input": execution_input,
            "batch_size": ctx.settings.pipeline.batch_size,
        }
        ctx.database.insert_execution(
            execution_id,
            name or execution_id,
            document,
            root_id=execution_input["root_id"],
            object_key=key,
            object_sha256=object_sha256,
            owner=this_process(),
        )
        return self._run(execution_id, progress)

    def resume(self, execution_id: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Finish an execution whose process died (or that was aborted), from its last
        completed state and batch."""
        execution = self._execution(execution_id)
        status = execution["status"]
        if status == "SUCCEEDED":
            return self.summary(execution_id)
        if status == "FAILED":
            raise StateConflict(
                f"execution {execution_id} FAILED; `carbonlake executions redrive "
                f"{execution_id}` re-runs what failed"
            )
        if status == "RUNNING" and owner_alive(execution["owner"]):
            raise StateConflict(
                f"execution {execution_id} is still running in process {execution['owner']}; "
                "resume it only once that process has stopped"
            )
        self.context.database.claim_execution(execution_id, this_process())
        self.context.database.add_event(execution_id, "ExecutionResumed", None, {})
        return self._run(execution_id, progress)

    def redrive(
        self, execution_id: str, progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Re-run only what failed in a FAILED execution: failed states, failed batches and
        the records that could not be calculated (for example after a factor import)."""
        execution = self._execution(execution_id)
        if execution["status"] != "FAILED":
            raise StateConflict(
                f"execution {execution_id} is {execution['status']}; only a FAILED execution "
                "can be redriven (a stopped one is resumed with `executions resume`)"
            )
        done = self.context.database.checkpoints(execution_id)
        if "DQ_ERROR_NOTIFICATION" in done or "DQ_CHECK_FAIL" in done:
            raise StateConflict(
                f"execution {execution_id} failed data quality; nothing to redrive. Fix the "
                "file (see its report) and run it again"
            )
        self.context.database.claim_execution(execution_id, this_process(), redrive=True)
        self.context.database.add_event(execution_id, "ExecutionRedriven", None, {})
        return self._run(execution_id, progress, redrive=True)

    def _execution(self, execution_id: str) -> dict[str, Any]:
        execution = self.context.database.get_execution(execution_id)
        if execution is None:
            raise InputDataError(
                f"no execution {execution_id!r}; `carbonlake executions list` shows them"
            )
        return execution

    def _run(
        self, execution_id: str, progress: ProgressCallback | None, redrive: bool = False
    ) -> dict[str, Any]:
        execution = self._execution(execution_id)
        run = _ExecutionRun(self, execution, progress, redrive)
        status, error = "SUCCEEDED", None
        try:
            run.states()
        except ExecutionAborted as exc:
            status, error = "ABORTED", str(exc)
        except PipelineStepFailed as exc:
            status, error = "FAILED", str(exc)
        summary = self.summary(execution_id, status=status, error=error)
        if run.batch_errors and summary["status"] == "FAILED":
            # Why a batch failed in this pass comes first: the counts alone do not say.
            more = len(run.batch_errors) - 1
            first = run.batch_errors[0] + (f" (and {more} more batch failure(s))" if more else "")
            summary["error"] = f"{first}; {summary['error']}" if summary["error"] else first
        self.context.database.finish_execution(
            execution_id, summary["status"], summary, summary["error"]
        )
        return summary

    # -- the summary ------------------------------------------------------------------

    def summary(
        self, execution_id: str, status: str | None = None, error: str | None = None
    ) -> dict[str, Any]:
        """The run summary of an execution, derived from its checkpoints.

        With ``status``, the outcome of the run that just ended; otherwise the
        recorded one.
        """
        db = self.context.database
        execution = self._execution(execution_id)
        if status is None:
            recorded = execution["output"]
            if recorded:
                return self._where_now(dict(recorded))
            status, error = execution["status"], execution["error"]
        done = db.checkpoints(execution_id)
        execution_input = execution["input"]["input"]
        landing = execution_input["storage_location"]
        summary: dict[str, Any] = {
            "execution_id": execution_id,
            "name": execution["name"],
            "root_id": execution_input["root_id"],
            "status": status,
            "input_storage_location": landing,
            "storage_location": done.get("DQ_CHECK_RESULTS", {}).get("storage_location", landing),
            "records_in": 0,
            "records_calculated": 0,
            "records_failed": 0,
            "co2e_tonnes": calc.co2e_by_method({}),
            "data_quality": done.get("DQ_CHECK_RESULTS", {}).get("data_quality"),
            "error": error,
        }
        if summary["data_quality"] is not None:
            summary["records_in"] = done["DQ_CHECK_RESULTS"].get("rows") or 0
        if "TRANSFORM" in done:
            summary["records_in"] = done["TRANSFORM"]["records"]
        if summary["data_quality"] and summary["data_quality"]["status"] == "FAILED":
            summary["status"] = "FAILED" if status == "SUCCEEDED" else status
            summary["error"] = summary["error"] or (
                f"data quality failed ({'; '.join(summary['data_quality']['failed_rules'])}); "
                f"the file is now at {summary['storage_location']}; report: "
                f"{summary['data_quality']['report_location']}"
            )
        split = done.get("BATCH_SPLIT")
        if split is not None:
            self._summarize_map(summary, split, done, status)
        if summary["records_calculated"]:
            summary["by_activity"] = db.emission_totals(summary["root_id"], "activity")
            replaced = db.replaced_from_other_roots(summary["root_id"])
            if replaced:
                # The same activity_event_id came in another file before: its result there
                # was replaced (and kept in the history), never counted twice.
                summary["replaced_results"] = {
                    "records": sum(r["records"] for r in replaced),
                    "from_roots": replaced,
                }
        return self._where_now(summary)

    def _where_now(self, summary: dict[str, Any]) -> dict[str, Any]:
        """A summary's locations as they are now: a moved or restored workspace stored
        them under its former root (storage.add_former_root)."""
        storage = self.context.storage

        def now(url: str) -> str:
            try:
                return storage.current_url(url)
            except StorageError:
                return url

        for field in ("input_storage_location", "storage_location"):
            if isinstance(summary.get(field), str):
                summary[field] = now(summary[field])
        quality_part = summary.get("data_quality")
        if isinstance(quality_part, dict) and quality_part.get("report_location"):
            summary["data_quality"] = {
                **quality_part,
                "report_location": now(quality_part["report_location"]),
            }
        failed = summary.get("failed_records")
        if isinstance(failed, dict):
            summary["failed_records"] = {
                **failed,
                "errors_files": [now(u) for u in failed.get("errors_files", [])],
            }
        return summary

    def _summarize_map(
        self,
        summary: dict[str, Any],
        split: dict[str, Any],
        done: dict[str, dict[str, Any]],
        status: str,
    ) -> None:
        samples: list[dict[str, Any]] = []
        errors_files: list[str] = []
        failed_batches = []
        # Redrive checkpoints by batch, in one pass (not one scan of every checkpoint
        # per batch: that was quadratic in the number of batches).
        redriven = _redrives_by_state(done)
        for batch, records in zip(split["batches"], split["batch_records"], strict=True):
            base = done.get(f"MAP:{batch['node_id']}")
            if base is None:
                failed_batches.append(batch)
                summary["records_failed"] += records
                continue
            outputs = [base] + [
                done[k] for _, k in sorted(redriven.get(f"MAP:{batch['node_id']}", []))
            ]
            latest = outputs[-1]
            summary["records_calculated"] += sum(o["records_calculated"] for o in outputs)
            summary["records_failed"] += latest["records_failed"]
            for method, totals in summary["co2e_tonnes"].items():
                for gwp_set in totals:
                    totals[gwp_set] += sum(
                        _by_method(o["co2e_tonnes"])[method][gwp_set] for o in outputs
                    )
            if latest["errors_storage_location"]:
                errors_files.append(latest["errors_storage_location"])
            samples.extend(latest["failed_records"][: MAX_FAILED_SAMPLES - len(samples)])
        summary["batches"] = len(split["batches"])
        summary["batches_failed"] = len(failed_batches)
        if summary["records_failed"]:
            summary["failed_records"] = {"errors_files": sorted(errors_files), "samples": samples}
        if status != "SUCCEEDED":
            return
        tolerated = self.context.settings.pipeline.tolerated_failure_percentage
        share = 100.0 * len(failed_batches) / max(len(split["batches"]), 1)
        if failed_batches and share > tolerated:
            summary["status"] = "FAILED"
            summary["error"] = (
                f"{len(failed_batches)} of {len(split['batches'])} batch(es) failed "
                f"({share:.1f}% > tolerated {tolerated}%); see `carbonlake executions history "
                f"{summary['execution_id']}`"
            )
        elif summary["records_failed"] > sum(
            r
            for b, r in zip(split["batches"], split["batch_records"], strict=True)
            if b in failed_batches
        ):
            summary["status"] = "FAILED"
            summary["error"] = (
                f"{summary['records_failed']} record(s) could not be calculated; their "
                "reasons are in the errors files listed under failed_records. After fixing "
                f"the cause, `carbonlake executions redrive {summary['execution_id']}`"
            )


class _ExecutionRun:
    """One pass over an execution's states: fresh, resumed or redriven."""

    def __init__(
        self,
        pipeline: Pipeline,
        execution: dict[str, Any],
        progress: ProgressCallback | None,
        redrive: bool,
    ) -> None:
        self.pipeline = pipeline
        self.ctx = pipeline.context
        self.db = pipeline.context.database
        self.execution_id: str = execution["execution_id"]
        self.input: dict[str, Any] = execution["input"]["input"]
        self.batch_size: int = execution["input"].get("batch_size") or (
            self.ctx.settings.pipeline.batch_size
        )
        self.root_id: str = self.input["root_id"]
        self.object_sha256: str | None = execution.get("object_sha256")
        self.progress = progress
        self.redrive = redrive
        self.redrive_number: int = execution["redrive_count"]
        self.done = self.db.checkpoints(self.execution_id)
        self._last_failure: dict[str, str] = {}
        self.batch_errors: list[str] = []
        """Why batches failed in this pass (the summary's error starts with the first)."""

    # -- running one state -----------------------------------------------------------

    def _check_stop(self) -> None:
        if self.pipeline.stop_requested.is_set():
            raise ExecutionAborted(
                f"execution {self.execution_id} was asked to stop; `carbonlake executions "
                f"resume {self.execution_id}` finishes it"
            )

    def _attempts(
        self, state: str, call: Callable[[lineage.LineageWriter], dict[str, Any]]
    ) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        """Run a state's work with retries; returns its output and its lineage rows."""
        attempts = self._attempts_of(state)

        def attempt() -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
            writer = lineage.LineageWriter(self.db, self.ctx.storage, batch_size=_UNBUFFERED)
            output = call(writer)
            return output, writer.take()

        try:
            return attempts.run(attempt)
        except CarbonlakeError as exc:
            raise self._failed(state, exc, attempts.number) from exc
        except Exception as exc:  # a bug must end the execution FAILED, not RUNNING
            log.exception("unexpected error in %s of execution %s", state, self.execution_id)
            raise self._failed(state, exc, attempts.number) from exc

    def _attempts_of(self, state: str) -> Attempts:
        """The retry policy of a state: ``[retry]``, each retry an event of the history."""

        def scheduled(attempt: int, delay: float, exc: BaseException) -> None:
            self.db.add_event(
                self.execution_id,
                "RetryScheduled",
                state,
                {"attempt": attempt, "delay_s": round(delay, 3), **_error(exc)},
            )

        return Attempts(retry_delays(self.ctx.settings.retry), scheduled)

    def _failed(self, state: str, exc: BaseException, attempts: int) -> PipelineStepFailed:
        self.db.add_event(
            self.execution_id, "TaskFailed", state, {"attempts": attempts, **_error(exc)}
        )
        message = str(exc) if isinstance(exc, CarbonlakeError) else f"{type(exc).__name__}: {exc}"
        return PipelineStepFailed(state, self.execution_id, self.root_id, message)

    def state(
        self, name: str, call: Callable[[lineage.LineageWriter], dict[str, Any]]
    ) -> dict[str, Any]:
        """Run a state unless a checkpoint says it completed; checkpoint it atomically."""
        if name in self.done:
            return self.done[name]
        self._check_stop()
        if self.progress:
            self.progress(name, 0, 1)
        self.db.add_event(self.execution_id, "StateEntered", name, {})
        output, rows = self._attempts(name, call)
        try:
            self.db.checkpoint(self.execution_id, name, output, rows)
        except CarbonlakeError as exc:
            raise self._failed(name, exc, 1) from exc
        self.done[name] = output
        return output

    def _node(self, writer: lineage.LineageWriter, request: dict[str, Any]) -> str:
        node_id: str = lineage.record_request({"root_id": self.root_id, **request}, writer)[
            "data_lineage"
        ]["node_id"]
        return node_id

    # -- the state machine -----------------------------------------------------------------

    def states(self) -> None:
        ctx = self.ctx
        root_id = self.root_id
        landing = self.input["storage_location"]

        raw_node = self.state(
            "RAW_DATA_INPUT",
            lambda w: {
                "node_id": self._node(
                    w,
                    {
                        "parent_id": root_id,
                        "action_taken": lineage.RAW_DATA_INPUT,
                        "record": {"storage_location": landing},
                    },
                )
            },
        )["node_id"]
        resources = self.state(
            "DQ_SETUP",
            lambda w: quality.setup(
                {"event_type": "SETUP", "storage_location": landing, "root_id": root_id},
                database=ctx.database,
                rules=ctx.rules,
            )["data_quality"],
        )
        dq_results = self.state(
            "DQ_PROFILE",
            lambda w: quality.profile(
                {"Name": resources["job_name"]},
                storage=ctx.storage,
                database=ctx.database,
                factor_set=ctx.factor_set,
                max_columns=ctx.settings.quality.max_columns,
            )["data_quality"]["results"],
        )
        self.state(
            "DQ_CLEANUP",
            lambda w: quality.cleanup(
                {
                    "event_type": "CLEANUP",
                    "dataset_name": resources["dataset_name"],
                    "ruleset_name": resources["ruleset_name"],
                    "job_name": resources["job_name"],
                },
                database=ctx.database,
            ),
        )
        report_url = quality.report_location(dq_results, ctx.storage)
        profile_node = self.state(
            "PROFILE_COMPLETE",
            lambda w: {
                "node_id": self._node(
                    w,
                    {
                        "parent_id": raw_node,
                        "action_taken": lineage.PROFILE_COMPLETE,
                        "record": {"storage_location": report_url},
                    },
                )
            },
        )["node_id"]
        checked = self.state(
            "DQ_CHECK_RESULTS", lambda w: self._check_results(landing, dq_results, report_url)
        )
        location = checked["storage_location"]
        if not checked["status"]:
            self.state(
                "DQ_CHECK_FAIL",
                lambda w: {
                    "node_id": self._node(
                        w,
                        {
                            "parent_id": profile_node,
                            "action_taken": lineage.DQ_CHECK_FAIL,
                            "record": {"storage_location": location},
                        },
                    )
                },
            )
            self.state("DQ_ERROR_NOTIFICATION", lambda w: self._notify(landing, report_url))
            return

        pass_node = self.state(
            "DQ_CHECK_PASS",
            lambda w: {
                "node_id": self._node(
                    w,
                    {
                        "parent_id": profile_node,
                        "action_taken": lineage.DQ_CHECK_PASS,
                        "record": {"storage_location": location},
                    },
                )
            },
        )["node_id"]
        transformed = self.state("TRANSFORM", lambda w: self._transform(location))
        split = self.state("BATCH_SPLIT", lambda w: self._split(w, pass_node, transformed))
        self._map(split)
        self._commit_results()

    def _commit_results(self) -> None:
        """The results table's commit of this execution's results files (after the map:
        one Iceberg commit per execution; nothing to do when they are committed)."""
        try:
            replaced = lake.commit(
                self.ctx.database, self.ctx.storage, self.execution_id, self.root_id
            )
        except (CarbonlakeError, OSError) as exc:
            raise PipelineStepFailed(
                "COMMIT_RESULTS",
                self.execution_id,
                self.root_id,
                f"the results could not be committed to the results table: {exc}; resume with "
                f"`carbonlake executions resume {self.execution_id}`",
            ) from exc
        if replaced:
            log.info("execution %s replaced %d earlier results", self.execution_id, replaced)

    def _check_results(
        self, landing: str, dq_results: dict[str, Any], report_url: str
    ) -> dict[str, Any]:
        ctx = self.ctx
        report = quality.read_report(report_url, ctx.storage)
        self._check_landed_bytes(landing)
        checked = quality.check_results(
            {"storage_location": landing, "dq_results": dq_results}, storage=ctx.storage
        )
        failed_rules = report["summary"]["failedRules"]
        return {
            **checked,
            "rows": report.get("rowsCount") or 0,
            "data_quality": {
                "status": "PASSED" if checked["status"] else "FAILED",
                "report_location": report_url,
                "failed_rules": failed_rules,
                "warnings": report["summary"].get("warnedRules", []),
                "reasons": [
                    {
                        "rule": x["name"],
                        "severity": x.get("severity", "error"),
                        "reason": x["reason"],
                    }
                    for x in report["rulesetResults"][0]["ruleResults"]
                    if x["status"] == "FAILED"
                ],
            },
        }

    def _check_landed_bytes(self, landing: str) -> None:
        """The object in landing must still be the one this execution started with: a
        writer that replaced it meanwhile would have it check and calculate other bytes."""
        storage = self.ctx.storage
        if self.object_sha256 is None or not storage.exists(landing):
            return
        found = storage.sha256(landing)
        if found != self.object_sha256:
            raise InputDataError(
                f"{landing} was replaced while execution {self.execution_id} was checking it "
                f"(SHA-256 {found}, started with {self.object_sha256}); it is left in landing "
                "for a run of its own. Land each file under a new key, or let carbonlake land "
                "it (`carbonlake run FILE --key KEY`), which never overwrites an object"
            )

    def _notify(self, landing: str, report_url: str) -> dict[str, Any]:
        ctx = self.ctx
        report = quality.read_report(report_url, ctx.storage)
        failed_rules = report["summary"]["failedRules"]
        notify.send(
            {
                "subject": notify.DQ_FAILURE_SUBJECT,
                "message": notify.dq_failure_message(
                    landing,
                    failed_rules,
                    reasons={r["name"]: r["reason"] for r in quality.failed_results(report)},
                    report_location=report_url,
                ),
                "storage_location": landing,
                "failed_rules": failed_rules,
                "report_location": report_url,
            },
            settings=ctx.settings.notify,
            database=ctx.database,
            root_id=self.root_id,
        )
        return {"subject": notify.DQ_FAILURE_SUBJECT}

    def _transform(self, raw_location: str) -> dict[str, Any]:
        storage = self.ctx.storage
        # A transform that ran before a crash may have left batches: start clean.
        for stale in storage.list("transformed", self.root_id):
            storage.delete(stale)
        settings = self.ctx.settings.pipeline
        if settings.executor == "dask" and self.pipeline._executor is None:
            return self._distributed_transform(raw_location)
        output: dict[str, Any] = transform.run(
            {"JobName": transform.JOB_NAME, "Arguments": {"--UNIQUE_DIRECTORY": self.root_id}},
            storage=storage,
            batch_size=self.batch_size,
            raw_location=raw_location,
        )
        return output

    def _distributed_transform(self, raw_location: str) -> dict[str, Any]:
        """The split spread over the Dask workers: one byte range of the raw file each,
        every worker reading its range and writing its own batch files."""
        chunk_bytes = max(1, int(self.ctx.settings.pipeline.split_chunk_mb * (1 << 20)))
        offsets = transform.chunk_boundaries(self.ctx.storage, raw_location, chunk_bytes)
        ranges = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(offsets)) if b > a]
        executor, _ = self._executor()
        client = getattr(executor, "_carbonlake_client", None)
        try:
            futures = [
                executor.submit(
                    split_chunk_task,
                    self.ctx.settings,
                    raw_location,
                    self.root_id,
                    chunk,
                    start,
                    end,
                    self.batch_size,
                )
                for chunk, start, end in ranges
            ]
            written = [pair for future in futures for pair in future.result()]
        finally:
            executor.shutdown(wait=True)
            if client is not None:
                client.close()
        return {
            "job_name": transform.JOB_NAME,
            "job_id": f"jr_{uuid.uuid4().hex}",
            "job_state": "SUCCEEDED",
            "batches": len(written),
            "records": sum(n for _, n in written),
            "batch_records": [n for _, n in written],
            "chunks": len(ranges),
        }

    def _split(
        self, writer: lineage.LineageWriter, pass_node: str, transformed: dict[str, Any]
    ) -> dict[str, Any]:
        batches = transform.enumerate_batches(
            {"batch_location_dir": self.root_id}, storage=self.ctx.storage
        )["batches"]
        lineage.record_request(
            {
                "root_id": self.root_id,
                "parent_id": pass_node,
                "action_taken": lineage.GLUE_BATCH_SPLIT,
                "records": batches,
            },
            writer,
        )
        sizes: list[int] = transformed["batch_records"]
        if len(sizes) != len(batches):
            raise InputDataError(
                f"transformed/{self.root_id}/ holds {len(batches)} batch files but the split "
                f"wrote {len(sizes)}; the transformed bucket was changed meanwhile"
            )
        first_row = 1
        for batch, size in zip(batches, sizes, strict=True):
            batch["first_row"], batch["records"] = first_row, size
            first_row += size
        return {"batches": batches, "batch_records": sizes}

    # -- the map ----------------------------------------------------------------------------

    def _map(self, split: dict[str, Any]) -> None:
        """The spec's map state: each iteration gets only its location and lineage ids.

        Consecutive batches are calculated together in groups of about
        ``GROUP_RECORDS`` records (one Polars call and one database transaction per
        group instead of per batch); each batch still gets its own enriched file,
        lineage nodes under its own batch node, and its own checkpoint.
        """
        batches = split["batches"]
        fresh: list[tuple[int, dict[str, Any]]] = []
        redrives: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        redriven = _redrives_by_state(self.done) if self.redrive else {}
        for index, batch in enumerate(batches):
            key = f"MAP:{batch['node_id']}"
            if key not in self.done:
                fresh.append((index, batch))
            elif self.redrive and self._latest(batch, redriven)["records_failed"]:
                redrives.append((index, batch, self._latest(batch, redriven)))
        per_group = max(1, GROUP_RECORDS // max(self.batch_size, 1))
        groups = [fresh[i : i + per_group] for i in range(0, len(fresh), per_group)]
        executor, own = self._executor()
        distributed = self.ctx.settings.pipeline.executor == "dask" and own
        tasks: list[Callable[[], int]]
        if distributed:
            # Workers open the workspace themselves (storage, database) from the settings:
            # only ids and locations travel through the scheduler, never data.
            tasks = [
                functools.partial(run_group_task, self.ctx.settings, self.execution_id, group)
                for group in groups
            ]
        else:
            tasks = [functools.partial(self._group, group) for group in groups]
        tasks += [functools.partial(self._redrive_batch, *item) for item in redrives]
        total = len(batches)
        finished = total - len(fresh) - len(redrives)
        failures: list[BaseException] = []
        try:
            if self.progress:
                self.progress("calculate", finished, total)
            window = self.ctx.settings.pipeline.max_concurrency * (1 if distributed else 2)
            pending: set[Future[int]] = set()
            queue = iter(tasks)
            while True:
                # Bounded submission: memory stays flat however many batches there are.
                for task in queue:
                    pending.add(executor.submit(task))
                    if len(pending) >= window:
                        break
                if not pending:
                    break
                done_now = next(as_completed(pending))
                pending.discard(done_now)
                error = done_now.exception()
                if error is not None:
                    failures.append(error)
                else:
                    finished += done_now.result()
                if self.progress:
                    self.progress("calculate", finished, total)
        finally:
            if own:
                client = getattr(executor, "_carbonlake_client", None)
                if client is not None:
                    executor.shutdown(wait=True)
                    client.close()
                else:
                    executor.shutdown(wait=True, cancel_futures=True)
        self.batch_errors = [str(f) for f in failures if isinstance(f, PipelineStepFailed)]
        aborted = [f for f in failures if isinstance(f, ExecutionAborted)]
        if aborted:
            raise aborted[0]
        unexpected = [f for f in failures if not isinstance(f, PipelineStepFailed)]
        if unexpected:
            raise unexpected[0]

    def _executor(self) -> tuple[Executor, bool]:
        """The map's executor and whether this run owns (and shuts down) it."""
        if self.pipeline._executor is not None:
            return self.pipeline._executor, False
        settings = self.ctx.settings.pipeline
        if settings.executor == "dask":
            try:
                from distributed import Client
            except ImportError as exc:
                raise PipelineStepFailed(
                    "MAP",
                    self.execution_id,
                    self.root_id,
                    "[pipeline] executor = \"dask\" needs dask: pip install 'carbonlake[dask]'",
                ) from exc
            try:
                client: Any = Client(settings.dask_scheduler, timeout="10s")  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError) as exc:
                raise PipelineStepFailed(
                    "MAP",
                    self.execution_id,
                    self.root_id,
                    f"cannot reach the Dask scheduler {settings.dask_scheduler}: {exc}",
                ) from exc
            executor: Any = client.get_executor()
            executor._carbonlake_client = client
            return executor, True
        pool = ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="carbonlake-map"
        )
        return pool, True

    def _group(self, group: list[tuple[int, dict[str, Any]]], announce: bool = True) -> int:
        """Calculate a group of batches in one go; if that fails, batch by batch with
        retries, so one bad batch does not fail its neighbours. Returns batches done."""
        self._check_stop()
        if announce:
            self.db.add_events(
                self.execution_id,
                [
                    (
                        "MapIterationStarted",
                        f"MAP:{batch['node_id']}",
                        {"index": index, "storage_location": batch["storage_location"]},
                    )
                    for index, batch in group
                ],
            )
        if announce:
            # A task retried after its worker died may find its work already committed.
            committed = self.db.completed_states(
                self.execution_id, [f"MAP:{b['node_id']}" for _, b in group]
            )
            remaining = [(i, b) for i, b in group if f"MAP:{b['node_id']}" not in committed]
            if not remaining:
                return len(group)
            group = remaining
        if len(group) > 1:
            try:
                self._calculate_group(group)
                return len(group)
            except (CarbonlakeError, OSError) as exc:
                log.info("group of %d batches failed (%s); batch by batch now", len(group), exc)
            done = 0
            failure: PipelineStepFailed | None = None
            for item in group:
                try:
                    done += self._group([item], announce=False)
                except PipelineStepFailed as exc:
                    failure = exc
            if failure is not None:
                raise failure
            return done
        index, batch = group[0]
        state = f"MAP:{batch['node_id']}"
        try:
            self._with_retries(state, lambda: self._calculate_group(group))
        except PipelineStepFailed:
            self.db.add_event(
                self.execution_id,
                "MapIterationFailed",
                state,
                {"index": index, **self._last_failure},
            )
            raise
        return 1

    def _with_retries(self, state: str, work: Callable[[], None]) -> None:
        attempts = self._attempts_of(state)
        try:
            attempts.run(work)
        except CarbonlakeError as exc:
            self._last_failure = _error(exc)
            raise self._failed(state, exc, attempts.number) from exc
        except Exception as exc:  # a bug fails the batch with its reason, never hangs
            log.exception("unexpected error in %s of execution %s", state, self.execution_id)
            self._last_failure = _error(exc)
            raise self._failed(state, exc, attempts.number) from exc

    def _calculate_group(self, group: list[tuple[int, dict[str, Any]]]) -> None:
        ctx = self.ctx
        frames = []
        for index, batch in group:
            self._require_batch(batch["storage_location"])
            frame = calc.read_batch(ctx.storage, batch["storage_location"], transform.batch_schema)
            frames.append(
                frame.with_columns(
                    pl.lit(index, dtype=pl.Int64).alias(calc.BATCH_COLUMN),
                    pl.int_range(pl.len(), dtype=pl.Int64).alias(calc.POSITION_COLUMN),
                    pl.lit(
                        transform.enriched_name(PurePosixPath(batch["storage_location"]).name)
                    ).alias(calc.BATCH_NAME_COLUMN),
                )
            )
        records = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
        result = calc.calculate_frame(records, ctx.factor_set, "")
        # Everything per batch is computed column-wise for the whole group first.
        keep = [c for c in result.enriched.columns if c not in calc.INTERNAL_COLUMNS]
        written = _by_batch(result.enriched.select([*keep, calc.BATCH_COLUMN]), drop_key=True)
        failed = _by_batch(result.failed)
        good_ids = _lists_by_batch(result.enriched, calc.RECORD_ID, calc.POSITION_COLUMN)
        totals = {
            int(row[calc.BATCH_COLUMN]): calc.co2e_by_method(row)
            for row in result.database_rows.group_by(calc.BATCH_COLUMN)
            .agg(calc.co2e_by_method_exprs())
            .iter_rows(named=True)
        }
        enriched_prefix = ctx.storage.url("enriched", f"{self.root_id}/x")[:-1]
        emission_rows = result.database_rows.with_columns(
            pl.lit(self.root_id).alias("root_id"),
            pl.lit(self.execution_id).alias("execution_id"),
            pl.concat_str(pl.lit(enriched_prefix), pl.col(calc.BATCH_NAME_COLUMN)).alias(
                "enriched_location"
            ),
            pl.lit(datetime.now(UTC).isoformat()).alias("calculated_at"),
        ).select(EMISSION_COLUMNS)
        # The group's results are one data file of the results table, written whole before
        # the checkpoint registers it; the table commit follows the map (lake.commit).
        results_file = lake.write_results(
            ctx.storage,
            emission_rows,
            root_id=self.root_id,
            execution_id=self.execution_id,
            name=f"group-{group[0][0]:06d}",
        )
        writer = lineage.LineageWriter(self.db, ctx.storage, batch_size=_UNBUFFERED)
        states: list[tuple[str, dict[str, Any]]] = []
        failures: list[tuple[Any, ...]] = []
        empty = result.enriched.select(keep).clear()
        for index, batch in group:
            key = ctx.storage.split(batch["storage_location"])[1]
            enriched_location = ctx.storage.url("enriched", transform.enriched_key(key))
            enriched_bytes = calc.enriched_bytes(written.get(index, empty))
            ctx.storage.write_bytes(enriched_location, enriched_bytes)
            bad = failed.get(index, result.failed.clear())
            errors_location = None
            if bad.height:
                errors_location = calc.errors_location(enriched_location)
                ctx.storage.write_bytes(
                    errors_location,
                    calc.enriched_bytes(
                        bad.drop(["__node_id", *calc.INTERNAL_COLUMNS], strict=False)
                    ),
                )
            first_row = batch.get("first_row", index * self.batch_size + 1)
            ids, positions = good_ids.get(index, ([], []))
            lineage.record_request(
                {
                    "root_id": self.root_id,
                    "parent_id": batch["node_id"],
                    "action_taken": lineage.CALCULATION_COMPLETE,
                    "storage_location": enriched_location,
                    "records": [
                        {"node_id": n, "row_number": first_row + p}
                        for n, p in zip(ids, positions, strict=True)
                    ],
                },
                writer,
                written=enriched_bytes,
            )
            failed_records = _failed_records(bad)
            if failed_records:
                lineage.record_request(
                    {
                        "root_id": self.root_id,
                        "parent_id": batch["node_id"],
                        "action_taken": lineage.CALCULATION_FAILED,
                        "storage_location": errors_location,
                        "records": [
                            {
                                "node_id": self._failed_node_id(r["node_id"]),
                                "row_number": first_row + r["position"],
                            }
                            for r in failed_records
                        ],
                    },
                    writer,
                )
            failures += calc.failure_rows(
                bad,
                [r["node_id"] for r in failed_records],
                self.root_id,
                self.execution_id,
            )
            states.append(
                (
                    f"MAP:{batch['node_id']}",
                    {
                        "storage_location": enriched_location,
                        "errors_storage_location": errors_location,
                        "records_calculated": len(ids),
                        "records_failed": bad.height,
                        "failed_records": [
                            {"node_id": r["node_id"], "reason": r["reason"]}
                            for r in failed_records[:MAX_FAILED_SAMPLES]
                        ],
                        "co2e_tonnes": totals.get(index, calc.co2e_by_method({})),
                    },
                )
            )
        self.db.commit_batches(
            self.execution_id,
            states,
            writer.take(),
            [results_file] if results_file else [],
            emission_rows.get_column("activity_event_id").to_list(),
            failures,
        )
        for state, output in states:
            self.done[state] = output

    def _redrive_batch(self, index: int, batch: dict[str, Any], previous: dict[str, Any]) -> int:
        self._iteration(index, batch, previous)
        return 1

    def _latest(
        self, batch: dict[str, Any], redriven: dict[str, list[tuple[int, str]]]
    ) -> dict[str, Any]:
        """The newest output of a batch: its last redrive's, else its first run's."""
        state = f"MAP:{batch['node_id']}"
        redrives = redriven.get(state)
        return self.done[max(redrives)[1]] if redrives else self.done[state]

    def _require_batch(self, location: str) -> None:
        """A batch file that is gone cannot be retried or redriven: say what does work."""
        if self.ctx.storage.exists(location):
            return
        raw = self.done.get("DQ_CHECK_RESULTS", {}).get("storage_location", "the input file")
        raise InputDataError(
            f"batch file {location} of execution {self.execution_id} is gone (was "
            f"transformed/{self.root_id} deleted?); neither a retry nor a redrive can rebuild "
            f"it. Run the input again as a new execution: `carbonlake run FILE --force` with "
            f"the file now at {raw}"
        )

    def _iteration(self, index: int, batch: dict[str, Any], previous: dict[str, Any]) -> None:
        """Redrive one batch: calculate its failed records again and record their lineage."""
        self._check_stop()
        item = {
            "storage_location": batch["storage_location"],
            "data_lineage": {"root_id": self.root_id, "parent_id": batch["node_id"]},
        }
        state = f"MAP:{batch['node_id']}:redrive-{self.redrive_number}"
        self.db.add_event(self.execution_id, "MapIterationStarted", state, {"index": index, **item})
        try:
            output, rows = self._attempts(
                state, lambda w: self._recalculate_failed(w, item, previous)
            )
            self.db.checkpoint(
                self.execution_id, state, output, rows, event_type="MapIterationSucceeded"
            )
            self.done[state] = output
        except PipelineStepFailed as exc:
            self.db.add_event(
                self.execution_id, "MapIterationFailed", state, {"index": index, **_error(exc)}
            )
            raise
        except CarbonlakeError as exc:
            self.db.add_event(
                self.execution_id, "MapIterationFailed", state, {"index": index, **_error(exc)}
            )
            raise self._failed(state, exc, 1) from exc

    def _failed_node_id(self, node_id: str) -> str:
        # The record's own id is kept for its CALCULATION_COMPLETE node, which a redrive
        # may still write; each failed attempt gets a node of its own.
        return f"{node_id}#failed-{self.redrive_number + 1}"

    def _record_lineage(
        self,
        writer: lineage.LineageWriter,
        parent_id: str,
        calculations: dict[str, Any],
        rows: dict[str, int],
    ) -> None:
        lineage.record_request(
            {
                "root_id": self.root_id,
                "parent_id": parent_id,
                "action_taken": lineage.CALCULATION_COMPLETE,
                "storage_location": calculations["storage_location"],
                "records": lineage.with_row_numbers(calculations["records"], rows),
            },
            writer,
        )
        if calculations["failed_records"]:
            failed = [
                {
                    "node_id": self._failed_node_id(r["node_id"]),
                    "row_number": rows.get(r["node_id"]),
                }
                for r in calculations["failed_records"]
            ]
            lineage.record_request(
                {
                    "root_id": self.root_id,
                    "parent_id": parent_id,
                    "action_taken": lineage.CALCULATION_FAILED,
                    "storage_location": calculations["errors_storage_location"],
                    "records": failed,
                },
                writer,
            )

    def _recalculate_failed(
        self, writer: lineage.LineageWriter, item: dict[str, Any], previous: dict[str, Any]
    ) -> dict[str, Any]:
        """Redrive: calculate again only the records of a batch that failed before."""
        ctx = self.ctx
        self._require_batch(item["storage_location"])
        errors_location = previous["errors_storage_location"]
        frame = calc.read_enriched(ctx.storage.read_bytes(errors_location), errors_location)
        first_row = next(
            (
                b.get("first_row", 1)
                for b in self.done["BATCH_SPLIT"]["batches"]
                if b["storage_location"] == item["storage_location"]
            ),
            1,
        )
        ids = calc.read_batch(ctx.storage, item["storage_location"]).get_column(
            calc.RECORD_ID, default=pl.Series(dtype=pl.String)
        )
        rows = {str(i): first_row + p for p, i in enumerate(ids.to_list()) if i is not None}
        stem = calc.enriched_stem(previous["storage_location"])
        calculations = calc.calculate_records(
            frame.drop("error", "error_code", strict=False),
            f"{stem}.redrive-{self.redrive_number}.parquet",
            storage=ctx.storage,
            database=ctx.database,
            factor_set=ctx.factor_set,
            execution_id=self.execution_id,
            root_id=self.root_id,
        )["calculations"]
        self._record_lineage(writer, item["data_lineage"]["parent_id"], calculations, rows)
        return _iteration_output(calculations)


def _redrives_by_state(done: dict[str, Any]) -> dict[str, list[tuple[int, str]]]:
    """Redrive checkpoints (``MAP:<node>:redrive-<n>``) by their batch's state
    ``MAP:<node>``, as ``(n, key)``: one pass over the checkpoints, so that looking a
    batch's up is not a scan of them all (quadratic in the batches of a big file)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for key in done:
        state, marker, number = key.rpartition(":redrive-")
        if marker and state.startswith("MAP:") and number.isdigit():
            found.setdefault(state, []).append((int(number), key))
    return found


def _by_method(co2e_tonnes: dict[str, Any]) -> dict[str, dict[str, float]]:
    """A batch's CO2e per scope 2 method; a checkpoint written before totals were kept
    per method (``{"ar4", "ar5", "ar6"}``) counts in both, as it was reported then."""
    if "location_based" in co2e_tonnes:
        return co2e_tonnes
    return {method: dict(co2e_tonnes) for method in calc.SCOPE2_METHOD_OF}


def _iteration_output(calculations: dict[str, Any]) -> dict[str, Any]:
    return {
        "storage_location": calculations["storage_location"],
        "errors_storage_location": calculations["errors_storage_location"],
        "records_calculated": len(calculations["records"]),
        "records_failed": len(calculations["failed_records"]),
        "failed_records": calculations["failed_records"][:MAX_FAILED_SAMPLES],
        "co2e_tonnes": calculations["co2e_tonnes"],
    }


def _error(exc: BaseException) -> dict[str, str]:
    """The error and cause of a failure, as Step Functions records them."""
    cause = exc.__cause__ or exc
    return {"error": type(exc).__name__, "cause": f"{type(cause).__name__}: {cause}"}


def _by_batch(frame: pl.DataFrame, drop_key: bool = False) -> dict[int, pl.DataFrame]:
    """A frame of several batches, split by batch index."""
    if not frame.height:
        return {}
    parts = frame.partition_by(
        calc.BATCH_COLUMN, as_dict=True, maintain_order=True, include_key=not drop_key
    )
    return {int(key[0]): part for key, part in parts.items()}


def _lists_by_batch(
    frame: pl.DataFrame, first: str, second: str
) -> dict[int, tuple[list[Any], list[Any]]]:
    """Two columns of a frame as Python lists, per batch index (one pass)."""
    grouped = frame.group_by(calc.BATCH_COLUMN, maintain_order=True).agg(first, second)
    return {int(b): (x, y) for b, x, y in grouped.iter_rows()}


def _failed_records(bad: pl.DataFrame) -> list[dict[str, Any]]:
    """``node_id``, ``reason`` and ``position`` of a batch's failed records."""
    if not bad.height:
        return []
    ids = bad[calc.RECORD_ID].to_list()
    duplicated = bad[calc.RECORD_ID].is_duplicated().to_list()
    return [
        {
            "node_id": record_id if record_id and not dup else fallback,
            "reason": reason,
            "position": position,
        }
        for record_id, dup, fallback, reason, position in zip(
            ids,
            duplicated,
            bad["__node_id"].to_list(),
            bad["error"].to_list(),
            bad[calc.POSITION_COLUMN].to_list(),
            strict=True,
        )
    ]


_worker_pipelines: dict[str, Pipeline] = {}
_worker_lock = threading.Lock()


def run_group_task(settings: Settings, execution_id: str, group: list[Any]) -> int:
    """A map task as a Dask worker runs it: open (once per worker process) the workspace
    the settings name, then calculate the group of batches and commit its checkpoints."""
    pipeline = _worker_pipeline(settings)
    execution = pipeline.context.database.get_execution(execution_id)
    if execution is None:
        raise InputDataError(f"no execution {execution_id!r} in the workers' database")
    run = _ExecutionRun(pipeline, execution, None, redrive=False)
    return run._group([(int(index), batch) for index, batch in group])


def split_chunk_task(
    settings: Settings,
    raw_location: str,
    root_id: str,
    chunk: int,
    start: int,
    end: int,
    batch_size: int,
) -> list[tuple[str, int]]:
    """A split task as a Dask worker runs it: one byte range of the raw file into its own
    batch files, read from and written to storage directly."""
    storage = _worker_pipeline(settings).context.storage
    return transform.split_chunk(
        raw_location, root_id, chunk, start, end, storage=storage, batch_size=batch_size
    )


def _worker_pipeline(settings: Settings) -> Pipeline:
    """The pipeline of a worker process for these settings (opened once per process)."""
    key = repr(settings)
    with _worker_lock:
        pipeline = _worker_pipelines.get(key)
        if pipeline is None:
            pipeline = _worker_pipelines[key] = Pipeline(Context.open(settings))
    return pipeline
