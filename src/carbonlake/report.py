"""The GHG Protocol inventory: what `carbonlake report`, ``GET /report`` and the web
page's report show.

Totals follow the GHG Protocol Corporate Standard and its Scope 2 Guidance:

- scope 1, scope 2 location-based, scope 2 market-based and scope 3 each on its own;
  ``total_location_based`` is scope 1 + scope 2 location-based + scope 3, and
  ``total_market_based`` the same with scope 2 market-based: the two scope 2 methods
  stand side by side and are never added;
- scope 3 by GHG Protocol category (1-15) where the record or its factor names one,
  else ``unassigned``;
- biogenic CO2 outside the scopes;
- what could not be calculated (``coverage``), so no total hides missing records;
- ``methodology``: factor sets with versions and sources, the GWP values used, the
  unit conventions.

A scope is read from the result, which is the factor's scope (a record whose scope
disagrees is not calculated), and the scope 2 method from the factor.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    # The calculation package imports Polars: the CLI imports this module for its choices.
    from .calculate import factors as factors_module
    from .database import Database, EmissionFilter

__all__ = [
    "BREAKDOWNS",
    "FORMATS",
    "GWP_SETS",
    "SCOPE3_CATEGORIES",
    "compare",
    "inventory",
    "render",
]

GWP_SETS = ("ar4", "ar5", "ar6")
BREAKDOWNS = ("month", "quarter", "year", "asset", "category")
FORMATS = ("text", "json", "csv", "html")
BUCKETS = ("scope_1", "scope_2_location_based", "scope_2_market_based", "scope_3")
TOTALS = ("total_location_based", "total_market_based")
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

SCOPE3_CATEGORIES = {
    1: "Purchased goods and services",
    2: "Capital goods",
    3: "Fuel- and energy-related activities",
    4: "Upstream transportation and distribution",
    5: "Waste generated in operations",
    6: "Business travel",
    7: "Employee commuting",
    8: "Upstream leased assets",
    9: "Downstream transportation and distribution",
    10: "Processing of sold products",
    11: "Use of sold products",
    12: "End-of-life treatment of sold products",
    13: "Downstream leased assets",
    14: "Franchises",
    15: "Investments",
}
"""The GHG Protocol Corporate Value Chain (Scope 3) Standard's 15 categories."""

_GWP_SOURCES = {
    "ar4": "IPCC Fourth Assessment Report (AR4), 100-year; GHG Protocol GWP table",
    "ar5": "IPCC Fifth Assessment Report (AR5), 100-year; GHG Protocol GWP table",
    "ar6": "IPCC Sixth Assessment Report (AR6), 100-year; GHG Protocol, Global Warming "
    "Potential Values (August 2024): CH4 29.8 only for fugitive fossil methane, 27.0 for "
    "combustion and non-fossil methane",
}


def _zero() -> dict[str, float]:
    return {"co2e_tonnes": 0.0, "co2_tonnes": 0.0, "ch4_tonnes": 0.0, "n2o_tonnes": 0.0}


