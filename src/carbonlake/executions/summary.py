"""The run summary of an execution, derived from its checkpoints.

:class:`RunSummary` is what ``carbonlake run`` prints and the service returns;
:meth:`RunSummary.to_dict` gives its JSON document (the keys in this order, the
map's keys only once the file was split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import calculate as calc
from .._exceptions import StorageError
from ..storage import Storage
from .context import Context
from .map import MAX_FAILED_SAMPLES
from .states import MapState, State, redrives_by_batch

_OPTIONAL = ("batches", "batches_failed", "failed_records", "by_activity", "replaced_results")


@dataclass
class RunSummary:
    """One execution's outcome: its records, CO2e, data quality, batches and error."""

    execution_id: str
    name: str
    root_id: str
    status: str
    input_storage_location: str
    storage_location: str
    """Where the input file is now (moved by the data-quality check)."""
    records_in: int
    records_calculated: int
    records_failed: int
    co2e_tonnes: dict[str, dict[str, float]]
    """Tonnes CO2e per scope 2 method and GWP set."""
    data_quality: dict[str, Any] | None
    error: str | None
    batches: int | None = None
    batches_failed: int | None = None
    failed_records: dict[str, Any] | None = None
    """``errors_files`` and up to ``MAX_FAILED_SAMPLES`` ``samples``."""
    by_activity: Any = None
    replaced_results: dict[str, Any] | None = None
    """Results of the same ``activity_event_id`` from other files that this one replaced."""

    def to_dict(self) -> dict[str, Any]:
        """The summary's JSON document: the map's keys only where they are known."""
        document = {
            key: value
            for key, value in vars(self).items()
            if key not in _OPTIONAL or value is not None
        }
        return document

    @classmethod
    def of_execution(
        cls,
        context: Context,
        execution: dict[str, Any],
        done: dict[str, dict[str, Any]],
        status: str,
        error: str | None,
    ) -> RunSummary:
        """The summary of an execution whose run ended with ``status`` (and ``error``),
        from its checkpoints ``done``."""
        db = context.database
        execution_input = execution["input"]["input"]
        landing = execution_input["storage_location"]
        checked = done.get(State.DQ_CHECK_RESULTS, {})
        summary = cls(
            execution_id=execution["execution_id"],
            name=execution["name"],
            root_id=execution_input["root_id"],
            status=status,
            input_storage_location=landing,
            storage_location=checked.get("storage_location", landing),
            records_in=0,
            records_calculated=0,
            records_failed=0,
            co2e_tonnes=calc.co2e_by_method({}),
            data_quality=checked.get("data_quality"),
            error=error,
        )
        if summary.data_quality is not None:
            summary.records_in = checked.get("rows") or 0
        if State.TRANSFORM in done:
            summary.records_in = done[State.TRANSFORM]["records"]
        if summary.data_quality and summary.data_quality["status"] == "FAILED":
            summary.status = "FAILED" if status == "SUCCEEDED" else status
            summary.error = summary.error or (
                f"data quality failed ({'; '.join(summary.data_quality['failed_rules'])}); "
                f"the file is now at {summary.storage_location}; report: "
                f"{summary.data_quality['report_location']}"
            )
        split = done.get(State.BATCH_SPLIT)
        if split is not None:
            summary._add_map(
                split, done, status, context.settings.pipeline.tolerated_failure_percentage
            )
        if summary.records_calculated:
            summary.by_activity = db.emission_totals(summary.root_id, "activity")
            replaced = db.replaced_from_other_roots(summary.root_id)
            if replaced:
                # The same activity_event_id came in another file before: its result there
                # was replaced (and kept in the history), never counted twice.
                summary.replaced_results = {
                    "records": sum(r["records"] for r in replaced),
                    "from_roots": replaced,
                }
        return summary

    def _add_map(
        self,
        split: dict[str, Any],
        done: dict[str, dict[str, Any]],
        status: str,
        tolerated: float,
    ) -> None:
        samples: list[dict[str, Any]] = []
        errors_files: list[str] = []
        failed_batches = []
        # Redrive checkpoints by batch, in one pass (not one scan of every checkpoint
        # per batch: that was quadratic in the number of batches).
        redriven = redrives_by_batch(done)
        for batch, records in zip(split["batches"], split["batch_records"], strict=True):
            state = MapState(batch["node_id"]).name
            base = done.get(state)
            if base is None:
                failed_batches.append(batch)
                self.records_failed += records
                continue
            outputs = [base] + [done[k] for _, k in sorted(redriven.get(state, []))]
            latest = outputs[-1]
            self.records_calculated += sum(o["records_calculated"] for o in outputs)
            self.records_failed += latest["records_failed"]
            for method, totals in self.co2e_tonnes.items():
                for gwp_set in totals:
                    totals[gwp_set] += sum(
                        _by_method(o["co2e_tonnes"])[method][gwp_set] for o in outputs
                    )
            if latest["errors_storage_location"]:
                errors_files.append(latest["errors_storage_location"])
            samples.extend(latest["failed_records"][: MAX_FAILED_SAMPLES - len(samples)])
        self.batches = len(split["batches"])
        self.batches_failed = len(failed_batches)
        if self.records_failed:
            self.failed_records = {"errors_files": sorted(errors_files), "samples": samples}
        if status != "SUCCEEDED":
            return
        share = 100.0 * len(failed_batches) / max(len(split["batches"]), 1)
        if failed_batches and share > tolerated:
            self.status = "FAILED"
            self.error = (
                f"{len(failed_batches)} of {len(split['batches'])} batch(es) failed "
                f"({share:.1f}% > tolerated {tolerated}%); see `carbonlake executions history "
                f"{self.execution_id}`"
            )
        elif self.records_failed > sum(
            r
            for b, r in zip(split["batches"], split["batch_records"], strict=True)
            if b in failed_batches
        ):
            self.status = "FAILED"
            self.error = (
                f"{self.records_failed} record(s) could not be calculated; their "
                "reasons are in the errors files listed under failed_records. After fixing "
                f"the cause, `carbonlake executions redrive {self.execution_id}`"
            )


def where_now(summary: dict[str, Any], storage: Storage) -> dict[str, Any]:
    """A summary's locations as they are now: a moved or restored workspace stored
    them under its former root (storage.add_former_root)."""

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


def _by_method(co2e_tonnes: dict[str, Any]) -> dict[str, dict[str, float]]:
    """A batch's CO2e per scope 2 method; a checkpoint written before totals were kept
    per method (``{"ar4", "ar5", "ar6"}``) counts in both, as it was reported then."""
    if "location_based" in co2e_tonnes:
        return co2e_tonnes
    return {method: dict(co2e_tonnes) for method in calc.SCOPE2_METHOD_OF}
