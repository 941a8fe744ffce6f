"""Performance (issue 7): the index on enriched_location cost a tenth of every results
insert; the one reader that needed it looks records up by primary key instead.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("emissions_location", table_name="emissions")
