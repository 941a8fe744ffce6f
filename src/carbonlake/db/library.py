"""The factor library (factor sets and their factors) and the data-quality resources."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from .base import Part, table, utc_now
from .engine import Engine

FACTOR_ROW_COLUMNS = (
    "scope",
    "category",
    "activity",
    "unit",
    "co2_kg_per_unit",
    "ch4_kg_per_unit",
    "n2o_kg_per_unit",
    "stated_ar4_kgco2e_per_unit",
    "stated_ar5_kgco2e_per_unit",
    "source",
    "biogenic_co2_kg_per_unit",
    "ch4_basis",
    "scope2_method",
    "scope3_category",
    "source_origin",
    "last_updated",
    "notes",
    "original_fields",
)
"""The stored columns of a factor, in calculate.factors.FACTOR_COLUMNS order."""

DQ_COLUMNS = ("name", "kind", "arn", "root_id", "details_json", "created_at")
FACTORS = table("factors", ("name", "version", *FACTOR_ROW_COLUMNS))
DQ_RESOURCES = table("dq_resources", DQ_COLUMNS)


class Library(Part):
    """Factor sets, factors and data-quality resources."""

    def insert_factor_set(
        self,
        name: str,
        version: str,
        fmt: str,
        origin: str,
        rows: Sequence[Sequence[Any]],
    ) -> bool:
        """Store a factor set version; False if that exact version already exists."""
        with self._engine.transaction() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM factor_sets WHERE name = :name AND version = :version"),
                {"name": name, "version": version},
            ).first()
            if exists:
                return False
            conn.execute(
                sa.text(
                    "INSERT INTO factor_sets (name, version, format, origin, factor_count, "
                    "created_at) VALUES (:name, :version, :format, :origin, :count, :now)"
                ),
                {
                    "name": name,
                    "version": version,
                    "format": fmt,
                    "origin": origin,
                    "count": len(rows),
                    "now": utc_now(),
                },
            )
            if rows:
                Engine.executemany(
                    conn,
                    sa.insert(FACTORS),
                    ("name", "version", *FACTOR_ROW_COLUMNS),
                    [(name, version, *row) for row in rows],
                )
        return True

    def factor_sets(self) -> list[dict[str, Any]]:
        """Every imported factor set version, newest first."""
        return self._engine.dicts("SELECT * FROM factor_sets ORDER BY created_at DESC, name")

    def find_factor_set(
        self, name: str, version: str | None
    ) -> tuple[str, str, list[tuple[Any, ...]]] | None:
        """(name, version, factor rows) of a stored set: by name (newest), name and version,
        or a bare version given as ``name``."""
        if version:
            sets = self._engine.rows(
                "SELECT name, version FROM factor_sets WHERE name = :name AND version = :version",
                {"name": name, "version": version},
            )
        else:
            sets = self._engine.rows(
                "SELECT name, version FROM factor_sets WHERE name = :name OR version = :name "
                "ORDER BY created_at DESC LIMIT 1",
                {"name": name},
            )
        if not sets:
            return None
        found_name, found_version = sets[0][0], sets[0][1]
        rows = self._engine.rows(
            f"SELECT {', '.join(FACTOR_ROW_COLUMNS)} FROM factors "
            "WHERE name = :name AND version = :version ORDER BY category, activity",
            {"name": found_name, "version": found_version},
        )
        return found_name, found_version, [tuple(row) for row in rows]

    def factor_set_scope2_methods(self, name: str, version: str) -> dict[str, str | None]:
        """Each scope 2 category of a stored set and its method (None: not said)."""
        rows = self._engine.rows(
            "SELECT DISTINCT category, scope2_method FROM factors "
            "WHERE name = :name AND version = :version AND scope = 2 ORDER BY category",
            {"name": name, "version": version},
        )
        return {row[0]: row[1] for row in rows}

    # -- data-quality resources -----------------------------------------------

    def insert_dq_resources(self, resources: Iterable[tuple[str, str, str, str, str]]) -> None:
        """Record (name, kind, arn, root_id, details_json) DataBrew-like resources."""
        now = utc_now()
        rows = [(*resource, now) for resource in resources]
        if not rows:
            return
        with self._engine.transaction() as conn:
            self._engine.upsert_rows(conn, DQ_RESOURCES, DQ_COLUMNS, rows)

    def dq_resource(self, name: str) -> dict[str, Any] | None:
        """One data-quality resource with its details, or None."""
        rows = self._engine.dicts("SELECT * FROM dq_resources WHERE name = :name", {"name": name})
        if not rows:
            return None
        row = rows[0]
        row["details"] = json.loads(row.pop("details_json"))
        return row

    def delete_dq_resources(self, names: Iterable[str]) -> int:
        """Delete data-quality resources by name; returns how many existed."""
        wanted = list(names)
        if not wanted:
            return 0
        statement = sa.text("DELETE FROM dq_resources WHERE name IN :names").bindparams(
            sa.bindparam("names", expanding=True)
        )
        deleted = 0
        with self._engine.transaction() as conn:
            for start in range(0, len(wanted), 500):
                deleted += conn.execute(statement, {"names": wanted[start : start + 500]}).rowcount
        return deleted
