"""Kickoff: turn an event about new objects in the landing bucket into pipeline inputs.

Every object gets a new, globally unique ``root_id``. The event may come in any of
the shapes AWS delivers it in:

- an S3 event notification, ``Records[].s3.bucket.name`` and ``Records[].s3.object.key``
  (keys URL-encoded, ``+`` for spaces); ``s3:TestEvent`` messages name no object;
- an EventBridge event from S3, ``detail-type`` ``Object Created``, with
  ``detail.bucket.name`` and ``detail.object.key``;
- an SQS message whose body is either (or an SNS notification wrapping one, as
  S3 -> SNS -> SQS delivers it): one message (``Body`` or ``body``), a
  ReceiveMessage answer (``Messages[]``), or a Lambda SQS event (``Records[].body``);
  a Lambda SNS event (``Records[].Sns.Message``) too.

The event's bucket name must be the landing bucket's: its name in the storage
settings or ``[storage] landing_bucket_name`` (:meth:`Storage.url_of`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from ._exceptions import InputDataError
from .documents import KickoffOutput
from .storage import Storage

MAX_NESTING = 4
"""Envelopes inside envelopes (SQS around SNS around S3) deeper than this are refused."""

SHAPES = (
    'an S3 event notification ({"Records": [{"s3": {"bucket": {"name": ...}, "object": '
    '{"key": ...}}}]}), an EventBridge "Object Created" event ({"detail-type": "Object '
    'Created", "detail": {"bucket": {"name": ...}, "object": {"key": ...}}}), or an SQS '
    'message holding one of them ({"Body": "..."}, {"Messages": [...]} or a Lambda SQS '
    'event {"Records": [{"body": "..."}]})'
)


@dataclass(frozen=True)
class EventObject:
    """One object an event names, as the event names it."""

    bucket_name: str
    raw_key: str
    """The key as the event gives it (URL-encoded)."""
    field: str
    """Where in the event the key is, for messages (``Records[0].s3.object.key``)."""


def new_root_id() -> str:
    """A globally unique id for one input file."""
    return str(uuid.uuid4())


def event_objects(event: Any) -> list[EventObject]:
    """The objects an event names, in the order it names them; refuses what is not an
    event of the shapes above, naming the field. A well-formed event may name none (an
    ``s3:TestEvent``, an empty ReceiveMessage answer): nothing to start."""
    return _walk(event, "", 0)


def parse_event(event: Any, storage: Storage) -> list[KickoffOutput]:
    """One ``{"input": {"root_id", "storage_location"}}`` per object of an event, for
    objects of the landing bucket."""
    inputs: list[KickoffOutput] = []
    for item in event_objects(event):
        url = _landing_url(item, storage)
        inputs.append({"input": {"root_id": new_root_id(), "storage_location": url}})
    return inputs


def _landing_url(item: EventObject, storage: Storage) -> str:
    key = unquote_plus(item.raw_key)
    try:
        url = storage.url_of(item.bucket_name, key)
    except InputDataError as exc:
        raise InputDataError(f"{item.field}: {exc}") from exc
    bucket, _ = storage.split(url)
    if bucket != "landing":
        raise InputDataError(
            f"{item.field} names bucket {item.bucket_name!r} ({bucket}); the pipeline starts "
            "from the landing bucket"
        )
    if key != item.raw_key and not storage.exists(url):
        # The shapes URL-encode keys; a sender that did not is still understood when only
        # the key as given exists.
        try:
            literal = storage.url_of(item.bucket_name, item.raw_key)
        except InputDataError:
            return url
        if storage.exists(literal):
            return literal
    return url


def _where(path: str) -> str:
    return path or "the event"


def _walk(document: Any, path: str, depth: int) -> list[EventObject]:
    """The objects of one event, message or envelope at ``path``."""
    if depth > MAX_NESTING:
        raise InputDataError(f"{_where(path)} nests messages more than {MAX_NESTING} deep")
    if not isinstance(document, dict):
        raise InputDataError(
            f"{_where(path)} is {_kind(document)}, not a JSON object; pass {SHAPES}"
        )
    if "Records" in document:
        return _records(document["Records"], f"{path}Records", depth)
    if "Messages" in document:
        return _messages(document["Messages"], f"{path}Messages", depth)
    if "detail" in document or "detail-type" in document:
        return [_eventbridge(document, path)]
    for body in ("Body", "body"):
        if body in document:
            return _body(document[body], f"{path}{body}", depth)
    if document.get("Type") == "Notification" and "Message" in document:
        return _body(document["Message"], f"{path}Message", depth)
    if document.get("Event") == "s3:TestEvent":
        return []
    keys = ", ".join(sorted(str(k) for k in document)[:8]) or "none"
    raise InputDataError(
        f"{_where(path)} has no 'Records', 'Messages', 'detail' or 'Body' (its keys: {keys}); "
        f"pass {SHAPES}"
    )


def _records(records: Any, path: str, depth: int) -> list[EventObject]:
    if not isinstance(records, list) or not records:
        raise InputDataError(f"{path} must be a list with at least one record; pass {SHAPES}")
    found: list[EventObject] = []
    for index, record in enumerate(records):
        where = f"{path}[{index}]"
        if not isinstance(record, dict):
            raise InputDataError(f"{where} is {_kind(record)}, not a record object")
        if "s3" in record:
            found.append(_s3_record(record, where))
        elif "body" in record or "Body" in record:
            name = "body" if "body" in record else "Body"
            found += _body(record[name], f"{where}.{name}", depth)
        elif isinstance(record.get("Sns"), dict) and "Message" in record["Sns"]:
            found += _body(record["Sns"]["Message"], f"{where}.Sns.Message", depth)
        else:
            raise InputDataError(
                f"{where} is neither an S3 record (s3.bucket.name, s3.object.key) nor an SQS "
                "message (body)"
            )
    return found


def _messages(messages: Any, path: str, depth: int) -> list[EventObject]:
    if not isinstance(messages, list):
        raise InputDataError(f"{path} must be a list of SQS messages, not {_kind(messages)}")
    found: list[EventObject] = []
    for index, message in enumerate(messages):
        where = f"{path}[{index}]"
        if not isinstance(message, dict) or not ("Body" in message or "body" in message):
            raise InputDataError(f"{where} is not an SQS message: it has no 'Body'")
        name = "Body" if "Body" in message else "body"
        found += _body(message[name], f"{where}.{name}", depth)
    return found


def _body(body: Any, path: str, depth: int) -> list[EventObject]:
    """The objects of a message body: JSON text (as SQS and SNS carry it) or a document."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"{path} is not JSON: {exc}") from exc
    return _walk(body, f"{path}.", depth + 1)


