"""Error notification: the spec's SNS message, logged, recorded and e-mailed.

Every notification is logged and recorded in the database. It is also e-mailed
over SMTP when ``[notify] email_to`` and ``smtp_host`` are set. A channel that
is down is recorded as undelivered; it never stops the pipeline.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any

from ._exceptions import InputDataError
from .database import Database
from .settings import NotifySettings

log = logging.getLogger("carbonlake.notify")

DQ_FAILURE_SUBJECT = "Data Quality check failed"


def dq_failure_message(landing_location: str, failed_rules: list[str] | None = None) -> str:
    """The spec's message naming the file, followed by the failed rules."""
    message = (
        "Your Carbonlake Data Quality job has failed. "
        f"Please review your dataset: {landing_location}"
    )
    if failed_rules:
        message += "\n\nFailed rules:\n" + "\n".join(f"- {name}" for name in failed_rules)
    return message


def send(
    event: dict[str, Any],
    *,
    settings: NotifySettings,
    database: Database,
    root_id: str | None = None,
) -> dict[str, Any]:
    """Send ``{"subject", "message"}``; returns the event unchanged, as the spec's task does."""
    subject = event.get("subject")
    message = event.get("message")
    if not subject or not message:
        raise InputDataError("a notification needs 'subject' and 'message'")
    log.warning("%s: %s", subject, message)
    database.record_notification(root_id, "log", subject, message, True, None)
    if settings.email_to and settings.smtp_host:
        delivered, error = _send_email(settings, subject, message)
        database.record_notification(root_id, "email", subject, message, delivered, error)
        if not delivered:
            log.error("notification e-mail to %s not delivered: %s", settings.email_to, error)
    return event


def _send_email(settings: NotifySettings, subject: str, body: str) -> tuple[bool, str | None]:
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = settings.email_from
    mail["To"] = settings.email_to
    mail.set_content(body)
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        ) as smtp:
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, None
