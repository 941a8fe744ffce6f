"""DataBrew-format data-quality rules: the rule model, loading, and the check parser.

A rule is AWS Glue DataBrew's ``{"Name", "Disabled", "CheckExpression",
"SubstitutionMap", "Threshold", "ColumnSelectors"}`` plus carbonlake's
``"Severity": "error" | "warn"``. ``SubstitutionMap`` is the API's dict or
CloudFormation's list of ``{ValueReference, Value}``. A check expression parses
into the small tree below; :mod:`carbonlake.quality.compiler` turns the tree
into Polars expressions. Everything wrong with a rule (syntax, an unknown
aggregate, a missing substitution, a bad regex or list) is found here, before
any data is read: such a rule is kept with its ``problem``, and the gate fails
it with that reason while the ruleset's other rules run.

Grammar (keywords in any case; ``docs/quality.md`` has the full reference)::

    check      := and_check ("or" and_check)*
    and_check  := atom ("and" atom)*
    atom       := "(" check ")" | [operand] predicate
    predicate  := ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                | ["not"] ("is_between" | "is between") operand "and" operand
                | ["not"] "in" list
                | ["not"] ("starts_with" | "ends_with" | "contains" | "matches") operand
                | "is_missing" | "is_not_missing"
    operand    := "AGG(" [":col" ","] STAT ["," param] ")" | "length(" :col ")"
                | "(" :col "," :col ... ")" | :ref | number | 'text'

The operand before a predicate is left out exactly when the rule has
``ColumnSelectors``: the check then applies to each selected column.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .._exceptions import ConfigurationError
from . import rulesets

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
COMPARISON_WORDS = {
    "EQ": "==",
    "LT": "<",
    "LTE": "<=",
    "GT": ">",
    "GTE": ">=",
    "LESS_THAN": "<",
    "LESS_THAN_EQUAL": "<=",
    "GREATER_THAN": ">",
    "GREATER_THAN_EQUAL": ">=",
}
"""DataBrew's condition names and synonyms for the comparisons (``:col gte :val``);
``IS`` is ``==`` and ``IS NOT`` / ``NOT EQ`` is ``!=``."""
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}

DATASET_STATS = (
    "ROWS_COUNT",
    "COLUMNS_COUNT",
    "DUPLICATE_ROWS_COUNT",
    "DUPLICATE_ROWS_PERCENTAGE",
)
COUNT_STATS = (
    "MISSING_VALUES",
    "DUPLICATE_VALUES",
    "DISTINCT_VALUES",
    "UNIQUE_VALUES",
    "VALID_VALUES",
    "Z_SCORE_OUTLIERS",
)
VALUE_STATS = (
    "MIN",
    "MAX",
    "MEAN",
    "MEDIAN",
    "MEDIAN_ABSOLUTE_DEVIATION",
    "MODE",
    "SUM",
    "STANDARD_DEVIATION",
    "VARIANCE",
    "ENTROPY",
    "SKEWNESS",
    "KURTOSIS",
    "QUANTILE",
)
COLUMN_STATS = (
    *(f"{prefix}_{unit}" for prefix in COUNT_STATS for unit in ("COUNT", "PERCENTAGE")),
    *VALUE_STATS,
)
DEFAULT_Z_SCORE = 3.0
"""A value is a z-score outlier when it is more than this many standard deviations from the mean."""

THRESHOLD_TYPES = ("GREATER_THAN_OR_EQUAL", "LESS_THAN_OR_EQUAL", "GREATER_THAN", "LESS_THAN")
THRESHOLD_UNITS = ("COUNT", "PERCENTAGE")
SEVERITIES = ("error", "warn")
RULE_KEYS = (
    "Name",
    "Disabled",
    "CheckExpression",
    "SubstitutionMap",
    "Threshold",
    "ColumnSelectors",
    "Severity",
    "Description",
)

REFERENCE_LISTS: dict[str, int] = {
    "@factor_set.category_activity": 2,
    "@factor_set.category_activity_scope": 3,
    "@factor_set.category": 1,
    "@factor_set.activity": 1,
}
"""Lists carbonlake supplies at run time, usable as the value of ``IN``; name -> arity.
``@factor_set.category_activity`` is every (category, activity) pair of the active factor
set, ``@factor_set.category_activity_scope`` every (category, activity, scope). Names are
compared as the calculation compares them (calculate/names.py: spaces trimmed and
folded, case ignored)."""

IMPLICIT = "\x00selected column"
"""Column placeholder in checks of rules with ColumnSelectors; bound per selected column."""

_STRING_TESTS = ("STARTS_WITH", "ENDS_WITH", "CONTAINS", "MATCHES")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|<|>)|(?P<punct>[(),])|(?P<ref>:[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<string>'[^']*'|\"[^\"]*\"))"
)


# -- the rule -------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """How many rows must pass a per-row check: ``passing <Type> Value <Unit>``."""

    value: float
    type: str = "GREATER_THAN_OR_EQUAL"
    unit: str = "COUNT"

    def satisfied(self, passing_rows: int, total_rows: int) -> bool:
        """Whether ``passing_rows`` out of ``total_rows`` meet the threshold."""
        return compare_numbers(self.type, self.measure(passing_rows, total_rows), self.value)

    def measure(self, passing_rows: int, total_rows: int) -> float:
        """Passing rows in the threshold's unit (a count, or a percentage of all rows)."""
        if self.unit == "PERCENTAGE":
            return passing_rows * 100.0 / total_rows if total_rows else 100.0
        return float(passing_rows)

    def describe(self) -> str:
        """``>= 95%`` style text."""
        symbol = {
            "GREATER_THAN_OR_EQUAL": ">=",
            "LESS_THAN_OR_EQUAL": "<=",
            "GREATER_THAN": ">",
            "LESS_THAN": "<",
        }[self.type]
        unit = "%" if self.unit == "PERCENTAGE" else " rows"
        return f"{symbol} {self.value:g}{unit}"


