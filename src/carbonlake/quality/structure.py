"""Checks of the file itself, before any rule: is it text, UTF-8, well-formed CSV?

Each problem becomes a :class:`FileCheck`, reported like a failed rule with a
reason that names the byte, line or column to fix. They never raise.

The shape check is column-wise: Polars reads the file as lines and tests every
line at once against the grammar of one CSV record (a quoted field is
``"..."`` with quotes doubled inside, an unquoted field has no quote) and
counts its fields. Only when some line does not fit, which is also what a
legitimate quoted line break looks like, does :func:`locate_shape_problems`
walk the lines in order to tell the two apart and name the lines to fix.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

MAX_PROBLEMS = 5
"""How many malformed lines a report names."""

MAX_RECORD_LINES = 1000
"""A quoted field running on longer than this many lines is taken as an unclosed quote."""

_FIELD = r'(?:"(?:[^"]|"")*"|[^",\n]*)'
_RECORD = re.compile(rf"{_FIELD}(?:,{_FIELD})*")
_OPEN = re.compile(rf'(?:{_FIELD},)*"(?:[^"]|"")*')
_QUOTED = r'"(?:[^"]|"")*"'
_MAX_PATTERN_WIDTH = 1000
"""Up to this many columns, one regular expression of the whole record checks a line."""


@dataclass
class FileCheck:
    """A problem with the file as a whole, reported like a failed rule."""

    name: str
    reason: str

    def as_result(self) -> dict[str, Any]:
        """The report entry of this check."""
        return {
            "name": self.name,
            "definition": {"BuiltInCheck": self.name},
            "expression": self.name,
            "status": "FAILED",
            "severity": "error",
            "failedCount": None,
            "observedValue": None,
            "reason": self.reason,
            "failingSamples": [],
            "columnResults": [],
        }


def check_bytes(path: Path) -> FileCheck | None:
    """Empty, binary or not UTF-8: the first byte-level problem, or None."""
    size = path.stat().st_size
    if size == 0:
        return FileCheck("File is not empty", "the file is empty (0 bytes); upload the data file")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return FileCheck(
            "File is UTF-8",
            "the file is UTF-16 encoded (it starts with a UTF-16 byte-order mark); "
            "save it as CSV UTF-8 and upload it again",
        )
    return _check_encoding(path)


def _check_encoding(path: Path) -> FileCheck | None:
    """Stream-decode the file as UTF-8; name the line of the first bad byte.

    A block of plain ASCII (most of a CSV file) is valid UTF-8 as it stands, and
    is only checked as such (``bytes.isascii`` is many times faster than decoding);
    lines are counted only to name the line of a problem.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        offset = 0
        while chunk := handle.read(1 << 20):
            if b"\x00" in chunk:
                nul = chunk.index(b"\x00")
                return FileCheck(
                    "File is text",
                    f"the file contains NUL bytes (first at byte {offset + nul}, line "
                    f"{_line_at(path, offset + nul)}): it looks like a binary file, not CSV. "
                    "Export the data as CSV (UTF-8) and upload that.",
                )
            if not chunk.isascii() or decoder.getstate()[0]:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad = offset + exc.start
                    return FileCheck(
                        "File is UTF-8",
                        f"byte {bad} (line {_line_at(path, bad)}) is not valid UTF-8 "
                        f"(0x{chunk[exc.start]:02x}): the file is in another encoding. "
                        "Save it as CSV UTF-8 and upload it again.",
                    )
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return FileCheck(
                "File is UTF-8",
                "the file ends in the middle of a UTF-8 character; it is truncated or in "
                "another encoding. Save it as CSV UTF-8 and upload it again.",
            )
    return None


def _line_at(path: Path, position: int) -> int:
    """The line (from 1) of the byte at ``position``."""
    line = 1
    with path.open("rb") as handle:
        while position > 0 and (chunk := handle.read(min(position, 1 << 20))):
            line += chunk.count(b"\n")
            position -= len(chunk)
    return line


def check_header(columns: list[str]) -> list[FileCheck]:
    """Problems of the header line: another separator, repeated or empty names."""
    problems = []
    if len(columns) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if separator in columns[0]:
                return [
                    FileCheck(
                        "File is comma-separated",
                        f"the header is one column separated by {name} ({columns[0][:80]!r}); "
                        "save the file as comma-separated CSV (UTF-8) and upload it again",
                    )
                ]
    counts = Counter(columns)
    duplicates = sorted(c for c, n in counts.items() if n > 1)
    if duplicates:
        problems.append(
            FileCheck(
                "Header names are unique",
                f"the header repeats the column name(s) {', '.join(duplicates)}; "
                "rename or remove the repeated columns",
            )
        )
    empty = [str(i + 1) for i, c in enumerate(columns) if c == ""]
    if empty:
        problems.append(
            FileCheck(
                "Header names are not empty",
                f"the header has no name for column(s) {', '.join(empty)} (counting from 1); "
                "name every column or remove the empty ones",
            )
        )
    return problems


