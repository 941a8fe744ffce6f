"""The emission-factor library shipped with the package.

Built from ``data/emission-factors-ghgp-2022.csv`` (from the AWS "Guidance for
Carbon Data Lake on AWS", Apache-2.0; factor sources in its ``Source`` column:
EPA GHG Emission Factors Hub 2018, GHG Protocol cross-sector tools, UK
BEIS/DEFRA, Canada NIR 2018, Green-e 2018 residual mix).

The units trap, corrected on load: the header says "kg / unit" for every gas,
but in the 93 ``transport`` rows CH4 and N2O are **grams** per unit. Only
``co2 + (25*ch4 + 298*n2o)/1000`` reproduces those rows' own stated AR4 CO2e,
so the loader divides their CH4 and N2O by 1000. A consistency check then
recomputes CO2e from the gases for every row and refuses the table if any row
disagrees with its stated AR4/AR5 value, which is how the mix-up was found.

Empty gas cells mean "not given" (biogenic CO2 of biofuels, CH4/N2O of
residual-mix rows) and stay null here; they count as 0.0 in the arithmetic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import polars as pl

from .._exceptions import ConfigurationError
from .units import unit_key_expr

DEFAULT_FACTOR_SET = "ghgp-2022"
GRAM_GAS_CATEGORIES = ("transport",)
"""Categories whose CH4 and N2O the source table states in grams per unit."""

GWP = {
    "ar4": {"ch4": 25.0, "n2o": 298.0},
    "ar5": {"ch4": 28.0, "n2o": 265.0},
}
"""100-year global warming potentials (IPCC AR4 and AR5, as the GHG Protocol tables)."""

RELATIVE_TOLERANCE = 1e-4
"""Stated and recomputed CO2e may differ by this much (the source rounds its gases)."""
ABSOLUTE_TOLERANCE = 1e-6

_SOURCE_COLUMNS = {
    "scope": "scope",
    "category": "category",
    "lookup name": "activity",
    "CO2 Factor (kg / unit)": "co2_kg_per_unit",
    "CH4 Factor (kg / unit)": "ch4_kg_per_unit",
    "N2O Factor (kg / unit)": "n2o_kg_per_unit",
    "AR4 (kgCO2e)": "stated_ar4_kgco2e_per_unit",
    "AR5 (kgCO2e)": "stated_ar5_kgco2e_per_unit",
    "Units": "unit",
    "Source": "source",
}


@dataclass(frozen=True)
class FactorSet:
    """A named, versioned table of emission factors (kg per unit)."""

    name: str
    version: str
    factors: pl.DataFrame
    """One row per factor: factor_id, scope, category, activity, unit, unit_key,
    co2/ch4/n2o_kg_per_unit (null = not given), ar4/ar5_kgco2e_per_unit, source."""


def recomputed_co2e(gwp: dict[str, float]) -> pl.Expr:
    """CO2e per unit recomputed from the gases (not-given gases count as zero)."""
    return (
        pl.col("co2_kg_per_unit").fill_null(0.0)
        + gwp["ch4"] * pl.col("ch4_kg_per_unit").fill_null(0.0)
        + gwp["n2o"] * pl.col("n2o_kg_per_unit").fill_null(0.0)
    )


def inconsistent_rows(factors: pl.DataFrame) -> pl.DataFrame:
    """Rows whose stated AR4/AR5 CO2e disagrees with the one recomputed from the gases."""
    checks = []
    for gwp_set, gwp in GWP.items():
        stated = pl.col(f"stated_{gwp_set}_kgco2e_per_unit")
        again = recomputed_co2e(gwp)
        off = (stated - again).abs() > (ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * stated.abs())
        checks.append(
            factors.filter(stated.is_not_null() & off).select(
                "activity",
                "category",
                pl.lit(gwp_set.upper()).alias("gwp_set"),
                stated.alias("stated_kgco2e_per_unit"),
                again.alias("recomputed_kgco2e_per_unit"),
            )
        )
    return pl.concat(checks)


def from_source_csv(data: bytes, name: str) -> FactorSet:
    """A factor set from the CSV layout of the shared GHG Protocol table."""
    try:
        raw = pl.read_csv(data, infer_schema=False, encoding="utf8")
    except pl.exceptions.PolarsError as exc:
        raise ConfigurationError(f"factor table {name} is not a readable CSV: {exc}") from exc
    raw = raw.rename({c: c.lstrip("\ufeff").strip() for c in raw.columns})
    absent = [c for c in _SOURCE_COLUMNS if c not in raw.columns]
    if absent:
        raise ConfigurationError(f"factor table {name} lacks column(s) {', '.join(absent)}")
    numbers = [c for c in _SOURCE_COLUMNS.values() if c.endswith("per_unit")]
    frame = raw.select([pl.col(src).alias(dst) for src, dst in _SOURCE_COLUMNS.items()])
    frame = frame.with_columns(
        pl.col("scope").cast(pl.Int64, strict=False),
        *[pl.col(c).str.strip_chars().cast(pl.Float64, strict=False) for c in numbers],
    )
    grams = pl.col("category").is_in(GRAM_GAS_CATEGORIES)
    frame = frame.with_columns(
        pl.when(grams).then(pl.col(g) / 1000.0).otherwise(pl.col(g)).alias(g)
        for g in ("ch4_kg_per_unit", "n2o_kg_per_unit")
    )
    bad = inconsistent_rows(frame)
    if bad.height:
        first = bad.row(0, named=True)
        raise ConfigurationError(
            f"factor table {name}: {bad.height} CO2e value(s) disagree with the gases, first "
            f"{first['activity']!r} ({first['gwp_set']}: stated {first['stated_kgco2e_per_unit']}"
            f", recomputed {first['recomputed_kgco2e_per_unit']}); check the gas units"
        )
    frame = frame.with_columns(
        pl.coalesce(pl.col("stated_ar4_kgco2e_per_unit"), recomputed_co2e(GWP["ar4"])).alias(
            "ar4_kgco2e_per_unit"
        ),
        pl.coalesce(pl.col("stated_ar5_kgco2e_per_unit"), recomputed_co2e(GWP["ar5"])).alias(
            "ar5_kgco2e_per_unit"
        ),
        unit_key_expr(pl.col("unit")).alias("unit_key"),
        pl.concat_str(
            pl.col("category"),
            pl.lit("/"),
            pl.col("activity")
            .str.to_lowercase()
            .str.replace_all("[^a-z0-9]+", "-")
            .str.strip_chars("-"),
        ).alias("factor_id"),
    )
    duplicated = frame.filter(pl.struct("category", "activity").is_duplicated())
    if duplicated.height:
        raise ConfigurationError(
            f"factor table {name} has more than one factor for "
            f"{duplicated['category'][0]!r} / {duplicated['activity'][0]!r}"
        )
    version = hashlib.sha256(data).hexdigest()[:12]
    return FactorSet(name=name, version=version, factors=frame)


_cache: dict[str, FactorSet] = {}


def load_factor_set(name: str = "") -> FactorSet:
    """The factor set called ``name`` (empty: the shipped default)."""
    name = name or DEFAULT_FACTOR_SET
    if name != DEFAULT_FACTOR_SET:
        raise ConfigurationError(
            f"[calculate] factor_set {name!r} is unknown; the available set is "
            f"{DEFAULT_FACTOR_SET!r}"
        )
    if name not in _cache:
        data = (
            resources.files("carbonlake")
            .joinpath("data/emission-factors-ghgp-2022.csv")
            .read_bytes()
        )
        _cache[name] = from_source_csv(data, name)
    return _cache[name]
