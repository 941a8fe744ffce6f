"""Object-store clients on SeaweedFS: what carbonlake's S3 paths cost per request.

    python -m benchmarks.objects [--objects 400] [--size 60000] [--large FILE] [--repeat 3]

Starts SeaweedFS on loopback (as the tests do) and measures, alternating, in the same
run: reading ``--objects`` small objects through s3fs's bulk ``cat`` and through
``Storage.read_many`` (pyarrow's S3 client on a thread pool); writing them through
``Storage.write_many`` (s3fs's bulk ``pipe``) and through pyarrow's output streams; and,
with ``--large``, uploading that file with s3fs's default parts and with
``Storage.put_file`` (8 MiB parts, eight at a time). For each: wall seconds, this
process's CPU seconds and the server's CPU seconds, and the ratios of each pair. Not a
test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu() -> float:
    import psutil  # type: ignore[import-untyped]

    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "weed":
            with_children = process.cpu_times()
            total += with_children.user + with_children.system
    return total


def _measure(work: Callable[[], object]) -> tuple[float, float, float]:
    cpu, server, start = _own_cpu(), _server_cpu(), time.perf_counter()
    work()
    return time.perf_counter() - start, _own_cpu() - cpu, _server_cpu() - server


def _pairs(
    storage: Any, arrow_writes: Callable[[list[str]], None], payload: bytes, tag: str, args: Any
) -> list[tuple[str, Callable[[], object]]]:
    """One round's measures, in pairs (what carbonlake used before, what it uses now)."""
    s3fs = storage.filesystem("enriched")
    first = [storage.url("enriched", f"{tag}/a{i}") for i in range(args.objects)]
    second = [storage.url("enriched", f"{tag}/b{i}") for i in range(args.objects)]
    pairs: list[tuple[str, Callable[[], object]]] = [
        (
            "write: s3fs pipe (write_many)",
            lambda: storage.write_many([(u, payload) for u in first]),
        ),
        ("write: pyarrow streams", lambda: arrow_writes(second)),
        ("read: s3fs cat", lambda: s3fs.cat([storage._path(u) for u in first])),
        ("read: pyarrow threads (read_many)", lambda: storage.read_many(second)),
    ]
    large: Path | None = args.large
    if large is not None:
        default_url = storage.url("raw", f"{tag}-default.csv")
        pairs += [
            (
                "upload: s3fs default parts",
                lambda: s3fs.put_file(str(large), storage._path(default_url)),
            ),
            (
                "upload: 8 MiB x 8 (put_file)",
                lambda: storage.put_file(large, storage.url("raw", f"{tag}-parts.csv")),
            ),
        ]
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=400, help="small objects per measure")
    parser.add_argument("--size", type=int, default=60_000, help="bytes of each small object")
    parser.add_argument("--large", type=Path, help="a large file to upload (e.g. a 1m CSV)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, alternating")
    args = parser.parse_args()
    if args.objects < 2 or args.repeat < 1:
        parser.error("--objects must be at least 2 and --repeat at least 1")
    if args.large is not None and not args.large.is_file():
        parser.error(f"--large {args.large}: no such file")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    servers: Any = importlib.import_module("tests.servers")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "carbonlake")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "carbonlake")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    from carbonlake.storage import Storage

    payload = os.urandom(args.size)
    results: dict[str, list[tuple[float, float, float]]] = {}
    with servers.seaweedfs() as endpoint:
        storage = Storage(
            f"s3://objects-{uuid.uuid4().hex[:8]}", options={"endpoint_url": endpoint}
        )
        storage.ensure_buckets()
        s3fs = storage.filesystem("enriched")
        arrow = storage._arrow_s3()
        pool = ThreadPoolExecutor(16)
        storage.write_bytes(storage.url("enriched", "warm-up"), b"x")
        first_upload = None
        if args.large is not None:  # the server's first large upload is slower than later ones
            warm_up = storage._path(storage.url("raw", "warm-up.csv"))
            first_upload = _measure(lambda: s3fs.put_file(str(args.large), warm_up))

        def arrow_writes(urls: list[str]) -> None:
            def put(url: str) -> None:
                with arrow.open_output_stream(storage._path(url)) as out:
                    out.write(payload)

            list(pool.map(put, urls))

        for round_number in range(args.repeat):
            pairs = _pairs(storage, arrow_writes, payload, f"r{round_number}", args)
            for name, work in pairs:
                results.setdefault(name, []).append(_measure(work))
    print(
        f"| {args.objects} objects of {args.size:,} B; median of {args.repeat} | wall s | "
        "client CPU s | server CPU s |"
    )
    print("|---|---:|---:|---:|")
    medians = {}
    for name, runs in results.items():
        medians[name] = tuple(statistics.median(r[i] for r in runs) for i in range(3))
        wall, cpu, server = medians[name]
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {server:.2f} |")
    if first_upload is not None:
        wall, cpu, server = first_upload
        print(
            f"| upload: the server's first, s3fs default parts (not in the pairs) | {wall:.2f} "
            f"| {cpu:.2f} | {server:.2f} |"
        )
    names = list(medians)
    print()
    for old, new in zip(names[::2], names[1::2], strict=True):
        ratios = [
            n / o if o else float("nan") for o, n in zip(medians[old], medians[new], strict=True)
        ]
        print(
            f"{new} / {old}: wall {ratios[0]:.2f}x, client CPU {ratios[1]:.2f}x, "
            f"server CPU {ratios[2]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
