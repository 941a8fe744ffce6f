"""OpenLineage RunEvents from the ledger, printed and sent with the client's transports."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from carbonlake import Pipeline
from carbonlake.cli import cli
from carbonlake.executions import Context
from carbonlake.lineage import trace
from carbonlake.lineage.openlineage import dataset_id
from carbonlake.settings import load_settings

from .conftest import HEADER, activity_row
from .openlineage_schema import assert_valid, event_errors


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def processed(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> Iterator[tuple[Context, dict[str, Any]]]:
    settings = load_settings(tmp_path / "ws", environ={}, overrides={"pipeline": {"batch_size": 3}})
    context = Context.open(settings)
    rows = [activity_row(f"r{i}") for i in range(1, 8)]
    rows[4] = activity_row("r5", activity="Unicorn Power")
    summary = Pipeline(context).run_file(make_csv(rows))
    yield context, summary
    context.close()


class Collector(BaseHTTPRequestHandler):
    """A tiny OpenLineage back end: keeps every POSTed event."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    status: ClassVar[int] = 201

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def backend() -> Iterator[tuple[str, type[Collector]]]:
    handler = type("Handler", (Collector,), {"received": [], "status": 201})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def events_of(context: Context, root_id: str) -> list[dict[str, Any]]:
    result = invoke(
        "lineage", "openlineage", root_id, "--workspace", context.settings.workspace, "--json"
    )
    assert result.exit_code == 0, result.output
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


def test_one_run_per_stage_with_start_and_end(processed: tuple[Context, dict[str, Any]]) -> None:
    context, summary = processed
    events = events_of(context, summary["root_id"])
    sequence = [(e["job"]["name"], e["eventType"]) for e in events]
    assert sequence == [
        ("carbonlake.pipeline", "START"),
        ("carbonlake.pipeline.dq_profile", "START"),
        ("carbonlake.pipeline.dq_profile", "COMPLETE"),
        ("carbonlake.pipeline.dq_check_results", "START"),
        ("carbonlake.pipeline.dq_check_results", "COMPLETE"),
        ("carbonlake.pipeline.transform", "START"),
        ("carbonlake.pipeline.transform", "COMPLETE"),
        ("carbonlake.pipeline.calculate_co2e", "START"),
        ("carbonlake.pipeline.calculate_co2e", "FAIL"),
        ("carbonlake.pipeline", "FAIL"),
    ]
    assert events[0]["run"]["runId"] == summary["execution_id"]
    assert all(e["job"]["namespace"] == "carbonlake" for e in events)
    assert all(e["eventTime"] <= f["eventTime"] for e, f in itertools.pairwise(events))
    for event in events[1:-1]:
        uuid.UUID(event["run"]["runId"])
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == summary["execution_id"]
        assert parent["job"]["namespace"] == "carbonlake"
        assert parent["job"]["name"] == "carbonlake.pipeline"
    calculate_fail = events[8]
    assert (
        "1 record(s) could not be calculated"
        in (calculate_fail["run"]["facets"]["errorMessage"]["message"])
    )
    assert events[-1]["run"]["facets"]["errorMessage"]["message"] == summary["error"]


def test_datasets_are_named_by_their_urls_and_versioned_by_hash(
    processed: tuple[Context, dict[str, Any]],
) -> None:
    context, summary = processed
    events = events_of(context, summary["root_id"])
    chain = trace(context.database, "r1", summary["root_id"])
    landing, raw, batch = chain[0], chain[2], chain[3]
    profile_start = events[1]
    (dataset,) = profile_start["inputs"]
    assert (dataset["namespace"], dataset["name"]) == dataset_id(landing["storage_location"])
    assert "file://" + dataset["name"] == landing["storage_location"]
    assert dataset["facets"]["version"]["datasetVersion"] == f"sha256:{landing['object_sha256']}"

    transform_done = events[6]
    assert [d["name"] for d in transform_done["inputs"]] == [dataset_id(raw["storage_location"])[1]]
    outputs = [d["name"] for d in transform_done["outputs"]]
    assert len(outputs) == 3 and dataset_id(batch["storage_location"])[1] in outputs

    calculated = events[8]["outputs"]
    counts = {
        d["name"].rsplit("/", 1)[1]: d["outputFacets"]["outputStatistics"]["rowCount"]
        for d in calculated
    }
    assert counts == {
        "part_00000.parquet": 3,
        "part_00001.parquet": 2,
        "part_00001.errors.parquet": 1,
        "part_00002.parquet": 1,
    }


