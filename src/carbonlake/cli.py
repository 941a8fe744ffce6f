"""The ``carbonlake`` command: a thin shell over the library.

Every command takes ``--workspace`` and ``--json``. With ``--json`` stdout holds
one JSON document and nothing else; logs and progress go to stderr. Exit codes:
0 success, 1 the work ran but failed, 2 usage or configuration error.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

# The stages, the database layer and storage are imported by the commands that use
# them: `carbonlake --version` and the read-only commands start without the pipeline's
# imports (Polars, pyarrow, the calculation, the data-quality gate).
from . import emissions as emissions_module
from . import report as report_module
from ._exceptions import CarbonlakeError, CommandFailed, ConfigurationError, InputDataError
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from .calculate import factors as factors_module
    from .context import Context
    from .executions import Pipeline

F = TypeVar("F", bound=Callable[..., Any])


# rich is imported on first output (about 0.05 s): a command that prints one JSON
# document (click.echo) does not pay for it.
@functools.cache
def _stderr() -> Console:
    """The rich console on stderr (logs, progress, errors)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


@functools.cache
def _stdout() -> Console:
    """The rich console on stdout (text output)."""
    from rich.console import Console

    return Console(soft_wrap=True)


def _escape(text: str) -> str:
    """``text`` with rich markup escaped."""
    from rich.markup import escape

    return escape(text)


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
        except CommandFailed:
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
    _stderr().print(f"[bold red]error:[/] {_escape(str(exc))}", highlight=False)


def _open(
    workspace: Path | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    load_library: bool = True,
) -> Context:
    """The workspace's context; ``load_library=False`` (commands that only read results,
    executions or lineage) loads the ruleset and the factor set on first use only."""
    from .context import Context

    return Context.open(load_settings(workspace, overrides=overrides), load_library=load_library)


class _Progress:
    """A rich progress bar on stderr for the map over batches."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Progress | None = None
        self.task: Any = None
        self.label = ""

    def __enter__(self) -> _Progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        if self.enabled:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("batches"),
                TimeElapsedColumn(),
                console=_stderr(),
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
    colour = {"SUCCEEDED": "green", "SKIPPED": "yellow"}.get(status, "red")

    def line(text: str) -> None:
        _stdout().print(text, markup=False, highlight=False)

    _stdout().print(
        f"[bold]{_escape(summary['input_storage_location'])}[/]: [{colour}]{status}[/]",
        highlight=False,
    )
    if summary.get("message"):
        line(f"  {summary['message']}")
    line(f"  execution_id  {summary['execution_id']}")
    line(f"  root_id       {summary['root_id']}")
    line(f"  now at        {summary['storage_location']}")
    dq = summary.get("data_quality") or {}
    if dq:
        line(f"  data quality  {dq['status']} (report: {dq['report_location']})")
        for item in dq.get("reasons", []):
            warning = "warning: " if item.get("severity") == "warn" else ""
            line(f"    - {warning}{item['rule']}: {item['reason'] or 'failed'}")
    line(
        f"  records       {summary['records_in']} in, {summary['records_calculated']} calculated, "
        f"{summary['records_failed']} failed"
    )
    for method, totals in summary["co2e_tonnes"].items():
        label = method.replace("_", "-")
        line(
            f"  CO2e tonnes   {label:<15}"
            + "   ".join(f"{k.upper()} {v:.6f}" for k, v in totals.items())
        )
    replaced = summary.get("replaced_results")
    if replaced:
        roots = ", ".join(f"{r['records']} of root {r['root_id']}" for r in replaced["from_roots"])
        line(
            f"  replaced      {replaced['records']} earlier result(s) with the same "
            f"activity_event_id from another file ({roots}); the earlier ones are kept in "
            "the history (`carbonlake emissions show ID`)"
        )
    failed = summary.get("failed_records")
    if failed:
        for sample in failed["samples"][:5]:
            line(f"    - {sample['node_id']}: {sample['reason']}")
        for location in failed["errors_files"][:5]:
            line(f"    errors file: {location}")
    if summary.get("error") and status != "SUCCEEDED":
        _stdout().print(f"  [red]{_escape(summary['error'])}[/]", highlight=False)


def _run_files(
    context: Context,
    files: list[tuple[Path, str | None]],
    progress_enabled: bool,
    *,
    name: str | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    from .executions import Pipeline

    pipeline = Pipeline(context)
    summaries = []
    with _Progress(progress_enabled) as progress, _stop_on_signals(pipeline):
        for path, key in files:
            progress.file(key or path.name)
            summaries.append(pipeline.run_file(path, key, progress, name=name, force=force))
    return summaries


@contextlib.contextmanager
def _stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """SIGTERM (and a first Ctrl-C) ask the running execution to stop after its current
    batches; it is then ABORTED and `executions resume` finishes it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if pipeline.stop_requested.is_set():
            raise KeyboardInterrupt
        _stderr().print("stopping after the running batches (again to stop at once)...")
        pipeline.stop_requested.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)


def _factor_set_option(func: F) -> F:
    return click.option(
        "--factor-set",
        "factor_set",
        default=None,
        help="NAME, NAME@VERSION or VERSION (default: [calculate] factor_set, else the shipped "
        "ghgp-2022).",
    )(func)


