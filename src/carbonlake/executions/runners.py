"""Where the map's tasks run: a thread pool in this process, or the workers of a Dask
cluster, behind one small interface (:class:`Runner`).

A distributed runner's tasks run in other processes, so they travel as module-level
functions with settings and ids only (never data, never an open connection): the
worker opens the workspace itself, once per process (:func:`worker_context`). The
entry points Dask workers import by name are :func:`split_chunk_task` here and
:func:`carbonlake.executions.map.run_group_task`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from .. import transform
from .._exceptions import ConfigurationError
from ..settings import PipelineSettings, Settings
from .context import Context

T = TypeVar("T")


class Runner(Protocol):
    """Runs tasks somewhere and gives their futures; ``close`` waits and releases it."""

    distributed: bool
    """Whether tasks run in other processes (then they must be importable functions of
    settings and ids, see the module docstring)."""

    def submit(self, task: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``task(*args)``."""

    def close(self) -> None:
        """Wait for what runs, drop what has not started, release the workers."""

    def prepare(self, settings: Settings) -> None:
        """Have the workers open the workspace of ``settings`` ahead of their first task
        (in other processes only; returns at once)."""


class ThreadRunner:
    """The embedded default: a thread pool of ``[pipeline] max_concurrency`` threads."""

    distributed = False

    def __init__(self, max_workers: int) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="carbonlake-map"
        )

    def submit(self, task: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``task(*args)`` on a thread of the pool."""
        return self._pool.submit(task, *args)

    def close(self) -> None:
        """Wait for running tasks; queued ones are cancelled."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def prepare(self, settings: Settings) -> None:
        """Nothing: the threads share this process's open workspace."""


class ExecutorRunner:
    """An executor a caller supplied (``Pipeline(context, executor)``): it runs tasks in
    this process's terms and stays the caller's to shut down."""

    distributed = False

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def submit(self, task: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``task(*args)`` on the supplied executor."""
        return self._executor.submit(task, *args)

    def close(self) -> None:
        """Nothing: the executor is its owner's."""

    def prepare(self, settings: Settings) -> None:
        """Nothing: the executor runs tasks in this process's terms."""


class DaskRunner:
    """The workers of a Dask cluster, through the client's ``concurrent.futures``
    executor; closing shuts the executor down and closes the client. Raises
    :class:`ConfigurationError` when dask is missing or the scheduler does not answer."""

    distributed = True

    def __init__(self, scheduler: str) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise ConfigurationError(
                "[pipeline] executor = \"dask\" needs dask: pip install 'carbonlake[dask]'"
            ) from exc
        try:
            client: Any = Client(scheduler, timeout="10s")  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise ConfigurationError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
        self._client = client
        self._executor: Executor = client.get_executor()

    def submit(self, task: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``task(*args)`` on a worker."""
        return self._executor.submit(task, *args)

    def prepare(self, settings: Settings) -> None:
        """One task per worker that opens the workspace (imports, the factor library,
        the database's and the object store's clients: 2-3 s in a new worker process),
        so that it happens while the driver checks the file, not in the split."""
        for worker in self._client.scheduler_info().get("workers", {}):
            self._client.submit(
                open_worker_task, settings, workers=[worker], pure=False, allow_other_workers=True
            )

    def close(self) -> None:
        """Wait for the running tasks, then close the client."""
        self._executor.shutdown(wait=True)
        self._client.close()


def open_runner(settings: PipelineSettings, executor: Executor | None = None) -> Runner:
    """The runner of ``[pipeline] executor``, or one over a caller's ``executor``."""
    if executor is not None:
        return ExecutorRunner(executor)
    if settings.executor == "dask":
        return DaskRunner(settings.dask_scheduler)
    return ThreadRunner(settings.max_concurrency)


_worker_contexts: dict[str, Context] = {}
_worker_lock = threading.Lock()


def worker_context(settings: Settings) -> Context:
    """The workspace of a worker process for these settings (opened once per process)."""
    key = repr(settings)
    with _worker_lock:
        context = _worker_contexts.get(key)
        if context is None:
            context = _worker_contexts[key] = Context.open(settings)
    return context


def open_worker_task(settings: Settings) -> None:
    """Open a worker's workspace (:func:`worker_context`) ahead of its tasks."""
    worker_context(settings)


def split_chunk_task(
    settings: Settings,
    raw_location: str,
    root_id: str,
    chunk: int,
    start: int,
    end: int,
    batch_size: int,
) -> list[transform.WrittenBatch]:
    """A split task as a Dask worker runs it: one byte range of the raw file into its own
    batch files, read from and written to storage directly."""
    return transform.split_chunk(
        raw_location,
        root_id,
        chunk,
        start,
        end,
        storage=worker_context(settings).storage,
        batch_size=batch_size,
    )
