"""Task specs: YAML files with ``include:`` inheritance, ``--set`` overrides and a config hash.

A task file names the task, its kind, a version, the dataset, the metrics and the main metric.
Files it refers to (class names, templates...) sit under ``files:`` and are resolved relative to
the YAML file that names them; their *contents* go into the config hash, so editing a template
changes the hash and a later run recomputes the task.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")

import yaml

from vlbench.errors import TaskSpecError, VLBenchError
from vlbench.stamps import sha256_file

# Fields that describe a task to people; they do not change its numbers.
UNHASHED_FIELDS = ("description", "help", "protocol_reference")
MAX_EMBEDDED_BYTES = 512 * 1024
TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when present: ~5x faster
    """yaml's safe loader that refuses a mapping with the same key twice (the later would win silently) and
    keys that cannot be keys (a list or mapping used as a key)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a mapping key is a {type(key).__name__}; keys must be text or numbers", key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


#: YAML aliases may repeat a node; a document whose nodes, counted with every repeat, exceed this is refused
#: (a "billion laughs" of nested aliases is small to parse and exponential to expand).
MAX_EXPANDED_NODES = 1_000_000


def expanded_size(value: Any, limit: int = MAX_EXPANDED_NODES) -> int:
    """The number of nodes of ``value`` with every shared (aliased) node counted each time it appears;
    at most ``limit`` + 1 (counting stops there), in time linear in the distinct nodes."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        children = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1
        for key, child in children:
            total += size(child) + (size(key) if isinstance(node, dict) else 0)
            if total > limit:
                break
        sizes[id(node)] = min(total, limit + 1)
        return sizes[id(node)]

    return size(value)


def check_expansion(value: Any, where: str) -> Any:
    """``value``, or a one-line error when its aliases expand past MAX_EXPANDED_NODES."""
    if expanded_size(value) > MAX_EXPANDED_NODES:
        raise VLBenchError(f"{where}: its YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values; "
                           "write the values out instead of nesting aliases")
    return value


def read_yaml(path: Path) -> Any:
    """Safe-load one YAML file, refusing duplicate and unhashable keys and alias bombs; errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return check_expansion(yaml.load(f, Loader=UniqueKeyLoader), f"invalid YAML file {path}")  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError as exc:
        raise VLBenchError(f"file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise TaskSpecError(path, "<file>", f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TaskSpecError(path, "<yaml>", f"{exc.problem}{where}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TaskSpecError(path, "<yaml>", f"not valid YAML{where}") from exc


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge mappings; values of ``override`` win, lists are replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _load_with_includes(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise TaskSpecError(path, "include", "include cycle: " + " -> ".join(p.name for p in (*seen, path)))
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise TaskSpecError(path, "<root>", "expected a mapping of fields")
    includes = raw.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise TaskSpecError(path, "include", "expected a file name or a list of file names")
    files = raw.get("files", {})
    if not isinstance(files, dict):
        raise TaskSpecError(path, "files", "expected a mapping of name -> file path")
    raw["files"] = {k: str((path.parent / v).resolve()) if isinstance(v, str) else v for k, v in files.items()}
    merged: dict[str, Any] = {}
    for include in includes:
        merged = deep_merge(merged, _load_with_includes(path.parent / include, (*seen, path)))
    return deep_merge(merged, raw)


def parse_override(text: str) -> tuple[str, Any]:
    """``key.sub=value`` -> (``key.sub``, YAML-parsed value); ``task:key=value`` scopes it to one task."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise VLBenchError(f"--set expects key=value (e.g. dataset.path=/data/pets), got '{text}'")
    if not value.strip():
        raise VLBenchError(f"--set {key}= has no value; give one (e.g. --set dataset.path=/data/pets), or leave the --set out")
    try:
        parsed = yaml.load(value, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        parsed = value
    return key, check_expansion(parsed, f"--set {key}")


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys. Paths given on the command line are relative to the working directory."""
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if (parts[0] == "files" and len(parts) == 2) or (dotted == "dataset.path" and not str(value).startswith("hf:")):
            value = str(Path(str(value)).expanduser().resolve())
        node = config
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return config


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class TaskSpec:
    """One task, fully resolved: includes merged, overrides applied, file paths absolute."""

    name: str
    kind: str
    source_file: Path
    config: dict[str, Any] = field(repr=False)
    #: Lines of ``files:`` entries carried in a result file, used instead of the files (rescoring).
    embedded_lines: dict[str, list[str]] = field(default_factory=dict, repr=False)
    #: The values set from the command line that applied to this task: ``--set`` ones (unscoped
    #: ones only where the task's schema declares the key) and the shorthands' protocol fields.
    overrides: dict[str, Any] = field(default_factory=dict, repr=False)
    #: Those of ``overrides`` set by run shorthands (--seed, --dense-variant) on this task.
    shorthands: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The named protocol (--protocol) merged into this task, if any.
    named_protocol: str | None = None

    def parsed(self, part: str, make: Callable[[], T]) -> T:
        """A typed view of one part of this task (its kind's protocol options, a source's options), made
        once: a spec never changes (``dataclasses.replace`` makes a new one, with no views yet)."""
        views = self.__dict__.setdefault("_views", {})
        if part not in views:
            views[part] = make()
        return views[part]

    @property
    def overridden(self) -> frozenset[str]:
        """Dotted keys set from the command line, e.g. ``files.classnames``."""
        return frozenset(self.overrides)

    @property
    def version(self) -> Any:
        return self.config.get("version")

    @property
    def description(self) -> str:
        return str(self.config.get("description", "")).strip()

    @property
    def help(self) -> str:
        """How to get the dataset and lay it out (used in 'dataset not found' errors)."""
        return " ".join(str(self.config.get("help", "")).split())

    @property
    def dataset(self) -> dict[str, Any]:
        return self.config.get("dataset", {})

    @property
    def protocol(self) -> dict[str, Any]:
        return self.config.get("protocol", {}) or {}

    @property
    def metrics(self) -> list[str]:
        return list(self.config.get("metrics", []))

    @property
    def main_metric(self) -> str:
        return str(self.config["main_metric"])

    def file(self, key: str) -> Path | None:
        value = self.config.get("files", {}).get(key)
        return Path(value) if value else None

    def read_lines(self, key: str) -> list[str] | None:
        """Lines of a ``files:`` entry (class names, templates), or None if absent.

        Blank lines at the end are dropped; a blank line between others is kept as an empty entry,
        so that line i stays class i (CLIP_benchmark's CLEVR distance list has an empty class name).
        """
        if key in self.embedded_lines:
            return list(self.embedded_lines[key])
        path = self.file(key)
        if path is None:
            return None
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\n\r") for line in f]
        while lines and not lines[-1].strip():
            lines.pop()
        return lines

    def file_records(self) -> dict[str, dict[str, Any]]:
        """Each ``files:`` entry's path and sha256, and the lines of small text files (so results can be re-scored anywhere)."""
        records: dict[str, dict[str, Any]] = {}
        for key, value in sorted(self.config.get("files", {}).items()):
            record: dict[str, Any] = {"path": value, "sha256": sha256_file(value)}
            if Path(value).suffix == ".txt" and Path(value).stat().st_size <= MAX_EMBEDDED_BYTES:
                record["lines"] = self.read_lines(key)
            records[key] = record
        return records

    def config_hash(self, run_settings: Mapping[str, Any] | None = None) -> str:
        """Hash of everything that changes this task's numbers, plus run settings such as --limit."""
        hashed = {k: v for k, v in self.config.items() if k not in UNHASHED_FIELDS and k != "files"}
        hashed["files"] = {k: sha256_file(v) for k, v in sorted(self.config.get("files", {}).items())}
        hashed["run"] = dict(run_settings or {})
        return hashlib.sha256(canonical_json(hashed).encode()).hexdigest()[:16]


LANGUAGE_FIELD = "{language}"


def apply_language(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Fill ``{language}`` in file paths and source fields with the task's ``language``.

    A task with ``languages: [...]`` evaluates one of them (``language:``, default the first;
    ``--language`` / ``--set language=xx`` pick another). A task without that list ignores a
    language given for a whole run.
    """
    languages = config.get("languages")
    if languages is None:
        config.pop("language", None)
        return config
    if not isinstance(languages, list) or not languages:
        raise TaskSpecError(path, "languages", "expected a non-empty list of language codes")
    language = str(config.setdefault("language", languages[0]))
    if language not in map(str, languages):
        raise TaskSpecError(path, "language", f"'{language}' is not one of this task's languages: {', '.join(map(str, languages))}")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(LANGUAGE_FIELD, language)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    config["files"] = fill(config.get("files", {}))
    config["dataset"] = fill(config.get("dataset", {}))
    return config


def read_task_file(
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    layer: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
    settable: Callable[[dict[str, Any]], set[str]] | None = None,
) -> TaskSpec:
    """Read one task file: includes merged, ``layer(name, config)`` (e.g. a named protocol), then
    ``--set`` overrides, then ``{language}`` filled in.

    ``settable(config)`` gives the dotted keys the task declares (``vlbench.spec.checking`` derives
    them from its schemas): a key scoped to this task (``task:key=value``) must be one of them, an
    unscoped key applies only where it is one (others are for other tasks of the run). Nothing else
    is checked here beyond the YAML; ``vlbench.spec.checking`` checks the result.
    """
    path = Path(path)
    overrides = dict(overrides or {})
    unscoped = {k: v for k, v in overrides.items() if ":" not in k}
    config = _load_with_includes(path)
    own_name = str(config.get("task", path.stem))
    if layer is not None:
        config = layer(own_name, config)
    scoped = {k.split(":", 1)[1]: v for k, v in overrides.items() if ":" in k and k.split(":", 1)[0] == own_name}
    applied = {**unscoped, **scoped}
    if settable is not None:
        known = settable(config)
        for key in scoped:
            if key not in known:
                from vlbench.registry import did_you_mean

                raise VLBenchError(f"--set {own_name}:{key}: task '{own_name}' has no field '{key}'{did_you_mean(key, known)}")
        applied = {**{k: v for k, v in unscoped.items() if k in known}, **scoped}
    config = apply_overrides(config, applied)
    name = str(config.setdefault("task", path.stem))
    config = apply_language(config, path)
    return TaskSpec(name=name, kind=str(config.get("kind", "")), source_file=path.resolve(), config=config, overrides=applied)
