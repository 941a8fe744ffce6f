"""The official OpenLineage JSON schemas, offline: validate an event and every facet in it.

The schema files are the OpenLineage project's own (``tests/data/openlineage``,
Apache-2.0, see the README there). An event is checked against
``OpenLineage.json`` (the RunEvent shape: run id, event type, job, datasets);
each facet in it is then checked against the schema its ``_schemaURL`` names,
which must be one of the facet files shipped with the tests, and under the key
that schema defines (a ``TagsRunFacet`` under ``tags``, not anywhere else).
The ``date-time`` and ``uri`` formats are checked too (jsonschema alone only
annotates them).
"""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent / "data" / "openlineage"

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339: a date, ``T``, a time and an offset (``Z`` or ``+hh:mm``)."""
    if not isinstance(value, str):
        return True
    if "T" not in value.upper():
        raise ValueError(f"{value!r} has no 'T' between date and time")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time-zone offset")
    return True


@FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path):
        raise ValueError(f"{value!r} is not an absolute URI")
    return True


@functools.cache
def _documents() -> dict[str, dict[str, Any]]:
    """Every shipped schema by its ``$id``."""
    paths = [SCHEMAS / "OpenLineage.json", *sorted((SCHEMAS / "facets").glob("*.json"))]
    documents = {}
    for path in paths:
        document = json.loads(path.read_text(encoding="utf-8"))
        documents[document["$id"]] = document
    return documents


@functools.cache
def _registry() -> Registry[Any]:
    return Registry().with_resources(
        (uri, Resource.from_contents(document)) for uri, document in _documents().items()
    )


def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, registry=_registry(), format_checker=FORMATS)


def _errors(instance: Any, ref: str, where: str) -> list[str]:
    return [
        f"{where}{''.join(f'[{p!r}]' for p in error.absolute_path)}: {error.message}"
        for error in _validator(ref).iter_errors(instance)
    ]


def _facet_errors(key: str, facet: Any, where: str) -> list[str]:
    if not isinstance(facet, dict) or not isinstance(facet.get("_schemaURL"), str):
        return [f"{where}: facet {key!r} has no _schemaURL"]
    url = facet["_schemaURL"]
    base = url.split("#", 1)[0]
    document = _documents().get(base)
    if document is None:
        return [
            f"{where}: facet {key!r} names schema {base}, which tests/data/openlineage does not "
            "ship (add the official file from the OpenLineage repository's spec/facets)"
        ]
    if key not in document.get("properties", {}):
        return [
            f"{where}: facet {key!r} should be under the key {list(document['properties'])} that "
            f"{base} defines"
        ]
    return _errors({key: facet}, base, where) + _errors(facet, url, f"{where}[{key!r}]")


def event_errors(event: dict[str, Any]) -> list[str]:
    """What is wrong with an event by the official schemas (empty: it validates)."""
    spec = next(uri for uri in _documents() if uri.endswith("/OpenLineage.json"))
    problems = _errors(event, spec, "event")
    if event.get("schemaURL", "").split("#", 1)[0] != spec:
        problems.append(f"event schemaURL {event.get('schemaURL')!r} is not {spec}")
    groups: list[tuple[str, Any]] = [
        ("run.facets", (event.get("run") or {}).get("facets")),
        ("job.facets", (event.get("job") or {}).get("facets")),
    ]
    for side, facet_kinds in (
        ("inputs", ("facets", "inputFacets")),
        ("outputs", ("facets", "outputFacets")),
    ):
        for index, dataset in enumerate(event.get(side) or []):
            groups += [(f"{side}[{index}].{kind}", dataset.get(kind)) for kind in facet_kinds]
    for where, facets in groups:
        for key, facet in (facets or {}).items():
            problems += _facet_errors(key, facet, where)
    return problems


def assert_valid(events: list[dict[str, Any]]) -> None:
    """Fail naming every schema violation of every event."""
    problems = [
        f"event {number} ({event.get('job', {}).get('name')} {event.get('eventType')}): {problem}"
        for number, event in enumerate(events, start=1)
        for problem in event_errors(event)
    ]
    assert not problems, "\n".join(problems[:30])
