"""The ``carbonlake`` command: a thin shell over the library.

Every command takes ``--workspace`` and ``--json``. With ``--json`` stdout holds
one JSON document and nothing else; logs and progress go to stderr. Exit codes:
0 success, 1 the work ran but failed, 2 usage or configuration error.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import emissions as emissions_module
from . import lineage as lineage_module
from ._exceptions import CarbonlakeError, ConfigurationError, InputDataError
from .calculate import factors as factors_module
from .orchestrator import Context, Pipeline
from .settings import load_settings

F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True)


class Failed(Exception):
    """The work ran and failed: exit 1 after printing what is already printed."""


def _emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


def common_options(func: F) -> F:
    """``--workspace`` and ``--json`` on every command, and error mapping to exit codes."""

    @click.option(
        "--workspace",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="CARBONLAKE_WORKSPACE",
        help="Workspace folder (buckets, database, carbonlake.toml). "
        "Default: ./carbonlake-data or $CARBONLAKE_WORKSPACE.",
    )
    @click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else."
    )
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = kwargs.get("as_json", False)
        try:
            return func(*args, **kwargs)
        except Failed:
            sys.exit(1)
        except ConfigurationError as exc:
            _report_error(exc, as_json)
            sys.exit(2)
        except CarbonlakeError as exc:
            _report_error(exc, as_json)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _report_error(exc: CarbonlakeError, as_json: bool) -> None:
    if as_json:
        _emit_json({"error": {"type": type(exc).__name__, "message": str(exc)}})
    stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)


def _open(workspace: Path | None, overrides: dict[str, dict[str, Any]] | None = None) -> Context:
    return Context.open(load_settings(workspace, overrides=overrides))


class _Progress:
    """A rich progress bar on stderr for the map over batches."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Progress | None = None
        self.task: Any = None
        self.label = ""

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("batches"),
                TimeElapsedColumn(),
                console=stderr,
                transient=False,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def file(self, label: str) -> None:
        """Start showing a new file."""
        self.label = label
        self.task = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.bar:
            return
        if stage != "calculate":
            return
        if self.task is None:
            self.task = self.bar.add_task(f"{self.label}: calculating", total=total)
        self.bar.update(self.task, completed=done, total=total)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="carbonlake")
def cli() -> None:
    """carbonlake: auditable greenhouse-gas emissions from activity CSV files.

    Files land in a bucket, pass a data-quality gate, are split into batches and
    every record's CO2, CH4, N2O and CO2e is calculated from a versioned factor
    library, with a record-level lineage ledger. Start with `carbonlake demo`.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _print_summary(summary: dict[str, Any]) -> None:
    status = summary["status"]
    colour = "green" if status == "SUCCEEDED" else "red"

    def line(text: str) -> None:
        stdout.print(text, markup=False, highlight=False)

    stdout.print(
        f"[bold]{escape(summary['input_storage_location'])}[/]: [{colour}]{status}[/]",
        highlight=False,
    )
    line(f"  execution_id  {summary['execution_id']}")
    line(f"  root_id       {summary['root_id']}")
    line(f"  now at        {summary['storage_location']}")
    dq = summary.get("data_quality") or {}
    if dq:
        line(f"  data quality  {dq['status']} (report: {dq['report_location']})")
        for item in dq.get("reasons", []):
            line(f"    - {item['rule']}: {item['reason'] or 'failed'}")
    line(
        f"  records       {summary['records_in']} in, {summary['records_calculated']} calculated, "
        f"{summary['records_failed']} failed"
    )
    totals = summary["co2e_tonnes"]
    line("  CO2e tonnes   " + "   ".join(f"{k.upper()} {v:.6f}" for k, v in totals.items()))
    failed = summary.get("failed_records")
    if failed:
        for sample in failed["samples"][:5]:
            line(f"    - {sample['node_id']}: {sample['reason']}")
        for location in failed["errors_files"][:5]:
            line(f"    errors file: {location}")
    if summary.get("error") and status != "SUCCEEDED":
        stdout.print(f"  [red]{escape(summary['error'])}[/]", highlight=False)


def _run_files(
    context: Context, files: list[tuple[Path, str | None]], progress_enabled: bool
) -> list[dict[str, Any]]:
    pipeline = Pipeline(context)
    summaries = []
    with _Progress(progress_enabled) as progress:
        for path, key in files:
            progress.file(key or path.name)
            summaries.append(pipeline.run_file(path, key, progress))
    return summaries


def _factor_set_option(func: F) -> F:
    return click.option(
        "--factor-set",
        "factor_set",
        default=None,
        help="NAME, NAME@VERSION or VERSION (default: [calculate] factor_set, else the shipped "
        "ghgp-2022).",
    )(func)


def _progress_flag(func: F) -> F:
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show a progress bar on stderr (default: when stderr is a terminal).",
    )(func)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    help="Object key in the landing bucket (default: the file's name). Only with one FILE.",
)
@_factor_set_option
@_progress_flag
@common_options
def run(
    files: tuple[Path, ...],
    key: str | None,
    factor_set: str | None,
    progress: bool | None,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Land FILE(s) in the landing bucket and run the whole pipeline on each.

    Prints a summary per file: data-quality verdict, records calculated and
    failed, CO2e totals. Exits 1 if any file failed.
    """
    if key and len(files) > 1:
        raise click.UsageError("--key names one object; give a single FILE with it")
    for path in files:
        if not path.is_file():
            raise click.BadParameter(f"{path} does not exist or is not a file", param_hint="FILE")
    overrides = {"calculate": {"factor_set": factor_set}} if factor_set else None
    context = _open(workspace, overrides)
    try:
        show = stderr.is_terminal if progress is None else progress
        summaries = _run_files(context, [(p, key) for p in files], show)
    finally:
        context.close()
    if as_json:
        _emit_json(summaries)
    else:
        for summary in summaries:
            _print_summary(summary)
    if any(s["status"] != "SUCCEEDED" for s in summaries):
        raise Failed()


