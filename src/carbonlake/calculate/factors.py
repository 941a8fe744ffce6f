"""The emission-factor library: versioned factor sets, their formats and checks.

A factor set has a name and a version (the first 12 hex digits of the SHA-256
of its normalised content), so the same factors always have the same version
and an import never edits a version in place. Every factor has a stable id
(``category/activity-slug``), scope, category, activity, unit, CO2/CH4/N2O in
kg per unit (null = "not given", distinct from a measured zero) and a source.

The shipped set ``ghgp-2022`` is built from ``data/emission-factors-ghgp-2022.csv``
(from the AWS "Guidance for Carbon Data Lake on AWS", Apache-2.0; factor
sources in its ``Source`` column). **The units trap, corrected on load:** the
header says "kg / unit" for every gas, but the 93 ``transport`` rows state CH4
and N2O in **grams** per unit: only ``co2 + (25*ch4 + 298*n2o)/1000``
reproduces those rows' own AR4 CO2e. The shipped set is read with
``grams_categories=("transport",)``; the consistency check below (run on every
load and import) recomputes CO2e from the gases and refuses a table whose
stated CO2e disagrees, which is how the mix-up shows.

File formats accepted by :func:`read_factor_file`:

- ``ghgp-csv``: the CSV layout of the shipped table (``scope, category, lookup
  name, CO2 Factor (kg / unit), CH4 ..., N2O ..., AR4 (kgCO2e), AR5 (kgCO2e),
  Units, Source``);
- ``original-json``: the original system's factor model, a JSON list of
  ``{category, activity, scope, emissions_factor_standards: {ghg:
  {coefficients: {co2_factor, ch4_factor, n2o_factor, AR4-kgco2e, AR5-kgco2e,
  units}, source}}}``;
- ``carbonlake-json``: our own format with explicit gas units, documented in
  ``docs/factors.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from .._exceptions import ConfigurationError
from . import units
from .names import name_key, name_key_expr

if TYPE_CHECKING:
    from ..database import Database

DEFAULT_FACTOR_SET = "ghgp-2022"
SHIPPED_GRAMS_CATEGORIES = ("transport",)
"""Categories of the shipped table whose CH4 and N2O are grams per unit."""

GWP: dict[str, dict[str, float]] = {
    "ar4": {"ch4": 25.0, "n2o": 298.0},
    "ar5": {"ch4": 28.0, "n2o": 265.0},
}
"""100-year GWPs (IPCC AR4 and AR5, as in the GHG Protocol tables)."""

AR6_GWP = {"ch4_fossil": 29.8, "ch4_non_fossil": 27.0, "n2o": 273.0}
"""AR6 GWP-100 (GHG Protocol, Global Warming Potential Values, August 2024)."""

CH4_BASES: dict[str, float] = {
    "fugitive-fossil": AR6_GWP["ch4_fossil"],
    "combustion": AR6_GWP["ch4_non_fossil"],
    "non-fossil": AR6_GWP["ch4_non_fossil"],
}
"""A factor's methane basis and the AR6 GWP it takes. The fossil value (29.8)
includes the CO2 the methane becomes when it oxidises in the air, so it is only for
methane whose carbon no CO2 factor counts: fugitive fossil methane (leaks, vents).
Combustion methane (its carbon is already in the fuel's CO2 factor) and non-fossil
methane take 27.0. Set per factor on import; the default is ``combustion``, or
``non-fossil`` for a factor whose only CO2 is biogenic."""

SCOPE2_METHODS = ("location-based", "market-based")
"""The two scope 2 methods of the GHG Protocol Scope 2 Guidance: reported side by
side, never added."""

SHIPPED_ATTRIBUTES = "data/ghgp-2022-attributes.json"
"""The shipped table's attributes (scope 2 methods, biogenic CO2, methane basis)."""

RELATIVE_TOLERANCE = 1e-4
"""Stated and recomputed CO2e may differ by this much (the source rounds its gases)."""
ABSOLUTE_TOLERANCE = 1e-6

FACTOR_COLUMNS: dict[str, pl.DataType] = {
    "scope": pl.Int64(),
    "category": pl.String(),
    "activity": pl.String(),
    "unit": pl.String(),
    "co2_kg_per_unit": pl.Float64(),
    "ch4_kg_per_unit": pl.Float64(),
    "n2o_kg_per_unit": pl.Float64(),
    "stated_ar4_kgco2e_per_unit": pl.Float64(),
    "stated_ar5_kgco2e_per_unit": pl.Float64(),
    "source": pl.String(),
    "biogenic_co2_kg_per_unit": pl.Float64(),
    "ch4_basis": pl.String(),
    "scope2_method": pl.String(),
    "scope3_category": pl.Int64(),
    "source_origin": pl.String(),
    "last_updated": pl.String(),
    "notes": pl.String(),
    "original_fields": pl.String(),
}
"""The normalised columns every format is read into. ``biogenic_co2_kg_per_unit`` is
CO2 from biomass, reported outside the scopes; ``original_fields`` keeps, as JSON,
every field of an imported entry that has no column of its own."""

_GHGP_CSV_COLUMNS = {
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
    """One row per factor: FACTOR_COLUMNS plus factor_id, ar4/ar5/ar6_kgco2e_per_unit,
    ar6_ch4_gwp and the matching keys category_key and activity_key (names.name_key)."""

    @property
    def label(self) -> str:
        """``name@version``, as settings and commands accept it."""
        return f"{self.name}@{self.version}"


class FactorTableError(ConfigurationError):
    """A factor table whose stated CO2e disagrees with its gases."""

    def __init__(self, origin: str, inconsistent: pl.DataFrame) -> None:
        self.origin = origin
        self.inconsistent = inconsistent
        first = inconsistent.row(0, named=True)
        hint = ""
        if inconsistent["grams_would_match"].all():
            categories = ", ".join(sorted(set(inconsistent["category"].to_list())))
            hint = (
                f" Every one of them matches if its CH4 and N2O are grams per unit: "
                f"import with --grams-category for {categories} if that is what the source means."
            )
        super().__init__(
            f"factor table {origin}: {inconsistent.height} stated CO2e value(s) disagree with "
            f"the gases, first {first['activity']!r} ({first['gwp_set']}: stated "
            f"{first['stated_kgco2e_per_unit']}, recomputed "
            f"{first['recomputed_kgco2e_per_unit']}).{hint}"
        )


# -- reading formats ----------------------------------------------------------------


def _numbers(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.with_columns(
        pl.lit(None, dtype=pl.String).alias(c) for c in FACTOR_COLUMNS if c not in frame.columns
    )
    numeric = [c for c, t in FACTOR_COLUMNS.items() if t == pl.Float64()]
    texts = ("category", "activity", "unit", "ch4_basis", "scope2_method")
    return frame.with_columns(
        *[
            pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)
            for c in ("scope", "scope3_category")
        ],
        *[
            pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
            for c in numeric
        ],
        *[
            pl.when(pl.col(c).cast(pl.String).str.strip_chars() != "")
            .then(pl.col(c).cast(pl.String).str.strip_chars())
            .alias(c)
            for c in texts
        ],
        # An empty text cell is "not given", as an empty number cell is.
        *[
            pl.when(pl.col(c).cast(pl.String).str.strip_chars() != "")
            .then(pl.col(c).cast(pl.String))
            .alias(c)
            for c in ("source", "source_origin", "last_updated", "notes", "original_fields")
        ],
    ).select(list(FACTOR_COLUMNS))


def _grams_to_kg(frame: pl.DataFrame, grams_categories: tuple[str, ...]) -> pl.DataFrame:
    if not grams_categories:
        return frame
    grams = pl.col("category").is_in(list(grams_categories))
    return frame.with_columns(
        pl.when(grams).then(pl.col(g) / 1000.0).otherwise(pl.col(g)).alias(g)
        for g in ("ch4_kg_per_unit", "n2o_kg_per_unit")
    )


def read_ghgp_csv(data: bytes, origin: str, grams_categories: tuple[str, ...] = ()) -> pl.DataFrame:
    """Factors from the CSV layout of the shipped GHG Protocol table."""
    try:
        raw = pl.read_csv(data, infer_schema=False, encoding="utf8")
    except pl.exceptions.PolarsError as exc:
        raise ConfigurationError(f"factor table {origin} is not a readable CSV: {exc}") from exc
    raw = raw.rename({c: c.lstrip("\ufeff").strip() for c in raw.columns})
    absent = [c for c in _GHGP_CSV_COLUMNS if c not in raw.columns]
    if absent:
        raise ConfigurationError(
            f"factor table {origin} lacks column(s) {', '.join(absent)} of the GHG Protocol "
            "CSV layout"
        )
    frame = raw.select([pl.col(src).alias(dst) for src, dst in _GHGP_CSV_COLUMNS.items()])
    return _grams_to_kg(_numbers(frame), grams_categories)


_ORIGINAL_COEFFICIENTS = {
    "co2_factor": "co2_kg_per_unit",
    "ch4_factor": "ch4_kg_per_unit",
    "n2o_factor": "n2o_kg_per_unit",
    "biofuel_co2": "biogenic_co2_kg_per_unit",
    "AR4-kgco2e": "stated_ar4_kgco2e_per_unit",
    "AR4_kgco2e": "stated_ar4_kgco2e_per_unit",
    "AR5-kgco2e": "stated_ar5_kgco2e_per_unit",
    "AR5_kgco2e": "stated_ar5_kgco2e_per_unit",
    "units": "unit",
}
"""The original factor model's coefficients and the columns they fill."""
_ORIGINAL_GHG_FIELDS = ("source", "source_origin", "last_updated", "notes")
"""Fields of the original's ``emissions_factor_standards.ghg`` kept in a column each."""


def _original_row(item: Any) -> dict[str, Any]:
    """One entry of the original factor model as a row; every field without a column
    of its own goes, as JSON, to ``original_fields``."""
    standards = item["emissions_factor_standards"]
    ghg = standards["ghg"]
    coefficients = ghg["coefficients"]
    row: dict[str, Any] = {
        "scope": item.get("scope"),
        "category": item["category"],
        "activity": item["activity"],
        "unit": coefficients["units"],
    }
    for key, column in _ORIGINAL_COEFFICIENTS.items():
        if key in coefficients and row.get(column) is None:
            row[column] = coefficients[key]
    for field in _ORIGINAL_GHG_FIELDS:
        row[field] = ghg.get(field)
    rest: dict[str, Any] = {
        k: v
        for k, v in item.items()
        if k not in ("scope", "category", "activity", "emissions_factor_standards")
    }
    rest_coefficients = {k: v for k, v in coefficients.items() if k not in _ORIGINAL_COEFFICIENTS}
    rest_ghg = {k: v for k, v in ghg.items() if k not in ("coefficients", *_ORIGINAL_GHG_FIELDS)}
    if rest_coefficients:
        rest_ghg["coefficients"] = rest_coefficients
    other_standards = {k: v for k, v in standards.items() if k != "ghg"}
    if rest_ghg:
        rest["ghg"] = rest_ghg
    if other_standards:
        rest["emissions_factor_standards"] = other_standards
    row["original_fields"] = json.dumps(rest, sort_keys=True) if rest else None
    return row


def read_original_json(
    document: Any, origin: str, grams_categories: tuple[str, ...] = ()
) -> pl.DataFrame:
    """Factors from the original system's JSON factor model, every field kept:
    ``source``, ``source_origin``, ``last_updated`` and ``notes`` in columns of their
    own, ``biofuel_co2`` as biogenic CO2, anything else in ``original_fields``."""
    rows = []
    for index, item in enumerate(document):
        try:
            rows.append(_original_row(item))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"factor file {origin}: entry {index} lacks {exc} of the original factor model "
                "(category, activity, emissions_factor_standards.ghg.coefficients.units)"
            ) from exc
    frame = pl.DataFrame(
        [{k: None if row.get(k) is None else str(row[k]) for k in FACTOR_COLUMNS} for row in rows],
        schema=dict.fromkeys(FACTOR_COLUMNS, pl.String),
    )
    return _grams_to_kg(_numbers(frame), grams_categories)


def _kilograms(value: float, mass_unit: str, origin: str, index: int, gas: str) -> float:
    try:
        return units.magnitude_in(value * units.parse(mass_unit), "kilogram")
    except units.UnitError as exc:
        raise ConfigurationError(
            f"factor file {origin}: factor {index} gives {gas} in {mass_unit!r}, which is not "
            "a unit of mass (use kg, g, t or lb)"
        ) from exc


def read_carbonlake_json(document: dict[str, Any], origin: str) -> pl.DataFrame:
    """Factors from carbonlake's own format, where every gas states its mass unit."""
    rows = []
    for index, item in enumerate(document.get("factors") or []):
        try:
            row: dict[str, Any] = {
                "scope": item.get("scope"),
                "category": item["category"],
                "activity": item["activity"],
                "unit": item["unit"],
                "source": item.get("source"),
                "stated_ar4_kgco2e_per_unit": item.get("ar4_kgco2e_per_unit"),
                "stated_ar5_kgco2e_per_unit": item.get("ar5_kgco2e_per_unit"),
                **{
                    key: item.get(key)
                    for key in (
                        "ch4_basis",
                        "scope2_method",
                        "scope3_category",
                        "source_origin",
                        "last_updated",
                        "notes",
                    )
                },
            }
            for gas in ("co2", "ch4", "n2o", "biogenic_co2"):
                value = item.get(gas)
                if value is None:
                    row[f"{gas}_kg_per_unit"] = None
                    continue
                row[f"{gas}_kg_per_unit"] = _kilograms(
                    float(value["value"]), str(value["unit"]), origin, index, gas
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"factor file {origin}: factor {index} is incomplete or malformed ({exc}); "
                "see docs/factors.md for the format"
            ) from exc
        rows.append(row)
    if not rows:
        raise ConfigurationError(f"factor file {origin} has no 'factors'")
    frame = pl.DataFrame(
        [{k: None if row.get(k) is None else str(row[k]) for k in FACTOR_COLUMNS} for row in rows],
        schema=dict.fromkeys(FACTOR_COLUMNS, pl.String),
    )
    return _numbers(frame)


def read_factor_file(
    path: Path, grams_categories: tuple[str, ...] = ()
) -> tuple[pl.DataFrame, str]:
    """Read a factor file in any accepted format; returns (normalised rows, format name)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigurationError(f"factor file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigurationError(f"factor file {path} is a directory") from exc
    if path.suffix.lower() == ".json" or data.lstrip()[:1] in (b"[", b"{"):
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"factor file {path} is not valid JSON: {exc}") from exc
        if isinstance(document, dict) and str(document.get("format", "")).startswith(
            "carbonlake-factors"
        ):
            if grams_categories:
                raise ConfigurationError(
                    "--grams-category does not apply to the carbonlake format: it states "
                    "each gas's unit"
                )
            return read_carbonlake_json(document, str(path)), "carbonlake-json"
        if isinstance(document, list):
            return read_original_json(document, str(path), grams_categories), "original-json"
        raise ConfigurationError(
            f"factor file {path}: JSON is neither the original factor model (a list) nor the "
            'carbonlake format ({"format": "carbonlake-factors/1", "factors": [...]})'
        )
    return read_ghgp_csv(data, str(path), grams_categories), "ghgp-csv"


# -- checking and building --------------------------------------------------------------


def recomputed_co2e(gwp: dict[str, float], scale: float = 1.0) -> pl.Expr:
    """CO2e per unit recomputed from the gases (not-given gases count as zero)."""
    return pl.col("co2_kg_per_unit").fill_null(0.0) + scale * (
        gwp["ch4"] * pl.col("ch4_kg_per_unit").fill_null(0.0)
        + gwp["n2o"] * pl.col("n2o_kg_per_unit").fill_null(0.0)
    )


def _off(stated: pl.Expr, again: pl.Expr) -> pl.Expr:
    return (stated - again).abs() > (ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * stated.abs())


def inconsistent_rows(factors: pl.DataFrame) -> pl.DataFrame:
    """Rows whose stated AR4/AR5 CO2e disagrees with the CO2e recomputed from the gases.

    ``grams_would_match`` says whether reading CH4 and N2O as grams would fix the row.
    """
    checks = []
    for gwp_set, gwp in GWP.items():
        stated = pl.col(f"stated_{gwp_set}_kgco2e_per_unit")
        again = recomputed_co2e(gwp)
        checks.append(
            factors.filter(stated.is_not_null() & _off(stated, again)).select(
                "activity",
                "category",
                pl.lit(gwp_set.upper()).alias("gwp_set"),
                stated.alias("stated_kgco2e_per_unit"),
                again.alias("recomputed_kgco2e_per_unit"),
                (~_off(stated, recomputed_co2e(gwp, 1e-3))).alias("grams_would_match"),
            )
        )
    return pl.concat(checks)


def _check(frame: pl.DataFrame, origin: str) -> None:
    missing = frame.filter(
        pl.col("category").is_null() | pl.col("activity").is_null() | pl.col("unit").is_null()
    )
    if missing.height:
        raise ConfigurationError(
            f"factor table {origin}: {missing.height} factor(s) lack category, activity or unit"
        )
    for column in FACTOR_COLUMNS:
        if column.endswith("_per_unit"):
            negative = frame.filter(pl.col(column) < 0)
            if negative.height:
                raise ConfigurationError(
                    f"factor table {origin}: {column} of {negative['activity'][0]!r} is negative"
                )
    bad_units = [u for u in frame["unit"].unique().to_list() if not _known_unit(u)]
    if bad_units:
        raise ConfigurationError(
            f"factor table {origin}: unit(s) {', '.join(map(repr, bad_units))} are not units "
            "carbonlake knows"
        )
    _check_attributes(frame, origin)
    keys = frame.with_columns(
        name_key_expr(pl.col("category")).alias("__category_key"),
        name_key_expr(pl.col("activity")).alias("__activity_key"),
    )
    duplicated = keys.filter(pl.struct("__category_key", "__activity_key").is_duplicated())
    if duplicated.height:
        first = duplicated.filter(
            (pl.col("__category_key") == duplicated["__category_key"][0])
            & (pl.col("__activity_key") == duplicated["__activity_key"][0])
        )
        spellings = "; ".join(
            f"{c!r} / {a!r}" for c, a in zip(first["category"], first["activity"], strict=True)
        )
        raise ConfigurationError(
            f"factor table {origin} has more than one factor for the same category and "
            f"activity once spaces and case are ignored ({spellings}); records could not tell "
            "them apart. Keep one, or rename the other."
        )
    bad = inconsistent_rows(frame)
    if bad.height:
        raise FactorTableError(origin, bad)


def _check_attributes(frame: pl.DataFrame, origin: str) -> None:
    """The attribute columns hold only the values docs/factors.md lists."""
    problems = [
        (
            ~pl.col("ch4_basis").is_in(list(CH4_BASES)),
            f"ch4_basis must be one of {', '.join(CH4_BASES)}",
        ),
        (
            ~pl.col("scope2_method").is_in(list(SCOPE2_METHODS)),
            f"scope2_method must be one of {', '.join(SCOPE2_METHODS)}",
        ),
        (
            pl.col("scope2_method").is_not_null() & (pl.col("scope") != 2),
            "scope2_method is given for a factor that is not scope 2",
        ),
        (
            ~pl.col("scope3_category").is_between(1, 15),
            "scope3_category must be a GHG Protocol scope 3 category, 1 to 15",
        ),
        (
            pl.col("scope3_category").is_not_null() & (pl.col("scope") != 3),
            "scope3_category is given for a factor that is not scope 3",
        ),
    ]
    for condition, message in problems:
        bad = frame.filter(condition.fill_null(False))
        if bad.height:
            row = bad.row(0, named=True)
            raise ConfigurationError(
                f"factor table {origin}: {row['category']!r} / {row['activity']!r}: {message} "
                f"({bad.height} factor(s))"
            )


def require_scope2_methods(frame: pl.DataFrame, origin: str) -> None:
    """Refuse a table with a scope 2 factor that is neither location- nor market-based:
    the two are reported apart, so every scope 2 factor must say which it is."""
    unknown = frame.filter((pl.col("scope") == 2) & pl.col("scope2_method").is_null())
    if unknown.height:
        categories = ", ".join(sorted(set(unknown["category"].to_list())))
        raise ConfigurationError(
            f"factor table {origin}: {unknown.height} scope 2 factor(s) do not say whether they "
            f"are location-based or market-based (categories: {categories}). Say which with "
            "--location-based CATEGORY / --market-based CATEGORY (or an --attributes file, "
            "or scope2_method per factor in carbonlake's format); the GHG Protocol reports "
            "the two side by side, never added."
        )


def _known_unit(spelling: str) -> bool:
    try:
        units.parse(spelling)
    except units.UnitError:
        return False
    return True


# -- attributes ---------------------------------------------------------------------


@dataclass(frozen=True)
class FactorAttributes:
    """What a factor table may leave unsaid, given on import: which scope 2 categories
    are location- or market-based, and per factor its biogenic CO2, methane basis and
    scope 3 category (``factors`` entries name ``category`` and ``activity``)."""

    scope2_methods: dict[str, str]
    factors: tuple[dict[str, Any], ...] = ()

    def merged(self, other: FactorAttributes) -> FactorAttributes:
        """These attributes with ``other``'s added (``other`` wins on a clash)."""
        return FactorAttributes(
            {**self.scope2_methods, **other.scope2_methods}, self.factors + other.factors
        )


NO_ATTRIBUTES = FactorAttributes({})


def read_attributes(data: bytes, origin: str) -> FactorAttributes:
    """Attributes from a ``carbonlake-factor-attributes/1`` JSON document."""
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"attributes file {origin} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != (
        "carbonlake-factor-attributes/1"
    ):
        raise ConfigurationError(
            f"attributes file {origin}: expected "
            '{"format": "carbonlake-factor-attributes/1", ...} (docs/factors.md)'
        )
    methods = document.get("scope2_methods") or {}
    entries = document.get("factors") or []
    if not isinstance(methods, dict) or not isinstance(entries, list):
        raise ConfigurationError(
            f"attributes file {origin}: scope2_methods must be an object and factors a list"
        )
    for category, method in methods.items():
        if method not in SCOPE2_METHODS:
            raise ConfigurationError(
                f"attributes file {origin}: scope 2 method {method!r} of {category!r} is not "
                f"one of {', '.join(SCOPE2_METHODS)}"
            )
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "category" not in entry or "activity" not in entry:
            raise ConfigurationError(
                f"attributes file {origin}: factors[{index}] must name category and activity"
            )
        unknown = set(entry) - {
            "category",
            "activity",
            "biogenic_co2",
            "ch4_basis",
            "scope3_category",
            "notes",
        }
        if unknown:
            raise ConfigurationError(
                f"attributes file {origin}: factors[{index}] has unknown field(s) "
                f"{', '.join(sorted(unknown))}"
            )
    return FactorAttributes(
        {str(k): str(v) for k, v in methods.items()}, tuple(dict(e) for e in entries)
    )


