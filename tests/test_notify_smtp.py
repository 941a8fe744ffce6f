"""Data-quality failures are e-mailed over real SMTP; a dead mail server never stops a run."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result

from carbonlake.cli import cli
from carbonlake.database import Database

HEADER = (
    "activity_event_id,asset_id,geo,origin_measurement_timestamp,scope,category,"
    "activity,source,raw_data,units"
)
SUBJECT = "Data Quality check failed"
SPEC_MESSAGE = "Your Carbonlake Data Quality job has failed. Please review your dataset: "


def row(event_id: str, raw_data: str = "10", asset: str = "vehicle1") -> str:
    return (
        f'{event_id},{asset},"[1.5,2.5]",2019-10,1,mobile-combustion,'
        f"Motor Gasoline - Gasoline Passenger Cars,fleet,{raw_data},gal"
    )


def failing_csv() -> bytes:
    """Two rules fail: a negative raw_data and a missing asset_id."""
    rows = [row("id-1"), row("id-2", raw_data="-3"), row("id-3", asset="")]
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def passing_csv() -> bytes:
    return ("\n".join([HEADER, row("id-1"), row("id-2")]) + "\n").encode()


EXPECTED_FAILED_RULES = {
    "Check raw_data column is numeric and not negative",
    "Check asset_id column For missing Values",
}


class Recorder:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.received = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.received.set()
        return "250 OK"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CARBONLAKE_"):
            monkeypatch.delenv(name)


def free_port() -> int:
    """A local port on which nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    """A real SMTP server on 127.0.0.1.

    aiosmtpd 1.4's Controller cannot start on port 0 (it connects to its own
    host:port to check it is up), so take a free port first and retry on a race.
    """
    handler = Recorder()
    for attempt in range(5):
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        try:
            controller.start()
            break
        except (OSError, RuntimeError):
            if attempt == 4:
                raise
    try:
        port = controller.server.sockets[0].getsockname()[1]
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def dead_port() -> int:
    return free_port()


def write_config(ws: Path, port: int, email_to: str = "admin@example.org") -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "carbonlake.toml").write_text(
        f'[notify]\nemail_to = "{email_to}"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        "smtp_timeout_s = 5\n",
        encoding="utf-8",
    )


