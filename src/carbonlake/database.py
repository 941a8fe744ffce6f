"""The database layer's public names (the layer itself is the :mod:`carbonlake.db` package)."""

from __future__ import annotations

from .db import (
    EMISSION_COLUMNS,
    EMISSION_GROUPS,
    EMISSION_SORT_COLUMNS,
    EMISSION_TYPES,
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
    RESULTS_TABLE,
    Database,
    EmissionFilter,
    LakeFile,
    local_file,
    utc_now,
)

__all__ = [
    "EMISSION_COLUMNS",
    "EMISSION_GROUPS",
    "EMISSION_SORT_COLUMNS",
    "EMISSION_TYPES",
    "EXECUTION_LIST_FIELDS",
    "FACTOR_ROW_COLUMNS",
    "FAILURE_COLUMNS",
    "INVENTORY_BUCKET",
    "INVENTORY_GROUPS",
    "LINEAGE_CACHE_KIB",
    "LINEAGE_COLUMNS",
    "METHODS",
    "PAGE_SIZE",
    "RESULTS_TABLE",
    "RESULT_NUMBER_COLUMNS",
    "Database",
    "EmissionFilter",
    "LakeFile",
    "local_file",
    "utc_now",
]
