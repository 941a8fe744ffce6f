"""The benchmark: carbonlake end to end against a per-record baseline and a DuckDB scan.

For each size, in a fresh folder: generate (or reuse) the activity CSV, run
``carbonlake run FILE --workspace FRESH --json --no-progress`` in its own
process, run the per-record baseline (:mod:`benchmarks.baseline`) in its own
process on the same file, time DuckDB's ``count(*)`` of the same CSV, and check
that carbonlake's enriched output and the baseline's agree on a sample of
records (every record of up to ``sample_batches`` batch files).

Times: ``wall_s`` is measured around the child process; ``pipeline_s`` is
``wall_s`` minus the interpreter's start and carbonlake's imports (the fastest
of three ``carbonlake --version``); ``execution_s`` is the execution's own
``started_at`` -> ``stopped_at`` from the database (it leaves out opening the
workspace and landing the file). Speed-up and the ratio to the scan use
``pipeline_s``; the baseline's time is measured inside its process the same way
(its imports and factor loading excluded).
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import polars as pl

from carbonlake.database import Database

from . import baseline, generate, measure

MIB = 1024 * 1024
BATCH_SIZE = baseline.BATCH_SIZE
REL_TOL = 1e-9
SAMPLE = "sample"
"""Size label of the shipped 8,000-record sample (the demo's file)."""
GASES = ("co2", "ch4", "n2o", "co2e_ar4", "co2e_ar5")

TARGETS = (
    "1m: at least 20x faster than the per-record baseline and within 10x the DuckDB scan",
    "10m: completes with peak RSS under 1 GiB",
    "sample (8,000 rows): under 1 s of pipeline time",
)


class MismatchError(AssertionError):
    """carbonlake and the per-record baseline disagree on a record's emissions."""


def parse_size(text: str) -> int | str:
    """``10k`` -> 10_000, ``1m`` -> 1_000_000, ``2500`` -> 2500, ``sample`` stays a label."""
    value = text.strip().lower().replace("_", "")
    if value == SAMPLE:
        return SAMPLE
    scale = {"k": 1_000, "m": 1_000_000}.get(value[-1:], 1)
    number = value[:-1] if scale > 1 else value
    try:
        rows = int(float(number) * scale)
    except ValueError:
        raise ValueError(
            f"size {text!r} is not a row count like 10k, 1m, 2500 or 'sample'"
        ) from None
    if rows <= 0:
        raise ValueError(f"size {text!r} must be at least one row")
    return rows


def size_label(rows: int | str) -> str:
    """``1000000`` -> ``1m``, ``10000`` -> ``10k``, others as digits."""
    if isinstance(rows, str):
        return rows
    for suffix, scale in (("m", 1_000_000), ("k", 1_000)):
        if rows % scale == 0:
            return f"{rows // scale}{suffix}"
    return str(rows)


@dataclass
class SizeResult:
    """Everything measured for one input file."""

    size: str
    rows: int
    file_bytes: int
    generate_s: float | None
    wall_s: float
    pipeline_s: float
    execution_s: float | None
    rows_per_s: float
    peak_rss_mib: float
    records_calculated: int
    records_failed: int
    root_id: str
    """The run's root_id: its enriched batches are under ``enriched/<root_id>/``."""
    baseline_s: float | None = None
    """Per-record baseline seconds for all ``rows`` (extrapolated when ``baseline_rows`` < rows)."""
    baseline_rows: int | None = None
    """Rows the baseline actually processed."""
    baseline_extrapolated: bool = False
    baseline_wall_s: float | None = None
    baseline_peak_rss_mib: float | None = None
    speedup: float | None = None
    """baseline_s / pipeline_s."""
    duckdb_scan_s: float | None = None
    ratio_to_scan: float | None = None
    """pipeline_s / duckdb_scan_s."""
    compared_records: int = 0
    workspace_bytes: int | None = None
    """Bytes of every file in the workspace after the run (the landed input included)."""
    workspace_bytes_by_bucket: dict[str, int] = field(default_factory=dict)
    """``workspace_bytes`` per top-level folder (bucket) or file (the database)."""
    growth_bytes_per_record: float | None = None
    """(workspace_bytes - file_bytes) / rows: what the workspace grows beyond the input."""
    lookups_s: dict[str, float] = field(default_factory=dict)
    """Wall seconds above the bare interpreter's start of reading one record back:
    ``emissions show ID`` and ``lineage trace ID`` (the file's last record)."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Options:
    """What to run (the command line, parsed)."""

    sizes: list[int | str]
    out: Path
    keep: bool = False
    skip_baseline: bool = False
    baseline_rows: int | None = None
    """Time the baseline on at most this many leading rows and extrapolate linearly."""
    seed: int = generate.DEFAULT_SEED
    sample_batches: int = 20
    """Batch files whose every record is compared (evenly spread; all when fewer)."""


def _child_env() -> dict[str, str]:
    """The environment of measured children: benchmarks importable, batches of 1,000."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["CARBONLAKE_PIPELINE__BATCH_SIZE"] = str(BATCH_SIZE)
    return env


def work_dir(out: Path, label: str) -> Path:
    """Where one size's ``workspace/`` (carbonlake) and ``baseline/`` outputs go."""
    return out / "work" / label


def input_file(rows: int | str, data_dir: Path, seed: int) -> tuple[Path, float | None]:
    """The CSV of a size (generated unless already there); returns (path, seconds generating)."""
    if rows == SAMPLE:
        sample = resources.files("carbonlake").joinpath("data/sample-activity-8000.csv")
        return Path(str(sample)), None
    assert isinstance(rows, int)
    path = data_dir / f"activity-{size_label(rows)}-seed{seed}.csv"
    if path.exists():
        return path, None
    started = time.perf_counter()
    generate.generate(path, rows, seed)
    return path, time.perf_counter() - started


def _execution_seconds(workspace: Path, execution_id: str) -> float | None:
    database = Database(f"sqlite:///{workspace / 'carbonlake.db'}")
    try:
        execution = database.get_execution(execution_id)
    finally:
        database.close()
    if not execution or not execution.get("stopped_at"):
        return None
    started = datetime.fromisoformat(execution["started_at"])
    stopped = datetime.fromisoformat(execution["stopped_at"])
    return (stopped - started).total_seconds()


def run_carbonlake(path: Path, workspace: Path) -> tuple[measure.Measured, dict[str, Any]]:
    """``carbonlake run`` in a fresh workspace; returns the measurement and the run summary."""
    if workspace.exists():
        shutil.rmtree(workspace)
    argv = [
        *measure.carbonlake_command(),
        "run",
        str(path),
        "--workspace",
        str(workspace),
        "--json",
        "--no-progress",
    ]
    measured = measure.run_measured(argv, env=_child_env())
    try:
        summaries = json.loads(measured.stdout)
    except json.JSONDecodeError:
        measured.check()
        raise RuntimeError(f"carbonlake printed no JSON: {measured.stdout[:2000]}") from None
    if measured.returncode != 0 or not isinstance(summaries, list):
        raise RuntimeError(
            f"carbonlake run failed (exit {measured.returncode}): "
            f"{json.dumps(summaries)[:2000]}\n{measured.stderr[-4000:]}"
        )
    return measured, summaries[0]


def run_baseline(path: Path, out_dir: Path, limit: int | None) -> tuple[measure.Measured, Any]:
    """The per-record baseline in its own process; returns the measurement and its result."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    argv = [sys.executable, "-m", "benchmarks.baseline", str(path), str(out_dir)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    measured = measure.run_measured(argv, env=_child_env()).check()
    return measured, json.loads(measured.stdout)


def _emissions(enriched_file: Path) -> dict[str, tuple[float, ...]]:
    """Record id -> (co2, ch4, n2o, co2e ar4, co2e ar5) tonnes of one enriched batch."""
    found: dict[str, tuple[float, ...]] = {}
    if enriched_file.suffix == ".parquet":  # carbonlake's enriched files
        records: Any = pl.read_parquet(enriched_file).iter_rows(named=True)
    else:  # the baseline's JSON Lines
        with enriched_file.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
    for record in records:
        calculated = record["emissions_output"]["calculated_emissions"]
        found[record["activity_event_id"]] = (
            calculated["co2"]["amount"],
            calculated["ch4"]["amount"],
            calculated["n2o"]["amount"],
            calculated["co2e"]["ar4"]["amount"],
            calculated["co2e"]["ar5"]["amount"],
        )
    return found


def sample_batches(names: list[str], count: int) -> list[str]:
    """``count`` batch names spread evenly over ``names`` (first and last included)."""
    if count <= 0 or len(names) <= count:
        return list(names)
    if count == 1:
        return [names[0]]
    step = (len(names) - 1) / (count - 1)
    return sorted({names[round(i * step)] for i in range(count)})


def compare_outputs(
    baseline_enriched: Path,
    carbonlake_enriched: Path,
    batches: int | None = None,
    rel_tol: float = REL_TOL,
) -> int:
    """Check both enriched outputs agree on every record of the sampled batch files.

    ``batches`` None compares every batch. Returns how many records were compared;
    raises :class:`MismatchError` on the first disagreement or missing record.
    """
    names = sorted(p.name for p in baseline_enriched.glob("part_*.jsonl"))
    if not names:
        raise MismatchError(f"the baseline wrote no enriched batches in {baseline_enriched}")
    compared = 0
    for name in names if batches is None else sample_batches(names, batches):
        theirs = _emissions(baseline_enriched / name)
        ours_file = carbonlake_enriched / name.replace(".jsonl", ".parquet")
        if not ours_file.exists():
            raise MismatchError(f"carbonlake wrote no enriched batch {ours_file}")
        ours = _emissions(ours_file)
        if ours.keys() != theirs.keys():
            only = sorted(set(ours) ^ set(theirs))[:5]
            raise MismatchError(
                f"batch {name}: carbonlake and the baseline hold different records "
                f"(e.g. {only}); both must cut batches of {BATCH_SIZE} in file order"
            )
        for record_id, expected in theirs.items():
            got = ours[record_id]
            for gas, a, b in zip(GASES, got, expected, strict=True):
                if not math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0):
                    raise MismatchError(
                        f"record {record_id} ({name}): {gas} is {a!r} tonnes in carbonlake's "
                        f"enriched output but {b!r} in the per-record baseline "
                        f"(relative tolerance {rel_tol})"
                    )
            compared += 1
    return compared


def workspace_bytes(workspace: Path) -> dict[str, int]:
    """Bytes of the files in a workspace, per top-level folder (bucket) or file."""
    sizes: dict[str, int] = {}
    for entry in sorted(workspace.iterdir()):
        files = entry.rglob("*") if entry.is_dir() else [entry]
        sizes[entry.name] = sum(f.stat().st_size for f in files if f.is_file())
    return sizes


def bench_size(rows: int | str, options: Options, startup_s: float, log: Any = None) -> SizeResult:
    """Measure one size; removes its workspace and baseline output unless ``keep``."""
    say = log or (lambda message: None)
    label = size_label(rows)
    work = work_dir(options.out, label)
    path, generate_s = input_file(rows, options.out / "data", options.seed)
    if generate_s is not None:
        say(f"[{label}] generated {path} in {generate_s:.1f} s")
    say(f"[{label}] carbonlake run ...")
    measured, summary = run_carbonlake(path, work / "workspace")
    if summary["status"] != "SUCCEEDED" or summary["records_failed"]:
        raise RuntimeError(f"[{label}] carbonlake run did not succeed: {json.dumps(summary)}")
    total = int(summary["records_in"])
    if isinstance(rows, int) and total != rows:
        raise RuntimeError(f"[{label}] carbonlake read {total} records of {rows}")
    pipeline_s = max(measured.wall_s - startup_s, 1e-9)
    result = SizeResult(
        size=label,
        rows=total,
        file_bytes=path.stat().st_size,
        generate_s=generate_s,
        wall_s=measured.wall_s,
        pipeline_s=pipeline_s,
        execution_s=_execution_seconds(work / "workspace", summary["execution_id"]),
        rows_per_s=total / pipeline_s,
        peak_rss_mib=measured.peak_rss_bytes / MIB,
        records_calculated=int(summary["records_calculated"]),
        records_failed=int(summary["records_failed"]),
        root_id=summary["root_id"],
    )
    result.workspace_bytes_by_bucket = workspace_bytes(work / "workspace")
    result.workspace_bytes = sum(result.workspace_bytes_by_bucket.values())
    result.growth_bytes_per_record = (result.workspace_bytes - result.file_bytes) / max(total, 1)
    buckets = ", ".join(
        f"{name} {size / MIB:,.1f} MiB" for name, size in result.workspace_bytes_by_bucket.items()
    )
    say(
        f"[{label}] carbonlake: wall {result.wall_s:.2f} s, pipeline {pipeline_s:.2f} s, "
        f"peak RSS {result.peak_rss_mib:.0f} MiB, workspace "
        f"{result.growth_bytes_per_record:,.0f} bytes per record beyond the input "
        f"({buckets})"
    )
    if not options.skip_baseline:
        limit = (
            options.baseline_rows
            if options.baseline_rows and options.baseline_rows < total
            else None
        )
        say(f"[{label}] per-record baseline on {limit or total} rows ...")
        b_measured, b_result = run_baseline(path, work / "baseline", limit)
        result.baseline_rows = int(b_result["records"])
        result.baseline_extrapolated = result.baseline_rows < total
        result.baseline_s = float(b_result["seconds"]) * total / result.baseline_rows
        result.baseline_wall_s = b_measured.wall_s
        result.baseline_peak_rss_mib = b_measured.peak_rss_bytes / MIB
        result.speedup = result.baseline_s / pipeline_s
        if result.baseline_extrapolated:
            result.notes.append(
                f"baseline timed on the first {result.baseline_rows} rows and extrapolated "
                "linearly to all rows"
            )
        result.compared_records = compare_outputs(
            work / "baseline" / "enriched",
            work / "workspace" / "enriched" / summary["root_id"],
            options.sample_batches,
        )
        say(
            f"[{label}] baseline {result.baseline_s:.2f} s"
            f"{' (extrapolated)' if result.baseline_extrapolated else ''}; "
            f"{result.compared_records} records agree"
        )
    result.lookups_s = lookups(path, work / "workspace", say, label)
    result.duckdb_scan_s, scanned = measure.duckdb_scan_seconds(path)
    if scanned != total:
        result.notes.append(f"DuckDB counted {scanned} rows, carbonlake {total}")
    result.ratio_to_scan = pipeline_s / result.duckdb_scan_s
    if not options.keep:
        shutil.rmtree(work, ignore_errors=True)
        if path.parent == options.out / "data":
            path.unlink(missing_ok=True)
    return result


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(directory: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Machine and versions, so figures can be compared across runs."""
    import carbonlake

    package_dir = Path(carbonlake.__file__).resolve().parent
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "carbonlake": str(package_dir),
        "carbonlake_git": _git_commit(package_dir),
        "polars": _version("polars"),
        "pyarrow": _version("pyarrow"),
        "duckdb": _version("duckdb"),
    }