def compare_numbers(threshold_type: str, measured: float, value: float) -> bool:
    """``measured <type> value`` for a Threshold type name."""
    return {
        "GREATER_THAN_OR_EQUAL": measured >= value,
        "LESS_THAN_OR_EQUAL": measured <= value,
        "GREATER_THAN": measured > value,
        "LESS_THAN": measured < value,
    }[threshold_type]


@dataclass(frozen=True)
class ColumnSelector:
    """Selects columns by exact ``name`` or by ``regex`` (matching the whole name)."""

    name: str | None = None
    regex: str | None = None

    def to_document(self) -> dict[str, str]:
        """The DataBrew form."""
        return {"Name": self.name} if self.name is not None else {"Regex": self.regex or ""}


@dataclass(frozen=True)
class Rule:
    """One data-quality rule as written, its substitutions resolved to strings."""

    name: str
    check_expression: str
    substitution_map: dict[str, str] = field(default_factory=dict)
    disabled: bool = False
    severity: str = "error"
    threshold: Threshold | None = None
    column_selectors: tuple[ColumnSelector, ...] = ()
    problem: str | None = None
    """Why the rule cannot be evaluated (it is then reported as failed with this reason)."""
    source: Any = None
    """The rule as written, kept for a rule with a problem (its ``to_document``)."""

    @property
    def definition(self) -> str:
        """The check expression with its substitutions filled in, for people."""
        return fill_substitutions(self.check_expression, self.substitution_map)

    def to_document(self) -> Any:
        """The DataBrew-format dict of the rule (what a report's ``definition`` holds);
        for a rule with a problem, what was written, unchanged."""
        if self.problem is not None:
            return self.source
        document: dict[str, Any] = {
            "Name": self.name,
            "Disabled": self.disabled,
            "CheckExpression": self.check_expression,
            "SubstitutionMap": dict(self.substitution_map),
        }
        if self.threshold is not None:
            document["Threshold"] = {
                "Value": self.threshold.value,
                "Type": self.threshold.type,
                "Unit": self.threshold.unit,
            }
        if self.column_selectors:
            document["ColumnSelectors"] = [s.to_document() for s in self.column_selectors]
        document["Severity"] = self.severity
        return document


def fill_substitutions(text: str, substitutions: dict[str, str]) -> str:
    """Replace every ``:ref`` of ``text`` by its value (longest references first)."""

    def value(match: re.Match[str]) -> str:
        return substitutions.get(match.group(0), match.group(0))

    return re.sub(r":[A-Za-z_][A-Za-z0-9_]*", value, text)


