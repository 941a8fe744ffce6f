"""Results: current emissions, their history, and the records that could not be calculated.

Every statement on ``emissions``, ``emissions_history`` and ``calculation_failures``
lives in this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._exceptions import DatabaseError, StaleRow
from . import ledger
from .base import Part, table, utc_now
from .engine import Engine

if TYPE_CHECKING:
    from .engine import AnyRow

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
        "CAST((CAST(substr(origin_measurement_timestamp, 6, 2) AS INTEGER) + 2) / 3 AS TEXT)"
    ),
    "year": "substr(origin_measurement_timestamp, 1, 4)",
    "asset": "asset_id",
    "category": "category",
}
"""What an inventory can be broken down by, and the SQL expression of each."""

EMISSIONS = table("emissions", EMISSION_COLUMNS)
FAILURES = table("calculation_failures", FAILURE_COLUMNS)

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

    def where(self) -> tuple[str, dict[str, Any]]:
        """The SQL condition (``WHERE ...`` or empty) and its named parameters (``f_...``)."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for column in ("scope", "category", "activity", "asset_id", "root_id", "execution_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = :f_{column}")
                params[f"f_{column}"] = value
        if self.search:
            pattern = "%" + "".join(f"\\{c}" if c in "%_\\" else c for c in self.search) + "%"
            clauses.append(
                "("
                + " OR ".join(
                    f"{c} LIKE :f_search ESCAPE '\\'"
                    for c in ("activity_event_id", "asset_id", "category", "activity")
                )
                + ")"
            )
            params["f_search"] = pattern
        if self.measured_from:
            clauses.append("origin_measurement_timestamp >= :f_from")
            params["f_from"] = self.measured_from
        if self.measured_to:
            clauses.append("substr(origin_measurement_timestamp, 1, length(:f_to)) <= :f_to")
            params["f_to"] = self.measured_to
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _by_method(column: str, method: str) -> str:
    """SQL: ``column`` for a total of one scope 2 method. Scope 2 results of the other
    method (or of none: results calculated before factors said) count as 0, so the two
    totals are side by side and never added."""
    return (
        f"coalesce(sum(CASE WHEN scope = 2 AND scope2_method IS DISTINCT FROM "
        f"'{METHODS[method]}' THEN 0 ELSE {column} END), 0)"
    )


def _totals_sql() -> str:
    """SELECT list of the totals every summary gives (see :func:`_totals_of`)."""
    parts = ["count(*) AS records", "coalesce(sum(biogenic_co2_tonnes), 0) AS biogenic"]
    for method in METHODS:
        for gas in ("co2", "ch4", "n2o"):
            parts.append(f"{_by_method(f'{gas}_tonnes', method)} AS {method}_{gas}")
        for gwp in ("ar4", "ar5", "ar6"):
            parts.append(f"{_by_method(f'co2e_{gwp}_tonnes', method)} AS {method}_{gwp}")
    return ", ".join(parts)


def _totals_of(row: AnyRow) -> dict[str, Any]:
    """Totals of a row selected with :func:`_totals_sql`: each quantity per scope 2
    method, ``{"location_based": ..., "market_based": ...}``."""
    found = row._mapping
    return {
        "records": found["records"],
        **{
            f"{gas}_tonnes": {m: found[f"{m}_{gas}"] for m in METHODS}
            for gas in ("co2", "ch4", "n2o")
        },
        "co2e_tonnes": {m: {g: found[f"{m}_{g}"] for g in ("ar4", "ar5", "ar6")} for m in METHODS},
        "biogenic_co2_tonnes": found["biogenic"],
    }


def upsert_emission_rows(engine: Engine, conn: Connection, batch: Sequence[Sequence[Any]]) -> None:
    """Insert or replace results (EMISSION_COLUMNS order) inside the caller's transaction."""
    # A replaced result stays queryable: copy it to the history first, unless the
    # same execution writes it again (a resumed or retried batch). Set-based, in
    # chunks: a fresh file costs one indexed lookup per chunk, not per record.
    now = utc_now()
    root_id, execution_id = batch[0][1], batch[0][2]
    ids = [row[0] for row in batch]
    Engine.execute_in(
        conn,
        f"INSERT INTO emissions_history ({_COLUMNS}, superseded_at, superseded_by_root) "
        f"SELECT {_COLUMNS}, :now, :root_id FROM emissions WHERE activity_event_id IN :ids "
        "AND execution_id IS DISTINCT FROM :execution_id",
        "ids",
        ids,
        {"now": now, "root_id": root_id, "execution_id": execution_id},
        _ID_CHUNK,
    )
    insert = engine.insert(EMISSIONS)
    Engine.executemany(
        conn,
        insert.on_conflict_do_update(
            index_elements=["activity_event_id"],
            set_={c: insert.excluded[c] for c in EMISSION_COLUMNS[1:]},
        ),
        EMISSION_COLUMNS,
        batch,
    )
    # A record calculated now is no longer a failure (e.g. after a redrive). A failure
    # of a record with an id is keyed by that id (its primary key).
    Engine.execute_in(
        conn,
        "DELETE FROM calculation_failures WHERE failure_key IN :ids",
        "ids",
        ids,
        None,
        _ID_CHUNK,
    )


