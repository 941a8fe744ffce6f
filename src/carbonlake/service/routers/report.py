"""The GHG Protocol inventory (`carbonlake report` over HTTP)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from ... import report as report_module
from ..._exceptions import ConfigurationError
from ...calculate import factors as factors_module
from .._problems import ProblemError, responses
from .._state import ServiceDep

Gwp = Literal["ar4", "ar5", "ar6"]
"""report.GWP_SETS, spelled out for the OpenAPI document."""
Breakdown = Literal["month", "quarter", "year", "asset", "category"]
"""report.BREAKDOWNS, spelled out likewise."""
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def build(read: Any, write: Any) -> APIRouter:
    """The report route (a read)."""
    router = APIRouter(prefix="/report", tags=["emissions"], dependencies=[read])

    @router.get(
        "",
        summary="The GHG Protocol inventory",
        responses={
            **responses(400, 401, 403, 404),
            200: {
                "description": "The inventory as JSON (default), CSV or an HTML page.",
                "content": {"application/json": {}, "text/csv": {}, "text/html": {}},
            },
        },
    )
    async def inventory(
        service: ServiceDep,
        period_from: Annotated[
            str | None,
            Query(alias="from", pattern=MONTH, description="First month, YYYY-MM."),
        ] = None,
        period_to: Annotated[
            str | None,
            Query(alias="to", pattern=MONTH, description="Last month (included), YYYY-MM."),
        ] = None,
        gwp: Annotated[Gwp, Query(description="GWP set of the CO2e totals.")] = "ar5",
        by: Annotated[
            Breakdown | None, Query(description="Also break the totals down by this.")
        ] = None,
        format: Annotated[
            Literal["json", "csv", "html"], Query(description="Answer format.")
        ] = "json",
        compare_to: Annotated[
            str | None,
            Query(
                max_length=200,
                description="Restatement against a factor set (NAME, NAME@VERSION or "
                "VERSION) whose results `recalculate` replaced: each total before, after "
                "and the change.",
            ),
        ] = None,
    ) -> Any:
        """Scope 1, scope 2 location-based and market-based (side by side, never added),
        scope 3 by GHG Protocol category, `total_location_based`, `total_market_based`,
        biogenic CO2 outside the scopes, `coverage` (records that could not be
        calculated, by reason), `breakdown` and `methodology`: the same document as
        `carbonlake report --json` (docs/report.md)."""
        database = service.context.database

        def build_document() -> dict[str, Any]:
            document = report_module.inventory(
                database, period_from=period_from, period_to=period_to, gwp=gwp, by=by
            )
            if compare_to:
                # A factor set only: the service does not read files named in a request.
                document = report_module.compare(database, document, compare_to, snapshots=False)
            return document

        try:
            if compare_to:
                try:
                    factors_module.load_factor_set(compare_to, database)
                except ConfigurationError as exc:
                    raise ProblemError(404, str(exc)) from exc
            document = await run_in_threadpool(build_document)
        except ConfigurationError as exc:
            raise ProblemError(400, str(exc)) from exc
        if format == "csv":
            return Response(
                report_module.render(document, "csv"),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="inventory.csv"'},
            )
        if format == "html":
            return HTMLResponse(report_module.render(document, "html"))
        return document

    return router
