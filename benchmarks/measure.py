"""Measuring one command: wall time and the peak resident memory of exactly that process.

Peak RSS comes from ``os.wait4`` on the child's pid: the kernel's ``ru_maxrss``
of that one child (and of any children it waited for), in KiB on Linux. Unlike
``getrusage(RUSAGE_CHILDREN)``, which keeps the maximum over every child the
benchmark ever waited for, it is per measurement, so a small run after a big one
reports its own peak.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KIB = 1024


@dataclass
class Measured:
    """One finished command."""

    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    stdout: str
    stderr: str

    def check(self) -> Measured:
        """Raise with the command's stderr when it did not exit 0."""
        if self.returncode != 0:
            raise RuntimeError(
                f"command failed with exit {self.returncode}: {' '.join(self.argv)}\n"
                f"{self.stderr[-4000:]}"
            )
        return self


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``argv`` to completion; stdout and stderr go through temporary files."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=argv,
            returncode=process.returncode,
            wall_s=wall_s,
            peak_rss_bytes=usage.ru_maxrss * KIB,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def carbonlake_command() -> list[str]:
    """The ``carbonlake`` command of this interpreter's environment."""
    script = shutil.which("carbonlake", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-m", "carbonlake.cli"]


def startup_seconds(repeat: int = 3) -> float:
    """Interpreter start plus carbonlake's imports: the fastest of ``carbonlake --version``.

    The fastest, not the median, so that the pipeline time derived from it is
    never flattered by a slow start.
    """
    return min(
        run_measured([*carbonlake_command(), "--version"]).check().wall_s for _ in range(repeat)
    )


def interpreter_seconds(repeat: int = 3) -> float:
    """The bare interpreter's start (``python -c pass``), fastest of ``repeat``."""
    return min(run_measured([sys.executable, "-c", "pass"]).check().wall_s for _ in range(repeat))


def lookup_seconds(argv: list[str], repeat: int = 3) -> float:
    """Fastest wall time of a read-only command (e.g. ``emissions show ID``)."""
    return min(run_measured(argv).check().wall_s for _ in range(repeat))


def duckdb_scan_seconds(path: Path) -> tuple[float, int]:
    """Seconds DuckDB takes to count the rows of a CSV (parsing every row): the read floor."""
    import duckdb

    with duckdb.connect() as conn:
        started = time.perf_counter()
        row = conn.execute("SELECT count(*) FROM read_csv(?)", [str(path)]).fetchone()
        seconds = time.perf_counter() - started
    return seconds, int(row[0]) if row else 0
