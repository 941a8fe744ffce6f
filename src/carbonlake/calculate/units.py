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
- ``gal`` is the US liquid gallon; ``Btu`` is the International Table Btu
  (1055.05585262 J); ``therm`` is the US therm (105.4804 MJ, 100,000 Btu at
  59 °F, as US gas bills and the EPA mean it); the EC therm (105.506 MJ) is
  spelt ``EC therm``.

**Case.** SI prefixes are case-sensitive (``mWh`` is a milliwatt-hour, ``MWh``
a megawatt-hour), so symbols are matched exactly as written. A spelling that
matches a symbol only when case is ignored is read as that symbol when exactly
one symbol fits (``kwh``, ``KWH`` and the factor table's ``kwH`` can only be
kilowatt-hours: no other prefix is spelt k or K) and is refused as ambiguous
when several do (``mwh``, ``MWH``: milli or mega?). Unit words (``gallons``,
``Kilowatt-hours``, ``therm``) are matched case-insensitively. An unknown or
ambiguous spelling fails with a reason listing the accepted spellings.

Conversion happens only within one dimension. A record whose unit cannot mean
the factor's unit (kilograms against a per-gallon factor) gets a reason naming
both units and their dimensions; nothing is guessed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from .._exceptions import UnitError

__all__ = ["UnitError", "conversion", "convert"]

BTU_IT_JOULES = 1055.05585262
"""The International Table British thermal unit, in joules (exact by definition)."""
US_THERM_MEGAJOULES = 105.4804
"""The US therm (100,000 Btu at 59 °F), in megajoules."""
EC_THERM_MEGAJOULES = 105.506
"""The EC therm (100,000 Btu, ISO), in megajoules."""

_SYMBOLS: dict[str, str] = {}
"""Case-sensitive spellings (SI symbols, with their prefixes) -> pint expression."""
_WORDS: dict[str, str] = {}
"""Case-insensitive spellings (lower case) -> pint expression."""


def _symbol(expression: str, *spellings: str) -> None:
    for spelling in spellings:
        _SYMBOLS[spelling] = expression


def _word(expression: str, *spellings: str) -> None:
    for spelling in spellings:
        _WORDS[spelling.lower()] = expression


_PREFIXES = {"": "", "m": "milli", "k": "kilo", "M": "mega", "G": "giga", "T": "tera"}
for _prefix, _name in _PREFIXES.items():
    _symbol(f"{_name}watt_hour", f"{_prefix}Wh")
    _symbol(f"{_name}joule", f"{_prefix}J")
    if _prefix in ("", "m", "k", "M"):
        _symbol(f"{_name}liter", f"{_prefix}L", f"{_prefix}l")
        _symbol(f"{_name}gram", f"{_prefix}g")
_symbol("kilometer", "km")
_symbol("meter ** 3", "m3", "m^3", "m³")
_symbol("btu_it", "Btu", "BTU")
_symbol("1e3 * btu_it", "kBtu")
_symbol("1e6 * btu_it", "MMBtu")
_symbol("metric_ton", "t")

_word("gallon", "gal", "gals", "gal (us)", "gal us", "us gal", "gallon", "gallons",
      "us gallon", "us gallons", "gallon (us)", "gallons (us)")  # fmt: skip
_word("liter", "liter", "liters", "litre", "litres", "ltr")
_word("meter ** 3", "cubic meter", "cubic meters", "cubic metre", "cubic metres")
_word("kilowatt_hour", "kw h", "kw-h", "kilowatt hour", "kilowatt hours",
      "kilowatt-hour", "kilowatt-hours")  # fmt: skip
_word("megawatt_hour", "megawatt hour", "megawatt hours", "megawatt-hour", "megawatt-hours")
_word("gigawatt_hour", "gigawatt hour", "gigawatt hours", "gigawatt-hour", "gigawatt-hours")
_word("gigajoule", "gigajoule", "gigajoules")
_word("megajoule", "megajoule", "megajoules")
_word("us_therm", "therm", "therms", "thm", "us therm", "us therms", "therm (us)")
_word("ec_therm", "ec therm", "ec therms", "therm (ec)")
_word("1e6 * btu_it", "million btu", "mmbtu")
_word("btu_it", "british thermal unit", "british thermal units")
_word("mile", "mile", "miles", "mi")
_word("kilometer", "kms", "kilometer", "kilometers", "kilometre", "kilometres")
_word("passenger * mile", "passenger-mile", "passenger-miles", "passenger mile",
      "passenger miles", "pmi")  # fmt: skip
_word("passenger * kilometer", "passenger-km", "passenger km", "passenger-kilometer",
      "passenger-kilometre", "passenger kilometres", "pkm")  # fmt: skip
_word("vehicle * mile", "vehicle-mile", "vehicle-miles", "vehicle mile", "vehicle miles")
_word("vehicle * kilometer", "vehicle-km", "vehicle km", "vehicle-kilometre", "vkm")
_word("short_ton * mile", "ton-mile", "ton-miles", "ton mile", "ton miles",
      "short ton-mile")  # fmt: skip
