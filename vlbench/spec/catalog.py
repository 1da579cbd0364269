"""What spans tasks: discovered task files, suites, model aliases and adapters, leaderboard columns.

The built-in ``tasks/`` folder and ``registry.yaml`` come first; folders in $VLBENCH_TASKS_PATH and
files in $VLBENCH_REGISTRY (or passed explicitly) are layered on top, so users add tasks, suites,
aliases and adapters without forking vlbench.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from vlbench import paths
from vlbench.errors import TaskSpecError, UnknownNameError, VLBenchError
from vlbench.registries import MODEL_ADAPTERS
from vlbench.spec.model_spec import ModelSpec, parse_model_spec
from vlbench.registry import did_you_mean
from vlbench.spec.taskfile import TaskSpec, deep_merge, read_yaml

AGGREGATES = ("mean", "micro")


@dataclass(frozen=True)
class Suite:
    name: str
    members: tuple[str, ...]  # task names, suite names or globs
    aggregate: str = "mean"  # mean of main metrics, or micro: weighted by item counts
    description: str = ""


@dataclass
class Catalog:
    task_dirs: list[Path]
    registry_files: list[Path]
    tasks: dict[str, Path] = field(default_factory=dict)
    suites: dict[str, Suite] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    collections: dict[str, list[str] | str] = field(default_factory=dict)  # name -> specs, or a generator name
    leaderboard_columns: list[str] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Adapters named in registry files (``name: module:Class``); this catalog's own view, the
    #: process-wide MODEL_ADAPTERS registry is not changed.
    adapter_references: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, extra_task_dirs: Iterable[Path] = (), extra_registry_files: Iterable[Path] = ()) -> "Catalog":
        catalog = cls(
            task_dirs=[paths.builtin_tasks_dir(), *paths.extra_tasks_dirs(), *map(Path, extra_task_dirs)],
            registry_files=[paths.builtin_registry_file(), *paths.extra_registry_files(), *map(Path, extra_registry_files)],
        )
        catalog._discover_tasks()
        catalog._read_registry()
        for suite in catalog.suites:  # fail early on a broken registry, not after a run
            catalog.suite_tasks(suite)
        return catalog

    # -- building --------------------------------------------------------------------------------
    def _discover_tasks(self) -> None:
        for directory in self.task_dirs:
            if not directory.is_dir():
                raise VLBenchError(f"tasks folder not found: {directory}")
            found: dict[str, Path] = {}
            for path in sorted(directory.rglob("*.yaml")):
                if any(part.startswith("_") for part in path.relative_to(directory).parts):
                    continue  # include-only base files
                try:
                    raw = read_yaml(path)
                except VLBenchError:
                    raw = None  # unreadable: its error comes when the task is used, not in every command
                name = str(raw.get("task", path.stem)) if isinstance(raw, dict) else path.stem
                if name in found:
                    raise TaskSpecError(path, "task", f"task '{name}' is also defined in {found[name]}")
                found[name] = path
            self.tasks.update(found)  # later folders override earlier ones

    def _read_registry(self) -> None:
        merged: dict[str, Any] = {}
        for path in self.registry_files:
            if not path.is_file():
                raise VLBenchError(f"registry file not found: {path}")
            raw = read_yaml(path) or {}
            if not isinstance(raw, dict):
                raise VLBenchError(f"invalid registry file {path}: expected a mapping")
            merged = deep_merge(merged, raw)
            for name, reference in ((raw.get("models") or {}).get("adapters") or {}).items():
                self.adapter_references.setdefault(str(name), str(reference))  # the first file to name it wins
        for name, value in (merged.get("suites") or {}).items():
            self.suites[name] = self._parse_suite(name, value)
        models = merged.get("models") or {}
        self.aliases = {str(k): str(v) for k, v in (models.get("aliases") or {}).items()}
        for name, value in (models.get("collections") or {}).items():
            if not (isinstance(value, str) or (isinstance(value, list) and value)):
                raise VLBenchError(f"registry: model collection '{name}' must be a list of model specs or a generator name")
            self.collections[str(name)] = value if isinstance(value, str) else [str(v) for v in value]
        self.leaderboard_columns = list((merged.get("leaderboard") or {}).get("columns") or [])
        self.defaults = dict(merged.get("defaults") or {})

    def _parse_suite(self, name: str, value: Any) -> Suite:
        if isinstance(value, list):
            value = {"tasks": value}
        if not isinstance(value, dict) or not isinstance(value.get("tasks"), list):
            raise VLBenchError(f"registry: suite '{name}' must be a list of tasks or a mapping with 'tasks'")
        aggregate = value.get("aggregate", "mean")
        if aggregate not in AGGREGATES:
            raise VLBenchError(f"registry: suite '{name}': aggregate must be one of {AGGREGATES}, got '{aggregate}'")
        if name in self.tasks and [str(t) for t in value["tasks"]] != [name]:
            raise VLBenchError(f"registry: suite '{name}' has the same name as a task but other members")
        return Suite(name, tuple(map(str, value["tasks"])), aggregate, str(value.get("description", "")))

    # -- tasks and suites ------------------------------------------------------------------------
    def suite_tasks(self, name: str, _seen: tuple[str, ...] = ()) -> list[str]:
        """Task names of a suite, suites inside it expanded, in order, without repeats."""
        if name in _seen:
            raise VLBenchError(f"registry: suite cycle {' -> '.join((*_seen, name))}")
        result: list[str] = []
        for member in self.suites[name].members:
            if member in self.suites and member != name:
                result += self.suite_tasks(member, (*_seen, name))
            else:
                result += self.expand_member(member, name)
        return list(dict.fromkeys(result))

    def expand_member(self, member: str, suite: str = "") -> list[str]:
        """A suite member that is a task name or a glob, as task names."""
        if member in self.tasks:
            return [member]
        matches = sorted(fnmatch.filter(self.tasks, member))
        if not matches:
            raise VLBenchError(f"registry: suite '{suite}' names '{member}', which matches no task")
        return matches

    def select(self, selection: Iterable[str]) -> list[str | Path]:
        """Expand a comma list of task names, suites, globs and task-file paths."""
        chosen: list[str | Path] = []
        for item in (s.strip() for s in selection):
            if not item:
                continue
            if item.endswith((".yaml", ".yml")) or "/" in item:
                path = Path(item).expanduser()
                if not path.is_file():
                    raise VLBenchError(f"task file not found: {path}")
                chosen.append(path)
            elif item in self.suites:
                chosen += self.suite_tasks(item)
            elif item in self.tasks:
                chosen.append(item)
            elif any(ch in item for ch in "*?["):
                matches = sorted(fnmatch.filter(self.tasks, item))
                if not matches:
                    raise UnknownNameError(f"'{item}' matches no task")
                chosen += matches
            else:
                hint = did_you_mean(item, [*self.tasks, *self.suites])
                raise UnknownNameError(f"unknown task or suite '{item}'{hint}; see 'vlbench list tasks'")
        return list(dict.fromkeys(chosen))

    def load_task(
        self, item: str | Path, overrides: Mapping[str, Any] | None = None, shorthands: Mapping[str, Any] | None = None, protocol: str | None = None
    ) -> TaskSpec:
        """One task, checked against its schemas; ``shorthands`` and ``protocol`` as in ``vlbench.spec.checking``."""
        path = item if isinstance(item, Path) else self.tasks[item]
        from vlbench.spec.checking import load_task_file  # imports the task's kind (and torch) only when a task is loaded

        return load_task_file(path, overrides, shorthands, protocol)

    # -- models ----------------------------------------------------------------------------------
    def resolve_models(self, texts: Iterable[str], _seen: tuple[str, ...] = ()) -> list[ModelSpec]:
        """Specs, aliases and collection names -> model specs, in order, without repeats."""
        from vlbench.registries import MODEL_GENERATORS

        specs: dict[str, ModelSpec] = {}
        for text in texts:
            if text in self.collections:
                if text in _seen:
                    raise VLBenchError(f"registry: model collection cycle {' -> '.join((*_seen, text))}")
                value = self.collections[text]
                members = MODEL_GENERATORS.get(value)() if isinstance(value, str) else value
                found = self.resolve_models(members, (*_seen, text))
            elif ":" not in text and text not in self.aliases:
                hint = did_you_mean(text, [*self.collections, *self.aliases])
                raise UnknownNameError(f"unknown model or model collection '{text}'{hint}; a spec looks like <adapter>:<name>[@tag] (see 'vlbench list models')")
            else:
                found = [self.resolve_model(text)]
            specs.update((spec.id, spec) for spec in found if spec.id not in specs)
        return list(specs.values())

    def resolve_model(self, text: str) -> ModelSpec:
        """Alias resolution first, then parsing; unknown adapters get did-you-mean hints."""
        seen = [text]
        while text in self.aliases:
            text = self.aliases[text]
            if text in seen:
                raise VLBenchError(f"registry: model alias cycle {' -> '.join(seen + [text])}")
            seen.append(text)
        spec = parse_model_spec(text)
        if spec.adapter not in MODEL_ADAPTERS and spec.adapter not in self.adapter_references:
            names = self.adapter_names()
            hint = did_you_mean(spec.adapter, names)
            raise UnknownNameError(f"unknown model adapter '{spec.adapter}' in '{text}'{hint}; known: {', '.join(names)}")
        return spec

    def adapter_names(self) -> list[str]:
        return sorted({*MODEL_ADAPTERS.names(), *self.adapter_references})

    def adapter_class(self, name: str) -> Any:
        """The adapter class for a name: registered ones (decorator, entry points) first, then registry files."""
        if name in MODEL_ADAPTERS or name not in self.adapter_references:
            return MODEL_ADAPTERS.get(name)
        from vlbench.registry import import_reference

        return import_reference(self.adapter_references[name])