def run(tmp_path: Path, ws: Path, data: bytes, name: str = "fleet.csv") -> tuple[Result, Path]:
    source = tmp_path / name
    source.write_bytes(data)
    result = CliRunner().invoke(cli, ["run", str(source), "--workspace", str(ws), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.stderr
    return result, source


def summary_of(result: Result) -> dict[str, Any]:
    document = json.loads(result.stdout)
    if isinstance(document, list):
        assert len(document) == 1
        document = document[0]
    assert isinstance(document, dict)
    return document


def parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def notifications(ws: Path, root_id: str) -> list[dict[str, Any]]:
    database = Database(f"sqlite:///{ws}/carbonlake.db")
    try:
        return database.notifications(root_id)
    finally:
        database.close()


def test_failed_file_is_emailed_with_the_spec_message(
    tmp_path: Path, smtp_server: tuple[Recorder, int]
) -> None:
    handler, port = smtp_server
    ws = tmp_path / "ws"
    write_config(ws, port)

    result, _ = run(tmp_path, ws, failing_csv())

    assert result.exit_code == 1
    summary = summary_of(result)
    assert summary["data_quality"]["status"] == "FAILED"
    assert set(summary["data_quality"]["failed_rules"]) == EXPECTED_FAILED_RULES
    landing_url = (ws / "landing" / "fleet.csv").resolve().as_uri()
    assert summary["input_storage_location"] == landing_url

    assert handler.received.wait(5), "the SMTP server received no mail"
    assert len(handler.messages) == 1
    mail_from, recipients, content = handler.messages[0]
    assert recipients == ["admin@example.org"]
    assert mail_from  # a sender is always set
    message = parse(content)
    assert message["Subject"] == SUBJECT
    assert message["To"] == "admin@example.org"
    body = message.get_content()
    assert isinstance(body, str)
    assert SPEC_MESSAGE + landing_url in body
    assert landing_url.startswith("file://")
    for rule in EXPECTED_FAILED_RULES:
        assert rule in body

    recorded = notifications(ws, summary["root_id"])
    mails = [n for n in recorded if n["channel"] == "email"]
    assert len(mails) == 1
    assert mails[0]["delivered"] == 1
    assert mails[0]["error"] is None
    assert mails[0]["subject"] == SUBJECT
    # The file itself still went to error.
    assert (ws / "error" / "fleet.csv").is_file()
    assert not (ws / "landing" / "fleet.csv").exists()


def test_passing_file_sends_no_mail(tmp_path: Path, smtp_server: tuple[Recorder, int]) -> None:
    handler, port = smtp_server
    ws = tmp_path / "ws"
    write_config(ws, port)

    result, _ = run(tmp_path, ws, passing_csv())

    assert result.exit_code == 0
    summary = summary_of(result)
    assert summary["status"] == "SUCCEEDED"
    assert handler.messages == []
    assert notifications(ws, summary["root_id"]) == []


def test_each_failed_file_gets_its_own_mail(
    tmp_path: Path, smtp_server: tuple[Recorder, int]
) -> None:
    handler, port = smtp_server
    ws = tmp_path / "ws"
    write_config(ws, port)
    first = tmp_path / "a.csv"
    second = tmp_path / "b.csv"
    first.write_bytes(failing_csv())
    second.write_bytes(b"")

    result = CliRunner().invoke(
        cli, ["run", str(first), str(second), "--workspace", str(ws), "--json"]
    )

    assert result.exit_code == 1
    bodies = [parse(content).get_content() for _, _, content in handler.messages]
    assert len(bodies) == 2
    for name in ("a.csv", "b.csv"):
        url = (ws / "landing" / name).resolve().as_uri()
        assert sum(SPEC_MESSAGE + url in body for body in bodies) == 1


def assert_undelivered(result: Result, ws: Path) -> None:
    """DQ failure is still exit 1 with the file in error; the mail is recorded undelivered."""
    assert result.exit_code == 1, result.stdout + result.stderr
    summary = summary_of(result)
    assert summary["status"] == "FAILED"
    assert summary["data_quality"]["status"] == "FAILED"
    assert set(summary["data_quality"]["failed_rules"]) == EXPECTED_FAILED_RULES
    assert (ws / "error" / "fleet.csv").is_file()
    assert not (ws / "landing" / "fleet.csv").exists()
    assert not (ws / "raw" / "fleet.csv").exists()

    recorded = notifications(ws, summary["root_id"])
    mails = [n for n in recorded if n["channel"] == "email"]
    assert len(mails) == 1, recorded
    assert mails[0]["delivered"] == 0
    assert mails[0]["error"], "an undelivered mail must say why"
    assert mails[0]["subject"] == SUBJECT
    assert (ws / "landing" / "fleet.csv").resolve().as_uri() in mails[0]["message"]
    # The other channel (the log) still recorded the failure as delivered.
    assert any(n["channel"] != "email" and n["delivered"] == 1 for n in recorded)


def test_mail_server_down_is_recorded_and_does_not_stop_the_run(
    tmp_path: Path, dead_port: int
) -> None:
    ws = tmp_path / "ws"
    write_config(ws, dead_port)

    result, _ = run(tmp_path, ws, failing_csv())

    assert_undelivered(result, ws)


def test_smtp_settings_from_environment_variables(
    tmp_path: Path, smtp_server: tuple[Recorder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, port = smtp_server
    monkeypatch.setenv("CARBONLAKE_NOTIFY__EMAIL_TO", "ops@example.org")
    monkeypatch.setenv("CARBONLAKE_NOTIFY__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CARBONLAKE_NOTIFY__SMTP_PORT", str(port))
    ws = tmp_path / "ws"

    result, _ = run(tmp_path, ws, failing_csv())

    assert result.exit_code == 1
    assert not (ws / "carbonlake.toml").exists()
    assert handler.received.wait(5), "the SMTP server received no mail"
    assert len(handler.messages) == 1
    _, recipients, content = handler.messages[0]
    assert recipients == ["ops@example.org"]
    message = parse(content)
    assert message["Subject"] == SUBJECT
    body = message.get_content()
    landing_url = (ws / "landing" / "fleet.csv").resolve().as_uri()
    assert SPEC_MESSAGE + landing_url in body
    for rule in EXPECTED_FAILED_RULES:
        assert rule in body


def test_environment_overrides_the_toml_recipient_and_port(
    tmp_path: Path,
    smtp_server: tuple[Recorder, int],
    dead_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Environment variables win over carbonlake.toml."""
    handler, port = smtp_server
    ws = tmp_path / "ws"
    write_config(ws, dead_port, email_to="toml@example.org")
    monkeypatch.setenv("CARBONLAKE_NOTIFY__EMAIL_TO", "env@example.org")
    monkeypatch.setenv("CARBONLAKE_NOTIFY__SMTP_PORT", str(port))

    result, _ = run(tmp_path, ws, failing_csv())

    assert result.exit_code == 1
    assert handler.received.wait(5)
    assert [recipients for _, recipients, _ in handler.messages] == [["env@example.org"]]


def test_mail_server_down_via_environment_variables(
    tmp_path: Path, dead_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONLAKE_NOTIFY__EMAIL_TO", "admin@example.org")
    monkeypatch.setenv("CARBONLAKE_NOTIFY__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CARBONLAKE_NOTIFY__SMTP_PORT", str(dead_port))
    ws = tmp_path / "ws"

    result, _ = run(tmp_path, ws, failing_csv())

    assert_undelivered(result, ws)


def test_without_smtp_settings_only_the_log_notification_is_recorded(tmp_path: Path) -> None:
    ws = tmp_path / "ws"

    result, _ = run(tmp_path, ws, failing_csv())

    assert result.exit_code == 1
    recorded = notifications(ws, summary_of(result)["root_id"])
    assert [n["channel"] for n in recorded] == ["log"]
    assert recorded[0]["delivered"] == 1
