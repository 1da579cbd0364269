"""Checking task files against the schemas of their kind and formats (used by the catalog).

``load_task`` reads a task file (``vlbench.spec.taskfile``), applies ``--set`` overrides and the task fields
the run's shorthands set (``--seed`` -> ``protocol.seed``, ``--dense-variant`` -> ``protocol.dense_variant``,
given as fields by ``vlbench.run.settings``; only for tasks whose protocol has that field set), then checks every
part: generic fields, ``dataset`` and each source against its format's ``options``, ``files``
against the kind's ``files_schema``, ``protocol`` against the kind's ``protocol_schema``, metrics
against the kind's metric patterns, and the kind's own ``check``. Nothing here needs a model.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from vlbench.spec import named_protocols
from vlbench.errors import TaskSpecError
from vlbench.registries import TASK_KINDS
from vlbench.registry import did_you_mean
from vlbench.spec.schema import _args, _is_union, as_dict, fields_of, hints, is_schema, parse
from vlbench.spec.taskfile import TASK_NAME, TaskSpec, apply_overrides, read_task_file
from vlbench.spec.fields import SourceFields, TaskFields

if TYPE_CHECKING:  # kinds are reached through their registry: checking a task file imports only its own kind
    from vlbench.kinds.base import TaskKind

def source_schema(kind: type[TaskKind], format_name: str) -> type:
    """The schema of one format's source keys (the bare common keys for readers that declare none)."""
    return getattr(kind.readers.get(format_name), "options", SourceFields)


def _check_sources(spec: TaskSpec, kind: type[TaskKind], sources: str = "sources") -> None:
    for i, source in enumerate(spec.dataset.get(sources) or []):
        where = f"dataset.{sources}[{i}]"
        if not isinstance(source, dict) or "format" not in source:
            raise TaskSpecError(spec.source_file, where, "expected a mapping with 'format'")
        if source["format"] not in kind.readers:
            known = ", ".join(kind.readers.names())
            hint = did_you_mean(str(source["format"]), kind.readers.names())
            raise TaskSpecError(spec.source_file, f"{where}.format", f"unknown format '{source['format']}' for {kind.name}{hint} (known: {known})")
        reader = kind.readers.get(source["format"])
        if getattr(reader, "options", None) is None:  # a plugin reader without a schema: its required keys only
            for key in getattr(reader, "required", ()):
                if key not in source and not source.get("hub"):
                    raise TaskSpecError(spec.source_file, f"{where}.{key}", f"missing; the {source['format']} format needs it")
            continue
        kind.source_options(spec, i, sources)  # the typed options its reader will get, parsed (and checked) once


def declared_keys(cls: type, prefix: str = "") -> set[str]:
    """Dotted keys a schema declares, nested schemas included (``dataset.path``, ``protocol.seed``)."""
    keys: set[str] = set()
    field_types = hints(cls)
    for name in fields_of(cls):
        keys.add(prefix + name)
        tp = field_types[name]
        nested = tp if is_schema(tp) else next((a for a in _args(tp) if is_schema(a)), None) if _is_union(tp) else None
        if nested is not None:
            keys |= declared_keys(nested, f"{prefix}{name}.")
    return keys


def settable_keys(config: Mapping[str, Any]) -> set[str]:
    """Dotted keys ``--set`` may name for a task: those its schemas declare (generic fields, its
    kind's ``protocol`` and ``files``), and ``language`` only on tasks with ``languages``."""
    keys = declared_keys(TaskFields)
    kind_name = config.get("kind")
    if isinstance(kind_name, str) and kind_name in TASK_KINDS:
        kind: type[TaskKind] = TASK_KINDS.get(kind_name)
        keys |= declared_keys(kind.protocol_schema, "protocol.") | declared_keys(kind.files_schema, "files.")
    if "languages" not in config:  # a run's --language leaves tasks in one language alone
        keys.discard("language")
    return keys


def validate(spec: TaskSpec) -> None:
    """Check a loaded task; TaskSpecError names the file, the field and what to do."""
    path, config = spec.source_file, spec.config
    kind_name = config.get("kind")
    if isinstance(kind_name, str) and kind_name and kind_name not in TASK_KINDS:
        hint = did_you_mean(kind_name, TASK_KINDS.names())
        raise TaskSpecError(path, "kind", f"unknown kind '{kind_name}'{hint}; known: {', '.join(TASK_KINDS.names())}")
    parse(TaskFields, config, path, what="a task file")
    if not TASK_NAME.match(spec.name):
        raise TaskSpecError(path, "task", f"'{spec.name}' is not a valid task name (letters, digits, _ . + -)")
    kind: type[TaskKind] = TASK_KINDS.get(kind_name)
    kind.options(spec)
    own_metrics = set(kind.task_metrics(spec))
    for metric in spec.metrics:
        if metric not in own_metrics and not any(re.fullmatch(p, metric) for p in kind.metric_patterns):
            hint = did_you_mean(metric, [p for p in kind.metric_patterns if re.fullmatch(r"[\w/]+", p)])
            own = f"; this task declares {', '.join(sorted(own_metrics))}" if own_metrics else ""
            raise TaskSpecError(path, "metrics", f"'{metric}' is not a {kind.name} metric{hint} (known: {', '.join(kind.metric_patterns)}{own})")
    _check_sources(spec, kind)
    if getattr(kind, "fits_on_train", False):
        if not spec.dataset.get("train_sources"):
            raise TaskSpecError(path, "dataset.train_sources", f"{kind.name} tasks fit on a training split: list where it may be")
        _check_sources(spec, kind, "train_sources")
    elif spec.dataset.get("train_sources"):
        raise TaskSpecError(path, "dataset.train_sources", f"{kind.name} tasks fit nothing on a training split; remove it")
    parse(kind.files_schema, config.get("files") or {}, path, "files.", what=f"{kind.name} tasks")
    for key, value in (config.get("files") or {}).items():
        if not Path(value).is_file():
            raise TaskSpecError(path, f"files.{key}", f"file not found: {value}")
    kind.check(spec)


def _shorthand_overrides(spec: TaskSpec, shorthands: Mapping[str, Any]) -> dict[str, Any]:
    """The ``protocol.*`` fields the run's shorthands set on this task: those its protocol sets, not null."""
    kind = TASK_KINDS.get(spec.kind)
    used = as_dict(kind.options(spec))
    return {key: value for key, value in shorthands.items()
            if value is not None and key.startswith("protocol.") and used.get(key.removeprefix("protocol.")) is not None}


def load_task_file(
    path: Path, overrides: Mapping[str, Any] | None = None, shorthands: Mapping[str, Any] | None = None, protocol: str | None = None
) -> TaskSpec:
    """Load, override and check one task file (see the module docstring); ``protocol`` names a
    protocol file (``vlbench.spec.named_protocols``) merged in when it covers the task."""
    covered: list[str] = []

    def layer(name: str, config: dict[str, Any]) -> dict[str, Any]:
        merged = named_protocols.apply(protocol, name, str(config.get("kind", "")), Path(path), config) if protocol else None
        if merged is None:
            return config
        covered.append(protocol)  # type: ignore[arg-type]
        return merged

    spec = read_task_file(path, overrides, layer, settable_keys)
    if covered:
        spec = replace(spec, named_protocol=covered[0])
    validate(spec)
    applied = _shorthand_overrides(spec, shorthands or {})
    if applied:
        spec = replace(spec, config=apply_overrides(spec.config, applied), shorthands=applied, overrides={**spec.overrides, **applied})
        validate(spec)
    return spec
