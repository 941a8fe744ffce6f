"""Reliability (issue 17): which root's results replaced a result of another root.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("emissions_history", sa.Column("superseded_by_root", sa.Text))
    op.create_index("emissions_history_by_root", "emissions_history", ["superseded_by_root"])