@cli.command()
@_progress_flag
@common_options
def demo(progress: bool | None, workspace: Path | None, as_json: bool) -> None:
    """Run the shipped 8,000-record sample in a fresh workspace and show the result.

    Without --workspace a new temporary workspace is made; its path is printed
    so you can explore it with the other commands.
    """
    target = workspace or Path(tempfile.mkdtemp(prefix="carbonlake-demo-"))
    context = _open(target)
    try:
        sample = resources.files("carbonlake").joinpath("data/sample-activity-8000.csv")
        with resources.as_file(sample) as sample_path:
            show = stderr.is_terminal if progress is None else progress
            summaries = _run_files(context, [(sample_path, "sample-activity-8000.csv")], show)
    finally:
        context.close()
    summary = summaries[0]
    if as_json:
        _emit_json(summary)
    else:
        stdout.print(f"Demo workspace: [bold]{escape(str(target))}[/]", highlight=False)
        _print_summary(summary)
        table = Table(title="CO2e by activity (tonnes)")
        table.add_column("activity")
        table.add_column("records", justify="right")
        table.add_column("AR4", justify="right")
        table.add_column("AR5", justify="right")
        table.add_column("AR6", justify="right")
        for row in summary.get("by_activity", []):
            table.add_row(
                escape(row["activity"] or ""),
                str(row["records"]),
                f"{row['co2e_tonnes']['ar4']:.6f}",
                f"{row['co2e_tonnes']['ar5']:.6f}",
                f"{row['co2e_tonnes']['ar6']:.6f}",
            )
        stdout.print(table)
        stdout.print(
            "Next: carbonlake --help; for example\n"
            f"  carbonlake lineage tree {summary['root_id']} --workspace {target}\n"
            f"  carbonlake emissions export --format csv -o emissions.csv --workspace {target}",
            markup=False,
            highlight=False,
        )
    if summary["status"] != "SUCCEEDED":
        raise Failed()


@cli.group()
def emissions() -> None:
    """Calculated emissions."""


@emissions.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(emissions_module.FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: one enriched record per line; csv: flat columns, activity_event_id first.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of stdout.",
)
@common_options
def emissions_export(fmt: str, output: Path | None, workspace: Path | None, as_json: bool) -> None:
    """Export every current enriched record (each record once, its latest result).

    With --json (which needs -o, since stdout then carries the JSON summary) it
    prints the number of records written and where.
    """
    if as_json and output is None:
        raise click.UsageError("--json prints a summary on stdout; give -o FILE for the records")
    context = _open(workspace)
    try:
        if output is None:
            count = emissions_module.export(
                context.storage, context.database, fmt, sys.stdout.buffer
            )
            sys.stdout.flush()
        else:
            with output.open("wb") as handle:
                count = emissions_module.export(context.storage, context.database, fmt, handle)
    finally:
        context.close()
    if as_json:
        _emit_json({"records": count, "format": fmt, "output": str(output)})
    else:
        stderr.print(f"{count} records exported" + (f" to {output}" if output else ""))