def test_the_dq_report_is_a_data_quality_assertions_facet(
    processed: tuple[Context, dict[str, Any]],
) -> None:
    context, summary = processed
    events = events_of(context, summary["root_id"])
    facet = events[1]["inputs"][0]["inputFacets"]["dataQualityAssertions"]
    report = json.loads(
        (context.settings.workspace / "dq-results" / summary["root_id"] / "report.json").read_text()
    )
    rules = report["rulesetResults"][0]["ruleResults"]
    assert {a["name"] for a in facet["assertions"]} == {r["name"] for r in rules}
    expected = {r["name"]: r["status"] == "SUCCEEDED" for r in rules}
    assert {a["name"]: a["success"] for a in facet["assertions"]} == expected
    by_rule = {a["name"]: a for a in facet["assertions"]}
    missing_ids = by_rule["Check activity_event_id column For missing Values"]
    assert missing_ids["assertion"] == "missing_values_count"  # a classification, as the spec's
    assert missing_ids["content"] == "AGG(:col1, MISSING_VALUES_COUNT) <= :val1"
    assert missing_ids["contentType"] == "expression"
    assert missing_ids["params"] == {":col1": "`activity_event_id`", ":val1": "0"}
    assert (missing_ids["expected"], missing_ids["actual"]) == ("<= 0", "0")
    # The unknown activity of r5 fails a warning rule; the file still passes.
    failed = [a for a in facet["assertions"] if not a["success"]]
    assert failed and {a["severity"] for a in failed} == {"warn"}
    assert any("emission factor" in a["name"] for a in failed)
    (no_factor,) = failed
    assert no_factor["actual"] == "1 failing row" and no_factor["expected"] == "0 failing rows"
    assert "column" not in no_factor  # it reads two columns: one assertion for the dataset
    assert any(a.get("column") == "activity_event_id" for a in facet["assertions"])


def test_a_dq_failure_fails_the_check_stage(tmp_path: Path, make_csv: Callable[..., Path]) -> None:
    context = Context.open(load_settings(tmp_path / "ws", environ={}))
    summary = Pipeline(context).run_file(make_csv([activity_row("ok"), "bad,row"]))
    events = events_of(context, summary["root_id"])
    assert [(e["job"]["name"], e["eventType"]) for e in events][-3:] == [
        ("carbonlake.pipeline.dq_check_results", "START"),
        ("carbonlake.pipeline.dq_check_results", "FAIL"),
        ("carbonlake.pipeline", "FAIL"),
    ]
    failed_assertions = [
        a
        for a in events[1]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
        if not a["success"]
    ]
    assert failed_assertions
    assert events[-2]["outputs"][0]["name"].endswith("/error/activity.csv")
    context.close()


