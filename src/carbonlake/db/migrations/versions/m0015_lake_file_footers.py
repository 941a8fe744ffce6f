"""The data lake: each registered file's size and Parquet footer (as the writer had them),
so the table commit builds the file's Iceberg statistics without reading the file back
(NULL: not known, the commit reads the file).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lake_files", sa.Column("file_size", sa.BigInteger))
    op.add_column("lake_files", sa.Column("footer", sa.LargeBinary))
