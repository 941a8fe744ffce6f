"""Units of measure: convert a record's quantity to its factor's unit, with pint.

pint (a well-kept units library) does the arithmetic; this module only teaches
it the spellings found in activity data and the domain units of the factor
table:

- ``passenger`` and ``vehicle`` are dimensions of their own, so
  ``passenger-km`` converts to ``passenger-mile`` but never to ``vehicle-mile``;
- ``ton-mile`` is a US short ton times a mile (as in the EPA tables),
  ``tonne-km`` a metric tonne times a kilometre; both are mass x distance;
- ``scf`` (standard cubic foot) is a dimension of its own: converting a
  geometric volume to gas at standard conditions would be a guess;
- ``gal`` is the US liquid gallon, ``therm`` is 100,000 Btu.

Conversion happens only within one dimension. A record whose unit cannot mean
the factor's unit (kilograms against a per-gallon factor) gets a reason naming
both units and their dimensions; nothing is guessed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

_ALIASES: dict[str, str] = {}


def _alias(expression: str, *spellings: str) -> None:
    for spelling in spellings:
        _ALIASES[spelling] = expression


_alias("gallon", "gal", "gals", "gal (us)", "gal us", "us gal", "gallon", "gallons",
       "us gallon", "us gallons", "gallon (us)", "gallons (us)")  # fmt: skip
_alias("liter", "l", "liter", "liters", "litre", "litres", "ltr")
_alias("meter ** 3", "m3", "m^3", "m³", "cubic meter", "cubic meters", "cubic metre",
       "cubic metres")  # fmt: skip
_alias("kilowatt_hour", "kwh", "kw h", "kw-h", "kilowatt hour", "kilowatt hours",
       "kilowatt-hour", "kilowatt-hours")  # fmt: skip
_alias("megawatt_hour", "mwh", "megawatt hour", "megawatt hours", "megawatt-hour")
_alias("gigawatt_hour", "gwh")
_alias("watt_hour", "wh")
_alias("gigajoule", "gj", "gigajoule", "gigajoules")
_alias("megajoule", "mj", "megajoule", "megajoules")
_alias("therm", "therm", "therms", "thm")
_alias("1e6 * Btu", "mmbtu", "million btu")
_alias("Btu", "btu")
_alias("mile", "mile", "miles", "mi")
_alias("kilometer", "km", "kms", "kilometer", "kilometers", "kilometre", "kilometres")
_alias("passenger * mile", "passenger-mile", "passenger-miles", "passenger mile",
       "passenger miles", "pmi")  # fmt: skip
_alias("passenger * kilometer", "passenger-km", "passenger km", "passenger-kilometer",
       "passenger-kilometre", "passenger kilometres", "pkm")  # fmt: skip
_alias("vehicle * mile", "vehicle-mile", "vehicle-miles", "vehicle mile", "vehicle miles")
_alias("vehicle * kilometer", "vehicle-km", "vehicle km", "vehicle-kilometre", "vkm")
_alias("short_ton * mile", "ton-mile", "ton-miles", "ton mile", "ton miles",
       "short ton-mile")  # fmt: skip
_alias("metric_ton * kilometer", "tonne-km", "tonne km", "tonne-kilometre",
       "tonne-kilometer", "t-km", "tkm", "metric ton-km")  # fmt: skip
_alias("scf", "scf", "standard cubic foot", "standard cubic feet")
_alias("100 * scf", "ccf")
_alias("1000 * scf", "mcf", "mscf")
_alias("kilogram", "kg", "kgs", "kilogram", "kilograms")
_alias("gram", "g", "gram", "grams")
_alias("metric_ton", "t", "tonne", "tonnes", "metric ton", "metric tons")
_alias("short_ton", "ton", "tons", "short ton", "short tons")
_alias("pound", "lb", "lbs", "pound", "pounds")


@functools.cache
def registry() -> Any:
    """The unit registry with carbonlake's domain units (built once). pint is imported
    here, on first use, so that commands that convert nothing do not pay for it (about
    0.15 s)."""
    import pint

    ureg: Any = pint.UnitRegistry()
    ureg.define("passenger = [passenger]")
    ureg.define("vehicle = [vehicle]")
    ureg.define("standard_cubic_foot = [standard_gas_volume] = scf")
    return ureg


class UnitError(ValueError):
    """A unit spelling that cannot be read, or two units that cannot be converted."""


def normalise(spelling: str) -> str:
    """Lower case with whitespace collapsed: the key of the alias table."""
    return " ".join(spelling.strip().lower().split())


def parse(spelling: str) -> Any:
    """The quantity ``1 <unit>`` for a unit spelling; raises UnitError when unknown."""
    if not spelling.strip():
        raise UnitError("no unit is given")
    ureg = registry()
    import pint

    alias = _ALIASES.get(normalise(spelling))
    try:
        if alias is not None:
            quantity = ureg.parse_expression(alias)
        else:
            # Not a known spelling: a plain pint unit name, but never a number ("2 gal").
            quantity = ureg.Quantity(1.0, ureg.parse_units(spelling.strip()))
    except (pint.errors.PintError, AttributeError, TypeError, SyntaxError, ValueError) as exc:
        raise UnitError(f"unit '{spelling}' is not a unit carbonlake knows") from exc
    return quantity


def dimension(spelling: str) -> str:
    """A readable dimension of a unit spelling, e.g. ``[length] ** 3``."""
    return str(parse(spelling).dimensionality)


@dataclass(frozen=True)
class Conversion:
    """How a record's unit converts to a factor's unit."""

    multiplier: float | None
    """Multiply the record's quantity by this to get factor units; None if impossible."""
    reason: str | None
    """Why the conversion is impossible (names both units); None when possible."""


@functools.lru_cache(maxsize=4096)
def conversion(record_unit: str, factor_unit: str) -> Conversion:
    """The multiplier from ``record_unit`` to ``factor_unit``, or the reason there is none."""
    try:
        source = parse(record_unit)
    except UnitError as exc:
        return Conversion(None, f"{exc}; the factor is per '{factor_unit}'")
    try:
        target = parse(factor_unit)
    except UnitError as exc:
        return Conversion(None, f"the factor's {exc}")
    if source.dimensionality != target.dimensionality:
        return Conversion(
            None,
            f"units '{record_unit}' ({source.dimensionality}) cannot be converted to the "
            f"factor's unit '{factor_unit}' ({target.dimensionality})",
        )
    return Conversion(float((source / target).to("dimensionless").magnitude), None)


def magnitude_in(quantity: Any, unit: str) -> float:
    """The magnitude of a pint quantity in ``unit``; UnitError when the dimensions
    differ."""
    import pint

    try:
        return float(quantity.to(unit).magnitude)
    except pint.errors.DimensionalityError as exc:
        raise UnitError(str(exc)) from exc


def convert(amount: float, record_unit: str, factor_unit: str) -> float:
    """Convert one quantity; raises UnitError with the reason when impossible."""
    result = conversion(record_unit, factor_unit)
    if result.multiplier is None:
        raise UnitError(result.reason)
    return amount * result.multiplier
