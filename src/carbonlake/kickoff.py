"""Kickoff: turn an S3 event notification into pipeline inputs.

S3 sends ``Records[].s3.bucket.name`` and ``Records[].s3.object.key`` with keys
URL-encoded (``+`` for spaces). Every object gets a new, globally unique
``root_id``.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote_plus

from ._exceptions import InputDataError
from .storage import Storage


def new_root_id() -> str:
    """A globally unique id for one input file."""
    return str(uuid.uuid4())


def parse_event(event: dict[str, Any], storage: Storage) -> list[dict[str, Any]]:
    """One ``{"input": {"root_id", "storage_location"}}`` per object in an S3 event."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        raise InputDataError(
            "the event has no 'Records' list; pass an S3 event notification document "
            '({"Records": [{"s3": {"bucket": {"name": ...}, "object": {"key": ...}}}]})'
        )
    inputs = []
    for index, record in enumerate(records):
        try:
            s3 = record["s3"]
            bucket_name = s3["bucket"]["name"]
            raw_key = s3["object"]["key"]
        except (KeyError, TypeError) as exc:
            raise InputDataError(
                f"event record {index} lacks s3.bucket.name or s3.object.key ({exc})"
            ) from exc
        url = storage.url_of(str(bucket_name), unquote_plus(str(raw_key)))
        bucket, _ = storage.split(url)
        if bucket != "landing":
            raise InputDataError(
                f"event record {index} is for bucket {bucket_name!r} ({bucket}); "
                "the pipeline starts from the landing bucket"
            )
        inputs.append({"input": {"root_id": new_root_id(), "storage_location": url}})
    return inputs


def s3_put_event(bucket_name: str, key: str, size: int | None = None) -> dict[str, Any]:
    """An S3 ``ObjectCreated:Put`` notification for one object, as S3 would send it."""
    from urllib.parse import quote_plus

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
