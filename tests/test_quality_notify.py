"""Data-quality failure notifications over real servers on loopback: webhook and SMTP.

The webhook is a real ``http.server.ThreadingHTTPServer``; the mail server is
aiosmtpd, with login and STARTTLS (a throw-away certificate made by openssl).
A channel that is down, refuses or errors is retried when that can help, then
recorded as undelivered; the file still ends in ``error`` and the run goes on.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from carbonlake import ConfigurationError
from carbonlake.executions import Context, Pipeline
from carbonlake.notify import DQ_FAILURE_SUBJECT, deliver
from carbonlake.settings import NotifySettings, load_settings

from .conftest import HEADER, activity_row

SPEC_MESSAGE = "Your Carbonlake Data Quality job has failed. Please review your dataset: "
FAILED_RULE = "Check raw_data column is numeric and not negative"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CARBONLAKE_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


# -- servers ---------------------------------------------------------------------------


class Webhook(BaseHTTPRequestHandler):
    """Records each POST; answers with the next status of ``server.statuses`` (then 200)."""

    server: WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((dict(self.headers), body))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


class WebhookServer(ThreadingHTTPServer):
    requests: list[tuple[dict[str, str], bytes]]
    statuses: list[int]


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer(("127.0.0.1", 0), Webhook)
    server.requests, server.statuses = [], []
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Mailbox:
    """aiosmtpd handler keeping every message, and whether it came over TLS."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes, bool]] = []
        self.reply = "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply.startswith("250"):
            self.messages.append((list(envelope.rcpt_tos), envelope.content, bool(session.ssl)))
        return self.reply


