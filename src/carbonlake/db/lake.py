"""The data lake's file registry (``lake_files``) and the DuckDB connections that read it.

The results are an Apache Iceberg table (:mod:`carbonlake.lake` commits it, docs/lake.md).
Its data files are registered here, in the same transaction as a map group's
checkpoint, and the registry is brought up to the table's file set after each commit.
Reads never import pyiceberg: they query the table's current data files, listed in the
registry, with DuckDB (about 0.35 s to import, against 2.3 s for pyiceberg and SQLAlchemy).

Every statement on ``lake_files`` lives in this module. DuckDB statements take named
parameters as ``$name`` (never rewritten from the database's ``:name``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._exceptions import DatabaseError
from .base import Part, table, utc_now
from .engine import Engine

RESULTS_TABLE = "emissions"
"""The lake table of the current results (docs/lake.md)."""

LAKE_FILE_COLUMNS = (
    "table_name",
    "file_path",
    "root_id",
    "execution_id",
    "record_count",
    "sha256",
    "state",
    "snapshot_id",
    "registered_at",
    "removed_at",
    "removed_by_root",
    "removed_by_execution",
    "min_record_id",
    "max_record_id",
    "file_size",
    "footer",
)
LAKE_FILES = table("lake_files", LAKE_FILE_COLUMNS)

_REGISTERED = (
    "table_name",
    "file_path",
    "root_id",
    "execution_id",
    "record_count",
    "sha256",
    "min_record_id",
    "max_record_id",
    "file_size",
    "footer",
)


@dataclass(frozen=True)
class LakeFile:
    """A data file of a lake table, as the registry keeps it."""

    table_name: str
    file_path: str
    """The file's URL, exactly as the Iceberg table's manifests name it."""
    root_id: str | None
    execution_id: str | None
    record_count: int
    sha256: str | None
    min_record_id: str | None = None
    """The file's smallest record id (None: not known; a lookup then reads the file)."""
    max_record_id: str | None = None
    """The file's largest record id."""
    file_size: int | None = None
    """The file's size in bytes, as written (None: not known)."""
    footer: bytes | None = field(default=None, repr=False)
    """The file's Parquet footer as the writer had it, as a Parquet metadata file (the
    table commit builds the file's Iceberg statistics from it; None: it reads the file)."""

    def registered(self) -> tuple[Any, ...]:
        """The registered fields, in the registry's column order."""
        return (
            self.table_name,
            self.file_path,
            self.root_id,
            self.execution_id,
            self.record_count,
            self.sha256,
            self.min_record_id,
            self.max_record_id,
            self.file_size,
            self.footer,
        )

    def may_hold(self, record_id: str) -> bool:
        """Whether the record may be in this file (its id within the file's range, or the
        range not known)."""
        return may_hold(self.min_record_id, self.max_record_id, record_id)


def may_hold(min_record_id: str | None, max_record_id: str | None, record_id: str) -> bool:
    """Whether a file whose record ids run from ``min_record_id`` to ``max_record_id``
    may hold ``record_id``; a file without a known range may hold any.

    Compared in Python (code point order, the order Polars and DuckDB sort strings in),
    never in SQL: PostgreSQL compares text by its collation, which may order differently.
    """
    if min_record_id is None or max_record_id is None:
        return True
    return min_record_id <= record_id <= max_record_id


def local_file(url: str) -> str:
    """The path DuckDB reads for a data file URL (``file:///abs`` -> ``/abs``)."""
    return url[len("file://") :] if url.startswith("file://") else url


def present(url: str) -> bool:
    """Whether a data file exists (checked only on local disk; remote ones are read)."""
    return not url.startswith("file://") or Path(local_file(url)).is_file()


def sql_text(value: str) -> str:
    """A SQL string literal (DuckDB's ``read_parquet`` takes its file list as literals)."""
    return "'" + value.replace("'", "''") + "'"


def register_lake_files(engine: Engine, conn: Connection, files: Sequence[LakeFile]) -> None:
    """Register data files (state ``pending``) inside the caller's transaction; a file
    registered before is registered again (a resumed or retried group rewrote it)."""
    if not files:
        return
    now = utc_now()
    columns = (*_REGISTERED, "state", "registered_at")
    insert = engine.insert(LAKE_FILES)
    Engine.executemany(
        conn,
        insert.on_conflict_do_update(
            index_elements=["table_name", "file_path"],
            set_={
                c: insert.excluded[c]
                for c in (
                    "root_id",
                    "execution_id",
                    "record_count",
                    "sha256",
                    "min_record_id",
                    "max_record_id",
                    "file_size",
                    "footer",
                    "state",
                    "registered_at",
                )
            },
        ),
        columns,
        [(*f.registered(), "pending", now) for f in files],
    )


