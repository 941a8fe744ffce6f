"""The lineage ledger: one node per file, batch and record, hash-chained."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .base import Part, table, utc_now
from .engine import LINEAGE_CACHE_KIB, Engine

LINEAGE_COLUMNS = (
    "root_id",
    "node_id",
    "parent_id",
    "action_taken",
    "storage_location",
    "recorded_at",
    "object_sha256",
    "row_number",
    "node_hash",
    "parent_hash",
)

LINEAGE = table("lineage", LINEAGE_COLUMNS)
RECORDS_ROOT_COLUMNS = (
    "storage_location",
    "object_sha256",
    "record_count",
    "records_root",
    "computed_at",
)
RECORDS_ROOTS = table("proof_records_roots", RECORDS_ROOT_COLUMNS)
_SELECT = f"SELECT {', '.join(LINEAGE_COLUMNS)} FROM lineage"
_READING = "reading the lineage ledger of {db} failed"


def insert_lineage_rows(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert nodes (sequences in LINEAGE_COLUMNS order) inside the caller's transaction."""
    if rows:
        Engine.executemany(conn, sa.insert(LINEAGE), LINEAGE_COLUMNS, rows)


class Ledger(Part):
    """Lineage nodes."""

    def insert_lineage(self, nodes: Iterable[Sequence[Any]]) -> int:
        """Insert lineage nodes (tuples in LINEAGE_COLUMNS order) in one transaction."""
        rows = list(nodes)
        if not rows:
            return 0

        def unique(reason: str) -> str:
            return (
                f"a lineage node already exists for one of {len(rows)} nodes "
                f"(first: root_id {rows[0][0]}, node_id {rows[0][1]}): {reason}. "
                "Record ids (activity_event_id) must be unique within a file."
            )

        with self._engine.transaction(unique) as conn:
            if not self._engine.is_postgres:
                # Record ids are random keys: a larger page cache keeps the unique index's
                # pages in memory while a big batch goes in (SQLite's default is 2 MiB).
                conn.exec_driver_sql(f"PRAGMA cache_size = -{LINEAGE_CACHE_KIB}")
            insert_lineage_rows(conn, rows)
        return len(rows)

    def lineage_node(self, root_id: str, node_id: str) -> dict[str, Any] | None:
        """One ledger node, or None."""
        rows = self._engine.dicts(
            f"{_SELECT} WHERE root_id = :root_id AND node_id = :node_id",
            {"root_id": root_id, "node_id": node_id},
        )
        return rows[0] if rows else None

    def lineage_roots_of_node(self, node_id: str) -> list[str]:
        """The root_ids under which a node_id appears."""
        rows = self._engine.rows(
            "SELECT DISTINCT root_id FROM lineage WHERE node_id = :node_id", {"node_id": node_id}
        )
        return [row[0] for row in rows]

    def lineage_nodes_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """``(root_id, node_id)`` of the nodes whose node_id starts with ``prefix``, oldest
        first (a range on the unique index, not a scan)."""
        rows = self._engine.rows(
            "SELECT root_id, node_id FROM lineage WHERE node_id >= :low AND node_id < :high "
            "ORDER BY seq",
            {"low": prefix, "high": prefix + "\U0010ffff"},
        )
        return [(row[0], row[1]) for row in rows]

    def lineage_of_root(self, root_id: str) -> list[dict[str, Any]]:
        """Every node of one root, in insertion order."""
        return self._engine.dicts(
            f"{_SELECT} WHERE root_id = :root_id ORDER BY seq", {"root_id": root_id}
        )

    def lineage_nodes(self, root_id: str, node_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Several nodes of one root, by node id (in no particular order)."""
        rows = self._engine.rows_in(
            f"{_SELECT} WHERE root_id = :root_id AND node_id IN :ids",
            "ids",
            node_ids,
            {"root_id": root_id},
        )
        return [dict(row._mapping) for row in rows]

    def iter_lineage(
        self,
        root_id: str | None = None,
        *,
        actions: Sequence[str] = (),
        exclude_actions: Sequence[str] = (),
        chunk: int = 20_000,
    ) -> Iterator[tuple[Any, ...]]:
        """Ledger rows as tuples ``(seq, *LINEAGE_COLUMNS)`` in insertion order, streamed.

        Optionally only one root, only some actions, or all but some actions.
        """
        where: list[str] = []
        params: dict[str, Any] = {}
        if root_id is not None:
            where.append("root_id = :root_id")
            params["root_id"] = root_id
        if actions:
            marks = [f":a{i}" for i in range(len(actions))]
            where.append(f"action_taken IN ({', '.join(marks)})")
            params.update({m[1:]: a for m, a in zip(marks, actions, strict=True)})
        if exclude_actions:
            marks = [f":x{i}" for i in range(len(exclude_actions))]
            where.append(f"action_taken NOT IN ({', '.join(marks)})")
            params.update({m[1:]: a for m, a in zip(marks, exclude_actions, strict=True)})
        sql = f"SELECT seq, {', '.join(LINEAGE_COLUMNS)} FROM lineage"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        yield from self._engine.stream(sql, params, chunk, _READING)

    def iter_lineage_hashes(self, limit: int | None = None) -> Iterator[str | None]:
        """The ledger's ``node_hash`` values in insertion order (the first ``limit`` only)."""
        sql = "SELECT node_hash FROM lineage ORDER BY seq"
        params: dict[str, Any] = {}
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        for row in self._engine.stream(sql, params, 50_000, _READING):
            yield row[0]

    def lineage_size(self) -> int:
        """How many nodes the ledger holds."""
        return int(self._engine.scalar("SELECT count(*) FROM lineage"))

    def lineage_child_counts(self, root_id: str) -> list[tuple[str, str, int]]:
        """``(parent_id, action_taken, count)`` of the nodes of one root."""
        rows = self._engine.rows(
            "SELECT parent_id, action_taken, count(*) FROM lineage WHERE root_id = :root_id "
            "GROUP BY parent_id, action_taken",
            {"root_id": root_id},
        )
        return [(row[0], row[1], int(row[2])) for row in rows]

    def lineage_first_children(
        self, root_id: str, actions: Sequence[str], per_parent: int
    ) -> list[dict[str, Any]]:
        """The first ``per_parent`` nodes with one of ``actions`` under each parent of a root."""
        if not actions or per_parent <= 0:
            return []
        # The root's nodes in order through the (root_id, seq) index, keeping the first
        # few of each parent, then those rows by sequence number: no index by parent is
        # kept (it cost every record node's insert), and a window over the root sorted
        # by parent took twice as long.
        marks = [f"a{i}" for i in range(len(actions))]
        taken: dict[str, int] = {}
        wanted: list[int] = []
        for seq, parent in self._engine.stream(
            "SELECT seq, parent_id FROM lineage WHERE root_id = :root_id "
            f"AND action_taken IN ({', '.join(':' + m for m in marks)}) ORDER BY seq",
            {"root_id": root_id, **dict(zip(marks, actions, strict=True))},
            50_000,
            _READING,
        ):
            count = taken.get(parent, 0)
            if count < per_parent:
                taken[parent] = count + 1
                wanted.append(seq)
        rows = self._engine.rows_in(f"{_SELECT} WHERE seq IN :seqs ORDER BY seq", "seqs", wanted)
        return [dict(row._mapping) for row in rows]

    def lineage_record_groups(self, root_id: str, actions: Sequence[str]) -> list[dict[str, Any]]:
        """Nodes of one root with one of ``actions``, grouped by parent, action, location and
        object hash: ``{parent_id, action_taken, storage_location, object_sha256, nodes,
        first_recorded_at, last_recorded_at}`` in the order they were recorded."""
        if not actions:
            return []
        marks = [f"a{i}" for i in range(len(actions))]
        return self._engine.dicts(
            "SELECT parent_id, action_taken, storage_location, object_sha256, count(*) AS nodes, "
            "min(recorded_at) AS first_recorded_at, max(recorded_at) AS last_recorded_at "
            "FROM lineage WHERE root_id = :root_id "
            f"AND action_taken IN ({', '.join(':' + m for m in marks)}) "
            "GROUP BY parent_id, action_taken, storage_location, object_sha256 ORDER BY min(seq)",
            {"root_id": root_id, **dict(zip(marks, actions, strict=True))},
        )

    # -- the records roots of enriched files (lineage proofs' cache) --------------------

    def records_roots(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, str]]:
        """Cached ``(record_count, records_root)`` of enriched files, by ``(storage_location,
        object_sha256)`` (those of ``keys`` that were computed before)."""
        wanted = set(keys)
        rows = self._engine.rows_in(
            "SELECT storage_location, object_sha256, record_count, records_root "
            "FROM proof_records_roots WHERE storage_location IN :locations",
            "locations",
            sorted({location for location, _ in wanted}),
        )
        return {
            (row[0], row[1]): (int(row[2]), str(row[3]))
            for row in rows
            if (row[0], row[1]) in wanted
        }

    def save_records_roots(self, rows: Sequence[tuple[str, str, int, str]]) -> None:
        """Cache ``(storage_location, object_sha256, record_count, records_root)`` of
        enriched files (a row already there is kept: it is a function of the bytes)."""
        if not rows:
            return
        now = utc_now()
        statement = self._engine.insert(RECORDS_ROOTS).on_conflict_do_nothing(
            index_elements=["storage_location", "object_sha256"]
        )
        with self._engine.transaction() as conn:
            Engine.executemany(conn, statement, RECORDS_ROOT_COLUMNS, [(*row, now) for row in rows])