def check_width(columns: list[str], max_columns: int) -> FileCheck | None:
    """A file wider than ``[quality] max_columns`` is refused before it is read."""
    if len(columns) <= max_columns:
        return None
    return FileCheck(
        "File has at most max_columns columns",
        f"the header has {len(columns):,} columns, more than the {max_columns:,} allowed by "
        "[quality] max_columns; remove the columns the pipeline does not use, or raise "
        "the setting (CARBONLAKE_QUALITY__MAX_COLUMNS)",
    )


def check_shape(path: Path, width: int) -> FileCheck | None:
    """Every record has ``width`` fields and well-formed quotes; None when so."""
    if _all_lines_fit(path, width):
        return None
    problems = locate_shape_problems(path, width)
    if not problems:
        return None  # only quoted line breaks, which are fine
    more = (
        " (showing the first problems; there may be more)" if len(problems) >= MAX_PROBLEMS else ""
    )
    return FileCheck("File is valid CSV", "; ".join(problems) + more)


def record_pattern(width: int) -> str:
    """A regular expression for one whole line that is one record of ``width`` fields."""
    return f"^{_FIELD}(?:,{_FIELD}){{{width - 1}}}$"


def _all_lines_fit(path: Path, width: int) -> bool:
    """Whether every non-blank line after the header is one whole record of ``width`` fields."""
    lines = pl.scan_csv(
        path,
        has_header=False,
        separator="\x00",  # never in the file: NUL bytes were refused before
        quote_char=None,
        schema={"line": pl.String},
        empty_string_is_null=False,
        truncate_ragged_lines=True,
        glob=False,
    ).with_row_index("line_number", offset=1)
    line = pl.col("line")
    if width <= _MAX_PATTERN_WIDTH:
        # One regular expression checks the quoting and counts the fields at once (the
        # grammar is unambiguous: a line fits exactly when it parses as `width` fields).
        misfit = ~line.str.contains(record_pattern(width))
    else:
        fields = line.str.replace_all(_QUOTED, "").str.count_matches(",", literal=True) + 1
        misfit = ~line.str.contains(f"^{_RECORD.pattern}$") | (fields != width)
    misfits = (
        lines.filter(pl.col("line_number") > 1)
        .filter(line.is_not_null() & (line != ""))
        .filter(misfit)
        .select(pl.len())
        .collect(engine="streaming")
        .item()
    )
    return int(misfits) == 0


def _field_count(record: str) -> int:
    return re.sub(_QUOTED, "", record).count(",") + 1


def locate_shape_problems(path: Path, width: int) -> list[str]:
    """Name the lines whose records are malformed, following quoted line breaks.

    Reached only when the column-wise check found a line that does not fit.
    """
    problems: list[str] = []
    pending: list[str] = []
    start = 0
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            if len(problems) >= MAX_PROBLEMS:
                break
            line = raw.rstrip("\r\n")
            if number == 1:
                continue
            if not pending:
                if line == "":
                    continue
                start = number
            pending.append(line)
            record = "\n".join(pending)
            if _RECORD.fullmatch(record):
                fields = _field_count(record)
                if fields != width:
                    where = f"line {start}" if len(pending) == 1 else f"lines {start}-{number}"
                    problems.append(
                        f"{where} has {fields} field{'s' if fields != 1 else ''} but the header "
                        f"has {width}; check for an unquoted comma, a missing separator or a "
                        "quote that is not closed there"
                    )
                pending = []
            elif _OPEN.fullmatch(record) and len(pending) < MAX_RECORD_LINES:
                continue  # a quoted field runs on to the next line
            else:
                problems.append(_quote_problem(start, number, len(pending)))
                pending = []
    if pending and len(problems) < MAX_PROBLEMS:
        problems.append(
            f"line {start}: a quote opened on line {start} is never closed (the file ends "
            "inside the quoted field); check the quotes on that line"
        )
    return problems


def _quote_problem(start: int, end: int, lines: int) -> str:
    if lines == 1:
        return (
            f"line {start}: a quote inside an unquoted field, or text after a closing quote; "
            'put the whole field in quotes and double any quote inside it ("")'
        )
    if lines >= MAX_RECORD_LINES:
        return (
            f"line {start}: a quote opened on line {start} is not closed within "
            f"{MAX_RECORD_LINES} lines; check the quotes on that line"
        )
    return (
        f"line {start}: a quote opened on line {start} does not close where its field ends "
        f"(the record runs on to line {end}); check the quotes on line {start}"
    )


def records_problem(rows: int, empty_rows: int) -> FileCheck | None:
    """The file has no data rows (``rows`` records, ``empty_rows`` empty rows skipped)."""
    if rows > 0:
        return None
    detail = f" ({empty_rows} empty row{'s' if empty_rows != 1 else ''} only)" if empty_rows else ""
    return FileCheck(
        "File has rows",
        f"the file has a header but no data rows{detail}; nothing would be calculated",
    )
