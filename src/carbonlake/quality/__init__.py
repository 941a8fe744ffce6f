"""The data-quality gate: the spec's setup, profile, cleanup and check-results stages.

The original created AWS Glue DataBrew resources (dataset, ruleset, profile
job), ran the job, deleted the resources and moved the file on the job's
verdict. Here the "resources" are rows of the database with DataBrew-like names
and ARNs, the job is :func:`carbonlake.quality.gate.evaluate`, and the results
document lands under ``dq-results/<root_id>/`` as the job's output.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, InputDataError, StorageError
from ..database import Database, utc_now
from ..documents import (
    DqCheckEvent,
    DqCheckOutput,
    DqCleanupEvent,
    DqProfileEvent,
    DqProfileOutput,
    DqSetupEvent,
    DqSetupOutput,
)
from ..storage import Storage
from . import gate
from .gate import ListResolver, failed_results, table_rows
from .rules import Rule, load_rules, problems_of, rule_to_document, rules_from_document

if TYPE_CHECKING:
    from ..calculate.factors import FactorSet

__all__ = [
    "DEFAULT_RULESET_NAME",
    "ListResolver",
    "check_file",
    "check_results",
    "cleanup",
    "default_rules",
    "factor_set_lists",
    "failed_results",
    "invalid_rules",
    "load_ruleset",
    "profile",
    "read_report",
    "report_location",
    "report_passed",
    "setup",
    "table_rows",
    "verdict",
]

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"
PROFILE_NAME = "profile.json"
DEFAULT_RULESET_NAME = "carbonlake-default-activity-ruleset"


def default_rules() -> list[Rule]:
    """The ruleset shipped with the package (``docs/quality.md`` describes each rule)."""
    text = resources.files("carbonlake").joinpath("data/default-ruleset.json").read_text("utf-8")
    rules = rules_from_document(json.loads(text), "the shipped default ruleset")
    problems = problems_of(rules)
    if problems:  # a packaging mistake, not the user's: say so loudly
        raise ConfigurationError(f"the shipped default ruleset is broken: {problems[0]}")
    return rules


def load_ruleset(path: str | Path | None, setting: str = "[quality] ruleset") -> list[Rule]:
    """Rules from the ruleset file ``path`` (JSON or YAML, ``FILE#NAME`` for one ruleset of
    a CloudFormation template), or the shipped default when no path is given.

    A file that cannot be read as a ruleset is a ConfigurationError (``setting`` names
    where the path came from); a rule that cannot be used is returned with its
    ``problem`` (:func:`invalid_rules`), and the gate fails it with that reason.
    """
    if not path:
        return default_rules()
    try:
        rules = load_rules(path)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (from {setting})") from exc
    for problem in problems_of(rules):
        log.warning("ruleset %s: %s; the rule fails on every file until it is fixed", path, problem)
    return rules


def invalid_rules(rules: list[Rule]) -> list[str]:
    """Why each enabled rule that cannot be evaluated cannot be (empty: all can)."""
    return problems_of(rules)


def factor_set_lists(load: Callable[[], FactorSet]) -> ListResolver:
    """The run-time lists of the active factor set, loaded on first use only.

    ``@factor_set.category_activity`` is every (category, activity) pair,
    ``@factor_set.category_activity_scope`` every (category, activity, scope);
    ``@factor_set.category`` and ``@factor_set.activity`` the single columns.
    """

    @functools.cache
    def triples() -> list[tuple[str, str, str]]:
        factors = load().factors
        categories = [str(v) for v in factors["category"].to_list()]
        activities = [str(v) for v in factors["activity"].to_list()]
        scopes = [str(v) for v in factors["scope"].to_list()]
        return sorted(set(zip(categories, activities, scopes, strict=True)))

    @functools.cache
    def pairs() -> list[tuple[str, str]]:
        return sorted({(category, activity) for category, activity, _ in triples()})

    def resolve(name: str) -> list[Any]:
        if name == "@factor_set.category_activity":
            return [list(pair) for pair in pairs()]
        if name == "@factor_set.category_activity_scope":
            return [list(triple) for triple in triples()]
        if name == "@factor_set.category":
            return sorted({category for category, _ in pairs()})
        if name == "@factor_set.activity":
            return sorted({activity for _, activity in pairs()})
        raise ConfigurationError(f"unknown list {name}")

    return resolve


def check_file(
    path: Path,
    rules: list[Rule],
    *,
    resolve: ListResolver | None = None,
    ruleset_name: str = DEFAULT_RULESET_NAME,
    max_columns: int = gate.DEFAULT_MAX_COLUMNS,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Profile a local file and evaluate ``rules`` on it, without moving it.

    Returns ``(report, profile)`` as the profile job writes them.
    """
    if not path.is_file():
        raise InputDataError(f"{path} does not exist or is not a file")
    started = utc_now()
    try:
        report, file_profile = gate.evaluate(
            path, rules, resolve=resolve, ruleset_name=ruleset_name, max_columns=max_columns
        )
    except OSError as exc:
        raise InputDataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return {"location": path.resolve().as_uri(), "startedOn": started, **report}, file_profile


