"""Deterministic activity CSVs of any size, drawn from the shipped factor library.

Every record is calculable and passes the default data-quality ruleset: a
unique ``activity_event_id``, an ``asset_id``, a non-negative numeric
``raw_data``, a (category, activity) of the shipped factor set and a unit that
is either the factor's own spelling or one that converts to it (litres against
a per-gallon factor, MWh against a per-kWh one, km against a per-mile one...).

Scopes are drawn evenly (a third each), then a factor uniformly within the
scope, then the factor's own unit or an alternative with even odds. The file is
written in chunks, so ten million rows never sit in memory; the same
``(rows, seed)`` always gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

from carbonlake.calculate import units
from carbonlake.calculate.factors import shipped_factor_set

HEADER = (
    "activity_event_id",
    "asset_id",
    "geo",
    "origin_measurement_timestamp",
    "scope",
    "category",
    "activity",
    "source",
    "raw_data",
    "units",
)
DEFAULT_SEED = 20_260_307
CHUNK_ROWS = 50_000

ALTERNATIVE_UNITS: dict[str, tuple[str, ...]] = {
    "gallon": ("gal", "L"),
    "kilowatt_hour": ("kWh", "MWh"),
    "standard_cubic_foot": ("mcf",),
    "mile": ("km",),
    "kilometer": ("mile",),
    "passenger * mile": ("passenger-km",),
    "passenger * kilometer": ("passenger-mile",),
    "vehicle * mile": ("vehicle-km",),
    "short_ton * mile": ("tonne-km",),
    "metric_ton * kilometer": ("ton-mile",),
}
"""Record units to try against a factor unit, keyed by the factor unit's pint units."""


@dataclass(frozen=True)
class Choice:
    """One factor with the units records may state for it, CSV-ready."""

    scope: int
    middle: str
    """``scope,category,activity,source`` of the CSV row, quoted where needed."""
    unit_cells: tuple[str, ...]
    """The factor's own unit cell first, then the alternatives."""


def _cells(*values: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def _units_for(factor_unit: str) -> tuple[str, ...]:
    """The factor's own unit and every alternative that really converts to it."""
    key = str(units.parse(factor_unit).units)
    found = [factor_unit]
    for alternative in ALTERNATIVE_UNITS.get(key, ()):
        if units.conversion(alternative, factor_unit).multiplier is not None:
            found.append(alternative)
    if units.conversion(factor_unit, factor_unit).multiplier is None:
        raise ValueError(f"the shipped factor unit {factor_unit!r} does not convert to itself")
    return tuple(found)


def choices() -> list[Choice]:
    """Every factor of the shipped set, with the units a generated record may use."""
    factors = shipped_factor_set().factors.sort("scope", "category", "activity")
    found = []
    for row in factors.iter_rows(named=True):
        found.append(
            Choice(
                scope=int(row["scope"]),
                middle=_cells(str(row["scope"]), row["category"], row["activity"], "benchmark"),
                unit_cells=tuple(_cells(u) for u in _units_for(row["unit"])),
            )
        )
    return found


def generate(path: Path, rows: int, seed: int = DEFAULT_SEED) -> Path:
    """Write ``rows`` activity records to ``path`` (atomically); returns ``path``."""
    rng = random.Random(seed)
    table = choices()
    scopes = sorted({c.scope for c in table})
    per_scope = {s: sum(1 for c in table if c.scope == s) for s in scopes}
    weights = [1.0 / (len(scopes) * per_scope[c.scope]) for c in table]
    cum_weights = [sum(weights[: i + 1]) for i in range(len(weights))]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(HEADER) + "\n")
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            picked = rng.choices(table, cum_weights=cum_weights, k=count)
            lines = []
            for offset, choice in enumerate(picked):
                index = start + offset
                cells = choice.unit_cells
                unit = cells[0] if len(cells) == 1 or rng.random() < 0.5 else rng.choice(cells[1:])
                lines.append(
                    f"bench-{seed}-{index:09d},asset-{rng.randrange(5000):04d},"
                    f'"[{rng.uniform(-60, 70):.5f},{rng.uniform(-180, 180):.5f}]",'
                    f"20{rng.randrange(19, 26)}-{rng.randrange(1, 13):02d},{choice.middle},"
                    f"{rng.randrange(0, 1_000_000) / 1000:.3f},{unit}\n"
                )
            handle.write("".join(lines))
    partial.replace(path)
    return path