def _add(total: dict[str, float], row: dict[str, Any]) -> None:
    total["co2e_tonnes"] += row["co2e"]
    total["co2_tonnes"] += row["co2"]
    total["ch4_tonnes"] += row["ch4"]
    total["n2o_tonnes"] += row["n2o"]


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The scope totals, both grand totals and biogenic CO2 of inventory rows."""
    found: dict[str, Any] = {bucket: {**_zero(), "records": 0} for bucket in BUCKETS}
    by_category: dict[str, dict[str, Any]] = {}
    unclassified = {**_zero(), "records": 0}
    biogenic = 0.0
    for row in rows:
        biogenic += row["biogenic"]
        target = found.get(row["bucket"], unclassified)
        _add(target, row)
        target["records"] += row["records"]
        if row["bucket"] == "scope_3":
            category = row["scope3_category"]
            key = str(category) if category else "unassigned"
            entry = by_category.setdefault(
                key,
                {
                    **_zero(),
                    "records": 0,
                    "name": SCOPE3_CATEGORIES.get(category or 0, "not assigned to a category"),
                },
            )
            _add(entry, row)
            entry["records"] += row["records"]
    found["scope_3"]["by_category"] = dict(
        sorted(
            by_category.items(),
            key=lambda item: (item[0] == "unassigned", int(item[0]) if item[0].isdigit() else 0),
        )
    )
    for total, scope2 in zip(
        TOTALS, ("scope_2_location_based", "scope_2_market_based"), strict=True
    ):
        found[total] = {
            gas: found["scope_1"][gas] + found[scope2][gas] + found["scope_3"][gas]
            for gas in _zero()
        }
    found["biogenic_co2_tonnes"] = biogenic
    found["unclassified"] = unclassified
    return found


def _filter(period_from: str | None, period_to: str | None) -> EmissionFilter:
    from .database import EmissionFilter

    for name, value in (("--from", period_from), ("--to", period_to)):
        if value is not None and not PERIOD.match(value):
            raise ConfigurationError(
                f"{name} {value!r} is not a month; give YYYY-MM, for example 2019-01"
            )
    if period_from and period_to and period_from > period_to:
        raise ConfigurationError(f"--from {period_from} is after --to {period_to}")
    return EmissionFilter(measured_from=period_from, measured_to=period_to)


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ConfigurationError(f"{name} {value!r} is not one of {', '.join(choices)}")


def inventory(
    database: Database,
    *,
    period_from: str | None = None,
    period_to: str | None = None,
    gwp: str = "ar5",
    by: str | None = None,
    factor_set: factors_module.FactorSet | None = None,
) -> dict[str, Any]:
    """The inventory of the current results measured in ``period_from``..``period_to``
    (``YYYY-MM``, both included), CO2e with ``gwp``, broken down ``by`` a period or
    dimension. With ``factor_set``, each current record's result with that factor set
    instead (its result history): the inventory as that set gave it."""
    _check_choice(gwp, GWP_SETS, "--gwp")
    if by is not None:
        _check_choice(by, BREAKDOWNS, "--by")
    where = _filter(period_from, period_to)
    chosen = (factor_set.name, factor_set.version) if factor_set is not None else None
    rows = database.inventory_rows(where, gwp, None, chosen)
    document: dict[str, Any] = {
        "gwp": gwp,
        "period": {"from": period_from, "to": period_to},
        **_totals(rows),
    }
    failures = database.failure_stats(where)
    calculated = sum(r["records"] for r in rows)
    unclassified = document.pop("unclassified")
    document["coverage"] = {
        "records_calculated": calculated,
        "records_failed": failures["records_failed"],
        "failed_by_reason": failures["failed_by_reason"],
        "share_of_records_not_covered": (
            failures["records_failed"] / (calculated + failures["records_failed"])
            if calculated + failures["records_failed"]
            else 0.0
        ),
        "records_not_in_any_total": unclassified["records"],
        # The same activity_event_id came in another file before: the earlier result was
        # replaced (kept in the history), so it is counted once, with the later file's data.
        "records_replaced_by_another_file": database.replaced_count(where),
        "note": "records_failed could not be calculated (no factor, a unit that cannot be "
        "converted, a scope that disagrees with the factor's, ...): they are in no total. "
        "`carbonlake executions show ID` lists them with their reasons; fix and "
        "`carbonlake executions redrive ID`.",
    }
    if factor_set is not None:
        document["coverage"]["records_current"] = database.emissions_count()
    if by is not None:
        document["breakdown"] = {
            "by": by,
            "rows": _breakdown(database.inventory_rows(where, gwp, by, chosen), by),
        }
    document["methodology"] = _methodology(database, where, gwp)
    if factor_set is not None:
        document["factor_set"] = factor_set.label
    return document


def _breakdown(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    keys: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        keys.setdefault(row["key"], []).append(row)
    found = []
    for key, group in keys.items():
        totals = _totals(group)
        found.append(
            {
                "key": key,
                **{name: totals[name] for name in (*BUCKETS, *TOTALS)},
                "biogenic_co2_tonnes": totals["biogenic_co2_tonnes"],
            }
        )
        found[-1]["scope_3"] = {k: v for k, v in found[-1]["scope_3"].items() if k != "by_category"}
    if by in ("asset", "category"):
        found.sort(key=lambda r: -r["total_location_based"]["co2e_tonnes"])
    return found


def _methodology(database: Database, where: EmissionFilter, gwp: str) -> dict[str, Any]:
    from .calculate import factors as factors_module
    from .calculate import units

    used = database.inventory_methodology(where)
    sets = []
    for item in used["factor_sets"]:
        label = f"{item['factor_set']}@{item['factor_version']}"
        entry: dict[str, Any] = {
            "name": item["factor_set"],
            "version": item["factor_version"],
            "records": item["records"],
        }
        try:
            chosen = factors_module.load_factor_set(label, database)
        except ConfigurationError:
            entry["sources"] = None
        else:
            entry["sources"] = sorted(
                {s for s in chosen.factors["source"].to_list() if s}
                | {s for s in chosen.factors["source_origin"].to_list() if s}
            )
            entry["scope2_methods"] = factors_module.scope2_methods(chosen)
        sets.append(entry)
    if gwp == "ar6":
        ch4: Any = {item["basis"]: item["ar6_ch4_gwp"] for item in used["ch4_bases"]}
        n2o = factors_module.AR6_GWP["n2o"]
    else:
        ch4 = factors_module.GWP[gwp]["ch4"]
        n2o = factors_module.GWP[gwp]["n2o"]
    return {
        "factor_sets": sets,
        "gwp": {"set": gwp, "ch4": ch4, "n2o": n2o, "source": _GWP_SOURCES[gwp]},
        "ch4_bases": used["ch4_bases"],
        "co2e": (
            "AR4 and AR5 CO2e use the factor source's stated kgCO2e per unit (checked against "
            "the gases with these GWPs on import); AR6 is recomputed from the gases."
        ),
        "scope2": "GHG Protocol Scope 2 Guidance: location-based and market-based totals are "
        "reported side by side and never added; a factor's method is an attribute of its "
        "factor set (`carbonlake factors sets`).",
        "biogenic_co2": "CO2 from biomass (e.g. biodiesel, ethanol) is reported outside the "
        "scopes (biogenic_co2_tonnes) and is in no CO2 or CO2e total.",
        "unit_conventions": {
            "tonnes": "metric tonnes (1000 kg) for every amount; factors are kg per unit",
            "btu": f"International Table Btu = {units.BTU_IT_JOULES} J",
            "therm": f"US therm = {units.US_THERM_MEGAJOULES} MJ (100,000 Btu at 59 °F); "
            f"EC therm ({units.EC_THERM_MEGAJOULES} MJ) is spelt 'EC therm'",
            "gallon": "US liquid gallon (3.785411784 L)",
            "si_prefixes": "case-sensitive: mWh is a milliwatt-hour, MWh a megawatt-hour",
        },
    }


# -- restatement ----------------------------------------------------------------------------------


def _headline(document: dict[str, Any]) -> dict[str, float]:
    values = {name: float(document[name]["co2e_tonnes"]) for name in (*BUCKETS, *TOTALS)}
    values["biogenic_co2_tonnes"] = float(document["biogenic_co2_tonnes"])
    return values


def read_snapshot(path: Path) -> dict[str, Any]:
    """A report written earlier with ``--format json``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(
            f"--compare-to {path}: not a report written by `carbonlake report --format json` "
            f"({exc})"
        ) from exc
    if not isinstance(document, dict) or any(
        not isinstance(document.get(name), dict) for name in (*BUCKETS, *TOTALS)
    ):
        raise ConfigurationError(
            f"--compare-to {path}: not a report written by `carbonlake report --format json` "
            "(it lacks scope_1, scope_2_location_based, ...)"
        )
    return document