def test_default_output_is_one_event_per_line(processed: tuple[Context, dict[str, Any]]) -> None:
    context, summary = processed
    result = invoke(
        "lineage", "openlineage", summary["root_id"], "--workspace", context.settings.workspace
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 10
    assert [json.loads(line)["eventType"] for line in lines][:2] == ["START", "START"]


def test_file_transport_appends_the_events(
    processed: tuple[Context, dict[str, Any]], tmp_path: Path
) -> None:
    context, summary = processed
    target = tmp_path / "events.jsonl"
    ws = context.settings.workspace
    args = ("lineage", "openlineage", summary["root_id"], "--workspace", ws)
    result = invoke(*args, "--transport", "file", "--file", target, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sent": 10, "transport": "file", "target": str(target)}
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert written == events_of(context, summary["root_id"])


def test_http_transport_posts_every_event_to_a_real_server(
    processed: tuple[Context, dict[str, Any]], backend: tuple[str, type[Collector]]
) -> None:
    context, summary = processed
    url, collector = backend
    ws = context.settings.workspace
    result = invoke(
        "lineage",
        "openlineage",
        summary["root_id"],
        "--workspace",
        ws,
        "--transport",
        "http",
        "--url",
        url,
    )
    assert result.exit_code == 0, result.output
    assert "10 OpenLineage events sent" in result.stderr
    assert [path for path, _ in collector.received] == ["/api/v1/lineage"] * 10
    assert [event for _, event in collector.received] == events_of(context, summary["root_id"])


def test_http_errors_are_reported_not_raised(
    processed: tuple[Context, dict[str, Any]], backend: tuple[str, type[Collector]]
) -> None:
    context, summary = processed
    url, collector = backend
    collector.status = 400
    ws = context.settings.workspace
    args = ("lineage", "openlineage", summary["root_id"], "--workspace", ws, "--json")
    result = invoke(*args, "--transport", "http", "--url", url)
    assert result.exit_code == 1
    message = json.loads(result.stdout)["error"]["message"]
    assert "could not send OpenLineage event 1 of 10" in message and url in message

    assert invoke(*args, "--transport", "http").exit_code == 2
    assert invoke(*args, "--transport", "file").exit_code == 2
    bad_url = invoke(*args, "--transport", "http", "--url", "not a url")
    assert bad_url.exit_code == 2


def test_dataset_naming_follows_openlineage() -> None:
    assert dataset_id("file:///ws/raw/a.csv") == ("file", "/ws/raw/a.csv")
    assert dataset_id("s3://bucket/raw/a.csv") == ("s3://bucket", "raw/a.csv")
    assert dataset_id("file://host/share/a.csv") == ("file://host", "/share/a.csv")


# -- the official schema ------------------------------------------------------------------------


def recalculated(tmp_path: Path) -> tuple[Path, str]:
    """A workspace whose one file was calculated, then recalculated with another factor."""
    ws = tmp_path / "ws"
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "fleet.csv"
    source.write_text("\n".join([HEADER, activity_row("g1"), activity_row("g2")]) + "\n")
    ran = invoke("run", source, "--workspace", ws, "--json")
    assert ran.exit_code == 0, ran.output
    root_id = json.loads(ran.stdout)[0]["root_id"]
    factors = tmp_path / "revised.json"
    factors.write_text(
        json.dumps(
            {
                "format": "carbonlake-factors/1",
                "factors": [
                    {
                        "scope": 1,
                        "category": "mobile-combustion",
                        "activity": "Motor Gasoline - Gasoline Passenger Cars",
                        "unit": "gal (US)",
                        "co2": {"value": 9.0, "unit": "kg"},
                        "source": "revised",
                    }
                ],
            }
        )
    )
    imported = invoke("factors", "import", factors, "--workspace", ws, "--json")
    label = json.loads(imported.stdout)["label"]
    done = invoke("recalculate", "--factor-set", label, "--workspace", ws, "--json")
    assert done.exit_code == 0, done.output
    return ws, root_id


def run_in(ws: Path, source: Path, **overrides: dict[str, Any]) -> dict[str, Any]:
    """Run the pipeline on one file in the workspace ``ws``; its summary."""
    context = Context.open(load_settings(ws, environ={}, overrides=overrides or None))
    try:
        return Pipeline(context).run_file(source)
    finally:
        context.close()


def printed_events(ws: Path, root_id: str) -> list[dict[str, Any]]:
    result = invoke("lineage", "openlineage", root_id, "--workspace", ws, "--json")
    assert result.exit_code == 0, result.output
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


@pytest.fixture
def every_kind(
    tmp_path: Path, make_csv: Callable[..., Path], processed: tuple[Context, dict[str, Any]]
) -> dict[str, tuple[Path, str]]:
    """One root of each kind of history: calculated, with failed records, refused by the
    data-quality gate, recalculated."""
    kinds: dict[str, tuple[Path, str]] = {}
    context, summary = processed
    kinds["record failures"] = (context.settings.workspace, summary["root_id"])
    clean = tmp_path / "clean"
    done = run_in(clean, make_csv([activity_row("a"), activity_row("b")]))
    assert done["status"] == "SUCCEEDED"
    kinds["success"] = (clean, done["root_id"])
    refused = tmp_path / "refused"
    bad = run_in(refused, make_csv([activity_row("ok"), "bad,row"], name="bad.csv"))
    kinds["data-quality failure"] = (refused, bad["root_id"])
    kinds["recalculation"] = recalculated(tmp_path / "recalc")
    return kinds


def test_every_kind_of_event_validates_against_the_official_schema(
    every_kind: dict[str, tuple[Path, str]],
) -> None:
    seen: set[tuple[str, str]] = set()
    for kind, (ws, root_id) in every_kind.items():
        events = printed_events(ws, root_id)
        assert events, kind
        assert_valid(events)
        seen |= {(e["job"]["name"], e["eventType"]) for e in events}
    assert {
        ("carbonlake.pipeline", "COMPLETE"),
        ("carbonlake.pipeline", "FAIL"),
        ("carbonlake.pipeline.dq_check_results", "FAIL"),
        ("carbonlake.pipeline.calculate_co2e", "FAIL"),
        ("carbonlake.recalculate", "START"),
        ("carbonlake.recalculate", "COMPLETE"),
    } <= seen


def test_the_schema_check_catches_what_issue_15_found(
    processed: tuple[Context, dict[str, Any]],
) -> None:
    # The facet as carbonlake used to write it: content an object, actual a Python repr.
    context, summary = processed
    (event, *_) = [e for e in events_of(context, summary["root_id"]) if e["inputs"]][1:]
    assertion = event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]
    assertion["content"] = {"CheckExpression": "AGG(ROWS_COUNT) > 0"}
    assertion["actual"] = 0
    problems = event_errors(event)
    assert any("['content']" in p and "is not of type 'string'" in p for p in problems)
    assert any("['actual']" in p for p in problems)
    event["eventTime"] = "2026-03-01 10:00:00"  # no 'T', no offset
    assert any("eventTime" in p for p in event_errors(event))


def test_a_multi_column_rule_reports_each_columns_own_value(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            [
                {
                    "Name": "few gaps",
                    "CheckExpression": "AGG(MISSING_VALUES_COUNT) <= :n",
                    "SubstitutionMap": {":n": "1"},
                    "ColumnSelectors": [{"Name": "geo"}, {"Name": "source"}, {"Name": "units"}],
                },
                {
                    "Name": "ids",
                    "CheckExpression": "AGG(:c, DISTINCT_VALUES_COUNT) > 0",
                    "SubstitutionMap": {":c": "`activity_event_id`"},
                },
            ]
        )
    )
    rows = [
        "a,vehicle1,,2019-10,1,mobile-combustion,Motor Gasoline - Gasoline Passenger Cars,,10,gal",
        "b,vehicle1,,2019-10,1,mobile-combustion,Motor Gasoline - Gasoline Passenger Cars,,10,gal",
        'c,vehicle1,"[1,2]",2019-10,1,mobile-combustion,Motor Gasoline - Gasoline Passenger Cars,'
        "x,10,gal",
    ]
    source = make_csv(rows)
    ws = tmp_path / "ws"
    summary = run_in(ws, source, quality={"ruleset": str(rules)})
    events = printed_events(ws, summary["root_id"])
    assert_valid(events)
    facet = events[1]["inputs"][0]["inputFacets"]["dataQualityAssertions"]
    gaps = {a["column"]: a for a in facet["assertions"] if a["name"] == "few gaps"}
    # Counted here from the rows written above: geo is empty twice, source twice, units never.
    assert {c: (a["actual"], a["success"]) for c, a in gaps.items()} == {
        "geo": ("2", False),
        "source": ("2", False),
        "units": ("0", True),
    }
    (ids,) = [a for a in facet["assertions"] if a["name"] == "ids"]
    assert (ids["column"], ids["actual"], ids["expected"]) == ("activity_event_id", "3", "> 0")


