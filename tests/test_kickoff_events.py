"""Events as AWS delivers them: S3 notifications naming the real bucket, EventBridge
"Object Created" events and SQS messages holding either, through the task, the command
line and the service, against real workspaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from carbonlake import ConfigurationError, InputDataError, tasks
from carbonlake.cli import cli
from carbonlake.service import create_app
from carbonlake.settings import load_settings

from .conftest import HEADER, activity_row

AWS_BUCKET = "cdlpipelinestack-cdllandingbucket-1x2y3z"
KEY = "events-key"


def s3_notification(bucket: str, *keys: str) -> dict[str, Any]:
    """An S3 event notification with every field S3 sends (version 2.1)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-03-01T10:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.7"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWer",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "landing-objects",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": 1024,
                        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                        "sequencer": "0055AED6DCD90281E5",
                    },
                },
            }
            for key in keys
        ]
    }


def eventbridge_event(bucket: str, key: str, detail_type: str = "Object Created") -> dict[str, Any]:
    """An EventBridge event from S3, as the S3 user guide shows it."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "111122223333",
        "time": "2026-03-01T10:00:00Z",
        "region": "ca-central-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": 5,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "sequencer": "617f08299329d189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


def sqs_message(body: dict[str, Any], number: int = 1) -> dict[str, Any]:
    """One message as ReceiveMessage returns it."""
    text = json.dumps(body)
    return {
        "MessageId": f"b5c3c9e0-0000-4000-8000-00000000000{number}",
        "ReceiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...{number}",
        "MD5OfBody": "fafb00f5732ab283681e124bf8747ed1",
        "Body": text,
    }


def lambda_sqs_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    """A Lambda event from an SQS queue."""
    return {
        "Records": [
            {
                "messageId": f"059f36b4-87a3-44ab-83d2-66197572350{number}",
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
                "body": json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1545082649183",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1545082649185",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:landing-queue",
                "awsRegion": "us-east-1",
            }
            for number, body in enumerate(bodies)
        ]
    }


def sns_envelope(message: dict[str, Any]) -> dict[str, Any]:
    """An SNS notification, as S3 -> SNS -> SQS puts it in the message body."""
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:111122223333:landing-topic",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(message),
        "Timestamp": "2026-03-01T10:00:01.000Z",
        "SignatureVersion": "1",
    }


TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-03-01T09:59:00.000Z",
    "Bucket": AWS_BUCKET,
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


def land(workspace: Path, key: str, *record_ids: str) -> Path:
    path = workspace / "landing" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *(activity_row(r) for r in record_ids)]) + "\n")
    return path


def landing_url(workspace: Path, key: str) -> str:
    return f"{(workspace.resolve() / 'landing').as_uri()}/{key}"


def locations(output: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    items = output if isinstance(output, list) else [output]
    return [item["input"]["storage_location"] for item in items]


# -- the landing bucket's name ----------------------------------------------------------


def test_the_real_bucket_name_is_refused_until_it_is_named(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    event = s3_notification(AWS_BUCKET, "2026/march/fleet.csv")
    with pytest.raises(InputDataError, match=r"Records\[0\]\.s3\.object\.key.*landing_bucket_name"):
        tasks.kickoff(event, settings=load_settings(ws, environ={}))

    expected = [landing_url(ws, "2026/march/fleet.csv")]
    for environ in (
        {"CARBONLAKE_STORAGE__LANDING_BUCKET_NAME": AWS_BUCKET},
        {"CARBONLAKE_storage__landing_bucket_name": AWS_BUCKET},
        {"CARBONLAKE_Storage__Landing_Bucket_Name": AWS_BUCKET},
    ):
        settings = load_settings(ws, environ=environ)
        assert settings.storage.landing_bucket_name == AWS_BUCKET
        assert locations(tasks.kickoff(event, settings=settings)) == expected

    (ws / "carbonlake.toml").write_text(f'[storage]\nlanding_bucket_name = "{AWS_BUCKET}"\n')
    settings = load_settings(ws, environ={})
    assert locations(tasks.kickoff(event, settings=settings)) == expected
    # The folder's own name still works (watch and older events use it), other buckets do not.
    assert locations(tasks.kickoff(s3_notification("landing", "a b.csv"), settings=settings)) == [
        landing_url(ws, "a b.csv")
    ]
    with pytest.raises(InputDataError, match="landing bucket"):
        tasks.kickoff(s3_notification("raw", "a.csv"), settings=settings)


def test_the_default_name_is_the_last_segment_of_the_landing_url(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    folder = tmp_path / "shared" / "cdl-landing"
    environ = {"CARBONLAKE_STORAGE__LANDING": folder.as_uri()}
    settings = load_settings(ws, environ=environ)
    output = tasks.kickoff(s3_notification("cdl-landing", "x/fleet.csv"), settings=settings)
    assert locations(output) == [f"{folder.resolve().as_uri()}/x/fleet.csv"]


def test_landing_bucket_name_must_be_a_bare_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"\[storage\] landing_bucket_name"):
        load_settings(tmp_path / "ws", environ={"CARBONLAKE_STORAGE__LANDING_BUCKET_NAME": "a/b"})


def test_environment_names_are_case_insensitive_after_the_prefix(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        environ={
            "CARBONLAKE_workspace": str(tmp_path / "lower"),
            "CARBONLAKE_pipeline__Batch_Size": "7",
        },
    )
    assert settings.workspace == (tmp_path / "lower").resolve()
    assert settings.pipeline.batch_size == 7
    with pytest.raises(ConfigurationError, match=r"CARBONLAKE_PIPELINE__BATCH_SIZE.*unset one"):
        load_settings(
            tmp_path / "ws",
            environ={
                "CARBONLAKE_PIPELINE__BATCH_SIZE": "7",
                "CARBONLAKE_pipeline__batch_size": "8",
            },
        )
    # The prefix itself is not: carbonlake_ variables belong to someone else.
    assert load_settings(tmp_path / "ws", environ={"carbonlake_pipeline__x": "1"})


# -- shapes -----------------------------------------------------------------------------


def test_every_aws_shape_names_the_same_objects(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    settings = load_settings(ws, environ={"CARBONLAKE_STORAGE__LANDING_BUCKET_NAME": AWS_BUCKET})
    key = "2026/march/fleet data+extra.csv"
    expected = [landing_url(ws, key)]
    s3 = s3_notification(AWS_BUCKET, key)
    bridge = eventbridge_event(AWS_BUCKET, key)
    shapes = {
        "s3": s3,
        "eventbridge": bridge,
        "sqs message": sqs_message(s3),
        "sqs message of eventbridge": sqs_message(bridge),
        "receive-message": {"Messages": [sqs_message(bridge)]},
        "lambda sqs": lambda_sqs_event(s3),
        "lambda sqs of eventbridge": lambda_sqs_event(bridge),
        "sqs of sns of s3": sqs_message(sns_envelope(s3)),
        "lambda sns": {"Records": [{"EventSource": "aws:sns", "Sns": sns_envelope(s3)}]},
    }
    for name, event in shapes.items():
        assert locations(tasks.kickoff(event, settings=settings)) == expected, name

    batch = {
        "Messages": [
            sqs_message(TEST_EVENT, 1),
            sqs_message(s3_notification(AWS_BUCKET, "a.csv", "b.csv"), 2),
            sqs_message(eventbridge_event("landing", "c.csv"), 3),
        ]
    }
    assert locations(tasks.kickoff(batch, settings=settings)) == [
        landing_url(ws, name) for name in ("a.csv", "b.csv", "c.csv")
    ]


def test_an_event_may_name_no_object(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "ws", environ={})
    for event in (TEST_EVENT, sqs_message(TEST_EVENT), {"Messages": []}):
        assert tasks.kickoff(event, settings=settings) == []
    result = CliRunner().invoke(
        cli,
        ["kickoff", "--event", "-", "--workspace", str(tmp_path / "ws"), "--json"],
        input=json.dumps({"Messages": [sqs_message(TEST_EVENT)]}),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert "names no object" in result.stderr


def test_an_unencoded_key_is_taken_as_given_when_only_it_exists(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    land(ws, "c++ fleet.csv", "r1")
    event = eventbridge_event("landing", "x")
    event["detail"]["object"]["key"] = "c++ fleet.csv"  # a sender that did not encode it
    settings = load_settings(ws, environ={})
    assert locations(tasks.kickoff(event, settings=settings)) == [landing_url(ws, "c++ fleet.csv")]


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"Records": []}, ["Records", "at least one"]),
        ({"Records": [{"s3": {"bucket": {"name": "landing"}}}]}, ["Records[0].s3.object.key"]),
        (
            {"Records": [{"eventName": "ObjectRemoved:Delete", "s3": {}}]},
            ["Records[0].eventName", "ObjectRemoved:Delete"],
        ),
        (
            eventbridge_event("landing", "a.csv", "Object Deleted"),
            ["detail-type", "Object Deleted"],
        ),
        ({"detail-type": "Object Created", "detail": {"bucket": {}}}, ["detail.bucket.name"]),
        ({"Messages": [{"Body": "{not json"}]}, ["Messages[0].Body is not JSON"]),
        (
            lambda_sqs_event(
                {"Records": [{"s3": {"bucket": {"name": 7}, "object": {"key": "k"}}}]}
            ),
            ["Records[0].body.Records[0].s3.bucket.name", "a number"],
        ),
        ({"hello": "world"}, ["no 'Records'", "hello"]),
        ([1, 2], ["a list, not a JSON object"]),
    ],
)
def test_malformed_events_name_the_field(tmp_path: Path, event: Any, words: list[str]) -> None:
    with pytest.raises(InputDataError) as caught:
        tasks.kickoff(event, settings=load_settings(tmp_path / "ws", environ={}))
    for word in words:
        assert word in str(caught.value)


# -- the command line -------------------------------------------------------------------


def test_kickoff_runs_an_sqs_batch_of_real_events(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    land(ws, "2026/march/my fleet.csv", "k1", "k2")
    land(ws, "2026/march/second.csv", "k3")
    (ws / "carbonlake.toml").write_text(f'[storage]\nlanding_bucket_name = "{AWS_BUCKET}"\n')
    event = {
        "Messages": [
            sqs_message(s3_notification(AWS_BUCKET, "2026/march/my fleet.csv"), 1),
            sqs_message(eventbridge_event(AWS_BUCKET, "2026/march/second.csv"), 2),
        ]
    }
    result = CliRunner().invoke(
        cli, ["kickoff", "--event", "-", "--workspace", str(ws), "--json"], input=json.dumps(event)
    )
    assert result.exit_code == 0, result.output
    summaries = json.loads(result.stdout)
    assert [s["status"] for s in summaries] == ["SUCCEEDED", "SUCCEEDED"]
    assert [s["records_calculated"] for s in summaries] == [2, 1]
    assert (ws / "raw" / "2026" / "march" / "my fleet.csv").is_file()
    assert (ws / "raw" / "2026" / "march" / "second.csv").is_file()


def test_a_malformed_event_is_a_usage_error(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner = CliRunner()
    cases = [
        ("{", "not valid JSON"),
        (json.dumps(eventbridge_event("landing", "a.csv", "Object Deleted")), "detail-type"),
        (json.dumps(s3_notification(AWS_BUCKET, "a.csv")), "landing_bucket_name"),
        (json.dumps({"Messages": [{"Body": "[]"}]}), "Messages[0].Body"),
    ]
    for text, words in cases:
        result = runner.invoke(
            cli, ["kickoff", "--event", "-", "--workspace", str(ws), "--json"], input=text
        )
        assert result.exit_code == 2, (text, result.output)
        error = json.loads(result.stdout)["error"]
        assert words in error["message"] and "--event -" in error["message"]
        assert "Traceback" not in result.output
    # An event for an object that is not there ran and failed: exit 1.
    gone = runner.invoke(
        cli,
        ["kickoff", "--event", "-", "--workspace", str(ws)],
        input=json.dumps(eventbridge_event("landing", "gone.csv")),
    )
    assert gone.exit_code == 1 and "not in the landing bucket" in gone.stderr


# -- the service ------------------------------------------------------------------------


def wait_all(client: TestClient, ids: list[str]) -> list[dict[str, Any]]:
    from .test_service_api import wait

    return [wait(client, execution_id) for execution_id in ids]


def test_the_service_takes_eventbridge_and_sqs_events(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    land(ws, "drop/one.csv", "s1")
    land(ws, "drop/two three.csv", "s2", "s3")
    environ = {
        "CARBONLAKE_SERVER__API_KEYS": KEY,
        "CARBONLAKE_STORAGE__LANDING_BUCKET_NAME": AWS_BUCKET,
    }
    headers = {"X-API-Key": KEY}
    with TestClient(
        create_app(load_settings(ws, environ=environ)), base_url="http://localhost"
    ) as client:
        response = client.post(
            "/events/s3", json=eventbridge_event(AWS_BUCKET, "drop/one.csv"), headers=headers
        )
        assert response.status_code == 202, response.text
        (first,) = response.json()["executions"]
        assert first["object_key"] == "drop/one.csv"

        queue = lambda_sqs_event(TEST_EVENT, s3_notification(AWS_BUCKET, "drop/two three.csv"))
        response = client.post("/events/s3", json=queue, headers=headers)
        assert response.status_code == 202, response.text
        (second,) = response.json()["executions"]
        assert second["object_key"] == "drop/two three.csv"

        done = wait_all(client, [first["execution_id"], second["execution_id"]])
        assert [e["status"] for e in done] == ["SUCCEEDED", "SUCCEEDED"]
        assert [e["summary"]["records_calculated"] for e in done] == [1, 2]

        bad = client.post(
            "/events/s3",
            json={"Messages": [sqs_message(eventbridge_event(AWS_BUCKET, "x", "Object Deleted"))]},
            headers=headers,
        )
        assert bad.status_code == 400
        assert "Messages[0].Body.detail-type" in bad.json()["detail"]
        nothing = client.post("/events/s3", json=sqs_message(TEST_EVENT), headers=headers)
        assert nothing.status_code == 202 and nothing.json() == {"executions": []}
        missing = client.post(
            "/events/s3", json=eventbridge_event(AWS_BUCKET, "nope.csv"), headers=headers
        )
        assert missing.status_code == 404
        assert "detail.object.key" in missing.json()["detail"]
