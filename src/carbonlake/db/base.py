"""What the domain modules of the database layer share."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from .engine import Engine


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def table(name: str, columns: tuple[str, ...]) -> sa.TableClause:
    """A table as statements name it (its schema is the migrations')."""
    return sa.table(name, *(sa.column(c) for c in columns))


class Part:
    """One domain of the database (the ``Database`` class combines them)."""

    _engine: Engine
