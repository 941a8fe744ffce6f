"""Performance (issue 7): nothing looks nodes up by parent; the per-root groupings by
parent (lineage tree, archive) read the root through lineage_root instead, and every
record node no longer pays for a third index (a fifth of the ledger insert).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("lineage_parent", table_name="lineage")
