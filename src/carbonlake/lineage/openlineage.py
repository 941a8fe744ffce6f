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

Each later recalculation of the root's records (``carbonlake recalculate``) is a
run of job ``carbonlake.recalculate`` (START, COMPLETE) with the files it wrote.
Every event validates against the official OpenLineage schemas (the tests check
each kind against the spec's JSON schemas).

Event times are the times the ledger recorded, stage runs name the execution's
run in a ``parent`` facet, and every dataset whose object hash the ledger kept
carries it as its ``version``. Datasets follow OpenLineage's naming: ``file:///a/b``
is namespace ``file``, name ``/a/b``; ``s3://bucket/key`` is ``s3://bucket``, ``key``.
Run ids are stable (the execution id, and UUIDv5 of it per stage), so sending
the same root twice updates the same runs.
"""

from __future__ import annotations

import json
import re
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

from .._exceptions import CarbonlakeError, ConfigurationError, LineageError, StorageError
from ..database import Database
from ..quality import rules as rule_language
from ..storage import Storage
from .nodes import (
    CALCULATION_COMPLETE,
    CALCULATION_FAILED,
    DQ_CHECK_FAIL,
    DQ_CHECK_PASS,
    GLUE_BATCH_SPLIT,
    NODE_FIELDS,
    PROFILE_COMPLETE,
    RAW_DATA_INPUT,
    RECALCULATION,
    RECORD_ACTIONS,
)

NAMESPACE = "carbonlake"
"""Default job namespace."""
PIPELINE_JOB = "carbonlake.pipeline"
RECALCULATE_JOB = "carbonlake.recalculate"
_RECALCULATED = re.compile(r"/recalculated/([^/]+)/")
TRANSPORTS = ("file", "http")
DEFAULT_ENDPOINT = "api/v1/lineage"


def _producer() -> str:
    from .. import __version__

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


def _text(value: Any) -> str | None:
    """An observed value as the facet's string: numbers as JSON writes them, lists as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return json.dumps(value)


def _parsed(definition: Any) -> rule_language.Rule | None:
    """The rule of a report entry's definition, or None (a file check, an invalid rule)."""
    if not isinstance(definition, dict) or "BuiltInCheck" in definition:
        return None
    try:
        (rule,) = rule_language.rules_from_document([definition], "the report")
    except CarbonlakeError:
        return None
    return rule if rule.problem is None else None


def _condition_kind(condition: rule_language.Condition) -> str:
    not_ = "not_" if getattr(condition, "negated", False) else ""
    if isinstance(condition, rule_language.Compare):
        lengths = (condition.left, condition.right)
        return (
            "length"
            if any(isinstance(o, rule_language.Length) for o in lengths)
            else ("comparison")
        )
    if isinstance(condition, rule_language.Between):
        return f"is_{not_}between"
    if isinstance(condition, rule_language.InList):
        return f"{not_}in"
    if isinstance(condition, rule_language.MissingTest):
        return f"is_{not_}missing"
    return f"{not_}{condition.op.lower()}"


def _classification(rule: rule_language.Rule | None, definition: Any) -> str:
    """The facet's ``assertion``: what kind of test the rule is (``missing_values_count``,
    ``is_between``, ``matches``, ...), as OpenLineage's examples classify tests."""
    if isinstance(definition, dict) and "BuiltInCheck" in definition:
        return "file_structure"
    if rule is None:
        return "invalid_rule"
    check = rule_language.parse_check(rule)
    aggregates = rule_language.aggregates_of(check)
    if aggregates:
        kinds = [agg.stat.lower() for agg in aggregates]
    else:
        kinds = [_condition_kind(c) for c in rule_language.conditions_of(check)]
    return "+".join(dict.fromkeys(kinds))


def _aggregate_expected(rule: rule_language.Rule) -> str | None:
    """``<= 0`` for ``AGG(...) <= :max``: what one aggregate is compared with, when the check
    is that simple."""
    check = rule_language.parse_check(rule)
    if isinstance(check, rule_language.Compare):
        sides = (check.left, check.right)
        if isinstance(sides[0], rule_language.Agg) and isinstance(sides[1], rule_language.Literal):
            return f"{check.op} {sides[1].text}"
    if (
        isinstance(check, rule_language.Between)
        and isinstance(check.low, rule_language.Literal)
        and isinstance(check.high, rule_language.Literal)
    ):
        not_ = "not " if check.negated else ""
        return f"{not_}between {check.low.text} and {check.high.text}"
    return None


def _expected_actual(
    rule: rule_language.Rule | None, observed: Any, failed: Any
) -> tuple[str | None, str | None]:
    """(expected, actual) of one rule or one selected column, as strings."""
    if rule is None:
        return None, _text(observed)
    if rule_language.is_aggregate(rule_language.parse_check(rule)):
        return _aggregate_expected(rule), _text(observed)
    if rule.threshold is not None:
        if not isinstance(observed, int | float):
            return f"passing {rule.threshold.describe()}", None
        unit = "%" if rule.threshold.unit == "PERCENTAGE" else " rows"
        return f"passing {rule.threshold.describe()}", f"passing {observed:g}{unit}"
    if failed is None:
        return "0 failing rows", None
    return "0 failing rows", f"{failed} failing row" + ("" if failed == 1 else "s")


def _assertions(report: dict[str, Any]) -> list[data_quality_assertions_dataset.Assertion]:
    """One assertion per rule; per selected column for a rule with ColumnSelectors, each with
    that column's own observed value; with ``column`` when the rule reads one column."""
    found = []
    for ruleset in report.get("rulesetResults") or []:
        for result in ruleset.get("ruleResults") or []:
            name = str(result.get("name") or "rule")
            definition = result.get("definition")
            rule = _parsed(definition)
            expression = definition.get("CheckExpression") if isinstance(definition, dict) else None
            common: dict[str, Any] = {
                "assertion": _classification(rule, definition),
                "name": name,
                "severity": result.get("severity"),
                "description": result.get("expression") or None,
                "content": expression if isinstance(expression, str) else None,
                "contentType": "expression" if isinstance(expression, str) else None,
                "params": dict(rule.substitution_map) if rule is not None else {},
            }
            columns = [c for c in result.get("columnResults") or [] if c.get("name")]
            per_column = rule is not None and bool(rule.column_selectors)
            if per_column or len(columns) == 1:
                for column in columns:
                    own = column if per_column else result
                    expected, actual = _expected_actual(
                        rule, own.get("observedValue"), own.get("failedCount")
                    )
                    found.append(
                        data_quality_assertions_dataset.Assertion(
                            success=column.get("status") == "SUCCEEDED",
                            column=str(column["name"]),
                            expected=expected,
                            actual=actual,
                            **common,
                        )
                    )
                continue
            expected, actual = _expected_actual(
                rule, result.get("observedValue"), result.get("failedCount")
            )
            found.append(
                data_quality_assertions_dataset.Assertion(
                    success=result.get("status") == "SUCCEEDED",
                    expected=expected,
                    actual=actual,
                    **common,
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

    def counted_outputs(self, files: dict[tuple[str, str | None], int]) -> list[Any]:
        """Output datasets of ``{(location, sha256): records}``, each with its row count."""
        return [
            self.dataset(
                location,
                sha,
                OutputDataset,
                outputStatistics=output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=count
                ),
            )
            for (location, sha), count in files.items()
        ]

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
            dict(zip(NODE_FIELDS, row[1:], strict=True))
            for row in self.database.iter_lineage(self.root_id, exclude_actions=RECORD_ACTIONS)
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

        raw = first(RAW_DATA_INPUT)
        profile = first(PROFILE_COMPLETE)
        verdict = first(DQ_CHECK_PASS) or first(DQ_CHECK_FAIL)
        batches = by_action.get(GLUE_BATCH_SPLIT, [])
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
            elif verdict["action_taken"] == DQ_CHECK_FAIL:
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
        passed = first(DQ_CHECK_PASS)
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
        # RECALCULATION nodes belong to later runs of their own (see recalculation_events).
        groups = self.database.lineage_record_groups(
            self.root_id, (CALCULATION_COMPLETE, CALCULATION_FAILED)
        )
        done = {g["parent_id"] for g in groups}
        failed_records = sum(g["nodes"] for g in groups if g["action_taken"] == CALCULATION_FAILED)
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
            self.counted_outputs(per_file),
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
        from .. import __version__

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
        return events + self.recalculation_events(run_id, tags)

    def recalculation_events(self, run_id: str, tags: tags_run.TagsRunFacet) -> list[RunEvent]:
        """START and COMPLETE of each recalculation of this root's records (job
        ``carbonlake.recalculate``), with the files it wrote and their record counts."""
        runs: dict[str, dict[str, Any]] = {}
        groups = self.database.lineage_record_groups(self.root_id, (RECALCULATION,))
        for group in groups:
            location = group["storage_location"] or ""
            found = _RECALCULATED.search(location)
            recalculation_id = found.group(1) if found else "unknown"
            run = runs.setdefault(
                recalculation_id,
                {
                    "first": group["first_recorded_at"],
                    "last": group["last_recorded_at"],
                    "files": {},
                },
            )
            run["first"] = min(run["first"], group["first_recorded_at"])
            run["last"] = max(run["last"], group["last_recorded_at"])
            key = (location, group["object_sha256"])
            run["files"][key] = run["files"].get(key, 0) + group["nodes"]
        job = Job(
            self.namespace,
            RECALCULATE_JOB,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="CARBONLAKE", jobType="JOB"
                )
            },
        )
        events = []
        for recalculation_id, run in runs.items():
            recalculation_tags = tags_run.TagsRunFacet(
                tags=[
                    *(tags.tags or []),
                    tags_run.TagsRunFacetFields(
                        key="recalculation_id", value=recalculation_id, source="CARBONLAKE"
                    ),
                ]
            )
            run_facets: dict[str, Any] = {"tags": recalculation_tags}
            recalculation_run = str(
                uuid.uuid5(uuid.UUID(run_id), f"recalculate:{recalculation_id}")
            )
            outputs = self.counted_outputs(run["files"])
            for state, time in ((RunState.START, run["first"]), (RunState.COMPLETE, run["last"])):
                events.append(
                    RunEvent(
                        eventType=state,
                        eventTime=time,
                        run=Run(runId=recalculation_run, facets=run_facets),
                        job=job,
                        outputs=outputs if state == RunState.COMPLETE else [],
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
