"""carbonlake: auditable greenhouse-gas emissions, from activity CSV to a lineage ledger.

The public API is listed in ``__all__``; everything else is internal. The pipeline's
names are imported on first use (PEP 562), so that ``import carbonlake.settings`` or a
command that only reads does not import the whole pipeline (Polars, the stages).
"""

import importlib as _importlib
from typing import TYPE_CHECKING

from ._exceptions import (
    CalculationError,
    CarbonlakeError,
    ConfigurationError,
    DatabaseError,
    InputDataError,
    LineageError,
    PipelineStepFailed,
    StorageError,
)

if TYPE_CHECKING:
    from .context import Context
    from .executions import Pipeline
    from .settings import Settings, load_settings

__version__ = "0.1.0"

__all__ = [
    "CalculationError",
    "CarbonlakeError",
    "ConfigurationError",
    "Context",
    "DatabaseError",
    "InputDataError",
    "LineageError",
    "Pipeline",
    "PipelineStepFailed",
    "Settings",
    "StorageError",
    "__version__",
    "load_settings",
]

_LAZY = {
    "Context": "context",
    "Pipeline": "executions",
    "Settings": "settings",
    "load_settings": "settings",
}
"""Public names imported on first use, and the module each comes from."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("_"))})
