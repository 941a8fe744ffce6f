"""Scale-out measurement: the same file on the embedded default and on S3 + PostgreSQL +
a two-worker Dask LocalCluster, on this machine.

    python -m benchmarks.scaleout --rows 1000000 [--rows 10000000] [--out DIR] [--stages]

Starts SeaweedFS and PostgreSQL on loopback (as the tests do), runs
``carbonlake run`` in a child process for each mode, and prints wall time, rows
per second and peak memory of the driver process (workers and servers are other
processes). ``--stages`` runs ``python -m benchmarks.stages`` in the child instead and
prints, for each mode, the seconds of each stage. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .generate import generate
from .measure import carbonlake_command, run_measured


def _run(file: Path, workspace: Path, env: dict[str, str], stages: bool) -> dict[str, object]:
    command = (
        [sys.executable, "-m", "benchmarks.stages", "--environ", "--json"]
        if stages
        else [*carbonlake_command(), "run", "--json", "--no-progress"]
    )
    measured = run_measured(
        [*command, str(file), "--workspace", str(workspace)],
        env={**os.environ, **env},
    )
    found = json.loads(measured.stdout) if measured.returncode == 0 else {}
    if stages:
        return {
            "returncode": measured.returncode,
            "wall_s": round(measured.wall_s, 2),
            "peak_rss_mib": round(measured.peak_rss_bytes / (1 << 20), 1),
            "status": found.get("status"),
            "stages": found.get("stages", []),
            "stderr_tail": measured.stderr[-400:] if measured.returncode else "",
        }
    summary = found[0] if found else {}
    return {
        "returncode": measured.returncode,
        "wall_s": round(measured.wall_s, 2),
        "peak_rss_mib": round(measured.peak_rss_bytes / (1 << 20), 1),
        "status": summary.get("status"),
        "records_calculated": summary.get("records_calculated"),
        "stderr_tail": measured.stderr[-400:] if measured.returncode else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", required=True)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--stages", action="store_true", help="seconds per stage of each mode (benchmarks.stages)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from distributed import LocalCluster

    # The same server starters as the test suite (loopback, free ports, cleaned up after).
    servers: Any = importlib.import_module("tests.servers")
    postgresql, seaweedfs = servers.postgresql, servers.seaweedfs

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "carbonlake")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "carbonlake")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with (
        seaweedfs() as endpoint,
        postgresql() as pg_admin,
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
    ):
        import psycopg

        for rows in args.rows:
            file = generate(args.out / f"scaleout-{rows}.csv", rows)
            with tempfile.TemporaryDirectory(prefix="carbonlake-scaleout-") as tmp:
                embedded = _run(file, Path(tmp) / "embedded", {}, args.stages)
                name = f"scaleout_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(pg_admin, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {name}")
                env = {
                    "CARBONLAKE_STORAGE__ROOT": f"s3://{name.replace('_', '-')}",
                    "CARBONLAKE_STORAGE__ENDPOINT_URL": endpoint,
                    "CARBONLAKE_DATABASE__URL": pg_admin.rsplit("/", 1)[0] + f"/{name}",
                    "CARBONLAKE_PIPELINE__EXECUTOR": "dask",
                    "CARBONLAKE_PIPELINE__DASK_SCHEDULER": cluster.scheduler_address,
                }
                scaled = _run(file, Path(tmp) / "scaled", env, args.stages)
            row = {"rows": rows, "embedded": embedded, "s3_postgres_dask": scaled}
            results.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "scaleout.json").write_text(json.dumps(results, indent=2))
    print("| rows | mode | wall s | rows/s | driver peak RSS MiB | status |")
    print("|---:|---|---:|---:|---:|---|")
    for row in results:
        for mode in ("embedded", "s3_postgres_dask"):
            run: dict[str, Any] = row[mode]
            rows_done = int(str(row["rows"]))
            rate = int(rows_done / run["wall_s"]) if run["wall_s"] else 0
            print(
                f"| {rows_done:,} | {mode} | {run['wall_s']} | {rate:,} | "
                f"{run['peak_rss_mib']} | {run['status']} |"
            )
    if args.stages:
        for row in results:
            print(f"\n| stage ({row['rows']:,} rows) | embedded s | S3 + PostgreSQL + Dask s |")
            print("|---|---:|---:|")
            scaled_s = {st["stage"]: st["seconds"] for st in row["s3_postgres_dask"]["stages"]}
            for stage in row["embedded"]["stages"]:
                name = stage["stage"]
                print(f"| {name} | {stage['seconds']:.2f} | {scaled_s.get(name, 0.0):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
