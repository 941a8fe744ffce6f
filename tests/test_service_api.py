"""The HTTP API through FastAPI's test client: real workspace, real pipeline, real SQLite."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import polars as pl
import pytest
from fastapi.testclient import TestClient

from carbonlake import kickoff
from carbonlake.database import EMISSION_GROUPS, EMISSION_SORT_COLUMNS
from carbonlake.service import create_app
from carbonlake.service.routers.emissions import GroupBy, SortColumn
from carbonlake.settings import load_settings

from .conftest import SAMPLE, activity_row

KEY = "test-key-1"
WRITE = {"X-API-Key": KEY}
LOCAL = "http://localhost"  # a Host the service answers for ([server] allowed_hosts)


def make_client(workspace: Path, **server: str) -> TestClient:
    environ = {"CARBONLAKE_SERVER__API_KEYS": f"{KEY},second-key"}
    environ.update({f"CARBONLAKE_SERVER__{k.upper()}": v for k, v in server.items()})
    return TestClient(create_app(load_settings(workspace, environ=environ)), base_url=LOCAL)


def wait(client: TestClient, execution_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """Poll an execution until it leaves QUEUED and RUNNING, as the page does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/executions/{execution_id}")
        assert response.status_code == 200, response.text
        execution: dict[str, Any] = response.json()
        if execution["status"] not in ("QUEUED", "RUNNING"):
            return execution
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish")


def upload(client: TestClient, path: Path, key: str | None = None, **fields: str) -> dict[str, Any]:
    data = dict(fields)
    if key:
        data["key"] = key
    with path.open("rb") as handle:
        response = client.post(
            "/uploads", files={"file": (path.name, handle, "text/csv")}, data=data, headers=WRITE
        )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/executions/{response.json()['execution_id']}"
    return response.json()


def assert_problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    for word in words:
        assert word in problem["detail"], problem
    return problem


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """A service whose workspace holds the sample, uploaded through the API."""
    client = make_client(tmp_path_factory.mktemp("svc") / "ws")
    with client:
        accepted = upload(client, SAMPLE, "2026/fleet/sample.csv")
        assert accepted["status"] == "QUEUED"
        execution = wait(client, accepted["execution_id"])
        yield client, execution


# -- uploads and executions ------------------------------------------------------------------


def test_upload_runs_the_pipeline_in_the_background(
    sample: tuple[TestClient, dict[str, Any]],
) -> None:
    client, execution = sample
    assert execution["status"] == "SUCCEEDED", execution
    assert execution["object_key"] == "2026/fleet/sample.csv"
    summary = execution["summary"]
    assert summary["records_in"] == summary["records_calculated"] == 8000
    assert summary["data_quality"]["status"] == "PASSED"
    assert [s["status"] for s in execution["stages"]] == ["succeeded"] * 6
    calculate = execution["stages"][-1]
    assert calculate["batches_done"] == calculate["batches"] == 8
    workspace = client.app.state.service.settings.workspace  # type: ignore[attr-defined]
    assert (workspace / "raw" / "2026" / "fleet" / "sample.csv").is_file()
    assert not list((workspace / "landing").rglob("*.csv"))

    listed = client.get("/executions").json()["executions"]
    assert [e["execution_id"] for e in listed] == [execution["execution_id"]]
    assert listed[0]["summary"]["records_calculated"] == 8000
    events = client.get(f"/executions/{execution['execution_id']}/history").json()["events"]
    assert events[0]["event_type"] == "ExecutionStarted"
    assert events[-1]["event_type"] == "ExecutionSucceeded"
    assert sum(e["event_type"] == "MapIterationSucceeded" for e in events) == 8


def test_same_file_again_is_skipped_unless_forced(
    sample: tuple[TestClient, dict[str, Any]],
) -> None:
    client, first = sample
    again = wait(client, upload(client, SAMPLE, "2026/fleet/sample.csv")["execution_id"])
    assert again["status"] == "SKIPPED"
    assert again["duplicate_of"] == first["execution_id"]
    assert "already processed" in again["error"]
    skipped = client.get("/executions", params={"status": "SKIPPED"}).json()["executions"]
    assert again["execution_id"] in [e["execution_id"] for e in skipped]
    history = client.get(f"/executions/{again['execution_id']}/history")
    assert history.status_code == 200 and history.json()["events"] == []


