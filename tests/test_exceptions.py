"""The error tree: every exception carbonlake defines or raises is drawn at the top of
``_exceptions.py``, and the one retry policy retries exactly the Transient ones."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import carbonlake
from carbonlake import _exceptions
from carbonlake._exceptions import (
    CarbonlakeError,
    ObjectMissing,
    Signal,
    StorageUnavailable,
    Transient,
)
from carbonlake._retry import Attempts, backoff
from carbonlake.storage import Storage

SRC = Path(carbonlake.__file__).parent
TREE = _exceptions.__doc__ or ""
DRAWN = dict(re.findall(r"^    [\s│├└─]*([A-Z]\w+)(?:\s+(T)\s)?", TREE, flags=re.MULTILINE))
"""Class name -> "T" when drawn as transient, "" otherwise (the words of the drawing)."""

ALLOWED_BUILTINS = {"AssertionError", "KeyboardInterrupt"}
"""AssertionError where a line cannot be reached (a bug, never user input), and the
KeyboardInterrupt of a second Ctrl-C (stop at once)."""


def _modules() -> list[str]:
    names = ["carbonlake"]
    for info in pkgutil.walk_packages([str(SRC)], prefix="carbonlake."):
        names.append(info.name)
    return names


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        if name.endswith("__main__") or name.startswith("carbonlake.db.migrations"):
            continue  # run by Alembic only (their env reads Alembic's context)
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("carbonlake"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_exception_class_is_in_the_drawn_tree() -> None:
    classes = _exception_classes()
    assert len(classes) > 20  # the walk found the package's classes
    for where, cls in classes.items():
        assert cls.__name__ in DRAWN, f"{where} is not drawn in _exceptions.py's tree"
        assert cls is Transient or issubclass(cls, CarbonlakeError | Signal), (
            f"{where} is neither a CarbonlakeError nor a Signal"
        )
        assert issubclass(cls, Transient) == (DRAWN[cls.__name__] == "T" or cls is Transient), (
            f"{where}: the drawing and the class disagree on whether it is transient"
        )


def test_the_drawing_names_no_class_that_does_not_exist() -> None:
    names = {cls.__name__ for cls in _exception_classes().values()}
    drawn = set(DRAWN)
    assert drawn <= names, f"drawn but not defined: {sorted(drawn - names)}"


def _caught_around(parents: list[ast.AST], name: str) -> bool:
    """Whether a ``try`` of the same function around the raise catches ``name``."""
    for node in reversed(parents):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return False
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                types = handler.type
                names = (
                    [e.id for e in types.elts if isinstance(e, ast.Name)]
                    if isinstance(types, ast.Tuple)
                    else [types.id]
                    if isinstance(types, ast.Name)
                    else []
                )
                if name in names:
                    return True
    return False


def _in_module_getattr(parents: list[ast.AST]) -> bool:
    """Whether the innermost function around a raise is a module-level ``__getattr__``."""
    functions = [
        i for i, n in enumerate(parents) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    if len(functions) != 1 or functions[0] == 0:
        return False
    function = parents[functions[0]]
    assert isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
    return function.name == "__getattr__" and isinstance(parents[functions[0] - 1], ast.Module)


def _raises(tree: ast.AST) -> list[tuple[ast.Raise, list[ast.AST]]]:
    found: list[tuple[ast.Raise, list[ast.AST]]] = []

    def walk(node: ast.AST, parents: list[ast.AST]) -> None:
        if isinstance(node, ast.Raise):
            found.append((node, parents))
        for child in ast.iter_child_nodes(node):
            walk(child, [*parents, node])

    walk(tree, [])
    return found


def test_the_package_raises_only_exceptions_of_the_tree() -> None:
    builtin_exceptions = {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "_postgres.py":
            continue
        for node, parents in _raises(ast.parse(path.read_text(encoding="utf-8"))):
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if not isinstance(target, ast.Name) or target.id not in builtin_exceptions:
                continue  # a re-raise, a raised variable, or one of ours (checked above)
            if target.id in ALLOWED_BUILTINS or _caught_around(parents, target.id):
                continue
            if target.id == "AttributeError" and _in_module_getattr(parents):
                continue  # a module's __getattr__ says "no such name" so (PEP 562)
            offenders.append(f"{path.relative_to(SRC)}:{node.lineno} raises {target.id}")
    assert not offenders, "builtin exceptions escape: " + "; ".join(offenders)


def test_a_missing_object_is_not_retried_but_a_failing_store_is(tmp_path: Path) -> None:
    storage = Storage((tmp_path / "ws").as_uri())
    storage.ensure_buckets()
    calls = []
    waits: list[float] = []
    policy = Attempts(backoff(3, 0.01), sleep=waits.append)

    def read_missing() -> bytes:
        calls.append("read")
        return storage.read_bytes(storage.url("raw", "nothing-here.csv"))

    with pytest.raises(ObjectMissing, match="does not exist"):
        policy.run(read_missing)
    assert calls == ["read"] and waits == []  # asked once: asking again cannot help

    (tmp_path / "ws" / "enriched").rmdir()
    (tmp_path / "ws" / "enriched").write_text("in the way")  # every write fails (OSError)

    def write_blocked() -> None:
        calls.append("write")
        storage.write_bytes(storage.url("enriched", "root/part_00000.parquet"), b"x")

    with pytest.raises(StorageUnavailable, match="cannot write"):
        policy.run(write_blocked)
    assert calls.count("write") == 3 and waits == [0.01, 0.02]
    assert policy.number == 3


def test_a_narrower_policy_retries_its_own_kind_only(tmp_path: Path) -> None:
    # The lake retries its commit conflicts itself and leaves every other transient
    # error to the execution's attempts, so nothing is retried twice over.
    from carbonlake._exceptions import CommitConflict, DatabaseError

    assert issubclass(CommitConflict, DatabaseError) and issubclass(CommitConflict, Transient)
    storage = Storage((tmp_path / "ws").as_uri())
    storage.ensure_buckets()
    (tmp_path / "ws" / "enriched").rmdir()
    (tmp_path / "ws" / "enriched").write_text("in the way")
    waits: list[float] = []
    policy = Attempts(
        [0.01, 0.02, 0.03],
        sleep=waits.append,
        retries=lambda exc: isinstance(exc, CommitConflict),
    )
    outcomes = iter(["conflict", "conflict", "write"])

    def commit() -> None:
        if next(outcomes) == "conflict":
            raise CommitConflict("results", "another process committed first")
        storage.write_bytes(storage.url("enriched", "root/part_00000.parquet"), b"x")

    with pytest.raises(StorageUnavailable, match="cannot write"):
        policy.run(commit)
    assert policy.number == 3 and waits == [0.01, 0.02]  # two conflicts retried, no more
