"""``python -m benchmarks``: measure carbonlake on generated activity files."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from . import generate, harness


def _sizes(text: str) -> list[int | str]:
    try:
        return [harness.parse_size(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    """The command line of the benchmark."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Throughput and memory of `carbonlake run` on generated activity CSVs, "
        "against a per-record Python baseline and a DuckDB scan of the same file.",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=_sizes("10k,1m"),
        help="comma-separated row counts (10k, 1m, 10m, 2500) or 'sample' for the shipped "
        "8,000-row file (default: 10k,1m)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="folder for the JSON report, generated files and workspaces (default: bench-results)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep generated CSVs, workspaces and baseline outputs (a later run reuses the CSVs)",
    )
    p.add_argument(
        "--skip-baseline",
        action="store_true",
        help="do not run the per-record baseline (no speed-up, no correctness sample)",
    )
    p.add_argument(
        "--baseline-rows",
        type=int,
        default=None,
        metavar="N",
        help="time the baseline on the first N rows only and extrapolate to the whole file "
        "(marked * in the table)",
    )
    p.add_argument(
        "--sample-batches",
        type=int,
        default=20,
        metavar="N",
        help="batch files of 1,000 records whose every record is compared (default: 20)",
    )
    p.add_argument("--seed", type=int, default=generate.DEFAULT_SEED, help="generator seed")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints progress on stderr and the figures table on stdout."""
    args = parser().parse_args(argv)
    options = harness.Options(
        sizes=args.sizes,
        out=args.out,
        keep=args.keep,
        skip_baseline=args.skip_baseline,
        baseline_rows=args.baseline_rows,
        seed=args.seed,
        sample_batches=args.sample_batches,
    )
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = harness.run(options, command, log)
    print(report["table"])
    for check in report["targets"]:
        verdict = "met" if check["met"] else "NOT met"
        print(f"target {check['target']}: {check['measured']} -> {verdict}")
    for result in report["results"]:
        for note in result["notes"]:
            print(f"note [{result['size']}]: {note}")
    print(f"report: {report['report_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
