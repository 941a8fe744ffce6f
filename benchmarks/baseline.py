"""The per-record baseline: the original system's algorithm, straightforwardly in Python.

The original split a CSV into JSON Lines batches of 1,000 records (a Glue job),
then a Lambda per batch looked up each record's factor, did the arithmetic and
wrote the enriched record, and the record-level lineage went to the ledger one
batch at a time. Here, in one process:

1. ``csv`` module -> typed JSON Lines batches of 1,000 (``transformed/``);
2. per batch, per record: ``json.loads``, a dict lookup of the factor by
   (category, activity), the unit multiplier (cached per unit pair), the
   arithmetic, ``json.dumps`` of the enriched record (``enriched/``);
3. one SQLite transaction per batch inserting the batch's record lineage nodes.

It uses the same factors (``shipped_factor_set().factors``) and the same unit
multipliers (``carbonlake.calculate.units.conversion``) as carbonlake, with the
arithmetic in the same order, so both must agree on every record (to an ulp or so:
Polars may evaluate ``quantity * factor / 1000`` with different rounding).
It does less than ``carbonlake run`` (no data-quality pass, no emissions table),
which only makes the speed-up measured against it conservative.

Run as ``python -m benchmarks.baseline FILE OUT_DIR [--limit N]``: prints one JSON
document with the records processed and the seconds spent (setup excluded).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carbonlake.calculate import units
from carbonlake.calculate.factors import shipped_factor_set
from carbonlake.database import PAGE_SIZE

BATCH_SIZE = 1000
LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS lineage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    root_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    action_taken TEXT NOT NULL,
    storage_location TEXT,
    recorded_at TEXT NOT NULL,
    UNIQUE (node_id, root_id)
);
CREATE INDEX IF NOT EXISTS lineage_root ON lineage(root_id, seq);
"""
"""The same ledger shape and indexes as carbonlake's ``lineage`` table."""


@dataclass(frozen=True)
class Factor:
    """One emission factor, kg per unit (None: the gas is not given)."""

    factor_id: str
    unit: str
    co2: float | None
    ch4: float | None
    n2o: float | None
    ar4: float
    ar5: float


def load_factors() -> dict[tuple[str, str], Factor]:
    """The shipped factors keyed by (category, activity), as the original's lookup table."""
    frame = shipped_factor_set().factors
    return {
        (row["category"], row["activity"]): Factor(
            factor_id=row["factor_id"],
            unit=row["unit"],
            co2=row["co2_kg_per_unit"],
            ch4=row["ch4_kg_per_unit"],
            n2o=row["n2o_kg_per_unit"],
            ar4=row["ar4_kgco2e_per_unit"],
            ar5=row["ar5_kgco2e_per_unit"],
        )
        for row in frame.iter_rows(named=True)
    }


@dataclass
class BaselineResult:
    """What a baseline run did and how long it took."""

    records: int
    batches: int
    seconds: float
    """Split, calculation and lineage; loading factors and opening the ledger excluded."""
    out_dir: Path

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "records": self.records,
            "batches": self.batches,
            "seconds": self.seconds,
            "out_dir": str(self.out_dir),
        }


def batch_name(index: int) -> str:
    """The file name of the ``index``-th batch (carbonlake's naming)."""
    return f"part_{index:05d}.jsonl"


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """The transform's typing: scope int, raw_data float, geo ``{lat, long}``."""
    record: dict[str, Any] = dict(row)
    record["scope"] = int(row["scope"])
    record["raw_data"] = float(row["raw_data"])
    lat, long = row["geo"].strip().strip("[]").split(",")
    record["geo"] = {"lat": float(lat), "long": float(long)}
    return record


def split(source: Path, directory: Path, limit: int | None = None) -> Iterator[Path]:
    """``csv`` module -> JSON Lines batches of BATCH_SIZE records; yields each batch file."""
    directory.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.DictReader(handle)
        if limit is not None:
            rows = itertools.islice(rows, limit)  # type: ignore[assignment]
        for index in itertools.count():
            batch = list(itertools.islice(rows, BATCH_SIZE))
            if not batch:
                return
            path = directory / batch_name(index)
            with path.open("w", encoding="utf-8") as out:
                for row in batch:
                    out.write(json.dumps(_typed(row)) + "\n")
            yield path


