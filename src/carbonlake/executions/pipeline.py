"""The pipeline: the spec's state machine, one durable execution per input file.

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

import contextlib
import functools
import logging
import threading
import uuid
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from .. import kickoff as kick
from .. import lineage, notify, quality, transform
from .._exceptions import (
    ConfigurationError,
    CopyMismatch,
    ExecutionAborted,
    InputDataError,
    PipelineStepFailed,
    StateConflict,
)
from ..documents import DqCheckEvent, ExecutionInput, TransformEvent
from ..storage import file_sha256
from .context import Context, owner_alive, this_process
from .journal import StateWork
from .map import BatchMap, ProgressCallback
from .runners import Runner, open_runner, split_chunk_task
from .states import DQ_FAILED_STATES, State
from .summary import RunSummary, where_now

log = logging.getLogger("carbonlake.pipeline")


class Pipeline:
    """Runs, resumes and redrives executions of the whole pipeline on one workspace."""

    def __init__(self, context: Context, executor: Executor | None = None) -> None:
        self.context = context
        self.executor = executor
        """An executor the map runs on instead of ``[pipeline] executor`` (the caller's to
        shut down)."""
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
        execution_input: ExecutionInput,
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
        if any(state in done for state in DQ_FAILED_STATES):
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
        execution = self._execution(execution_id)
        storage = self.context.storage
        if status is None:
            recorded = execution["output"]
            if recorded:
                return where_now(dict(recorded), storage)
            status, error = execution["status"], execution["error"]
        done = self.context.database.checkpoints(execution_id)
        summary = RunSummary.of_execution(self.context, execution, done, status, error)
        return where_now(summary.to_dict(), storage)

    # -- the runner of the map -----------------------------------------------------------

    def distributed(self) -> bool:
        """Whether the map and the split run on Dask workers (``[pipeline] executor``)."""
        return self.executor is None and self.context.settings.pipeline.executor == "dask"

    def open_runner(self, execution_id: str, root_id: str) -> Runner:
        """The runner of an execution's map (or distributed split); the caller closes it."""
        try:
            return open_runner(self.context.settings.pipeline, self.executor)
        except ConfigurationError as exc:
            raise PipelineStepFailed(State.MAP.value, execution_id, root_id, str(exc)) from exc


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
        self.input: dict[str, Any] = execution["input"]["input"]
        self.object_sha256: str | None = execution.get("object_sha256")
        self.progress = progress
        self.map = BatchMap.of_execution(
            self.ctx, execution, stop=pipeline.stop_requested, redrive=redrive, progress=progress
        )
        self.journal = self.map.journal
        self.execution_id = self.journal.execution_id
        self.root_id = self.journal.root_id
        self.batch_size = self.map.batch_size
        self.done = self.map.done
        self._runner: Runner | None = None

    @property
    def batch_errors(self) -> list[str]:
        """Why batches failed in this pass (the summary's error starts with the first)."""
        return self.map.batch_errors

    def state(self, name: str, call: StateWork) -> dict[str, Any]:
        """Run a state unless a checkpoint says it completed; checkpoint it atomically."""
        name = str(name)  # a State member is recorded as its plain name
        if name in self.done:
            return self.done[name]
        self.journal.check_stop()
        if self.progress:
            self.progress(name, 0, 1)
        self.ctx.database.add_event(self.execution_id, "StateEntered", name, {})
        output = self.journal.commit(name, call)
        self.done[name] = output
        return output

    def _file_node(
        self, state: State, action: str, parent_id: str, location: str, sha256: str | None = None
    ) -> str:
        """A state whose work is one file-level lineage node (the spec's ``action``,
        pointing at ``location``, under ``parent_id``); returns the node's id. ``sha256``:
        the object's, when known (not read again)."""

        def work(writer: lineage.LineageWriter) -> dict[str, Any]:
            request = {
                "root_id": self.root_id,
                "parent_id": parent_id,
                "action_taken": action,
                "record": {"storage_location": location},
            }
            known = {location: sha256} if sha256 else None
            output = lineage.record_request(request, writer, known_sha256=known)
            return {"node_id": output["data_lineage"]["node_id"]}

        node_id: str = self.state(state, work)["node_id"]
        return node_id

    # -- the state machine -----------------------------------------------------------------

    def runner(self) -> Runner:
        """The runner of this pass's distributed split and map (opened once, on first use)."""
        if self._runner is None:
            self._runner = self.pipeline.open_runner(self.execution_id, self.root_id)
        return self._runner

    def states(self) -> None:
        """Run every state not yet checkpointed, in the spec's order."""
        try:
            if self.pipeline.distributed() and State.MAP not in self.done:
                # Workers open the workspace while this process lands and checks the file.
                # A scheduler that does not answer fails the first state that needs it.
                with contextlib.suppress(PipelineStepFailed):
                    self.runner().prepare(self.ctx.settings)
            self._states()
        finally:
            if self._runner is not None:
                self._runner.close()

    def _states(self) -> None:
        ctx = self.ctx
        root_id = self.root_id
        landing = self.input["storage_location"]

        # The landed object's SHA-256 was taken as it landed (from the bytes put, or read
        # from landing for an event); DQ_CHECK_RESULTS checks the object still has it.
        raw_node = self._file_node(
            State.RAW_DATA_INPUT, lineage.RAW_DATA_INPUT, root_id, landing, self.object_sha256
        )
        resources = self.state(
            State.DQ_SETUP,
            lambda w: quality.setup(
                {"event_type": "SETUP", "storage_location": landing, "root_id": root_id},
                database=ctx.database,
                rules=ctx.rules,
            )["data_quality"],
        )
        dq_results = self.state(
            State.DQ_PROFILE,
            lambda w: quality.profile(
                {"Name": resources["job_name"]},
                storage=ctx.storage,
                database=ctx.database,
                factor_set=ctx.factor_set,
                max_columns=ctx.settings.quality.max_columns,
            )["data_quality"]["results"],
        )
        self.state(
            State.DQ_CLEANUP,
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
        profile_node = self._file_node(
            State.PROFILE_COMPLETE, lineage.PROFILE_COMPLETE, raw_node, report_url
        )
        checked = self.state(
            State.DQ_CHECK_RESULTS, lambda w: self._check_results(landing, dq_results, report_url)
        )
        location = checked["storage_location"]
        if not checked["status"]:
            self._file_node(State.DQ_CHECK_FAIL, lineage.DQ_CHECK_FAIL, profile_node, location)
            self.state(State.DQ_ERROR_NOTIFICATION, lambda w: self._notify(landing, report_url))
            return

        # The raw object is the landed one, moved (renamed, or copied and verified
        # against the SHA-256 just checked): that hash is its own, not read again.
        pass_node = self._file_node(
            State.DQ_CHECK_PASS,
            lineage.DQ_CHECK_PASS,
            profile_node,
            location,
            checked.get("object_sha256"),
        )
        transformed = self.state(
            State.TRANSFORM, lambda w: self._transform(location, checked.get("split_offsets"))
        )
        split = self.state(State.BATCH_SPLIT, lambda w: self._split(w, pass_node, transformed))
        self.map.run(split, self.runner())
        self.map.commit_results()

    def _check_results(
        self, landing: str, dq_results: dict[str, Any], report_url: str
    ) -> dict[str, Any]:
        ctx = self.ctx
        report = quality.read_report(report_url, ctx.storage)
        event: DqCheckEvent = {"storage_location": landing, "dq_results": dq_results}
        offsets: list[int] | None = None
        if self._moved_by_copy():
            # The move copies the object and reads its copy back, verified against the
            # SHA-256 the file landed with: that read is the check that landing still held
            # those bytes (landing is not read first), and it finds the split's byte ranges.
            sha256 = self.object_sha256
            cuts: list[list[int]] = []
            verify = None
            if self.pipeline.distributed() and quality.report_passed(report):
                verify = functools.partial(self._sha256_and_cuts, cuts)
            try:
                checked = quality.check_results(
                    event, storage=ctx.storage, sha256=sha256, verify=verify
                )
            except CopyMismatch as exc:
                found = ctx.storage.sha256(landing) if ctx.storage.exists(landing) else None
                if sha256 is not None and found is not None and found != sha256:
                    raise self._replaced(landing, found) from exc
                raise
            offsets = cuts[-1] if cuts else None
        else:
            sha256, offsets = self._check_landed_bytes(landing)
            checked = quality.check_results(event, storage=ctx.storage, sha256=sha256)
        known: dict[str, Any] = {"object_sha256": sha256} if sha256 else {}
        if offsets is not None:
            known["split_offsets"] = offsets
        return {
            **checked,
            **quality.verdict(report, report_url, bool(checked["status"])),
            **known,
        }

    def _moved_by_copy(self) -> bool:
        """Whether DQ_CHECK_RESULTS's move copies (an object store) instead of renaming."""
        storage = self.ctx.storage
        return not all(storage.is_local(bucket) for bucket in ("landing", "raw", "error"))

    def _sha256_and_cuts(self, cuts: list[list[int]], url: str) -> str:
        """The SHA-256 of ``url`` with the split's byte ranges, found in the same read
        (appended to ``cuts``)."""
        found, offsets = transform.sha256_and_boundaries(
            self.ctx.storage, url, self._split_chunk_bytes()
        )
        cuts.append(offsets)
        return found

    def _replaced(self, landing: str, found: str) -> InputDataError:
        return InputDataError(
            f"{landing} was replaced while execution {self.execution_id} was checking it "
            f"(SHA-256 {found}, started with {self.object_sha256}); it is left in landing "
            "for a run of its own. Land each file under a new key, or let carbonlake land "
            "it (`carbonlake run FILE --key KEY`), which never overwrites an object"
        )

    def _check_landed_bytes(self, landing: str) -> tuple[str | None, list[int] | None]:
        """The object in landing must still be the one this execution started with: a
        writer that replaced it meanwhile would have it check and calculate other bytes.
        Returns the SHA-256 it checked (None when there was nothing to check) and, for a
        split on workers, the file's byte ranges, found in the same read."""
        storage = self.ctx.storage
        if self.object_sha256 is None or not storage.exists(landing):
            return None, None
        offsets: list[int] | None = None
        if self.pipeline.distributed():
            found, offsets = transform.sha256_and_boundaries(
                storage, landing, self._split_chunk_bytes()
            )
        else:
            found = storage.sha256(landing)
        if found != self.object_sha256:
            raise self._replaced(landing, found)
        return found, offsets

    def _split_chunk_bytes(self) -> int:
        """The byte range of one split task on workers (``[pipeline] split_chunk_mb``)."""
        return max(1, int(self.ctx.settings.pipeline.split_chunk_mb * (1 << 20)))

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

    def _transform(self, raw_location: str, offsets: list[int] | None) -> dict[str, Any]:
        """The spec's Glue job; on workers, over ``offsets`` (the raw file's boundaries)
        when the landing check found them."""
        storage = self.ctx.storage
        # A transform that ran before a crash may have left batches: start clean.
        for stale in storage.list("transformed", self.root_id):
            storage.delete(stale)
        event: TransformEvent = {
            "JobName": transform.JOB_NAME,
            "Arguments": {"--UNIQUE_DIRECTORY": self.root_id},
        }
        if not self.pipeline.distributed():
            output: dict[str, Any] = transform.run(
                event, storage=storage, batch_size=self.batch_size, raw_location=raw_location
            )
            return output

        def on_workers(ranges: list[transform.ChunkRange]) -> list[transform.WrittenBatch]:
            # Every worker reads its byte range of the raw file and writes its own batches.
            runner = self.runner()
            futures = [
                runner.submit(
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
            return [pair for future in futures for pair in future.result()]

        distributed: dict[str, Any] = transform.run(
            event,
            storage=storage,
            batch_size=self.batch_size,
            raw_location=raw_location,
            chunk_bytes=self._split_chunk_bytes(),
            map_chunks=on_workers,
            offsets=offsets,
        )
        return distributed

    def _split(
        self, writer: lineage.LineageWriter, pass_node: str, transformed: dict[str, Any]
    ) -> dict[str, Any]:
        batches = transform.enumerate_batches(
            {"batch_location_dir": self.root_id}, storage=self.ctx.storage
        )["batches"]
        sizes: list[int] = transformed["batch_records"]
        if len(sizes) != len(batches):
            raise InputDataError(
                f"transformed/{self.root_id}/ holds {len(batches)} batch files but the split "
                f"wrote {len(sizes)}; the transformed bucket was changed meanwhile"
            )
        # The split hashed what it wrote: the batch files are not read back (on S3, 1,000
        # files at 1m rows were 1,000 round trips). A checkpoint written before the split
        # kept its hashes has none: those files are read.
        hashes: list[str] = transformed.get("batch_sha256") or []
        lineage.record_request(
            {
                "root_id": self.root_id,
                "parent_id": pass_node,
                "action_taken": lineage.GLUE_BATCH_SPLIT,
                "records": batches,
            },
            writer,
            known_sha256=dict(zip([b["storage_location"] for b in batches], hashes, strict=False)),
        )
        first_row = 1
        numbered: list[dict[str, Any]] = []
        for batch, size in zip(batches, sizes, strict=True):
            numbered.append({**batch, "first_row": first_row, "records": size})
            first_row += size
        return {"batches": numbered, "batch_records": sizes}

    # -- the map ----------------------------------------------------------------------------
