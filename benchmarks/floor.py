"""The floor: what the spec's stages cost at the least, done the fastest way we know.

The performance issue asks ``carbonlake run`` on 1 million rows to be 20 times
faster than the per-record baseline and within 10 times DuckDB's scan of the
file. This measures, on the same file and machine, the work any implementation
of the spec's contracts has to do, each step on its own with the fastest engine
we measured, with nothing else around it (no executions, no retries, no
checkpoints, no file moves, no notifications):

1. ``read CSV``: Polars reads the file into memory (every step after it reuses it).
2. ``profile``: the least of a data-quality pass: per column, present values and
   exact distinct values (Polars).
3. ``write batches``: the split files of the spec's Glue step, one Parquet
   file per ``--batch-size`` records (as carbonlake writes them; the spec's
   ``part_n.json`` is JSON).
4. ``read batches``: the map reads each batch file back (with the known schema).
5. ``calculate``: carbonlake's column-wise calculation (factor join, units, the
   arithmetic) over all records in one Polars call.
6. ``write enriched``: one enriched Parquet file per batch (the spec's
   enriched bucket), the same records ``carbonlake run`` writes.
7. ``hash nodes``: one SHA-256 lineage node per record (carbonlake's node hash).
8. ``store ledger`` and ``store results``: the record nodes and the results rows,
   two ways each: written column-wise to a Parquet file (as carbonlake writes its
   results table's data files), and inserted into SQLite (the ledger the way carbonlake
   does; the results as it did before the data lake: one row per record, same table and
   key; turning the frame into Python tuples is not counted).

Steps 1-7 plus the cheaper of the two storage ways is the floor of a
single-threaded implementation; half of it is the floor on two cores if every
step split perfectly over both. The report sets those against the same run's
per-record baseline (on ``--baseline-rows`` rows, extrapolated) and DuckDB scan,
so one can see whether a target is reachable before optimising for it.

``python -m benchmarks.floor FILE [--batch-size 1000] [--baseline-rows N] [--json]``
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from carbonlake import lineage, transform
from carbonlake.calculate import calculate_frame
from carbonlake.calculate.factors import shipped_factor_set
from carbonlake.database import EMISSION_COLUMNS, LINEAGE_COLUMNS, Database
from carbonlake.lineage.nodes import _sibling_hashes

from . import measure

T = TypeVar("T")


@dataclass
class Floor:
    """Seconds per step, in order."""

    rows: int
    steps: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, work: Callable[[], T]) -> T:
        """Run ``work`` and keep its wall time under ``name``."""
        started = time.perf_counter()
        result = work()
        self.steps[name] = time.perf_counter() - started
        return result


def _write_batches(frame: pl.DataFrame, directory: Path, size: int) -> list[Path]:
    """One Parquet file per ``size`` records, written the way carbonlake writes its batch
    and enriched files (``transform.parquet_bytes``)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, start in enumerate(range(0, frame.height, size)):
        path = directory / f"part_{index:05d}.parquet"
        path.write_bytes(transform.parquet_bytes(frame.slice(start, size)))
        paths.append(path)
    return paths


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("scope").cast(pl.Int64, strict=False),
        pl.col("raw_data").cast(pl.Float64, strict=False),
    )


def _node_hashes(ids: list[str], batch_size: int) -> list[str]:
    hashes: list[str] = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        hashes += _sibling_hashes(
            "root-0000",
            chunk,
            "batch-node-0000",
            lineage.CALCULATION_COMPLETE,
            f"enriched/root-0000/part_{start // batch_size:05d}.parquet",
            "2026-01-01T00:00:00+00:00",
            "0" * 64,
            list(range(start + 1, start + 1 + len(chunk))),
            "1" * 64,
        )
    return hashes


