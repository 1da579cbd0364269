"""Closed, typed schemas for task files, built from dataclasses with field metadata.

Every part of a task file is described by one dataclass: the generic fields
(``vlbench.spec.fields.TaskFields``), each kind's ``protocol:`` (``TaskKind.protocol_schema``) and
``files:`` (``TaskKind.files_schema``), and each dataset format's source keys
(``<Reader>.options``). ``parse`` checks a mapping against one: unknown keys (with a did-you-mean),
missing required keys, types and allowed ranges/choices, then the class's own ``check()`` for
rules that span fields. ``describe`` and ``json_schema`` turn the same classes into the rows of
``vlbench show kind:NAME`` and into a JSON schema for editors.

Adding an option is one line in the right dataclass, e.g. in a kind's protocol schema::

    top_k: int = option(5, help="how many classes to keep", low=1)

``option(default, help=..., low=..., high=..., choices=..., gt=...)``: leave ``default`` out for a
required key. ``choices`` may be a callable returning the allowed names (e.g. a registry's).
Supported types: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``X | None``, unions,
``list[X]``, ``dict[str, X]``, ``Literal[...]``, ``Any`` and nested schema dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Literal, Mapping, Union

from vlbench.errors import TaskSpecError
from vlbench.registry import did_you_mean


def schema(cls: type) -> type:
    """Decorator: a keyword-only dataclass usable as a schema (fields may be inherited in any order)."""
    return dataclass(kw_only=True)(cls)


def option(
    default: Any = MISSING,
    *,
    help: str,
    low: float | None = None,
    high: float | None = None,
    gt: float | None = None,
    choices: Any = None,
) -> Any:
    """A documented schema field; see the module docstring."""
    metadata = {"help": help, "low": low, "high": high, "gt": gt, "choices": choices}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class SchemaError(Exception):
    """Raised by a schema's ``check()``: which field (relative to the schema) and what is wrong."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


# -- types -----------------------------------------------------------------------------------
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def is_schema(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def type_name(tp: Any) -> str:
    """How a type reads in messages and docs: 'number', 'list of text', 'whole number or null'."""
    if tp is Any:
        return "any value"
    if _is_union(tp):
        return " or ".join(type_name(a) for a in _args(tp))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in _args(tp))
    if origin is list:
        return f"list of {type_name(_args(tp)[0])}"
    if origin is dict:
        return f"mapping of text -> {type_name(_args(tp)[1])}"
    if is_schema(tp):
        return "mapping"
    return {bool: "true/false", int: "whole number", float: "number", str: "text", type(None): "null", dict: "mapping", list: "list"}.get(tp, getattr(tp, "__name__", str(tp)))


