"""Measure the lineage ledger at scale: write N record nodes, then verify, checkpoint, archive.

    .venv/bin/python scripts/bench_lineage.py --records 1000000 --batch-size 1000

Writes one file's trail the way the pipeline does (RAW_DATA_INPUT, PROFILE_COMPLETE,
DQ_CHECK_PASS, one GLUE_BATCH_SPLIT per batch, then CALCULATION_COMPLETE requests of
``batch-size`` records each with their row numbers) through ``record_request`` and one
``LineageWriter`` into a fresh SQLite workspace, and prints the wall time of each step.
Batch files hold one small JSON line per record and enriched files are stand-ins, so
object hashing costs little here: the figure is the ledger's own cost, node hashing and
batched inserts. Record ids are random by default, as real ids are; random keys are the
costly case for the ledger's unique index. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from carbonlake import lineage
from carbonlake.database import Database
from carbonlake.lineage import archive as lineage_archive
from carbonlake.lineage import verify as lineage_verify
from carbonlake.storage import Storage


def since(started: float, cpu: float) -> str:
    """Wall and CPU seconds since ``(perf_counter, process_time)``."""
    wall = time.perf_counter() - started
    return f"{wall:.2f} s ({time.process_time() - cpu:.2f} s CPU)"


def main() -> None:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--sequential-ids",
        action="store_true",
        help="Record ids in order (rec-1, rec-2, ...) instead of random ones like real ids.",
    )
    parser.add_argument(
        "--keep", type=Path, help="Build the workspace in this new folder and keep it."
    )
    parser.add_argument(
        "--commit-every",
        type=int,
        default=50_000,
        help="Nodes per insert transaction: the writer's default is 50,000; the "
        "orchestrator's per-batch checkpoints commit one batch (--batch-size) at a time.",
    )
    args = parser.parse_args()
    draw = random.Random(5)
    ids = [
        f"rec-{n + 1:09d}"
        if args.sequential_ids
        else f"carbon-data-lake-{draw.getrandbits(64):016x}"
        for n in range(args.records)
    ]

    with tempfile.TemporaryDirectory(prefix="carbonlake-bench-") as tmp:
        root = Path(tmp)
        if args.keep:
            args.keep.mkdir(parents=True)
            root = args.keep.resolve()
        storage = Storage(root.as_uri())
        storage.ensure_buckets()
        database = Database(f"sqlite:///{root / 'carbonlake.db'}")
        root_id = "bench-root"
        landing = storage.url("landing", "bench.csv")
        storage.write_bytes(landing, b"activity_event_id\n")
        report = storage.url("dq-results", f"{root_id}/report.json")
        storage.write_bytes(report, b"{}")
        batches = -(-args.records // args.batch_size)
        batch_urls = []
        enriched_urls = []
        for index in range(batches):
            batch = storage.url("transformed", f"{root_id}/part_{index:05d}.jsonl")
            enriched = storage.url("enriched", f"{root_id}/part_{index:05d}.jsonl")
            first = index * args.batch_size + 1
            count = min(args.batch_size, args.records - index * args.batch_size)
            lines = "".join(
                f'{{"activity_event_id":"{ids[first + i - 1]}"}}\n' for i in range(count)
            )
            storage.write_bytes(batch, lines.encode())
            storage.write_bytes(enriched, f"enriched {index}\n".encode())
            batch_urls.append(batch)
            enriched_urls.append(enriched)

        writer = lineage.LineageWriter(database, storage, batch_size=args.commit_every)
        started, cpu = time.perf_counter(), time.process_time()

        def request(action: str, parent: str, location: str) -> str:
            out = lineage.record_request(
                {
                    "root_id": root_id,
                    "parent_id": parent,
                    "action_taken": action,
                    "record": {"storage_location": location},
                },
                writer,
            )
            node_id: str = out["data_lineage"]["node_id"]
            return node_id

        raw = request(lineage.RAW_DATA_INPUT, root_id, landing)
        profile = request(lineage.PROFILE_COMPLETE, raw, report)
        storage.move(landing, "raw")
        passed = request(lineage.DQ_CHECK_PASS, profile, storage.url("raw", "bench.csv"))
        split = lineage.record_request(
            {
                "root_id": root_id,
                "parent_id": passed,
                "action_taken": lineage.GLUE_BATCH_SPLIT,
                "records": [{"storage_location": url} for url in batch_urls],
            },
            writer,
        )["data_lineage"]["records"]
        written = 0
        for index, batch in enumerate(split):
            count = min(args.batch_size, args.records - written)
            first = index * args.batch_size + 1
            lineage.record_request(
                {
                    "root_id": root_id,
                    "parent_id": batch["node_id"],
                    "action_taken": lineage.CALCULATION_COMPLETE,
                    "storage_location": enriched_urls[index],
                    "records": [
                        {"node_id": ids[first + i - 1], "row_number": first + i}
                        for i in range(count)
                    ],
                },
                writer,
            )
            written += count
        writer.flush()
        wrote = time.perf_counter() - started
        nodes = database.lineage_size()
        print(
            f"write       {nodes} nodes ({written} record nodes) in {since(started, cpu)}; "
            f"{nodes / wrote:,.0f} nodes/s"
        )

        started, cpu = time.perf_counter(), time.process_time()
        point = lineage_verify.checkpoint(database)
        print(f"checkpoint  size {point.size} in {since(started, cpu)}")

        started, cpu = time.perf_counter(), time.process_time()
        report_ = lineage_verify.verify(database, storage, checkpoint=point)
        print(
            f"verify      ok={report_.ok}, {report_.nodes} nodes, {report_.records} records "
            f"accounted for, in {since(started, cpu)}"
        )
        for problem in report_.problems[:3]:
            print("  ", problem.message)

        started, cpu = time.perf_counter(), time.process_time()
        result = lineage_archive.archive(database, storage, root_id)
        print(f"archive     {result.lines} lines in {since(started, cpu)}")
        database.close()


if __name__ == "__main__":
    main()
