"""Durable executions (issue 6): who runs an execution, which object it is for, each
completed state's output (checkpoints) and the event history.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("executions", sa.Column("object_key", sa.Text))
    op.add_column("executions", sa.Column("object_sha256", sa.Text))
    op.add_column("executions", sa.Column("owner", sa.Text))
    op.add_column(
        "executions",
        sa.Column("redrive_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.create_index("executions_object", "executions", ["object_key", "object_sha256"])
    op.create_index("executions_name", "executions", ["name"])
    op.create_index("executions_status", "executions", ["status", "started_at"])
    op.create_table(
        "execution_states",
        sa.Column("execution_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("output_json", sa.Text, nullable=False),
        sa.Column("completed_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "state"),
    )
    op.create_table(
        "execution_events",
        sa.Column("event_id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("state", sa.Text),
        sa.Column("details_json", sa.Text),
        sa.Column("at", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("execution_events_execution", "execution_events", ["execution_id", "event_id"])