def last_record_id(path: Path) -> str:
    """The ``activity_event_id`` of a CSV's last record (read from the file's end)."""
    header = pl.read_csv(path, n_rows=0).columns
    with path.open("rb") as handle:
        handle.seek(max(path.stat().st_size - 65_536, 0))
        last = handle.read().rstrip(b"\r\n").rsplit(b"\n", 1)[-1].decode("utf-8")
    row = pl.read_csv(io.StringIO(",".join(header) + "\n" + last), infer_schema=False)
    return str(row["activity_event_id"][0])


LOOKUPS = {"emissions show": ("emissions", "show"), "lineage trace": ("lineage", "trace")}


def lookups(path: Path, workspace: Path, say: Any, label: str) -> dict[str, float]:
    """Time reading one record back (fastest of three, above the bare interpreter's start)."""
    record_id = last_record_id(path)
    interpreter_s = measure.interpreter_seconds()
    found = {}
    for name, command in LOOKUPS.items():
        argv = [*measure.carbonlake_command(), *command, record_id]
        argv += ["--workspace", str(workspace), "--json"]
        found[name] = round(max(measure.lookup_seconds(argv) - interpreter_s, 0.0), 3)
    say(f"[{label}] one record read back (s above interpreter start): {found}")
    return found


def target_checks(results: list[SizeResult]) -> list[dict[str, Any]]:
    """The issue's targets against what was measured (informational; never asserted)."""
    checks = []
    for result in results:
        if result.size == "1m":
            if result.speedup is not None:
                checks.append(
                    {
                        "target": "1m: >= 20x faster than the per-record baseline",
                        "measured": round(result.speedup, 2),
                        "met": result.speedup >= 20,
                    }
                )
            if result.ratio_to_scan is not None:
                checks.append(
                    {
                        "target": "1m: within 10x the DuckDB scan",
                        "measured": round(result.ratio_to_scan, 2),
                        "met": result.ratio_to_scan <= 10,
                    }
                )
        if result.size == "1m" and result.growth_bytes_per_record is not None:
            checks.append(
                {
                    "target": "1m: workspace growth beyond the input at most 400 bytes per record",
                    "measured": round(result.growth_bytes_per_record),
                    "met": result.growth_bytes_per_record <= 400,
                }
            )
        if result.size == "10m":
            for name, seconds in result.lookups_s.items():
                checks.append(
                    {
                        "target": f"10m: `{name}` of one record under 1 s above interpreter start",
                        "measured": seconds,
                        "met": seconds < 1.0,
                    }
                )
            checks.append(
                {
                    "target": "10m: peak RSS under 1 GiB",
                    "measured": round(result.peak_rss_mib, 1),
                    "met": result.peak_rss_mib < 1024,
                }
            )
        if result.size == SAMPLE:
            checks.append(
                {
                    "target": "sample (8,000 rows): under 1 s pipeline time",
                    "measured": round(result.pipeline_s, 3),
                    "met": result.pipeline_s < 1.0,
                }
            )
    return checks


