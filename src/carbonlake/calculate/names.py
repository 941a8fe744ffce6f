"""One rule for matching category and activity names, shared by the data-quality
gate and the calculation.

Names are compared by their **key**: every run of Unicode white space (space,
tab, no-break space, the typographic spaces) becomes one space, leading and
trailing spaces go, and case is ignored. The shipped factor table has names
ending with a space (``Hainan Province China Power Grid ``) that users type
without it; both match. A factor table with two names that have the same key is
refused on import, so a key always finds at most one factor.

The Python form is computed by the Polars expression itself, so the two can never
disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = ["name_key", "name_key_expr", "name_keys"]


def name_key_expr(name: pl.Expr) -> pl.Expr:
    """The matching key of a text column (null stays null)."""
    # Rust's regex \s is Unicode white space (U+00A0, U+2000..U+200A, U+3000, ...).
    return name.str.replace_all(r"\s+", " ").str.strip_chars(" ").str.to_lowercase()


def name_keys(names: Sequence[str]) -> list[str]:
    """The matching keys of many names at once (one Polars call instead of one per name:
    a factor-set list of a ruleset has about 1,400 names)."""
    keys = (
        pl.Series(list(names), dtype=pl.String)
        .to_frame("name")
        .select(name_key_expr(pl.col("name")))
    )
    return [str(key) for key in keys.to_series()]


def name_key(name: str) -> str:
    """The matching key of one name (the same rule as :func:`name_key_expr`)."""
    key = pl.select(name_key_expr(pl.lit(name, dtype=pl.String))).item()
    return str(key)
