"""Ruleset files as DataBrew users have them, read into the list of rule documents.

A ruleset file is JSON or YAML and holds one of:

- a list of rules;
- a ruleset object with ``"Rules"``: what ``aws databrew describe-ruleset`` prints,
  or the body of ``create-ruleset``;
- a CloudFormation ``AWS::DataBrew::Ruleset`` resource (``{"Type", "Properties"}``);
- a CloudFormation template whose ``Resources`` define one or more
  ``AWS::DataBrew::Ruleset``: with several, the file is named ``FILE#NAME``, where
  NAME is the ruleset's ``Name`` property or its logical id.

YAML is read with PyYAML's safe loader plus CloudFormation's short function tags
(``!Ref``, ``!Sub``, ...), which become their long form (``{"Ref": ...}``,
``{"Fn::Sub": ...}``). In a template, ``Ref`` to a parameter that has a
``Default`` is replaced by that default; carbonlake evaluates no other function,
so a rule that still holds one is reported as invalid (see
:func:`carbonlake.quality.rules.rules_from_document`).

Anything that keeps the file from being read as a ruleset is a ConfigurationError
naming the file; problems of single rules are not looked at here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._exceptions import ConfigurationError

RULESET_TYPE = "AWS::DataBrew::Ruleset"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RulesetSource:
    """The rules of one ruleset as written, and where they came from."""

    items: list[Any]
    """The rule documents, in order (not checked yet)."""
    origin: str
    """The file (and ``#NAME``) for messages."""
    name: str | None = None
    """The ruleset's name, when the file gives one."""


def split_selector(location: str | Path) -> tuple[Path, str | None]:
    """``FILE#NAME`` -> (FILE, NAME); a path that exists as written is taken whole."""
    text = str(location)
    path = Path(text).expanduser()
    if path.exists() or "#" not in text:
        return path, None
    file_part, _, name = text.rpartition("#")
    return Path(file_part).expanduser(), name.strip() or None


def read_ruleset(location: str | Path) -> RulesetSource:
    """The rules of the ruleset file at ``location`` (``FILE`` or ``FILE#NAME``)."""
    path, name = split_selector(location)
    origin = f"{path}#{name}" if name else str(path)
    document = read_document(path)
    return find_rules(document, origin, name, file=str(path))


def read_document(path: Path) -> Any:
    """The parsed JSON or YAML document of a ruleset file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigurationError(f"ruleset file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigurationError(f"ruleset file {path} is a directory, not a file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"ruleset file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"ruleset file {path} cannot be read: {exc}") from exc
    if path.suffix.lower() in YAML_SUFFIXES:
        return _parse_yaml(text, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip()[:1] in ("{", "[") or path.suffix.lower() == ".json":
            raise ConfigurationError(f"ruleset file {path} is not valid JSON: {exc}") from exc
    # Neither .json nor JSON-looking: a CloudFormation template in YAML (e.g. *.template).
    return _parse_yaml(text, path)


class _CloudFormationLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads CloudFormation's ``!Function`` tags."""


def _function(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _function)


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        # A subclass of SafeLoader: plain data only, no Python objects.
        document = yaml.load(text, Loader=_CloudFormationLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(
            f"ruleset file {path} is not valid YAML{where}: {problem}"
        ) from exc
    # YAML reads unquoted dates and times as objects; rules are text and numbers.
    return json.loads(json.dumps(document, default=str))


def find_rules(
    document: Any, origin: str, name: str | None = None, *, file: str | None = None
) -> RulesetSource:
    """The ruleset inside a parsed document (see the module's docstring for the shapes)."""
    file = file or origin
    if isinstance(document, list):
        if name:
            raise ConfigurationError(
                f"ruleset file {file} is a list of rules, which has no name; "
                f"name the file without '#{name}'"
            )
        return RulesetSource(document, origin)
    if not isinstance(document, dict):
        raise ConfigurationError(_shape_message(file))
    if isinstance(document.get("Resources"), dict):
        return _from_template(document, origin, name, file)
    if isinstance(document.get("Properties"), dict):
        kind = document.get("Type", RULESET_TYPE)
        if kind != RULESET_TYPE:
            raise ConfigurationError(
                f"ruleset file {file} is a CloudFormation {kind} resource, not {RULESET_TYPE}"
            )
        return _from_resource(document["Properties"], origin, name, file)
    if "Rules" in document:
        return _from_resource(document, origin, name, file)
    raise ConfigurationError(_shape_message(file))


def _shape_message(file: str) -> str:
    return (
        f"ruleset file {file} must hold a list of rules, an object with 'Rules' (what "
        f"'aws databrew describe-ruleset' prints), or a CloudFormation {RULESET_TYPE} "
        "resource or template"
    )


def _text_name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _from_resource(
    properties: dict[str, Any], origin: str, name: str | None, file: str, logical_id: str = ""
) -> RulesetSource:
    ruleset_name = _text_name(properties.get("Name"))
    if name and name not in (ruleset_name, logical_id):
        raise ConfigurationError(
            f"ruleset file {file} defines the ruleset {ruleset_name or logical_id!r}, not {name!r}"
        )
    items = properties.get("Rules")
    if not isinstance(items, list):
        raise ConfigurationError(
            f"ruleset {ruleset_name or logical_id or file} in {file}: 'Rules' must be a list "
            "of rules"
        )
    return RulesetSource(items, origin, ruleset_name or logical_id or None)


def _from_template(
    template: dict[str, Any], origin: str, name: str | None, file: str
) -> RulesetSource:
    found = [
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") == RULESET_TYPE
    ]
    if not found:
        kinds = sorted(
            {str(r.get("Type")) for r in template["Resources"].values() if isinstance(r, dict)}
        )
        raise ConfigurationError(
            f"ruleset file {file} is a CloudFormation template without an {RULESET_TYPE} "
            f"resource (it has {', '.join(kinds) or 'no resources'})"
        )

    def label(logical_id: str, resource: dict[str, Any]) -> str:
        given = _text_name((resource.get("Properties") or {}).get("Name"))
        return f"{given} ({logical_id})" if given and given != logical_id else logical_id

    if name:
        chosen = [
            (logical_id, resource)
            for logical_id, resource in found
            if name in (logical_id, _text_name((resource.get("Properties") or {}).get("Name")))
        ]
        if not chosen:
            raise ConfigurationError(
                f"ruleset file {file} has no {RULESET_TYPE} named {name!r}; it has "
                + ", ".join(label(*item) for item in found)
            )
    elif len(found) > 1:
        raise ConfigurationError(
            f"ruleset file {file} defines {len(found)} rulesets: "
            + ", ".join(label(*item) for item in found)
            + f"; choose one as {file}#NAME"
        )
    else:
        chosen = found
    logical_id, resource = chosen[0]
    properties = resource.get("Properties")
    if not isinstance(properties, dict):
        raise ConfigurationError(f"ruleset {logical_id} in {file} has no Properties")
    defaults = {
        key: parameter["Default"]
        for key, parameter in (template.get("Parameters") or {}).items()
        if isinstance(parameter, dict) and "Default" in parameter
    }
    return _from_resource(_resolve_refs(properties, defaults), origin, None, file, logical_id)


def _resolve_refs(value: Any, defaults: dict[str, Any]) -> Any:
    """``{"Ref": P}`` -> P's default, where the template's parameter P has one."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str) and value["Ref"] in defaults:
            return defaults[value["Ref"]]
        return {key: _resolve_refs(item, defaults) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(item, defaults) for item in value]
    return value