# -- the check tree -------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column's value in each row (text, surrounding spaces removed)."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A number or a text; ``text`` is how it was written."""

    value: float | str
    text: str


@dataclass(frozen=True)
class ListValue:
    """The value list of ``IN``: numbers, texts, or tuples of texts (for a column tuple)."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Reference:
    """A list carbonlake supplies at run time (see :data:`REFERENCE_LISTS`)."""

    name: str


@dataclass(frozen=True)
class Length:
    """``length(:col)``: the number of characters of the column's value."""

    column: str


@dataclass(frozen=True)
class ColumnTuple:
    """``(:a, :b)``: several columns' values together, for ``IN``."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class Agg:
    """``AGG(STAT)`` over the dataset, or a column statistic with optional parameter."""

    stat: str
    column: str | None = None
    param: float | None = None

    def describe(self) -> str:
        """``MISSING_VALUES_COUNT of asset_id`` style text."""
        param = f"({self.param:g})" if self.param is not None else ""
        return f"{self.stat}{param}" + (f" of {self.column}" if self.column else "")


Operand = Column | Literal | Length | ColumnTuple | Agg


@dataclass(frozen=True)
class Compare:
    """``left op right``."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Between:
    """``subject IS_BETWEEN low AND high`` (both ends included)."""

    subject: Operand
    low: Operand
    high: Operand
    negated: bool = False


@dataclass(frozen=True)
class InList:
    """``subject IN list``."""

    subject: Operand
    values: ListValue | Reference
    negated: bool = False


@dataclass(frozen=True)
class StringTest:
    """``subject STARTS_WITH | ENDS_WITH | CONTAINS | MATCHES value``."""

    op: str
    subject: Operand
    value: Operand
    negated: bool = False


@dataclass(frozen=True)
class MissingTest:
    """``subject IS_MISSING`` (null, empty or spaces only) or ``IS_NOT_MISSING``."""

    subject: Operand
    negated: bool = False


@dataclass(frozen=True)
class Logical:
    """``and`` / ``or`` over sub-checks."""

    op: str
    parts: tuple[Check, ...]


Condition = Compare | Between | InList | StringTest | MissingTest
Check = Condition | Logical


