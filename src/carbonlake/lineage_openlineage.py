"""The ledger of one root as OpenLineage RunEvents, and sending them with the
openlineage-python client's transports, so Marquez or any OpenLineage back end
can take them in.

One run for the execution (job ``carbonlake.pipeline``) and one for each stage
that left a trace in the ledger, each with a START and a COMPLETE or FAIL event:

- ``carbonlake.pipeline.dq_profile``: landing file in, with the data-quality
  report as a ``dataQualityAssertions`` input facet; the report out;
- ``carbonlake.pipeline.dq_check_results``: landing file and report in; the file
  in the ``raw`` or ``error`` bucket out (FAIL when the file failed the gate);
- ``carbonlake.pipeline.transform``: raw file in; batch files out;
- ``carbonlake.pipeline.calculate_co2e``: batch files in; enriched and errors
  files out with their record counts (FAIL when records could not be calculated).

Event times are the times the ledger recorded, stage runs name the execution's
run in a ``parent`` facet, and every dataset whose object hash the ledger kept
carries it as its ``version``. Datasets follow OpenLineage's naming: ``file:///a/b``
is namespace ``file``, name ``/a/b``; ``s3://bucket/key`` is ``s3://bucket``, ``key``.
Run ids are stable (the execution id, and UUIDv5 of it per stage), so sending
the same root twice updates the same runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    tags_run,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.transport.transport import Transport

from . import lineage
from ._exceptions import ConfigurationError, LineageError, StorageError
from .database import Database
from .storage import Storage

NAMESPACE = "carbonlake"
"""Default job namespace."""
PIPELINE_JOB = "carbonlake.pipeline"
TRANSPORTS = ("file", "http")
DEFAULT_ENDPOINT = "api/v1/lineage"


def _producer() -> str:
    from . import __version__

    return f"https://pypi.org/project/carbonlake/{__version__}/"


def dataset_id(url: str) -> tuple[str, str]:
    """(namespace, name) of a storage URL, after OpenLineage's dataset naming."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "file", url
    authority, slash, path = rest.partition("/")
    if scheme == "file":
        return ("file" if not authority else f"file://{authority}"), slash + path
    return f"{scheme}://{authority}", path


def _run_id(execution_id: str | None, root_id: str) -> str:
    if execution_id:
        try:
            return str(uuid.UUID(execution_id))
        except ValueError:
            pass
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"carbonlake:root:{root_id}"))


@dataclass
class _Stage:
    name: str
    started_at: str
    ended_at: str | None
    failed: str | None
    """Why the stage failed, or None."""
    inputs: list[InputDataset]
    outputs: list[OutputDataset]


def _assertions(report: dict[str, Any]) -> list[data_quality_assertions_dataset.Assertion]:
    found = []
    for ruleset in report.get("rulesetResults") or []:
        for rule in ruleset.get("ruleResults") or []:
            name = str(rule.get("name") or "rule")
            common: dict[str, Any] = {
                "assertion": name,
                "name": name,
                "severity": rule.get("severity"),
                "content": rule.get("definition"),
                "contentType": "expression" if rule.get("definition") else None,
                "actual": None
                if rule.get("observedValue") is None
                else str(rule.get("observedValue")),
            }
            columns = rule.get("columnResults") or []
            if columns:
                for column in columns:
                    found.append(
                        data_quality_assertions_dataset.Assertion(
                            success=column.get("status") == "SUCCEEDED",
                            column=column.get("name"),
                            **common,
                        )
                    )
            else:
                found.append(
                    data_quality_assertions_dataset.Assertion(
                        success=rule.get("status") == "SUCCEEDED", **common
                    )
                )
    return found


