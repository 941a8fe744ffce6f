"""Calculated emissions: filtered, sorted pages as JSON or CSV, totals, one record."""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ..._exceptions import ConfigurationError, InputDataError
from ...calculate import factors as factors_module
from ...database import EMISSION_COLUMNS, EmissionFilter
from ...emissions import (
    MAX_REASON_CHARS,
    api_record,
    csv_safe_text,
    delete_record,
    record_results,
)
from .._problems import ProblemError, responses
from .._security import admin_name
from .._state import Service, ServiceDep

SortColumn = Literal[
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
]
"""database.EMISSION_SORT_COLUMNS, spelled out for the OpenAPI document (a test compares)."""
GroupBy = Literal["scope", "category", "activity", "asset", "month"]
"""database.EMISSION_GROUPS, spelled out likewise."""

TIMESTAMP_PATTERN = r"^\d{4}(-\d{2}(-\d{2}([T ][0-9:.]{2,15}(Z|[+-]\d{2}:?\d{2})?)?)?)?$"
TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
TIMESTAMP_HELP = "ISO 8601 date or prefix of one: 2019, 2019-10, 2019-10-05, 2019-10-05T12:00"

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _timestamp(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not TIMESTAMP.match(value):
        raise ProblemError(400, f"{name} {value[:40]!r} is not a time; give an {TIMESTAMP_HELP}")
    return value


def emission_filter(
    scope: Annotated[
        int | None, Query(ge=1, le=3, description="GHG Protocol scope, 1 to 3.")
    ] = None,
    category: Annotated[str | None, Query(max_length=200, description="Exact category.")] = None,
    activity: Annotated[str | None, Query(max_length=500, description="Exact activity.")] = None,
    asset_id: Annotated[str | None, Query(max_length=500, description="Exact asset id.")] = None,
    root_id: Annotated[
        str | None, Query(max_length=200, description="Records of one input file.")
    ] = None,
    execution_id: Annotated[
        str | None, Query(max_length=200, description="Records calculated by one execution.")
    ] = None,
    search: Annotated[
        str | None,
        Query(max_length=200, description="Text in record id, asset, category or activity."),
    ] = None,
    measured_from: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=40,
            pattern=TIMESTAMP_PATTERN,
            description=f"origin_measurement_timestamp at or after this ({TIMESTAMP_HELP}).",
        ),
    ] = None,
    measured_to: Annotated[
        str | None,
        Query(
            alias="to",
            max_length=40,
            pattern=TIMESTAMP_PATTERN,
            description="origin_measurement_timestamp up to and including this (2019-12 "
            "includes all of December).",
        ),
    ] = None,
) -> EmissionFilter:
    """The filter of an emissions request; every value is bound as a parameter."""
    return EmissionFilter(
        scope=scope,
        category=category or None,
        activity=activity or None,
        asset_id=asset_id or None,
        root_id=root_id or None,
        execution_id=execution_id or None,
        search=search or None,
        measured_from=_timestamp(measured_from, "from"),
        measured_to=_timestamp(measured_to, "to"),
    )


FilterDep = Annotated[EmissionFilter, Depends(emission_filter)]


def _write_csv(
    service: Service, where: EmissionFilter, sort: str, descending: bool, out: IO[str]
) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EMISSION_COLUMNS)
    # Text cells that a spreadsheet would run as formulas get a leading ' (OWASP).
    writer.writerows(
        [csv_safe_text(v) if isinstance(v, str) else v for v in row]
        for row in service.context.database.iter_emissions(where, sort=sort, descending=descending)
    )
    out.flush()
    out.seek(0)


def _stream(spool: IO[str]) -> Iterator[bytes]:
    try:
        while chunk := spool.read(1 << 16):
            yield chunk.encode("utf-8")
    finally:
        spool.close()


