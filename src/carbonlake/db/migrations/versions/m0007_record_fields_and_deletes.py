"""The original's record fields and admin deletes (issue 15): each record's geo and
source; a result that an admin deleted moves to the history with who and why.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("emissions", "emissions_history"):
        op.add_column(table, sa.Column("geo_lat", sa.Float))
        op.add_column(table, sa.Column("geo_long", sa.Float))
        op.add_column(table, sa.Column("source", sa.Text))
    op.add_column("emissions_history", sa.Column("deleted_by", sa.Text))
    op.add_column("emissions_history", sa.Column("deletion_reason", sa.Text))
    op.add_column("emissions_history", sa.Column("deletion_node_id", sa.Text))