_word("metric_ton * kilometer", "tonne-km", "tonne km", "tonne-kilometre",
      "tonne-kilometer", "t-km", "tkm", "metric ton-km")  # fmt: skip
_word("scf", "scf", "standard cubic foot", "standard cubic feet")
_word("100 * scf", "ccf")
_word("1000 * scf", "mcf", "mscf")
_word("1e6 * scf", "mmcf", "mmscf")
_word("kilogram", "kgs", "kilogram", "kilograms")
_word("gram", "gram", "grams")
_word("metric_ton", "tonne", "tonnes", "metric ton", "metric tons")
_word("short_ton", "ton", "tons", "short ton", "short tons")
_word("pound", "lb", "lbs", "pound", "pounds")

_SYMBOLS_BY_LOWER: dict[str, dict[str, str]] = {}
for _spelling, _expression in _SYMBOLS.items():
    _SYMBOLS_BY_LOWER.setdefault(_spelling.lower(), {})[_spelling] = _expression


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
    ureg.define(f"btu_it = {BTU_IT_JOULES} * joule")
    ureg.define(f"us_therm = {US_THERM_MEGAJOULES} * megajoule")
    ureg.define(f"ec_therm = {EC_THERM_MEGAJOULES} * megajoule")
    return ureg


def normalise(spelling: str) -> str:
    """Whitespace (any Unicode space) collapsed to one space and trimmed; case kept."""
    return " ".join(spelling.split())


def _read(spelling: str) -> str | None:
    """The pint expression of a spelling; None when carbonlake has no such spelling.
    Raises UnitError when the spelling is ambiguous."""
    if spelling in _SYMBOLS:
        return _SYMBOLS[spelling]
    lower = spelling.lower()
    if lower in _WORDS:
        return _WORDS[lower]
    fits = _SYMBOLS_BY_LOWER.get(lower, {})
    if len(set(fits.values())) == 1:
        return next(iter(fits.values()))
    if fits:
        meanings = ", ".join(f"'{s}' ({e.replace('_', '-')})" for s, e in sorted(fits.items()))
        raise UnitError(
            f"unit '{spelling}' is ambiguous: SI prefixes are case-sensitive, and it could be "
            f"{meanings}; write the unit exactly"
        )
    return None


def parse(spelling: str) -> Any:
    """The quantity ``1 <unit>`` for a unit spelling; raises UnitError when unknown or
    ambiguous."""
    spelling = normalise(spelling)
    if not spelling:
        raise UnitError("no unit is given")
    ureg = registry()
    import pint

    alias = _read(spelling)
    try:
        if alias is not None:
            quantity = ureg.parse_expression(alias)
        elif re.fullmatch(r"[A-Za-z_]+", spelling):
            # Not a spelling of ours: a pint unit name written out in full
            # ("kilowatt_hour"); pint matches names case-sensitively, as SI does.
            quantity = ureg.Quantity(1.0, ureg.parse_units(spelling))
        else:
            raise UnitError(f"unit '{spelling}' is not a unit carbonlake knows")
    except (pint.errors.PintError, AttributeError, TypeError, SyntaxError, ValueError) as exc:
        raise UnitError(f"unit '{spelling}' is not a unit carbonlake knows") from exc
    return quantity


_KINDS = {
    "[mass] * [length] ** 2 / [time] ** 2": "energy",
    "[length] ** 3": "volume",
    "[length]": "distance",
    "[mass]": "mass",
    "[standard_gas_volume]": "standard gas volume",
    "[passenger] * [length]": "passenger distance",
    "[vehicle] * [length]": "vehicle distance",
    "[mass] * [length]": "freight (mass x distance)",
}
"""Readable names of the dimensions of the factor table's units."""


@functools.cache
def accepted_spellings(dimensionality: str) -> tuple[str, ...]:
    """Every spelling carbonlake accepts for units of one dimension (as ``str`` of a
    pint dimensionality), symbols first."""
    ureg = registry()
    found = [
        s
        for s, e in _SYMBOLS.items()
        if str(ureg.parse_expression(e).dimensionality) == dimensionality
    ]
    found += [
        s
        for s, e in _WORDS.items()
        if str(ureg.parse_expression(e).dimensionality) == dimensionality
    ]
    return tuple(found)


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
        target = parse(factor_unit)
    except UnitError as exc:
        return Conversion(None, f"the factor's {exc}")
    try:
        source = parse(record_unit)
    except UnitError as exc:
        dimensionality = str(target.dimensionality)
        accepted = ", ".join(accepted_spellings(dimensionality))
        kind = _KINDS.get(dimensionality, dimensionality)
        return Conversion(
            None,
            f"{exc}; the factor is per '{factor_unit}'; accepted spellings of {kind}: {accepted}",
        )
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