# -- parsing ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.implicit = bool(rule.column_selectors)
        self.tokens: list[tuple[str, str]] = []
        text = rule.check_expression
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match:
                self.fail(f"cannot read the expression at {text[pos:].strip()!r}")
            assert match is not None
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    def fail(self, message: str) -> None:
        raise ConfigurationError(
            f"rule {self.rule.name!r}: {message} (CheckExpression {self.rule.check_expression!r})"
        )

    # -- tokens
    def peek(self, ahead: int = 0) -> tuple[str, str] | None:
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def peek_word(self, ahead: int = 0) -> str | None:
        token = self.peek(ahead)
        return token[1].upper() if token and token[0] == "word" else None

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

    # -- grammar
    def parse(self) -> Check:
        check = self.parse_or()
        token = self.peek()
        if token is not None:
            self.fail(f"unexpected {token[1]!r}")
        return check

    def parse_or(self) -> Check:
        parts = [self.parse_and()]
        while self.peek_word() == "OR":
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Logical("or", tuple(parts))

    def parse_and(self) -> Check:
        parts = [self.parse_atom()]
        while self.peek_word() == "AND":
            self.take()
            parts.append(self.parse_atom())
        return parts[0] if len(parts) == 1 else Logical("and", tuple(parts))

    def parse_atom(self) -> Check:
        token = self.peek()
        is_tuple = self.peek(1) is not None and self.peek(2) == ("punct", ",")
        if token == ("punct", "(") and not is_tuple:
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        if self.starts_predicate():
            if not self.implicit:
                self.fail(
                    "the condition has nothing on its left; name a column (':col > :val') "
                    "or give the rule ColumnSelectors"
                )
            subject: Operand = Column(IMPLICIT)
        else:
            subject = self.parse_operand()
            if isinstance(subject, Column | Length) and self.implicit:
                self.fail(
                    "the rule has ColumnSelectors, so its conditions apply to the selected "
                    "columns: leave the column out on the left (e.g. '> :val')"
                )
        return self.parse_predicate(subject)

    def starts_predicate(self) -> bool:
        token = self.peek()
        if token is None:
            return False
        if token[0] == "op":
            return True
        word = self.peek_word()
        return word is not None and word not in ("AGG", "LENGTH") and self.is_predicate_word(word)

    @staticmethod
    def is_predicate_word(word: str) -> bool:
        return (
            word in ("IS", "IN", "NOT", "BETWEEN", "IS_BETWEEN", "IS_NOT_BETWEEN")
            or word in ("IS_MISSING", "IS_NOT_MISSING", "NOT_IN")
            or word.removeprefix("NOT_") in _STRING_TESTS
            or word.removeprefix("NOT_") in COMPARISON_WORDS
        )

    def compare(self, op: str, subject: Operand, negated: bool) -> Compare:
        return Compare(_NEGATED[op] if negated else op, subject, self.parse_operand())

    def parse_predicate(self, subject: Operand) -> Condition:
        kind, text = self.take()
        if kind == "op":
            return Compare(text, subject, self.parse_operand())
        word = text.upper()
        negated = False
        if word == "NOT":
            negated = True
            kind, text = self.take()
            if kind == "op":  # NOT == :v
                return self.compare(text, subject, negated)
            word = text.upper()
        elif word.startswith("NOT_"):
            negated, word = True, word.removeprefix("NOT_")
        if word == "IS":
            if self.peek_word() == "NOT":
                self.take()
                negated = not negated
            follows = self.peek_word()
            if follows not in ("BETWEEN", "MISSING", "IS_BETWEEN", "IS_MISSING", "IN"):
                return self.compare("==", subject, negated)  # ":col IS :val", "IS NOT"
            word = {"BETWEEN": "IS_BETWEEN", "MISSING": "IS_MISSING"}.get(follows, follows)
            self.take()
        if word in ("IS_NOT_BETWEEN", "IS_NOT_MISSING"):
            negated, word = not negated, word.replace("IS_NOT_", "IS_")
        if word in COMPARISON_WORDS:
            return self.compare(COMPARISON_WORDS[word], subject, negated)
        if word in ("IS_BETWEEN", "BETWEEN"):
            low = self.parse_operand()
            self.expect("AND")
            return Between(subject, low, self.parse_operand(), negated)
        if word == "IS_MISSING":
            return MissingTest(subject, negated)
        if word == "IN":
            return InList(subject, self.parse_list(subject), negated)
        if word in _STRING_TESTS:
            value = self.parse_operand()
            if word == "MATCHES":
                self.check_regex(value)
            return StringTest(word, subject, value, negated)
        self.fail(
            f"expected a condition (==, !=, <, <=, >, >=, IS_BETWEEN, IN, NOT IN, STARTS_WITH, "
            f"ENDS_WITH, CONTAINS, MATCHES, IS_MISSING) but found {text!r}"
        )
        raise AssertionError("unreachable")

    def substitute(self, ref: str) -> str:
        if ref not in self.rule.substitution_map:
            self.fail(f"{ref} is not in the SubstitutionMap")
        return self.rule.substitution_map[ref]

    def parse_list(self, subject: Operand) -> ListValue | Reference:
        kind, text = self.take()
        if kind != "ref":
            self.fail(f"IN needs a :reference to a JSON array in the SubstitutionMap, not {text!r}")
        raw = self.substitute(text).strip()
        arity = len(subject.columns) if isinstance(subject, ColumnTuple) else 1
        if raw.startswith("@"):
            if raw not in REFERENCE_LISTS:
                self.fail(f"{text} is {raw!r}; known lists are {', '.join(REFERENCE_LISTS)}")
            if REFERENCE_LISTS[raw] != arity:
                self.fail(
                    f"{raw} holds {REFERENCE_LISTS[raw]}-part values but the left side has "
                    f"{arity} part(s)"
                )
            return Reference(raw)
        try:
            values = json.loads(raw)
        except json.JSONDecodeError:
            values = None
        if not isinstance(values, list):
            self.fail(f'{text} must be a JSON array such as ["a", "b"] or [1, 2, 3], not {raw!r}')
        assert isinstance(values, list)
        if arity > 1 and not all(isinstance(v, list) and len(v) == arity for v in values):
            self.fail(f"{text} must be a JSON array of {arity}-element arrays for {arity} columns")
        if arity == 1 and any(isinstance(v, list | dict) for v in values):
            self.fail(f"{text} must be a JSON array of numbers or texts")
        return ListValue(tuple(tuple(v) if isinstance(v, list) else v for v in values))

    def check_regex(self, value: Operand) -> None:
        if not isinstance(value, Literal):
            self.fail("MATCHES needs a regular expression value, not a column")
        assert isinstance(value, Literal)
        try:
            pl.select(pl.lit("").str.contains(value.text)).item()
        except pl.exceptions.PolarsError as exc:
            first = str(exc).strip().splitlines()
            self.fail(f"{value.text!r} is not a valid regular expression: {' '.join(first[:3])}")

    def parse_operand(self) -> Operand:
        kind, text = self.take()
        word = text.upper() if kind == "word" else None
        if word == "AGG":
            return self.parse_agg()
        if word == "LENGTH":
            self.expect("(")
            if self.peek() == ("punct", ")") and self.implicit:
                self.take()
                return Length(IMPLICIT)
            column = self.column_of(self.take())
            self.expect(")")
            return Length(column)
        if (kind, text) == ("punct", "("):
            columns = [self.column_of(self.take())]
            while self.peek() == ("punct", ","):
                self.take()
                columns.append(self.column_of(self.take()))
            self.expect(")")
            return ColumnTuple(tuple(columns))
        if kind == "ref":
            value = self.substitute(text)
            if _is_column(value):
                return Column(column_name(value))
            return _literal(value)
        if kind == "number":
            return Literal(float(text), text)
        if kind == "string":
            return Literal(text[1:-1], text[1:-1])
        self.fail(f"unexpected {text!r} where a value, a column or AGG(...) was expected")
        raise AssertionError("unreachable")

    def column_of(self, token: tuple[str, str]) -> str:
        kind, text = token
        if kind != "ref":
            self.fail(f"expected a :column reference, found {text!r}")
        return column_name(self.substitute(text))

    def parse_agg(self) -> Agg:
        self.expect("(")
        args: list[tuple[str, str]] = []
        while True:
            args.append(self.take())
            _, sep = self.take()
            if sep == ")":
                break
            if sep != ",":
                self.fail(f"expected ',' or ')' in AGG(...), found {sep!r}")
        column: str | None = None
        if args[0][0] == "ref":
            if self.implicit:
                self.fail(
                    "the rule has ColumnSelectors, so AGG applies to the selected columns: "
                    "write AGG(STAT), not AGG(:col, STAT)"
                )
            column = column_name(self.substitute(args[0][1]))
            args = args[1:]
        if not args or args[0][0] != "word" or len(args) > 2:
            self.fail("AGG takes (STAT), (:column, STAT) or (:column, STAT, parameter)")
        stat = args[0][1].upper()
        param = self.agg_param(stat, args[1] if len(args) == 2 else None)
        if stat in DATASET_STATS:
            if column is not None:
                self.fail(f"AGG({stat}) is about the whole dataset; it takes no column")
            return Agg(stat)
        if stat not in COLUMN_STATS:
            self.fail(
                f"aggregate {args[0][1]!r} is not supported; dataset aggregates are "
                f"{', '.join(DATASET_STATS)}; column aggregates are {', '.join(COLUMN_STATS)}"
            )
        if column is None:
            if not self.implicit:
                self.fail(
                    f"AGG({stat}) needs a column: write AGG(:col, {stat}) or give the rule "
                    "ColumnSelectors"
                )
            column = IMPLICIT
        return Agg(stat, column, param)

    def agg_param(self, stat: str, token: tuple[str, str] | None) -> float | None:
        takes = stat.startswith("Z_SCORE_OUTLIERS") or stat == "QUANTILE"
        if token is None:
            if stat == "QUANTILE":
                self.fail("AGG(:col, QUANTILE, :q) needs the quantile q between 0 and 1")
            return DEFAULT_Z_SCORE if takes else None
        if not takes:
            self.fail(f"{stat} takes no parameter")
        kind, text = token
        raw = self.substitute(text) if kind == "ref" else text
        if not _NUMBER.fullmatch(raw.strip()):
            self.fail(f"the parameter of {stat} must be a number, not {raw!r}")
        value = float(raw)
        if stat == "QUANTILE" and not 0.0 <= value <= 1.0:
            self.fail(f"the QUANTILE parameter must be between 0 and 1, not {raw}")
        if stat != "QUANTILE" and value <= 0:
            self.fail(f"the z-score threshold must be above 0, not {raw}")
        return value


