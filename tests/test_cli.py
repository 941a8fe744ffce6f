"""The ``carbonlake`` command line: help, shared options, exit codes, JSON and settings."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from carbonlake.cli import cli

CARBONLAKE = (sys.executable, "-m", "carbonlake.cli")
SAMPLE = Path(__file__).resolve().parents[1] / "src" / "carbonlake" / "data"
SAMPLE_8000 = SAMPLE / "sample-activity-8000.csv"
HEADER = (
    "activity_event_id,asset_id,geo,origin_measurement_timestamp,scope,category,"
    "activity,source,raw_data,units"
)
SUMMARY_KEYS = {
    "execution_id",
    "root_id",
    "status",
    "input_storage_location",
    "storage_location",
    "records_in",
    "records_calculated",
    "records_failed",
    "co2e_tonnes",
    "data_quality",
}


def row(event_id: str, raw_data: str = "10") -> str:
    return (
        f'{event_id},vehicle1,"[1.5,2.5]",2019-10,1,mobile-combustion,'
        f"Motor Gasoline - Gasoline Passenger Cars,fleet,{raw_data},gal"
    )


def write_csv(path: Path, rows: int) -> Path:
    lines = [HEADER] + [row(f"id-{i}", str(i % 50 + 1)) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CARBONLAKE_"):
            monkeypatch.delenv(name)


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    return result


def one_summary(stdout: str) -> dict[str, Any]:
    document = json.loads(stdout)
    if isinstance(document, list):
        assert len(document) == 1, document
        document = document[0]
    assert isinstance(document, dict), document
    return document


# -- the command tree -----------------------------------------------------------------


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


ALL_COMMANDS = list(walk(cli))
LEAF_COMMANDS = [(p, c) for p, c in ALL_COMMANDS if not isinstance(c, click.Group)]


def test_the_tree_has_the_documented_commands() -> None:
    paths = {" ".join(p) for p, _ in ALL_COMMANDS}
    assert {"run", "demo", "lineage trace", "lineage tree", "emissions export"} <= paths


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=" ".join(p) or "carbonlake") for p, _ in ALL_COMMANDS]
)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    command = dict(ALL_COMMANDS)[path]
    assert command.help and command.help.strip(), f"{' '.join(path)} has no docstring"
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    first_line = command.help.strip().splitlines()[0]
    assert first_line.split()[0] in result.stdout
    if isinstance(command, click.Group):
        for name in command.commands:
            assert name in result.stdout
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"option {param.opts} of {' '.join(path)} has no help"


@pytest.mark.parametrize("path", [pytest.param(p, id=" ".join(p)) for p, _ in LEAF_COMMANDS])
def test_every_leaf_command_takes_workspace_and_json(path: tuple[str, ...]) -> None:
    command = dict(ALL_COMMANDS)[path]
    options = {opt for param in command.params for opt in param.opts}
    assert "--workspace" in options
    assert "--json" in options
    help_text = invoke(*path, "--help").stdout
    assert "--workspace" in help_text
    assert "--json" in help_text


# -- exit codes and errors ------------------------------------------------------------


def test_run_with_a_nonexistent_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    ws = tmp_path / "ws"
    result = invoke("run", missing, "--workspace", ws, "--json")
    assert result.exit_code == 2
    assert "nope.csv" in result.stderr
    assert not (ws / "landing" / "nope.csv").exists()


def test_key_with_several_files_is_a_usage_error(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", 2)
    b = write_csv(tmp_path / "b.csv", 2)
    result = invoke("run", "--key", "x.csv", a, b, "--workspace", tmp_path / "ws")
    assert result.exit_code == 2
    assert "--key" in result.stderr


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    assert invoke("frobnicate").exit_code == 2
    assert invoke("run", "--no-such-option", tmp_path / "a.csv").exit_code == 2


BAD_CONFIGS = [
    pytest.param("[pipeline\nbatch_size = 10\n", ["carbonlake.toml", "TOML"], id="invalid-toml"),
    pytest.param(
        "[pipeline]\nbatch_sise = 10\n", ["batch_sise", "carbonlake.toml"], id="unknown-key"
    ),
    pytest.param(
        "[pipelines]\nbatch_size = 10\n", ["pipelines", "carbonlake.toml"], id="unknown-section"
    ),
    pytest.param("[pipeline]\nbatch_size = 0\n", ["batch_size"], id="batch-size-zero"),
    pytest.param("[pipeline]\nbatch_size = -5\n", ["batch_size"], id="batch-size-negative"),
    pytest.param('[pipeline]\nbatch_size = "many"\n', ["batch_size"], id="batch-size-text"),
    pytest.param("[pipeline]\nbatch_size = 2.5\n", ["batch_size"], id="batch-size-fraction"),
    pytest.param("[notify]\nsmtp_port = true\n", ["smtp_port"], id="port-boolean"),
    pytest.param("pipeline = 3\n", ["pipeline", "carbonlake.toml"], id="section-not-a-table"),
]


@pytest.mark.parametrize(("config", "words"), BAD_CONFIGS)
def test_bad_configuration_file_exits_2_naming_the_problem(
    tmp_path: Path, config: str, words: list[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text(config, encoding="utf-8")
    source = write_csv(tmp_path / "fleet.csv", 3)

    result = invoke("run", source, "--workspace", ws)

    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (ws / "landing" / "fleet.csv").exists(), "nothing runs with a bad configuration"
    assert not (ws / "raw" / "fleet.csv").exists()


def test_bad_configuration_with_json_prints_one_json_error(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text("[pipeline]\nbatch_sise = 10\n", encoding="utf-8")
    source = write_csv(tmp_path / "fleet.csv", 3)

    result = invoke("run", source, "--workspace", ws, "--json")

    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert "batch_sise" in json.dumps(document)


@pytest.mark.parametrize(
    ("variable", "value", "word"),
    [
        ("CARBONLAKE_PIPELINE__BATCH_SIZE", "lots", "CARBONLAKE_PIPELINE__BATCH_SIZE"),
        ("CARBONLAKE_PIPELINE__BATCH_SIZE", "0", "batch_size"),
        ("CARBONLAKE_PIPELINE__NO_SUCH_KEY", "1", "CARBONLAKE_PIPELINE__NO_SUCH_KEY"),
        ("CARBONLAKE_NOSECTION__BATCH_SIZE", "1", "CARBONLAKE_NOSECTION__BATCH_SIZE"),
    ],
)
def test_bad_environment_setting_exits_2(
    tmp_path: Path, variable: str, value: str, word: str
) -> None:
    source = write_csv(tmp_path / "fleet.csv", 3)
    result = invoke("run", source, "--workspace", tmp_path / "ws", env={variable: value})
    assert result.exit_code == 2, result.output
    assert word in result.stderr


def test_bad_configuration_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text("[pipeline]\nbatch_size = 0\n", encoding="utf-8")
    source = write_csv(tmp_path / "fleet.csv", 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}

    proc = subprocess.run(
        [*CARBONLAKE, "run", str(source), "--workspace", str(ws)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "batch_size" in proc.stderr


# -- settings reach the pipeline ------------------------------------------------------


def batch_files(ws: Path, root_id: str) -> list[Path]:
    return sorted(p for p in (ws / "transformed" / root_id).iterdir() if p.is_file())


def test_batch_size_from_the_environment_sets_the_number_of_batches(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fleet.csv", 250)
    ws = tmp_path / "ws"

    result = invoke(
        "run",
        source,
        "--workspace",
        ws,
        "--json",
        "--force",
        env={"CARBONLAKE_PIPELINE__BATCH_SIZE": "100"},
    )

    assert result.exit_code == 0, result.stdout + result.stderr
    summary = one_summary(result.stdout)
    assert summary["records_calculated"] == 250
    assert len(batch_files(ws, summary["root_id"])) == 3


def test_default_batch_size_makes_one_batch_of_250(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fleet.csv", 250)
    ws = tmp_path / "ws"
    result = invoke("run", source, "--workspace", ws, "--json")
    assert result.exit_code == 0
    assert len(batch_files(ws, one_summary(result.stdout)["root_id"])) == 1


def test_environment_wins_over_the_configuration_file(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fleet.csv", 250)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text("[pipeline]\nbatch_size = 50\n", encoding="utf-8")

    from_file = invoke("run", source, "--workspace", ws, "--json")
    from_env = invoke(
        "run",
        source,
        "--workspace",
        ws,
        "--json",
        "--force",
        env={"CARBONLAKE_PIPELINE__BATCH_SIZE": "100"},
    )

    assert len(batch_files(ws, one_summary(from_file.stdout)["root_id"])) == 5
    assert len(batch_files(ws, one_summary(from_env.stdout)["root_id"])) == 3


def test_workspace_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_csv(tmp_path / "fleet.csv", 3)
    ws = tmp_path / "env-ws"
    monkeypatch.chdir(tmp_path)
    result = invoke("run", source, "--json", env={"CARBONLAKE_WORKSPACE": str(ws)})
    assert result.exit_code == 0
    assert (ws / "raw" / "fleet.csv").is_file()
    assert not (tmp_path / "carbonlake-data").exists()


# -- run ------------------------------------------------------------------------------


def test_run_json_is_one_document_with_the_summary_keys(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fleet.csv", 5)
    ws = tmp_path / "ws"

    result = invoke("run", source, "--workspace", ws, "--json")

    assert result.exit_code == 0
    summary = one_summary(result.stdout)  # json.loads of the whole of stdout
    assert set(summary) >= SUMMARY_KEYS
    assert summary["status"] == "SUCCEEDED"
    assert summary["records_in"] == 5
    assert summary["records_calculated"] == 5
    assert summary["records_failed"] == 0
    # Scope 2 is reported per method, never added: both totals, each with every GWP set.
    assert set(summary["co2e_tonnes"]) == {"location_based", "market_based"}
    location = summary["co2e_tonnes"]["location_based"]
    assert set(location) == {"ar4", "ar5", "ar6"}
    assert location["ar4"] > 0 and location["ar5"] > 0
    # Scope 1 only: the two methods give the same total.
    assert summary["co2e_tonnes"]["market_based"] == location
    dq = summary["data_quality"]
    assert set(dq) >= {"status", "report_location", "failed_rules"}
    assert dq["status"] == "PASSED"
    assert dq["failed_rules"] == []
    assert dq["report_location"].startswith("file://")
    report = Path(dq["report_location"].removeprefix("file://"))
    assert json.loads(report.read_text())["passed"] is True
    assert summary["input_storage_location"] == (ws / "landing" / "fleet.csv").resolve().as_uri()
    assert summary["storage_location"] == (ws / "raw" / "fleet.csv").resolve().as_uri()
    assert summary["execution_id"] != summary["root_id"]


def test_run_without_json_prints_a_readable_summary(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fleet.csv", 5)
    result = invoke("run", source, "--workspace", tmp_path / "ws")
    assert result.exit_code == 0
    assert "SUCCEEDED" in result.stdout
    assert "5 calculated" in result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_run_key_keeps_its_folders(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "whatever.csv", 4)
    ws = tmp_path / "ws"

    result = invoke("run", "--key", "2026/march/fleet.csv", source, "--workspace", ws, "--json")

    assert result.exit_code == 0, result.stdout
    summary = one_summary(result.stdout)
    assert (ws / "raw" / "2026" / "march" / "fleet.csv").is_file()
    assert not (ws / "landing" / "2026" / "march" / "fleet.csv").exists()
    assert not (ws / "raw" / "whatever.csv").exists()
    assert summary["input_storage_location"].endswith("/landing/2026/march/fleet.csv")
    assert summary["storage_location"].endswith("/raw/2026/march/fleet.csv")
    assert (ws / "raw" / "2026" / "march" / "fleet.csv").read_bytes() == source.read_bytes()


def test_failed_run_exits_1_and_json_still_parses(tmp_path: Path) -> None:
    source = tmp_path / "fleet.csv"
    source.write_text(HEADER + "\n" + row("id-1", raw_data="-1") + "\n", encoding="utf-8")
    result = invoke("run", source, "--workspace", tmp_path / "ws", "--json")
    assert result.exit_code == 1
    summary = one_summary(result.stdout)
    assert summary["status"] == "FAILED"
    assert summary["data_quality"]["status"] == "FAILED"


def test_run_json_as_a_real_process(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fleet.csv", 5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}
    proc = subprocess.run(
        [*CARBONLAKE, "run", str(source), "--workspace", str(tmp_path / "ws"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert set(one_summary(proc.stdout)) >= SUMMARY_KEYS


# -- lineage --------------------------------------------------------------------------


def test_lineage_trace_of_an_unknown_node_exits_1(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = invoke("lineage", "trace", "no-such-record", "--workspace", ws)
    assert result.exit_code == 1
    assert "no-such-record" in result.stderr


def test_lineage_trace_of_an_unknown_node_with_json(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    source = write_csv(tmp_path / "fleet.csv", 3)
    assert invoke("run", source, "--workspace", ws).exit_code == 0

    result = invoke("lineage", "trace", "no-such-record", "--workspace", ws, "--json")

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert "no-such-record" in json.dumps(document)
    assert "no-such-record" in result.stderr


def test_lineage_trace_of_a_known_record_reaches_the_raw_input(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    source = write_csv(tmp_path / "fleet.csv", 3)
    root_id = one_summary(invoke("run", source, "--workspace", ws, "--json").stdout)["root_id"]

    result = invoke("lineage", "trace", "id-1", "--workspace", ws, "--json")

    assert result.exit_code == 0, result.stderr
    chain = json.loads(result.stdout)
    assert chain[0]["action_taken"] == "RAW_DATA_INPUT"
    assert chain[-1]["node_id"] == "id-1"
    assert {node["root_id"] for node in chain} == {root_id}


def test_lineage_tree_of_an_unknown_root_exits_1(tmp_path: Path) -> None:
    result = invoke("lineage", "tree", "no-such-root", "--workspace", tmp_path / "ws", "--json")
    assert result.exit_code == 1
    assert "no-such-root" in json.dumps(json.loads(result.stdout))


# -- progress -------------------------------------------------------------------------


def test_progress_goes_to_stderr_and_json_stdout_stays_pure(tmp_path: Path) -> None:
    ws = tmp_path / "ws"

    result = invoke("run", SAMPLE_8000, "--workspace", ws, "--json", "--progress")

    assert result.exit_code == 0, result.stderr
    summary = one_summary(result.stdout)
    assert summary["records_calculated"] == 8000
    assert "sample-activity-8000.csv" in result.stderr
    assert "8/8" in result.stderr
    assert "batches" in result.stderr
    assert "━" not in result.stdout


def test_progress_in_a_real_process(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}
    proc = subprocess.run(
        [*CARBONLAKE, "run", str(SAMPLE_8000), "--json", "--progress", "--workspace", ws],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "calculating" in proc.stderr
    assert "8/8" in proc.stderr
    summary = one_summary(proc.stdout)
    assert summary["records_calculated"] == 8000


def test_no_progress_keeps_stderr_quiet(tmp_path: Path) -> None:
    result = invoke("run", SAMPLE_8000, "--workspace", tmp_path / "ws", "--json", "--no-progress")
    assert result.exit_code == 0
    assert "batches" not in result.stderr
    assert one_summary(result.stdout)["records_calculated"] == 8000


# -- text that looks like markup --------------------------------------------------------


def test_configuration_error_keeps_the_section_name(tmp_path: Path) -> None:
    """Messages say ``[pipeline] batch_size``; the terminal output must not eat ``[pipeline]``."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text("[pipeline]\nbatch_size = 0\n", encoding="utf-8")
    source = write_csv(tmp_path / "fleet.csv", 3)

    result = invoke("run", source, "--workspace", ws)

    assert result.exit_code == 2
    assert "[pipeline] batch_size" in result.stderr, result.stderr


