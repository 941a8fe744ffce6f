"""Calculate CO2e: the spec's calculation stage, column-wise over one batch.

For each record: ``amount x factor (kg per unit) / 1000`` gives tonnes of CO2,
CH4 and N2O; CO2e uses the factor's AR4 and AR5 kgCO2e per unit (the source's
stated values, checked against GWPs CH4 25 / N2O 298 and 28 / 265 on load).
Enriched records are the input record plus ``emissions_output`` in the original
system's shape. A record that cannot be calculated goes, with its reason, to an
errors file next to the enriched batch; it is never dropped.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import polars as pl

from .. import lake, transform
from .._exceptions import CalculationError, InputDataError
from ..database import EMISSION_COLUMNS, Database, LakeFile
from ..documents import CalculateEvent, CalculateOutput
from ..storage import Storage
from . import units
from .factors import AR6_GWP, GWP, FactorSet, load_factor_set
from .names import name_key_expr

__all__ = [
    "BatchResult",
    "FactorSet",
    "calculate",
    "calculate_frame",
    "calculate_group",
    "calculate_records",
    "load_factor_set",
]

RECORD_ID = "activity_event_id"
_NEEDED = ("activity_event_id", "category", "activity", "raw_data", "units")
_OPTIONAL = ("scope", "scope3_category")
"""Columns a record may leave out: its scope (the factor's decides; a record's that
disagrees fails) and its GHG Protocol scope 3 category (1-15)."""
_I = "__carbonlake_index"
_REASON = "__carbonlake_reason"
_CODE = "__carbonlake_reason_code"

REASON_CODES = (
    "missing_activity_event_id",
    "duplicate_activity_event_id",
    "raw_data_missing",
    "raw_data_negative",
    "raw_data_not_finite",
    "no_factor",
    "scope_mismatch",
    "scope3_category_invalid",
    "units_missing",
    "units_invalid",
    "factor_scope2_method_missing",
    "emissions_overflow",
)
"""Why a record could not be calculated, one code per kind of reason (the reason text
names the record's values); reports count failed records by these codes."""


@dataclass
class BatchResult:
    """What one batch produced."""

    enriched: pl.DataFrame
    failed: pl.DataFrame
    """Input records that could not be calculated, plus an ``error`` column."""
    database_rows: pl.DataFrame


def _tonnes(gas_column: str) -> pl.Expr:
    return pl.col("__quantity") * pl.col(gas_column).fill_null(0.0) / 1000.0


def _with_conversions(joined: pl.DataFrame) -> pl.DataFrame:
    """Add ``__multiplier`` (record unit to factor unit) or ``__unit_reason``.

    pint is asked once per distinct (record unit, factor unit) pair of the batch,
    never per record; the answer is joined back column-wise.
    """
    pairs = (
        joined.filter(pl.col("units").is_not_null() & pl.col("__f_unit").is_not_null())
        .select("units", "__f_unit")
        .unique()
    )
    found = [(u, f, units.conversion(u, f)) for u, f in pairs.iter_rows()]
    table = pl.DataFrame(
        {
            "units": [u for u, _, _ in found],
            "__f_unit": [f for _, f, _ in found],
            "__multiplier": [c.multiplier for _, _, c in found],
            "__unit_reason": [c.reason for _, _, c in found],
        },
        schema={
            "units": pl.String,
            "__f_unit": pl.String,
            "__multiplier": pl.Float64,
            "__unit_reason": pl.String,
        },
    )
    return joined.join(table, on=["units", "__f_unit"], how="left", nulls_equal=False).sort(_I)


def _amount(value: pl.Expr, unit: str) -> pl.Expr:
    return pl.struct(amount=value, unit=pl.lit(unit))


BATCH_COLUMN = "__carbonlake_batch"
"""Optional input column: which batch a record belongs to (several batches in one call)."""
POSITION_COLUMN = "__carbonlake_position"
"""Optional input column: a record's position in its batch (0-based)."""
BATCH_NAME_COLUMN = "__carbonlake_batch_name"
"""Optional input column: the batch file's name, for records without a usable id."""
INTERNAL_COLUMNS = (BATCH_COLUMN, POSITION_COLUMN, BATCH_NAME_COLUMN)


def calculate_frame(records: pl.DataFrame, factor_set: FactorSet, batch_name: str) -> BatchResult:
    """Calculate typed records against a factor set.

    ``records`` may carry the internal columns above (several batches calculated in
    one call); they are kept on every output frame so the caller can split them.
    """
    internal = [c for c in INTERNAL_COLUMNS if c in records.columns]
    input_columns = [c for c in records.columns if c not in internal]
    frame = records.with_columns(
        [
            pl.lit(None, dtype=pl.String).alias(c)
            for c in (*_NEEDED, *_OPTIONAL)
            if c not in input_columns
        ]
    )
    frame = frame.with_columns(
        pl.col("raw_data").cast(pl.Float64, strict=False),
        pl.col("category").cast(pl.String),
        pl.col("activity").cast(pl.String),
        pl.col("units").cast(pl.String),
        pl.col(RECORD_ID).cast(pl.String),
        pl.col("scope").cast(pl.String).str.strip_chars().alias("__scope_text"),
        pl.col("scope3_category").cast(pl.String).str.strip_chars().alias("__s3_text"),
        # One matching rule for names, the data-quality gate's too (names.py).
        name_key_expr(pl.col("category").cast(pl.String)).alias("__k_cat"),
        name_key_expr(pl.col("activity").cast(pl.String)).alias("__k_act"),
    ).with_row_index(_I)
    frame = frame.with_columns(
        pl.col("__scope_text").cast(pl.Float64, strict=False).alias("__scope_number"),
        pl.col("__s3_text").cast(pl.Float64, strict=False).alias("__s3_number"),
    )
    factors = factor_set.factors.select(
        pl.col("category_key").alias("__k_cat"),
        pl.col("activity_key").alias("__k_act"),
        pl.col("factor_id").alias("__f_id"),
        pl.col("scope").alias("__f_scope"),
        pl.col("unit").alias("__f_unit"),
        pl.col("co2_kg_per_unit").alias("__f_co2"),
        pl.col("ch4_kg_per_unit").alias("__f_ch4"),
        pl.col("n2o_kg_per_unit").alias("__f_n2o"),
        pl.col("biogenic_co2_kg_per_unit").alias("__f_bio"),
        pl.col("ar4_kgco2e_per_unit").alias("__f_ar4"),
        pl.col("ar5_kgco2e_per_unit").alias("__f_ar5"),
        pl.col("ar6_kgco2e_per_unit").alias("__f_ar6"),
        pl.col("ar6_ch4_gwp").alias("__f_ar6_ch4"),
        pl.col("ch4_basis").alias("__f_ch4_basis"),
        pl.col("scope2_method").alias("__f_scope2"),
        pl.col("scope3_category").alias("__f_scope3"),
        pl.col("source").alias("__f_source"),
        # Which gases the factor does not give: a property of the factor, so worked out
        # on the factor table (a few hundred rows), not per record (list building per
        # record was most of the calculation's time).
        pl.concat_list(
            [
                pl.when(pl.col(f"{gas}_kg_per_unit").is_null()).then(pl.lit(gas))
                for gas in ("co2", "ch4", "n2o")
            ]
        )
        .list.drop_nulls()
        .alias("__not_given"),
    )
    joined = frame.join(factors, on=["__k_cat", "__k_act"], how="left").sort(_I)
    joined = _with_conversions(joined)
    record_id = pl.col(RECORD_ID)
    scope_text = pl.col("__scope_text")
    s3_text = pl.col("__s3_text")
    s3 = pl.col("__s3_number")
    has_scope = scope_text.is_not_null() & (scope_text != "")
    has_s3 = s3_text.is_not_null() & (s3_text != "")
    rules: list[tuple[pl.Expr, str, pl.Expr]] = [
        (
            record_id.is_null() | (record_id.str.strip_chars() == ""),
            "missing_activity_event_id",
            pl.lit("the record has no activity_event_id"),
        ),
        (
            record_id.is_duplicated(),
            "duplicate_activity_event_id",
            pl.format("activity_event_id {} appears more than once in the batch", record_id),
        ),
        (
            pl.col("raw_data").is_null(),
            "raw_data_missing",
            pl.lit("raw_data is missing or not a number"),
        ),
        (
            pl.col("raw_data") < 0,
            "raw_data_negative",
            pl.format("raw_data {} is negative", pl.col("raw_data")),
        ),
        (
            ~pl.col("raw_data").is_finite(),
            "raw_data_not_finite",
            pl.format("raw_data {} is not a finite number", pl.col("raw_data")),
        ),
        (
            pl.col("__f_id").is_null(),
            "no_factor",
            pl.format(
                "no emission factor for category '{}', activity '{}' in factor set {}",
                pl.col("category").fill_null("<missing>"),
                pl.col("activity").fill_null("<missing>"),
                pl.lit(factor_set.label),
            ),
        ),
        (
            has_scope
            & (
                pl.col("__scope_number").is_null()
                | (pl.col("__scope_number") != pl.col("__f_scope").cast(pl.Float64)).fill_null(
                    False
                )
            ),
            "scope_mismatch",
            pl.format(
                "the record says scope {} but its factor {} is scope {}; a record is "
                "reported in its factor's scope: correct the record's scope (or leave it "
                "empty) or its category and activity",
                scope_text,
                pl.col("__f_id"),
                pl.col("__f_scope").cast(pl.String).fill_null("<not given>"),
            ),
        ),
        (
            has_s3
            & (
                s3.is_null()
                | (s3 != s3.round(0))
                | ~s3.is_between(1, 15)
                | (pl.col("__f_scope") != 3).fill_null(True)
            ),
            "scope3_category_invalid",
            pl.format(
                "scope3_category '{}' is not valid here: it must be a GHG Protocol scope 3 "
                "category, a whole number 1 to 15, on a scope 3 record (its factor {} is "
                "scope {})",
                s3_text,
                pl.col("__f_id"),
                pl.col("__f_scope").cast(pl.String).fill_null("<not given>"),
            ),
        ),
        (
            pl.col("units").is_null() | (pl.col("units").str.strip_chars() == ""),
            "units_missing",
            pl.format("units are missing; the factor is per '{}'", pl.col("__f_unit")),
        ),
        (pl.col("__multiplier").is_null(), "units_invalid", pl.col("__unit_reason")),
        (
            (pl.col("__f_scope") == 2) & pl.col("__f_scope2").is_null(),
            "factor_scope2_method_missing",
            pl.format(
                "factor {} is scope 2 but factor set {} does not say whether it is "
                "location-based or market-based; import the set again with "
                "--location-based or --market-based for its category",
                pl.col("__f_id"),
                pl.lit(factor_set.label),
            ),
        ),
    ]

    def first_of(values: list[pl.Expr], name: str) -> pl.Expr:
        chain: Any = pl
        for (condition, _, _), value in zip(rules, values, strict=True):
            chain = chain.when(condition.fill_null(False)).then(value)
        result: pl.Expr = chain.otherwise(pl.lit(None, dtype=pl.String)).alias(name)
        return result

    reason = first_of([text for _, _, text in rules], _REASON)
    code = first_of([pl.lit(c) for _, c, _ in rules], _CODE)
    joined = joined.with_columns(reason, code)
    ok = joined.filter(pl.col(_REASON).is_null())
    bad = joined.filter(pl.col(_REASON).is_not_null())

    ok = ok.with_columns((pl.col("raw_data") * pl.col("__multiplier")).alias("__quantity"))
    ok = ok.with_columns(
        _tonnes("__f_co2").alias("__co2_t"),
        _tonnes("__f_ch4").alias("__ch4_t"),
        _tonnes("__f_n2o").alias("__n2o_t"),
        (pl.col("__quantity") * pl.col("__f_ar4") / 1000.0).alias("__ar4_t"),
        (pl.col("__quantity") * pl.col("__f_ar5") / 1000.0).alias("__ar5_t"),
        (pl.col("__quantity") * pl.col("__f_ar6") / 1000.0).alias("__ar6_t"),
        # Biogenic CO2: reported outside the scopes, never in co2 or co2e (null when the
        # factor gives none).
        (pl.col("__quantity") * pl.col("__f_bio") / 1000.0).alias("__bio_t"),
        pl.coalesce(pl.col("__f_scope"), pl.col("__scope_number").cast(pl.Int64)).alias("__scope"),
        pl.coalesce(pl.col("__s3_number").cast(pl.Int64), pl.col("__f_scope3")).alias("__scope3"),
    )
    # An amount near the largest float overflows to infinity on conversion or
    # multiplication: such a record fails with its reason, never a total of Infinity.
    results = [
        "__quantity",
        "__co2_t",
        "__ch4_t",
        "__n2o_t",
        "__ar4_t",
        "__ar5_t",
        "__ar6_t",
        "__bio_t",
    ]
    overflow = ~pl.all_horizontal([pl.col(c).is_finite().fill_null(True) for c in results])
    if ok.select(overflow.any()).item():
        overflowed = ok.filter(overflow).with_columns(
            pl.format(
                "raw_data {} {} is too large: its emissions overflow the largest number "
                "(about 1.8e308); check the amount and its units",
                pl.col("raw_data"),
                pl.col("units"),
            ).alias(_REASON),
            pl.lit("emissions_overflow").alias(_CODE),
        )
        bad = pl.concat([bad, overflowed.select(bad.columns)]).sort(_I)
        ok = ok.filter(~overflow)
    emissions_output = pl.struct(
        calculated_emissions=pl.struct(
            co2=_amount(pl.col("__co2_t"), "tonnes"),
            ch4=_amount(pl.col("__ch4_t"), "tonnes"),
            n2o=_amount(pl.col("__n2o_t"), "tonnes"),
            biogenic_co2=_amount(pl.col("__bio_t"), "tonnes"),
            co2e=pl.struct(
                ar4=_amount(pl.col("__ar4_t"), "tonnes"),
                ar5=_amount(pl.col("__ar5_t"), "tonnes"),
                ar6=_amount(pl.col("__ar6_t"), "tonnes"),
            ),
        ),
        emissions_factor=pl.struct(
            ar4=_amount(pl.col("__f_ar4"), "kgCO2e/unit"),
            ar5=_amount(pl.col("__f_ar5"), "kgCO2e/unit"),
            ar6=_amount(pl.col("__f_ar6"), "kgCO2e/unit"),
            factor_id=pl.col("__f_id"),
            factor_set=pl.lit(factor_set.name),
            factor_version=pl.lit(factor_set.version),
            source=pl.col("__f_source"),
            factor_unit=pl.col("__f_unit"),
            activity_quantity=pl.struct(amount=pl.col("__quantity"), unit=pl.col("__f_unit")),
            gases_not_given=pl.col("__not_given"),
            biogenic_co2=_amount(pl.col("__f_bio"), "kg/unit"),
            scope=pl.col("__scope"),
            scope2_method=pl.col("__f_scope2"),
            scope3_category=pl.col("__scope3"),
            ch4_basis=pl.col("__f_ch4_basis"),
            gwp=pl.struct(
                ar4=pl.struct(ch4=pl.lit(GWP["ar4"]["ch4"]), n2o=pl.lit(GWP["ar4"]["n2o"])),
                ar5=pl.struct(ch4=pl.lit(GWP["ar5"]["ch4"]), n2o=pl.lit(GWP["ar5"]["n2o"])),
                ar6=pl.struct(ch4=pl.col("__f_ar6_ch4"), n2o=pl.lit(AR6_GWP["n2o"])),
            ),
        ),
    ).alias("emissions_output")
    carried = [pl.col(c) for c in internal]
    enriched = ok.select([pl.col(c) for c in input_columns] + [emissions_output] + carried)
    name = pl.col(BATCH_NAME_COLUMN) if BATCH_NAME_COLUMN in internal else pl.lit(batch_name)
    position = pl.col(POSITION_COLUMN) if POSITION_COLUMN in internal else pl.col(_I)
    failed = bad.select(
        [pl.col(c) for c in input_columns]
        + [
            pl.col(_REASON).alias("error"),
            pl.col(_CODE).alias("error_code"),
            pl.concat_str(name, pl.lit("#"), (position + 1).cast(pl.String)).alias("__node_id"),
        ]
        + carried
    )

    def text(column: str) -> pl.Expr:
        if column in input_columns:
            return pl.col(column).cast(pl.String)
        return pl.lit(None, dtype=pl.String)

    def geo(part: str) -> pl.Expr:
        dtype = records.schema.get("geo")
        if isinstance(dtype, pl.Struct) and part in {f.name for f in dtype.fields}:
            return pl.col("geo").struct.field(part).cast(pl.Float64, strict=False)
        return pl.lit(None, dtype=pl.Float64)

    database_rows = ok.select(
        pl.col(RECORD_ID).alias("activity_event_id"),
        text("asset_id").alias("asset_id"),
        pl.col("__scope").alias("scope"),
        pl.col("category"),
        pl.col("activity"),
        text("origin_measurement_timestamp").alias("origin_measurement_timestamp"),
        pl.col("raw_data"),
        pl.col("units"),
        pl.col("__co2_t").alias("co2_tonnes"),
        pl.col("__ch4_t").alias("ch4_tonnes"),
        pl.col("__n2o_t").alias("n2o_tonnes"),
        pl.col("__ar4_t").alias("co2e_ar4_tonnes"),
        pl.col("__ar5_t").alias("co2e_ar5_tonnes"),
        pl.col("__f_id").alias("factor_id"),
        pl.lit(factor_set.name).alias("factor_set"),
        pl.lit(factor_set.version).alias("factor_version"),
        pl.col("__f_ar4").alias("ar4_kgco2e_per_unit"),
        pl.col("__f_ar5").alias("ar5_kgco2e_per_unit"),
        pl.col("__ar6_t").alias("co2e_ar6_tonnes"),
        pl.col("__f_ar6").alias("ar6_kgco2e_per_unit"),
        pl.col("__quantity").alias("quantity_used"),
        pl.col("__f_unit").alias("quantity_unit"),
        pl.col(RECORD_ID).alias("lineage_node_id"),
        geo("lat").alias("geo_lat"),
        geo("long").alias("geo_long"),
        text("source").alias("source"),
        pl.col("__f_scope2").alias("scope2_method"),
        pl.col("__scope3").alias("scope3_category"),
        pl.col("__bio_t").alias("biogenic_co2_tonnes"),
        pl.col("__f_ch4_basis").alias("ch4_basis"),
        pl.col("__f_ar6_ch4").alias("ar6_ch4_gwp"),
        *carried,
    )
    return BatchResult(enriched=enriched, failed=failed, database_rows=database_rows)


SCOPE2_METHOD_OF = {"location_based": "location-based", "market_based": "market-based"}
"""Totals per scope 2 method, by name, and the factor attribute each one keeps."""


def co2e_by_method_exprs() -> list[pl.Expr]:
    """Aggregations of database rows into CO2e tonnes per scope 2 method and GWP set,
    named ``<method>_<gwp>``. Scope 2 results of the other method count as 0: the
    location-based and market-based totals stand side by side and are never added."""
    exprs = []
    for method, attribute in SCOPE2_METHOD_OF.items():
        other = (pl.col("scope") == 2) & (pl.col("scope2_method") != attribute).fill_null(True)
        for gwp in ("ar4", "ar5", "ar6"):
            column = pl.col(f"co2e_{gwp}_tonnes")
            exprs.append(
                pl.when(other.fill_null(False))
                .then(0.0)
                .otherwise(column)
                .sum()
                .alias(f"{method}_{gwp}")
            )
    return exprs


def co2e_by_method(row: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{"location_based": {"ar4", "ar5", "ar6"}, "market_based": {...}}`` from a row
    aggregated with :func:`co2e_by_method_exprs`."""
    return {
        method: {gwp: float(row.get(f"{method}_{gwp}") or 0.0) for gwp in ("ar4", "ar5", "ar6")}
        for method in SCOPE2_METHOD_OF
    }


def failure_rows(
    failed: pl.DataFrame, node_ids: list[str], root_id: str, execution_id: str | None
) -> list[tuple[Any, ...]]:
    """The failed records of a batch as rows of the database's calculation_failures
    (FAILURE_COLUMNS order); ``node_ids`` are their lineage node ids."""
    if not failed.height:
        return []
    height = failed.height

    def column(name: str) -> list[Any]:
        if name not in failed.columns:
            return [None] * height
        return failed[name].cast(pl.String).to_list()

    scopes = (
        failed["scope"].cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False).to_list()
        if "scope" in failed.columns
        else [None] * height
    )
    ids = column(RECORD_ID)
    now = datetime.now(UTC).isoformat()
    rows = []
    for i, node_id in enumerate(node_ids):
        record_id = ids[i] if ids[i] and ids[i] == node_id else None
        rows.append(
            (
                record_id or f"{root_id}:{node_id}",
                root_id,
                execution_id,
                record_id,
                node_id,
                column("asset_id")[i],
                scopes[i],
                column("category")[i],
                column("activity")[i],
                column("origin_measurement_timestamp")[i],
                column("raw_data")[i],
                column("units")[i],
                column("error_code")[i],
                column("error")[i],
                now,
            )
        )
    return rows


def read_batch(
    storage: Storage, location: str, schema_of: Callable[[list[str]], pl.Schema] | None = None
) -> pl.DataFrame:
    """The typed records of one batch file: Parquet as the transform writes it, or JSON /
    JSON Lines (the spec's input document), chosen by content
    (:func:`carbonlake.transform.read_batch_bytes`; ``schema_of`` speeds up JSON Lines of
    the transform's shape)."""
    return batch_frame(storage.read_bytes(location), location, schema_of)


def batch_frame(
    data: bytes, location: str, schema_of: Callable[[list[str]], pl.Schema] | None = None
) -> pl.DataFrame:
    """:func:`read_batch` of a batch file's content already read."""
    try:
        return transform.read_batch_bytes(data, location, schema_of)
    except InputDataError as exc:
        raise CalculationError(str(exc)) from exc


def ndjson(frame: pl.DataFrame) -> bytes:
    """A frame as JSON Lines bytes (empty for no rows)."""
    buffer = io.BytesIO()
    if frame.height:
        frame.write_ndjson(buffer)
    return buffer.getvalue()


def enriched_bytes(frame: pl.DataFrame) -> bytes:
    """Enriched (or failed) records as the bytes of one Parquet file: the input columns
    and ``emissions_output`` as a nested struct (a file with no rows keeps the columns)."""
    return transform.parquet_bytes(frame)


def read_enriched(data: bytes, location: str) -> pl.DataFrame:
    """The records of an enriched or errors file's content: Parquet, or the JSON Lines
    of a workspace written before enriched files were Parquet."""
    if transform.is_parquet(data):
        try:
            return pl.read_parquet(io.BytesIO(data))
        except pl.exceptions.PolarsError as exc:
            raise CalculationError(f"{location} is not a readable Parquet file: {exc}") from exc
    if not data.strip():
        return pl.DataFrame()
    try:
        return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        raise CalculationError(f"{location} is neither Parquet nor JSON Lines: {exc}") from exc


def enriched_stem(location: str) -> str:
    """An enriched file's location without its extension."""
    for suffix in (".parquet", ".jsonl"):
        if location.endswith(suffix):
            return location.removesuffix(suffix)
    return location


def errors_location(enriched_location: str) -> str:
    """Where the failed records of an enriched batch are written: ``errors/<name>.errors
    .parquet`` in the enriched file's folder, so that ``enriched/*/*.parquet`` holds only
    calculated records (one shape: a query over the glob sees ``emissions_output``)."""
    folder, _, name = enriched_stem(enriched_location).rpartition("/")
    return f"{folder}/errors/{name}.errors.parquet"


def failed_record_ids(failed: pl.DataFrame) -> list[str]:
    """The lineage node id of each failed record: its ``activity_event_id``, or, where
    that is missing or not unique in the batch, the id the calculation generated."""
    if not failed.height:
        return []
    return [
        record_id if record_id and not duplicated else fallback
        for record_id, duplicated, fallback in zip(
            failed[RECORD_ID].to_list(),
            failed[RECORD_ID].is_duplicated().to_list(),
            failed["__node_id"].to_list(),
            strict=True,
        )
    ]


def emission_rows(
    database_rows: pl.DataFrame,
    *,
    root_id: str,
    execution_id: str | None,
    enriched_location: pl.Expr,
) -> pl.DataFrame:
    """The results table's rows (``EMISSION_COLUMNS``) of calculated records, stamped
    with their root, execution, enriched file and the time of the calculation."""
    return database_rows.with_columns(
        pl.lit(root_id).alias("root_id"),
        pl.lit(execution_id, dtype=pl.String).alias("execution_id"),
        enriched_location.alias("enriched_location"),
        pl.lit(datetime.now(UTC).isoformat()).alias("calculated_at"),
    ).select(EMISSION_COLUMNS)


def errors_file(enriched_location: str, failed: pl.DataFrame) -> tuple[str, bytes] | None:
    """Where a batch's failed records go (:func:`errors_location`) and the file's bytes;
    ``None`` when no record failed."""
    if not failed.height:
        return None
    data = enriched_bytes(failed.drop(["__node_id", *INTERNAL_COLUMNS], strict=False))
    return errors_location(enriched_location), data


@dataclass
class BatchCalculation:
    """One batch's share of a group's calculation, its enriched (and errors) file written."""

    index: int
    """The batch's index in the execution's split."""
    enriched_location: str
    enriched_bytes: bytes
    errors_location: str | None
    record_ids: list[Any]
    """The calculated records' ``activity_event_id``, in file order ..."""
    positions: list[int]
    """... and their positions in the batch file (0 for its first record)."""
    failed_records: list[dict[str, Any]]
    """``node_id``, ``reason`` and ``position`` of each record that failed."""
    failed_count: int
    co2e_tonnes: dict[str, dict[str, float]]
    errors_sha256: str | None = None
    """The SHA-256 of the errors file written (its lineage nodes keep it; not read back)."""


@dataclass
class GroupCalculation:
    """A group of batches calculated in one Polars call (:func:`calculate_group`)."""

    batches: list[BatchCalculation]
    emission_rows: pl.DataFrame
    """The group's rows of the results table (``EMISSION_COLUMNS``)."""
    results_file: LakeFile | None
    """The results table's data file of the group (written, not yet registered), or
    ``None`` when no record was calculated."""
    failure_rows: list[tuple[Any, ...]]
    """The failed records as rows of calculation_failures."""
    unwritten: list[tuple[str, bytes]] = field(default_factory=list)
    """Files (URL, bytes) left for the caller to write (``calculate_group(write=False)``)."""


@dataclass
class BatchFrame:
    """A batch to calculate: its records and where its enriched file goes."""

    index: int
    """The batch's index in its group (in an execution: in the execution's split)."""
    records: pl.DataFrame
    enriched_location: str
    name: str | None = None
    """The batch's name in the ids of failed records without one (default: the
    enriched file's name)."""


def calculate_group(
    batches: list[BatchFrame],
    *,
    storage: Storage,
    factor_set: FactorSet,
    root_id: str,
    execution_id: str | None,
    name: str,
    write: bool = True,
) -> GroupCalculation:
    """Calculate batches together: one Polars call for the group, then per batch its
    enriched file and its failed records' file; the group's results are one data file
    of the results table, named ``name``. Nothing is registered: the caller registers
    the results file and the failures (an execution with the batches' checkpoints).
    ``write=False``: the files are not written but returned (``unwritten``), for the
    caller to write with its own in one bulk call."""
    frames = [
        batch.records.with_columns(
            pl.lit(batch.index, dtype=pl.Int64).alias(BATCH_COLUMN),
            pl.int_range(pl.len(), dtype=pl.Int64).alias(POSITION_COLUMN),
            pl.lit(batch.name or PurePosixPath(batch.enriched_location).name).alias(
                BATCH_NAME_COLUMN
            ),
        )
        for batch in batches
    ]
    records = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    result = calculate_frame(records, factor_set, "")
    # Everything per batch is computed column-wise for the whole group first.
    keep = [c for c in result.enriched.columns if c not in INTERNAL_COLUMNS]
    written = _by_batch(result.enriched.select([*keep, BATCH_COLUMN]), drop_key=True)
    failed = _by_batch(result.failed)
    good_ids = _lists_by_batch(result.enriched, RECORD_ID, POSITION_COLUMN)
    totals = {
        int(row[BATCH_COLUMN]): co2e_by_method(row)
        for row in result.database_rows.group_by(BATCH_COLUMN)
        .agg(co2e_by_method_exprs())
        .iter_rows(named=True)
    }
    locations = {batch.index: batch.enriched_location for batch in batches}
    rows = emission_rows(
        result.database_rows,
        root_id=root_id,
        execution_id=execution_id,
        enriched_location=pl.col(BATCH_COLUMN).replace_strict(locations, return_dtype=pl.String),
    )
    # Written whole before it is registered (in an execution: after the map, lake.commit).
    encoded = lake.results_file(
        storage, rows, root_id=root_id, execution_id=execution_id, name=name
    )
    out: list[BatchCalculation] = []
    failure_list: list[tuple[Any, ...]] = []
    empty = result.enriched.select(keep).clear()
    files: list[tuple[str, bytes]] = []  # written in one bulk call (concurrently on S3)
    if encoded is not None:
        files.append((encoded[0].file_path, encoded[1]))
    for batch in batches:
        data = enriched_bytes(written.get(batch.index, empty))
        files.append((batch.enriched_location, data))
        bad = failed.get(batch.index, result.failed.clear())
        ids, positions = good_ids.get(batch.index, ([], []))
        node_ids = failed_record_ids(bad)
        failure_list += failure_rows(bad, node_ids, root_id, execution_id)
        errors = errors_file(batch.enriched_location, bad)
        if errors is not None:
            files.append(errors)
        out.append(
            BatchCalculation(
                index=batch.index,
                enriched_location=batch.enriched_location,
                enriched_bytes=data,
                errors_location=errors[0] if errors else None,
                errors_sha256=hashlib.sha256(errors[1]).hexdigest() if errors else None,
                record_ids=ids,
                positions=positions,
                failed_records=[
                    {"node_id": n, "reason": reason, "position": position}
                    for n, reason, position in zip(
                        node_ids,
                        bad["error"].to_list() if bad.height else [],
                        bad[POSITION_COLUMN].to_list() if bad.height else [],
                        strict=True,
                    )
                ],
                failed_count=bad.height,
                co2e_tonnes=totals.get(batch.index, co2e_by_method({})),
            )
        )
    registration = encoded[0] if encoded else None
    if not write:
        return GroupCalculation(out, rows, registration, failure_list, files)
    storage.write_many(files)
    return GroupCalculation(out, rows, registration, failure_list)


def _by_batch(frame: pl.DataFrame, drop_key: bool = False) -> dict[int, pl.DataFrame]:
    """A frame of several batches, split by batch index."""
    if not frame.height:
        return {}
    parts = frame.partition_by(
        BATCH_COLUMN, as_dict=True, maintain_order=True, include_key=not drop_key
    )
    return {int(key[0]): part for key, part in parts.items()}


def _lists_by_batch(
    frame: pl.DataFrame, first: str, second: str
) -> dict[int, tuple[list[Any], list[Any]]]:
    """Two columns of a frame as Python lists, per batch index (one pass)."""
    grouped = frame.group_by(BATCH_COLUMN, maintain_order=True).agg(first, second)
    return {int(b): (x, y) for b, x, y in grouped.iter_rows()}


def calculate(
    event: CalculateEvent,
    *,
    storage: Storage,
    database: Database,
    factor_set: FactorSet,
    execution_id: str | None = None,
) -> CalculateOutput:
    """The spec's Calculate CO2e task for one batch file.

    Returns ``{"calculations": {"storage_location", "records": [{"node_id"}]}}``
    and, beyond the spec, ``failed_records`` (``node_id`` and ``reason``),
    ``errors_storage_location`` and the batch's ``co2e_tonnes`` totals.
    """
    location = event.get("storage_location")
    if not location:
        raise InputDataError("calculate needs the batch's 'storage_location'")
    bucket, key = storage.split(location)
    if bucket != "transformed":
        raise InputDataError(f"{location} is not a batch in the transformed bucket")
    enriched_key = transform.enriched_key(key)
    output = calculate_records(
        read_batch(storage, location),
        storage.url("enriched", enriched_key),
        storage=storage,
        database=database,
        factor_set=factor_set,
        execution_id=execution_id,
        root_id=key.split("/", 1)[0],
        batch_name=PurePosixPath(enriched_key).name,
    )
    return output


def calculate_records(
    records: pl.DataFrame,
    enriched_location: str,
    *,
    storage: Storage,
    database: Database,
    factor_set: FactorSet,
    execution_id: str | None,
    root_id: str,
    batch_name: str | None = None,
) -> CalculateOutput:
    """Calculate typed records, write them to ``enriched_location`` (failures next to it,
    in ``.errors.parquet``) and store their results; returns the task's output."""
    calculated = calculate_group(
        [BatchFrame(0, records, enriched_location, batch_name)],
        storage=storage,
        factor_set=factor_set,
        root_id=root_id,
        execution_id=execution_id,
        name=PurePosixPath(enriched_location).stem,
    )
    batch = calculated.batches[0]
    # One data file of the results table; inside an execution its commit follows the map
    # (the execution's), on its own (the task) it is committed now.
    files = [calculated.results_file] if calculated.results_file else []
    database.register_results(
        files, calculated.emission_rows.get_column("activity_event_id").to_list()
    )
    if files and execution_id is None:
        lake.commit(database, storage, None, root_id, files=files)
    database.record_failures(calculated.failure_rows)
    return {
        "calculations": {
            "storage_location": enriched_location,
            "records": [{"node_id": n} for n in batch.record_ids],
            "failed_records": [
                {"node_id": r["node_id"], "reason": r["reason"]} for r in batch.failed_records
            ],
            "errors_storage_location": batch.errors_location,
            "co2e_tonnes": batch.co2e_tonnes,
        }
    }
