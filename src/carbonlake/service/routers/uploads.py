"""Starting executions: a CSV upload, or an S3/EventBridge/SQS event for objects in landing."""

from __future__ import annotations

import functools
import json
import shutil
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ... import kickoff
from .._problems import ProblemError, responses
from .._state import Service, ServiceDep

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The activity CSV file.",
                    },
                    "key": {
                        "type": "string",
                        "description": "Object key in landing (default: the file's name), "
                        "e.g. 2026/march/fleet.csv; no '..', absolute paths or control "
                        "characters.",
                    },
                    "name": {
                        "type": "string",
                        "description": "Execution name: a second upload of the same file "
                        "with the same name returns the first execution.",
                    },
                    "force": {
                        "type": "string",
                        "enum": ["true", "false"],
                        "description": "Process the file even if the same key with the same "
                        "content was processed before.",
                    },
                },
            }
        }
    },
}

_NAMED = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}},
}
_KEYED = {
    "type": "object",
    "required": ["key"],
    "properties": {"key": {"type": "string"}},
}
S3_NOTIFICATION = {
    "title": "S3 event notification",
    "type": "object",
    "required": ["Records"],
    "properties": {
        "Records": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["s3"],
                "properties": {
                    "eventName": {"type": "string"},
                    "s3": {
                        "type": "object",
                        "required": ["bucket", "object"],
                        "properties": {"bucket": _NAMED, "object": _KEYED},
                    },
                },
            },
        }
    },
}
EVENTBRIDGE_EVENT = {
    "title": 'EventBridge "Object Created" event',
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail-type": {"type": "string", "enum": ["Object Created"]},
        "source": {"type": "string", "enum": ["aws.s3"]},
        "detail": {
            "type": "object",
            "required": ["bucket", "object"],
            "properties": {"bucket": _NAMED, "object": _KEYED},
        },
    },
}
_BODY = {"type": "string", "description": "JSON text of one of the events above."}
SQS_MESSAGES = {
    "title": "SQS messages (ReceiveMessage answer)",
    "type": "object",
    "required": ["Messages"],
    "properties": {
        "Messages": {
            "type": "array",
            "items": {"type": "object", "required": ["Body"], "properties": {"Body": _BODY}},
        }
    },
}
SQS_LAMBDA_EVENT = {
    "title": "Lambda SQS event",
    "type": "object",
    "required": ["Records"],
    "properties": {
        "Records": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["body"], "properties": {"body": _BODY}},
        }
    },
}
SQS_MESSAGE = {
    "title": "One SQS message",
    "type": "object",
    "required": ["Body"],
    "properties": {"Body": _BODY},
}
EVENT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    S3_NOTIFICATION,
                    EVENTBRIDGE_EVENT,
                    SQS_MESSAGES,
                    SQS_LAMBDA_EVENT,
                    SQS_MESSAGE,
                ]
            },
            "example": kickoff.s3_put_event("landing", "2026/march/fleet.csv"),
        }
    },
}

MAX_EVENT_BYTES = 1 << 20
MAX_EVENT_RECORDS = 100


def _accepted(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "executions": [
            {**entry, "links": {"execution": f"/executions/{entry['execution_id']}"}}
            for entry in entries
        ]
    }


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body, refused as soon as it grows past ``limit`` bytes."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise ProblemError(
                413, f"the upload is larger than [server] max_upload_mb ({limit} bytes)"
            )
        yield chunk


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(
            413,
            f"the upload ({declared} bytes) is larger than [server] max_upload_mb ({limit} bytes)",
        )


def _flag(value: Any) -> bool:
    if value is None or value == "":
        return False
    if value in ("true", "false"):
        return bool(value == "true")
    raise ProblemError(400, f"force must be 'true' or 'false', got {str(value)[:40]!r}")


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProblemError(400, f"form field {name!r} must be text, not a file")
    return value


def _save(upload_file: UploadFile, path: Path) -> None:
    with path.open("wb") as target:
        shutil.copyfileobj(upload_file.file, target, 1 << 20)


