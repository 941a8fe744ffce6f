"""carbonlake: auditable greenhouse-gas emissions, from activity CSV to a lineage ledger.

The public API is listed in ``__all__``; everything else is internal.
"""

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
from .executions import Context, Pipeline
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
