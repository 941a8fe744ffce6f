"""The first schema: executions, the lineage ledger, results, DQ resources, notifications.

Revision ID: 0001
Revises: -
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""An autoincrementing key: INTEGER PRIMARY KEY AUTOINCREMENT on SQLite, BIGSERIAL on
PostgreSQL."""


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("execution_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("root_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("input_json", sa.Text, nullable=False),
        sa.Column("output_json", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("stopped_at", sa.Text),
    )
    op.create_index("executions_root", "executions", ["root_id"])
    op.create_table(
        "lineage",
        sa.Column("seq", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("root_id", sa.Text, nullable=False),
        sa.Column("node_id", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text, nullable=False),
        sa.Column("action_taken", sa.Text, nullable=False),
        sa.Column("storage_location", sa.Text),
        sa.Column("recorded_at", sa.Text, nullable=False),
        sa.UniqueConstraint("root_id", "node_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("lineage_node", "lineage", ["node_id"])
    op.create_index("lineage_parent", "lineage", ["root_id", "parent_id"])
    op.create_table(
        "emissions",
        sa.Column("activity_event_id", sa.Text, primary_key=True),
        sa.Column("root_id", sa.Text, nullable=False),
        sa.Column("execution_id", sa.Text),
        sa.Column("asset_id", sa.Text),
        sa.Column("scope", sa.BigInteger),
        sa.Column("category", sa.Text),
        sa.Column("activity", sa.Text),
        sa.Column("origin_measurement_timestamp", sa.Text),
        sa.Column("raw_data", sa.Float),
        sa.Column("units", sa.Text),
        sa.Column("co2_tonnes", sa.Float, nullable=False),
        sa.Column("ch4_tonnes", sa.Float, nullable=False),
        sa.Column("n2o_tonnes", sa.Float, nullable=False),
        sa.Column("co2e_ar4_tonnes", sa.Float, nullable=False),
        sa.Column("co2e_ar5_tonnes", sa.Float, nullable=False),
        sa.Column("factor_id", sa.Text, nullable=False),
        sa.Column("factor_set", sa.Text, nullable=False),
        sa.Column("factor_version", sa.Text, nullable=False),
        sa.Column("ar4_kgco2e_per_unit", sa.Float, nullable=False),
        sa.Column("ar5_kgco2e_per_unit", sa.Float, nullable=False),
        sa.Column("enriched_location", sa.Text, nullable=False),
        sa.Column("calculated_at", sa.Text, nullable=False),
    )
    op.create_index("emissions_root", "emissions", ["root_id"])
    op.create_index("emissions_location", "emissions", ["enriched_location"])
    op.create_table(
        "dq_resources",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("arn", sa.Text, nullable=False),
        sa.Column("root_id", sa.Text, nullable=False),
        sa.Column("details_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("notification_id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("root_id", sa.Text),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
