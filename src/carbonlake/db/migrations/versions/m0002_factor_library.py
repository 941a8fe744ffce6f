"""Factor library, AR6, unit conversion and result history (issue 3).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "factor_sets",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("factor_count", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    op.create_table(
        "factors",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("scope", sa.BigInteger),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("activity", sa.Text, nullable=False),
        sa.Column("unit", sa.Text, nullable=False),
        sa.Column("co2_kg_per_unit", sa.Float),
        sa.Column("ch4_kg_per_unit", sa.Float),
        sa.Column("n2o_kg_per_unit", sa.Float),
        sa.Column("stated_ar4_kgco2e_per_unit", sa.Float),
        sa.Column("stated_ar5_kgco2e_per_unit", sa.Float),
        sa.Column("source", sa.Text),
        sa.PrimaryKeyConstraint("name", "version", "category", "activity"),
    )
    op.add_column("emissions", sa.Column("co2e_ar6_tonnes", sa.Float))
    op.add_column("emissions", sa.Column("ar6_kgco2e_per_unit", sa.Float))
    op.add_column("emissions", sa.Column("quantity_used", sa.Float))
    op.add_column("emissions", sa.Column("quantity_unit", sa.Text))
    op.add_column("emissions", sa.Column("lineage_node_id", sa.Text))
    # The history has every column of the results (no keys, no constraints).
    op.execute("CREATE TABLE emissions_history AS SELECT * FROM emissions WHERE 1 = 0")
    op.add_column("emissions_history", sa.Column("superseded_at", sa.Text))
    op.create_index("emissions_history_record", "emissions_history", ["activity_event_id"])