class _Builder:
    def __init__(self, database: Database, storage: Storage, root_id: str, namespace: str):
        self.database = database
        self.storage = storage
        self.root_id = root_id
        self.namespace = namespace
        self.producer = _producer()

    def dataset(
        self,
        url: str,
        sha: str | None,
        kind: type[InputDataset] | type[OutputDataset],
        **facets: Any,
    ) -> Any:
        namespace, name = dataset_id(url)
        dataset_facets: dict[str, Any] = {}
        if sha:
            dataset_facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=f"sha256:{sha}"
            )
        if kind is InputDataset:
            return InputDataset(namespace, name, facets=dataset_facets, inputFacets=facets)
        return OutputDataset(namespace, name, facets=dataset_facets, outputFacets=facets)

    def report_facet(self, location: str | None) -> dict[str, Any]:
        if not location:
            return {}
        try:
            report = json.loads(self.storage.read_bytes(location))
        except (StorageError, ValueError):
            return {}
        if not isinstance(report, dict):
            return {}
        facet = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=_assertions(report)
        )
        return {"dataQualityAssertions": facet}

    def stages(self, execution: dict[str, Any] | None) -> list[_Stage]:
        nodes = [
            dict(zip(lineage.NODE_FIELDS, row[1:], strict=True))
            for row in self.database.iter_lineage(
                self.root_id, exclude_actions=lineage.RECORD_ACTIONS
            )
        ]
        if not nodes:
            raise LineageError(f"no lineage recorded for root_id {self.root_id}")
        by_action: dict[str, list[dict[str, Any]]] = {}
        for node in nodes:
            by_action.setdefault(node["action_taken"], []).append(node)

        def first(action: str) -> dict[str, Any] | None:
            return by_action.get(action, [None])[0]

        stop_error = None
        if execution and execution.get("status") not in (None, "RUNNING", "SUCCEEDED"):
            stop_error = execution.get("error") or f"execution ended {execution.get('status')}"
        stopped_at = (execution or {}).get("stopped_at") or nodes[-1]["recorded_at"]

        raw = first(lineage.RAW_DATA_INPUT)
        profile = first(lineage.PROFILE_COMPLETE)
        verdict = first(lineage.DQ_CHECK_PASS) or first(lineage.DQ_CHECK_FAIL)
        batches = by_action.get(lineage.GLUE_BATCH_SPLIT, [])
        stages: list[_Stage] = []

        def unfinished(name: str) -> str:
            return stop_error or f"the ledger has no record of {name} finishing"

        landing = (
            [self.dataset(raw["storage_location"], raw["object_sha256"], InputDataset)]
            if raw
            else []
        )
        if raw and (profile or not verdict):
            stages.append(
                _Stage(
                    "dq_profile",
                    raw["recorded_at"],
                    profile["recorded_at"] if profile else stopped_at,
                    None if profile else unfinished("the profile"),
                    [
                        self.dataset(
                            raw["storage_location"],
                            raw["object_sha256"],
                            InputDataset,
                            **self.report_facet(profile["storage_location"] if profile else None),
                        )
                    ],
                    [
                        self.dataset(
                            profile["storage_location"], profile["object_sha256"], OutputDataset
                        )
                    ]
                    if profile
                    else [],
                )
            )
        if profile or verdict:
            start = profile or raw
            report_in = (
                [self.dataset(profile["storage_location"], profile["object_sha256"], InputDataset)]
                if profile
                else []
            )
            failed = None
            if verdict is None:
                failed = unfinished("the data-quality check")
            elif verdict["action_taken"] == lineage.DQ_CHECK_FAIL:
                failed = (
                    f"the file failed data quality and was moved to {verdict['storage_location']}"
                )
            stages.append(
                _Stage(
                    "dq_check_results",
                    (start or verdict or nodes[0])["recorded_at"],
                    verdict["recorded_at"] if verdict else stopped_at,
                    failed,
                    landing + report_in,
                    [
                        self.dataset(
                            verdict["storage_location"], verdict["object_sha256"], OutputDataset
                        )
                    ]
                    if verdict
                    else [],
                )
            )
        passed = first(lineage.DQ_CHECK_PASS)
        if passed:
            stages.append(
                _Stage(
                    "transform",
                    passed["recorded_at"],
                    batches[0]["recorded_at"] if batches else stopped_at,
                    None if batches else unfinished("the transform"),
                    [
                        self.dataset(
                            passed["storage_location"], passed["object_sha256"], InputDataset
                        )
                    ],
                    [
                        self.dataset(b["storage_location"], b["object_sha256"], OutputDataset)
                        for b in batches
                    ],
                )
            )
        if batches:
            succeeded = bool(execution) and (execution or {}).get("status") == "SUCCEEDED"
            stages.append(self._calculate_stage(batches, stopped_at, stop_error, succeeded))
        return stages

    def _calculate_stage(
        self,
        batches: list[dict[str, Any]],
        stopped_at: str,
        stop_error: str | None,
        succeeded: bool,
    ) -> _Stage:
        # A deletion (RECORD_DELETED) is not output of the calculation.
        actions = tuple(a for a in lineage.RECORD_ACTIONS if a != lineage.RECORD_DELETED)
        groups = self.database.lineage_record_groups(self.root_id, actions)
        done = {g["parent_id"] for g in groups}
        failed_records = sum(
            g["nodes"] for g in groups if g["action_taken"] == lineage.CALCULATION_FAILED
        )
        per_file: dict[tuple[str, str | None], int] = {}
        for g in groups:
            if g["storage_location"]:
                key = (g["storage_location"], g["object_sha256"])
                per_file[key] = per_file.get(key, 0) + g["nodes"]
        reasons = []
        # Failed attempts stay in the ledger after a redrive calculated them: an execution
        # that SUCCEEDED has no record left uncalculated.
        if failed_records and not succeeded:
            reasons.append(f"{failed_records} record(s) could not be calculated")
        missing = [b for b in batches if b["node_id"] not in done]
        if missing:
            reasons.append(
                f"{len(missing)} batch(es) have no calculated records"
                + (f" ({stop_error})" if stop_error else "")
            )
        ended = max((g["last_recorded_at"] for g in groups), default=None)
        return _Stage(
            "calculate_co2e",
            batches[0]["recorded_at"],
            stopped_at if missing or ended is None else ended,
            "; ".join(reasons) or None,
            [
                self.dataset(b["storage_location"], b["object_sha256"], InputDataset)
                for b in batches
            ],
            [
                self.dataset(
                    location,
                    sha,
                    OutputDataset,
                    outputStatistics=output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        rowCount=count
                    ),
                )
                for (location, sha), count in per_file.items()
            ],
        )

    def events(self) -> list[RunEvent]:
        executions = self.database.executions_of_root(self.root_id)
        execution = executions[-1] if executions else None
        stages = self.stages(execution)
        run_id = _run_id(execution["execution_id"] if execution else None, self.root_id)
        tags = tags_run.TagsRunFacet(
            tags=[
                tags_run.TagsRunFacetFields(key="root_id", value=self.root_id, source="CARBONLAKE")
            ]
        )
        from . import __version__

        engine = processing_engine_run.ProcessingEngineRunFacet(
            version=__version__, name="carbonlake"
        )
        pipeline_job = Job(
            self.namespace,
            PIPELINE_JOB,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="CARBONLAKE", jobType="JOB"
                )
            },
        )
        parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id),
            job=parent_run.Job(namespace=self.namespace, name=PIPELINE_JOB),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=run_id),
                job=parent_run.RootJob(namespace=self.namespace, name=PIPELINE_JOB),
            ),
        )
        first_input = next((s.inputs[:1] for s in stages if s.inputs), [])
        started = (execution or {}).get("started_at") or stages[0].started_at
        events = [
            RunEvent(
                eventType=RunState.START,
                eventTime=started,
                run=Run(runId=run_id, facets={"processing_engine": engine, "tags": tags}),
                job=pipeline_job,
                inputs=first_input,
                producer=self.producer,
            )
        ]
        for stage in stages:
            stage_run = str(uuid.uuid5(uuid.UUID(run_id), stage.name))
            job = Job(
                self.namespace,
                f"{PIPELINE_JOB}.{stage.name}",
                facets={
                    "jobType": job_type_job.JobTypeJobFacet(
                        processingType="BATCH", integration="CARBONLAKE", jobType="TASK"
                    )
                },
            )
            events.append(
                RunEvent(
                    eventType=RunState.START,
                    eventTime=stage.started_at,
                    run=Run(runId=stage_run, facets={"parent": parent}),
                    job=job,
                    inputs=stage.inputs,
                    producer=self.producer,
                )
            )
            if stage.ended_at is None:
                continue
            facets: dict[str, Any] = {"parent": parent}
            if stage.failed:
                facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                    message=stage.failed, programmingLanguage="PYTHON"
                )
            events.append(
                RunEvent(
                    eventType=RunState.FAIL if stage.failed else RunState.COMPLETE,
                    eventTime=stage.ended_at,
                    run=Run(runId=stage_run, facets=facets),
                    job=job,
                    inputs=stage.inputs,
                    outputs=stage.outputs,
                    producer=self.producer,
                )
            )
        status = (execution or {}).get("status")
        if status == "RUNNING":
            return events
        failed = next((s.failed for s in stages if s.failed), None)
        if execution and status != "SUCCEEDED":
            failed = execution.get("error") or failed or f"execution ended {status}"
        final_outputs = [o for o in stages[-1].outputs] if stages else []
        end_facets: dict[str, Any] = {"processing_engine": engine, "tags": tags}
        if failed:
            end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=failed, programmingLanguage="PYTHON"
            )
        events.append(
            RunEvent(
                eventType=RunState.FAIL if failed else RunState.COMPLETE,
                eventTime=(execution or {}).get("stopped_at") or stages[-1].ended_at or started,
                run=Run(runId=run_id, facets=end_facets),
                job=pipeline_job,
                inputs=first_input,
                outputs=final_outputs,
                producer=self.producer,
            )
        )
        return events


