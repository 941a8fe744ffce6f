"""Error notification: the spec's SNS message, logged, recorded, e-mailed and posted.

Every notification is logged and recorded in the database (channel ``log``).
It is also sent on each configured channel:

- ``email``: SMTP to ``[notify] email_to`` via ``smtp_host``/``smtp_port``, with
  optional STARTTLS and login (``smtp_starttls``, ``smtp_user``, ``smtp_password``);
- ``webhook``: a JSON POST of the event to ``[notify] webhook_url``.

A channel that fails with a transient error (refused or dropped connection,
timeout, SMTP 4xx, HTTP 408/429/5xx) is tried ``retry_attempts`` times with a
doubling wait from ``retry_backoff_s``; a permanent error (bad login, refused
recipient, HTTP 4xx, TLS failure) is not retried. Either way the outcome is
recorded per channel with the reason, and logged; a channel that is down never
loses the file or stops the pipeline.
"""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ._exceptions import (
    InputDataError,
    NotificationError,
    NotificationUnavailable,
)
from ._retry import Attempts, backoff
from .database import Database
from .documents import NotificationEvent
from .settings import NotifySettings

log = logging.getLogger("carbonlake.notify")

DQ_FAILURE_SUBJECT = "Data Quality check failed"
USER_AGENT = "carbonlake-notify/1"


def dq_failure_message(
    landing_location: str,
    failed_rules: list[str] | None = None,
    *,
    reasons: dict[str, str | None] | None = None,
    report_location: str | None = None,
) -> str:
    """The spec's message naming the file, followed by the failed rules and their reasons."""
    message = (
        "Your Carbonlake Data Quality job has failed. "
        f"Please review your dataset: {landing_location}"
    )
    if failed_rules:
        lines = []
        for name in failed_rules:
            reason = (reasons or {}).get(name)
            lines.append(f"- {name}" + (f": {reason}" if reason else ""))
        message += "\n\nFailed rules:\n" + "\n".join(lines)
    if report_location:
        message += f"\n\nFull report: {report_location}"
    return message


@dataclass(frozen=True)
class Delivery:
    """The outcome of one channel."""

    channel: str
    delivered: bool
    attempts: int
    error: str | None = None


def send(
    event: NotificationEvent,
    *,
    settings: NotifySettings,
    database: Database,
    root_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> NotificationEvent:
    """Send ``{"subject", "message"}``; returns the event unchanged, as the spec's task does.

    Extra keys of the event (``storage_location``, ``failed_rules``, ...) go into
    the webhook's JSON as they are.
    """
    subject = event.get("subject")
    message = event.get("message")
    if not subject or not message:
        raise InputDataError("a notification needs 'subject' and 'message'")
    log.warning("%s: %s", subject, message)
    database.record_notification(root_id, "log", subject, message, True, None)
    for delivery in deliver(event, settings, root_id=root_id, sleep=sleep):
        database.record_notification(
            root_id, delivery.channel, subject, message, delivery.delivered, delivery.error
        )
        if not delivery.delivered:
            log.error("notification by %s not delivered: %s", delivery.channel, delivery.error)
    return event


def deliver(
    event: NotificationEvent,
    settings: NotifySettings,
    *,
    root_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send the event on every configured channel; one Delivery per channel."""
    deliveries = []
    if settings.email_to and settings.smtp_host:
        deliveries.append(
            _with_retries("email", lambda: _send_email(settings, event), settings, sleep)
        )
    if settings.webhook_url:
        payload = {**event, "root_id": root_id}
        deliveries.append(
            _with_retries("webhook", lambda: _post_webhook(settings, payload), settings, sleep)
        )
    return deliveries


def _with_retries(
    channel: str,
    attempt: Callable[[], None],
    settings: NotifySettings,
    sleep: Callable[[float], None],
) -> Delivery:
    def retrying(number: int, delay: float, exc: BaseException) -> None:
        log.info("%s attempt %d failed (%s); retrying", channel, number, exc)

    attempts = Attempts(backoff(settings.retry_attempts, settings.retry_backoff_s), retrying, sleep)
    try:
        attempts.run(attempt)
    except NotificationUnavailable as exc:
        return Delivery(
            channel, False, attempts.number, f"{exc} (after {attempts.number} attempts)"
        )
    except NotificationError as exc:
        return Delivery(channel, False, attempts.number, f"{exc} (not retried)")
    except Exception as exc:
        # A notification must never stop the pipeline: whatever a channel raises is
        # recorded as undelivered (and logged with its traceback for a bug report).
        log.exception("%s channel failed unexpectedly", channel)
        return Delivery(channel, False, attempts.number, f"unexpected {type(exc).__name__}: {exc}")
    return Delivery(channel, True, attempts.number)


# -- e-mail -------------------------------------------------------------------------------


def _send_email(settings: NotifySettings, event: NotificationEvent) -> None:
    mail = EmailMessage()
    mail["Subject"] = str(event["subject"])
    mail["From"] = settings.email_from
    mail["To"] = settings.email_to
    mail["Message-ID"] = make_msgid(domain="carbonlake")
    mail.set_content(str(event["message"]))
    server = f"SMTP server {settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(mail)
    except smtplib.SMTPNotSupportedError as exc:
        raise NotificationError(
            f"{server} does not support {'STARTTLS' if settings.smtp_starttls else 'login'}: "
            f"{exc}; check [notify] smtp_starttls and smtp_user"
        ) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise NotificationError(
            f"{server} refused the login of {settings.smtp_user!r} ({exc.smtp_code}); "
            "check [notify] smtp_user and smtp_password"
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        error = f"{server} refused the recipient {settings.email_to!r} ({codes[0]})"
        raise (
            NotificationUnavailable(error)
            if all(400 <= c < 500 for c in codes)
            else NotificationError(error)
        ) from exc
    except smtplib.SMTPResponseException as exc:
        error = f"{server} answered {exc.smtp_code} {_decode(exc.smtp_error)}"
        raise (
            NotificationUnavailable(error)
            if 400 <= exc.smtp_code < 500
            else NotificationError(error)
        ) from exc
    except ssl.SSLError as exc:
        raise NotificationError(f"TLS with {server} failed: {exc}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise NotificationUnavailable(f"{server}: {type(exc).__name__}: {exc}") from exc


def _decode(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# -- webhook -------------------------------------------------------------------------------


def _post_webhook(settings: NotifySettings, payload: dict[str, Any]) -> None:
    parts = urlsplit(settings.webhook_url)
    # Only scheme and host in messages: the path of a webhook URL is often its secret.
    where = f"webhook {parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    url = settings.webhook_url
    if parts.username is not None:  # https://user:password@host/... means HTTP basic auth
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.webhook_timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        error = f"{where} answered HTTP {exc.code} {exc.reason}"
        transient = exc.code in (408, 425, 429) or exc.code >= 500
        raise (NotificationUnavailable(error) if transient else NotificationError(error)) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise NotificationError(f"TLS with {where} failed: {exc.reason}") from exc
        raise NotificationUnavailable(f"{where}: {exc.reason}") from exc
    except OSError as exc:
        raise NotificationUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:
        raise NotificationError(f"{where}: {exc}; check [notify] webhook_url") from exc
