"""The data lake: each registered file's smallest and largest record id, so a lookup of
one record reads only the files whose range holds it (NULL: not known, always read).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lake_files", sa.Column("min_record_id", sa.Text))
    op.add_column("lake_files", sa.Column("max_record_id", sa.Text))
