"""DataBrew-format data-quality rules: parsing and column-wise evaluation.

A rule is ``{"Name", "Disabled", "CheckExpression", "SubstitutionMap"}`` as AWS
Glue DataBrew writes it. A check is either an *aggregate* check (it uses
``AGG(...)``: one verdict for the whole file) or a *per-row* check (columns
compared row by row: the file passes when every row passes). Both compile to
Polars expressions evaluated over the whole file, never row by row in Python.

Supported now: ``AGG(ROWS_COUNT)``, ``AGG(COLUMNS_COUNT)``, column aggregates
``AGG(:col, STAT)`` for the STATS below, per-row column references, the
comparisons ``== != < <= > >=``, ``and``/``or`` and parentheses, keywords in
any case. Anything else is refused with the rule's name before data is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .._exceptions import ConfigurationError

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")

DATASET_STATS = ("ROWS_COUNT", "COLUMNS_COUNT")
COLUMN_STATS = (
    "MISSING_VALUES_COUNT",
    "MISSING_VALUES_PERCENTAGE",
    "DUPLICATE_VALUES_COUNT",
    "DUPLICATE_VALUES_PERCENTAGE",
    "DISTINCT_VALUES_COUNT",
    "DISTINCT_VALUES_PERCENTAGE",
    "UNIQUE_VALUES_COUNT",
    "UNIQUE_VALUES_PERCENTAGE",
    "MIN",
    "MAX",
    "MEAN",
    "MEDIAN",
    "SUM",
    "STANDARD_DEVIATION",
    "VARIANCE",
)

_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|<|>)|(?P<punct>[(),])|(?P<ref>:[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<string>'[^']*'|\"[^\"]*\"))"
)


@dataclass(frozen=True)
class Rule:
    """One data-quality rule, its substitutions resolved."""

    name: str
    check_expression: str
    substitution_map: dict[str, str] = field(default_factory=dict)
    disabled: bool = False
    severity: str = "error"

    @property
    def definition(self) -> str:
        """The check expression with its substitutions filled in, for reports."""
        text = self.check_expression
        for ref in sorted(self.substitution_map, key=len, reverse=True):
            text = text.replace(ref, self.substitution_map[ref])
        return text


# -- the expression tree --------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column reference."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A number or a string."""

    value: float | str


@dataclass(frozen=True)
class Agg:
    """``AGG(STAT)`` over the dataset or ``AGG(:col, STAT)`` over one column."""

    stat: str
    column: str | None


@dataclass(frozen=True)
class Compare:
    """``left op right``."""

    op: str
    left: Column | Literal | Agg
    right: Column | Literal | Agg


@dataclass(frozen=True)
class Logical:
    """``and`` / ``or`` over sub-checks."""

    op: str
    parts: tuple[Check, ...]


Check = Compare | Logical
Operand = Column | Literal | Agg


class _Parser:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.tokens: list[tuple[str, str]] = []
        text = rule.check_expression
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match:
                self.fail(f"cannot read the expression at {text[pos:]!r}")
            assert match is not None
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    def fail(self, message: str) -> None:
        raise ConfigurationError(
            f"rule {self.rule.name!r}: {message} (CheckExpression {self.rule.check_expression!r})"
        )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            self.fail("the expression ends too early")
        assert token is not None
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        _, text = self.take()
        if text.upper() != value:
            self.fail(f"expected {value!r}, found {text!r}")

    def parse(self) -> Check:
        check = self.parse_or()
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return check

    def parse_or(self) -> Check:
        parts = [self.parse_and()]
        while (tok := self.peek()) and tok[0] == "word" and tok[1].lower() == "or":
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Logical("or", tuple(parts))

    def parse_and(self) -> Check:
        parts = [self.parse_atom()]
        while (tok := self.peek()) and tok[0] == "word" and tok[1].lower() == "and":
            self.take()
            parts.append(self.parse_atom())
        return parts[0] if len(parts) == 1 else Logical("and", tuple(parts))

    def parse_atom(self) -> Check:
        tok = self.peek()
        if tok == ("punct", "("):
            # A parenthesis opens either a sub-check or nothing else: operands never start so.
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        left = self.parse_operand()
        kind, text = self.take()
        if kind != "op":
            self.fail(
                f"expected a comparison (==, !=, <, <=, >, >=) after the operand, got {text!r}"
            )
        right = self.parse_operand()
        return Compare(text, left, right)

    def substitute(self, ref: str) -> str:
        if ref not in self.rule.substitution_map:
            self.fail(f"{ref} is not in the SubstitutionMap")
        return self.rule.substitution_map[ref]

    def parse_operand(self) -> Operand:
        kind, text = self.take()
        if kind == "word" and text.upper() == "AGG":
            self.expect("(")
            args: list[str] = []
            while True:
                args.append(self.take()[1])
                sep = self.take()[1]
                if sep == ")":
                    break
                if sep != ",":
                    self.fail(f"expected ',' or ')' in AGG(...), found {sep!r}")
            if len(args) == 1:
                stat = args[0].upper()
                if stat not in DATASET_STATS:
                    self.fail(
                        f"AGG({args[0]}) is not supported; dataset aggregates are "
                        f"{', '.join(DATASET_STATS)}"
                    )
                return Agg(stat, None)
            if len(args) == 2 and args[0].startswith(":"):
                stat = args[1].upper()
                if stat not in COLUMN_STATS:
                    self.fail(
                        f"column aggregate {args[1]!r} is not supported; use one of "
                        f"{', '.join(COLUMN_STATS)}"
                    )
                return Agg(stat, column_name(self.substitute(args[0])))
            self.fail("AGG takes (STAT) or (:column, STAT)")
        if kind == "ref":
            value = self.substitute(text)
            if value.startswith("`") and value.endswith("`"):
                return Column(value[1:-1])
            return Literal(_number_or_text(value))
        if kind == "number":
            return Literal(float(text))
        if kind == "string":
            return Literal(text[1:-1])
        self.fail(f"unexpected {text!r} where a value, a column or AGG(...) was expected")
        raise AssertionError("unreachable")


