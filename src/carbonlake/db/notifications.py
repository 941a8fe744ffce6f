"""The record of notifications sent (or that could not be)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .base import Part, table, utc_now

NOTIFICATIONS = table(
    "notifications",
    ("root_id", "channel", "subject", "message", "delivered", "error", "created_at"),
)


class Notifications(Part):
    """Notifications."""

    def record_notification(
        self,
        root_id: str | None,
        channel: str,
        subject: str,
        message: str,
        delivered: bool,
        error: str | None,
    ) -> None:
        """Record that a notification was sent (or could not be)."""
        with self._engine.transaction() as conn:
            conn.execute(
                sa.insert(NOTIFICATIONS).values(
                    root_id=root_id,
                    channel=channel,
                    subject=subject,
                    message=message,
                    delivered=int(delivered),
                    error=error,
                    created_at=utc_now(),
                )
            )

    def notifications(self, root_id: str | None = None) -> list[dict[str, Any]]:
        """Recorded notifications, oldest first."""
        if root_id is None:
            return self._engine.dicts("SELECT * FROM notifications ORDER BY notification_id")
        return self._engine.dicts(
            "SELECT * FROM notifications WHERE root_id = :root_id ORDER BY notification_id",
            {"root_id": root_id},
        )