def matches(value: Any, tp: Any) -> bool:
    """Whether a JSON/YAML value has the type ``tp`` (the types a schema field may have)."""
    return _matches(value, tp)


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    if _is_union(tp):
        return any(_matches(value, a) for a in _args(tp))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in _args(tp)
    if origin is list:
        return isinstance(value, list) and all(_matches(v, _args(tp)[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _matches(v, _args(tp)[1]) for k, v in value.items())
    if is_schema(tp):
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is type(None):
        return value is None
    return isinstance(value, tp)


def choices_of(field: dataclasses.Field) -> list[Any] | None:
    choices = field.metadata.get("choices")
    return list(choices()) if callable(choices) else (list(choices) if choices is not None else None)


def _constraint_problem(field: dataclasses.Field, value: Any) -> str | None:
    meta = field.metadata
    numbers = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for number in numbers:
        if meta.get("low") is not None and number < meta["low"]:
            return f"must be >= {meta['low']}, got {value!r}"
        if meta.get("high") is not None and number > meta["high"]:
            return f"must be <= {meta['high']}, got {value!r}"
        if meta.get("gt") is not None and number <= meta["gt"]:
            return f"must be > {meta['gt']}, got {value!r}"
    choices = choices_of(field)
    if choices is not None and value is not None:
        for item in value if isinstance(value, list) else [value]:
            if item not in choices:
                return f"'{item}' is not allowed{did_you_mean(str(item), map(str, choices))}; choose from {', '.join(map(str, choices))}"
    return None


# -- parsing ---------------------------------------------------------------------------------
def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def is_required(field: dataclasses.Field) -> bool:
    return field.default is MISSING and field.default_factory is MISSING  # type: ignore[misc]


def default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None if field.default is MISSING else field.default


def unknown_keys(cls: type, raw: Mapping[str, Any]) -> list[str]:
    known = fields_of(cls)
    return [k for k in raw if k not in known]


def parse(cls: type, raw: Any, path: Any, prefix: str = "", *, required: bool = True, what: str = "") -> Any:
    """Check ``raw`` against schema ``cls`` and build it; TaskSpecError names ``path`` and the field.

    ``required=False`` skips the check for missing required keys (e.g. a source read from the hub).
    """
    where = prefix.rstrip(".") or "<root>"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise TaskSpecError(path, where, f"expected a mapping, got {type(raw).__name__} {raw!r}")
    known = fields_of(cls)
    for key in raw:
        if key not in known:
            context = f" for {what}" if what else ""
            raise TaskSpecError(path, f"{prefix}{key}", f"unknown key{context}{did_you_mean(str(key), known)}; known: {', '.join(known)}")
    field_types = hints(cls)
    values: dict[str, Any] = {}
    for name, field in known.items():
        if name not in raw:
            if is_required(field):
                if required:
                    needs = f"; {what} needs it" if what else ""
                    meaning = f" ({field.metadata['help']})" if field.metadata.get("help") else ""
                    raise TaskSpecError(path, f"{prefix}{name}", f"missing{needs}{meaning}")
                values[name] = None
            continue
        value, tp = raw[name], field_types[name]
        nested = tp if is_schema(tp) else next((a for a in _args(tp) if is_schema(a)), None) if _is_union(tp) else None
        if nested is not None and isinstance(value, Mapping):
            values[name] = parse(nested, value, path, f"{prefix}{name}.", required=required)
            continue
        listed = next((a for a in (_args(tp) if _is_union(tp) else (tp,)) if typing.get_origin(a) is list and is_schema(_args(a)[0])), None)
        if listed is not None and isinstance(value, list):
            values[name] = [parse(_args(listed)[0], v, path, f"{prefix}{name}[{i}].", required=required) for i, v in enumerate(value)]
            continue
        mapped = next((a for a in (_args(tp) if _is_union(tp) else (tp,)) if typing.get_origin(a) is dict and is_schema(_args(a)[1])), None)
        if mapped is not None and isinstance(value, Mapping):
            values[name] = {k: parse(_args(mapped)[1], v, path, f"{prefix}{name}.{k}.", required=required) for k, v in value.items()}
            continue
        if not _matches(value, tp):
            raise TaskSpecError(path, f"{prefix}{name}", f"expected {type_name(tp)}, got {type(value).__name__} {value!r}")
        problem = _constraint_problem(field, value)
        if problem:
            raise TaskSpecError(path, f"{prefix}{name}", problem)
        values[name] = copy.deepcopy(value)
    instance = cls(**values)
    check = getattr(instance, "check", None)
    if callable(check):
        try:
            check()
        except SchemaError as exc:
            raise TaskSpecError(path, f"{prefix}{exc.field}".rstrip(".") or "<root>", exc.problem) from None
    return instance


def as_dict(instance: Any) -> dict[str, Any]:
    return dataclasses.asdict(instance)


# -- documentation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OptionDoc:
    name: str
    type: str
    default: str
    allowed: str
    help: str


def describe(cls: type) -> list[OptionDoc]:
    """One row per field: name, type, default ('required' when none), allowed values, meaning."""
    rows = []
    field_types = hints(cls)
    for name, field in fields_of(cls).items():
        meta = field.metadata
        allowed = []
        if meta.get("low") is not None:
            allowed.append(f">= {meta['low']}")
        if meta.get("gt") is not None:
            allowed.append(f"> {meta['gt']}")
        if meta.get("high") is not None:
            allowed.append(f"<= {meta['high']}")
        choices = choices_of(field)
        if choices is not None:
            allowed.append(", ".join(map(str, choices)))
        default = "required" if is_required(field) else repr(default_of(field))
        rows.append(OptionDoc(name, type_name(field_types[name]), default, "; ".join(allowed), str(meta.get("help", ""))))
    return rows


def _type_schema(tp: Any, with_required: bool = True) -> dict[str, Any]:
    if tp is Any:
        return {}
    if _is_union(tp):
        return {"anyOf": [_type_schema(a, with_required) for a in _args(tp)]}
    origin = typing.get_origin(tp)
    if origin is Literal:
        return {"enum": list(_args(tp))}
    if origin is list:
        return {"type": "array", "items": _type_schema(_args(tp)[0], with_required)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(_args(tp)[1], with_required)}
    if is_schema(tp):
        return json_schema(tp, with_required=with_required)
    return {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
            type(None): {"type": "null"}, dict: {"type": "object"}, list: {"type": "array"}}.get(tp, {})


def json_schema(cls: type, *, with_required: bool = True, extra: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """JSON schema (draft 2020-12 subset) of a schema dataclass; ``extra`` replaces some properties."""
    properties: dict[str, Any] = {}
    field_types = hints(cls)
    for name, field in fields_of(cls).items():
        prop = dict(_type_schema(field_types[name], with_required))
        meta = field.metadata
        for key, keyword in (("low", "minimum"), ("high", "maximum"), ("gt", "exclusiveMinimum")):
            if meta.get(key) is not None and prop.get("type") in ("integer", "number"):
                prop[keyword] = meta[key]
        choices = choices_of(field)
        if choices is not None:
            if prop.get("type") == "array":
                prop["items"] = {"enum": choices}
            else:
                prop = {**prop, "enum": choices + ([None] if not is_required(field) and default_of(field) is None else [])}
        if meta.get("help"):
            prop["description"] = meta["help"]
        if not is_required(field):
            prop["default"] = default_of(field)
        properties[name] = prop
    properties.update(extra or {})
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [n for n, f in fields_of(cls).items() if is_required(f)]
    if with_required and required:
        out["required"] = required
    return out