def _text(container: Any, name: str, where: str) -> str:
    value = container.get(name) if isinstance(container, dict) else None
    if not isinstance(value, str) or not value:
        shown = "missing" if value is None else f"{_kind(value)}, not text"
        raise InputDataError(f"{where}.{name} is {shown}; it must name the {name}")
    return value


def _s3_record(record: dict[str, Any], where: str) -> EventObject:
    name = record.get("eventName")
    if isinstance(name, str) and not name.removeprefix("s3:").startswith("ObjectCreated:"):
        raise InputDataError(
            f"{where}.eventName is {name!r}; only ObjectCreated events start executions"
        )
    s3 = record["s3"]
    if not isinstance(s3, dict):
        raise InputDataError(f"{where}.s3 is {_kind(s3)}, not an object")
    bucket = _text(s3.get("bucket"), "name", f"{where}.s3.bucket")
    key = _text(s3.get("object"), "key", f"{where}.s3.object")
    return EventObject(bucket, key, f"{where}.s3.object.key")


def _eventbridge(event: dict[str, Any], path: str) -> EventObject:
    kind = event.get("detail-type")
    if kind is not None and kind != "Object Created":
        raise InputDataError(
            f"{path}detail-type is {kind!r}; only 'Object Created' events start executions"
        )
    source = event.get("source")
    if source is not None and source != "aws.s3":
        raise InputDataError(f"{path}source is {source!r}; only events from aws.s3 name objects")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InputDataError(f"{path}detail is {_kind(detail)}; it must be an object")
    bucket = _text(detail.get("bucket"), "name", f"{path}detail.bucket")
    key = _text(detail.get("object"), "key", f"{path}detail.object")
    return EventObject(bucket, key, f"{path}detail.object.key")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {str: "text", bool: "true/false", int: "a number", float: "a number", list: "a list"}
    return names.get(type(value), type(value).__name__)


def s3_put_event(bucket_name: str, key: str, size: int | None = None) -> dict[str, Any]:
    """An S3 ``ObjectCreated:Put`` notification for one object, as S3 would send it."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if size is not None:
        obj["size"] = size
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket_name}, "object": obj},
            }
        ]
    }