def _ledger(ids: list[str], hashes: list[str], batch_size: int) -> pl.DataFrame:
    """The record nodes, built column-wise (as a columnar writer would)."""
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    return pl.DataFrame({"node_id": ids, "node_hash": hashes}).select(
        pl.lit("root-0000").alias("root_id"),
        "node_id",
        pl.lit("batch-node-0000").alias("parent_id"),
        pl.lit(lineage.CALCULATION_COMPLETE).alias("action_taken"),
        pl.format(
            "enriched/root-0000/part_{}.parquet",
            (position // batch_size).cast(pl.String).str.zfill(5),
        ).alias("storage_location"),
        pl.lit("2026-01-01T00:00:00+00:00").alias("recorded_at"),
        pl.lit("0" * 64).alias("object_sha256"),
        (position + 1).alias("row_number"),
        "node_hash",
        pl.lit("1" * 64).alias("parent_hash"),
    )


def measure_floor(path: Path, work: Path, batch_size: int = 1000) -> Floor:
    """Time each step of the floor on ``path``, writing under ``work``."""
    factor_set = shipped_factor_set()
    frame = pl.read_csv(path, infer_schema=False)  # warm the reader and the page cache
    floor = Floor(rows=frame.height)
    frame = floor.timed("read CSV", lambda: _typed(pl.read_csv(path, infer_schema=False)))
    floor.timed(
        "profile",
        lambda: frame.select(
            *(pl.col(c).is_not_null().sum().alias(f"{c}_present") for c in frame.columns),
            *(pl.col(c).n_unique().alias(f"{c}_distinct") for c in frame.columns),
        ),
    )
    batches = floor.timed(
        "write batches", lambda: _write_batches(frame, work / "transformed", batch_size)
    )
    schema = frame.schema
    records = floor.timed(
        "read batches",
        lambda: pl.concat([pl.read_parquet(p, schema=schema) for p in batches], how="vertical"),
    )
    result = floor.timed("calculate", lambda: calculate_frame(records, factor_set, ""))
    floor.timed(
        "write enriched", lambda: _write_batches(result.enriched, work / "enriched", batch_size)
    )
    ids = result.enriched.get_column("activity_event_id").to_list()
    hashes = floor.timed("hash nodes", lambda: _node_hashes(ids, batch_size))
    ledger = _ledger(ids, hashes, batch_size)
    emissions = result.database_rows.with_columns(
        pl.lit("root-0000").alias("root_id"),
        pl.lit("execution-0000").alias("execution_id"),
        pl.lit("enriched/root-0000/part_00000.parquet").alias("enriched_location"),
        pl.lit("2026-01-01T00:00:00+00:00").alias("calculated_at"),
    ).select(EMISSION_COLUMNS)
    floor.timed(
        "store ledger (Parquet)",
        lambda: ledger.write_parquet(work / "ledger.parquet"),
    )
    floor.timed(
        "store results (Parquet)", lambda: emissions.write_parquet(work / "results.parquet")
    )
    database = Database(f"sqlite:///{work / 'floor.db'}")
    database.migrate()
    nodes = ledger.select(LINEAGE_COLUMNS).rows()
    floor.timed("store ledger (SQLite)", lambda: database.insert_lineage(nodes))
    database.close()
    rows = emissions.rows()
    floor.timed("store results (SQLite)", lambda: _store_results_sqlite(work / "floor.db", rows))
    return floor


def _store_results_sqlite(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """Upsert results rows into the database's ``emissions`` table, one row per record, the
    way carbonlake stored results before the data lake (docs/lake.md: they are an Iceberg
    table now, and that table is left for workspaces of before it): plain sqlite3."""
    columns = ", ".join(EMISSION_COLUMNS)
    marks = ", ".join("?" for _ in EMISSION_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in EMISSION_COLUMNS[1:])
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                f"INSERT INTO emissions ({columns}) VALUES ({marks}) "
                f"ON CONFLICT (activity_event_id) DO UPDATE SET {updates}",
                rows,
            )
    finally:
        conn.close()


def summary(floor: Floor, scan_s: float, baseline_s: float | None) -> dict[str, Any]:
    """The floor's totals and what they mean for the issue's two ratios."""
    steps = floor.steps
    compute = sum(v for k, v in steps.items() if not k.startswith("store"))
    parquet = compute + steps["store ledger (Parquet)"] + steps["store results (Parquet)"]
    sqlite = compute + steps["store ledger (SQLite)"] + steps["store results (SQLite)"]
    out: dict[str, Any] = {
        "rows": floor.rows,
        "steps_s": {k: round(v, 3) for k, v in steps.items()},
        "floor_parquet_s": round(parquet, 3),
        "floor_sqlite_s": round(sqlite, 3),
        "floor_parquet_two_cores_s": round(parquet / 2, 3),
        "duckdb_scan_s": round(scan_s, 3),
        "target_10x_scan_s": round(10 * scan_s, 3),
    }
    if baseline_s is not None:
        out["baseline_s"] = round(baseline_s, 3)
        out["target_20x_baseline_s"] = round(baseline_s / 20, 3)
        out["best_speedup_parquet_two_cores"] = round(baseline_s / (parquet / 2), 2)
        out["best_speedup_sqlite_two_cores"] = round(baseline_s / (sqlite / 2), 2)
    return out


def _baseline_seconds(path: Path, work: Path, rows: int, total: int) -> float:
    from . import baseline

    result = baseline.run(path, work / "baseline", limit=rows)
    return float(result.seconds) * total / max(result.records, 1)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.floor FILE [--batch-size N] [--baseline-rows N] [--json]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=200_000,
        help="time the per-record baseline on this many rows and extrapolate (0: skip)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"{args.file} is not a file")
    work = Path(tempfile.mkdtemp(prefix="carbonlake-floor-"))
    try:
        floor = measure_floor(args.file, work, args.batch_size)
        scan_s, _ = measure.duckdb_scan_seconds(args.file)
        baseline_s = (
            _baseline_seconds(args.file, work, args.baseline_rows, floor.rows)
            if args.baseline_rows
            else None
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = summary(floor, scan_s, baseline_s)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    out = io.StringIO()
    out.write(f"{found['rows']:,} rows\n")
    for name, seconds in found["steps_s"].items():
        out.write(f"  {name:26s} {seconds:8.3f} s\n")
    for key, value in found.items():
        if key not in ("rows", "steps_s"):
            out.write(f"  {key:34s} {value}\n")
    sys.stdout.write(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