def _is_column(value: str) -> bool:
    value = value.strip()
    return len(value) >= 2 and value.startswith("`") and value.endswith("`")


def column_name(value: str) -> str:
    """A column name from a SubstitutionMap value (backticks optional)."""
    value = value.strip()
    if _is_column(value):
        return value[1:-1]
    return value


def _literal(value: str) -> Literal:
    stripped = value.strip()
    if _NUMBER.fullmatch(stripped):
        return Literal(float(stripped), stripped)
    return Literal(value, value)


def parse_check(rule: Rule) -> Check:
    """Parse a rule's check expression; raises ConfigurationError naming the rule."""
    return _Parser(rule).parse()


# -- walking the tree ----------------------------------------------------------------------


def conditions_of(check: Check) -> list[Condition]:
    """Every condition of a check, depth first."""
    if isinstance(check, Logical):
        return [c for part in check.parts for c in conditions_of(part)]
    return [check]


def operands_of(check: Check) -> list[Operand]:
    """Every operand of a check, depth first."""
    found: list[Operand] = []
    for condition in conditions_of(check):
        if isinstance(condition, Compare):
            found += [condition.left, condition.right]
        elif isinstance(condition, Between):
            found += [condition.subject, condition.low, condition.high]
        elif isinstance(condition, StringTest):
            found += [condition.subject, condition.value]
        else:
            found.append(condition.subject)
    return found


