"""Where the wall time of one execution goes, stage by stage, without a profiler.

Runs :meth:`carbonlake.Pipeline.run_file` in this process on a fresh workspace
with a progress callback that notes the moment each stage starts; a stage lasts
until the next one starts. ``calculate`` is the whole map over batches
(calculation, enriched files, emissions upserts and record lineage), and
``finish`` is what follows the last batch (lineage flush, totals by activity,
recording the execution).

``python -m benchmarks.stages FILE [--workspace DIR] [--json]`` prints a table
(or one JSON document).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from carbonlake import Context, Pipeline, load_settings


def stage_seconds(
    path: Path, workspace: Path, environ: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``path`` through the pipeline in ``workspace``; seconds per stage, in order."""
    starts: list[tuple[str, float]] = []
    last_batch_done: list[float] = []

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        name = stage.split(":", 1)[0] if stage.startswith("data_lineage") else stage
        if not starts or starts[-1][0] != name:
            starts.append((name, now))
        if stage == "calculate" and done == total:
            last_batch_done.append(now)

    opened = time.perf_counter()
    context = Context.open(load_settings(workspace, environ=environ or {}))
    starts.append(("open workspace", opened))
    starts.append(("land file", time.perf_counter()))
    try:
        summary = Pipeline(context).run_file(path, progress=progress)
    finally:
        ended = time.perf_counter()
        context.close()
    finish = [("finish", last_batch_done[-1])] if last_batch_done else []
    marks = [*starts, *finish, ("end", ended)]
    seconds: dict[str, float] = {}
    for (name, start), (_, stop) in itertools.pairwise(marks):
        seconds[name] = seconds.get(name, 0.0) + stop - start
    total = ended - opened
    return {
        "file": str(path),
        "records": summary["records_in"],
        "status": summary["status"],
        "total_s": total,
        "stages": [
            {"stage": name, "seconds": round(s, 4), "share": round(s / total, 4)}
            for name, s in seconds.items()
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.stages FILE [--workspace DIR] [--json]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--workspace", type=Path, default=None, help="default: a temporary one")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--environ", action="store_true", help="settings from CARBONLAKE_* variables too"
    )
    args = parser.parse_args(argv)
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="carbonlake-stages-"))
    try:
        found = stage_seconds(args.file, workspace, dict(os.environ) if args.environ else None)
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            print(f"{found['records']:,} records, {found['status']}, {found['total_s']:.3f} s")
            for row in found["stages"]:
                print(f"  {row['stage']:<18} {row['seconds']:9.3f} s  {100 * row['share']:5.1f} %")
    finally:
        if args.workspace is None:
            shutil.rmtree(workspace, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