def _arn(kind: str, name: str) -> str:
    return f"arn:carbonlake:databrew:local:{kind}/{name}"


def setup(event: DqSetupEvent, *, database: Database, rules: list[Rule]) -> DqSetupOutput:
    """SETUP: record the dataset, ruleset and profile job for one file."""
    if event.get("event_type", "SETUP") != "SETUP":
        raise InputDataError(f"dq setup got event_type {event.get('event_type')!r}, not SETUP")
    location = event.get("storage_location")
    root_id = event.get("root_id")
    if not location or not root_id:
        raise InputDataError("dq setup needs 'storage_location' and 'root_id'")
    base = f"carbonlake-{root_id}"
    names = {kind: f"{base}-{kind}" for kind in ("dataset", "ruleset", "job")}
    database.insert_dq_resources(
        [
            (
                names["dataset"],
                "dataset",
                _arn("dataset", names["dataset"]),
                root_id,
                json.dumps({"storage_location": location}),
            ),
            (
                names["ruleset"],
                "ruleset",
                _arn("ruleset", names["ruleset"]),
                root_id,
                json.dumps({"rules": [rule_to_document(rule) for rule in rules]}),
            ),
            (
                names["job"],
                "job",
                _arn("job", names["job"]),
                root_id,
                json.dumps({"dataset_name": names["dataset"], "ruleset_name": names["ruleset"]}),
            ),
        ]
    )
    return {
        "data_quality": {
            "dataset_name": names["dataset"],
            "dataset_arn": _arn("dataset", names["dataset"]),
            "ruleset_name": names["ruleset"],
            "ruleset_arn": _arn("ruleset", names["ruleset"]),
            "job_name": names["job"],
            "job_arn": _arn("job", names["job"]),
        }
    }


def _resource(database: Database, name: str, kind: str) -> dict[str, Any]:
    resource = database.dq_resource(name)
    if resource is None or resource["kind"] != kind:
        raise InputDataError(
            f"no data-quality {kind} named {name!r}; run dq setup for the file first"
        )
    return resource


def profile(
    event: DqProfileEvent,
    *,
    storage: Storage,
    database: Database,
    factor_set: FactorSet | None = None,
    max_columns: int = gate.DEFAULT_MAX_COLUMNS,
) -> DqProfileOutput:
    """Run the profile job named ``event["Name"]`` over the whole file.

    Returns a DescribeJobRun-like result whose ``Outputs[0].Location`` points at
    the validation report (``Outputs[1]`` at the profile). ``factor_set`` feeds
    the ``@factor_set...`` lists rules may use.
    """
    job_name = event.get("Name") or event.get("job_name")
    if not job_name:
        raise InputDataError("dq profile needs the job's 'Name'")
    job = _resource(database, job_name, "job")
    dataset = _resource(database, job["details"]["dataset_name"], "dataset")
    ruleset = _resource(database, job["details"]["ruleset_name"], "ruleset")
    rules = rules_from_document(ruleset["details"]["rules"], ruleset["name"])
    location = dataset["details"]["storage_location"]
    root_id = job["root_id"]
    started = utc_now()
    resolve = factor_set_lists(lambda: factor_set) if factor_set is not None else None
    run_id = f"jr_{uuid.uuid4().hex}"
    with storage.local_path(location) as path:
        report, file_profile = gate.evaluate(
            path, rules, resolve=resolve, ruleset_name=ruleset["name"], max_columns=max_columns
        )
    report = {
        "root_id": root_id,
        "storage_location": location,
        "jobName": job_name,
        "jobRunId": run_id,
        "location": location,
        "startedOn": started,
        "writtenOn": utc_now(),
        **report,
    }
    report_url = storage.url("dq-results", f"{root_id}/{REPORT_NAME}")
    profile_url = storage.url("dq-results", f"{root_id}/{PROFILE_NAME}")
    storage.write_bytes(report_url, json.dumps(report, indent=2).encode())
    storage.write_bytes(
        profile_url, json.dumps({"root_id": root_id, **(file_profile or {})}, indent=2).encode()
    )
    report_bucket, report_key = storage.location(report_url)
    profile_bucket, profile_key = storage.location(profile_url)
    return {
        "data_quality": {
            "results": {
                "JobName": job_name,
                "RunId": run_id,
                "JobRunState": "SUCCEEDED",
                "State": "SUCCEEDED",
                "StartedOn": started,
                "CompletedOn": utc_now(),
                "DatasetName": dataset["name"],
                "ValidationConfigurations": [{"RulesetArn": ruleset["arn"]}],
                "Outputs": [
                    {"Location": {"Bucket": report_bucket, "Key": report_key}},
                    {"Location": {"Bucket": profile_bucket, "Key": profile_key}},
                ],
            }
        }
    }