def is_aggregate(check: Check) -> bool:
    """Whether a check gives one verdict for the file (it uses AGG)."""
    return any(isinstance(op, Agg) for op in operands_of(check))


def aggregates_of(check: Check) -> list[Agg]:
    """The distinct aggregates a check needs, in order of appearance."""
    seen: list[Agg] = []
    for op in operands_of(check):
        if isinstance(op, Agg) and op not in seen:
            seen.append(op)
    return seen


def columns_of(check: Check) -> set[str]:
    """The columns a check reads (the selected-column placeholder excluded)."""
    names: set[str] = set()
    for op in operands_of(check):
        if isinstance(op, Column | Length):
            names.add(op.name if isinstance(op, Column) else op.column)
        elif isinstance(op, ColumnTuple):
            names.update(op.columns)
        elif isinstance(op, Agg) and op.column:
            names.add(op.column)
    names.discard(IMPLICIT)
    return names


def references_of(check: Check) -> list[str]:
    """The run-time lists a check uses."""
    return [
        c.values.name
        for c in conditions_of(check)
        if isinstance(c, InList) and isinstance(c.values, Reference)
    ]


def bind(check: Check, column: str) -> Check:
    """The check of a rule with ColumnSelectors, applied to one selected ``column``."""
    if isinstance(check, Logical):
        return Logical(check.op, tuple(bind(part, column) for part in check.parts))

    def operand(op: Any) -> Any:
        if isinstance(op, Column) and op.name == IMPLICIT:
            return Column(column)
        if isinstance(op, Length) and op.column == IMPLICIT:
            return Length(column)
        if isinstance(op, Agg) and op.column == IMPLICIT:
            return dataclasses.replace(op, column=column)
        return op

    changes = {
        f.name: operand(getattr(check, f.name))
        for f in dataclasses.fields(check)
        if f.name in ("left", "right", "subject", "low", "high", "value")
    }
    return dataclasses.replace(check, **changes)


