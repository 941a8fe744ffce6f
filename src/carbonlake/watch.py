"""Watching the landing bucket: start an execution for each new, complete object.

Local folders are watched through filesystem events (watchdog) that wake the
loop early; a listing of the bucket every ``[pipeline] watch_interval_s`` is
the ground truth and the fallback that also serves object stores. A file counts
as complete once it has a name that is not temporary (``.part``, ``.tmp``, a
leading dot, ...) and, in a local folder, its size and modification time have not
changed for ``[pipeline] watch_settle_s`` (a writer that pauses for less is never
taken mid-file). The reliable convention is to write under a temporary name, or
elsewhere, and rename the file into landing when it is complete. An S3 object is
complete once listed (it appears only when its upload completes). A file that
changes while its execution runs fails that execution and waits for a run of its
own (``Pipeline`` checks the bytes it started with), so no file is processed in
two parts. At most ``[pipeline]
max_executions`` files run at once. :meth:`Watcher.stop` (SIGTERM, Ctrl-C)
stops taking new files and asks running executions to stop after their current
batches; those are left ABORTED and finish with ``executions resume``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

from . import kickoff as kick
from ._exceptions import CarbonlakeError
from .executions import Pipeline

log = logging.getLogger("carbonlake.watch")

TEMPORARY_PREFIXES = (".", "~", "_tmp")
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".swp", "~")


def is_temporary(key: str) -> bool:
    """Names that uploaders and editors use while a file is still being written."""
    name = PurePosixPath(key).name.lower()
    return name.startswith(TEMPORARY_PREFIXES) or name.endswith(TEMPORARY_SUFFIXES)


class Watcher:
    """Starts executions for new objects in ``landing`` until stopped."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        on_summary: Callable[[dict[str, Any]], None] | None = None,
        use_events: bool = True,
    ) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.context.settings.pipeline
        self.on_summary = on_summary
        self.use_events = use_events
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sizes: dict[str, tuple[int, float]] = {}
        self._since: dict[str, float] = {}
        """When each object was first seen with its current size and time (monotonic)."""
        self._started: set[tuple[str, int, float]] = set()
        self._running: dict[str, Future[list[dict[str, Any]]]] = {}
        self.summaries: list[dict[str, Any]] = []

    def stop(self) -> None:
        """Stop taking new files; running executions stop after their current batches."""
        self._stop.set()
        self.pipeline.stop_requested.set()
        self._wake.set()

    def _observer(self) -> Any:
        storage = self.pipeline.context.storage
        landing = storage.local_bucket_path("landing")
        if not self.use_events or landing is None:
            return None
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # polling alone still works
            return None
        wake = self._wake

        class Wake(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                wake.set()

        observer = Observer()
        observer.schedule(Wake(), str(landing), recursive=True)
        observer.start()
        return observer

    def _complete_objects(self) -> list[str]:
        """Objects of landing that are complete now (same size and time as last look)."""
        storage = self.pipeline.context.storage
        settle = self.settings.watch_settle_s if storage.is_local("landing") else 0.0
        now = time.monotonic()
        ready = []
        seen_now = {}
        since_now = {}
        for url in storage.list("landing"):
            key = storage.split(url)[1]
            if is_temporary(key):
                continue
            try:
                size, mtime = storage.size(url), storage.modified(url)
            except CarbonlakeError:
                continue  # moved away meanwhile
            seen_now[url] = (size, mtime)
            unchanged = self._sizes.get(url) == (size, mtime)
            since_now[url] = self._since.get(url, now) if unchanged else now
            settled = now - since_now[url] >= settle or time.time() - mtime >= settle
            if unchanged and settled and (url, size, mtime) not in self._started:
                ready.append(url)
        self._sizes = seen_now
        self._since = since_now
        return ready

    def _run_one(self, url: str) -> list[dict[str, Any]]:
        storage = self.pipeline.context.storage
        event = kick.s3_put_event(*storage.location(url))
        summaries = self.pipeline.run_event(event)
        for summary in summaries:
            if self.on_summary:
                self.on_summary(summary)
        return summaries

    def run(self, once: bool = False) -> list[dict[str, Any]]:
        """Watch until :meth:`stop` (or, with ``once``, until landing is drained)."""
        observer = self._observer()
        pool = ThreadPoolExecutor(
            max_workers=self.settings.max_executions, thread_name_prefix="carbonlake-watch"
        )
        try:
            while not self._stop.is_set():
                for url, future in list(self._running.items()):
                    if future.done():
                        del self._running[url]
                        self._collect(url, future)
                free = self.settings.max_executions - len(self._running)
                for url in self._complete_objects()[: max(free, 0)]:
                    size, mtime = self._sizes[url]
                    self._started.add((url, size, mtime))
                    self._running[url] = pool.submit(self._run_one, url)
                if once and not self._running and not self._pending():
                    break
                self._wake.wait(self.settings.watch_interval_s)
                self._wake.clear()
        finally:
            pool.shutdown(wait=True)
            for url, future in self._running.items():
                self._collect(url, future)
            self._running.clear()
            if observer is not None:
                observer.stop()
                observer.join()
        return self.summaries

    def _pending(self) -> bool:
        """Whether landing holds objects not yet started (still settling or waiting)."""
        return any(
            (url, *self._sizes[url]) not in self._started
            for url in self._sizes
            if not is_temporary(url)
        )

    def _collect(self, url: str, future: Future[list[dict[str, Any]]]) -> None:
        try:
            self.summaries.extend(future.result())
        except CarbonlakeError as exc:
            log.error("could not process %s: %s", url, exc)
            self.summaries.append(
                {"input_storage_location": url, "status": "FAILED", "error": str(exc)}
            )