def insert_removed_files(
    engine: Engine, conn: Connection, earlier: Sequence[tuple[LakeFile, str, str | None]]
) -> None:
    """Register files of earlier results (state ``removed``: when, and by which root)
    inside the caller's transaction."""
    now = utc_now()
    columns = (*_REGISTERED, "state", "registered_at", "removed_at", "removed_by_root")
    Engine.executemany(
        conn,
        engine.insert(LAKE_FILES),
        columns,
        [(*f.registered(), "removed", now, at, by) for f, at, by in earlier],
    )


class Lake(Part):
    """The lake tables' file registry, and DuckDB over their data files."""

    lake_filesystem: Any = None
    """The fsspec filesystem of the lake bucket when it is not local (DuckDB reads
    the results table's s3:// files through it; it has no httpfs here)."""

    check_remote_files = False
    """Whether reads check that each remote data file exists first (set once a read
    found one gone: a damaged workspace still reads what is there)."""

    def _present(self, url: str) -> bool:
        """Whether a data file is there to read: local files always, remote ones once a
        read found one missing (``lineage verify`` names the missing ones)."""
        if url.startswith("file://") or not url.startswith(("s3://", "s3a://")):
            return present(url)
        if not self.check_remote_files or self.lake_filesystem is None:
            return True
        try:
            return bool(self.lake_filesystem.exists(url))
        except OSError:
            return False

    def lake_metadata_location(self, namespace: str, table_name: str) -> str | None:
        """Where the catalog says a lake table's current metadata file is (None: no
        such table yet)."""
        with self._engine.errors("query on {db} failed"), self._engine.connect() as conn:
            if not sa.inspect(conn).has_table("iceberg_tables"):
                return None  # the catalog's tables do not exist yet
            found = conn.execute(
                sa.text(
                    "SELECT metadata_location FROM iceberg_tables "
                    "WHERE table_namespace = :namespace AND table_name = :table"
                ),
                {"namespace": namespace, "table": table_name},
            ).first()
        return str(found[0]) if found and found[0] else None

    def lake_relocate(self, table_name: str, moved: dict[str, str]) -> None:
        """Rename registered files (old URL -> new URL) of a moved workspace."""
        renames = [
            {"new": new, "table": table_name, "old": old}
            for old, new in moved.items()
            if new != old
        ]
        if not renames:
            return
        with self._engine.transaction() as conn:
            conn.execute(
                sa.text(
                    "UPDATE lake_files SET file_path = :new "
                    "WHERE table_name = :table AND file_path = :old"
                ),
                renames,
            )

    def lake_pending(self, table_name: str, execution_id: str | None) -> list[LakeFile]:
        """Files of one execution registered but not yet committed to their table."""
        rows = self._engine.rows(
            f"SELECT {', '.join(_REGISTERED)} "
            "FROM lake_files WHERE table_name = :table AND state = 'pending' "
            "AND execution_id IS NOT DISTINCT FROM :execution_id ORDER BY file_path",
            {"table": table_name, "execution_id": execution_id},
        )
        return [LakeFile(*row) for row in rows]

    def lake_files(self, table_name: str, state: str = "current") -> list[dict[str, Any]]:
        """The registry's files of a table in one state ('pending', 'current', 'removed')."""
        return self._engine.dicts(
            "SELECT * FROM lake_files WHERE table_name = :table AND state = :state "
            "ORDER BY file_path",
            {"table": table_name, "state": state},
        )

    def lake_sync(
        self,
        table_name: str,
        live: dict[str, int],
        snapshot_id: str,
        *,
        removed: Iterable[str],
        removed_by_root: str | None,
        removed_by_execution: str | None,
        describe: Callable[[str], tuple[str | None, str | None, str]],
    ) -> None:
        """Bring the registry to a table's current file set after a commit: ``live`` (file
        -> records) are current, ``removed`` (the files this commit removed) are removed by
        its root and execution, any other file no longer live is removed too. ``describe``
        gives ``(root_id, execution_id, sha256)`` of a live file the registry does not know
        (one the table commit wrote: a copy-on-write rewrite)."""
        now = utc_now()
        known = {
            row[0]: row[1]
            for row in self._engine.rows(
                "SELECT file_path, state FROM lake_files WHERE table_name = :table",
                {"table": table_name},
            )
        }
        unknown = {path: describe(path) for path in live if path not in known}
        gone = [path for path in removed if path in known and path not in live]
        by_commit = [
            {
                "now": now,
                "root": removed_by_root,
                "execution": removed_by_execution,
                "table": table_name,
                "path": path,
            }
            for path in gone
        ]
        no_longer = [
            {"now": now, "table": table_name, "path": path}
            for path, state in known.items()
            if state == "current" and path not in live
        ]
        now_current = [
            {"snapshot": snapshot_id, "count": count, "table": table_name, "path": path}
            for path, count in live.items()
            if path in known and known[path] != "current"
        ]
        with self._engine.transaction() as conn:
            if by_commit:
                conn.execute(
                    sa.text(
                        "UPDATE lake_files SET state = 'removed', removed_at = :now, "
                        "removed_by_root = :root, removed_by_execution = :execution "
                        "WHERE table_name = :table AND file_path = :path"
                    ),
                    by_commit,
                )
            if no_longer:
                conn.execute(
                    sa.text(
                        "UPDATE lake_files SET state = 'removed', removed_at = :now "
                        "WHERE table_name = :table AND file_path = :path AND state = 'current'"
                    ),
                    no_longer,
                )
            if now_current:
                conn.execute(
                    sa.text(
                        "UPDATE lake_files SET state = 'current', snapshot_id = :snapshot, "
                        "record_count = :count WHERE table_name = :table AND file_path = :path "
                        "AND state <> 'current'"
                    ),
                    now_current,
                )
            Engine.executemany(
                conn,
                self._engine.insert(LAKE_FILES),
                (*_REGISTERED, "state", "snapshot_id", "registered_at"),
                [
                    (
                        table_name,
                        path,
                        root,
                        execution,
                        live[path],
                        sha,
                        None,  # a file the table commit wrote: its range is not known
                        None,
                        None,  # nor its size and footer (never committed again)
                        None,
                        "current",
                        snapshot_id,
                        now,
                    )
                    for path, (root, execution, sha) in unknown.items()
                ],
            )

    def lake_overlap(self, live: Sequence[str], new: Sequence[str]) -> dict[str, list[str]]:
        """Which records of the ``new`` results files already have a result in the ``live``
        ones (the table's current files): ``{live file: [activity_event_id]}`` (a semi-join
        in DuckDB over the files' record ids)."""
        if not live or not new:
            return {}
        found: dict[str, list[str]] = {}
        local = {local_file(path): path for path in live}
        live_sql = ", ".join(sql_text(p) for p in local)
        new_sql = ", ".join(sql_text(local_file(p)) for p in new)
        with self._duckdb() as con:
            cursor = con.execute(
                f"SELECT filename, activity_event_id FROM read_parquet([{live_sql}], "
                f"filename = true) SEMI JOIN read_parquet([{new_sql}]) n USING "
                "(activity_event_id)"
            )
            while rows := cursor.fetchmany(50_000):
                for filename, record_id in rows:
                    found.setdefault(local[filename], []).append(record_id)
        return found

    def _has_removed_files(self, table_name: str) -> bool:
        """Whether a table has files no longer current (without: no earlier results)."""
        return bool(
            self._engine.rows(
                "SELECT 1 FROM lake_files WHERE table_name = :table AND state = 'removed' LIMIT 1",
                {"table": table_name},
            )
        )

    @contextlib.contextmanager
    def _duckdb(self) -> Iterator[Any]:
        """An in-memory DuckDB connection; its errors become ``DatabaseError``."""
        import duckdb  # 0.35 s to import: only commands that read results pay it

        con = duckdb.connect(":memory:")
        if self.lake_filesystem is not None:
            con.register_filesystem(self.lake_filesystem)
        try:
            # SQLite's order: NULL is the smallest value.
            con.execute("SET default_null_order = 'nulls_first_on_asc_last_on_desc'")
            yield con
        except duckdb.Error as exc:
            raise DatabaseError(f"reading the results table failed: {exc}") from exc
        finally:
            con.close()
