"""Executions started over HTTP run in the background, so requests return at once.

A started execution is ``QUEUED`` here until the pipeline has written its row
(then the database answers for it). A job that ends without an execution of its
own, because its object was already processed (``SKIPPED``) or it could not start
(``REJECTED``, with the reason), keeps its outcome here for the pages to show.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .._exceptions import CarbonlakeError, ServiceStopping
from ..database import Database, utc_now

log = logging.getLogger("carbonlake.service")


KEPT_OUTCOMES = 1000
"""Outcomes of jobs without an execution row that are remembered (oldest forgotten first)."""


class Runner:
    """A bounded pool of background executions and what became of the ones without a row."""

    def __init__(self, database: Database, max_workers: int) -> None:
        self._database = database
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self.upload_dir = Path()
        """Uploads wait here, streamed to disk, until their execution puts them in landing."""
        self.start()

    def start(self) -> None:
        """Start taking jobs (again, after :meth:`shutdown`)."""
        with self._lock:
            if self._pool is not None:
                return
            self._pool = ThreadPoolExecutor(
                self._max_workers, thread_name_prefix="carbonlake-serve"
            )
            self.upload_dir = Path(tempfile.mkdtemp(prefix="carbonlake-uploads-"))

    def new_upload_path(self, suffix: str = ".csv") -> Path:
        """A fresh file name for an upload."""
        return self.upload_dir / f"{uuid.uuid4().hex}{suffix}"

    def submit(
        self,
        execution_id: str,
        object_key: str,
        job: Callable[[], Any],
        cleanup: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Queue ``job`` (which starts execution ``execution_id``); returns its QUEUED entry."""
        entry = {
            "execution_id": execution_id,
            "name": execution_id,
            "status": "QUEUED",
            "object_key": object_key,
            "started_at": utc_now(),
            "stopped_at": None,
            "root_id": None,
            "error": None,
        }
        with self._lock:
            if self._pool is None:
                raise ServiceStopping("the service is stopping; start the execution again later")
            self._jobs[execution_id] = entry
            while len(self._jobs) > KEPT_OUTCOMES:
                self._jobs.popitem(last=False)
            self._pool.submit(self._run, execution_id, job, cleanup)
        return dict(entry)

    def _run(
        self, execution_id: str, job: Callable[[], Any], cleanup: Callable[[], None] | None
    ) -> None:
        outcome: dict[str, Any] = {}
        try:
            result = job()
            summary = result[0] if isinstance(result, list) and result else result
            if isinstance(summary, dict) and summary.get("execution_id") != execution_id:
                # The object was processed before: the pipeline returned that execution.
                outcome = {
                    "status": summary.get("status", "SKIPPED"),
                    "duplicate_of": summary.get("duplicate_of") or summary.get("execution_id"),
                    "root_id": summary.get("root_id"),
                    "error": summary.get("message") or summary.get("error"),
                }
        except CarbonlakeError as exc:
            outcome = {"status": "REJECTED", "error": str(exc)}
        except Exception as exc:
            log.exception("execution %s failed unexpectedly", execution_id)
            outcome = {
                "status": "REJECTED",
                "error": f"the execution failed unexpectedly ({type(exc).__name__}); the "
                "server log has the details",
            }
        finally:
            if cleanup is not None:
                cleanup()
        with self._lock:
            entry = self._jobs.get(execution_id)
            if entry is None:
                return
            if not outcome and self._database.get_execution(execution_id) is not None:
                del self._jobs[execution_id]  # the database answers for it from now on
                return
            entry.update(outcome or {"status": "REJECTED", "error": "the execution did not start"})
            entry["stopped_at"] = utc_now()

    def job(self, execution_id: str) -> dict[str, Any] | None:
        """A job that has no execution row (yet, or at all), or None."""
        with self._lock:
            entry = self._jobs.get(execution_id)
            return dict(entry) if entry is not None else None

    def jobs(self) -> list[dict[str, Any]]:
        """Jobs without an execution row, newest first."""
        with self._lock:
            return [dict(entry) for entry in reversed(self._jobs.values())]

    def shutdown(self) -> None:
        """Drop queued jobs, wait for running ones, remove waiting uploads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):
            shutil.rmtree(self.upload_dir)
