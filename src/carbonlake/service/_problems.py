"""Errors as RFC 9457 problem details: ``application/problem+json``, never a traceback.

Library errors are mapped at this boundary: a request that names something that is
not there is 404, a request that cannot be carried out as given 400, a workspace
that cannot be read 503. Anything unexpected is logged with its traceback on the
server and answered 500 with a message that says where to look.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from .._exceptions import (
    CarbonlakeError,
    ConfigurationError,
    DatabaseError,
    InputDataError,
    LineageError,
    ServiceError,
    ServiceStopping,
    StorageError,
)

log = logging.getLogger("carbonlake.service")

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "API key required",
    403: "API key not accepted",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Upload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    500: "Internal error",
    503: "Workspace unavailable",
}


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    """Invalid parameters, one entry each, for a 422."""


class ProblemError(ServiceError):
    """Raised by a route to answer with a problem document."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": TITLES[status]}
    for status in (400, 404, 422)
}
"""Error answers every route documents (its own add 401, 403, 413, 415 where they apply)."""


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: the common ones plus ``statuses``."""
    extra: dict[int | str, dict[str, Any]] = {
        status: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": TITLES[status]}
        for status in statuses
    }
    return {**PROBLEM_RESPONSES, **extra}


def problem_response(
    request: Request,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """A problem document for ``status``."""
    body = Problem(
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def status_of(exc: CarbonlakeError) -> int:
    """The HTTP status a library error answers with."""
    if isinstance(exc, LineageError):
        return 404
    if isinstance(exc, InputDataError):
        return 400
    if isinstance(exc, DatabaseError | StorageError):
        return 503
    if isinstance(exc, ConfigurationError):
        return 500
    if isinstance(exc, ServiceStopping):
        return 503
    return 500


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    found = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        found.append({"parameter": where, "message": str(error.get("msg", "invalid"))})
    return found


def _methods_on(request: Request) -> list[str]:
    """The methods of the API route a path goes to (the first whose pattern matches, as
    Starlette picks it) and of every other route with the same path template
    (``app.state.api_routes``: the routes of the routers the app includes)."""
    routes = [r for r in getattr(request.app.state, "api_routes", ()) if isinstance(r, Route)]
    first = next((r for r in routes if r.path_regex.match(request.url.path)), None)
    if first is None:
        return []
    return sorted({m for r in routes if r.path == first.path for m in r.methods or ()})


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""

    @app.exception_handler(ProblemError)
    async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, exc.headers)

    @app.exception_handler(CarbonlakeError)
    async def on_library_error(request: Request, exc: CarbonlakeError) -> JSONResponse:
        status = status_of(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(request, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e['parameter']}: {e['message']}" for e in errors)
        return problem_response(request, 422, detail or "invalid request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such path {request.url.path}; the API is described at /openapi.json"
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            # Starlette names the methods of the first route on the path only; a path with
            # several routes (GET and DELETE of a record) allows all of theirs.
            allowed = _methods_on(request)
            if allowed:
                headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        return problem_response(request, exc.status_code, detail, headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem_response(
            request,
            500,
            f"the server failed on this request ({type(exc).__name__}); the server log has "
            "the details",
        )
