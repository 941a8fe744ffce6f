"""The carbonlake service: an HTTP API over the library, and the web page that uses it.

``create_app(settings)`` builds a FastAPI application over one workspace. The API
calls the same library functions as the command line; uploads and S3 events start
executions in a background pool so pages can follow them while they run. The page
is plain HTML, CSS and JavaScript under ``static/``, served by the same process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..context import Context
from ..executions import Pipeline
from ..settings import Settings, load_settings
from . import _problems, _security
from ._runner import Runner
from ._state import Service
from .routers import emissions, executions, factors, lineage, quality, report, uploads

log = logging.getLogger("carbonlake.service")

STATIC = Path(__file__).parent / "static"

PAGE_HEADERS = {
    # The page loads nothing from elsewhere and runs no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

DESCRIPTION = """\
Upload activity CSV files, follow their executions, query the calculated emissions
and walk the record-level lineage of a carbonlake workspace.

Writes need an API key (`X-API-Key: KEY` or `Authorization: Bearer KEY`); reads need
one when `[server] require_key_for_reads` is set or the service listens beyond
loopback; deleting a record needs an admin key (`[server] admin_keys`). Requests
must name one of `[server] allowed_hosts` as their Host. Errors are
`application/problem+json` documents (RFC 9457).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service over the workspace of ``settings`` (default: the active settings)."""
    settings = settings or load_settings()
    keys = _security.parse_keys(settings.server.api_keys)
    admins = _security.parse_admin_keys(settings.server.admin_keys)
    generated = None
    if not keys:
        generated = _security.new_key()
        keys = [generated]
    context = Context.open(settings)
    pipeline = Pipeline(context)
    runner = Runner(context.database, settings.pipeline.max_executions)
    service = Service(settings, context, pipeline, runner, keys, generated, admins)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # An app can be started again after a shutdown (test clients do that).
        pipeline.stop_requested.clear()
        runner.start()
        yield
        # Running executions stop after their current batches (ABORTED, resumable with
        # `carbonlake executions resume`); queued ones are dropped.
        pipeline.stop_requested.set()
        runner.shutdown()
        context.close()

    app = FastAPI(
        title="carbonlake",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "uploads", "description": "Start executions: uploads and S3 events."},
            {"name": "executions", "description": "Executions, their steps and history."},
            {"name": "emissions", "description": "Calculated emissions: query and totals."},
            {"name": "lineage", "description": "The record-level lineage ledger."},
            {"name": "quality", "description": "Data-quality reports and profiles."},
            {"name": "factors", "description": "The emission-factor library."},
        ],
    )
    app.state.service = service
    _problems.install(app)
    read, write = _security.dependencies(
        [*keys, *(admin.key for admin in admins)],
        _security.reads_need_key(settings.server.require_key_for_reads, settings.server.host),
    )
    hosts = _security.allowed_hosts(settings.server.allowed_hosts, settings.server.host)
    app.state.api_routes = []
    for module in (uploads, executions, emissions, report, lineage, quality, factors):
        router = module.build(read, write)
        app.include_router(router)
        app.state.api_routes += router.routes

    @app.get("/health", tags=["executions"], summary="The service answers")
    def health() -> dict[str, Any]:
        """Always answers while the service runs; needs no key."""
        return {"status": "ok", "version": __version__}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.middleware("http")
    async def page_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = (request.url.hostname or "").lower()
        if "*" not in hosts and host not in hosts:
            return _problems.problem_response(
                request,
                400,
                f"this service does not answer for host {host!r}; it answers for "
                f"{', '.join(sorted(hosts))} ([server] allowed_hosts)",
            )
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        path = request.url.path
        if path == "/" or path.startswith("/static/"):
            response.headers.update(PAGE_HEADERS)
        return response

    return app