class MarquezLike(BaseHTTPRequestHandler):
    """An OpenLineage receiver on loopback that takes events as Marquez does: POST
    /api/v1/lineage with a JSON body, 201 Created; it answers 422 to an event that does
    not validate against the official schema, 404 elsewhere."""

    accepted: ClassVar[list[dict[str, Any]]] = []
    refused: ClassVar[list[list[str]]] = []

    def do_POST(self) -> None:
        if self.path != "/api/v1/lineage":
            self.send_error(404)
            return
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self.send_error(415)
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            event = json.loads(body)
        except ValueError:
            self.send_error(400)
            return
        problems = event_errors(event)
        if problems:
            type(self).refused.append(problems)
            self.send_error(422, "; ".join(problems)[:200])
            return
        type(self).accepted.append(event)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_marquez_like_receiver_takes_every_event(
    every_kind: dict[str, tuple[Path, str]],
) -> None:
    handler = type("Receiver", (MarquezLike,), {"accepted": [], "refused": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        expected: list[dict[str, Any]] = []
        for ws, root_id in every_kind.values():
            sent = invoke(
                "lineage",
                "openlineage",
                root_id,
                "--workspace",
                ws,
                "--transport",
                "http",
                "--url",
                url,
                "--json",
            )
            assert sent.exit_code == 0, sent.output
            expected += printed_events(ws, root_id)
            assert json.loads(sent.stdout)["sent"] == len(printed_events(ws, root_id))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert handler.refused == []
    assert handler.accepted == expected
    assert_valid(handler.accepted)
