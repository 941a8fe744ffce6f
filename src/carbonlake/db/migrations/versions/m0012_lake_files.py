"""The data lake (issue 16): the results live in the Apache Iceberg table ``emissions``
(docs/lake.md); the database keeps its file registry, written in the same transaction as
a map group's checkpoint and brought up to the table's file set after each commit: state
``pending`` (registered, not yet committed), ``current`` (in the table's current
snapshot) or ``removed`` (no longer; when, and by which root's commit).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lake_files",
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("file_path", sa.Text, nullable=False),
        sa.Column("root_id", sa.Text),
        sa.Column("execution_id", sa.Text),
        sa.Column("record_count", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("snapshot_id", sa.Text),
        sa.Column("registered_at", sa.Text, nullable=False),
        sa.Column("removed_at", sa.Text),
        sa.Column("removed_by_root", sa.Text),
        sa.Column("removed_by_execution", sa.Text),
        sa.PrimaryKeyConstraint("table_name", "file_path"),
    )
    op.create_index("lake_files_state", "lake_files", ["table_name", "state", "execution_id"])