def cleanup(event: DqCleanupEvent, *, database: Database) -> DqCleanupEvent:
    """CLEANUP: remove the dataset, ruleset and job records; passes the event on (a copy)."""
    names = [event.get("dataset_name"), event.get("ruleset_name"), event.get("job_name")]
    database.delete_dq_resources([n for n in names if n])
    passed: DqCleanupEvent = {**event}
    return passed


def report_location(dq_results: dict[str, Any], storage: Storage) -> str:
    """The URL of the validation report named by a profile job's output."""
    results = dq_results
    for wrapper in ("data_quality", "results"):
        if isinstance(results.get(wrapper), dict):
            results = results[wrapper]
    try:
        outputs = results["Outputs"]
        # The original's check step picks the output whose key names the validation report.
        reports = [o for o in outputs if str(o["Location"]["Key"]).endswith("report.json")]
        location = (reports or outputs)[0]["Location"]
        return storage.url_of(location["Bucket"], location["Key"])
    except (KeyError, IndexError, TypeError) as exc:
        raise InputDataError(
            "dq_results has no Outputs[0].Location {Bucket, Key}; pass the profile job's output"
        ) from exc


def read_report(url: str, storage: Storage) -> dict[str, Any]:
    """A validation report document."""
    try:
        report: dict[str, Any] = json.loads(storage.read_bytes(url))
    except json.JSONDecodeError as exc:
        raise StorageError(f"data-quality report {url} is not valid JSON: {exc}") from exc
    return report


def report_passed(report: dict[str, Any]) -> bool:
    """The original's verdict: every ruleset result SUCCEEDED (only error rules fail one)."""
    rulesets = report.get("rulesetResults")
    if isinstance(rulesets, list) and rulesets:
        return all(isinstance(x, dict) and x.get("status") == "SUCCEEDED" for x in rulesets)
    return bool(report.get("passed"))


def verdict(report: dict[str, Any], report_url: str, passed: bool) -> dict[str, Any]:
    """What a run's summary says of the data-quality check: ``{"rows", "data_quality":
    {"status", "report_location", "failed_rules", "warnings", "reasons"}}`` of a report."""
    return {
        "rows": report.get("rowsCount") or 0,
        "data_quality": {
            "status": "PASSED" if passed else "FAILED",
            "report_location": report_url,
            "failed_rules": report["summary"]["failedRules"],
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


def check_results(
    event: DqCheckEvent,
    *,
    storage: Storage,
    sha256: str | None = None,
    verify: Callable[[str], str] | None = None,
) -> DqCheckOutput:
    """Read the report and move the file from landing to raw (pass) or error (fail).

    ``sha256``: the object's SHA-256 as the caller knows it; a move that copies then
    verifies its copy against it instead of reading the object once more. ``verify``:
    how the copy's SHA-256 is read (:meth:`Storage.move`)."""
    location = event.get("storage_location")
    dq_results = event.get("dq_results")
    if not location or not isinstance(dq_results, dict):
        raise InputDataError("dq check results needs 'storage_location' and 'dq_results'")
    report = read_report(report_location(dq_results, storage), storage)
    passed = report_passed(report)
    bucket, _ = storage.split(location)
    if bucket != "landing":
        raise InputDataError(f"{location} is not in the landing bucket; nothing to move")
    # Another version of the key in raw or error is never overwritten (storage docs).
    new_location = storage.move_version(
        location, "raw" if passed else "error", sha256=sha256, verify=verify
    )
    return {"status": passed, "storage_location": new_location}