def compare(
    database: Database, current: dict[str, Any], target: str, *, snapshots: bool = True
) -> dict[str, Any]:
    """``current`` with a ``restatement``: each total before (``target``: a report file
    written with ``--format json``, or a factor set NAME, NAME@VERSION or VERSION whose
    results the result history keeps), after (``current``) and the change. With
    ``snapshots=False`` (the HTTP API) ``target`` is always a factor set."""
    from .calculate import factors as factors_module

    path = Path(target)
    if snapshots and (path.suffix.lower() == ".json" or path.is_file()):
        before = read_snapshot(path)
        kind, label = "snapshot", str(path)
        if before.get("gwp") != current["gwp"]:
            raise ConfigurationError(
                f"--compare-to {path} is in {before.get('gwp')}, this report in "
                f"{current['gwp']}: give --gwp {before.get('gwp')}"
            )
    else:
        chosen = factors_module.load_factor_set(target, database)
        period = current["period"]
        before = inventory(
            database,
            period_from=period["from"],
            period_to=period["to"],
            gwp=current["gwp"],
            factor_set=chosen,
        )
        kind, label = "factor_set", chosen.label
    old, new = _headline(before), _headline(current)
    current["restatement"] = {
        "compare_to": {"kind": kind, "label": label, "period": before.get("period")},
        "records_before": before["coverage"]["records_calculated"],
        "records_after": current["coverage"]["records_calculated"],
        "co2e_tonnes": {
            name: {
                "before": old[name],
                "after": new[name],
                "change": new[name] - old[name],
                "change_percent": (100.0 * (new[name] - old[name]) / old[name])
                if old[name]
                else None,
            }
            for name in new
        },
    }
    return current


