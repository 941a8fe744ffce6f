"""The benchmark keeps working: a small run end to end, and its correctness check bites.

No timing is asserted here; the figures live in docs/performance.md.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from benchmarks import __main__ as bench_cli
from benchmarks import baseline, generate, harness
from carbonlake.quality import default_rules
from carbonlake.quality.gate import evaluate

ROWS = 3000


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One benchmark run of 3,000 rows, outputs kept."""
    out = tmp_path_factory.mktemp("bench")
    options = harness.Options(sizes=[ROWS], out=out, keep=True)
    return harness.run(options, "test"), out


def test_report_has_every_field(smoke: tuple[dict[str, Any], Path]) -> None:
    report, _ = smoke
    assert Path(report["report_path"]).is_file()
    assert json.loads(Path(report["report_path"]).read_text())["results"] == report["results"]
    (result,) = report["results"]
    for name in (
        "size",
        "rows",
        "wall_s",
        "pipeline_s",
        "execution_s",
        "rows_per_s",
        "peak_rss_mib",
        "baseline_s",
        "speedup",
        "duckdb_scan_s",
        "ratio_to_scan",
    ):
        assert result[name] is not None, name
    assert result["size"] == "3k"
    assert result["rows"] == ROWS
    assert result["records_calculated"] == ROWS
    assert result["records_failed"] == 0
    assert result["baseline_rows"] == ROWS
    assert result["baseline_extrapolated"] is False
    assert result["compared_records"] == ROWS
    assert result["peak_rss_mib"] > 0
    # Reading the last record back ran both commands to exit 0 (a failure raises).
    assert sorted(result["lookups_s"]) == ["emissions show", "lineage trace"]
    header = report["table"].splitlines()[0]
    for title, _ in harness.COLUMNS:
        assert title in header


def test_fast_path_and_baseline_agree_exactly_on_every_record(
    smoke: tuple[dict[str, Any], Path],
) -> None:
    report, out = smoke
    (result,) = report["results"]
    work = harness.work_dir(out, result["size"])
    compared = harness.compare_outputs(
        work / "baseline" / "enriched",
        work / "workspace" / "enriched" / result["root_id"],
        batches=None,
        rel_tol=1e-12,
    )
    assert compared == ROWS


def test_a_disagreement_fails_loudly(smoke: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    report, out = smoke
    (result,) = report["results"]
    work = harness.work_dir(out, result["size"])
    tampered = tmp_path / "enriched"
    tampered.mkdir()
    for batch in sorted((work / "baseline" / "enriched").glob("part_*.jsonl")):
        lines = batch.read_text().splitlines()
        record = json.loads(lines[-1])
        record["emissions_output"]["calculated_emissions"]["co2e"]["ar5"]["amount"] *= 1 + 1e-6
        lines[-1] = json.dumps(record)
        (tampered / batch.name).write_text("\n".join(lines) + "\n")
    with pytest.raises(harness.MismatchError, match="co2e_ar5"):
        harness.compare_outputs(
            tampered, work / "workspace" / "enriched" / result["root_id"], batches=None
        )


def test_generated_file_is_deterministic_and_passes_data_quality(tmp_path: Path) -> None:
    first = generate.generate(tmp_path / "a.csv", 2500, seed=7)
    second = generate.generate(tmp_path / "b.csv", 2500, seed=7)
    assert first.read_bytes() == second.read_bytes()
    assert generate.generate(tmp_path / "c.csv", 2500, seed=8).read_bytes() != first.read_bytes()
    report, _ = evaluate(first, default_rules())
    assert report["passed"], report["summary"]
    assert report["rowsCount"] == 2500


def test_generated_file_mixes_scopes_and_converting_units(tmp_path: Path) -> None:
    path = generate.generate(tmp_path / "a.csv", 3000, seed=1)
    factors = baseline.load_factors()
    scopes: set[str] = set()
    units: set[str] = set()
    converted = 0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            factor = factors[(row["category"], row["activity"])]
            scopes.add(row["scope"])
            units.add(row["units"])
            converted += row["units"] != factor.unit
    assert scopes == {"1", "2", "3"}
    assert {"L", "MWh", "km"} <= units
    assert converted > 500


def test_sizes_parse() -> None:
    assert harness.parse_size("10k") == 10_000
    assert harness.parse_size("1m") == 1_000_000
    assert harness.parse_size("2500") == 2500
    assert harness.parse_size("sample") == "sample"
    assert harness.size_label(10_000_000) == "10m"
    assert harness.size_label(2500) == "2500"
    with pytest.raises(ValueError, match="row count"):
        harness.parse_size("lots")
    with pytest.raises(SystemExit):
        bench_cli.parser().parse_args(["--sizes", "0"])


def test_sampled_batches_spread_over_the_file() -> None:
    names = [baseline.batch_name(i) for i in range(100)]
    picked = harness.sample_batches(names, 5)
    assert picked[0] == names[0]
    assert picked[-1] == names[-1]
    assert len(picked) == 5
    assert harness.sample_batches(names[:3], 5) == names[:3]


def test_the_floor_runs_every_step_and_stores_every_record(tmp_path: Path) -> None:
    from benchmarks import floor

    source = generate.generate(tmp_path / "floor.csv", ROWS)
    work = tmp_path / "work"
    measured = floor.measure_floor(source, work, batch_size=500)
    assert measured.rows == ROWS
    assert list(measured.steps) == [
        "read CSV",
        "profile",
        "write batches",
        "read batches",
        "calculate",
        "write enriched",
        "hash nodes",
        "store ledger (Parquet)",
        "store results (Parquet)",
        "store ledger (SQLite)",
        "store results (SQLite)",
    ]
    # The work was really done: six batch files each way, every record stored twice.
    assert len(list((work / "transformed").glob("*.parquet"))) == ROWS // 500
    assert len(list((work / "enriched").glob("*.parquet"))) == ROWS // 500
    assert pl.read_parquet(work / "ledger.parquet").height == ROWS
    assert pl.read_parquet(work / "results.parquet").height == ROWS
    with sqlite3.connect(work / "floor.db") as conn:
        assert conn.execute("SELECT count(*) FROM lineage").fetchone()[0] == ROWS
        assert conn.execute("SELECT count(*) FROM emissions").fetchone()[0] == ROWS
    found = floor.summary(measured, scan_s=0.5, baseline_s=40.0)
    assert found["target_20x_baseline_s"] == 2.0
    assert found["floor_parquet_two_cores_s"] == pytest.approx(
        found["floor_parquet_s"] / 2, abs=1e-3
    )


def test_the_object_store_benchmark_measures_every_pair(
    tmp_path: Path, s3_credentials: None
) -> None:
    """`python -m benchmarks.objects` runs on a real SeaweedFS and reports each pair."""
    import subprocess
    import sys

    large = tmp_path / "large.csv"
    large.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.objects",
            "--objects",
            "5",
            "--size",
            "1000",
            "--large",
            str(large),
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in (
        "read: pyarrow threads (read_many)",
        "write: s3fs pipe (write_many)",
        "upload: 8 MiB x 8 (put_file)",
    ):
        assert f"| {name} |" in done.stdout
    assert done.stdout.count(" / ") == 3