class LoopbackController(Controller):
    """aiosmtpd's Controller on port 0: learn the real port before its start-up self-test."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start_smtp(handler: Mailbox, **smtp: Any) -> tuple[Controller, int]:
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0, **smtp)
    controller.start()
    assert controller.server is not None
    return controller, controller.server.sockets[0].getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    controller, port = start_smtp(handler)
    try:
        yield handler, port
    finally:
        controller.stop()


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth: Any
) -> AuthResult:
    ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (b"ops", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def dead_port() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    port = server.server_address[1]
    server.server_close()
    return int(port)


# -- running a file ----------------------------------------------------------------------------


def run_failing_file(tmp_path: Path, notify: dict[str, Any]) -> tuple[dict[str, Any], Context]:
    """Run a file that fails data quality with these [notify] settings (fast retries)."""
    settings = load_settings(
        tmp_path / "ws",
        overrides={"notify": {"retry_backoff_s": 0.01, **notify}},
        environ={},
    )
    context = Context.open(settings)
    source = tmp_path / "fleet.csv"
    source.write_text(
        "\n".join([HEADER, activity_row("a"), activity_row("b", raw_data="-1")]) + "\n"
    )
    summary = Pipeline(context).run_file(source)
    assert summary["status"] == "FAILED"
    assert summary["data_quality"]["failed_rules"] == [FAILED_RULE]
    assert (settings.workspace / "error" / "fleet.csv").is_file()
    return summary, context


def recorded(context: Context, summary: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    return [
        n for n in context.database.notifications(summary["root_id"]) if n["channel"] == channel
    ]


# -- webhook ---------------------------------------------------------------------------------


def test_webhook_receives_the_spec_message_as_json(tmp_path: Path, webhook: WebhookServer) -> None:
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hooks/secret-token"
    summary, context = run_failing_file(tmp_path, {"webhook_url": url})
    try:
        assert len(webhook.requests) == 1
        headers, body = webhook.requests[0]
        assert headers["Content-Type"] == "application/json"
        payload = json.loads(body)
        landing = summary["input_storage_location"]
        assert payload["subject"] == DQ_FAILURE_SUBJECT
        assert payload["message"].startswith(SPEC_MESSAGE + landing)
        assert FAILED_RULE in payload["message"]
        assert "1 of 2 rows do not satisfy" in payload["message"]
        assert payload["root_id"] == summary["root_id"]
        assert payload["failed_rules"] == [FAILED_RULE]
        assert payload["storage_location"] == landing
        assert payload["report_location"] == summary["data_quality"]["report_location"]
        [row] = recorded(context, summary, "webhook")
        assert (row["delivered"], row["error"]) == (1, None)
    finally:
        context.close()


def test_webhook_error_is_retried_then_delivered(tmp_path: Path, webhook: WebhookServer) -> None:
    webhook.statuses = [503, 502]
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    summary, context = run_failing_file(tmp_path, {"webhook_url": url})
    try:
        assert len(webhook.requests) == 3
        [row] = recorded(context, summary, "webhook")
        assert row["delivered"] == 1
    finally:
        context.close()


def test_webhook_client_error_is_not_retried(tmp_path: Path, webhook: WebhookServer) -> None:
    webhook.statuses = [404]
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hooks/secret-token"
    summary, context = run_failing_file(tmp_path, {"webhook_url": url})
    try:
        assert len(webhook.requests) == 1
        [row] = recorded(context, summary, "webhook")
        assert row["delivered"] == 0
        assert "HTTP 404" in row["error"] and "not retried" in row["error"]
        assert "secret-token" not in row["error"]  # a webhook path is often its secret
    finally:
        context.close()


def test_webhook_down_is_retried_recorded_and_the_run_goes_on(
    tmp_path: Path, dead_port: int
) -> None:
    summary, context = run_failing_file(
        tmp_path, {"webhook_url": f"http://127.0.0.1:{dead_port}/hook", "retry_attempts": 4}
    )
    try:
        [row] = recorded(context, summary, "webhook")
        assert row["delivered"] == 0
        assert "after 4 attempts" in row["error"]
        assert recorded(context, summary, "log")[0]["delivered"] == 1
    finally:
        context.close()


# -- e-mail --------------------------------------------------------------------------------------


def test_email_and_webhook_both_go_out(
    tmp_path: Path, smtp: tuple[Mailbox, int], webhook: WebhookServer
) -> None:
    mailbox, port = smtp
    summary, context = run_failing_file(
        tmp_path,
        {
            "email_to": "ops@example.org",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "webhook_url": f"http://127.0.0.1:{webhook.server_address[1]}/",
        },
    )
    try:
        [(recipients, content, over_tls)] = mailbox.messages
        assert recipients == ["ops@example.org"] and not over_tls
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert message["Subject"] == DQ_FAILURE_SUBJECT
        body = message.get_content()
        assert SPEC_MESSAGE + summary["input_storage_location"] in body
        assert len(webhook.requests) == 1
        channels = [n["channel"] for n in context.database.notifications(summary["root_id"])]
        assert channels == ["log", "email", "webhook"]
    finally:
        context.close()


def test_email_with_login(tmp_path: Path) -> None:
    mailbox = Mailbox()
    controller, port = start_smtp(mailbox, authenticator=authenticator, auth_require_tls=False)
    try:
        settings = {"email_to": "ops@example.org", "smtp_host": "127.0.0.1", "smtp_port": port}
        summary, context = run_failing_file(
            tmp_path / "good", {**settings, "smtp_user": "ops", "smtp_password": "s3cret"}
        )
        assert len(mailbox.messages) == 1
        assert recorded(context, summary, "email")[0]["delivered"] == 1
        context.close()

        summary, context = run_failing_file(
            tmp_path / "bad", {**settings, "smtp_user": "ops", "smtp_password": "wrong"}
        )
        [row] = recorded(context, summary, "email")
        assert row["delivered"] == 0
        assert "refused the login of 'ops'" in row["error"] and "not retried" in row["error"]
        assert "wrong" not in row["error"]
        assert len(mailbox.messages) == 1
        context.close()
    finally:
        controller.stop()


@pytest.fixture
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_email_over_starttls_with_login(
    tmp_path: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller, port = start_smtp(
        mailbox, tls_context=tls, require_starttls=True, authenticator=authenticator
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the throw-away certificate
    try:
        summary, context = run_failing_file(
            tmp_path,
            {
                "email_to": "ops@example.org",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_starttls": True,
                "smtp_user": "ops",
                "smtp_password": "s3cret",
            },
        )
        [(_, _, over_tls)] = mailbox.messages
        assert over_tls
        assert recorded(context, summary, "email")[0]["delivered"] == 1
        context.close()
    finally:
        controller.stop()


def test_starttls_asked_of_a_server_without_it(tmp_path: Path, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    summary, context = run_failing_file(
        tmp_path,
        {"email_to": "a@example.org", "smtp_host": "127.0.0.1", "smtp_port": port}
        | {"smtp_starttls": "true"},
    )
    try:
        [row] = recorded(context, summary, "email")
        assert row["delivered"] == 0 and "does not support STARTTLS" in row["error"]
        assert mailbox.messages == []
    finally:
        context.close()


@pytest.mark.parametrize(
    ("reply", "attempts_seen"),
    [("451 4.3.0 try again later", "after 2 attempts"), ("554 5.7.1 rejected", "not retried")],
)
def test_smtp_temporary_errors_are_retried_permanent_ones_not(
    tmp_path: Path, smtp: tuple[Mailbox, int], reply: str, attempts_seen: str
) -> None:
    mailbox, port = smtp
    mailbox.reply = reply
    summary, context = run_failing_file(
        tmp_path,
        {"email_to": "a@example.org", "smtp_host": "127.0.0.1", "smtp_port": port}
        | {"retry_attempts": 2},
    )
    try:
        [row] = recorded(context, summary, "email")
        assert row["delivered"] == 0
        assert reply.split()[0] in row["error"] and attempts_seen in row["error"]
    finally:
        context.close()


# -- settings ------------------------------------------------------------------------------


def test_notify_settings_from_environment(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        environ={
            "CARBONLAKE_NOTIFY__SMTP_STARTTLS": "yes",
            "CARBONLAKE_NOTIFY__SMTP_USER": "ops",
            "CARBONLAKE_NOTIFY__SMTP_PASSWORD": "pw",
            "CARBONLAKE_NOTIFY__WEBHOOK_URL": "https://hooks.example.org/x",
            "CARBONLAKE_NOTIFY__RETRY_ATTEMPTS": "5",
        },
    )
    notify = settings.notify
    assert notify.smtp_starttls is True
    assert (notify.smtp_user, notify.smtp_password) == ("ops", "pw")
    assert notify.webhook_url == "https://hooks.example.org/x"
    assert notify.retry_attempts == 5


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SMTP_STARTTLS", "maybe", "[notify] smtp_starttls"),
        ("WEBHOOK_URL", "ftp://example.org/x", "must start with http"),
        ("RETRY_ATTEMPTS", "0", "at least 1"),
        ("RETRY_BACKOFF_S", "-1", "must not be negative"),
        ("SMTP_PASSWORD", "pw", "smtp_user is not"),
        ("EMAIL_TO", "a@example.org\nBcc: b@example.org", "must be one line"),
    ],
)
def test_bad_notify_settings_are_refused(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(tmp_path, environ={f"CARBONLAKE_NOTIFY__{key}": value})
    assert message in str(info.value)


def test_webhook_credentials_in_the_url_are_sent_as_basic_auth_and_never_recorded(
    tmp_path: Path, webhook: WebhookServer
) -> None:
    webhook.statuses = [401]
    url = f"http://user:pa55@127.0.0.1:{webhook.server_address[1]}/hook"
    summary, context = run_failing_file(tmp_path, {"webhook_url": url})
    try:
        [(headers, _)] = webhook.requests
        assert headers["Authorization"] == "Basic " + base64.b64encode(b"user:pa55").decode()
        [row] = recorded(context, summary, "webhook")
        assert "HTTP 401" in row["error"]
        assert "pa55" not in row["error"] and "user" not in row["error"]
    finally:
        context.close()


def test_whatever_a_channel_raises_is_recorded_not_raised(smtp: tuple[Mailbox, int]) -> None:
    """Settings refuse a line break in an address; were one to get through, the run goes on."""
    mailbox, port = smtp
    settings = NotifySettings(
        email_to="bad\nheader@example.org", smtp_host="127.0.0.1", smtp_port=port
    )
    event = {"subject": DQ_FAILURE_SUBJECT, "message": "m"}
    [delivery] = deliver(event, settings)
    assert (delivery.channel, delivery.delivered) == ("email", False)
    assert delivery.error is not None and "ValueError" in delivery.error
    assert mailbox.messages == []
