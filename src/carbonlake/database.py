"""The database layer's public names (the layer itself is the :mod:`carbonlake.db` package)."""

from __future__ import annotations

from .db import (
    EMISSION_COLUMNS,
    EMISSION_GROUPS,
    EMISSION_SORT_COLUMNS,
    EXECUTION_LIST_FIELDS,
    FACTOR_ROW_COLUMNS,
    FAILURE_COLUMNS,
    INVENTORY_BUCKET,
    INVENTORY_GROUPS,
    LINEAGE_CACHE_KIB,
    LINEAGE_COLUMNS,
    METHODS,
    PAGE_SIZE,
    RESULT_NUMBER_COLUMNS,
    Database,
    EmissionFilter,
    utc_now,
)

__all__ = [
    "EMISSION_COLUMNS",
    "EMISSION_GROUPS",
    "EMISSION_SORT_COLUMNS",
    "EXECUTION_LIST_FIELDS",
    "FACTOR_ROW_COLUMNS",
    "FAILURE_COLUMNS",
    "INVENTORY_BUCKET",
    "INVENTORY_GROUPS",
    "LINEAGE_CACHE_KIB",
    "LINEAGE_COLUMNS",
    "METHODS",
    "PAGE_SIZE",
    "RESULT_NUMBER_COLUMNS",
    "Database",
    "EmissionFilter",
    "utc_now",
]
