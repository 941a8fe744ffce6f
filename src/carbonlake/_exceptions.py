"""The exceptions carbonlake raises.

    CarbonlakeError
    ├── ConfigurationError         a setting, flag or rule file is wrong (CLI exit 2)
    │   └── FactorTableError       a factor table cannot be used as given
    ├── InputDataError             an input file or event cannot be used as given
    │   └── StateConflict          the request does not fit the execution's state
    ├── StorageError               an object could not be read, written or moved
    │   ├── ObjectMissing          the object does not exist (asking again will not help)
    │   └── StorageUnavailable  T  the store failed to read, write or move; may work again
    │       └── CopyMismatch    T  a move's copy is not the original's bytes (copy removed)
    ├── DatabaseError              the database could not be opened or written
    │   ├── DatabaseBusy        T  locked, a serialization failure, the connection lost
    │   └── CommitConflict      T  another process committed to the same lake table first
    ├── CalculationError           emissions could not be calculated at all
    │   └── UnitError              a quantity's unit cannot be converted (fails one record)
    ├── LineageError               a lineage request or query is invalid
    │   └── ProofFailed            a record's proof does not lead to the root hash
    ├── NotificationError          a notification channel refused the message
    │   └── NotificationUnavailable T  the channel did not answer; may work again
    ├── ServiceError               the HTTP service cannot start or take the job
    │   ├── ServiceStopping     T  a job was submitted while the service shuts down
    │   └── ProblemError           an HTTP request fails with an RFC 9457 problem
    ├── ExecutionAborted           an execution was asked to stop; it can be resumed
    └── PipelineStepFailed         a stage failed inside an execution (names both)

    Signal                         control flow inside one module, never seen by callers
    ├── CommandFailed              the CLI's work failed: exit 1 after what it printed
    ├── StopVerifying              lineage verify stops at its first problem
    └── StaleRow                   a row changed between reading and writing it

    Transient                      marker: the same call may succeed later (T above)

Every message names the file, key, record or setting involved and, where there
is one, the next thing to try. Exceptions of dependencies are mapped to these at
the boundary of the module that calls the dependency, and that mapping decides
whether an error is :class:`Transient`: the one retry policy
(:mod:`carbonlake._retry`, with an execution's ``[retry]`` settings or a
notification channel's ``[notify]`` ones) retries those and nothing else.
``tests/test_exceptions.py`` checks that every exception class of the package is
drawn here and that the package raises no other kind.
"""

from __future__ import annotations


class Transient(Exception):
    """Marker of an error that the same call may not meet again (retry it).

    Never raised alone: an error class inherits from its carbonlake base and this.
    """


def is_transient(exc: BaseException) -> bool:
    """Whether the retry policy should try ``exc``'s call again."""
    return isinstance(exc, Transient)


class CarbonlakeError(Exception):
    """Root of every error carbonlake raises on purpose."""


class ConfigurationError(CarbonlakeError):
    """A setting, command-line flag or rule file is invalid."""


class InputDataError(CarbonlakeError):
    """An input file or event cannot be processed as given."""


class StateConflict(InputDataError):
    """The request does not fit the state the execution is in (e.g. a redrive of an
    execution that has not failed, a resume of one that another process runs)."""


class StorageError(CarbonlakeError):
    """An object could not be read, written, listed or moved."""


class ObjectMissing(StorageError):
    """The object does not exist; asking again will not make it exist."""


class StorageUnavailable(StorageError, Transient):
    """The store failed to read, write or move an object; the same call may succeed."""


class CopyMismatch(StorageUnavailable):
    """A move's copy does not have the SHA-256 the original was known by (the copy is
    removed, the original kept): the original changed since, or the copy went wrong."""


class DatabaseError(CarbonlakeError):
    """The database could not be opened, migrated or written."""


class DatabaseBusy(DatabaseError, Transient):
    """The database is locked, a transaction failed to serialize or the connection was
    lost; the same transaction may succeed."""


class CommitConflict(DatabaseError, Transient):
    """Another process committed to (or created) the same lake table first: reload the
    table and make the commit again.

    Retried by the lake's own loops only (they reload the table between attempts); when
    those give up they raise a plain :class:`DatabaseError` that says what to run next.
    """

    def __init__(self, table: str, message: str) -> None:
        self.table = table
        super().__init__(message)


class CalculationError(CarbonlakeError):
    """Emissions could not be calculated for a whole batch."""


class UnitError(CalculationError):
    """A quantity's unit is unknown or cannot be converted to the factor's unit.

    Raised per record: the record fails with this message as its reason.
    """


class LineageError(CarbonlakeError):
    """A lineage request is malformed or a lineage query cannot be answered."""


class NotificationError(CarbonlakeError):
    """A notification channel refused the message; another attempt fails the same way."""


class NotificationUnavailable(NotificationError, Transient):
    """A notification channel did not answer or answered "try later"."""


class ServiceError(CarbonlakeError):
    """The HTTP service cannot start or cannot take a job."""


class ServiceStopping(ServiceError, Transient):
    """A job was submitted while the service shuts down."""


class ExecutionAborted(CarbonlakeError):
    """The execution was asked to stop (SIGTERM, Ctrl-C); it can be resumed."""


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


class Signal(Exception):
    """Control flow inside one module; caught there, never seen by a caller."""


class CommandFailed(Signal):
    """The work of a CLI command ran and failed: exit 1 after what is already printed."""


class StopVerifying(Signal):
    """Raised inside the verifier at the first problem when asked to stop there."""


class StaleRow(Signal):
    """A row changed between reading it and writing: roll the transaction back."""
