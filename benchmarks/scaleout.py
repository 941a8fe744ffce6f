"""Scale-out measurement: the same file on the embedded default and on S3 + PostgreSQL +
a two-worker Dask LocalCluster, on this machine.

    python -m benchmarks.scaleout --rows 1000000 [--rows 10000000] [--out DIR] [--stages]
                                  [--repeat N]

Starts SeaweedFS and PostgreSQL on loopback (as the tests do), runs
``carbonlake run`` in a child process for each mode, and prints wall time, rows
per second and peak memory of the driver process (workers and servers are other
processes). ``--stages`` runs ``python -m benchmarks.stages`` in the child instead and
prints, for each mode, the seconds of each stage. ``--repeat N`` runs the two modes N
times, alternating, and reports each pair's ratio and their median (the embedded run's
time alone varied by a quarter between runs on this machine). Not a test: nothing
asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
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


def _warm_up(endpoint: str, file: Path) -> None:
    """Upload the input once to a scratch bucket of the fresh server, then remove it.

    The first large upload after SeaweedFS started took 1.8-3.8 s in five measurements,
    later ones 1.3-2.2 s (docs/performance.md): a cost of the server's start, which a
    long-running object store does not have, and which would otherwise fall on the first
    scaled run's landing alone."""
    import boto3  # type: ignore[import-untyped]

    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"warm-up-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.upload_file(str(file), bucket, "warm-up.csv")
    client.delete_object(Bucket=bucket, Key="warm-up.csv")
    client.delete_bucket(Bucket=bucket)


def _ratio(embedded: dict[str, Any], scaled: dict[str, Any]) -> float | None:
    """Scaled wall time over embedded (None unless both succeeded)."""
    if embedded["returncode"] or scaled["returncode"] or not embedded["wall_s"]:
        return None
    return round(float(scaled["wall_s"]) / float(embedded["wall_s"]), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", required=True)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--stages", action="store_true", help="seconds per stage of each mode (benchmarks.stages)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run both modes this many times, alternating; report the median ratio",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
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
            _warm_up(endpoint, file)
            runs: list[dict[str, Any]] = []
            for _ in range(args.repeat):
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
                ratio = _ratio(embedded, scaled)
                runs.append({"embedded": embedded, "s3_postgres_dask": scaled, "ratio": ratio})
                print(json.dumps({"rows": rows, **runs[-1]}), flush=True)
            ratios: list[float] = [r["ratio"] for r in runs if r["ratio"] is not None]
            median = statistics.median(ratios) if ratios else None
            # The pair whose ratio is nearest the median: its stages are the ones printed.
            middle = min(runs, key=lambda r: abs((r["ratio"] or 0) - (median or 0)))
            results.append({"rows": rows, **middle, "ratio_median": median, "runs": runs})
    (args.out / "scaleout.json").write_text(json.dumps(results, indent=2))
    print("| rows | run | mode | wall s | rows/s | driver peak RSS MiB | status | ratio |")
    print("|---:|---:|---|---:|---:|---:|---|---:|")
    for row in results:
        rows_done = int(str(row["rows"]))
        for number, pair in enumerate(row["runs"], start=1):
            for mode in ("embedded", "s3_postgres_dask"):
                run: dict[str, Any] = pair[mode]
                rate = int(rows_done / run["wall_s"]) if run["wall_s"] else 0
                shown = f"{pair['ratio']:.2f}x" if mode != "embedded" and pair["ratio"] else ""
                print(
                    f"| {rows_done:,} | {number} | {mode} | {run['wall_s']} | {rate:,} | "
                    f"{run['peak_rss_mib']} | {run['status']} | {shown} |"
                )
        if row["ratio_median"] is not None:
            print(
                f"\n{rows_done:,} rows: S3 + PostgreSQL + Dask / embedded, median of "
                f"{len(row['runs'])}: {row['ratio_median']:.2f}x"
            )
    if args.stages:
        for row in results:
            title = f"stage ({row['rows']:,} rows; the median pair)"
            print(f"\n| {title} | embedded s | S3 + PostgreSQL + Dask s |")
            print("|---|---:|---:|")
            scaled_s = {st["stage"]: st["seconds"] for st in row["s3_postgres_dask"]["stages"]}
            for stage in row["embedded"]["stages"]:
                name = stage["stage"]
                print(f"| {name} | {stage['seconds']:.2f} | {scaled_s.get(name, 0.0):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