def test_failed_data_quality_is_reported_with_failing_samples(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    path = make_csv([activity_row("r1"), activity_row("r2", scope="7"), activity_row("r1")])
    with make_client(tmp_path / "ws") as client:
        execution = wait(client, upload(client, path)["execution_id"])
        assert execution["status"] == "FAILED"
        assert [s["status"] for s in execution["stages"]] == [
            "succeeded",
            "succeeded",
            "failed",
            "skipped",
            "skipped",
            "skipped",
        ]
        quality = client.get(f"/quality/{execution['root_id']}").json()
        assert quality["passed"] is False
        failed = {r["name"]: r for r in quality["report"]["rulesetResults"][0]["ruleResults"]}
        scope_rule = failed["Check scope is 1, 2 or 3"]
        assert scope_rule["status"] == "FAILED"
        assert scope_rule["failingSamples"] == [{"row_number": 2, "activity_event_id": "r2"}]
        assert any(
            r["status"] == "FAILED" and "row 2 (r2)" in r["samples"] for r in quality["rules"]
        )
        assert quality["profile"]["rowsCount"] == 3
        assert client.get("/emissions").json()["total"] == 0


def test_unknown_execution_is_a_404_problem(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = sample
    assert_problem(client.get("/executions/nope"), 404, "no execution 'nope'")
    assert_problem(client.get("/executions/nope/history"), 404, "no execution")
    assert_problem(client.get("/no/such/path"), 404, "/openapi.json")
    assert_problem(client.delete("/executions"), 405, "DELETE")


# -- emissions ------------------------------------------------------------------------------------


def test_emissions_filters_sort_and_pages(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = sample
    everything = client.get("/emissions").json()
    assert everything["total"] == 8000 and len(everything["records"]) == 50
    diesel = "Diesel Fuel - Diesel Passenger Cars"
    page = client.get(
        "/emissions",
        params={"activity": diesel, "sort": "co2e_ar5_tonnes", "order": "desc", "limit": 7},
    ).json()
    assert page["total"] == 2000
    values = [r["co2e_ar5_tonnes"] for r in page["records"]]
    assert values == sorted(values, reverse=True) and len(values) == 7
    assert {r["activity"] for r in page["records"]} == {diesel}
    # the page's totals cover every matching record, not only the page
    by_activity = {
        g["key"]: g
        for g in client.get("/emissions/summary", params={"by": "activity"}).json()["groups"]
    }
    assert page["totals"]["co2e_tonnes"]["location_based"]["ar5"] == pytest.approx(
        by_activity[diesel]["co2e_tonnes"]["location_based"]["ar5"]
    )
    second = client.get(
        "/emissions",
        params={
            "activity": diesel,
            "sort": "co2e_ar5_tonnes",
            "order": "desc",
            "limit": 7,
            "offset": 7,
        },
    ).json()
    assert not {r["activity_event_id"] for r in second["records"]} & {
        r["activity_event_id"] for r in page["records"]
    }
    assert client.get("/emissions", params={"asset_id": "vehicle101", "scope": 1}).json()[
        "total"
    ] == sum(1 for row in csv.DictReader(SAMPLE.open()) if row["asset_id"] == "vehicle101")
    searched = client.get("/emissions", params={"search": "lmnh65"}).json()
    assert [r["activity_event_id"] for r in searched["records"]] == ["carbon-data-lake-LMNH652"]


def test_time_range_is_inclusive_of_whole_months(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = sample
    rows = list(csv.DictReader(SAMPLE.open()))
    expected = sum(
        1 for r in rows if "2019-10" <= r["origin_measurement_timestamp"][:7] <= "2019-12"
    )
    found = client.get("/emissions", params={"from": "2019-10", "to": "2019-12"}).json()
    assert found["total"] == expected > 0
    assert_problem(client.get("/emissions", params={"from": "last week"}), 422, "query.from")


def test_filter_values_are_data_never_sql(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = sample
    for hostile in ("' OR 1=1 --", "mobile-combustion' OR 'a'='a", "%", "_"):
        assert client.get("/emissions", params={"category": hostile}).json()["total"] == 0
    assert client.get("/emissions", params={"search": "%"}).json()["total"] == 3000  # "(100%)"
    assert client.get("/emissions", params={"search": "_"}).json()["total"] == 0
    problem = assert_problem(
        client.get("/emissions", params={"sort": "co2e_ar5_tonnes; DROP TABLE emissions"}), 422
    )
    assert problem["errors"][0]["parameter"] == "query.sort"
    assert client.get("/emissions").json()["total"] == 8000


def test_emissions_as_csv(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = sample
    response = client.get(
        "/emissions", params={"format": "csv", "asset_id": "vehicle100", "sort": "raw_data"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    expected = sum(1 for row in csv.DictReader(SAMPLE.open()) if row["asset_id"] == "vehicle100")
    assert len(rows) == expected
    assert response.text.startswith("activity_event_id,")
    amounts = [float(r["raw_data"]) for r in rows]
    assert amounts == sorted(amounts)


def test_emission_summaries(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = sample
    total = client.get("/emissions").json()["totals"]["co2e_tonnes"]["location_based"]["ar5"]
    for by in get_args(GroupBy):
        found = client.get("/emissions/summary", params={"by": by}).json()
        assert sum(g["records"] for g in found["groups"]) == 8000
        assert sum(
            g["co2e_tonnes"]["location_based"]["ar5"] for g in found["groups"]
        ) == pytest.approx(total)
    months = [g["key"] for g in client.get("/emissions/summary?by=month").json()["groups"]]
    assert months == sorted(months) and months[0] == "2019-01"
    scopes = client.get("/emissions/summary", params={"by": "scope", "asset_id": "vehicle100"})
    assert [g["key"] for g in scopes.json()["groups"]] == [1]
    assert_problem(client.get("/emissions/summary", params={"by": "colour"}), 422)
    values = client.get("/emissions/values").json()
    assert values["scope"] == [1]
    assert values["asset_id"] == ["vehicle100", "vehicle101", "vehicle102", "vehicle103"]


def test_the_openapi_enums_match_the_database_whitelists() -> None:
    assert get_args(SortColumn) == EMISSION_SORT_COLUMNS
    assert get_args(GroupBy) == tuple(EMISSION_GROUPS)


def test_a_record_with_provenance_and_lineage(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, execution = sample
    record_id = "carbon-data-lake-LMNH652"
    found = client.get(f"/emissions/records/{record_id}").json()
    current = found["current"]
    assert current["raw_data"] == 9.0 and current["execution_id"] == execution["execution_id"]
    factor = found["factor"]
    assert factor["factor_id"] == current["factor_id"]
    assert factor["factor_version"] == current["factor_version"]
    assert current["co2e_ar5_tonnes"] == pytest.approx(9 * factor["ar5_kgco2e_per_unit"] / 1000)
    assert "EPA" in factor["source"]
    assert_problem(client.get("/emissions/records/nope"), 404, "no calculated result")

    trail = client.get(f"/lineage/trace/{record_id}").json()
    assert [n["action_taken"] for n in trail["lineage"]] == [
        "RAW_DATA_INPUT",
        "PROFILE_COMPLETE",
        "DQ_CHECK_PASS",
        "GLUE_BATCH_SPLIT",
        "CALCULATION_COMPLETE",
    ]
    assert trail["complete"] and trail["row_number"] == 1
    assert trail["root_id"] == execution["root_id"]
    assert trail["emission"]["co2e_ar5_tonnes"] == current["co2e_ar5_tonnes"]
    assert_problem(client.get("/lineage/trace/nope"), 404, "no lineage node 'nope'")

    verified = client.post("/lineage/verify", json={"root_id": execution["root_id"]}).json()
    assert verified["ok"] is True and verified["records"] == 8000
    assert verified["lines"][0].startswith("OK")
    assert client.post("/lineage/verify").json()["ok"] is True
    assert_problem(client.post("/lineage/verify", json={"root_id": "nope"}), 404, "no lineage")

    tree = client.get(f"/lineage/{execution['root_id']}", params={"records": 1}).json()["tree"]
    assert tree[0]["action_taken"] == "RAW_DATA_INPUT"
    assert_problem(client.get("/lineage/nope"), 404)


def test_a_tampered_ledger_fails_verification(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    path = make_csv([activity_row(f"r{i}") for i in range(5)])
    with make_client(tmp_path / "ws") as client:
        execution = wait(client, upload(client, path)["execution_id"])
        enriched = next((tmp_path / "ws" / "enriched").rglob("part_*.parquet"))
        frame = pl.read_parquet(enriched)
        renamed = pl.col("activity_event_id").replace("r1", "r9")
        frame.with_columns(renamed).write_parquet(enriched)
        report = client.post(
            "/lineage/verify", json={"root_id": execution["root_id"], "all_problems": True}
        ).json()
        assert report["ok"] is False
        assert any(p["kind"] == "object_changed" for p in report["problems"])


def test_quality_of_an_unknown_or_damaged_root(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, execution = sample
    assert_problem(client.get("/quality/nope"), 404, "no data-quality report")
    assert_problem(client.get("/quality/%2E%2E"), 422, "path.root_id")
    workspace = client.app.state.service.settings.workspace  # type: ignore[attr-defined]
    report = workspace / "dq-results" / execution["root_id"] / "report.json"
    kept = report.read_bytes()
    try:
        report.write_text("{not json")
        assert_problem(client.get(f"/quality/{execution['root_id']}"), 503, "not valid JSON")
    finally:
        report.write_bytes(kept)
    assert client.get(f"/quality/{execution['root_id']}").json()["passed"] is True


def test_factors(sample: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = sample
    everything = client.get("/factors").json()
    assert everything["active"] and everything["count"] == len(everything["factors"]) > 200
    diesel = client.get("/factors", params={"search": "DIESEL"}).json()
    assert 0 < diesel["count"] < everything["count"]
    assert all(
        "diesel" in f["factor_id"] or "diesel" in f["activity"].lower() for f in diesel["factors"]
    )
    assert (
        client.get("/factors", params={"factor_set": everything["label"]}).json()["count"]
        == everything["count"]
    )
    assert_problem(client.get("/factors", params={"factor_set": "nope@1"}), 404, "unknown")
    sets = client.get("/factors/sets").json()["sets"]
    assert [s["active"] for s in sets] == [True]


# -- S3 events ----------------------------------------------------------------------


def test_an_s3_event_starts_executions_for_objects_in_landing(
    tmp_path: Path, make_csv: Callable[..., Path]
) -> None:
    path = make_csv([activity_row("e1"), activity_row("e2")])
    with make_client(tmp_path / "ws") as client:
        storage = client.app.state.service.context.storage  # type: ignore[attr-defined]
        storage.put_file(path, storage.url("landing", "drop/with space.csv"))
        event = kickoff.s3_put_event("landing", "drop/with space.csv")
        response = client.post("/events/s3", json=event, headers=WRITE)
        assert response.status_code == 202, response.text
        (accepted,) = response.json()["executions"]
        assert accepted["object_key"] == "drop/with space.csv"
        execution = wait(client, accepted["execution_id"])
        assert execution["status"] == "SUCCEEDED"
        assert execution["summary"]["records_calculated"] == 2

        assert_problem(
            client.post(
                "/events/s3", json=kickoff.s3_put_event("landing", "gone.csv"), headers=WRITE
            ),
            404,
            "not in landing",
        )
        assert_problem(
            client.post("/events/s3", json=kickoff.s3_put_event("raw", "x.csv"), headers=WRITE),
            400,
            "landing bucket",
        )
        assert_problem(
            client.post("/events/s3", json={"Records": []}, headers=WRITE), 400, "Records"
        )
        assert_problem(
            client.post("/events/s3", content=b"{nope", headers=WRITE), 400, "not valid JSON"
        )
        assert_problem(client.post("/events/s3", json=event), 401)


# -- safety -------------------------------------------------------------------------


def test_writes_need_a_key_reads_do_not_by_default(tmp_path: Path) -> None:
    with make_client(tmp_path / "ws") as client:
        body = {"file": ("a.csv", b"x\n", "text/csv")}
        assert_problem(client.post("/uploads", files=body), 401, "X-API-Key")
        assert_problem(client.post("/uploads", files=body, headers={"X-API-Key": "wrong"}), 403)
        assert_problem(
            client.post("/uploads", files=body, headers={"Authorization": "Bearer wrong"}), 403
        )
        accepted = client.post(
            "/uploads", files=body, headers={"Authorization": "Bearer second-key"}
        )
        assert accepted.status_code == 202
        assert client.get("/executions").status_code == 200
        assert wait(client, accepted.json()["execution_id"])["status"] == "FAILED"


def test_reads_need_a_key_when_configured(tmp_path: Path) -> None:
    with make_client(tmp_path / "ws", require_key_for_reads="true") as client:
        for path in ("/executions", "/emissions", "/factors", "/lineage/x", "/quality/x"):
            assert_problem(client.get(path), 401)
            assert client.get(path, headers=WRITE).status_code in (200, 404)
        for public in ("/", "/static/app.js", "/openapi.json", "/health"):
            assert client.get(public).status_code == 200
        secured = client.get("/openapi.json").json()["paths"]["/executions"]["get"]
        assert secured["security"]


def test_a_key_is_made_for_a_run_without_keys(tmp_path: Path) -> None:
    app = create_app(load_settings(tmp_path / "ws", environ={}))
    service = app.state.service
    assert service.generated_key and service.api_keys == [service.generated_key]
    with TestClient(app, base_url=LOCAL) as client:
        response = client.post("/events/s3", json={}, headers={"X-API-Key": service.generated_key})
        assert_problem(response, 400, "Records")


@pytest.mark.parametrize(
    "key", ["../escape.csv", "/etc/passwd", "a/../../b.csv", "bad\x01name.csv"]
)
def test_unsafe_object_keys_are_refused(tmp_path: Path, key: str) -> None:
    with make_client(tmp_path / "ws") as client:
        response = client.post(
            "/uploads",
            files={"file": ("a.csv", b"x\n", "text/csv")},
            data={"key": key},
            headers=WRITE,
        )
        assert_problem(response, 400, "object key")
        assert not [p for p in (tmp_path / "ws").rglob("*.csv")]
        assert client.get("/executions").json()["executions"] == []
        runner = client.app.state.service.runner  # type: ignore[attr-defined]
        assert not list(runner.upload_dir.iterdir())


def _multipart(payload: bytes, filename: str = "big.csv") -> tuple[bytes, str]:
    boundary = "carbonlake-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: text/csv\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_uploads_are_size_limited_while_they_stream(tmp_path: Path) -> None:
    with make_client(tmp_path / "ws", max_upload_mb="0.01") as client:  # 10,485 bytes
        body, content_type = _multipart(b"x" * 20_000)
        declared = client.post(
            "/uploads", content=body, headers={**WRITE, "Content-Type": content_type}
        )
        assert_problem(declared, 413, "max_upload_mb")

        def chunks() -> Iterator[bytes]:  # no Content-Length: only the stream tells
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        streamed = client.post(
            "/uploads", content=chunks(), headers={**WRITE, "Content-Type": content_type}
        )
        assert_problem(streamed, 413, "max_upload_mb")
        small, _ = _multipart(b"a,b\n1,2\n", "small.csv")
        ok = client.post("/uploads", content=small, headers={**WRITE, "Content-Type": content_type})
        assert ok.status_code == 202
        wait(client, ok.json()["execution_id"])
        assert not [p for p in (tmp_path / "ws").rglob("big.csv")]
        assert [p.name for p in (tmp_path / "ws" / "error").rglob("*.csv")] == ["small.csv"]


def test_malformed_uploads_are_problems(tmp_path: Path) -> None:
    with make_client(tmp_path / "ws") as client:
        assert_problem(client.post("/uploads", json={"file": "x"}, headers=WRITE), 415)
        assert_problem(
            client.post(
                "/uploads",
                content=b"garbage",
                headers={**WRITE, "Content-Type": "multipart/form-data"},
            ),
            400,
            "multipart",
        )
        assert_problem(
            client.post(
                "/uploads", data={"key": "a.csv"}, files={"other": ("x", b"1")}, headers=WRITE
            ),
            400,
            "'file'",
        )
        assert_problem(
            client.post(
                "/uploads",
                files={"file": ("a.csv", b"x\n")},
                data={"force": "maybe"},
                headers=WRITE,
            ),
            400,
            "force",
        )


def test_the_page_is_served_with_a_strict_policy(tmp_path: Path) -> None:
    with make_client(tmp_path / "ws") as client:
        page = client.get("/")
        assert page.status_code == 200 and "<title>carbonlake</title>" in page.text
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        script = client.get("/static/app.js")
        assert script.status_code == 200 and "innerHTML" not in script.text
        document = client.get("/openapi.json").json()
        assert {"/uploads", "/events/s3", "/executions", "/emissions", "/emissions/summary"} <= set(
            document["paths"]
        )
        assert (
            "multipart/form-data" in document["paths"]["/uploads"]["post"]["requestBody"]["content"]
        )
        assert json.dumps(document)  # serialisable as served