@cli.group()
def lineage() -> None:
    """The record-level lineage ledger."""


def _node_line(node: dict[str, Any]) -> str:
    return (
        f"{node['action_taken']:<22} {node['node_id']}  {node['recorded_at']}  "
        f"{node['storage_location'] or ''}"
    )


@lineage.command("trace")
@click.argument("node_id")
@click.option("--root", "root_id", help="The root_id of the file (needed when ambiguous).")
@common_options
def lineage_trace(node_id: str, root_id: str | None, workspace: Path | None, as_json: bool) -> None:
    """Trace NODE_ID (a record's activity_event_id) back to its raw input file.

    Prints the chain from RAW_DATA_INPUT down to the record.
    """
    context = _open(workspace)
    try:
        chain = lineage_module.trace(context.database, node_id, root_id)
    finally:
        context.close()
    if as_json:
        _emit_json(chain)
        return
    for depth, node in enumerate(chain):
        stdout.print("  " * depth + _node_line(node), markup=False, highlight=False)
    if chain and chain[0]["action_taken"] != lineage_module.RAW_DATA_INPUT:
        stderr.print(
            f"[yellow]warning:[/] the trail breaks at {chain[0]['node_id']}: its parent "
            f"{chain[0]['parent_id']} is not in the ledger"
        )


@lineage.command("tree")
@click.argument("root_id")
@common_options
def lineage_tree(root_id: str, workspace: Path | None, as_json: bool) -> None:
    """Show every lineage node of one input file (ROOT_ID) as a tree.

    Record nodes beyond the first few of a batch are folded to a count.
    """
    context = _open(workspace)
    try:
        nodes = lineage_module.tree(context.database, root_id)
    finally:
        context.close()
    if as_json:
        _emit_json(nodes)
        return
    for line in lineage_module.render_tree(nodes):
        stdout.print(line, markup=False, highlight=False)


@cli.group()
def factors() -> None:
    """The emission-factor library: versioned factor sets."""


def _grams_option(func: F) -> F:
    return click.option(
        "--grams-category",
        "grams_categories",
        multiple=True,
        metavar="CATEGORY",
        help="Read CH4 and N2O of this category as grams per unit (repeatable); the shipped "
        "table needs it for 'transport'.",
    )(func)


def _active_factor_set(context: Context, selector: str | None) -> factors_module.FactorSet:
    if selector is None:
        return context.factor_set
    return factors_module.load_factor_set(selector, context.database)


@factors.command("list")
@click.option("--search", default="", help="Only factors whose id, category or activity has this.")
@_factor_set_option
@common_options
def factors_list(
    search: str, factor_set: str | None, workspace: Path | None, as_json: bool
) -> None:
    """List the factors of the active (or the given) factor set."""
    context = _open(workspace)
    try:
        chosen = _active_factor_set(context, factor_set)
        found = factors_module.find_factors(chosen, search)
    finally:
        context.close()
    if as_json:
        _emit_json(found)
        return
    table = Table(title=f"{chosen.label}: {len(found)} factor(s)")
    table.add_column("factor_id", overflow="fold")
    for column in ("scope", "unit", "AR4 kgCO2e/unit", "AR5 kgCO2e/unit"):
        table.add_column(column)
    for item in found:
        table.add_row(
            escape(item["factor_id"]),
            str(item["scope"]),
            escape(item["unit"]),
            f"{item['ar4_kgco2e_per_unit']:.6g}",
            f"{item['ar5_kgco2e_per_unit']:.6g}",
        )
    stdout.print(table)


@factors.command("sets")
@common_options
def factors_sets(workspace: Path | None, as_json: bool) -> None:
    """List the factor sets: the shipped one and every imported version."""
    context = _open(workspace)
    try:
        shipped = factors_module.shipped_factor_set()
        found = [
            {
                "name": shipped.name,
                "version": shipped.version,
                "format": "ghgp-csv",
                "origin": "shipped with carbonlake",
                "factor_count": shipped.factors.height,
                "created_at": None,
                "active": context.factor_set.label == shipped.label,
            }
        ]
        for item in context.database.factor_sets():
            label = f"{item['name']}@{item['version']}"
            found.append({**item, "active": context.factor_set.label == label})
    finally:
        context.close()
    if as_json:
        _emit_json(found)
        return
    for item in found:
        marker = "*" if item["active"] else " "
        stdout.print(
            f"{marker} {item['name']}@{item['version']}  {item['factor_count']} factors  "
            f"{item['format']}  {item['origin']}",
            markup=False,
            highlight=False,
        )