def run_events(
    database: Database, storage: Storage, root_id: str, namespace: str = NAMESPACE
) -> list[RunEvent]:
    """The OpenLineage RunEvents of one root's history, oldest first."""
    return _Builder(database, storage, root_id, namespace).events()


def to_dicts(events: Iterable[RunEvent]) -> list[dict[str, Any]]:
    """Events as the JSON documents OpenLineage back ends take."""
    return [Serde.to_dict(event) for event in events]


def make_transport(
    kind: str,
    *,
    url: str | None = None,
    endpoint: str = DEFAULT_ENDPOINT,
    path: str | None = None,
    timeout: float = 10.0,
) -> Transport:
    """An openlineage-python transport: ``file`` (appends JSON lines to ``path``) or
    ``http`` (POSTs each event to ``url`` + ``endpoint``)."""
    if kind == "file":
        if not path:
            raise ConfigurationError("the file transport needs a file to write (--file PATH)")
        return FileTransport(FileConfig(log_file_path=path, append=True))
    if kind == "http":
        if not url:
            raise ConfigurationError(
                "the http transport needs the back end's URL (--url URL or $OPENLINEAGE_URL)"
            )
        try:
            return HttpTransport(
                HttpConfig.from_dict(
                    {
                        "url": url,
                        "endpoint": endpoint,
                        "timeout": timeout,
                        "retry": {"total": 2, "connect": 2, "read": 2, "backoff_factor": 0.2},
                    }
                )
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigurationError(f"cannot send OpenLineage events to {url!r}: {exc}") from exc
    raise ConfigurationError(f"unknown transport {kind!r}; use one of {', '.join(TRANSPORTS)}")


def send(events: Sequence[RunEvent], transport: Transport, target: str) -> int:
    """Emit every event through a transport; returns how many were sent."""
    try:
        for number, event in enumerate(events, start=1):
            try:
                transport.emit(event)
            except (OSError, RuntimeError, ValueError) as exc:
                raise LineageError(
                    f"could not send OpenLineage event {number} of {len(events)} to {target}: {exc}"
                ) from exc
    finally:
        transport.close()
    return len(events)