def column_name(value: str) -> str:
    """A column name from a SubstitutionMap value (backticks optional)."""
    value = value.strip()
    if value.startswith("`") and value.endswith("`"):
        return value[1:-1]
    return value


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def parse_check(rule: Rule) -> Check:
    """Parse a rule's check expression; raises ConfigurationError naming the rule."""
    return _Parser(rule).parse()


def walk_operands(check: Check) -> list[Operand]:
    """Every operand of a check, depth first."""
    if isinstance(check, Compare):
        return [check.left, check.right]
    return [op for part in check.parts for op in walk_operands(part)]


def is_aggregate(check: Check) -> bool:
    """Whether a check gives one verdict for the file (it uses AGG)."""
    return any(isinstance(op, Agg) for op in walk_operands(check))


def columns_of(check: Check) -> set[str]:
    """The columns a check reads."""
    names = set()
    for op in walk_operands(check):
        if isinstance(op, Column):
            names.add(op.name)
        elif isinstance(op, Agg) and op.column:
            names.add(op.column)
    return names


def validate(check: Check, rule: Rule) -> None:
    """Refuse checks that mix aggregates with per-row columns."""
    operands = walk_operands(check)
    if any(isinstance(o, Agg) for o in operands) and any(isinstance(o, Column) for o in operands):
        raise ConfigurationError(
            f"rule {rule.name!r} mixes AGG(...) with per-row column references; "
            "split it into an aggregate rule and a per-row rule"
        )


# -- loading ----------------------------------------------------------------------


def _substitution_map(raw: Any, name: str) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):  # CloudFormation's [{ValueReference, Value}]
        try:
            return {str(item["ValueReference"]): str(item["Value"]) for item in raw}
        except (KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"rule {name!r}: SubstitutionMap list items need ValueReference and Value"
            ) from exc
    raise ConfigurationError(f"rule {name!r}: SubstitutionMap must be an object or a list")


def rules_from_document(document: Any, origin: str) -> list[Rule]:
    """Rules from a parsed ruleset document: a list of rules or ``{"Rules": [...]}``."""
    items = document.get("Rules") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ConfigurationError(
            f"ruleset {origin} must be a JSON list of rules or an object with 'Rules'"
        )
    rules = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("Name") or not item.get("CheckExpression"):
            raise ConfigurationError(
                f"ruleset {origin}: rule {index} needs 'Name' and 'CheckExpression'"
            )
        name = str(item["Name"])
        severity = str(item.get("Severity", "error")).lower()
        if severity not in ("error", "warn"):
            raise ConfigurationError(
                f"ruleset {origin}: rule {name!r} has Severity {severity!r}; use error or warn"
            )
        rule = Rule(
            name=name,
            check_expression=str(item["CheckExpression"]),
            substitution_map=_substitution_map(item.get("SubstitutionMap"), name),
            disabled=bool(item.get("Disabled", False)),
            severity=severity,
        )
        if not rule.disabled:
            validate(parse_check(rule), rule)
        rules.append(rule)
    return rules