def insert_failure_rows(engine: Engine, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Store records that could not be calculated inside the caller's transaction."""
    insert = engine.insert(FAILURES)
    Engine.executemany(
        conn,
        insert.on_conflict_do_update(
            index_elements=["failure_key"],
            set_={c: insert.excluded[c] for c in FAILURE_COLUMNS[1:]},
        ),
        FAILURE_COLUMNS,
        rows,
    )


class Results(Part):
    """Current results, their history and calculation failures."""

    def upsert_emissions(self, rows: Iterable[Sequence[Any]]) -> int:
        """Insert or replace emission rows (EMISSION_COLUMNS order), keyed by record id."""
        batch = list(rows)
        if not batch:
            return 0
        with self._engine.transaction() as conn:
            upsert_emission_rows(self._engine, conn, batch)
        return len(batch)

    def record_failures(self, rows: Sequence[Sequence[Any]]) -> None:
        """Store records that could not be calculated (FAILURE_COLUMNS order)."""
        if rows:
            with self._engine.transaction() as conn:
                insert_failure_rows(self._engine, conn, rows)

    def replaced_count(self, where: EmissionFilter) -> int:
        """How many current results matching ``where`` replaced an earlier result of the
        same activity_event_id that came from another input file (another root)."""
        condition, params = where.where()
        joiner = " AND " if condition else " WHERE "
        return int(
            self._engine.scalar(
                f"SELECT count(*) FROM emissions{condition}{joiner}activity_event_id IN ("
                "SELECT activity_event_id FROM emissions_history WHERE superseded_by_root IS "
                "NOT NULL AND root_id IS DISTINCT FROM superseded_by_root)",
                params,
            )
        )

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

    def commit_results(
        self, emission_rows: Sequence[Sequence[Any]], lineage_rows: Sequence[Sequence[Any]]
    ) -> None:
        """Replace results and add their lineage nodes in one transaction."""
        with self._engine.transaction(
            lambda reason: f"a lineage node already exists: {reason}"
        ) as conn:
            if emission_rows:
                upsert_emission_rows(self._engine, conn, emission_rows)
            if lineage_rows:
                ledger.insert_lineage_rows(conn, lineage_rows)

    def delete_emission(
        self,
        activity_event_id: str,
        calculated_at: str,
        *,
        deleted_at: str,
        deleted_by: str,
        reason: str,
        lineage_rows: Sequence[Sequence[Any]],
    ) -> bool:
        """Tombstone a record's current result: move it to the history with who deleted it,
        when and why, and add its ``RECORD_DELETED`` node, in one transaction. Returns
        False (changing nothing) when the current result is no longer the one calculated
        at ``calculated_at`` (deleted or replaced meanwhile)."""
        node_id = lineage_rows[0][1] if lineage_rows else None
        try:
            with self._engine.transaction(
                lambda why: f"cannot record the deletion of {activity_event_id!r}: {why}"
            ) as conn:
                moved = conn.execute(
                    sa.text(
                        f"INSERT INTO emissions_history ({_COLUMNS}, superseded_at, deleted_by, "
                        f"deletion_reason, deletion_node_id) SELECT {_COLUMNS}, :deleted_at, "
                        ":deleted_by, :reason, :node_id FROM emissions "
                        "WHERE activity_event_id = :id AND calculated_at = :calculated_at"
                    ),
                    {
                        "deleted_at": deleted_at,
                        "deleted_by": deleted_by,
                        "reason": reason,
                        "node_id": node_id,
                        "id": activity_event_id,
                        "calculated_at": calculated_at,
                    },
                ).rowcount
                if moved != 1:
                    raise StaleRow
                conn.execute(
                    sa.text("DELETE FROM emissions WHERE activity_event_id = :id"),
                    {"id": activity_event_id},
                )
                ledger.insert_lineage_rows(conn, lineage_rows)
        except StaleRow:
            return False  # rolled back
        return True

    def deletions(self, root_id: str | None = None) -> list[tuple[str, str, str]]:
        """``(activity_event_id, root_id, deletion_node_id)`` of every deleted result (of one
        root, or of all), oldest first."""
        sql = (
            "SELECT activity_event_id, root_id, deletion_node_id FROM emissions_history "
            "WHERE deletion_node_id IS NOT NULL"
        )
        params: dict[str, Any] = {}
        if root_id is not None:
            sql += " AND root_id = :root_id"
            params["root_id"] = root_id
        rows = self._engine.rows(sql + " ORDER BY superseded_at", params)
        return [(row[0], row[1], row[2]) for row in rows]

    def emission_history(self, activity_event_id: str) -> list[dict[str, Any]]:
        """Earlier results of one record, oldest first (the current one is in emissions)."""
        return self._engine.dicts(
            "SELECT * FROM emissions_history WHERE activity_event_id = :id ORDER BY superseded_at",
            {"id": activity_event_id},
        )

    def emissions_of_root(self, root_id: str | None) -> list[dict[str, Any]]:
        """Current results, of one root or of all."""
        if root_id is None:
            return self._engine.dicts("SELECT * FROM emissions ORDER BY activity_event_id")
        return self._engine.dicts(
            "SELECT * FROM emissions WHERE root_id = :root_id ORDER BY activity_event_id",
            {"root_id": root_id},
        )

    def replaced_from_other_roots(self, root_id: str) -> list[dict[str, Any]]:
        """Results of other roots that this root's records replaced (same
        activity_event_id): ``[{"root_id", "records"}]``, most first."""
        rows = self._engine.rows(
            "SELECT root_id, count(DISTINCT activity_event_id) AS records FROM emissions_history "
            "WHERE superseded_by_root = :root_id AND root_id IS DISTINCT FROM :root_id "
            "GROUP BY root_id ORDER BY records DESC, root_id",
            {"root_id": root_id},
        )
        return [{"root_id": r[0], "records": int(r[1])} for r in rows]

    def emission_roots(self) -> list[str]:
        """The roots that have current results."""
        return [str(r[0]) for r in self._engine.rows("SELECT DISTINCT root_id FROM emissions")]

    def iter_emission_check_rows(self, root_id: str) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """A root's current results grouped by enriched file, one file at a time:
        ``(enriched_location, [(activity_event_id, *RESULT_NUMBER_COLUMNS)])``,
        for lineage verify (streamed: memory holds one file's results)."""
        sql = (
            f"SELECT enriched_location, activity_event_id, {', '.join(RESULT_NUMBER_COLUMNS)} "
            "FROM emissions WHERE root_id = :root_id ORDER BY enriched_location"
        )
        location: str | None = None
        group: list[tuple[Any, ...]] = []
        for row in self._engine.stream(
            sql, {"root_id": root_id}, 20_000, "reading the results of {db} failed"
        ):
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
        found: dict[str, str] = {}
        for row in self._engine.rows_in(
            "SELECT activity_event_id, enriched_location FROM emissions "
            "WHERE activity_event_id IN :ids",
            "ids",
            activity_event_ids,
        ):
            found[str(row[0])] = str(row[1])
        return found

    def deleted_record_ids(self) -> set[str]:
        """Records whose results an admin deleted (tombstones)."""
        return {record_id for record_id, _root, _node in self.deletions()}

    def enriched_locations(self) -> list[tuple[str, int]]:
        """Each enriched file that holds current results, with its record count."""
        rows = self._engine.rows(
            "SELECT enriched_location, count(*) FROM emissions "
            "GROUP BY enriched_location ORDER BY min(calculated_at), enriched_location"
        )
        return [(row[0], row[1]) for row in rows]

    def current_ids_at(self, enriched_location: str, record_ids: Sequence[str]) -> list[str]:
        """Those of ``record_ids`` whose current result lives in an enriched file (primary
        key lookups: no index on the location is kept, it cost a tenth of every insert)."""
        rows = self._engine.rows_in(
            "SELECT activity_event_id FROM emissions WHERE activity_event_id IN :ids "
            "AND enriched_location = :location",
            "ids",
            record_ids,
            {"location": enriched_location},
        )
        return [row[0] for row in rows]

    def emission(self, activity_event_id: str) -> dict[str, Any] | None:
        """One record's current emissions row, or None."""
        rows = self._engine.dicts(
            "SELECT * FROM emissions WHERE activity_event_id = :id", {"id": activity_event_id}
        )
        return rows[0] if rows else None

    def emissions_count(self, root_id: str | None = None) -> int:
        """How many records have current results (optionally of one root)."""
        if root_id is None:
            return int(self._engine.scalar("SELECT count(*) FROM emissions"))
        return int(
            self._engine.scalar(
                "SELECT count(*) FROM emissions WHERE root_id = :root_id", {"root_id": root_id}
            )
        )

    def emission_totals(self, root_id: str, by: str) -> list[dict[str, Any]]:
        """Record counts and tonnes of one root, grouped by a record column; every
        quantity per scope 2 method (never the two added)."""
        if by not in ("activity", "category", "scope", "asset_id"):
            raise DatabaseError(f"cannot group emissions by {by!r}")
        rows = self._engine.rows(
            f"SELECT {by} AS key, {_totals_sql()} FROM emissions WHERE root_id = :root_id "
            f"GROUP BY {by} ORDER BY {_by_method('co2e_ar4_tonnes', 'location_based')} DESC, "
            f"{_by_method('co2e_ar4_tonnes', 'market_based')} DESC, key",
            {"root_id": root_id},
        )
        return [{by: row._mapping["key"], **_totals_of(row)} for row in rows]

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
        condition, params = where.where()
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {_COLUMNS} FROM emissions{condition} "
            f"ORDER BY {sort} {direction}, activity_event_id {direction}"
        )
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        if offset:
            sql += " OFFSET :offset"
            params["offset"] = offset
        yield from self._engine.stream(sql, params, 5_000, "reading emissions from {db} failed")

    def emission_stats(self, where: EmissionFilter) -> dict[str, Any]:
        """Record count and tonnes (CO2, CH4, N2O, CO2e AR4/AR5/AR6, each per scope 2
        method; biogenic CO2) of the results matching ``where``, and how many matching
        records could not be calculated."""
        condition, params = where.where()
        row = self._engine.rows(f"SELECT {_totals_sql()} FROM emissions{condition}", params)[0]
        return {**_totals_of(row), **self.failure_stats(where)}

    def emissions_by(self, by: str, where: EmissionFilter) -> list[dict[str, Any]]:
        """Record counts and tonnes of the results matching ``where``, grouped by one of
        EMISSION_GROUPS (each quantity per scope 2 method), largest location-based AR5
        total first."""
        if by not in EMISSION_GROUPS:
            raise DatabaseError(
                f"cannot group emissions by {by!r}; choose one of {', '.join(EMISSION_GROUPS)}"
            )
        condition, params = where.where()
        expression = EMISSION_GROUPS[by]
        order = (
            "key"
            if by == "month"
            else f"{_by_method('co2e_ar5_tonnes', 'location_based')} DESC, key"
        )
        rows = self._engine.rows(
            f"SELECT {expression} AS key, {_totals_sql()} "
            f"FROM emissions{condition} GROUP BY key ORDER BY {order}",
            params,
        )
        return [{"key": row._mapping["key"], **_totals_of(row)} for row in rows]

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
        condition, params = where.where()
        source = "emissions"
        if factor_set is not None:
            name, version = factor_set
            source = (
                f"(SELECT {_COLUMNS} FROM emissions WHERE factor_set = :set_name "
                "AND factor_version = :set_version "
                f"UNION ALL SELECT {_COLUMNS} FROM emissions_history h "
                "WHERE h.factor_set = :set_name AND h.factor_version = :set_version "
                "AND h.activity_event_id IN (SELECT activity_event_id FROM emissions) "
                "AND h.activity_event_id NOT IN (SELECT activity_event_id FROM emissions "
                "WHERE factor_set = :set_name AND factor_version = :set_version) "
                "AND h.superseded_at = (SELECT max(h2.superseded_at) FROM emissions_history h2 "
                "WHERE h2.activity_event_id = h.activity_event_id "
                "AND h2.factor_set = :set_name AND h2.factor_version = :set_version)) AS chosen"
            )
            params.update({"set_name": name, "set_version": version})
        key = INVENTORY_GROUPS[by] if by else "NULL"
        return self._engine.dicts(
            f"SELECT {INVENTORY_BUCKET} AS bucket, scope3_category, {key} AS key, "
            "count(*) AS records, coalesce(sum(co2_tonnes), 0) AS co2, "
            "coalesce(sum(ch4_tonnes), 0) AS ch4, coalesce(sum(n2o_tonnes), 0) AS n2o, "
            f"coalesce(sum(co2e_{gwp}_tonnes), 0) AS co2e, "
            "coalesce(sum(biogenic_co2_tonnes), 0) AS biogenic "
            f"FROM {source}{condition} GROUP BY bucket, scope3_category, key "
            "ORDER BY key, bucket, scope3_category",
            params,
        )

    def inventory_methodology(self, where: EmissionFilter) -> dict[str, Any]:
        """The factor sets, methane bases and AR6 methane GWPs of the results matching
        ``where``, with record counts."""
        condition, params = where.where()
        sets = self._engine.dicts(
            "SELECT factor_set, factor_version, count(*) AS records "
            f"FROM emissions{condition} "
            "GROUP BY factor_set, factor_version ORDER BY factor_set, factor_version",
            params,
        )
        bases = self._engine.dicts(
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
        rows = self._engine.rows(
            f"SELECT DISTINCT {column} FROM emissions WHERE {column} IS NOT NULL "
            f"ORDER BY {column} LIMIT :limit",
            {"limit": limit},
        )
        return [row[0] for row in rows]