def validate(check: Check, rule: Rule) -> None:
    """Refuse checks that cannot mean anything, naming the rule."""
    operands = operands_of(check)
    has_agg = any(isinstance(o, Agg) for o in operands)
    has_row = any(isinstance(o, Column | Length | ColumnTuple) for o in operands)
    if has_agg and has_row:
        raise ConfigurationError(
            f"rule {rule.name!r} mixes AGG(...) with per-row column references; "
            "split it into an aggregate rule and a per-row rule"
        )
    if has_agg and rule.threshold is not None:
        raise ConfigurationError(
            f"rule {rule.name!r} has a Threshold, which applies to per-row checks only; "
            "remove it or compare the aggregate with a value instead"
        )
    for condition in conditions_of(check):
        parts = operands_of(condition)
        if not any(isinstance(o, Agg | Column | Length | ColumnTuple) for o in parts):
            raise ConfigurationError(
                f"rule {rule.name!r}: the condition {_describe(condition)} compares values only; "
                "put column names in backticks in the SubstitutionMap "
                '(":col1": "`raw_data`") so they are read as columns'
            )
        if not isinstance(condition, InList) and any(isinstance(o, ColumnTuple) for o in parts):
            raise ConfigurationError(
                f"rule {rule.name!r}: a column tuple (:a, :b) can only be used with IN / NOT IN"
            )


def _describe(condition: Condition) -> str:
    def text(op: Operand) -> str:
        return repr(op.text) if isinstance(op, Literal) else type(op).__name__

    if isinstance(condition, Compare):
        return f"{text(condition.left)} {condition.op} {text(condition.right)}"
    return type(condition).__name__


# -- loading --------------------------------------------------------------------------------


def _substitution_map(raw: Any, name: str) -> dict[str, str]:
    def text(value: Any) -> str:
        if isinstance(value, dict) and len(value) == 1:
            (function,) = value
            if function == "Ref" or str(function).startswith("Fn::"):
                raise ConfigurationError(
                    f"rule {name!r}: a SubstitutionMap value is the CloudFormation function "
                    f"{json.dumps(value)}, which carbonlake does not evaluate; write the value "
                    "itself (a Ref to a template parameter with a Default is replaced by it)"
                )
        return value if isinstance(value, str) else json.dumps(value)

    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): text(v) for k, v in raw.items()}
    if isinstance(raw, list):  # CloudFormation's [{ValueReference, Value}]
        try:
            return {str(item["ValueReference"]): text(item["Value"]) for item in raw}
        except (KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"rule {name!r}: SubstitutionMap list items need ValueReference and Value"
            ) from exc
    raise ConfigurationError(f"rule {name!r}: SubstitutionMap must be an object or a list")


def _threshold(raw: Any, name: str) -> Threshold | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "Value" not in raw:
        raise ConfigurationError(
            f'rule {name!r}: Threshold must be an object with a Value, e.g. {{"Value": 95, '
            '"Type": "GREATER_THAN_OR_EQUAL", "Unit": "PERCENTAGE"}'
        )
    unknown = set(raw) - {"Value", "Type", "Unit"}
    if unknown:
        raise ConfigurationError(
            f"rule {name!r}: Threshold has unknown field(s) {', '.join(sorted(unknown))}; "
            "use Value, Type and Unit"
        )
    value = raw["Value"]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigurationError(f"rule {name!r}: Threshold Value must be a number")
    try:
        number = float(value)
    except ValueError as exc:
        raise ConfigurationError(
            f"rule {name!r}: Threshold Value must be a number, not {value!r}"
        ) from exc
    kind = str(raw.get("Type", "GREATER_THAN_OR_EQUAL")).upper()
    unit = str(raw.get("Unit", "COUNT")).upper()
    if kind not in THRESHOLD_TYPES:
        raise ConfigurationError(
            f"rule {name!r}: Threshold Type {raw.get('Type')!r} is not one of "
            f"{', '.join(THRESHOLD_TYPES)}"
        )
    if unit not in THRESHOLD_UNITS:
        raise ConfigurationError(
            f"rule {name!r}: Threshold Unit {raw.get('Unit')!r} is not COUNT or PERCENTAGE"
        )
    if number < 0 or (unit == "PERCENTAGE" and number > 100):
        raise ConfigurationError(
            f"rule {name!r}: Threshold Value {value!r} is out of range for unit {unit}"
        )
    return Threshold(number, kind, unit)


