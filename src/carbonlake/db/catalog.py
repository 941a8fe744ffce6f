"""Facts about the workspace itself (``workspace_meta``)."""

from __future__ import annotations

import sqlalchemy as sa

from .base import Part, table

WORKSPACE_META = table("workspace_meta", ("key", "value"))


class Catalog(Part):
    """The workspace's own facts."""

    def first_storage_root(self, current: str) -> str:
        """The storage root URL the workspace's locations were first written under; records
        ``current`` as that root when none is recorded yet."""
        insert = self._engine.insert(WORKSPACE_META)
        with self._engine.transaction() as conn:
            conn.execute(
                insert.on_conflict_do_nothing(index_elements=["key"]),
                {"key": "storage_root", "value": current},
            )
        return str(
            self._engine.scalar(
                sa.text("SELECT value FROM workspace_meta WHERE key = 'storage_root'")
            )
        )
