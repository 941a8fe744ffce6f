"""Verifiable lineage (issue 5).

The object's SHA-256 when the node was written, the record's row number in the input
file, and the node's hash chained to its parent's. The table is rebuilt so that one
unique index, (node_id, root_id), serves lookups by record id and by (root, node):
indexing a million random record ids twice cost more than everything else of writing
their nodes. (root_id, seq) streams a root in order.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "lineage_v3",
        sa.Column("seq", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("root_id", sa.Text, nullable=False),
        sa.Column("node_id", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text, nullable=False),
        sa.Column("action_taken", sa.Text, nullable=False),
        sa.Column("storage_location", sa.Text),
        sa.Column("recorded_at", sa.Text, nullable=False),
        sa.Column("object_sha256", sa.Text),
        sa.Column("row_number", sa.BigInteger),
        sa.Column("node_hash", sa.Text),
        sa.Column("parent_hash", sa.Text),
        sa.UniqueConstraint("node_id", "root_id"),
        sqlite_autoincrement=True,
    )
    op.execute(
        "INSERT INTO lineage_v3 "
        "(seq, root_id, node_id, parent_id, action_taken, storage_location, recorded_at) "
        "SELECT seq, root_id, node_id, parent_id, action_taken, storage_location, recorded_at "
        "FROM lineage ORDER BY seq"
    )
    if op.get_bind().dialect.name == "postgresql":
        # The copied keys were given explicitly: the next key follows the largest.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('lineage_v3', 'seq'), "
            "coalesce(max(seq), 0) + 1, false) FROM lineage_v3"
        )
    op.drop_table("lineage")
    op.rename_table("lineage_v3", "lineage")
    op.create_index("lineage_parent", "lineage", ["root_id", "parent_id"])
    op.create_index("lineage_root", "lineage", ["root_id", "seq"])
