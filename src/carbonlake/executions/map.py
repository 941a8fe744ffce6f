"""The map: the batches of an execution calculated in groups, on a runner, each batch
checkpointed; the redrive of batches with failed records; the results table's commit
after the map.

Consecutive batches are calculated together in groups of about ``GROUP_RECORDS``
records (one Polars call and one database transaction per group instead of per
batch); each batch still gets its own enriched file and its own checkpoint. A
group's record lineage nodes are one Parquet file of the lineage table, sealed by a
``RECORD_NODES`` ledger node (docs/lineage.md, "Record nodes in columnar files").
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed
from typing import Any

import polars as pl

from .. import calculate as calc
from .. import lake, lineage, transform
from .._exceptions import (
    CarbonlakeError,
    ExecutionAborted,
    InputDataError,
    LineageError,
    ObjectMissing,
    PipelineStepFailed,
)
from ..database import LINEAGE_TABLE, RESULTS_TABLE
from ..documents import Calculations
from ..settings import Settings
from .context import Context
from .journal import Journal, error_fields
from .runners import Runner, worker_context
from .states import MapState, State, redrives_by_batch

log = logging.getLogger("carbonlake.pipeline")

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(stage, done, total)`` while an execution runs."""

MAX_FAILED_SAMPLES = 20
"""Failed records a batch's checkpoint (and the run summary) keeps as samples."""

GROUP_RECORDS = 20_000
"""Records calculated per Polars call and database transaction in the map."""