def load_rules(path: Path) -> list[Rule]:
    """Rules from a ruleset JSON file; any problem is a ConfigurationError naming the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"ruleset file {path} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"ruleset file {path} is not valid JSON: {exc}") from exc
    return rules_from_document(document, str(path))


def rule_to_document(rule: Rule) -> dict[str, Any]:
    """The DataBrew-format dict of a rule (for storing the ruleset with its job)."""
    return {
        "Name": rule.name,
        "Disabled": rule.disabled,
        "CheckExpression": rule.check_expression,
        "SubstitutionMap": rule.substitution_map,
        "Severity": rule.severity,
    }


# -- compiling to Polars ------------------------------------------------------------


def missing(column: str) -> pl.Expr:
    """Null, empty or whitespace-only cells count as missing."""
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def numeric(column: str) -> pl.Expr:
    """A column read as numbers; cells that are not numbers become null."""
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def agg_expr(agg: Agg, total_columns: int) -> pl.Expr:
    """A scalar expression for one aggregate."""
    if agg.column is None:
        if agg.stat == "ROWS_COUNT":
            return pl.len().cast(pl.Float64)
        return pl.lit(float(total_columns))
    col = agg.column
    present = pl.col(col).filter(~missing(col))
    rows = pl.len().cast(pl.Float64)
    counts = {
        "MISSING_VALUES": missing(col).sum().cast(pl.Float64),
        "DUPLICATE_VALUES": (present.count() - present.n_unique()).cast(pl.Float64),
        "DISTINCT_VALUES": present.n_unique().cast(pl.Float64),
        "UNIQUE_VALUES": present.is_unique().sum().cast(pl.Float64),
    }
    for prefix, expr in counts.items():
        if agg.stat == f"{prefix}_COUNT":
            return expr
        if agg.stat == f"{prefix}_PERCENTAGE":
            return pl.when(rows > 0).then(expr * 100.0 / rows).otherwise(0.0)
    values = numeric(col)
    stats = {
        "MIN": values.min(),
        "MAX": values.max(),
        "MEAN": values.mean(),
        "MEDIAN": values.median(),
        "SUM": values.sum(),
        "STANDARD_DEVIATION": values.std(),
        "VARIANCE": values.var(),
    }
    return stats[agg.stat].cast(pl.Float64)


def _compare(op: str, left: pl.Expr, right: pl.Expr) -> pl.Expr:
    return {
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def row_expr(check: Check) -> pl.Expr:
    """A per-row boolean: true where the row passes (null counts as failing)."""
    if isinstance(check, Logical):
        parts = [row_expr(p) for p in check.parts]
        combined = parts[0]
        for part in parts[1:]:
            combined = combined & part if check.op == "and" else combined | part
        return combined
    left, right = check.left, check.right
    numeric_side = any(isinstance(s, Literal) and isinstance(s.value, float) for s in (left, right))

    def operand(side: Operand) -> pl.Expr:
        if isinstance(side, Column):
            return numeric(side.name) if numeric_side else pl.col(side.name)
        assert isinstance(side, Literal)
        return pl.lit(side.value)

    return _compare(check.op, operand(left), operand(right)).fill_null(False)


def evaluate_aggregate(check: Check, values: dict[Agg, float | None]) -> bool:
    """The verdict of an aggregate check, given each aggregate's observed value."""
    if isinstance(check, Logical):
        results = [evaluate_aggregate(p, values) for p in check.parts]
        return all(results) if check.op == "and" else any(results)

    def value(side: Operand) -> float | str | None:
        if isinstance(side, Agg):
            return values[side]
        if isinstance(side, Literal):
            return side.value
        raise AssertionError("columns are refused in aggregate checks")

    left, right = value(check.left), value(check.right)
    if left is None or right is None:
        return False
    try:
        return bool(
            {
                "==": left == right,
                "!=": left != right,
                "<": left < right,  # type: ignore[operator]
                "<=": left <= right,  # type: ignore[operator]
                ">": left > right,  # type: ignore[operator]
                ">=": left >= right,  # type: ignore[operator]
            }[check.op]
        )
    except TypeError:
        return False


def aggregates_of(check: Check) -> list[Agg]:
    """The distinct aggregates a check needs."""
    seen: list[Agg] = []
    for op in walk_operands(check):
        if isinstance(op, Agg) and op not in seen:
            seen.append(op)
    return seen