def _column_selectors(raw: Any, name: str) -> tuple[ColumnSelector, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ConfigurationError(
            f'rule {name!r}: ColumnSelectors must be a non-empty list of {{"Name": ...}} or '
            '{"Regex": ...}'
        )
    selectors = []
    for item in raw:
        if not isinstance(item, dict) or len(item) != 1 or not ({"Name", "Regex"} & set(item)):
            raise ConfigurationError(
                f"rule {name!r}: each ColumnSelector has exactly one of Name or Regex, not {item!r}"
            )
        if "Name" in item:
            selectors.append(ColumnSelector(name=str(item["Name"]).strip()))
            continue
        pattern = str(item["Regex"])
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigurationError(
                f"rule {name!r}: ColumnSelector Regex {pattern!r} is not a valid regular "
                f"expression: {exc}"
            ) from exc
        selectors.append(ColumnSelector(regex=pattern))
    return tuple(selectors)


def rules_from_document(document: Any, origin: str) -> list[Rule]:
    """Rules from a parsed ruleset document (any shape :func:`.rulesets.find_rules` reads).

    Every enabled rule is parsed and checked now, before any file is read. A rule
    that cannot be used (unknown fields, a typo in its expression, a bad Threshold,
    a second rule of the same name, ...) is kept with its ``problem``: the gate
    reports it as failed with that reason, and the other rules run. Only a document
    that is not a ruleset at all raises a ConfigurationError.
    """
    items = rulesets.find_rules(document, origin).items
    rules: list[Rule] = []
    names: dict[str, int] = {}
    for number, item in enumerate(items, start=1):
        rules.append(_rule_of(item, number, names))
    return rules


def _rule_of(item: Any, number: int, names: dict[str, int]) -> Rule:
    """One rule document as a Rule; a problem with it makes a Rule with that problem (which
    names the rule, not the file: the same rule stored with its job reads the same)."""
    if not isinstance(item, dict):
        return Rule(
            name=f"rule {number}",
            check_expression="",
            problem=f"rule {number} is {json.dumps(item)[:80]}, not an object "
            'with "Name" and "CheckExpression"',
            source=item,
        )
    name = str(item.get("Name") or f"rule {number}")
    severity = str(item.get("Severity", "error")).lower()
    disabled = item.get("Disabled", False)
    try:
        if not item.get("Name") or not item.get("CheckExpression"):
            raise ConfigurationError(f"rule {number} ({name!r}) needs 'Name' and 'CheckExpression'")
        unknown = sorted(set(item) - set(RULE_KEYS))
        if unknown:
            raise ConfigurationError(
                f"rule {name!r} has unknown field(s) {', '.join(unknown)}; "
                f"known fields: {', '.join(RULE_KEYS)}"
            )
        if name in names:
            raise ConfigurationError(
                f"rules {names[name]} and {number} are both named {name!r}; "
                "rule names must be unique"
            )
        if severity not in SEVERITIES:
            raise ConfigurationError(
                f"rule {name!r} has Severity {item.get('Severity')!r}; use error or warn"
            )
        if not isinstance(disabled, bool):
            raise ConfigurationError(f"rule {name!r} has Disabled {disabled!r}; use true or false")
        rule = Rule(
            name=name,
            check_expression=str(item["CheckExpression"]),
            substitution_map=_substitution_map(item.get("SubstitutionMap"), name),
            disabled=disabled,
            severity=severity,
            threshold=_threshold(item.get("Threshold"), name),
            column_selectors=_column_selectors(item.get("ColumnSelectors"), name),
        )
        if not rule.disabled:
            validate(parse_check(rule), rule)
    except ConfigurationError as exc:
        rule = Rule(
            name=name,
            check_expression=str(item.get("CheckExpression") or ""),
            disabled=disabled is True,
            severity=severity if severity in SEVERITIES else "error",
            problem=str(exc),
            source=item,
        )
    names.setdefault(name, number)
    return rule


def problems_of(rules: list[Rule]) -> list[str]:
    """The problems of the enabled rules that cannot be evaluated."""
    return [rule.problem for rule in rules if rule.problem is not None and not rule.disabled]


def load_rules(location: str | Path) -> list[Rule]:
    """Rules from a ruleset file (JSON or YAML; ``FILE#NAME`` picks one ruleset of a
    CloudFormation template). A file that cannot be read as a ruleset is a
    ConfigurationError naming it; a bad rule is kept with its problem."""
    source = rulesets.read_ruleset(location)
    return rules_from_document(source.items, source.origin)


def rule_to_document(rule: Rule) -> Any:
    """The DataBrew-format dict of a rule, or what was written for a rule with a problem
    (for storing the ruleset with its job: reading it back gives the same rules)."""
    return rule.to_document()