def _amount(value: float, unit: str) -> dict[str, Any]:
    return {"amount": value, "unit": unit}


def calculate_batch(batch: Path, out: Path, factors: dict[tuple[str, str], Factor]) -> list[str]:
    """Calculate one batch record by record; returns the record ids written."""
    ids = []
    lines = []
    with batch.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            factor = factors[(record["category"], record["activity"])]
            multiplier = units.conversion(record["units"], factor.unit).multiplier
            if multiplier is None:
                raise ValueError(
                    f"record {record['activity_event_id']}: unit {record['units']!r} does "
                    f"not convert to {factor.unit!r}"
                )
            # The same operations in the same order as carbonlake's column expressions.
            quantity = record["raw_data"] * multiplier
            record["emissions_output"] = {
                "calculated_emissions": {
                    "co2": _amount(quantity * (factor.co2 or 0.0) / 1000.0, "tonnes"),
                    "ch4": _amount(quantity * (factor.ch4 or 0.0) / 1000.0, "tonnes"),
                    "n2o": _amount(quantity * (factor.n2o or 0.0) / 1000.0, "tonnes"),
                    "co2e": {
                        "ar4": _amount(quantity * factor.ar4 / 1000.0, "tonnes"),
                        "ar5": _amount(quantity * factor.ar5 / 1000.0, "tonnes"),
                    },
                },
                "emissions_factor": {
                    "ar4": _amount(factor.ar4, "kgCO2e/unit"),
                    "ar5": _amount(factor.ar5, "kgCO2e/unit"),
                    "factor_id": factor.factor_id,
                    "activity_quantity": _amount(quantity, factor.unit),
                },
            }
            lines.append(json.dumps(record) + "\n")
            ids.append(record["activity_event_id"])
    out.write_text("".join(lines), encoding="utf-8")
    return ids


def open_ledger(path: Path) -> sqlite3.Connection:
    """The baseline's lineage ledger, with carbonlake's pragmas (page size, WAL,
    synchronous NORMAL), so that the comparison does not credit carbonlake with them."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(LEDGER_SCHEMA)
    return conn


def record_lineage(
    conn: sqlite3.Connection, root_id: str, parent_id: str, location: str, ids: list[str]
) -> None:
    """One transaction for the record nodes of one batch."""
    now = datetime.now(UTC).isoformat()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO lineage (root_id, node_id, parent_id, action_taken, storage_location, "
        "recorded_at) VALUES (?, ?, ?, 'CALCULATION_COMPLETE', ?, ?)",
        [(root_id, record_id, parent_id, location, now) for record_id in ids],
    )
    conn.execute("COMMIT")


def run(source: Path, out_dir: Path, limit: int | None = None) -> BaselineResult:
    """Split, calculate and record the lineage of ``source`` under ``out_dir``."""
    factors = load_factors()
    out_dir = out_dir.resolve()  # lineage locations are file URIs, which are absolute
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "enriched").mkdir(exist_ok=True)
    conn = open_ledger(out_dir / "ledger.db")
    root_id = str(uuid.uuid4())
    records = batches = 0
    started = time.perf_counter()
    try:
        for batch in split(source, out_dir / "transformed", limit):
            enriched = out_dir / "enriched" / batch.name
            ids = calculate_batch(batch, enriched, factors)
            record_lineage(conn, root_id, str(uuid.uuid4()), enriched.as_uri(), ids)
            records += len(ids)
            batches += 1
    finally:
        conn.close()
    return BaselineResult(records, batches, time.perf_counter() - started, out_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.baseline FILE OUT_DIR [--limit N]``; prints a JSON result."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__)
    parser.add_argument("file", type=Path, help="activity CSV")
    parser.add_argument("out_dir", type=Path, help="folder for batches, results and the ledger")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records")
    args = parser.parse_args(argv)
    result = run(args.file, args.out_dir, args.limit)
    json.dump(result.as_dict(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
