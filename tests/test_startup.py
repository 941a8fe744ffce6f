"""What opening a workspace and starting a command load: a command that only reads one
record imports neither the pipeline's stages (Polars), pint, pyiceberg nor rich, and loads no
ruleset or factor set; a run still reports a bad ruleset or factor set before it starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from carbonlake import ConfigurationError, Pipeline
from carbonlake.context import Context
from carbonlake.settings import load_settings

from .conftest import HEADER, activity_row

HEAVY = ("polars", "pint", "pyiceberg", "pyarrow", "rich")
"""Modules a one-record read printing JSON does not need."""

_COMMAND = """
import json, sys
argv, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
from carbonlake.cli import main
sys.argv = ["carbonlake", *argv]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = [m for m in heavy if m in sys.modules]
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def _modules_after(argv: list[str], heavy: tuple[str, ...] = HEAVY) -> tuple[int, list[str], str]:
    """Run the CLI in a fresh interpreter; its exit code, which of ``heavy`` it imported,
    and its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _COMMAND, json.dumps(argv), json.dumps(heavy)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return int(report["code"] or 0), report["loaded"], done.stdout


@pytest.fixture
def workspace_with_results(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    source = tmp_path / "in" / "fleet.csv"
    source.parent.mkdir(parents=True)
    source.write_text("\n".join([HEADER, activity_row("s-1"), activity_row("s-2")]) + "\n")
    context = Context.open(load_settings(workspace, environ={}))
    try:
        summary = Pipeline(context).run_file(source)
    finally:
        context.close()
    assert summary["status"] == "SUCCEEDED", summary["error"]
    return workspace


def test_reading_one_record_imports_neither_polars_pint_nor_pyiceberg(
    workspace_with_results: Path,
) -> None:
    for command in (["emissions", "show", "s-2"], ["lineage", "trace", "s-2"]):
        code, loaded, stdout = _modules_after(
            [*command, "--workspace", str(workspace_with_results), "--json"]
        )
        assert code == 0, stdout
        assert loaded == [], command
        assert "s-2" in stdout
    # The version needs none of them, nor the database layer, DuckDB or fsspec.
    code, loaded, stdout = _modules_after(["--version"], (*HEAVY, "sqlalchemy", "duckdb", "fsspec"))
    assert code == 0 and loaded == [] and "version" in stdout


def test_a_read_only_open_loads_the_ruleset_and_factor_set_on_first_use(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    settings = load_settings(
        workspace,
        overrides={
            "calculate": {"factor_set": "no-such-set"},
            "quality": {"ruleset": str(tmp_path / "missing.json")},
        },
        environ={},
    )
    # Opened to run: the bad settings are reported at once.
    with pytest.raises(ConfigurationError, match=r"missing\.json"):
        Context.open(settings)
    # Opened to read: the workspace opens; each is reported when it is used.
    context = Context.open(settings, load_library=False)
    try:
        assert context.database.emissions_count() == 0
        with pytest.raises(ConfigurationError, match="no-such-set"):
            _ = context.factor_set
        with pytest.raises(ConfigurationError, match=r"missing\.json"):
            _ = context.rules
    finally:
        context.close()
    good = Context.open(load_settings(workspace, environ={}), load_library=False)
    try:
        assert good.factor_set is good.factor_set
        assert good.rules is good.rules and len(good.rules) > 0
    finally:
        good.close()
