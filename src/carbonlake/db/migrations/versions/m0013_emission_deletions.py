"""The data lake (issue 16): an admin deletion is an Iceberg delete; who deleted which
result (record id and the deleted result's calculated_at), when and why stays here.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emission_deletions",
        sa.Column("activity_event_id", sa.Text, nullable=False),
        sa.Column("root_id", sa.Text, nullable=False),
        sa.Column("calculated_at", sa.Text, nullable=False),
        sa.Column("deleted_at", sa.Text, nullable=False),
        sa.Column("deleted_by", sa.Text, nullable=False),
        sa.Column("deletion_reason", sa.Text, nullable=False),
        sa.Column("deletion_node_id", sa.Text, nullable=False),
    )
    op.create_index("emission_deletions_record", "emission_deletions", ["activity_event_id"])
