"""Unit conversion with pint: spellings, domain units, one dimension only, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonlake.calculate.units import UnitError, conversion, convert

FACTOR_UNITS = [
    "gal (US)",
    "kWh",
    "kwH",
    "scf",
    "mile",
    "km",
    "passenger-mile",
    "passenger-km",
    "vehicle-mile",
    "ton-mile",
    "tonne-km",
]


@pytest.mark.parametrize(
    ("record_unit", "factor_unit", "multiplier"),
    [
        ("gal", "gal (US)", 1.0),
        ("gallon", "gal (US)", 1.0),
        ("US gal", "gal (US)", 1.0),
        ("L", "gal (US)", 1 / 3.785411784),
        ("litre", "gal (US)", 1 / 3.785411784),
        ("kWh", "kwH", 1.0),
        ("MWh", "kwH", 1000.0),
        ("GJ", "kWh", 1e9 / 3.6e6),
        ("therm", "kWh", 105.4804e6 / 3.6e6),
        ("km", "mile", 1 / 1.609344),
        ("mi", "km", 1.609344),
        ("passenger-km", "passenger-mile", 1 / 1.609344),
        ("tonne-km", "ton-mile", 1 / (0.90718474 * 1.609344)),
        ("mcf", "scf", 1000.0),
    ],
)
def test_conversions_within_one_dimension(
    record_unit: str, factor_unit: str, multiplier: float
) -> None:
    result = conversion(record_unit, factor_unit)
    assert result.reason is None
    assert result.multiplier == pytest.approx(multiplier, rel=1e-9)


@pytest.mark.parametrize(
    ("record_unit", "factor_unit", "words"),
    [
        ("kg", "gal (US)", ["'kg'", "'gal (US)'", "[mass]"]),
        ("vehicle-mile", "passenger-mile", ["[vehicle]", "[passenger]"]),
        ("m3", "scf", ["[standard_gas_volume]"]),
        ("kWh", "mile", ["'kWh'", "'mile'"]),
        ("bananas", "kWh", ["'bananas'", "not a unit"]),
        ("2 gal", "gal (US)", ["'2 gal'"]),
        ("", "gal (US)", ["no unit"]),
    ],
)
def test_impossible_conversions_name_both_units(
    record_unit: str, factor_unit: str, words: list[str]
) -> None:
    result = conversion(record_unit, factor_unit)
    assert result.multiplier is None
    assert result.reason is not None
    for word in words:
        assert word in result.reason
    with pytest.raises(UnitError):
        convert(1.0, record_unit, factor_unit)


PAIRS = [
    ("L", "gal (US)"),
    ("MWh", "kWh"),
    ("GJ", "therm"),
    ("km", "mile"),
    ("passenger-km", "passenger-mile"),
    ("tonne-km", "ton-mile"),
    ("mcf", "scf"),
]


@settings(max_examples=200, deadline=None)
@given(
    amount=st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False),
    pair=st.sampled_from(PAIRS),
)
def test_round_trip_returns_the_amount(amount: float, pair: tuple[str, str]) -> None:
    there = convert(amount, *pair)
    back = convert(there, pair[1], pair[0])
    assert back == pytest.approx(amount, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    amount=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    pair=st.sampled_from(PAIRS),
)
def test_conversion_is_linear(amount: float, pair: tuple[str, str]) -> None:
    assert convert(2 * amount, *pair) == pytest.approx(2 * convert(amount, *pair), rel=1e-12)


@pytest.mark.parametrize("unit", FACTOR_UNITS)
def test_every_factor_unit_of_the_table_is_known(unit: str) -> None:
    assert conversion(unit, unit).multiplier == pytest.approx(1.0)
