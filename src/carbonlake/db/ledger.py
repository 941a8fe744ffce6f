"""The lineage ledger: one node per file, batch and record, hash-chained."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .base import table, utc_now
from .engine import LINEAGE_CACHE_KIB, Engine
from .lake import Lake, local_file, may_hold, sql_text

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

RECORD_NODES = "RECORD_NODES"
"""A ledger node sealing a columnar file of record nodes (one map group's
``CALCULATION_COMPLETE`` and ``CALCULATION_FAILED`` nodes, a file of the lake table
``lineage``): its ``storage_location`` is the file, its ``object_sha256`` the file's
SHA-256, its parent the file's DQ_CHECK_PASS node. The records' nodes are read from the
file as if they were rows of the ledger, right after this node; the node itself is a
ledger entry (a leaf of the checkpoint's Merkle tree) that the lineage views do not show."""

_FILE_ACTIONS = ("CALCULATION_COMPLETE", "CALCULATION_FAILED", "RECALCULATION")
"""The actions of the nodes a record file holds (lineage.SEALED_ACTIONS)."""

LINEAGE_TABLE = "lineage"
"""The lake table of record-level lineage nodes (LINEAGE_COLUMNS)."""

_FILE_ORDER = "ORDER BY row_number NULLS FIRST, node_id"
"""The order of a record file's nodes in the ledger (the input's row order; the file
itself is sorted by node_id, which lets a lookup by record id skip its row groups)."""

_COLUMNS = ", ".join(LINEAGE_COLUMNS)
_GROUP_FIELDS = (
    "parent_id",
    "action_taken",
    "storage_location",
    "object_sha256",
    "nodes",
    "first_recorded_at",
    "last_recorded_at",
)


def insert_lineage_rows(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert nodes (sequences in LINEAGE_COLUMNS order) inside the caller's transaction."""
    if rows:
        Engine.executemany(conn, sa.insert(LINEAGE), LINEAGE_COLUMNS, rows)


class Ledger(Lake):
    """Lineage nodes: rows of the ``lineage`` table, and the record nodes of the columnar
    files that its RECORD_NODES nodes seal."""

    locate: Any = staticmethod(lambda url: url)
    """A stored location as it is now (set to the storage's ``current_url`` when the
    workspace may have moved)."""

    # -- the record files ---------------------------------------------------------------

    def _record_files(
        self, root_id: str | None = None, node_id: str | None = None
    ) -> list[tuple[int, str, str]]:
        """``(seq, root_id, location)`` of the RECORD_NODES nodes (of one root), oldest
        first; with ``node_id``, only the files whose registered range of node ids holds
        it (or whose range is not known). A local file that is gone is left out
        (``lineage verify`` names it)."""
        sql = (
            "SELECT l.seq, l.root_id, l.storage_location, f.min_record_id, f.max_record_id "
            "FROM lineage l LEFT JOIN lake_files f ON f.table_name = :table "
            "AND f.file_path = l.storage_location WHERE l.action_taken = :a"
        )
        params: dict[str, Any] = {"a": RECORD_NODES, "table": LINEAGE_TABLE}
        if root_id is not None:
            sql += " AND l.root_id = :root_id"
            params["root_id"] = root_id
        found = []
        for seq, root, location, low, high in self._engine.rows(sql + " ORDER BY l.seq", params):
            if node_id is not None and not may_hold(low, high, node_id):
                continue
            url = self.locate(location)
            if self._present(url):
                found.append((int(seq), str(root), local_file(url)))
        return found

    def _file_rows(
        self,
        paths: Sequence[str],
        where: str = "",
        params: dict[str, Any] | None = None,
        *,
        select: str = _COLUMNS,
        tail: str = "",
        tables: dict[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Rows of a DuckDB query over record files (``filename`` names each row's file;
        ``tables``: Arrow tables the query may name)."""
        if not paths:
            return []
        files = ", ".join(sql_text(p) for p in paths)
        sql = f"SELECT {select} FROM read_parquet([{files}], filename = true)"
        if where:
            sql += f" WHERE {where}"
        with self._duckdb() as con:
            for name, data in (tables or {}).items():
                con.register(name, data)
            return [tuple(row) for row in con.execute(f"{sql} {tail}", params or {}).fetchall()]

    def record_file_nodes(self, location: str) -> Iterator[tuple[Any, ...]]:
        """The nodes (LINEAGE_COLUMNS tuples) of one record file, in ledger order; raises
        ``DatabaseError`` when it cannot be read."""
        path = local_file(self.locate(location))
        files = sql_text(path)
        with self._duckdb() as con:
            cursor = con.execute(f"SELECT {_COLUMNS} FROM read_parquet({files}) {_FILE_ORDER}")
            while rows := cursor.fetchmany(50_000):
                yield from (tuple(row) for row in rows)

    def _in_files(
        self,
        root_id: str | None,
        where: str,
        params: dict[str, Any],
        tail: str = "",
        *,
        node_id: str | None = None,
        tables: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Nodes of the record files (of one root; that may hold ``node_id``) matching
        ``where``, as dicts."""
        paths = [path for _, _, path in self._record_files(root_id, node_id)]
        return [
            dict(zip(LINEAGE_COLUMNS, row, strict=True))
            for row in self._file_rows(paths, where, params, tail=tail, tables=tables)
        ]

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
        if not rows:
            rows = self._in_files(
                root_id, "node_id = $node_id", {"node_id": node_id}, node_id=node_id
            )
        return rows[0] if rows else None

    def lineage_nodes_named(self, node_id: str) -> list[dict[str, Any]]:
        """Every node with this node_id, under any root: ledger rows first, then those of
        the record files."""
        rows = self._engine.dicts(
            f"{_SELECT} WHERE node_id = :node_id ORDER BY seq", {"node_id": node_id}
        )
        return rows + self._in_files(
            None, "node_id = $node_id", {"node_id": node_id}, node_id=node_id
        )

    def lineage_nodes_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """``(root_id, node_id)`` of the nodes whose node_id starts with ``prefix``, oldest
        first (a range on the unique index, not a scan)."""
        bounds = {"low": prefix, "high": prefix + "\U0010ffff"}
        rows = self._engine.rows(
            "SELECT root_id, node_id FROM lineage WHERE node_id >= :low AND node_id < :high "
            "ORDER BY seq",
            bounds,
        )
        found = [(row[0], row[1]) for row in rows]
        in_files = self._in_files(None, "node_id >= $low AND node_id < $high", bounds)
        return [(n["root_id"], n["node_id"]) for n in in_files] + found

    def lineage_of_root(self, root_id: str) -> list[dict[str, Any]]:
        """Every node of one root, in insertion order."""
        return [
            dict(zip(LINEAGE_COLUMNS, row[1:], strict=True)) for row in self.iter_lineage(root_id)
        ]

    def lineage_nodes(self, root_id: str, node_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Several nodes of one root, by node id (in no particular order)."""
        rows = self._engine.rows_in(
            f"{_SELECT} WHERE root_id = :root_id AND node_id IN :ids",
            "ids",
            node_ids,
            {"root_id": root_id},
        )
        found = [dict(row._mapping) for row in rows]
        rest = sorted(set(node_ids) - {n["node_id"] for n in found})
        if rest:
            import pyarrow as pa

            wanted = pa.table({"node_id": pa.array(rest, pa.string())})
            found += self._in_files(
                root_id, "node_id IN (SELECT node_id FROM wanted)", {}, tables={"wanted": wanted}
            )
        return found

    def iter_lineage(
        self,
        root_id: str | None = None,
        *,
        actions: Sequence[str] = (),
        exclude_actions: Sequence[str] = (),
        chunk: int = 20_000,
        sealed: bool = False,
    ) -> Iterator[tuple[Any, ...]]:
        """Ledger nodes as tuples ``(seq, *LINEAGE_COLUMNS)`` in insertion order, streamed.

        Optionally only one root, only some actions, or all but some actions. The record
        nodes of a RECORD_NODES file come right after where its node would be, with that
        node's ``seq``; the RECORD_NODES node itself is left out, or with ``sealed``
        yielded instead of its file's nodes (``lineage verify`` reads those itself).
        """
        wanted = set(actions)
        unwanted = set(exclude_actions)

        def keeps(action: str) -> bool:
            return (not wanted or action in wanted) and action not in unwanted

        records = any(keeps(a) for a in _FILE_ACTIONS)
        where: list[str] = []
        params: dict[str, Any] = {}
        if root_id is not None:
            where.append("root_id = :root_id")
            params["root_id"] = root_id
        filters: list[str] = []
        if actions:
            marks = [f":a{i}" for i in range(len(actions))]
            filters.append(f"action_taken IN ({', '.join(marks)})")
            params.update({m[1:]: a for m, a in zip(marks, actions, strict=True)})
        if exclude_actions:
            marks = [f":x{i}" for i in range(len(exclude_actions))]
            filters.append(f"action_taken NOT IN ({', '.join(marks)})")
            params.update({m[1:]: a for m, a in zip(marks, exclude_actions, strict=True)})
        if filters:
            condition = " AND ".join(filters)
            if records or (sealed and keeps(RECORD_NODES)):
                condition = f"({condition}) OR action_taken = :sealing"
                params["sealing"] = RECORD_NODES
            where.append(f"({condition})")
        sql = f"SELECT seq, {_COLUMNS} FROM lineage"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        for row in self._engine.stream(sql, params, chunk, _READING):
            if row[4] != RECORD_NODES:
                yield row
            elif sealed:
                if keeps(RECORD_NODES):
                    yield row
            elif records:
                url = self.locate(row[5])
                if not self._present(url):
                    continue  # a file that is gone: lineage verify names it
                for node in self.record_file_nodes(row[5]):
                    if keeps(node[3]):
                        yield (row[0], *node)

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
            "AND action_taken <> :sealing GROUP BY parent_id, action_taken",
            {"root_id": root_id, "sealing": RECORD_NODES},
        )
        counts: dict[tuple[str, str], int] = {(r[0], r[1]): int(r[2]) for r in rows}
        paths = [path for _, _, path in self._record_files(root_id)]
        for parent, action, count in self._file_rows(
            paths, select="parent_id, action_taken, count(*)", tail="GROUP BY ALL"
        ):
            counts[(parent, action)] = counts.get((parent, action), 0) + int(count)
        return [(parent, action, count) for (parent, action), count in counts.items()]

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
        found = [dict(row._mapping) for row in rows]
        # The record files' first nodes of each parent (a batch's nodes are in one file).
        for node in self._in_files(
            root_id,
            "list_contains($actions, action_taken)",
            {"actions": list(actions), "n": per_parent},
            tail=f"QUALIFY row_number() OVER (PARTITION BY parent_id {_FILE_ORDER}) <= $n "
            f"{_FILE_ORDER}",
        ):
            if taken.get(node["parent_id"], 0) < per_parent:
                taken[node["parent_id"]] = taken.get(node["parent_id"], 0) + 1
                found.append(node)
        return found

    def lineage_record_groups(self, root_id: str, actions: Sequence[str]) -> list[dict[str, Any]]:
        """Nodes of one root with one of ``actions``, grouped by parent, action, location and
        object hash: ``{parent_id, action_taken, storage_location, object_sha256, nodes,
        first_recorded_at, last_recorded_at}`` in the order they were recorded."""
        if not actions:
            return []
        marks = [f"a{i}" for i in range(len(actions))]
        fields = (
            "parent_id, action_taken, storage_location, object_sha256, count(*) AS nodes, "
            "min(recorded_at) AS first_recorded_at, max(recorded_at) AS last_recorded_at"
        )
        # (ledger position, place among the groups at that position, group)
        groups: list[tuple[int, int, dict[str, Any]]] = []
        for row in self._engine.dicts(
            f"SELECT {fields}, min(seq) AS first_seq FROM lineage WHERE root_id = :root_id "
            f"AND action_taken IN ({', '.join(':' + m for m in marks)}) "
            "GROUP BY parent_id, action_taken, storage_location, object_sha256",
            {"root_id": root_id, **dict(zip(marks, actions, strict=True))},
        ):
            seq = int(row.pop("first_seq"))
            groups.append((seq, 0, row))
        if any(a in _FILE_ACTIONS for a in actions):
            # A record file's groups sit at its RECORD_NODES node's place, by first row.
            files = {path: seq for seq, _, path in self._record_files(root_id)}
            for *values, first_row, filename in self._file_rows(
                list(files),
                "list_contains($actions, action_taken)",
                {"actions": list(actions)},
                select=f"{fields}, min(row_number) AS first_row, filename",
                tail="GROUP BY ALL",
            ):
                group = dict(zip(_GROUP_FIELDS, values, strict=True))
                groups.append((files[filename], 1 + (first_row or 0), group))
        groups.sort(key=lambda g: (g[0], g[1]))
        return [{**group, "nodes": int(group["nodes"])} for _, _, group in groups]

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
