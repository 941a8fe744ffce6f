"""Unit spellings: which record units mean a factor's unit.

A record's ``units`` is accepted when it is a spelling of the factor's unit
(``gal`` for ``gal (US)``, ``kWh`` for ``kwH``). Converting between different
units of one dimension is not done here: a record whose unit is not a spelling
of the factor's unit fails with both units named, never a silent guess.
"""

from __future__ import annotations

import polars as pl

UNIT_ALIASES: dict[str, str] = {
    # volume (US liquid gallon, as the EPA factors use)
    "gal (us)": "gal",
    "gal": "gal",
    "gals": "gal",
    "gallon": "gal",
    "gallons": "gal",
    "us gal": "gal",
    "us gallon": "gal",
    "us gallons": "gal",
    "gal us": "gal",
    # energy
    "kwh": "kwh",
    "kilowatt-hour": "kwh",
    "kilowatt hour": "kwh",
    "kilowatt-hours": "kwh",
    "kilowatt hours": "kwh",
    # distance
    "mile": "mile",
    "miles": "mile",
    "mi": "mile",
    "km": "km",
    "kilometer": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometres": "km",
    # gas volume
    "scf": "scf",
    "standard cubic foot": "scf",
    "standard cubic feet": "scf",
    # activity units of the transport factors
    "passenger-mile": "passenger-mile",
    "passenger mile": "passenger-mile",
    "passenger-miles": "passenger-mile",
    "passenger-km": "passenger-km",
    "passenger km": "passenger-km",
    "vehicle-mile": "vehicle-mile",
    "vehicle mile": "vehicle-mile",
    "vehicle-miles": "vehicle-mile",
    "ton-mile": "ton-mile",
    "ton mile": "ton-mile",
    "ton-miles": "ton-mile",
    "tonne-km": "tonne-km",
    "tonne km": "tonne-km",
    "t-km": "tonne-km",
}


def unit_key_expr(units: pl.Expr) -> pl.Expr:
    """The canonical key of a unit spelling (lower case, spaces collapsed, aliases folded)."""
    normal = units.str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")
    return normal.replace(UNIT_ALIASES)


def unit_key(units: str) -> str:
    """The canonical key of one unit spelling."""
    normal = " ".join(units.strip().lower().split())
    return UNIT_ALIASES.get(normal, normal)
