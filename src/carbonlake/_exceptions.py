"""The exceptions carbonlake raises.

    CarbonlakeError
    ├── ConfigurationError     a setting, flag or rule file is wrong (CLI exit 2)
    ├── InputDataError         an input file or event cannot be used as given
    ├── StorageError           an object could not be read, written or moved
    ├── DatabaseError          the database could not be opened or written
    ├── CalculationError       emissions could not be calculated at all
    ├── LineageError           a lineage request or query is invalid
    └── PipelineStepFailed     a stage failed inside an execution (names both)

Every message names the file, key, record or setting involved and, where there
is one, the next thing to try. Exceptions of dependencies are mapped to these at
the boundary of the module that calls the dependency.
"""

from __future__ import annotations


class CarbonlakeError(Exception):
    """Root of every error carbonlake raises on purpose."""


class ConfigurationError(CarbonlakeError):
    """A setting, command-line flag or rule file is invalid."""


class InputDataError(CarbonlakeError):
    """An input file or event cannot be processed as given."""


class StorageError(CarbonlakeError):
    """An object could not be read, written, listed or moved."""


class DatabaseError(CarbonlakeError):
    """The database could not be opened, migrated or written."""


class CalculationError(CarbonlakeError):
    """Emissions could not be calculated for a whole batch."""


class LineageError(CarbonlakeError):
    """A lineage request is malformed or a lineage query cannot be answered."""


class PipelineStepFailed(CarbonlakeError):
    """A stage failed inside an execution.

    Carries the stage name and the ids so the user learns which step failed on
    which file; the original exception is chained as ``__cause__``.
    """

    def __init__(self, step: str, execution_id: str, root_id: str, message: str) -> None:
        self.step = step
        self.execution_id = execution_id
        self.root_id = root_id
        super().__init__(
            f"step {step!r} failed in execution {execution_id} (root_id {root_id}): {message}"
        )
