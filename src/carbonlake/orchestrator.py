"""The orchestrator: the spec's state machine, one execution per input file.

kickoff -> RAW_DATA_INPUT -> dq setup -> dq profile -> dq cleanup -> dq check
results -> (DQ_CHECK_FAIL -> notification) | (DQ_CHECK_PASS -> transform ->
enumerate batches -> GLUE_BATCH_SPLIT -> map over batches: calculate ->
CALCULATION_COMPLETE / CALCULATION_FAILED).

Every stage is called with the spec's input document and returns the spec's
output document; a stage that raises is wrapped as :class:`PipelineStepFailed`
naming the step, the execution and the file. The map runs on a
``concurrent.futures`` executor with at most ``[pipeline] max_concurrency``
batches at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from . import calculate as calc
from . import kickoff as kick
from . import lineage, notify, quality, transform
from ._exceptions import CarbonlakeError, PipelineStepFailed
from .calculate.factors import FactorSet, load_factor_set
from .database import Database
from .quality.rules import Rule
from .settings import Settings
from .storage import Storage

log = logging.getLogger("carbonlake.pipeline")

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(stage, done, total)`` while an execution runs."""

T = TypeVar("T")
MAX_FAILED_SAMPLES = 20


@dataclass
class Context:
    """What stages need, built once from settings."""

    settings: Settings
    storage: Storage
    database: Database
    rules: list[Rule]
    factor_set: FactorSet

    @classmethod
    def open(cls, settings: Settings) -> Context:
        """Open storage and database of a workspace and load rules and factors."""
        storage = Storage(settings.storage_root_url)
        storage.ensure_buckets()
        database = Database(settings.database_url, settings.database.busy_timeout_ms)
        return cls(
            settings=settings,
            storage=storage,
            database=database,
            rules=quality.load_ruleset(settings.quality.ruleset),
            factor_set=load_factor_set(settings.calculate.factor_set, database),
        )

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()