@factors.command("show")
@click.argument("factor_id")
@_factor_set_option
@common_options
def factors_show(
    factor_id: str, factor_set: str | None, workspace: Path | None, as_json: bool
) -> None:
    """Show one factor (FACTOR_ID as `factors list` prints it) with its provenance."""
    context = _open(workspace)
    try:
        chosen = _active_factor_set(context, factor_set)
    finally:
        context.close()
    match = [f for f in factors_module.find_factors(chosen) if f["factor_id"] == factor_id]
    if not match:
        raise InputDataError(
            f"no factor {factor_id!r} in {chosen.label}; `carbonlake factors list --search "
            "TEXT` finds ids"
        )
    if as_json:
        _emit_json(match[0])
        return
    for key, value in match[0].items():
        stdout.print(f"{key:<22} {value}", markup=False, highlight=False)


def _print_inconsistent(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        stdout.print(
            f"{row['category']} / {row['activity']} ({row['gwp_set']}): stated "
            f"{row['stated_kgco2e_per_unit']}, recomputed {row['recomputed_kgco2e_per_unit']}"
            + ("  [grams would match]" if row["grams_would_match"] else ""),
            markup=False,
            highlight=False,
        )


@factors.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_grams_option
@common_options
def factors_validate(
    file: Path, grams_categories: tuple[str, ...], workspace: Path | None, as_json: bool
) -> None:
    """Check that every stated CO2e of FILE matches the CO2e recomputed from its gases.

    Exits 1 listing each inconsistent row (activity, stated and recomputed value).
    FILE may be in any format `factors import` takes.
    """
    count, bad = factors_module.validate_factor_file(file, grams_categories)
    rows = bad.to_dicts()
    if as_json:
        _emit_json(
            {"file": str(file), "factors": count, "consistent": not rows, "inconsistent": rows}
        )
    elif rows:
        _print_inconsistent(rows)
        stderr.print(
            f"{len(rows)} inconsistent value(s) among {count} factors in {file}", markup=False
        )
    else:
        stdout.print(f"{file}: all {count} factors consistent", markup=False, highlight=False)
    if rows:
        raise Failed()


@factors.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="Name of the factor set (default: the file's name).")
@_grams_option
@common_options
def factors_import(
    file: Path,
    name: str | None,
    grams_categories: tuple[str, ...],
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Import FILE as a new factor-set version (never edits an existing version).

    Accepts the GHG Protocol CSV layout of the shipped table, the original system's
    JSON factor model and carbonlake's own JSON format (docs/factors.md). Select it
    with `[calculate] factor_set = "NAME@VERSION"` or `--factor-set`.
    """
    context = _open(workspace)
    try:
        try:
            imported, created = factors_module.import_factor_file(
                file, context.database, name, grams_categories
            )
        except factors_module.FactorTableError as exc:
            if as_json:
                _emit_json(
                    {
                        "error": {"type": type(exc).__name__, "message": str(exc)},
                        "inconsistent": exc.inconsistent.to_dicts(),
                    }
                )
            else:
                _print_inconsistent(exc.inconsistent.to_dicts())
                stderr.print(f"error: {exc}", markup=False)
            raise Failed() from exc
    finally:
        context.close()
    result = {
        "factor_set": imported.name,
        "version": imported.version,
        "label": imported.label,
        "factors": imported.factors.height,
        "created": created,
    }
    if as_json:
        _emit_json(result)
        return
    what = "imported" if created else "already present, unchanged"
    stdout.print(
        f"{imported.label}: {imported.factors.height} factors {what}. Use it with "
        f'[calculate] factor_set = "{imported.label}" or --factor-set {imported.label}',
        markup=False,
        highlight=False,
    )


def main() -> None:
    """Entry point of the ``carbonlake`` command."""
    try:
        cli()
    except BrokenPipeError:
        _quiet_broken_pipe()
    except OSError as exc:
        # Polars reports a closed pipe (``carbonlake emissions export | head``) as OSError.
        if "Broken pipe" not in str(exc):
            raise
        _quiet_broken_pipe()


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away: stop quietly, as Unix tools do."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


if __name__ == "__main__":
    main()