def read_attributes_file(path: Path) -> FactorAttributes:
    """Attributes from a file (see :func:`read_attributes`)."""
    try:
        return read_attributes(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigurationError(f"attributes file {path} cannot be read: {exc}") from exc


def apply_attributes(
    frame: pl.DataFrame, attributes: FactorAttributes, origin: str
) -> pl.DataFrame:
    """Factor rows with the attributes set; a category or factor the attributes name
    that the table lacks is an error (a typo would otherwise change nothing)."""
    frame = frame.with_columns(name_key_expr(pl.col("category")).alias("__category_key"))
    scope2 = frame.filter(pl.col("scope") == 2)
    for category, method in attributes.scope2_methods.items():
        key = name_key(category)
        if not scope2.filter(pl.col("__category_key") == key).height:
            raise ConfigurationError(
                f"factor table {origin}: no scope 2 factor has category {category!r}, which "
                f"is declared {method}"
            )
        frame = frame.with_columns(
            pl.when((pl.col("scope") == 2) & (pl.col("__category_key") == key))
            .then(pl.lit(method))
            .otherwise(pl.col("scope2_method"))
            .alias("scope2_method")
        )
    frame = frame.with_columns(name_key_expr(pl.col("activity")).alias("__activity_key"))
    for index, entry in enumerate(attributes.factors):
        where = (pl.col("__category_key") == name_key(str(entry["category"]))) & (
            pl.col("__activity_key") == name_key(str(entry["activity"]))
        )
        if not frame.filter(where).height:
            raise ConfigurationError(
                f"factor table {origin}: the attributes name {entry['category']!r} / "
                f"{entry['activity']!r} (factors[{index}]), which the table does not have"
            )
        values: dict[str, Any] = {}
        if "biogenic_co2" in entry:
            amount = entry["biogenic_co2"]
            try:
                values["biogenic_co2_kg_per_unit"] = _kilograms(
                    float(amount["value"]), str(amount["unit"]), origin, index, "biogenic_co2"
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"factor table {origin}: biogenic_co2 of factors[{index}] must be "
                    '{"value": NUMBER, "unit": "kg"}'
                ) from exc
        for key in ("ch4_basis", "scope3_category", "notes"):
            if key in entry:
                values[key] = entry[key]
        frame = frame.with_columns(
            pl.when(where)
            .then(pl.lit(value, dtype=FACTOR_COLUMNS[key]))
            .otherwise(pl.col(key))
            .alias(key)
            for key, value in values.items()
        )
    return frame.drop("__category_key", "__activity_key")


def content_version(frame: pl.DataFrame) -> str:
    """The version of a factor table: a hash of its normalised, sorted content."""
    canonical = frame.select(list(FACTOR_COLUMNS)).sort("category", "activity")
    digest = hashlib.sha256(json.dumps(canonical.rows(), default=str).encode())
    return digest.hexdigest()[:12]


def _with_defaults(frame: pl.DataFrame) -> pl.DataFrame:
    """The methane basis where the table leaves it out: ``non-fossil`` for a factor
    whose only CO2 is biogenic, ``combustion`` for every other."""
    biogenic_only = (
        pl.col("co2_kg_per_unit").is_null() & pl.col("biogenic_co2_kg_per_unit").is_not_null()
    )
    return frame.with_columns(
        pl.coalesce(
            pl.col("ch4_basis"),
            pl.when(biogenic_only).then(pl.lit("non-fossil")).otherwise(pl.lit("combustion")),
        ).alias("ch4_basis")
    )


def build_factor_set(
    frame: pl.DataFrame, name: str, origin: str, version: str | None = None
) -> FactorSet:
    """Check normalised factor rows and derive ids, keys and CO2e per unit.

    ``version`` is a stored set's own version (its content hash when it was stored);
    a new table gets the hash of its content.
    """
    frame = frame.with_columns(
        pl.lit(None, dtype=t).alias(c) for c, t in FACTOR_COLUMNS.items() if c not in frame.columns
    )
    frame = _with_defaults(frame.select([pl.col(c).cast(t) for c, t in FACTOR_COLUMNS.items()]))
    _check(frame, origin)
    ch4_gwp = pl.col("ch4_basis").replace_strict(CH4_BASES, return_dtype=pl.Float64)
    derived = frame.with_columns(
        pl.concat_str(
            pl.col("category"),
            pl.lit("/"),
            pl.col("activity")
            .str.to_lowercase()
            .str.replace_all("[^a-z0-9]+", "-")
            .str.strip_chars("-"),
        ).alias("factor_id"),
        # The source's stated CO2e where given (the original's test vectors use it),
        # recomputed from the gases otherwise; both agree within RELATIVE_TOLERANCE.
        pl.coalesce(pl.col("stated_ar4_kgco2e_per_unit"), recomputed_co2e(GWP["ar4"])).alias(
            "ar4_kgco2e_per_unit"
        ),
        pl.coalesce(pl.col("stated_ar5_kgco2e_per_unit"), recomputed_co2e(GWP["ar5"])).alias(
            "ar5_kgco2e_per_unit"
        ),
        ch4_gwp.alias("ar6_ch4_gwp"),
        (
            pl.col("co2_kg_per_unit").fill_null(0.0)
            + ch4_gwp * pl.col("ch4_kg_per_unit").fill_null(0.0)
            + AR6_GWP["n2o"] * pl.col("n2o_kg_per_unit").fill_null(0.0)
        ).alias("ar6_kgco2e_per_unit"),
        name_key_expr(pl.col("category")).alias("category_key"),
        name_key_expr(pl.col("activity")).alias("activity_key"),
    )
    if derived["factor_id"].is_duplicated().any():
        clash = derived.filter(pl.col("factor_id").is_duplicated())["activity"].to_list()
        raise ConfigurationError(
            f"factor table {origin}: activities {clash[:4]} give the same factor id"
        )
    return FactorSet(name=name, version=version or content_version(frame), factors=derived)


@functools.cache
def shipped_attributes() -> FactorAttributes:
    """The attributes of the shipped table (``data/ghgp-2022-attributes.json``)."""
    data = resources.files("carbonlake").joinpath(SHIPPED_ATTRIBUTES).read_bytes()
    return read_attributes(data, "the shipped ghgp-2022-attributes.json")


@functools.cache
def shipped_factor_set() -> FactorSet:
    """The factor set shipped with the package (transport gases corrected to kg, its
    attributes applied)."""
    data = (
        resources.files("carbonlake").joinpath("data/emission-factors-ghgp-2022.csv").read_bytes()
    )
    origin = "the shipped emission-factors-ghgp-2022.csv"
    frame = read_ghgp_csv(data, origin, SHIPPED_GRAMS_CATEGORIES)
    frame = apply_attributes(frame, shipped_attributes(), origin)
    require_scope2_methods(frame, origin)
    return build_factor_set(frame, DEFAULT_FACTOR_SET, origin)


def load_factor_set(selector: str = "", database: Database | None = None) -> FactorSet:
    """The factor set a ``[calculate] factor_set`` value names.

    ``""`` is the shipped set; ``NAME`` the newest imported version of NAME (or the
    shipped set for its own name); ``NAME@VERSION`` or a bare ``VERSION`` one exact
    version.
    """
    shipped = shipped_factor_set()
    selector = selector.strip()
    if not selector or selector in (shipped.name, shipped.version, shipped.label):
        return shipped
    name, _, version = selector.partition("@")
    if database is not None:
        found = database.find_factor_set(name, version or None)
        if found is not None:
            stored_name, stored_version, rows = found
            frame = pl.DataFrame(rows, schema=FACTOR_COLUMNS, orient="row")
            return build_factor_set(
                frame, stored_name, f"{stored_name}@{stored_version}", stored_version
            )
    known = ["ghgp-2022 (shipped)"]
    if database is not None:
        known += [f"{s['name']}@{s['version']}" for s in database.factor_sets()]
    raise ConfigurationError(
        f"factor set {selector!r} is unknown; available: {', '.join(known)}. "
        "Import one with `carbonlake factors import FILE`."
    )


def import_factor_file(
    path: Path,
    database: Database,
    name: str | None = None,
    grams_categories: tuple[str, ...] = (),
    attributes: FactorAttributes = NO_ATTRIBUTES,
) -> tuple[FactorSet, bool]:
    """Check and store a factor file as a new version; returns (set, newly created).

    ``attributes`` say what the file leaves out (scope 2 methods, biogenic CO2,
    methane basis, scope 3 categories); a scope 2 factor must end up with a method.
    """
    frame, fmt = read_factor_file(path, grams_categories)
    frame = apply_attributes(frame, attributes, str(path))
    factor_set = build_factor_set(frame, name or path.stem, str(path))
    require_scope2_methods(factor_set.factors, str(path))
    created = database.insert_factor_set(
        factor_set.name,
        factor_set.version,
        fmt,
        str(path),
        factor_set.factors.select(list(FACTOR_COLUMNS)).rows(),
    )
    return factor_set, created


def validate_factor_file(
    path: Path,
    grams_categories: tuple[str, ...] = (),
    attributes: FactorAttributes = NO_ATTRIBUTES,
) -> tuple[int, pl.DataFrame]:
    """(number of factors, inconsistent rows) of a factor file; the rows are empty when
    every stated CO2e matches the gases. Other problems raise ConfigurationError."""
    frame, _ = read_factor_file(path, grams_categories)
    frame = apply_attributes(frame, attributes, str(path))
    try:
        build_factor_set(frame, path.stem, str(path))
    except FactorTableError as exc:
        return frame.height, exc.inconsistent
    return frame.height, inconsistent_rows(frame.head(0))


def describe_factor(factor: dict[str, Any], factor_set: FactorSet) -> dict[str, Any]:
    """A factor as a JSON-ready dict, with its set, version and which gases are not given."""
    return {
        "factor_id": factor["factor_id"],
        "factor_set": factor_set.name,
        "factor_version": factor_set.version,
        "scope": factor["scope"],
        "category": factor["category"],
        "activity": factor["activity"],
        "unit": factor["unit"],
        "co2_kg_per_unit": factor["co2_kg_per_unit"],
        "ch4_kg_per_unit": factor["ch4_kg_per_unit"],
        "n2o_kg_per_unit": factor["n2o_kg_per_unit"],
        "gases_not_given": [
            gas for gas in ("co2", "ch4", "n2o") if factor[f"{gas}_kg_per_unit"] is None
        ],
        "ar4_kgco2e_per_unit": factor["ar4_kgco2e_per_unit"],
        "ar5_kgco2e_per_unit": factor["ar5_kgco2e_per_unit"],
        "ar6_kgco2e_per_unit": factor["ar6_kgco2e_per_unit"],
        "biogenic_co2_kg_per_unit": factor["biogenic_co2_kg_per_unit"],
        "scope2_method": factor["scope2_method"],
        "scope3_category": factor["scope3_category"],
        "ch4_basis": factor["ch4_basis"],
        "gwp": gwp_values(factor["ar6_ch4_gwp"]),
        "source": factor["source"],
        "source_origin": factor["source_origin"],
        "last_updated": factor["last_updated"],
        "notes": factor["notes"],
        "original_fields": (
            json.loads(factor["original_fields"]) if factor["original_fields"] else None
        ),
    }


def gwp_values(ar6_ch4_gwp: float) -> dict[str, dict[str, float]]:
    """The GWP-100 values a result of a factor uses, per GWP set."""
    return {
        "ar4": dict(GWP["ar4"]),
        "ar5": dict(GWP["ar5"]),
        "ar6": {"ch4": ar6_ch4_gwp, "n2o": AR6_GWP["n2o"]},
    }


def find_factors(factor_set: FactorSet, search: str = "") -> list[dict[str, Any]]:
    """Factors whose id, category or activity contains ``search`` (case-insensitive)."""
    frame = factor_set.factors
    if search:
        needle = search.lower()
        frame = frame.filter(
            pl.col("factor_id").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("activity").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("category").str.to_lowercase().str.contains(needle, literal=True)
        )
    return [describe_factor(row, factor_set) for row in frame.sort("factor_id").to_dicts()]


def factor_sets(database: Database, active: FactorSet) -> list[dict[str, Any]]:
    """The shipped set and every imported version, newest first, the active one marked."""
    shipped = shipped_factor_set()
    found: list[dict[str, Any]] = [
        {
            "name": shipped.name,
            "version": shipped.version,
            "format": "ghgp-csv",
            "origin": "shipped with carbonlake",
            "factor_count": shipped.factors.height,
            "created_at": None,
            "scope2_methods": scope2_methods(shipped),
        }
    ]
    for item in database.factor_sets():
        item["scope2_methods"] = database.factor_set_scope2_methods(item["name"], item["version"])
        found.append(item)
    for item in found:
        item["active"] = f"{item['name']}@{item['version']}" == active.label
    return found


def scope2_methods(factor_set: FactorSet) -> dict[str, str | None]:
    """Each scope 2 category of a set and its method (None: not said)."""
    rows = (
        factor_set.factors.filter(pl.col("scope") == 2)
        .select("category", "scope2_method")
        .unique()
        .sort("category")
    )
    return dict(rows.iter_rows())