class BatchMap:
    """The map of one execution's pass (fresh, resumed or redriven)."""

    def __init__(
        self,
        context: Context,
        journal: Journal,
        *,
        batch_size: int,
        done: dict[str, dict[str, Any]],
        redrive: bool,
        redrive_number: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.ctx = context
        self.db = context.database
        self.journal = journal
        self.execution_id = journal.execution_id
        self.root_id = journal.root_id
        self.batch_size = batch_size
        self.done = done
        """Outputs of the execution's completed states (this map adds its own)."""
        self.redrive = redrive
        self.redrive_number = redrive_number
        self.progress = progress
        self._pass_node: str | None = None
        self.batch_errors: list[str] = []
        """Why batches failed in this pass (the summary's error starts with the first)."""

    @classmethod
    def of_execution(
        cls,
        context: Context,
        execution: dict[str, Any],
        *,
        stop: threading.Event,
        redrive: bool = False,
        progress: ProgressCallback | None = None,
        states: Sequence[str] | None = None,
    ) -> BatchMap:
        """The map of an execution as the database has it, with a journal of its own
        (with the checkpoints of ``states`` only, when given: a worker's map task)."""
        execution_id: str = execution["execution_id"]
        journal = Journal(
            context.database,
            context.storage,
            context.settings.retry,
            execution_id=execution_id,
            root_id=execution["input"]["input"]["root_id"],
            stop=stop,
        )
        return cls(
            context,
            journal,
            batch_size=execution["input"].get("batch_size") or context.settings.pipeline.batch_size,
            done=context.database.checkpoints(execution_id, states),
            redrive=redrive,
            redrive_number=execution["redrive_count"],
            progress=progress,
        )

    def run(self, split: dict[str, Any], runner: Runner) -> None:
        """The spec's map state on ``runner`` (the caller's to close): each iteration
        gets only its location and lineage ids.

        Consecutive batches are calculated together in groups of about
        ``GROUP_RECORDS`` records (one Polars call and one database transaction per
        group instead of per batch); each batch still gets its own enriched file,
        lineage nodes under its own batch node, and its own checkpoint.
        """
        batches = split["batches"]
        fresh: list[tuple[int, dict[str, Any]]] = []
        redrives: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        redriven = redrives_by_batch(self.done) if self.redrive else {}
        for index, batch in enumerate(batches):
            key = MapState(batch["node_id"]).name
            if key not in self.done:
                fresh.append((index, batch))
            elif self.redrive and self._latest(batch, redriven)["records_failed"]:
                redrives.append((index, batch, self._latest(batch, redriven)))
        per_group = max(1, GROUP_RECORDS // max(self.batch_size, 1))
        groups = [fresh[i : i + per_group] for i in range(0, len(fresh), per_group)]
        distributed = runner.distributed
        tasks: list[Callable[[], int]]
        if distributed:
            # Workers open the workspace themselves (storage, database) from the settings:
            # only ids and locations travel through the scheduler, never data.
            tasks = [
                functools.partial(run_group_task, self.ctx.settings, self.execution_id, group)
                for group in groups
            ]
        else:
            tasks = [functools.partial(self.run_group, group) for group in groups]
        tasks += [functools.partial(self._redrive_batch, *item) for item in redrives]
        total = len(batches)
        finished = total - len(fresh) - len(redrives)
        failures: list[BaseException] = []
        if self.progress:
            self.progress("calculate", finished, total)
        # Two tasks per slot, so that a worker (or thread) never waits for its next one.
        window = self.ctx.settings.pipeline.max_concurrency * 2
        pending: set[Future[int]] = set()
        queue = iter(tasks)
        while True:
            # Bounded submission: memory stays flat however many batches there are.
            for task in queue:
                pending.add(runner.submit(task))
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
        self.batch_errors = [str(f) for f in failures if isinstance(f, PipelineStepFailed)]
        aborted = [f for f in failures if isinstance(f, ExecutionAborted)]
        if aborted:
            raise aborted[0]
        unexpected = [f for f in failures if not isinstance(f, PipelineStepFailed)]
        if unexpected:
            raise unexpected[0]

    def run_group(self, group: list[tuple[int, dict[str, Any]]], announce: bool = True) -> int:
        """Calculate a group of batches in one go; if that fails, batch by batch with
        retries, so one bad batch does not fail its neighbours. Returns batches done."""
        self.journal.check_stop()
        if announce:
            self.db.add_events(
                self.execution_id,
                [
                    (
                        "MapIterationStarted",
                        MapState(batch["node_id"]).name,
                        {"index": index, "storage_location": batch["storage_location"]},
                    )
                    for index, batch in group
                ],
            )
        if announce:
            # A task retried after its worker died may find its work already committed.
            committed = self.db.completed_states(
                self.execution_id, [MapState(b["node_id"]).name for _, b in group]
            )
            remaining = [(i, b) for i, b in group if MapState(b["node_id"]).name not in committed]
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
                    done += self.run_group([item], announce=False)
                except PipelineStepFailed as exc:
                    failure = exc
            if failure is not None:
                raise failure
            return done
        index, batch = group[0]
        state = MapState(batch["node_id"]).name
        try:
            self.journal.run(state, lambda: self._calculate_group(group))
        except PipelineStepFailed as exc:
            # The failure's own error and cause (the journal raised this one from it).
            self.db.add_event(
                self.execution_id,
                "MapIterationFailed",
                state,
                {"index": index, **error_fields(exc.__cause__ or exc)},
            )
            raise
        return 1

    def _calculate_group(self, group: list[tuple[int, dict[str, Any]]]) -> None:
        ctx = self.ctx
        locations = [batch["storage_location"] for _, batch in group]
        try:
            contents = ctx.storage.read_many(locations)  # one round of requests on S3
        except ObjectMissing:
            for location in locations:
                self._require_batch(location)
            raise
        frames = []
        for (index, _), location, data in zip(group, locations, contents, strict=True):
            key = ctx.storage.split(location)[1]
            frames.append(
                calc.BatchFrame(
                    index,
                    calc.batch_frame(data, location, transform.batch_schema),
                    ctx.storage.url("enriched", transform.enriched_key(key)),
                )
            )
        name = f"group-{group[0][0]:06d}"
        calculated = calc.calculate_group(
            frames,
            storage=ctx.storage,
            factor_set=ctx.factor_set,
            root_id=self.root_id,
            execution_id=self.execution_id,
            name=name,
            write=False,  # with the group's record lineage file, in one bulk call below
        )
        writer = self.journal.writer()
        # The records' parents (the batch nodes) in one query, not one per batch.
        batch_nodes = self.db.lineage_nodes(self.root_id, [b["node_id"] for _, b in group])
        writer.remember(batch_nodes)
        if self._pass_node is None and batch_nodes:
            self._pass_node = str(batch_nodes[0]["parent_id"])
        states: list[tuple[str, dict[str, Any]]] = []
        node_groups: list[lineage.RecordNodes] = []
        for (index, batch), done in zip(group, calculated.batches, strict=True):
            first_row = batch.get("first_row", index * self.batch_size + 1)
            node_groups += self._record_nodes(writer, batch["node_id"], done, first_row)
            states.append(
                (
                    MapState(batch["node_id"]).name,
                    {
                        "storage_location": done.enriched_location,
                        "errors_storage_location": done.errors_location,
                        "records_calculated": len(done.record_ids),
                        "records_failed": done.failed_count,
                        "failed_records": [
                            {"node_id": r["node_id"], "reason": r["reason"]}
                            for r in done.failed_records[:MAX_FAILED_SAMPLES]
                        ],
                        "co2e_tonnes": done.co2e_tonnes,
                    },
                )
            )
        results_file = calculated.results_file
        files = [results_file] if results_file else []
        unwritten = calculated.unwritten
        # The group's record nodes are one file of the lineage table, sealed by one ledger
        # node that keeps its SHA-256 (the checkpoint commits both with the registration).
        record_nodes = writer.record_nodes(self.root_id, node_groups)
        if record_nodes.height:
            nodes_file, nodes_bytes = lake.lineage_file(
                ctx.storage,
                record_nodes,
                root_id=self.root_id,
                execution_id=self.execution_id,
                name=name,
            )
            unwritten.append((nodes_file.file_path, nodes_bytes))
            writer.add(
                self.root_id,
                lineage.new_node_id(),
                self._split_parent(group[0][1]["node_id"]),
                lineage.RECORD_NODES,
                nodes_file.file_path,
                object_sha256=nodes_file.sha256,
            )
            files.append(nodes_file)
        # Every file whole before any is registered: one round of requests on S3.
        ctx.storage.write_many(unwritten)
        self.journal.commit_group(
            states,
            writer.take(),
            files,
            calculated.emission_rows.get_column("activity_event_id").to_list(),
            calculated.failure_rows,
        )
        for state, output in states:
            self.done[state] = output

    def _split_parent(self, batch_node_id: str) -> str:
        """The node the batches hang under (the DQ_CHECK_PASS node), from a batch's node."""
        if self._pass_node is None:
            node = self.db.lineage_node(self.root_id, batch_node_id)
            if node is None:
                raise LineageError(
                    f"execution {self.execution_id}: batch node {batch_node_id} of root "
                    f"{self.root_id} is not in the ledger; run `carbonlake lineage verify`"
                )
            self._pass_node = str(node["parent_id"])
        return self._pass_node

    def _redrive_batch(self, index: int, batch: dict[str, Any], previous: dict[str, Any]) -> int:
        self._iteration(index, batch, previous)
        return 1

    def _latest(
        self, batch: dict[str, Any], redriven: dict[str, list[tuple[int, str]]]
    ) -> dict[str, Any]:
        """The newest output of a batch: its last redrive's, else its first run's."""
        state = MapState(batch["node_id"]).name
        redrives = redriven.get(state)
        return self.done[max(redrives)[1]] if redrives else self.done[state]

    def _require_batch(self, location: str) -> None:
        """A batch file that is gone cannot be retried or redriven: say what does work."""
        if self.ctx.storage.exists(location):
            return
        raw = self.done.get(State.DQ_CHECK_RESULTS, {}).get("storage_location", "the input file")
        raise InputDataError(
            f"batch file {location} of execution {self.execution_id} is gone (was "
            f"transformed/{self.root_id} deleted?); neither a retry nor a redrive can rebuild "
            f"it. Run the input again as a new execution: `carbonlake run FILE --force` with "
            f"the file now at {raw}"
        )

    def _iteration(self, index: int, batch: dict[str, Any], previous: dict[str, Any]) -> None:
        """Redrive one batch: calculate its failed records again and record their lineage."""
        self.journal.check_stop()
        item = {
            "storage_location": batch["storage_location"],
            "data_lineage": {"root_id": self.root_id, "parent_id": batch["node_id"]},
        }
        state = MapState(batch["node_id"], self.redrive_number).name
        self.db.add_event(self.execution_id, "MapIterationStarted", state, {"index": index, **item})

        def failed(exc: BaseException) -> None:
            self.db.add_event(
                self.execution_id,
                "MapIterationFailed",
                state,
                {"index": index, **error_fields(exc)},
            )

        self.done[state] = self.journal.commit(
            state,
            lambda w: self._recalculate_failed(w, item, previous),
            event_type="MapIterationSucceeded",
            on_failure=failed,
        )

    def _failed_node_id(self, node_id: str) -> str:
        # The record's own id is kept for its CALCULATION_COMPLETE node, which a redrive
        # may still write; each failed attempt gets a node of its own.
        return f"{node_id}#failed-{self.redrive_number + 1}"

    def _record_nodes(
        self,
        writer: lineage.LineageWriter,
        parent_id: str,
        done: calc.BatchCalculation,
        first_row: int,
    ) -> list[lineage.RecordNodes]:
        """A batch's calculation lineage for the lineage table's file: the nodes
        :meth:`_record_calculation` makes of the same batch (a CALCULATION_COMPLETE node
        per record calculated, a CALCULATION_FAILED node per failure)."""
        nodes = [
            lineage.RecordNodes(
                [str(n) for n in done.record_ids],
                parent_id,
                lineage.CALCULATION_COMPLETE,
                done.enriched_location,
                hashlib.sha256(done.enriched_bytes).hexdigest(),
                [first_row + p for p in done.positions],
            )
        ]
        if done.failed_records:
            errors_location = str(done.errors_location)
            nodes.append(
                lineage.RecordNodes(
                    [self._failed_node_id(r["node_id"]) for r in done.failed_records],
                    parent_id,
                    lineage.CALCULATION_FAILED,
                    errors_location,
                    done.errors_sha256
                    or writer.object_sha256(errors_location, lineage.CALCULATION_FAILED),
                    [first_row + r["position"] for r in done.failed_records],
                )
            )
        return nodes

    def _record_calculation(
        self,
        writer: lineage.LineageWriter,
        parent_id: str,
        enriched_location: str,
        records: list[dict[str, Any]],
        errors_location: str | None,
        failed: list[dict[str, Any]],
        written: bytes | None = None,
    ) -> None:
        """A batch's calculation lineage: one CALCULATION_COMPLETE request for the
        records calculated (``written``: the enriched file's bytes, when at hand) and one
        CALCULATION_FAILED request for those that failed, each failure a node of its own."""
        lineage.record_request(
            {
                "root_id": self.root_id,
                "parent_id": parent_id,
                "action_taken": lineage.CALCULATION_COMPLETE,
                "storage_location": enriched_location,
                "records": records,
            },
            writer,
            written=written,
        )
        if failed:
            lineage.record_request(
                {
                    "root_id": self.root_id,
                    "parent_id": parent_id,
                    "action_taken": lineage.CALCULATION_FAILED,
                    "storage_location": errors_location,
                    "records": [
                        {**r, "node_id": self._failed_node_id(r["node_id"])} for r in failed
                    ],
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
                for b in self.done[State.BATCH_SPLIT]["batches"]
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
        self._record_calculation(
            writer,
            item["data_lineage"]["parent_id"],
            calculations["storage_location"],
            lineage.with_row_numbers(calculations["records"], rows),
            calculations["errors_storage_location"],
            [
                {"node_id": r["node_id"], "row_number": rows.get(r["node_id"])}
                for r in calculations["failed_records"]
            ],
        )
        return _iteration_output(calculations)

    def commit_results(self) -> None:
        """The results table's commit of this execution's results files (after the map:
        one Iceberg commit per execution; nothing to do when they are committed)."""
        try:
            replaced = lake.commit(
                self.ctx.database,
                self.ctx.storage,
                self.execution_id,
                self.root_id,
                tables=(RESULTS_TABLE, LINEAGE_TABLE),
            )
        except (CarbonlakeError, OSError) as exc:
            raise PipelineStepFailed(
                State.COMMIT_RESULTS.value,
                self.execution_id,
                self.root_id,
                f"the results could not be committed to the results table: {exc}; resume with "
                f"`carbonlake executions resume {self.execution_id}`",
            ) from exc
        if replaced:
            log.info("execution %s replaced %d earlier results", self.execution_id, replaced)


_WORKERS_NEVER_STOP = threading.Event()  # a worker's task stops with its scheduler


def run_group_task(settings: Settings, execution_id: str, group: list[Any]) -> int:
    """A map task as a Dask worker runs it: open (once per worker process) the workspace
    the settings name, then calculate the group of batches and commit its checkpoints."""
    context = worker_context(settings)
    execution = context.database.get_execution(execution_id)
    if execution is None:
        raise InputDataError(f"no execution {execution_id!r} in the workers' database")
    # A group needs no other checkpoint than the file it came from (reading them all, once
    # per group, grew with the map: 7 % of a worker's time at 1m records).
    batch_map = BatchMap.of_execution(
        context, execution, stop=_WORKERS_NEVER_STOP, states=[str(State.DQ_CHECK_RESULTS)]
    )
    return batch_map.run_group([(int(index), batch) for index, batch in group])


def _iteration_output(calculations: Calculations) -> dict[str, Any]:
    return {
        "storage_location": calculations["storage_location"],
        "errors_storage_location": calculations["errors_storage_location"],
        "records_calculated": len(calculations["records"]),
        "records_failed": len(calculations["failed_records"]),
        "failed_records": calculations["failed_records"][:MAX_FAILED_SAMPLES],
        "co2e_tonnes": calculations["co2e_tonnes"],
    }
