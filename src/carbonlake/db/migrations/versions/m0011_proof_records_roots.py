"""Proofs of one record (issue 16): the records Merkle roots of enriched files, computed
when a digest or proof first needs them (carbonlake.lineage.proof), keyed by the file and
the SHA-256 its ledger nodes recorded. A cache: it can be emptied.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proof_records_roots",
        sa.Column("storage_location", sa.Text, nullable=False),
        sa.Column("object_sha256", sa.Text, nullable=False),
        sa.Column("record_count", sa.Integer, nullable=False),
        sa.Column("records_root", sa.Text, nullable=False),
        sa.Column("computed_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("storage_location", "object_sha256"),
    )