# -- formats --------------------------------------------------------------------------------------

_LABELS = {
    "scope_1": "Scope 1",
    "scope_2_location_based": "Scope 2 (location-based)",
    "scope_2_market_based": "Scope 2 (market-based)",
    "scope_3": "Scope 3",
    "total_location_based": "Total, location-based (1 + 2 LB + 3)",
    "total_market_based": "Total, market-based (1 + 2 MB + 3)",
    "biogenic_co2_tonnes": "Biogenic CO2 (outside the scopes)",
}


def _rows(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(section, label, totals) rows in reading order."""
    found = [("inventory", _LABELS[name], document[name]) for name in BUCKETS[:3]]
    found.append(("inventory", _LABELS["scope_3"], document["scope_3"]))
    for key, entry in document["scope_3"]["by_category"].items():
        found.append(("scope_3", f"  Scope 3 category {key}: {entry['name']}", entry))
    found += [("inventory", _LABELS[name], document[name]) for name in TOTALS]
    return found


def render(document: dict[str, Any], fmt: str) -> str:
    """The report as text, JSON, CSV or a standalone HTML page."""
    _check_choice(fmt, FORMATS, "--format")
    if fmt == "json":
        return json.dumps(document, indent=2, default=str) + "\n"
    if fmt == "csv":
        return _csv(document)
    if fmt == "html":
        return _html(document)
    return _text(document)


def _tonnes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.6f}"


def _text(document: dict[str, Any]) -> str:
    period = document["period"]
    lines = [
        f"GHG inventory, {period['from'] or 'all periods'} to {period['to'] or 'latest'}, "
        f"CO2e with {document['gwp'].upper()} (tonnes)",
        "",
        f"{'':<44}{'CO2e':>18}{'CO2':>18}{'CH4':>14}{'N2O':>14}",
    ]
    for _, label, totals in _rows(document):
        lines.append(
            f"{label:<44}{_tonnes(totals['co2e_tonnes']):>18}{_tonnes(totals['co2_tonnes']):>18}"
            f"{_tonnes(totals['ch4_tonnes']):>14}{_tonnes(totals['n2o_tonnes']):>14}"
        )
    lines.append(
        f"{_LABELS['biogenic_co2_tonnes']:<44}{_tonnes(document['biogenic_co2_tonnes']):>18}"
    )
    coverage = document["coverage"]
    lines += [
        "",
        f"Coverage: {coverage['records_calculated']:,} record(s) calculated, "
        f"{coverage['records_failed']:,} could not be ("
        f"{100 * coverage['share_of_records_not_covered']:.2f}% of records not covered)",
    ]
    for reason, count in coverage["failed_by_reason"].items():
        lines.append(f"  {reason}: {count:,}")
    if coverage["records_not_in_any_total"]:
        lines.append(
            f"  {coverage['records_not_in_any_total']:,} result(s) have no scope or a scope 2 "
            "factor without a method: recalculate them"
        )
    if coverage.get("records_replaced_by_another_file"):
        lines.append(
            f"  {coverage['records_replaced_by_another_file']:,} result(s) replaced an earlier "
            "result of the same activity_event_id from another file (counted once)"
        )
    breakdown = document.get("breakdown")
    if breakdown:
        lines += ["", f"By {breakdown['by']} (CO2e tonnes)"]
        lines.append(
            f"{breakdown['by']:<24}{'scope 1':>16}{'scope 2 LB':>16}{'scope 2 MB':>16}"
            f"{'scope 3':>16}{'total LB':>16}{'total MB':>16}"
        )
        for row in breakdown["rows"]:
            lines.append(
                f"{row['key'] if row['key'] is not None else '-'!s:<24}"
                + "".join(
                    f"{_tonnes(row[name]['co2e_tonnes']):>16}" for name in (*BUCKETS, *TOTALS)
                )
            )
    restatement = document.get("restatement")
    if restatement:
        target = restatement["compare_to"]
        lines += ["", f"Restatement against {target['kind']} {target['label']} (CO2e tonnes)"]
        lines.append(f"{'':<44}{'before':>18}{'after':>18}{'change':>18}{'%':>10}")
        for name, change in restatement["co2e_tonnes"].items():
            percent = change["change_percent"]
            lines.append(
                f"{_LABELS[name]:<44}{_tonnes(change['before']):>18}{_tonnes(change['after']):>18}"
                f"{change['change']:>+18,.6f}{'-' if percent is None else f'{percent:+.2f}':>10}"
            )
    method = document["methodology"]
    lines += ["", "Methodology"]
    for item in method["factor_sets"]:
        lines.append(
            f"  factor set {item['name']}@{item['version']}: {item['records']:,} record(s)"
        )
    gwp = method["gwp"]
    lines.append(
        f"  GWP {gwp['set'].upper()}: CH4 {gwp['ch4']}, N2O {gwp['n2o']} ({gwp['source']})"
    )
    lines.append(f"  {method['scope2']}")
    lines.append(f"  {method['biogenic_co2']}")
    for name, text in method["unit_conventions"].items():
        lines.append(f"  {name}: {text}")
    return "\n".join(lines) + "\n"


def _csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["section", "key", "total", "co2e_tonnes", "co2_tonnes", "ch4_tonnes", "n2o_tonnes"]
    )
    for name in (*BUCKETS, *TOTALS):
        totals = document[name]
        writer.writerow(["inventory", "", name, *(totals[g] for g in _zero())])
    for key, entry in document["scope_3"]["by_category"].items():
        writer.writerow(["scope_3_category", key, entry["name"], *(entry[g] for g in _zero())])
    writer.writerow(
        ["inventory", "", "biogenic_co2_tonnes", "", document["biogenic_co2_tonnes"], "", ""]
    )
    for row in (document.get("breakdown") or {}).get("rows", []):
        for name in (*BUCKETS, *TOTALS):
            writer.writerow(
                [
                    f"by_{document['breakdown']['by']}",
                    row["key"],
                    name,
                    *(row[name][g] for g in _zero()),
                ]
            )
    for name, change in ((document.get("restatement") or {}).get("co2e_tonnes") or {}).items():
        writer.writerow(["restatement_before", "", name, change["before"], "", "", ""])
        writer.writerow(["restatement_after", "", name, change["after"], "", "", ""])
    return out.getvalue()


def _html(document: dict[str, Any]) -> str:
    def esc(value: Any) -> str:
        return html.escape(str(value))

    rows = "".join(
        f"<tr><td>{esc(label)}</td><td class=num>{_tonnes(t['co2e_tonnes'])}</td>"
        f"<td class=num>{_tonnes(t['co2_tonnes'])}</td>"
        f"<td class=num>{_tonnes(t['ch4_tonnes'])}</td>"
        f"<td class=num>{_tonnes(t['n2o_tonnes'])}</td></tr>"
        for _, label, t in _rows(document)
    )
    values = [
        (label, document[name]["co2e_tonnes"])
        for name, label in _LABELS.items()
        if name in (*BUCKETS, *TOTALS)
    ]
    top = max([v for _, v in values] + [1e-12])
    bars = "".join(
        f'<g><text x="0" y="{i * 28 + 18}">{esc(label)}</text>'
        f'<rect x="300" y="{i * 28 + 5}" height="18" '
        f'width="{max(1.0, 380 * v / top):.1f}" fill="#2f7d5b"/>'
        f'<text x="{306 + 380 * v / top:.1f}" y="{i * 28 + 18}">{_tonnes(v)} t</text></g>'
        for i, (label, v) in enumerate(values)
    )
    coverage = document["coverage"]
    reasons = ", ".join(f"{k} {v}" for k, v in coverage["failed_by_reason"].items())
    period = document["period"]
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>GHG inventory</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#1c2a24}"
        "table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd}"
        ".num{text-align:right;font-variant-numeric:tabular-nums}</style>"
        f"<h1>GHG inventory</h1><p>{esc(period['from'] or 'all periods')} to "
        f"{esc(period['to'] or 'latest')}; CO2e with {esc(document['gwp'].upper())}; tonnes. "
        "Scope 2 location-based and market-based are reported side by side, never added.</p>"
        f'<svg viewBox="0 0 900 {len(values) * 28 + 8}" width="900" role="img" '
        f'aria-label="CO2e by scope">{bars}</svg>'
        "<table><tr><th></th><th>CO2e</th><th>CO2</th><th>CH4</th><th>N2O</th></tr>"
        f"{rows}</table><p>{esc(_LABELS['biogenic_co2_tonnes'])}: "
        f"{_tonnes(document['biogenic_co2_tonnes'])} t</p>"
        f"<p>Coverage: {coverage['records_calculated']:,} record(s) calculated, "
        f"{coverage['records_failed']:,} could not be calculated "
        f"({esc(reasons or 'none')})."
        "</p></html>\n"
    )