COLUMNS = (
    ("size", "size"),
    ("rows", "rows"),
    ("wall s", "wall_s"),
    ("pipeline s", "pipeline_s"),
    ("rows/s", "rows_per_s"),
    ("peak RSS MiB", "peak_rss_mib"),
    ("workspace B/record", "growth_bytes_per_record"),
    ("per-record s", "baseline_s"),
    ("speedup x", "speedup"),
    ("DuckDB scan s", "duckdb_scan_s"),
    ("ratio to scan x", "ratio_to_scan"),
)


def _cell(result: SizeResult, attribute: str) -> str:
    value = getattr(result, attribute)
    if value is None:
        return "-"
    if attribute in ("rows", "rows_per_s"):
        return f"{value:,.0f}"
    if attribute in ("peak_rss_mib", "growth_bytes_per_record"):
        return f"{value:,.0f}"
    if attribute in ("speedup", "ratio_to_scan"):
        text = f"{value:.2f}"
    elif isinstance(value, float):
        text = f"{value:.3f}" if value < 10 else f"{value:.1f}"
    else:
        text = str(value)
    if result.baseline_extrapolated and attribute in ("baseline_s", "speedup"):
        text += "*"
    return text


def format_table(results: list[SizeResult]) -> str:
    """The figures as a Markdown table (``*`` marks extrapolated baseline figures)."""
    header = [title for title, _ in COLUMNS]
    rows = [[_cell(r, attribute) for _, attribute in COLUMNS] for r in results]
    widths = [max(len(x) for x in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
    out += [line(row) for row in rows]
    if any(r.baseline_extrapolated for r in results):
        out.append("")
        out.append("* per-record baseline timed on a prefix of the file and extrapolated linearly")
    return "\n".join(out)


def run(options: Options, command: str, log: Any = None) -> dict[str, Any]:
    """Measure every size; writes ``bench-<time>.json`` into ``options.out``; returns it."""
    say = log or (lambda message: None)
    options.out.mkdir(parents=True, exist_ok=True)
    startup_s = measure.startup_seconds()
    say(f"interpreter start + imports (carbonlake --version): {startup_s:.3f} s")
    results = [bench_size(rows, options, startup_s, say) for rows in options.sizes]
    stamp = datetime.now(UTC)
    report = {
        "command": command,
        "finished_at": stamp.isoformat(timespec="seconds"),
        "environment": environment(),
        "startup_s": startup_s,
        "batch_size": BATCH_SIZE,
        "results": [asdict(r) for r in results],
        "targets": target_checks(results),
        "table": format_table(results),
    }
    path = options.out / f"bench-{stamp.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report["report_path"] = str(path)
    return report