def _rules_option(func: F) -> F:
    return click.option(
        "--rules",
        "rules_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="DataBrew-format ruleset file, JSON or YAML: a list of rules, describe-ruleset "
        "output or a CloudFormation template (FILE#NAME picks one of its rulesets). Default: "
        "[quality] ruleset, else the shipped activity ruleset; see docs/quality.md.",
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
@click.option(
    "--name",
    help="Execution name: a second start with the same name and file returns the first "
    "execution. Only with one FILE.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Process a file even if the same key with the same content was processed before.",
)
@_factor_set_option
@_rules_option
@_progress_flag
@common_options
def run(
    files: tuple[Path, ...],
    key: str | None,
    name: str | None,
    force: bool,
    factor_set: str | None,
    rules_file: Path | None,
    progress: bool | None,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Land FILE(s) in the landing bucket and run the whole pipeline on each.

    Prints a summary per file: data-quality verdict, records calculated and
    failed, CO2e totals. Exits 1 if any file failed.
    """
    from . import quality
    from .storage import clean_key

    if key and len(files) > 1:
        raise click.UsageError("--key names one object; give a single FILE with it")
    if key is not None:
        try:
            clean_key(key)
        except InputDataError as exc:
            raise click.BadParameter(str(exc), param_hint="--key") from exc
    if name and len(files) > 1:
        raise click.UsageError("--name names one execution; give a single FILE with it")
    for path in files:
        if not path.is_file():
            raise click.BadParameter(f"{path} does not exist or is not a file", param_hint="FILE")
    overrides: dict[str, dict[str, Any]] = {}
    if factor_set:
        overrides["calculate"] = {"factor_set": factor_set}
    if rules_file:
        quality.load_ruleset(rules_file, setting="--rules")  # refuse a bad file naming the flag
        overrides["quality"] = {"ruleset": str(rules_file.resolve())}
    context = _open(workspace, overrides or None)
    try:
        show = _stderr().is_terminal if progress is None else progress
        summaries = _run_files(context, [(p, key) for p in files], show, name=name, force=force)
    finally:
        context.close()
    _report_summaries(summaries, as_json)


def _report_summaries(summaries: list[dict[str, Any]], as_json: bool) -> None:
    """Print run summaries; exit 1 if any execution did not succeed."""
    if as_json:
        _emit_json(summaries)
    else:
        for summary in summaries:
            _print_summary(summary)
    if any(s["status"] not in ("SUCCEEDED", "SKIPPED") for s in summaries):
        raise CommandFailed()


@cli.command()
@_progress_flag
@common_options
def demo(progress: bool | None, workspace: Path | None, as_json: bool) -> None:
    """Run the shipped 8,000-record sample in a fresh workspace and show the result.

    Without --workspace a new temporary workspace is made; its path is printed
    so you can explore it with the other commands.
    """
    from rich.table import Table

    target = workspace or Path(tempfile.mkdtemp(prefix="carbonlake-demo-"))
    context = _open(target)
    try:
        sample = resources.files("carbonlake").joinpath("data/sample-activity-8000.csv")
        with resources.as_file(sample) as sample_path:
            show = _stderr().is_terminal if progress is None else progress
            summaries = _run_files(context, [(sample_path, "sample-activity-8000.csv")], show)
    finally:
        context.close()
    summary = summaries[0]
    if as_json:
        _emit_json(summary)
    else:
        _stdout().print(f"Demo workspace: [bold]{_escape(str(target))}[/]", highlight=False)
        _print_summary(summary)
        table = Table(title="CO2e by activity (tonnes; LB location-based, MB market-based)")
        table.add_column("activity")
        table.add_column("records", justify="right")
        for header in ("AR4 LB", "AR5 LB", "AR6 LB", "AR5 MB"):
            table.add_column(header, justify="right")
        for row in summary.get("by_activity", []):
            co2e = row["co2e_tonnes"]
            table.add_row(
                _escape(row["activity"] or ""),
                str(row["records"]),
                *(f"{co2e['location_based'][g]:.6f}" for g in ("ar4", "ar5", "ar6")),
                f"{co2e['market_based']['ar5']:.6f}",
            )
        _stdout().print(table)
        _stdout().print(
            "Next: carbonlake --help; for example\n"
            f"  carbonlake lineage tree {summary['root_id']} --workspace {target}\n"
            f"  carbonlake emissions export --format csv -o emissions.csv --workspace {target}",
            markup=False,
            highlight=False,
        )
    if summary["status"] != "SUCCEEDED":
        raise CommandFailed()


@cli.group()
def dq() -> None:
    """The data-quality gate: DataBrew-format rules over whole files."""


def _factor_set_loader(settings: Settings) -> Callable[[], factors_module.FactorSet]:
    """Loads [calculate] factor_set when a rule first needs it (imported sets from the database)."""
    from .calculate import factors as factors_module
    from .database import Database

    def load() -> factors_module.FactorSet:
        selector = settings.calculate.factor_set
        if not selector.strip():
            return factors_module.load_factor_set("")
        database = Database(settings.database_url, settings.database.busy_timeout_ms)
        try:
            return factors_module.load_factor_set(selector, database)
        finally:
            database.close()

    return load


def _print_dq_report(path: Path, report: dict[str, Any], profile: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from . import quality

    verdict = "[green]PASSED[/]" if report["passed"] else "[red]FAILED[/]"
    summary = report["summary"]
    _stdout().print(f"[bold]{_escape(str(path))}[/]: {verdict}", highlight=False)
    if report.get("rowsCount") is not None:
        skipped = report.get("emptyRowsSkipped") or 0
        _stdout().print(
            f"  {report['rowsCount']} rows, {report['columnsCount']} columns"
            + (f", {skipped} empty rows skipped" if skipped else "")
            + f"; {summary['failed']} rule(s) failed, {summary['warnings']} warning(s)",
            highlight=False,
        )
    table = Table()
    for name, justify in (
        ("rule", "left"),
        ("severity", "left"),
        ("status", "left"),
        ("observed", "right"),
        ("failed rows", "right"),
        ("samples", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = quality.table_rows(report)
    for row in rows:
        colour = (
            "green"
            if row["status"] == "SUCCEEDED"
            else ("yellow" if row["severity"] == "warn" else "red")
        )
        table.add_row(
            _escape(row["rule"]),
            row["severity"],
            f"[{colour}]{row['status']}[/]",
            _escape(row["observed"]),
            row["failed"],
            _escape(row["samples"]),
        )
    # A terminal wraps at its width; a pipe or file gets long lines rather than wrapped names.
    tables = _stdout() if _stdout().is_terminal else Console(width=200)
    tables.print(table)
    for row in rows:
        if row["status"] == "FAILED" and row["reason"]:
            _stdout().print(f"  - {row['rule']}: {row['reason']}", markup=False, highlight=False)
    if profile:
        columns = Table(title="profile")
        for name in ("column", "type", "missing", "distinct", "min", "max", "mean", "most common"):
            columns.add_column(name)
        for col in profile["columns"]:
            top = ", ".join(f"{v['value']} ({v['count']})" for v in col["mostCommonValues"][:3])
            columns.add_row(
                _escape(col["name"]),
                col["type"],
                str(col["missing"]),
                str(col["distinct"]),
                *(_number(col.get(k)) for k in ("min", "max", "mean")),
                _escape(top),
            )
        tables.print(columns)


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.6g}"


@dq.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_rules_option
@click.option(
    "--profile",
    "show_profile",
    is_flag=True,
    help='Also show the column profile (with --json, under "profile").',
)
@common_options
def dq_check(
    file: Path, rules_file: Path | None, show_profile: bool, workspace: Path | None, as_json: bool
) -> None:
    """Profile FILE and evaluate the ruleset over all of it, without moving it.

    Prints each rule's status, observed value, failed rows and sample rows
    (row number and activity_event_id). --json prints the validation report.
    Exits 1 when a rule of severity error fails, 0 when only warnings do.
    """
    from . import quality

    settings = load_settings(workspace)
    if rules_file is not None:
        rules = quality.load_ruleset(rules_file, setting="--rules")
    else:
        rules = quality.load_ruleset(settings.quality.ruleset)
    ruleset_name = (rules_file or Path(settings.quality.ruleset)).stem or (
        quality.DEFAULT_RULESET_NAME
    )
    report, profile = quality.check_file(
        file,
        rules,
        resolve=quality.factor_set_lists(_factor_set_loader(settings)),
        ruleset_name=ruleset_name,
        max_columns=settings.quality.max_columns,
    )
    if as_json:
        _emit_json({**report, "profile": profile} if show_profile else report)
    else:
        _print_dq_report(file, report, profile if show_profile else None)
    if not report["passed"]:
        raise CommandFailed()


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
    help="jsonl: one enriched record per line (the original's JSON); csv: flat columns, "
    "activity_event_id first; parquet: one file, emissions_output a nested struct.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of _stdout().",
)
@common_options
def emissions_export(fmt: str, output: Path | None, workspace: Path | None, as_json: bool) -> None:
    """Export every current enriched record (each record once, its latest result).

    With --json (which needs -o, since stdout then carries the JSON summary) it
    prints the number of records written and where.
    """
    if as_json and output is None:
        raise click.UsageError("--json prints a summary on stdout; give -o FILE for the records")
    context = _open(workspace, load_library=False)
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
        _stderr().print(f"{count} records exported" + (f" to {output}" if output else ""))


@emissions.command("show")
@click.argument("activity_event_id")
@common_options
def emissions_show(activity_event_id: str, workspace: Path | None, as_json: bool) -> None:
    """Show one record's current result, its factor provenance and every earlier result.

    Results replaced by a re-run or a recalculation stay here, oldest first.
    """
    context = _open(workspace, load_library=False)
    try:
        found = emissions_module.record_results(context.database, activity_event_id)
    finally:
        context.close()
    if as_json:
        _emit_json(found)
        return
    rows = ([("current", found["current"])] if found["current"] else []) + [
        ("deleted" if row.get("deletion_node_id") else "replaced", row) for row in found["previous"]
    ]
    for label, row in rows:
        _stdout().print(
            f"{label:<9} CO2e AR4 {row['co2e_ar4_tonnes']} t  AR5 {row['co2e_ar5_tonnes']} t  "
            f"AR6 {row['co2e_ar6_tonnes']} t  factor {row['factor_id']} "
            f"({row['factor_set']}@{row['factor_version']})  calculated {row['calculated_at']}"
            + (f"  {label} {row['superseded_at']}" if label != "current" else "")
            + (f" by {row['deleted_by']}: {row['deletion_reason']}" if label == "deleted" else ""),
            markup=False,
            highlight=False,
        )


@emissions.command("delete")
@click.argument("activity_event_id")
@click.option("--reason", required=True, help="Why the record is deleted (kept in the lineage).")
@click.option(
    "--by",
    "deleted_by",
    help="Who deletes it, as recorded (default: the operating-system user); recorded as cli:NAME.",
)
@common_options
def emissions_delete(
    activity_event_id: str,
    reason: str,
    deleted_by: str | None,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Delete a record's current result as a tombstone (the original's admin delete).

    The result leaves the current results, the totals and the exports; it stays in
    `emissions show` as deleted, and a RECORD_DELETED lineage node records who, when
    and why (`lineage verify` checks it). Nothing is erased. Whoever can run this on the
    workspace can write its database anyway; the service allows it to admin keys only.
    """
    if not reason.strip():
        raise ConfigurationError("--reason must say why the record is deleted; it is kept")
    who = deleted_by or getpass.getuser()
    context = _open(workspace)
    try:
        done = emissions_module.delete_record(
            context.storage,
            context.database,
            activity_event_id,
            reason=reason,
            deleted_by=f"cli:{who}",
        )
    finally:
        context.close()
    if as_json:
        _emit_json(done)
        return
    removed = done["removed"]
    _stdout().print(
        f"deleted {activity_event_id} (root {done['root_id']}): CO2e AR5 "
        f"{removed['co2e_ar5_tonnes']} t left the results; lineage node "
        f"{done['lineage']['node_id']} by {done['deleted_by']} at {done['deleted_at']}",
        markup=False,
        highlight=False,
    )


@cli.command()
@click.option(
    "--factor-set",
    "factor_set",
    required=True,
    help="The factor set to recalculate with: NAME, NAME@VERSION or VERSION.",
)
@click.option("--root", "root_id", help="Only the records of this input file (root_id).")
@click.option("--dry-run", is_flag=True, help="Report the differences; change nothing.")
@click.option("--show", default=20, show_default=True, help="Records listed in the text output.")
@common_options
def recalculate(
    factor_set: str,
    root_id: str | None,
    dry_run: bool,
    show: int,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Recompute stored results with another factor-set version and report the
    difference per record and in total.

    Without --dry-run the new results replace the current ones (the previous ones
    stay queryable with `emissions show`) and each record gets a RECALCULATION
    lineage node under the one it replaces. Exits 1 if the new set cannot
    calculate some records (they keep their current result).
    """
    from rich.table import Table

    from .calculate import factors as factors_module
    from .calculate import recalculate as recalculate_module

    context = _open(workspace)
    try:
        chosen = factors_module.load_factor_set(factor_set, context.database)
        report = recalculate_module.recalculate(
            context.storage, context.database, chosen, root_id=root_id, dry_run=dry_run
        )
    finally:
        context.close()
    if as_json:
        _emit_json(report)
    else:
        mode = "dry run, nothing changed" if dry_run else f"id {report['recalculation_id']}"
        _stdout().print(
            f"Recalculated {report['records_recalculated']} record(s) with "
            f"{report['factor_set']} ({mode}); {report['records_changed']} changed, "
            f"{report['records_failed']} could not be recalculated",
            markup=False,
            highlight=False,
        )
        table = Table(title="CO2e tonnes per record (AR4)")
        for column in ("activity_event_id", "before", "after", "difference"):
            table.add_column(column, overflow="fold")
        for item in report["records_detail"][:show]:
            table.add_row(
                _escape(item["activity_event_id"]),
                f"{item['co2e_tonnes_before']['ar4']:.6f}",
                f"{item['co2e_tonnes_after']['ar4']:.6f}",
                f"{item['difference']['ar4']:+.6f}",
            )
        _stdout().print(table)
        totals = report["co2e_tonnes"]
        for method in totals["before"]:
            for gwp in ("ar4", "ar5", "ar6"):
                _stdout().print(
                    f"total {method.replace('_', '-')} {gwp.upper()}: "
                    f"{totals['before'][method][gwp]:.6f} -> {totals['after'][method][gwp]:.6f} "
                    f"({totals['difference'][method][gwp]:+.6f}) t",
                    markup=False,
                    highlight=False,
                )
        for item in report["failed"][:show]:
            _stdout().print(
                f"  not recalculated: {item['activity_event_id']}: {item['reason']}",
                markup=False,
                highlight=False,
            )
    if report["records_failed"]:
        raise CommandFailed()


@cli.command()
@click.option("--from", "period_from", metavar="YYYY-MM", help="First month (default: all).")
@click.option("--to", "period_to", metavar="YYYY-MM", help="Last month, included (default: all).")
@click.option(
    "--gwp",
    type=click.Choice(report_module.GWP_SETS),
    default="ar5",
    show_default=True,
    help="GWP set of the CO2e totals.",
)
@click.option(
    "--by",
    type=click.Choice(report_module.BREAKDOWNS),
    help="Also break the totals down by period or dimension.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(report_module.FORMATS),
    help="Output format (default: text; json with --json).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of _stdout().",
)
@click.option(
    "--compare-to",
    "compare_to",
    metavar="SNAPSHOT|FACTOR_SET",
    help="Restatement: each total before (a report saved with --format json, or a factor "
    "set whose results were replaced by `recalculate`), after, and the change.",
)
@common_options
def report(
    period_from: str | None,
    period_to: str | None,
    gwp: str,
    by: str | None,
    fmt: str | None,
    output: Path | None,
    compare_to: str | None,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """The GHG Protocol inventory of the current results: scope 1, scope 2
    location-based and market-based (side by side, never added), scope 3 by category,
    both grand totals, biogenic CO2 outside the scopes, what could not be calculated,
    and the methodology (docs/report.md)."""
    context = _open(workspace)
    try:
        document = report_module.inventory(
            context.database, period_from=period_from, period_to=period_to, gwp=gwp, by=by
        )
        if compare_to:
            document = report_module.compare(context.database, document, compare_to)
    finally:
        context.close()
    text = report_module.render(document, fmt or ("json" if as_json else "text"))
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot write the report to {output}: {exc}") from exc
        if as_json:
            _emit_json({"output": str(output), "format": fmt or "json"})
        else:
            _stderr().print(f"report written to {output}", markup=False, highlight=False)
        return
    if as_json and fmt not in (None, "json"):
        raise ConfigurationError("--json prints JSON; give -o FILE for another --format")
    click.echo(text, nl=False)


@cli.group()
def executions() -> None:
    """Pipeline executions: their records, history, resume and redrive."""


def _execution_line(execution: dict[str, Any]) -> str:
    name = execution["name"] if execution["name"] != execution["execution_id"] else ""
    return (
        f"{execution['execution_id']}  {execution['status']:<9} {execution['started_at']}  "
        f"{execution['object_key'] or ''}  {name}"
    )


@executions.command("list")
@click.option(
    "--status",
    type=click.Choice(["RUNNING", "SUCCEEDED", "FAILED", "ABORTED"], case_sensitive=False),
    help="Only executions with this status.",
)
@click.option("--limit", default=100, show_default=True, help="At most this many, newest first.")
@common_options
def executions_list(status: str | None, limit: int, workspace: Path | None, as_json: bool) -> None:
    """List executions, newest first."""
    from .database import EXECUTION_LIST_FIELDS

    context = _open(workspace, load_library=False)
    try:
        found = context.database.executions(status.upper() if status else None, limit)
    finally:
        context.close()
    items = [{k: e[k] for k in EXECUTION_LIST_FIELDS} for e in found]
    if as_json:
        _emit_json(items)
        return
    for execution in found:
        _stdout().print(_execution_line(execution), markup=False, highlight=False)
    if not found:
        _stderr().print("no executions")


@executions.command("show")
@click.argument("execution_id")
@common_options
def executions_show(execution_id: str, workspace: Path | None, as_json: bool) -> None:
    """Show one execution: status, input, output (its run summary), times."""
    context = _open(workspace, load_library=False)
    try:
        execution = context.database.get_execution(execution_id)
    finally:
        context.close()
    if execution is None:
        raise InputDataError(f"no execution {execution_id!r}; `carbonlake executions list`")
    if as_json:
        _emit_json(execution)
        return
    for key in (
        "execution_id",
        "name",
        "status",
        "root_id",
        "object_key",
        "object_sha256",
        "started_at",
        "stopped_at",
        "owner",
        "redrive_count",
        "error",
    ):
        _stdout().print(f"{key:<14} {execution[key]}", markup=False, highlight=False)
    if execution["output"]:
        _print_summary(execution["output"])


@executions.command("history")
@click.argument("execution_id")
@common_options
def executions_history(execution_id: str, workspace: Path | None, as_json: bool) -> None:
    """The event history of an execution: states entered and completed, retries,
    map iterations, failures with their error and cause."""
    context = _open(workspace, load_library=False)
    try:
        if context.database.get_execution(execution_id) is None:
            raise InputDataError(f"no execution {execution_id!r}; `carbonlake executions list`")
        events = context.database.execution_events(execution_id)
    finally:
        context.close()
    if as_json:
        _emit_json(events)
        return
    for event in events:
        details = event["details"]
        extra = ""
        if "error" in details:
            extra = f"  {details['error']}: {details.get('cause', '')}"
        elif "delay_s" in details:
            extra = f"  retry in {details['delay_s']} s"
        _stdout().print(
            f"{event['at']}  {event['event_type']:<22} {event['state'] or ''}{extra}",
            markup=False,
            highlight=False,
        )


def _continue_execution(
    execution_id: str, workspace: Path | None, as_json: bool, progress: bool | None, how: str
) -> None:
    from .executions import Pipeline

    context = _open(workspace)
    try:
        pipeline = Pipeline(context)
        show = _stderr().is_terminal if progress is None else progress
        with _Progress(show) as bar, _stop_on_signals(pipeline):
            bar.file(execution_id)
            call = pipeline.resume if how == "resume" else pipeline.redrive
            summary = call(execution_id, bar)
    finally:
        context.close()
    _report_summaries([summary], as_json)


@executions.command("resume")
@click.argument("execution_id")
@_progress_flag
@common_options
def executions_resume(
    execution_id: str, progress: bool | None, workspace: Path | None, as_json: bool
) -> None:
    """Finish an execution whose process was killed (or that was stopped) from its last
    completed state and batch. Prints the same summary as `run`."""
    _continue_execution(execution_id, workspace, as_json, progress, "resume")


@executions.command("redrive")
@click.argument("execution_id")
@_progress_flag
@common_options
def executions_redrive(
    execution_id: str, progress: bool | None, workspace: Path | None, as_json: bool
) -> None:
    """Re-run only what failed in a FAILED execution: failed steps and batches, and the
    records that could not be calculated (for example after `factors import`)."""
    _continue_execution(execution_id, workspace, as_json, progress, "redrive")


@cli.command()
@click.option(
    "--event",
    "event_file",
    required=True,
    type=click.File("r"),
    help="The event (JSON): an S3 event notification, an EventBridge 'Object Created' "
    "event or an SQS message holding one; - for stdin.",
)
@click.option("--force", is_flag=True, help="Process objects that were processed before.")
@_progress_flag
@common_options
def kickoff(
    event_file: Any, force: bool, progress: bool | None, workspace: Path | None, as_json: bool
) -> None:
    """Start executions from an event about new objects in the landing bucket, then run
    them: an S3 event notification as S3 sends it (several records, URL-encoded keys), an
    EventBridge "Object Created" event, or an SQS message whose body is either (one
    message, a ReceiveMessage answer or a Lambda SQS event). The event's bucket is the
    landing bucket's name or [storage] landing_bucket_name. A malformed event exits 2."""
    from . import kickoff as kickoff_module
    from .executions import Pipeline

    name = str(getattr(event_file, "name", "-")).replace("<stdin>", "-")
    try:
        event = json.load(event_file)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--event {name}: the event is not valid JSON: {exc}") from exc
    context = _open(workspace)
    try:
        try:
            named = kickoff_module.parse_event(event, context.storage)
        except InputDataError as exc:
            raise ConfigurationError(f"--event {name}: {exc}") from exc
        if not named:
            _stderr().print(
                f"--event {name} names no object (an s3:TestEvent or no messages): nothing "
                "to start",
                markup=False,
                highlight=False,
            )
        pipeline = Pipeline(context)
        show = _stderr().is_terminal if progress is None else progress
        with _Progress(show) as bar, _stop_on_signals(pipeline):
            summaries = pipeline.run_event(event, bar, force=force)
    finally:
        context.close()
    _report_summaries(summaries, as_json)


@cli.command()
@click.option("--once", is_flag=True, help="Process what is in landing now, then exit.")
@click.option("--polling", is_flag=True, help="Do not use filesystem events; only poll the bucket.")
@common_options
def watch(once: bool, polling: bool, workspace: Path | None, as_json: bool) -> None:
    """Watch the landing bucket and start an execution for each new, complete file.

    At most [pipeline] max_executions run at once. SIGTERM or Ctrl-C stops taking new
    files, lets running batches finish (the executions are then ABORTED and
    `executions resume` finishes them) and exits 0. With --json, prints the list of
    summaries when it stops.
    """
    from .executions import Pipeline
    from .watch import Watcher

    context = _open(workspace)
    try:
        pipeline = Pipeline(context)

        def announce(summary: dict[str, Any]) -> None:
            _stderr().print(
                f"{summary.get('input_storage_location')}: {summary['status']} "
                f"({summary.get('execution_id', '')})",
                markup=False,
                highlight=False,
            )

        watcher = Watcher(pipeline, on_summary=announce, use_events=not polling)

        def handler(signum: int, frame: object) -> None:
            _stderr().print("stopping: no new files; running batches finish...")
            watcher.stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if not once:
                _stderr().print(
                    f"watching {context.storage.url('landing', 'x')[:-2]} (Ctrl-C to stop)",
                    markup=False,
                )
            summaries = watcher.run(once=once)
        finally:
            for sig, old_handler in previous.items():
                signal.signal(sig, old_handler)
    finally:
        context.close()
    if as_json:
        _emit_json(summaries)


@cli.group()
def lineage() -> None:
    """The record-level lineage ledger."""


@lineage.command("trace")
@click.argument("node_id")
@click.option("--root", "root_id", help="The root_id of the file (needed when ambiguous).")
@common_options
def lineage_trace(node_id: str, root_id: str | None, workspace: Path | None, as_json: bool) -> None:
    """Trace NODE_ID (a record's activity_event_id) back to its raw input file.

    Prints each node from RAW_DATA_INPUT down to the record with its action,
    location, time and hashes, the record's row in the input file and its
    current result. --json prints the list of nodes.
    """
    from . import lineage as lineage_module

    context = _open(workspace, load_library=False)
    try:
        found = lineage_module.trail(context.database, node_id, root_id)
    finally:
        context.close()
    if as_json:
        _emit_json(found["lineage"])
    else:
        for line in lineage_module.render_trail(found):
            _stdout().print(line, markup=False, highlight=False)
    if not found["complete"]:
        _stderr().print(
            f"[yellow]warning:[/] the trail breaks at {_escape(found['lineage'][0]['node_id'])}: "
            f"its parent {_escape(str(found['missing_node_id']))} is not in the ledger; "
            "`carbonlake lineage verify` names what is missing"
        )


@lineage.command("tree")
@click.argument("root_id")
@click.option(
    "--records",
    "max_records",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Record nodes shown under each batch; the rest are folded to counts.",
)
@click.option(
    "--batches",
    "max_children",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Nodes shown under one node (batches of a file); the rest are folded to counts.",
)
@common_options
def lineage_tree(
    root_id: str, max_records: int, max_children: int, workspace: Path | None, as_json: bool
) -> None:
    """Show the lineage of one input file (ROOT_ID) as an indented tree.

    File and batch nodes are shown; record nodes are counted per batch, with the
    first few listed. Nodes whose parent is missing hang under a "missing" entry.
    """
    from . import lineage as lineage_module

    context = _open(workspace, load_library=False)
    try:
        tops = lineage_module.outline(context.database, root_id, max_records, max_children)
    finally:
        context.close()
    if as_json:
        _emit_json([top.to_dict() for top in tops])
        return
    for line in lineage_module.render_outline(tops):
        _stdout().print(line, markup=False, highlight=False)


@lineage.command("verify")
@click.argument("root_id", required=False)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint file from `lineage checkpoint -o`: also prove the ledger only grew since.",
)
@click.option(
    "--all",
    "all_problems",
    is_flag=True,
    help="Go on after the first problem and list every one.",
)
@common_options
def lineage_verify(
    root_id: str | None,
    checkpoint_file: Path | None,
    all_problems: bool,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Recompute the ledger's hashes and check its tree and files (all of it, or ROOT_ID).

    Checks every node's hash and parent link, that every trail reaches
    RAW_DATA_INPUT and every batch record has a terminal node, and every stored
    file against the SHA-256 recorded for it. Exits 1 naming the first problem.
    """
    from .lineage import verify as lineage_verify_module

    point = lineage_verify_module.load_checkpoint(checkpoint_file) if checkpoint_file else None
    context = _open(workspace)
    try:
        report = lineage_verify_module.verify(
            context.database,
            context.storage,
            root_id,
            checkpoint=point,
            stop_at_first=not all_problems,
        )
    finally:
        context.close()
    if as_json:
        _emit_json(report.to_dict())
    else:
        for line in lineage_verify_module.render_report(report):
            _stdout().print(line, markup=False, highlight=False)
    if not report.ok:
        raise CommandFailed()


@lineage.command("checkpoint")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the checkpoint to this file; keep a copy where the ledger's owner cannot.",
)
@common_options
def lineage_checkpoint(output: Path | None, workspace: Path | None, as_json: bool) -> None:
    """Print the ledger's size and RFC 6962 Merkle root hash.

    Kept elsewhere, it lets `lineage verify --checkpoint FILE` later prove that
    the ledger only grew: its first SIZE nodes still give the same root.
    """
    from .lineage import verify as lineage_verify_module

    context = _open(workspace)
    try:
        point = lineage_verify_module.checkpoint(context.database)
    finally:
        context.close()
    if output is not None:
        lineage_verify_module.write_checkpoint(point, output)
    if as_json:
        _emit_json(point.to_dict())
        return
    _stdout().print(f"size       {point.size}", highlight=False)
    _stdout().print(f"root_hash  {point.root_hash}", highlight=False)
    _stdout().print(f"created_at {point.created_at}", highlight=False)
    if output is not None:
        _stderr().print(f"checkpoint written to {_escape(str(output))}")


@lineage.command("digest")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the digest to this file; keep a copy where the ledger's owner cannot.",
)
@common_options
def lineage_digest(output: Path | None, workspace: Path | None, as_json: bool) -> None:
    """Print the ledger's digest: the root hash that record proofs lead to.

    It covers the ledger's Merkle root (as `lineage checkpoint` prints it) and every
    enriched file the ledger records with the Merkle root of its records. Keep it
    outside the workspace; `lineage verify-proof FILE --root-hash H` checks a proof
    from `lineage prove` against it. The first digest reads every enriched file once
    (checking its SHA-256 against the ledger); later ones use the cached roots.
    """
    from .lineage import proof as lineage_proof_module

    context = _open(workspace)
    try:
        found = lineage_proof_module.digest(context.database, context.storage)
    finally:
        context.close()
    document = found.to_dict()
    if output is not None:
        _write_document(document, output)
    if as_json:
        _emit_json(document)
        return
    _stdout().print(f"root_hash  {found.root_hash}", highlight=False)
    _stdout().print(
        f"covers     the ledger's {found.ledger_size} nodes (root {found.ledger_root_hash})",
        highlight=False,
    )
    _stdout().print(
        f"           {found.files} enriched files, {found.records} records "
        f"(files root {found.files_root_hash})",
        highlight=False,
    )
    _stdout().print(f"created_at {found.created_at}", highlight=False)
    if output is not None:
        _stderr().print(f"digest written to {_escape(str(output))}")


def _write_document(document: dict[str, Any], path: Path) -> None:
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from exc


@lineage.command("prove")
@click.argument("record_id")
@click.option(
    "--root", "root_id", help="The root_id, when the record was calculated under several."
)
@click.option(
    "-o",
    "--out",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the proof to this file instead of printing it.",
)
@common_options
def lineage_prove(
    record_id: str, root_id: str | None, output: Path | None, workspace: Path | None, as_json: bool
) -> None:
    """Print an inclusion proof of RECORD_ID against the ledger's current digest.

    The proof holds the record (as `emissions export --format jsonl` gives it), its
    lineage fields, the Merkle audit path from its leaf to its enriched file's records
    root, the path from that file's entry to the files root, the ledger root and the
    root hash. `lineage verify-proof FILE --root-hash H` checks it without the
    workspace. Exits 1 if the record's enriched file no longer has the SHA-256 the
    ledger recorded.
    """
    from .lineage import proof as lineage_proof_module

    context = _open(workspace)
    try:
        proof = lineage_proof_module.prove(context.database, context.storage, record_id, root_id)
    finally:
        context.close()
    if output is not None:
        _write_document(proof, output)
        if as_json:
            _emit_json({"written": str(output), "root_hash": proof["root_hash"]})
        else:
            _stderr().print(f"proof of {_escape(record_id)} written to {_escape(str(output))}")
            _stdout().print(f"root_hash  {proof['root_hash']}", highlight=False)
        return
    if as_json:
        _emit_json(proof)
        return
    click.echo(json.dumps(proof, indent=2))
    _stderr().print(f"{_escape(proof['status']['note'])}; root_hash {proof['root_hash']}")


@lineage.command("verify-proof")
@click.argument("proof_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--root-hash",
    required=True,
    help="The root hash you trust (from `lineage digest`, kept outside the workspace).",
)
@common_options
def lineage_verify_proof(
    proof_file: Path, root_hash: str, workspace: Path | None, as_json: bool
) -> None:
    """Check a proof from `lineage prove` against ROOT_HASH, without the workspace.

    Needs no database and no storage: it recomputes the record's leaf, the audit paths
    and the root hash from the file alone. Exits 0 when the proof leads to the root
    hash, 1 naming the step that fails, 2 for a file that is not a proof.
    """
    from .lineage import proof as lineage_proof_module

    del workspace  # the point of a proof: nothing of the workspace is read
    try:
        text = proof_file.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read proof {proof_file}: {exc.strerror or exc}") from exc
    document = lineage_proof_module.load_proof(text, str(proof_file))
    try:
        result = lineage_proof_module.verify_proof(document, root_hash, str(proof_file))
    except lineage_proof_module.ProofFailed as exc:
        if as_json:
            _emit_json({"ok": False, "step": exc.step, "message": str(exc)})
        _stderr().print(f"[bold red]proof does not hold:[/] {_escape(str(exc))}", highlight=False)
        raise CommandFailed() from exc
    if as_json:
        _emit_json(result)
        return
    _stdout().print(
        f"proof holds: record {result['record_id']} of {result['storage_location']} "
        f"is covered by root hash {result['root_hash']}",
        markup=False,
        highlight=False,
    )


@lineage.command("archive")
@click.argument("root_id")
@common_options
def lineage_archive(root_id: str, workspace: Path | None, as_json: bool) -> None:
    """Write the trace archive of ROOT_ID: one JSON line per terminal node.

    Each line is {"record_id", "root_id", "lineage": [nodes from RAW_DATA_INPUT
    down]}, for every CALCULATION_COMPLETE, CALCULATION_FAILED and DQ_CHECK_FAIL
    node, in lineage-archive/YYYY/MM/DD/<root_id>.jsonl.
    """
    from .lineage import archive as archive_module

    context = _open(workspace)
    try:
        result = archive_module.archive(context.database, context.storage, root_id)
    finally:
        context.close()
    if as_json:
        _emit_json(result.to_dict())
    else:
        counts = ", ".join(f"{n} {action}" for action, n in sorted(result.terminals.items()))
        _stdout().print(
            f"{result.lines} lines ({counts or 'no terminal nodes'}) written to "
            f"{result.storage_location}",
            markup=False,
            highlight=False,
        )
    if result.incomplete:
        _stderr().print(
            f"[yellow]warning:[/] {result.incomplete} trail(s) break before RAW_DATA_INPUT; "
            "`carbonlake lineage verify` names what is missing"
        )


@lineage.command("openlineage")
@click.argument("root_id")
@click.option(
    "--transport",
    type=click.Choice(["file", "http"]),
    help="Send the events with openlineage-python's transport instead of printing them.",
)
@click.option(
    "--url",
    envvar="OPENLINEAGE_URL",
    help="http transport: the back end's base URL, e.g. http://localhost:5000 for Marquez "
    "(default: $OPENLINEAGE_URL).",
)
@click.option(
    "--endpoint",
    default="api/v1/lineage",
    show_default=True,
    help="http transport: the path events are POSTed to.",
)
@click.option(
    "--file",
    "file_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file transport: append the events to this file, one JSON line each.",
)
@click.option(
    "--namespace", default="carbonlake", show_default=True, help="The OpenLineage job namespace."
)
@common_options
def lineage_openlineage(
    root_id: str,
    transport: str | None,
    url: str | None,
    endpoint: str,
    file_path: Path | None,
    namespace: str,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """The history of ROOT_ID as OpenLineage RunEvents (START, COMPLETE or FAIL).

    One run for the execution and one per stage, datasets named by their URLs,
    the data-quality report as a dataQualityAssertions facet. Printed one JSON
    event per line (--json: one JSON list), or sent with --transport file|http.
    """
    from .lineage import openlineage as ol

    sender = None
    target = ""
    if transport is not None:
        target = str(file_path) if transport == "file" else f"{url}/{endpoint.lstrip('/')}"
        sender = ol.make_transport(
            transport, url=url, endpoint=endpoint, path=str(file_path) if file_path else None
        )
    context = _open(workspace)
    try:
        events = ol.run_events(context.database, context.storage, root_id, namespace)
    finally:
        context.close()
    if sender is not None:
        sent = ol.send(events, sender, target)
        if as_json:
            _emit_json({"sent": sent, "transport": transport, "target": target})
        else:
            _stderr().print(f"{sent} OpenLineage events sent to {_escape(target)}")
        return
    documents = ol.to_dicts(events)
    if as_json:
        _emit_json(documents)
        return
    for document in documents:
        click.echo(json.dumps(document, sort_keys=True))


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


def _attributes_options(func: F) -> F:
    func = click.option(
        "--attributes",
        "attributes_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A carbonlake-factor-attributes/1 JSON file: scope 2 methods, biogenic CO2, "
        "methane basis, scope 3 categories (docs/factors.md).",
    )(func)
    func = click.option(
        "--market-based",
        "market_based",
        multiple=True,
        metavar="CATEGORY",
        help="This scope 2 category is market-based (repeatable).",
    )(func)
    return click.option(
        "--location-based",
        "location_based",
        multiple=True,
        metavar="CATEGORY",
        help="This scope 2 category is location-based (repeatable).",
    )(func)


def _attributes(
    attributes_file: Path | None, location_based: tuple[str, ...], market_based: tuple[str, ...]
) -> factors_module.FactorAttributes:
    from .calculate import factors as factors_module

    found = (
        factors_module.read_attributes_file(attributes_file)
        if attributes_file
        else factors_module.NO_ATTRIBUTES
    )
    methods = {c: "location-based" for c in location_based}
    methods.update({c: "market-based" for c in market_based})
    return found.merged(factors_module.FactorAttributes(methods))


def _active_factor_set(context: Context, selector: str | None) -> factors_module.FactorSet:
    from .calculate import factors as factors_module

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
    from rich.table import Table

    from .calculate import factors as factors_module

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
            _escape(item["factor_id"]),
            str(item["scope"]),
            _escape(item["unit"]),
            f"{item['ar4_kgco2e_per_unit']:.6g}",
            f"{item['ar5_kgco2e_per_unit']:.6g}",
        )
    _stdout().print(table)


@factors.command("sets")
@common_options
def factors_sets(workspace: Path | None, as_json: bool) -> None:
    """List the factor sets: the shipped one and every imported version."""
    from .calculate import factors as factors_module

    context = _open(workspace)
    try:
        found = factors_module.factor_sets(context.database, context.factor_set)
    finally:
        context.close()
    if as_json:
        _emit_json(found)
        return
    for item in found:
        marker = "*" if item["active"] else " "
        _stdout().print(
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
    from .calculate import factors as factors_module

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
        _stdout().print(f"{key:<22} {value}", markup=False, highlight=False)


def _print_inconsistent(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        _stdout().print(
            f"{row['category']} / {row['activity']} ({row['gwp_set']}): stated "
            f"{row['stated_kgco2e_per_unit']}, recomputed {row['recomputed_kgco2e_per_unit']}"
            + ("  [grams would match]" if row["grams_would_match"] else ""),
            markup=False,
            highlight=False,
        )


@factors.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_grams_option
@_attributes_options
@common_options
def factors_validate(
    file: Path,
    grams_categories: tuple[str, ...],
    location_based: tuple[str, ...],
    market_based: tuple[str, ...],
    attributes_file: Path | None,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Check that every stated CO2e of FILE matches the CO2e recomputed from its gases.

    Exits 1 listing each inconsistent row (activity, stated and recomputed value).
    FILE may be in any format `factors import` takes.
    """
    from .calculate import factors as factors_module

    count, bad = factors_module.validate_factor_file(
        file, grams_categories, _attributes(attributes_file, location_based, market_based)
    )
    rows = bad.to_dicts()
    if as_json:
        _emit_json(
            {"file": str(file), "factors": count, "consistent": not rows, "inconsistent": rows}
        )
    elif rows:
        _print_inconsistent(rows)
        _stderr().print(
            f"{len(rows)} inconsistent value(s) among {count} factors in {file}", markup=False
        )
    else:
        _stdout().print(f"{file}: all {count} factors consistent", markup=False, highlight=False)
    if rows:
        raise CommandFailed()


@factors.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="Name of the factor set (default: the file's name).")
@_grams_option
@_attributes_options
@common_options
def factors_import(
    file: Path,
    name: str | None,
    grams_categories: tuple[str, ...],
    location_based: tuple[str, ...],
    market_based: tuple[str, ...],
    attributes_file: Path | None,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Import FILE as a new factor-set version (never edits an existing version).

    Accepts the GHG Protocol CSV layout of the shipped table, the original system's
    JSON factor model and carbonlake's own JSON format (docs/factors.md). Select it
    with `[calculate] factor_set = "NAME@VERSION"` or `--factor-set`. Every scope 2
    factor must say whether it is location- or market-based (--location-based,
    --market-based, --attributes, or per factor in carbonlake's format).
    """
    from .calculate import factors as factors_module

    attributes = _attributes(attributes_file, location_based, market_based)
    context = _open(workspace)
    try:
        try:
            imported, created = factors_module.import_factor_file(
                file, context.database, name, grams_categories, attributes
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
                _stderr().print(f"error: {exc}", markup=False)
            raise CommandFailed() from exc
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
    _stdout().print(
        f"{imported.label}: {imported.factors.height} factors {what}. Use it with "
        f'[calculate] factor_set = "{imported.label}" or --factor-set {imported.label}',
        markup=False,
        highlight=False,
    )


@cli.command()
@click.option("--host", help="Address to listen on (default: [server] host, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on (default: [server] port, 8000; 0 picks a free one).",
)
@common_options
def serve(host: str | None, port: int | None, workspace: Path | None, as_json: bool) -> None:
    """Serve the HTTP API and the web page over the workspace until Ctrl-C.

    Upload CSV files, follow executions, browse emissions and walk the lineage in a
    browser, or call the API (its OpenAPI document is at /openapi.json). Writes need
    an API key ([server] api_keys); without one configured, a key is made for the run
    and printed. Needs the server extra: pip install 'carbonlake[server]'. With
    --json, prints the address as one JSON document once it listens.
    """
    try:
        from .service.server import serve as serve_forever
    except ImportError as exc:
        raise ConfigurationError(
            f"`carbonlake serve` needs the server extra ({exc.name} is missing): "
            "pip install 'carbonlake[server]'"
        ) from exc
    flags = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(workspace, overrides={"server": flags} if flags else None)

    def announce(where: dict[str, Any]) -> None:
        if as_json:
            _emit_json(where)
            sys.stdout.flush()
            return
        _stdout().print(
            f"carbonlake serving {where['workspace']} at {where['url']} (Ctrl-C to stop)",
            markup=False,
            highlight=False,
        )
        key = where["generated_api_key"]
        if key:
            _stdout().print(
                f"No [server] api_keys set: API key for this run: {key}\n"
                f"Open {where['url']}#key={key} to use the page with it.",
                markup=False,
                highlight=False,
            )
        if not where["loopback"]:
            _stderr().print(
                f"[yellow]warning:[/] listening on {_escape(where['host'])}, not only loopback: "
                "every request needs an API key, and its Host must be one of [server] "
                "allowed_hosts (set it to the names users reach this service by)"
            )

    serve_forever(settings, announce)


def main() -> None:
    """Entry point of the ``carbonlake`` command."""
    try:
        try:
            code = cli.main(standalone_mode=False)
        except click.ClickException as exc:
            # Usage errors exit 2 as always; with --json stdout still gets one document.
            if "--json" in sys.argv[1:]:
                _emit_json({"error": {"type": type(exc).__name__, "message": exc.format_message()}})
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            _stderr().print("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
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