class Pipeline:
    """Runs executions of the whole pipeline on one workspace."""

    def __init__(self, context: Context, executor: Executor | None = None) -> None:
        self.context = context
        self._executor = executor

    # -- ways in -------------------------------------------------------------------

    def run_file(
        self, path: Path, key: str | None = None, progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Put a local file into ``landing`` (under its name or ``key``) and run it."""
        storage = self.context.storage
        key = key or path.name
        landing = storage.url("landing", key)
        storage.put_file(path, landing)
        event = kick.s3_put_event(storage.bucket_name("landing"), key, storage.size(landing))
        return self.run_event(event, progress)[0]

    def run_event(
        self, event: dict[str, Any], progress: ProgressCallback | None = None
    ) -> list[dict[str, Any]]:
        """Run one execution per object of an S3 event notification."""
        inputs = kick.parse_event(event, self.context.storage)
        return [self.execute(item["input"], progress) for item in inputs]

    # -- one execution -------------------------------------------------------------

    def execute(
        self, execution_input: dict[str, Any], progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Run the state machine for one kicked-off file; returns the run summary."""
        ctx = self.context
        db = ctx.database
        execution_id = str(uuid.uuid4())
        root_id = execution_input["root_id"]
        landing_location = execution_input["storage_location"]
        name = PurePosixPath(ctx.storage.split(landing_location)[1]).name
        db.insert_execution(execution_id, name, {"input": execution_input})
        db.set_execution_root(execution_id, root_id)
        summary: dict[str, Any] = {
            "execution_id": execution_id,
            "root_id": root_id,
            "status": "RUNNING",
            "input_storage_location": landing_location,
            "storage_location": landing_location,
            "records_in": 0,
            "records_calculated": 0,
            "records_failed": 0,
            "co2e_tonnes": {"ar4": 0.0, "ar5": 0.0, "ar6": 0.0},
            "data_quality": None,
            "error": None,
        }
        writer = lineage.LineageWriter(db, ctx.storage)
        try:
            self._run_states(execution_input, execution_id, summary, writer, progress)
            writer.flush()
        except PipelineStepFailed as exc:
            # Keep what was recorded so far: a partial trail still explains the failure.
            try:
                writer.flush()
            except CarbonlakeError as flush_exc:
                log.error(
                    "could not write the lineage of execution %s: %s", execution_id, flush_exc
                )
            summary["status"] = "FAILED"
            summary["error"] = str(exc)
        if summary["status"] == "RUNNING":
            summary["status"] = "SUCCEEDED"
        if summary["records_calculated"]:
            summary["by_activity"] = db.emission_totals(root_id, "activity")
        db.finish_execution(execution_id, summary["status"], summary, summary["error"])
        return summary

    def _step(self, step: str, execution_id: str, root_id: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except CarbonlakeError as exc:
            raise PipelineStepFailed(step, execution_id, root_id, str(exc)) from exc
        except OSError as exc:
            raise PipelineStepFailed(
                step, execution_id, root_id, f"{type(exc).__name__}: {exc}"
            ) from exc

    def _run_states(
        self,
        execution_input: dict[str, Any],
        execution_id: str,
        summary: dict[str, Any],
        writer: lineage.LineageWriter,
        progress: ProgressCallback | None,
    ) -> None:
        ctx = self.context
        root_id = execution_input["root_id"]
        landing_location = execution_input["storage_location"]

        def step(name: str, call: Callable[[], T]) -> T:
            if progress:
                progress(name, 0, 1)
            return self._step(name, execution_id, root_id, call)

        raw_node = step(
            "data_lineage:RAW_DATA_INPUT",
            lambda: lineage.record_request(
                {
                    "root_id": root_id,
                    "parent_id": root_id,
                    "action_taken": lineage.RAW_DATA_INPUT,
                    "record": {"storage_location": landing_location},
                },
                writer,
            ),
        )["data_lineage"]["node_id"]

        resources = step(
            "dq_setup",
            lambda: quality.setup(
                {"event_type": "SETUP", "storage_location": landing_location, "root_id": root_id},
                database=ctx.database,
                rules=ctx.rules,
            ),
        )["data_quality"]
        try:
            dq_results = step(
                "dq_profile",
                lambda: quality.profile(
                    {"Name": resources["job_name"]},
                    storage=ctx.storage,
                    database=ctx.database,
                    factor_set=ctx.factor_set,
                ),
            )["data_quality"]["results"]
        finally:
            step(
                "dq_cleanup",
                lambda: quality.cleanup(
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
        profile_node = step(
            "data_lineage:PROFILE_COMPLETE",
            lambda: lineage.record_request(
                {
                    "root_id": root_id,
                    "parent_id": raw_node,
                    "action_taken": lineage.PROFILE_COMPLETE,
                    "record": {"storage_location": report_url},
                },
                writer,
            ),
        )["data_lineage"]["node_id"]
        report = step("dq_check_results", lambda: quality.read_report(report_url, ctx.storage))
        checked = step(
            "dq_check_results",
            lambda: quality.check_results(
                {"storage_location": landing_location, "dq_results": dq_results},
                storage=ctx.storage,
            ),
        )
        summary["storage_location"] = checked["storage_location"]
        failed_rules = report["summary"]["failedRules"]
        summary["data_quality"] = {
            "status": "PASSED" if checked["status"] else "FAILED",
            "report_location": report_url,
            "failed_rules": failed_rules,
            "warnings": report["summary"].get("warnedRules", []),
            "reasons": [
                {"rule": x["name"], "severity": x.get("severity", "error"), "reason": x["reason"]}
                for x in report["rulesetResults"][0]["ruleResults"]
                if x["status"] == "FAILED"
            ],
        }
        summary["records_in"] = report.get("rowsCount") or 0

        if not checked["status"]:
            step(
                "data_lineage:DQ_CHECK_FAIL",
                lambda: lineage.record_request(
                    {
                        "root_id": root_id,
                        "parent_id": profile_node,
                        "action_taken": lineage.DQ_CHECK_FAIL,
                        "record": {"storage_location": checked["storage_location"]},
                    },
                    writer,
                ),
            )
            step(
                "dq_error_notification",
                lambda: notify.send(
                    {
                        "subject": notify.DQ_FAILURE_SUBJECT,
                        "message": notify.dq_failure_message(
                            landing_location,
                            failed_rules,
                            reasons={
                                r["name"]: r["reason"] for r in quality.failed_results(report)
                            },
                            report_location=report_url,
                        ),
                        "storage_location": landing_location,
                        "failed_rules": failed_rules,
                        "report_location": report_url,
                    },
                    settings=ctx.settings.notify,
                    database=ctx.database,
                    root_id=root_id,
                ),
            )
            summary["status"] = "FAILED"
            summary["error"] = (
                f"data quality failed ({'; '.join(failed_rules)}); the file is now at "
                f"{checked['storage_location']}; report: {report_url}"
            )
            return

        pass_node = step(
            "data_lineage:DQ_CHECK_PASS",
            lambda: lineage.record_request(
                {
                    "root_id": root_id,
                    "parent_id": profile_node,
                    "action_taken": lineage.DQ_CHECK_PASS,
                    "record": {"storage_location": checked["storage_location"]},
                },
                writer,
            ),
        )["data_lineage"]["node_id"]

        transformed = step(
            "transform",
            lambda: transform.run(
                {"JobName": transform.JOB_NAME, "Arguments": {"--UNIQUE_DIRECTORY": root_id}},
                storage=ctx.storage,
                batch_size=ctx.settings.pipeline.batch_size,
                raw_location=checked["storage_location"],
            ),
        )
        summary["records_in"] = transformed["records"]
        batches = step(
            "enumerate_batches",
            lambda: transform.enumerate_batches(
                {"batch_location_dir": root_id}, storage=ctx.storage
            ),
        )["batches"]
        step(
            "data_lineage:GLUE_BATCH_SPLIT",
            lambda: lineage.record_request(
                {
                    "root_id": root_id,
                    "parent_id": pass_node,
                    "action_taken": lineage.GLUE_BATCH_SPLIT,
                    "records": batches,
                },
                writer,
            ),
        )
        self._map(batches, root_id, execution_id, summary, writer, progress)
        if summary["records_failed"]:
            summary["status"] = "FAILED"
            summary["error"] = (
                f"{summary['records_failed']} record(s) could not be calculated; "
                "their reasons are in the errors files listed under failed_records"
            )

    def _map(
        self,
        batches: list[dict[str, Any]],
        root_id: str,
        execution_id: str,
        summary: dict[str, Any],
        writer: lineage.LineageWriter,
        progress: ProgressCallback | None,
    ) -> None:
        """The spec's map state: each iteration gets only its location and lineage ids."""
        iterations = [
            {
                "storage_location": batch["storage_location"],
                "data_lineage": {"root_id": root_id, "parent_id": batch["node_id"]},
            }
            for batch in batches
        ]
        executor = self._executor
        own = executor is None
        if executor is None:
            executor = ThreadPoolExecutor(
                max_workers=self.context.settings.pipeline.max_concurrency,
                thread_name_prefix="carbonlake-map",
            )
        failed_samples: list[dict[str, Any]] = []
        errors_files: list[str] = []
        try:
            futures = [
                executor.submit(self._iteration, item, execution_id, writer) for item in iterations
            ]
            if progress:
                progress("calculate", 0, len(futures))
            for done, future in enumerate(as_completed(futures), start=1):
                result = future.result()
                calculations = result["calculations"]
                summary["records_calculated"] += len(calculations["records"])
                summary["records_failed"] += len(calculations["failed_records"])
                for gwp_set, tonnes in calculations["co2e_tonnes"].items():
                    summary["co2e_tonnes"][gwp_set] += tonnes
                if calculations["errors_storage_location"]:
                    errors_files.append(calculations["errors_storage_location"])
                room = MAX_FAILED_SAMPLES - len(failed_samples)
                failed_samples.extend(calculations["failed_records"][: max(room, 0)])
                if progress:
                    progress("calculate", done, len(futures))
        finally:
            if own:
                executor.shutdown(wait=True, cancel_futures=True)
        if summary["records_failed"]:
            summary["failed_records"] = {
                "errors_files": sorted(errors_files),
                "samples": failed_samples,
            }

    def _iteration(
        self, item: dict[str, Any], execution_id: str, writer: lineage.LineageWriter
    ) -> dict[str, Any]:
        """One map iteration: calculate a batch, then record its lineage."""
        ctx = self.context
        root_id = item["data_lineage"]["root_id"]
        parent_id = item["data_lineage"]["parent_id"]
        result = self._step(
            "calculate_co2e",
            execution_id,
            root_id,
            lambda: calc.calculate(
                {"storage_location": item["storage_location"]},
                storage=ctx.storage,
                database=ctx.database,
                factor_set=ctx.factor_set,
                execution_id=execution_id,
            ),
        )
        calculations = result["calculations"]
        rows = self._step(
            "data_lineage:CALCULATION_COMPLETE",
            execution_id,
            root_id,
            lambda: lineage.batch_row_numbers(
                ctx.storage, item["storage_location"], ctx.settings.pipeline.batch_size
            ),
        )
        self._step(
            "data_lineage:CALCULATION_COMPLETE",
            execution_id,
            root_id,
            lambda: lineage.record_request(
                {
                    "root_id": root_id,
                    "parent_id": parent_id,
                    "action_taken": lineage.CALCULATION_COMPLETE,
                    "storage_location": calculations["storage_location"],
                    "records": lineage.with_row_numbers(calculations["records"], rows),
                },
                writer,
            ),
        )
        if calculations["failed_records"]:
            self._step(
                "data_lineage:CALCULATION_FAILED",
                execution_id,
                root_id,
                lambda: lineage.record_request(
                    {
                        "root_id": root_id,
                        "parent_id": parent_id,
                        "action_taken": lineage.CALCULATION_FAILED,
                        "storage_location": calculations["errors_storage_location"],
                        "records": lineage.with_row_numbers(
                            ({"node_id": r["node_id"]} for r in calculations["failed_records"]),
                            rows,
                        ),
                    },
                    writer,
                ),
            )
        return result
