"""The rooms of docs/architecture.md hold: every module is in a room drawn there, and no
module imports a room its own may not (read with the stdlib ``ast``, nothing run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "carbonlake"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

THIRD_PARTY_OWNERS = {
    "fsspec": {"storage"},
    "s3fs": {"storage"},
    "boto3": {"storage"},
    "botocore": {"storage"},
    "sqlalchemy": {"db", "lake"},  # lake: the errors of pyiceberg's SQL catalog
    "alembic": {"db"},
    "psycopg": {"db"},
    "distributed": {"executions"},
}
"""Dependencies one room maps at its boundary (docs/architecture.md, "The tree")."""


def room_of(module: str) -> str:
    """The room of a module ``carbonlake.x.y``: its first part, with the few modules
    whose room has another name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    first = parts[1]
    if first.startswith("lineage"):
        return "lineage"
    return {"database": "db", "_exceptions": "errors", "_retry": "errors"}.get(first, first)


def drawn_rules() -> dict[str, set[str]]:
    """Room -> the rooms it may import, as the "## Rooms" section of the page has them."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    rooms = text.split("\n## Rooms\n", 1)[1]
    rules: dict[str, set[str]] = {}
    for section in re.split(r"^### ", rooms, flags=re.M)[1:]:
        room = section.split(":", 1)[0].strip()
        found = re.search(r"^May import: (.+?)\.?$", section, flags=re.M)
        assert found, f"room {room} of docs/architecture.md has no 'May import:' line"
        names = found.group(1).strip()
        allowed = set() if names == "nothing" else {n.strip() for n in names.split(",")}
        rules[room] = allowed
    return rules


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file, relative ones resolved; ``from a
    import b`` counts as importing ``a.b`` when that is a module, else ``a``."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = PACKAGE.parent.joinpath(*f"{target}.{alias.name}".split("."))
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                found.append((node.lineno, f"{target}.{alias.name}" if is_module else target))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_room_of_the_package_is_drawn() -> None:
    rules = drawn_rules()
    undrawn = {room_of(module_name(p)) for p in SOURCES} - set(rules)
    assert not undrawn, f"rooms missing from docs/architecture.md: {sorted(undrawn)}"
    for room, allowed in rules.items():
        assert allowed <= set(rules), f"{room} may import rooms that are not drawn"


def test_no_room_imports_one_it_may_not() -> None:
    rules = drawn_rules()
    wrong = []
    for path in SOURCES:
        room = room_of(module_name(path))
        for line, target in imports_of(path):
            top = target.split(".")[0]
            if top == "carbonlake":
                other = room_of(target)
                allowed = other == room or other in rules.get(room, set())
            else:
                allowed = room in THIRD_PARTY_OWNERS.get(top, {room})
            if not allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {target}")
    assert not wrong, "imports the architecture does not allow:\n" + "\n".join(sorted(set(wrong)))


@pytest.mark.parametrize(
    ("module", "room"),
    [
        ("carbonlake", "package"),
        ("carbonlake.executions.map", "executions"),
        ("carbonlake.lineage_verify", "lineage"),
        ("carbonlake.lineage.verify", "lineage"),
        ("carbonlake.database", "db"),
        ("carbonlake._retry", "errors"),
    ],
)
def test_rooms_are_found_by_module_name(module: str, room: str) -> None:
    assert room_of(module) == room


def test_the_rules_forbid_what_the_page_says() -> None:
    # The rules are read from the page, not assumed: these imports are not allowed.
    rules = drawn_rules()
    assert "db" not in rules["storage"]
    assert "executions" not in rules["calculate"]
    assert "cli" not in rules["service"]