def _objects_of(event: Any, service: Service) -> list[str]:
    """The landing URLs of the objects of an event, all of which must be in landing."""
    storage = service.context.storage
    named = kickoff.event_objects(event)  # InputDataError: 400, naming the field
    if len(named) > MAX_EVENT_RECORDS:
        raise ProblemError(400, f"at most {MAX_EVENT_RECORDS} objects per event")
    items = kickoff.parse_event(event, storage)
    for item, found in zip(items, named, strict=True):
        location = item["input"]["storage_location"]
        if not storage.exists(location):
            raise ProblemError(404, f"{found.field} names {location}, which is not in landing")
    return [item["input"]["storage_location"] for item in items]


def build(read: Any, write: Any) -> APIRouter:
    """The routes that start executions (writes)."""
    router = APIRouter(tags=["uploads"], dependencies=[write])

    @router.post(
        "/uploads",
        status_code=202,
        summary="Upload an activity CSV and start its execution",
        openapi_extra={"requestBody": UPLOAD_BODY},
        responses=responses(401, 403, 413, 415),
    )
    async def upload(request: Request, service: ServiceDep) -> JSONResponse:
        """Stream the file (at most `[server] max_upload_mb`) into `landing` under `key`
        and start an execution in the background. Answers at once with the execution's
        id; `GET /executions/{id}` follows it (QUEUED, RUNNING, then SUCCEEDED or FAILED;
        SKIPPED when the same key and content were processed before, REJECTED when it
        could not start)."""
        limit = service.max_upload_bytes
        _check_length(request, limit)
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ProblemError(415, "send the file as multipart/form-data with a 'file' field")
        parser = MultiPartParser(
            request.headers, _limited(request, limit), max_files=1, max_fields=10
        )
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise ProblemError(400, f"the upload is not valid multipart/form-data: {exc}") from exc
        try:
            upload_file = form.get("file")
            if not isinstance(upload_file, UploadFile):
                raise ProblemError(400, "the upload has no 'file' field with a file in it")
            key = _text_field(form, "key") or (upload_file.filename or "").strip()
            if not key:
                raise ProblemError(400, "give the file a name, or a 'key' form field")
            name = _text_field(form, "name")
            force = _flag(form.get("force"))
            # Refuses '..', absolute paths and control characters before anything is stored.
            service.context.storage.url("landing", key)
            path = service.runner.new_upload_path()
            await run_in_threadpool(_save, upload_file, path)
        finally:
            await form.close()
        execution_id = str(uuid.uuid4())
        pipeline = service.pipeline
        entry = service.runner.submit(
            execution_id,
            key,
            lambda: pipeline.run_file(path, key, name=name, force=force, execution_id=execution_id),
            cleanup=lambda: path.unlink(missing_ok=True),
        )
        document = _accepted([entry])["executions"][0]
        return JSONResponse(
            document, status_code=202, headers={"Location": f"/executions/{execution_id}"}
        )

    @router.post(
        "/events/s3",
        status_code=202,
        summary="Start executions from an S3, EventBridge or SQS event",
        openapi_extra={"requestBody": EVENT_BODY},
        responses=responses(401, 403, 413, 415),
    )
    async def s3_event(
        request: Request, service: ServiceDep, force: bool = False
    ) -> dict[str, Any]:
        """An object store's webhook or a queue consumer: one execution per object of the
        event, for objects already in the landing bucket. The event is an S3 event
        notification (keys URL-encoded as S3 sends them), an EventBridge "Object Created"
        event, or an SQS message holding one (one message, a ReceiveMessage answer or a
        Lambda SQS event); its bucket is the landing bucket's name or `[storage]
        landing_bucket_name`. Answers at once with the executions' ids."""
        _check_length(request, MAX_EVENT_BYTES)
        body = b"".join([chunk async for chunk in _limited(request, MAX_EVENT_BYTES)])
        try:
            event = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProblemError(400, f"the event is not valid JSON: {exc}") from exc
        storage = service.context.storage
        locations = await run_in_threadpool(_objects_of, event, service)
        pipeline = service.pipeline
        entries = []
        for location in locations:
            execution_id = str(uuid.uuid4())
            # Each object runs as an S3 notification of its own, whatever the event's shape.
            single = kickoff.s3_put_event(*storage.location(location))
            key = storage.split(location)[1]
            job = functools.partial(
                pipeline.run_event, single, force=force, execution_id=execution_id
            )
            entries.append(service.runner.submit(execution_id, key, job))
        return _accepted(entries)

    return router