def test_error_message_with_bracketed_text_does_not_crash(tmp_path: Path) -> None:
    """A node id is user input; printing it in an error must not raise."""
    result = invoke("lineage", "trace", "[/x]", "--workspace", tmp_path / "ws")
    assert result.exit_code == 1
    assert "[/x]" in result.stderr


def test_run_summary_prints_names_with_brackets_verbatim(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fleet.csv", 3)
    result = invoke("run", "--key", "q1/[/draft]/fleet.csv", source, "--workspace", tmp_path / "ws")
    assert result.exit_code in (0, 1)
    assert "q1/[/draft]/fleet.csv" in result.stdout


def test_usage_errors_with_json_still_print_one_json_document(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "carbonlake.cli", "run", str(tmp_path / "missing.csv"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["type"] == "BadParameter"
    assert "missing.csv" in result.stderr and "Traceback" not in result.stderr


def test_export_after_a_partial_rerun_has_each_record_once_with_its_newest_result(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    first = write_csv(tmp_path / "first.csv", 12)
    assert invoke("run", first, "--workspace", ws, "--no-progress").exit_code == 0
    # A corrected file for three of the records: their current result moves to the new
    # enriched file; the first file's other nine records stay current where they are.
    corrected = tmp_path / "corrected.csv"
    corrected.write_text(
        "\n".join([HEADER, *(row(f"id-{i}", "1000") for i in (3, 4, 5))]) + "\n",
        encoding="utf-8",
    )
    assert invoke("run", corrected, "--workspace", ws, "--no-progress").exit_code == 0
    exported = invoke("emissions", "export", "--workspace", ws)
    assert exported.exit_code == 0, exported.output
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    ids = [r["activity_event_id"] for r in records]
    assert sorted(ids) == sorted(f"id-{i}" for i in range(12))
    by_id = {r["activity_event_id"]: r for r in records}
    for i in range(12):
        assert by_id[f"id-{i}"]["raw_data"] == (1000 if i in (3, 4, 5) else i % 50 + 1)


def test_csv_export_of_files_with_different_columns_has_one_header_for_all(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    plain = write_csv(tmp_path / "plain.csv", 3)
    assert invoke("run", plain, "--workspace", ws, "--no-progress").exit_code == 0
    noted = tmp_path / "noted.csv"
    noted.write_text(
        "\n".join([HEADER + ",note", *(row(f"n-{i}") + f",remark {i}" for i in range(2))]) + "\n",
        encoding="utf-8",
    )
    assert invoke("run", noted, "--workspace", ws, "--no-progress").exit_code == 0
    out = tmp_path / "all.csv"
    exported = invoke("emissions", "export", "--format", "csv", "-o", out, "--workspace", ws)
    assert exported.exit_code == 0, exported.output
    with out.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert sorted(r["activity_event_id"] for r in table) == ["id-0", "id-1", "id-2", "n-0", "n-1"]
    notes = {r["activity_event_id"]: r["note"] for r in table}
    assert notes == {"id-0": "", "id-1": "", "id-2": "", "n-0": "remark 0", "n-1": "remark 1"}
    assert all(float(r["emissions_output.calculated_emissions.co2.amount"]) > 0 for r in table)
