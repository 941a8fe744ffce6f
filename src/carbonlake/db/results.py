"""Results: current emissions, their history, and the records that could not be calculated.

The results are the Apache Iceberg table ``emissions`` (docs/lake.md): its data files are
registered in ``lake_files`` (:mod:`.lake`) and read with DuckDB, in the views
``emissions`` (the current results) and ``emissions_history`` (earlier results) that
:meth:`Results._lake` makes; DuckDB statements take ``$name`` parameters. The
database's own tables ``emissions`` and ``emissions_history`` hold only the results of
a workspace from before the lake, until they move to the table (``legacy_results``).
Every statement on those, on ``emission_deletions`` and on ``calculation_failures``
lives in this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from .._exceptions import DatabaseError
from . import ledger
from .base import table
from .engine import Engine
from .lake import (
    RESULTS_TABLE,
    Lake,
    LakeFile,
    insert_removed_files,
    local_file,
    may_hold,
    register_lake_files,
    sql_text,
)

_T = TypeVar("_T")

EMISSION_COLUMNS = (
    "activity_event_id",
    "root_id",
    "execution_id",
    "asset_id",
    "scope",
    "category",
    "activity",
    "origin_measurement_timestamp",
    "raw_data",
    "units",
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "factor_id",
    "factor_set",
    "factor_version",
    "ar4_kgco2e_per_unit",
    "ar5_kgco2e_per_unit",
    "enriched_location",
    "calculated_at",
    "co2e_ar6_tonnes",
    "ar6_kgco2e_per_unit",
    "quantity_used",
    "quantity_unit",
    "lineage_node_id",
    "geo_lat",
    "geo_long",
    "source",
    "scope2_method",
    "scope3_category",
    "biogenic_co2_tonnes",
    "ch4_basis",
    "ar6_ch4_gwp",
)

_INTEGER_COLUMNS = ("scope", "scope3_category")
_FLOAT_COLUMNS = (
    "raw_data",
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "ar4_kgco2e_per_unit",
    "ar5_kgco2e_per_unit",
    "co2e_ar6_tonnes",
    "ar6_kgco2e_per_unit",
    "quantity_used",
    "geo_lat",
    "geo_long",
    "biogenic_co2_tonnes",
    "ar6_ch4_gwp",
)
EMISSION_TYPES = {
    column: "BIGINT"
    if column in _INTEGER_COLUMNS
    else "DOUBLE"
    if column in _FLOAT_COLUMNS
    else "VARCHAR"
    for column in EMISSION_COLUMNS
}
"""The type of each results column in the results table (DuckDB / SQL names)."""

EMISSION_SORT_COLUMNS = (
    "activity_event_id",
    "asset_id",
    "scope",
    "category",
    "activity",
    "origin_measurement_timestamp",
    "source",
    "raw_data",
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "co2e_ar6_tonnes",
    "calculated_at",
)
"""Columns emissions can be sorted by (a sort column is never taken from a request as is)."""

EMISSION_GROUPS = {
    "scope": "scope",
    "category": "category",
    "activity": "activity",
    "asset": "asset_id",
    "month": "substr(origin_measurement_timestamp, 1, 7)",
}
"""What emission totals can be grouped by, and the SQL expression of each."""

RESULT_NUMBER_COLUMNS = (
    "co2_tonnes",
    "ch4_tonnes",
    "n2o_tonnes",
    "co2e_ar4_tonnes",
    "co2e_ar5_tonnes",
    "co2e_ar6_tonnes",
)
"""The numbers of a result that its enriched record also holds (lineage verify compares them)."""

FAILURE_COLUMNS = (
    "failure_key",
    "root_id",
    "execution_id",
    "activity_event_id",
    "node_id",
    "asset_id",
    "scope",
    "category",
    "activity",
    "origin_measurement_timestamp",
    "raw_data",
    "units",
    "reason_code",
    "reason",
    "failed_at",
)
"""A record that could not be calculated, until a later calculation of it succeeds."""

METHODS = {"location_based": "location-based", "market_based": "market-based"}
"""The two scope 2 methods as totals name them, and the factor attribute each matches."""

INVENTORY_BUCKET = (
    "CASE WHEN scope = 1 THEN 'scope_1' "
    "WHEN scope = 2 AND scope2_method = 'location-based' THEN 'scope_2_location_based' "
    "WHEN scope = 2 AND scope2_method = 'market-based' THEN 'scope_2_market_based' "
    "WHEN scope = 3 THEN 'scope_3' ELSE 'unclassified' END"
)
"""SQL: the GHG Protocol total a result belongs to (``unclassified``: a scope 2 result
whose factor named no method, or a result without a scope)."""

INVENTORY_GROUPS = {
    "month": "substr(origin_measurement_timestamp, 1, 7)",
    "quarter": (
        "substr(origin_measurement_timestamp, 1, 4) || '-Q' || "
        "CAST((CAST(substr(origin_measurement_timestamp, 6, 2) AS INTEGER) + 2) // 3 AS TEXT)"
    ),
    "year": "substr(origin_measurement_timestamp, 1, 4)",
    "asset": "asset_id",
    "category": "category",
}
"""What an inventory can be broken down by, and the SQL (DuckDB) expression of each."""

FAILURES = table("calculation_failures", FAILURE_COLUMNS)
DELETION_COLUMNS = (
    "activity_event_id",
    "root_id",
    "calculated_at",
    "deleted_at",
    "deleted_by",
    "deletion_reason",
    "deletion_node_id",
)
DELETIONS = table("emission_deletions", DELETION_COLUMNS)

_ID_CHUNK = 500
"""Record ids per ``IN (...)`` list (well under every database's parameter limit)."""

_COLUMNS = ", ".join(EMISSION_COLUMNS)


@dataclass(frozen=True)
class EmissionFilter:
    """Which current emission results a query covers; every value is a bound parameter."""

    scope: int | None = None
    category: str | None = None
    activity: str | None = None
    asset_id: str | None = None
    root_id: str | None = None
    execution_id: str | None = None
    search: str | None = None
    """Text anywhere in the record id, asset, category or activity (case-insensitive)."""
    measured_from: str | None = None
    """``origin_measurement_timestamp`` at or after this ISO 8601 text (``2019-10``)."""
    measured_to: str | None = None
    """``origin_measurement_timestamp`` up to and including this ISO 8601 prefix."""

    def where(self, mark: str = ":") -> tuple[str, dict[str, Any]]:
        """The SQL condition (``WHERE ...`` or empty) and its named parameters (``f_...``),
        each written ``{mark}f_...``: ``:`` for the database (SQLAlchemy), ``$`` for DuckDB."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for column in ("scope", "category", "activity", "asset_id", "root_id", "execution_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = {mark}f_{column}")
                params[f"f_{column}"] = value
        if self.search:
            pattern = "%" + "".join(f"\\{c}" if c in "%_\\" else c for c in self.search) + "%"
            clauses.append(
                "("
                + " OR ".join(
                    f"lower({c}) LIKE lower({mark}f_search) ESCAPE '\\'"
                    for c in ("activity_event_id", "asset_id", "category", "activity")
                )
                + ")"
            )
            params["f_search"] = pattern
        if self.measured_from:
            clauses.append(f"origin_measurement_timestamp >= {mark}f_from")
            params["f_from"] = self.measured_from
        if self.measured_to:
            clauses.append(
                f"substr(origin_measurement_timestamp, 1, length({mark}f_to)) <= {mark}f_to"
            )
            params["f_to"] = self.measured_to
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _by_method(column: str, method: str) -> str:
    """SQL: ``column`` for a total of one scope 2 method. Scope 2 results of the other
    method (or of none: results calculated before factors said) count as 0, so the two
    totals are side by side and never added."""
    return (
        f"coalesce(fsum(CASE WHEN scope = 2 AND scope2_method IS DISTINCT FROM "
        f"'{METHODS[method]}' THEN 0 ELSE {column} END), 0)"
    )


def _totals_sql() -> str:
    """SELECT list of the totals every summary gives (see :func:`_totals_of`)."""
    parts = ["count(*) AS records", "coalesce(fsum(biogenic_co2_tonnes), 0) AS biogenic"]
    for method in METHODS:
        for gas in ("co2", "ch4", "n2o"):
            parts.append(f"{_by_method(f'{gas}_tonnes', method)} AS {method}_{gas}")
        for gwp in ("ar4", "ar5", "ar6"):
            parts.append(f"{_by_method(f'co2e_{gwp}_tonnes', method)} AS {method}_{gwp}")
    return ", ".join(parts)


def _totals_of(found: Mapping[str, Any]) -> dict[str, Any]:
    """Totals of a row selected with :func:`_totals_sql`: each quantity per scope 2
    method, ``{"location_based": ..., "market_based": ...}``."""
    return {
        "records": found["records"],
        **{
            f"{gas}_tonnes": {m: found[f"{m}_{gas}"] for m in METHODS}
            for gas in ("co2", "ch4", "n2o")
        },
        "co2e_tonnes": {m: {g: found[f"{m}_{g}"] for g in ("ar4", "ar5", "ar6")} for m in METHODS},
        "biogenic_co2_tonnes": found["biogenic"],
    }


def _read_files(paths: Sequence[str], filename: bool = False) -> str:
    """DuckDB SQL: the results columns of some data files (typed; none: an empty relation)."""
    columns = ", ".join(f"CAST({c} AS {EMISSION_TYPES[c]}) AS {c}" for c in EMISSION_COLUMNS)
    if not paths:
        empty = ", ".join(f"CAST(NULL AS {EMISSION_TYPES[c]}) AS {c}" for c in EMISSION_COLUMNS)
        extra = ", CAST(NULL AS VARCHAR) AS filename" if filename else ""
        return f"SELECT {empty}{extra} WHERE false"
    listed = ", ".join(sql_text(p) for p in paths)
    if filename:
        return f"SELECT {columns}, filename FROM read_parquet([{listed}], filename = true)"
    return f"SELECT {columns} FROM read_parquet([{listed}])"


def clear_failures(conn: Connection, record_ids: Sequence[str]) -> None:
    """Records calculated now are no longer failures (e.g. after a redrive), inside the
    caller's transaction; a failure of a record with an id is keyed by that id.

    On PostgreSQL one statement takes the ids as one array (``= ANY``): a group's
    20,000 ids in chunks of an expanding ``IN`` list were rendered anew chunk by chunk
    (psycopg's named parameters), about 0.15 s a group."""
    if (
        not record_ids
        or conn.execute(sa.select(sa.literal(1)).select_from(FAILURES).limit(1)).first() is None
    ):
        return  # no failure at all (the usual case): nothing to look up
    if conn.dialect.name == "postgresql":
        ids = sa.bindparam("ids", list(record_ids), type_=postgresql.ARRAY(sa.String()))
        key = sa.column("failure_key", sa.String())
        conn.execute(FAILURES.delete().where(key == sa.any_(ids)))
        return
    Engine.execute_in(
        conn,
        "DELETE FROM calculation_failures WHERE failure_key IN :ids",
        "ids",
        list(record_ids),
        None,
        _ID_CHUNK,
    )


def insert_failure_rows(engine: Engine, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Store records that could not be calculated inside the caller's transaction."""
    engine.upsert_rows(conn, FAILURES, FAILURE_COLUMNS, rows)


class Results(Lake):
    """Current results (the lake's results table), their history and calculation failures."""

    # -- reading the results table ---------------------------------------------------

    def _files_and_deletions(
        self, record_id: str | None = None
    ) -> tuple[list[str], list[Any], list[Any]]:
        """The results table's current files (paths DuckDB reads), its removed files
        (registry rows) and the deletions' rows. With ``record_id``, only the files whose
        registered range of record ids holds it (or whose range is not known) and its
        deletions: a lookup in 10M records opens one file instead of every file's footer."""
        files = [
            row
            for row in self._engine.rows(
                "SELECT file_path, state, removed_at, removed_by_root, min_record_id, "
                "max_record_id FROM lake_files "
                "WHERE table_name = :table AND state IN ('current', 'removed')",
                {"table": RESULTS_TABLE},
            )
            if record_id is None or may_hold(row[4], row[5], record_id)
        ]
        # A registered local file that is gone is left out (lineage verify names it):
        # one missing file must not make every read fail.
        current = [
            local_file(row[0]) for row in files if row[1] == "current" and self._present(row[0])
        ]
        removed = [row for row in files if row[1] == "removed" and self._present(row[0])]
        deletions = self._engine.rows(
            "SELECT activity_event_id, calculated_at, deleted_at, deleted_by, "
            "deletion_reason, deletion_node_id FROM emission_deletions"
            + ("" if record_id is None else " WHERE activity_event_id = :id"),
            None if record_id is None else {"id": record_id},
        )
        return current, removed, list(deletions)

    def unfinished_deletions(self) -> list[tuple[str, str]]:
        """``(activity_event_id, calculated_at)`` of deleted results still in the results
        table's current files (their Iceberg delete did not happen: a stopped process)."""
        current, _, deletions = self._files_and_deletions()
        if not current or not deletions:
            return []
        with self._duckdb() as con:
            con.execute("CREATE TABLE deleted (activity_event_id VARCHAR, calculated_at VARCHAR)")
            con.executemany("INSERT INTO deleted VALUES (?, ?)", [(r[0], r[1]) for r in deletions])
            rows = con.execute(
                f"SELECT activity_event_id, calculated_at FROM ({_read_files(current)}) "
                "SEMI JOIN deleted USING (activity_event_id, calculated_at) ORDER BY ALL"
            ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    @contextlib.contextmanager
    def _lake(self, record_id: str | None = None) -> Iterator[Any]:
        """A DuckDB connection with the views ``emissions`` (the current results: the
        table's current data files) and ``emissions_history`` (earlier results: rows of
        files no longer current that no current file holds, with when and by which root
        they were replaced, and who deleted them). With ``record_id``, the views cover
        only the files that may hold it: right for queries of that one record."""
        current, removed, deletions = self._files_and_deletions(record_id)
        with self._duckdb() as con:
            con.execute(
                "CREATE TABLE emission_deletions (activity_event_id VARCHAR, calculated_at "
                "VARCHAR, deleted_at VARCHAR, deleted_by VARCHAR, deletion_reason VARCHAR, "
                "deletion_node_id VARCHAR)"
            )
            if deletions:
                con.executemany(
                    "INSERT INTO emission_deletions VALUES (?, ?, ?, ?, ?, ?)",
                    [tuple(row) for row in deletions],
                )
            # A deleted result is gone once its tombstone is committed; the Iceberg delete
            # that takes it out of the table's files follows (emissions.delete_record).
            live = _read_files(current)
            if deletions:
                live = (
                    f"SELECT * FROM ({live}) e ANTI JOIN emission_deletions d "
                    "USING (activity_event_id, calculated_at)"
                )
            con.execute(f"CREATE VIEW emissions AS {live}")
            con.execute(
                "CREATE TABLE lake_removed (path VARCHAR, removed_at VARCHAR, "
                "removed_by_root VARCHAR)"
            )
            if removed:
                con.executemany(
                    "INSERT INTO lake_removed VALUES (?, ?, ?)",
                    [(local_file(row[0]), row[2], row[3]) for row in removed],
                )
            past = _read_files([local_file(row[0]) for row in removed], filename=True)
            if deletions and current:
                # Deleted results whose Iceberg delete has not happened yet (a process
                # stopped in between) are earlier results too.
                con.executemany(
                    "INSERT INTO lake_removed VALUES (?, NULL, NULL)", [(p,) for p in current]
                )
                pending = (
                    f"SELECT * FROM ({_read_files(current, filename=True)}) c SEMI JOIN "
                    "emission_deletions d USING (activity_event_id, calculated_at)"
                )
                past = f"{past} UNION ALL {pending}"
            con.execute(
                "CREATE VIEW emissions_history AS SELECT h.* EXCLUDE (rn, filename) REPLACE ("
                "coalesce(d.deleted_at, h.superseded_at) AS superseded_at), "
                "d.deleted_by, d.deletion_reason, d.deletion_node_id FROM ("
                "SELECT p.*, r.removed_at AS superseded_at, r.removed_by_root AS "
                "superseded_by_root, row_number() OVER (PARTITION BY p.activity_event_id, "
                "p.calculated_at, p.execution_id ORDER BY r.removed_at DESC) AS rn "
                f"FROM ({past}) p JOIN lake_removed r ON p.filename = r.path) h "
                "LEFT JOIN emission_deletions d ON d.activity_event_id = h.activity_event_id "
                "AND d.calculated_at = h.calculated_at WHERE h.rn = 1 AND NOT EXISTS ("
                "SELECT 1 FROM emissions c WHERE c.activity_event_id = h.activity_event_id "
                "AND c.calculated_at = h.calculated_at "
                "AND c.execution_id IS NOT DISTINCT FROM h.execution_id)"
            )
            yield con

    def _lake_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row of a DuckDB query on the results views, as tuples."""
        return self._lake_query(sql, params, lambda cursor: list(cursor.fetchall()))

    def _lake_dicts(
        self, sql: str, params: Mapping[str, Any] | None = None, record_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every row of a DuckDB query on the results views, as dicts by column name
        (views of the files that may hold ``record_id`` only, when it is given)."""

        def named(cursor: Any) -> list[dict[str, Any]]:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return self._lake_query(sql, params, named, record_id)

    def _lake_query(
        self,
        sql: str,
        params: Mapping[str, Any] | None,
        fetch: Callable[[Any], _T],
        record_id: str | None = None,
    ) -> _T:
        """A DuckDB query on the results views; a remote data file that is gone fails it
        once, after which the remote files are checked for existence before each read
        (one request per file: only a damaged workspace pays it)."""
        try:
            with self._lake(record_id) as con:
                return fetch(con.execute(sql, dict(params or {})))
        except DatabaseError:
            if self.lake_filesystem is None or self.check_remote_files:
                raise
            self.check_remote_files = True
        with self._lake(record_id) as con:
            return fetch(con.execute(sql, dict(params or {})))

    def _lake_stream(
        self, sql: str, params: Mapping[str, Any] | None = None, size: int = 5_000
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of a DuckDB query on the results views, fetched ``size`` at a time."""
        first = True
        while True:
            try:
                with self._lake() as con:
                    cursor = con.execute(sql, dict(params or {}))
                    while rows := cursor.fetchmany(size):
                        first = False
                        yield from rows
                return
            except DatabaseError:
                if not first or self.lake_filesystem is None or self.check_remote_files:
                    raise
                self.check_remote_files = True

    def _has_removed_results(self) -> bool:
        """Whether there may be earlier results (files no longer current, or deletions)."""
        return self._has_removed_files(RESULTS_TABLE) or bool(
            self._engine.rows("SELECT 1 FROM emission_deletions LIMIT 1")
        )

    # -- writing: registrations, failures, deletions -----------------------------------

    def register_results(self, files: Sequence[LakeFile], record_ids: Sequence[str]) -> None:
        """Register results files (pending their table commit) in one transaction; their
        records are no longer failures."""
        with self._engine.transaction() as conn:
            register_lake_files(self._engine, conn, files)
            clear_failures(conn, record_ids)

    def record_failures(self, rows: Sequence[Sequence[Any]]) -> None:
        """Store records that could not be calculated (FAILURE_COLUMNS order)."""
        if rows:
            with self._engine.transaction() as conn:
                insert_failure_rows(self._engine, conn, rows)

    def commit_results(
        self,
        files: Sequence[LakeFile],
        record_ids: Sequence[str],
        lineage_rows: Sequence[Sequence[Any]],
    ) -> None:
        """Register results files (pending their table commit) and add their lineage nodes
        in one transaction."""
        with self._engine.transaction(
            lambda reason: f"a lineage node already exists: {reason}"
        ) as conn:
            register_lake_files(self._engine, conn, files)
            clear_failures(conn, record_ids)
            if lineage_rows:
                ledger.insert_lineage_rows(conn, lineage_rows)

    def record_deletion(
        self,
        activity_event_id: str,
        root_id: str,
        calculated_at: str,
        *,
        deleted_at: str,
        deleted_by: str,
        reason: str,
        lineage_rows: Sequence[Sequence[Any]],
    ) -> None:
        """Keep who deleted a record's result (calculated at ``calculated_at``), when and
        why, with its ``RECORD_DELETED`` node, in one transaction: from then on the result
        is deleted for every read (the Iceberg delete that takes it out of the results
        table's files follows: lake.delete_result)."""
        node_id = lineage_rows[0][1] if lineage_rows else None
        with self._engine.transaction(
            lambda why: f"cannot record the deletion of {activity_event_id!r}: {why}"
        ) as conn:
            Engine.executemany(
                conn,
                self._engine.insert(DELETIONS),
                DELETION_COLUMNS,
                [
                    (
                        activity_event_id,
                        root_id,
                        calculated_at,
                        deleted_at,
                        deleted_by,
                        reason,
                        node_id,
                    )
                ],
            )
            ledger.insert_lineage_rows(conn, lineage_rows)

    def deletions(self, root_id: str | None = None) -> list[tuple[str, str, str]]:
        """``(activity_event_id, root_id, deletion_node_id)`` of every deleted result (of one
        root, or of all), oldest first."""
        sql = "SELECT activity_event_id, root_id, deletion_node_id FROM emission_deletions"
        params: dict[str, Any] = {}
        if root_id is not None:
            sql += " WHERE root_id = :root_id"
            params["root_id"] = root_id
        rows = self._engine.rows(sql + " ORDER BY deleted_at", params)
        return [(row[0], row[1], row[2]) for row in rows]

    def deleted_record_ids(self) -> set[str]:
        """Records whose results an admin deleted (tombstones)."""
        return {record_id for record_id, _root, _node in self.deletions()}

    # -- results of a workspace from before the lake -------------------------------------

    def has_legacy_results(self) -> bool:
        """Whether results are still in the database tables of before the lake."""
        return bool(
            self._engine.rows(
                "SELECT 1 FROM emissions UNION ALL SELECT 1 FROM emissions_history LIMIT 1"
            )
        )

    def legacy_results(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The results of before the lake: the current rows (EMISSION_COLUMNS) and the
        earlier ones (EMISSION_COLUMNS, superseded_at, superseded_by_root)."""
        current = self._engine.rows(f"SELECT {_COLUMNS} FROM emissions ORDER BY activity_event_id")
        history = self._engine.rows(
            f"SELECT {_COLUMNS}, superseded_at, superseded_by_root FROM emissions_history "
            "ORDER BY superseded_at"
        )
        return [tuple(row) for row in current], [tuple(row) for row in history]

    def adopt_legacy_results(
        self, files: Sequence[LakeFile], earlier: Sequence[tuple[LakeFile, str, str | None]]
    ) -> None:
        """In one transaction: register the data files written from the tables of before
        the lake (``files`` pending their commit, ``earlier`` as files of earlier results,
        with when and by which root they were replaced), keep their deletions as
        tombstones, and empty those tables."""
        with self._engine.transaction() as conn:
            register_lake_files(self._engine, conn, files)
            insert_removed_files(self._engine, conn, earlier)
            conn.exec_driver_sql(
                "INSERT INTO emission_deletions (activity_event_id, root_id, calculated_at, "
                "deleted_at, deleted_by, deletion_reason, deletion_node_id) "
                "SELECT activity_event_id, root_id, calculated_at, superseded_at, deleted_by, "
                "coalesce(deletion_reason, ''), deletion_node_id FROM emissions_history "
                "WHERE deletion_node_id IS NOT NULL"
            )
            conn.exec_driver_sql("DELETE FROM emissions")
            conn.exec_driver_sql("DELETE FROM emissions_history")

    # -- queries -------------------------------------------------------------------------

    def replaced_count(self, where: EmissionFilter) -> int:
        """How many current results matching ``where`` replaced an earlier result of the
        same activity_event_id that came from another input file (another root)."""
        if not self._has_removed_results():
            return 0
        condition, params = where.where("$")
        joiner = " AND " if condition else " WHERE "
        rows = self._lake_rows(
            f"SELECT count(*) FROM emissions{condition}{joiner}activity_event_id IN ("
            "SELECT activity_event_id FROM emissions_history WHERE superseded_by_root IS "
            "NOT NULL AND root_id IS DISTINCT FROM superseded_by_root)",
            params,
        )
        return int(rows[0][0])

    def failure_stats(self, where: EmissionFilter) -> dict[str, Any]:
        """How many records matching ``where`` could not be calculated, by reason code."""
        condition, params = where.where()
        rows = self._engine.rows(
            "SELECT reason_code, count(*) AS records FROM calculation_failures"
            f"{condition} GROUP BY reason_code ORDER BY count(*) DESC, reason_code",
            params,
        )
        by_reason = {row[0]: row[1] for row in rows}
        return {"records_failed": sum(by_reason.values()), "failed_by_reason": by_reason}

    def emission_history(self, activity_event_id: str) -> list[dict[str, Any]]:
        """Earlier results of one record, oldest first (the current one is in emissions)."""
        if not self._has_removed_results():
            return []
        return self._lake_dicts(
            "SELECT * FROM emissions_history WHERE activity_event_id = $id ORDER BY superseded_at",
            {"id": activity_event_id},
            record_id=activity_event_id,
        )

    def emissions_of_root(self, root_id: str | None) -> list[dict[str, Any]]:
        """Current results, of one root or of all."""
        if root_id is None:
            return self._lake_dicts("SELECT * FROM emissions ORDER BY activity_event_id")
        return self._lake_dicts(
            "SELECT * FROM emissions WHERE root_id = $root_id ORDER BY activity_event_id",
            {"root_id": root_id},
        )

    def replaced_from_other_roots(self, root_id: str) -> list[dict[str, Any]]:
        """Results of other roots that this root's records replaced (same
        activity_event_id): ``[{"root_id", "records"}]``, most first."""
        if not self._has_removed_results():
            return []
        rows = self._lake_rows(
            "SELECT root_id, count(DISTINCT activity_event_id) AS records FROM emissions_history "
            "WHERE superseded_by_root = $root_id AND root_id IS DISTINCT FROM $root_id "
            "GROUP BY root_id ORDER BY records DESC, root_id",
            {"root_id": root_id},
        )
        return [{"root_id": r[0], "records": int(r[1])} for r in rows]

    def emission_roots(self) -> list[str]:
        """The roots that have current results."""
        return [str(r[0]) for r in self._lake_rows("SELECT DISTINCT root_id FROM emissions")]

    def iter_emission_check_rows(self, root_id: str) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """A root's current results grouped by enriched file, one file at a time:
        ``(enriched_location, [(activity_event_id, *RESULT_NUMBER_COLUMNS)])``,
        for lineage verify (streamed: memory holds one file's results)."""
        sql = (
            f"SELECT enriched_location, activity_event_id, {', '.join(RESULT_NUMBER_COLUMNS)} "
            "FROM emissions WHERE root_id = $root_id ORDER BY enriched_location"
        )
        location: str | None = None
        group: list[tuple[Any, ...]] = []
        for row in self._lake_stream(sql, {"root_id": root_id}, 20_000):
            if row[0] != location:
                if location is not None:
                    yield location, group
                location, group = row[0], []
            group.append(tuple(row[1:]))
        if location is not None:
            yield location, group

    def current_locations(self, activity_event_ids: Sequence[str]) -> dict[str, str]:
        """The enriched file of each given record's current result (records without one
        are left out)."""
        if not activity_event_ids:
            return {}
        rows = self._lake_rows(
            "SELECT activity_event_id, enriched_location FROM emissions "
            "WHERE activity_event_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": list(activity_event_ids)},
        )
        return {str(row[0]): str(row[1]) for row in rows}

    def enriched_locations(self) -> list[tuple[str, int]]:
        """Each enriched file that holds current results, with its record count."""
        rows = self._lake_rows(
            "SELECT enriched_location, count(*) FROM emissions "
            "GROUP BY enriched_location ORDER BY min(calculated_at), enriched_location"
        )
        return [(row[0], row[1]) for row in rows]

    def current_ids_at(self, enriched_location: str, record_ids: Sequence[str]) -> list[str]:
        """Those of ``record_ids`` whose current result lives in an enriched file."""
        if not record_ids:
            return []
        rows = self._lake_rows(
            "SELECT activity_event_id FROM emissions WHERE activity_event_id IN "
            "(SELECT unnest($ids::VARCHAR[])) AND enriched_location = $location",
            {"ids": list(record_ids), "location": enriched_location},
        )
        return [row[0] for row in rows]

    def emission(self, activity_event_id: str) -> dict[str, Any] | None:
        """One record's current emissions row, or None."""
        rows = self._lake_dicts(
            "SELECT * FROM emissions WHERE activity_event_id = $id",
            {"id": activity_event_id},
            record_id=activity_event_id,
        )
        return rows[0] if rows else None

    def emissions_count(self, root_id: str | None = None) -> int:
        """How many records have current results (optionally of one root)."""
        # The registry knows each current file's record count: no file is read.
        sql = (
            "SELECT coalesce(sum(record_count), 0) FROM lake_files WHERE table_name = :table "
            "AND state = 'current'"
        )
        params: dict[str, Any] = {"table": RESULTS_TABLE}
        if root_id is not None:
            sql += " AND root_id = :root_id"
            params["root_id"] = root_id
        return int(self._engine.scalar(sql, params))

    def emission_totals(self, root_id: str, by: str) -> list[dict[str, Any]]:
        """Record counts and tonnes of one root, grouped by a record column; every
        quantity per scope 2 method (never the two added)."""
        if by not in ("activity", "category", "scope", "asset_id"):
            raise DatabaseError(f"cannot group emissions by {by!r}")
        rows = self._lake_dicts(
            f"SELECT {by} AS key, {_totals_sql()} FROM emissions WHERE root_id = $root_id "
            f"GROUP BY {by} ORDER BY {_by_method('co2e_ar4_tonnes', 'location_based')} DESC, "
            f"{_by_method('co2e_ar4_tonnes', 'market_based')} DESC, key",
            {"root_id": root_id},
        )
        return [{by: row["key"], **_totals_of(row)} for row in rows]

    def find_emissions(
        self,
        where: EmissionFilter,
        *,
        sort: str = "activity_event_id",
        descending: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of current results matching ``where``, sorted by one of
        EMISSION_SORT_COLUMNS (then by record id)."""
        return [
            dict(zip(EMISSION_COLUMNS, row, strict=True))
            for row in self.iter_emissions(
                where, sort=sort, descending=descending, limit=limit, offset=offset
            )
        ]

    def iter_emissions(
        self,
        where: EmissionFilter,
        *,
        sort: str = "activity_event_id",
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[tuple[Any, ...]]:
        """Current results matching ``where`` as tuples in EMISSION_COLUMNS order, streamed."""
        if sort not in EMISSION_SORT_COLUMNS:
            raise DatabaseError(
                f"cannot sort emissions by {sort!r}; "
                f"choose one of {', '.join(EMISSION_SORT_COLUMNS)}"
            )
        condition, params = where.where("$")
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {_COLUMNS} FROM emissions{condition} "
            f"ORDER BY {sort} {direction}, activity_event_id {direction}"
        )
        if limit is not None:
            sql += " LIMIT $limit"
            params["limit"] = limit
        if offset:
            sql += " OFFSET $offset"
            params["offset"] = offset
        yield from self._lake_stream(sql, params)

    def emission_stats(self, where: EmissionFilter) -> dict[str, Any]:
        """Record count and tonnes (CO2, CH4, N2O, CO2e AR4/AR5/AR6, each per scope 2
        method; biogenic CO2) of the results matching ``where``, and how many matching
        records could not be calculated."""
        condition, params = where.where("$")
        row = self._lake_dicts(f"SELECT {_totals_sql()} FROM emissions{condition}", params)[0]
        return {**_totals_of(row), **self.failure_stats(where)}

    def emissions_by(self, by: str, where: EmissionFilter) -> list[dict[str, Any]]:
        """Record counts and tonnes of the results matching ``where``, grouped by one of
        EMISSION_GROUPS (each quantity per scope 2 method), largest location-based AR5
        total first."""
        if by not in EMISSION_GROUPS:
            raise DatabaseError(
                f"cannot group emissions by {by!r}; choose one of {', '.join(EMISSION_GROUPS)}"
            )
        condition, params = where.where("$")
        expression = EMISSION_GROUPS[by]
        order = (
            "key"
            if by == "month"
            else f"{_by_method('co2e_ar5_tonnes', 'location_based')} DESC, key"
        )
        rows = self._lake_dicts(
            f"SELECT {expression} AS key, {_totals_sql()} "
            f"FROM emissions{condition} GROUP BY key ORDER BY {order}",
            params,
        )
        return [{"key": row["key"], **_totals_of(row)} for row in rows]

    def inventory_rows(
        self,
        where: EmissionFilter,
        gwp: str,
        by: str | None = None,
        factor_set: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Tonnes of the results matching ``where`` per inventory bucket
        (INVENTORY_BUCKET), scope 3 category and, with ``by``, INVENTORY_GROUPS key.

        ``factor_set`` (name, version) reads, instead of the current results, each
        current record's result with that factor set: the current one if it is, else
        the latest it replaced (the result history): the inventory as it was.
        """
        if gwp not in ("ar4", "ar5", "ar6"):
            raise DatabaseError(f"unknown GWP set {gwp!r}")
        if by is not None and by not in INVENTORY_GROUPS:
            raise DatabaseError(f"cannot break an inventory down by {by!r}")
        condition, params = where.where("$")
        source = "emissions"
        if factor_set is not None:
            name, version = factor_set
            source = (
                f"(SELECT {_COLUMNS} FROM emissions WHERE factor_set = $set_name "
                "AND factor_version = $set_version "
                f"UNION ALL SELECT {_COLUMNS} FROM emissions_history h "
                "WHERE h.factor_set = $set_name AND h.factor_version = $set_version "
                "AND h.activity_event_id IN (SELECT activity_event_id FROM emissions) "
                "AND h.activity_event_id NOT IN (SELECT activity_event_id FROM emissions "
                "WHERE factor_set = $set_name AND factor_version = $set_version) "
                "AND h.superseded_at = (SELECT max(h2.superseded_at) FROM emissions_history h2 "
                "WHERE h2.activity_event_id = h.activity_event_id "
                "AND h2.factor_set = $set_name AND h2.factor_version = $set_version)) AS chosen"
            )
            params.update({"set_name": name, "set_version": version})
        key = INVENTORY_GROUPS[by] if by else "NULL"
        return self._lake_dicts(
            f"SELECT {INVENTORY_BUCKET} AS bucket, scope3_category, {key} AS key, "
            "count(*) AS records, coalesce(fsum(co2_tonnes), 0) AS co2, "
            "coalesce(fsum(ch4_tonnes), 0) AS ch4, coalesce(fsum(n2o_tonnes), 0) AS n2o, "
            f"coalesce(fsum(co2e_{gwp}_tonnes), 0) AS co2e, "
            "coalesce(fsum(biogenic_co2_tonnes), 0) AS biogenic "
            f"FROM {source}{condition} GROUP BY bucket, scope3_category, key "
            "ORDER BY key, bucket, scope3_category",
            params,
        )

    def inventory_methodology(self, where: EmissionFilter) -> dict[str, Any]:
        """The factor sets, methane bases and AR6 methane GWPs of the results matching
        ``where``, with record counts."""
        condition, params = where.where("$")
        sets = self._lake_dicts(
            "SELECT factor_set, factor_version, count(*) AS records "
            f"FROM emissions{condition} "
            "GROUP BY factor_set, factor_version ORDER BY factor_set, factor_version",
            params,
        )
        bases = self._lake_dicts(
            "SELECT coalesce(ch4_basis, 'not recorded') AS basis, ar6_ch4_gwp, "
            f"count(*) AS records FROM emissions{condition} GROUP BY basis, ar6_ch4_gwp "
            "ORDER BY basis",
            params,
        )
        return {"factor_sets": sets, "ch4_bases": bases}

    def emission_values(self, column: str, limit: int = 1000) -> list[Any]:
        """The distinct values of one filterable column (scope, category, activity,
        asset_id), sorted; for choosing a filter."""
        if column not in ("scope", "category", "activity", "asset_id"):
            raise DatabaseError(f"cannot list values of emissions column {column!r}")
        rows = self._lake_rows(
            f"SELECT DISTINCT {column} FROM emissions WHERE {column} IS NOT NULL "
            f"ORDER BY {column} LIMIT $limit",
            {"limit": limit},
        )
        return [row[0] for row in rows]
