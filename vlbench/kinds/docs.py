"""What ``vlbench show kind:NAME``, ``vlbench list kinds`` and ``vlbench schema`` print, made from the
kinds' and formats' schemas (``vlbench.spec.schema``): option tables and a JSON schema for editors."""

from __future__ import annotations

from typing import Any

from vlbench.registries import TASK_KINDS
from vlbench.spec.checking import source_schema
from vlbench.spec.fields import DatasetFields, TaskFields
from vlbench.spec.schema import _args, describe, hints, is_schema, json_schema, matches, type_name


def nested_schemas(*roots: type) -> dict[str, type]:
    """Schemas nested in these (e.g. an outcome, a filter condition): class name -> class."""
    found: dict[str, type] = {}

    def walk(tp: Any) -> None:
        for arg in _args(tp):
            walk(arg)
        if is_schema(tp) and tp not in roots and tp.__name__ not in found:
            found[tp.__name__] = tp
            for field_type in hints(tp).values():
                walk(field_type)

    for root in roots:
        for field_type in hints(root).values():
            walk(field_type)
    return found


def kind_doc(name: str) -> dict[str, Any]:
    """Everything 'vlbench show kind:NAME' prints, from the schemas."""
    kind = TASK_KINDS.get(name)
    return {
        "name": name,
        "doc": (kind.__doc__ or "").strip().splitlines()[0] if kind.__doc__ else "",
        "metrics": list(kind.metric_patterns),
        "protocol": describe(kind.protocol_schema),
        "files": describe(kind.files_schema),
        "formats": {fmt: describe(source_schema(kind, fmt)) for fmt in kind.readers.names()},
        "format_docs": {fmt: ((kind.readers.get(fmt).__doc__ or "").strip().splitlines() or [""])[0] for fmt in kind.readers.names()},
        "nested": {cls_name: (((cls.__doc__ or "").strip().splitlines() or [""])[0], describe(cls))
                   for cls_name, cls in nested_schemas(kind.protocol_schema, kind.files_schema,
                                                       *(source_schema(kind, fmt) for fmt in kind.readers.names())).items()},
        "extra": kind.docs(),
        "samples": samples_layout(kind),
    }


def samples_layout(kind: Any) -> list[tuple[str, str, str]]:
    """The fields of the kind's per-item records (the result's samples file, one JSON object per line):
    (field, type, meaning), a type that admits null marking a field only some records have."""
    return [(name, type_name(tp).replace(" or null", "") + (", not in every record" if matches(None, tp) else ""), meaning)
            for name, (tp, meaning) in kind.record_fields.items()]


def _source_schema(kind: Any) -> dict[str, Any]:
    branches = []
    for fmt in kind.readers.names():
        schema = json_schema(source_schema(kind, fmt), with_required=False)
        schema["properties"]["format"] = {"const": fmt}
        branches.append({"if": {"properties": {"format": {"const": fmt}}}, "then": schema})
    return {"type": "object", "required": ["format"], "properties": {"format": {"enum": kind.readers.names()}}, "allOf": branches}


def task_json_schema() -> dict[str, Any]:
    """A JSON schema for task files (editors validate with it); base files may leave out required keys."""
    top = json_schema(TaskFields, with_required=False)
    branches = []
    from vlbench.kinds.base import TaskKind

    for name in TASK_KINDS.names():
        kind: type[TaskKind] = TASK_KINDS.get(name)
        own_metrics = kind.task_metrics.__func__ is not TaskKind.task_metrics.__func__  # metrics the task file may name itself
        dataset = json_schema(DatasetFields, with_required=False,
                              extra={"sources": {"type": "array", "items": _source_schema(kind)}})
        branches.append({
            "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
            "then": {"properties": {
                "protocol": json_schema(kind.protocol_schema, with_required=False),
                "files": json_schema(kind.files_schema, with_required=False),
                "dataset": dataset,
                "metrics": {"type": "array", "items": {"type": "string"} if own_metrics else
                            {"type": "string", "anyOf": [{"pattern": f"^(?:{p})$"} for p in kind.metric_patterns]}},
            }},
        })
    top["properties"]["kind"] = {"enum": TASK_KINDS.names(), "description": top["properties"]["kind"].get("description", "")}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "vlbench task file", **top, "allOf": branches}

