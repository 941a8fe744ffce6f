"""Executions: the spec's state machine, one durable execution per input file.

``Pipeline`` runs, resumes and redrives executions; ``Context`` is what the stages
need, opened once from the settings.
"""

from .pipeline import (
    Context,
    Pipeline,
    ProgressCallback,
    owner_alive,
    retry_delays,
    this_process,
)

__all__ = [
    "Context",
    "Pipeline",
    "ProgressCallback",
    "owner_alive",
    "retry_delays",
    "this_process",
]