def _provenance(service: Service, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The factor that produced a result, from the factor-set version that produced it."""
    if not current:
        return None
    label = f"{current['factor_set']}@{current['factor_version']}"
    try:
        chosen = factors_module.load_factor_set(label, service.context.database)
    except ConfigurationError:
        return None
    found = chosen.factors.filter(chosen.factors["factor_id"] == current["factor_id"])
    if found.height == 0:
        return None
    return factors_module.describe_factor(found.row(0, named=True), chosen)


def build(read: Any, write: Any) -> APIRouter:
    """The emissions routes (reads, and an admin's delete)."""
    router = APIRouter(prefix="/emissions", tags=["emissions"], dependencies=[read])

    @router.get(
        "",
        summary="Query calculated emissions",
        responses={
            **responses(401, 403),
            200: {
                "description": "A page of records (JSON), or every matching record (CSV).",
                "content": {"application/json": {}, "text/csv": {}},
            },
        },
    )
    async def list_emissions(
        where: FilterDep,
        service: ServiceDep,
        sort: Annotated[SortColumn, Query(description="Column to sort by.")] = (
            "activity_event_id"
        ),
        order: Literal["asc", "desc"] = "asc",
        limit: Annotated[int, Query(ge=1, le=1000, description="Records per page (JSON).")] = 50,
        offset: Annotated[
            int, Query(ge=0, le=10_000_000, description="Records to skip (JSON).")
        ] = 0,
        format: Annotated[
            Literal["json", "csv"],
            Query(description="json: one page with totals; csv: every matching record."),
        ] = "json",
    ) -> Any:
        """Current results (each record once, its latest result) matching the filters.

        JSON: `{"total", "offset", "limit", "totals", "records": [...]}` where `totals`
        covers every matching record, not only the page; each record has the original's
        `geo` (`{"lat", "long"}`, null when the input had none) and `source`. CSV: every
        matching record, flat columns (`geo_lat`, `geo_long`), `activity_event_id` first.
        Deleted records (`DELETE /emissions/records/{id}`) are in neither."""
        descending = order == "desc"
        if format == "csv":
            # Written whole in one worker thread (the database connection is per thread),
            # then sent from memory or, past 8 MiB, from a temporary file.
            spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by _stream
                max_size=8 << 20, mode="w+", encoding="utf-8"
            )
            try:
                await run_in_threadpool(_write_csv, service, where, sort, descending, spool)
            except BaseException:
                spool.close()
                raise
            return StreamingResponse(
                _stream(spool),
                media_type=CSV_MEDIA_TYPE,
                headers={"Content-Disposition": 'attachment; filename="emissions.csv"'},
            )

        def page() -> dict[str, Any]:
            database = service.context.database
            totals = database.emission_stats(where)
            records = [
                api_record(row)
                for row in database.find_emissions(
                    where, sort=sort, descending=descending, limit=limit, offset=offset
                )
            ]
            return {
                "total": totals["records"],
                "offset": offset,
                "limit": limit,
                "totals": totals,
                "records": records,
            }

        return await run_in_threadpool(page)

    @router.get(
        "/summary",
        summary="Emission totals grouped by scope, category, activity, asset or month",
        responses=responses(401, 403),
    )
    def summary(
        by: Annotated[GroupBy, Query(description="What to group by.")],
        where: FilterDep,
        service: ServiceDep,
    ) -> dict[str, Any]:
        """Records and CO2e tonnes (AR4, AR5, AR6) per group, with the filters of
        `GET /emissions`; months are the first seven characters of
        origin_measurement_timestamp (2019-10)."""
        database = service.context.database
        return {
            "by": by,
            "groups": database.emissions_by(by, where),
            "totals": database.emission_stats(where),
        }

    @router.get(
        "/values",
        summary="The values each filter can take",
        responses=responses(401, 403),
    )
    def values(service: ServiceDep) -> dict[str, Any]:
        """Distinct scopes, categories, activities and asset ids of the current results
        (at most 1,000 each), for choosing filters."""
        database = service.context.database
        return {
            column: database.emission_values(column)
            for column in ("scope", "category", "activity", "asset_id")
        }

    @router.get(
        "/records/{activity_event_id:path}",
        summary="One record's results with factor provenance",
        responses=responses(401, 403),
    )
    def record(activity_event_id: str, service: ServiceDep) -> dict[str, Any]:
        """The record's current result, every earlier result it replaced (oldest first),
        and the factor that produced the current one, from the factor-set version that
        produced it (gases per unit, CO2e per unit, source). Results carry the record's
        `geo` and `source`; for a deleted record `current` is null and `deleted` says
        who deleted it, when and why."""
        try:
            found = record_results(service.context.database, activity_event_id)
        except InputDataError as exc:
            raise ProblemError(404, str(exc)) from exc
        found["factor"] = _provenance(service, found["current"])
        return found

    @router.delete(
        "/records/{activity_event_id:path}",
        summary="Delete one record's result (admin key only): a tombstone, nothing erased",
        responses=responses(401, 403, 409),
    )
    def delete(
        activity_event_id: str,
        reason: Annotated[
            str,
            Query(
                min_length=1,
                max_length=MAX_REASON_CHARS,
                description="Why the record is deleted; kept in the lineage ledger.",
            ),
        ],
        service: ServiceDep,
        admin: Annotated[str, Depends(admin_name)],
    ) -> dict[str, Any]:
        """Needs an admin key (`[server] admin_keys`). The record's current result leaves
        `GET /emissions`, the totals and the exports; it moves to the record's earlier
        results (`GET /emissions/records/{id}` shows it, with `deleted`), and a
        `RECORD_DELETED` lineage node records who (`api:` and the admin key's name), when
        and why, pointing at a deletion note whose SHA-256 `lineage verify` checks.
        `404` if the record has no result, `409` if it was already deleted."""
        database = service.context.database
        if database.emission(activity_event_id) is None:
            try:
                found = record_results(database, activity_event_id)
            except InputDataError as exc:
                raise ProblemError(404, str(exc)) from exc
            if found["deleted"]:
                deleted = found["deleted"]
                raise ProblemError(
                    409,
                    f"record {activity_event_id!r} was already deleted at "
                    f"{deleted['deleted_at']} by {deleted['deleted_by']}",
                )
            raise ProblemError(404, f"record {activity_event_id!r} has no current result")
        return delete_record(
            service.context.storage,
            database,
            activity_event_id,
            reason=reason,
            deleted_by=f"api:{admin}",
        )

    return router
