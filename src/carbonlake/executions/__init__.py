"""Executions: the spec's state machine, one durable execution per input file.

The rooms of the package:

- ``states``: the states in order and what their checkpoints are called;
- ``journal``: a state's work under the retry policy, committed as its checkpoint once;
- ``runners``: where the map's tasks run (a thread pool or Dask workers);
- ``map``: the map over batches, their redrives and the results table's commit;
- ``summary``: the run summary;
- ``context``: what stages need, opened once from the settings;
- ``pipeline``: :class:`Pipeline`, the ways in (run, resume, redrive) and the state
  machine that calls the stages.
"""

from .context import Context, owner_alive, this_process
from .journal import retry_delays
from .map import ProgressCallback
from .pipeline import Pipeline
from .summary import RunSummary

__all__ = [
    "Context",
    "Pipeline",
    "ProgressCallback",
    "RunSummary",
    "owner_alive",
    "retry_delays",
    "this_process",
]
