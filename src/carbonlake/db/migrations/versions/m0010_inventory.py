"""A GHG Protocol inventory (issue 14).

Factor attributes (biogenic CO2, methane basis, scope 2 method, scope 3 category, the
original's provenance fields), the same on each result, and the records that could not
be calculated, so totals can say what they leave out.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("factors", sa.Column("biogenic_co2_kg_per_unit", sa.Float))
    op.add_column("factors", sa.Column("ch4_basis", sa.Text))
    op.add_column("factors", sa.Column("scope2_method", sa.Text))
    op.add_column("factors", sa.Column("scope3_category", sa.BigInteger))
    op.add_column("factors", sa.Column("source_origin", sa.Text))
    op.add_column("factors", sa.Column("last_updated", sa.Text))
    op.add_column("factors", sa.Column("notes", sa.Text))
    op.add_column("factors", sa.Column("original_fields", sa.Text))
    for table in ("emissions", "emissions_history"):
        op.add_column(table, sa.Column("scope2_method", sa.Text))
        op.add_column(table, sa.Column("scope3_category", sa.BigInteger))
        op.add_column(table, sa.Column("biogenic_co2_tonnes", sa.Float))
        op.add_column(table, sa.Column("ch4_basis", sa.Text))
        op.add_column(table, sa.Column("ar6_ch4_gwp", sa.Float))
    op.create_table(
        "calculation_failures",
        sa.Column("failure_key", sa.Text, primary_key=True),
        sa.Column("root_id", sa.Text, nullable=False),
        sa.Column("execution_id", sa.Text),
        sa.Column("activity_event_id", sa.Text),
        sa.Column("node_id", sa.Text, nullable=False),
        sa.Column("asset_id", sa.Text),
        sa.Column("scope", sa.BigInteger),
        sa.Column("category", sa.Text),
        sa.Column("activity", sa.Text),
        sa.Column("origin_measurement_timestamp", sa.Text),
        sa.Column("raw_data", sa.Text),
        sa.Column("units", sa.Text),
        sa.Column("reason_code", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("failed_at", sa.Text, nullable=False),
    )
    op.create_index("calculation_failures_root", "calculation_failures", ["root_id"])
