"""The result file schema: built here (runner, rescore) and read here (leaderboard, compare, rescore).

Layout: one result per (model, task, config hash)::

    <results>/<model slug>/<task>/<config hash>.json                      the result (this schema)
    <results>/<model slug>/<task>/<config hash>.<run id>.samples.jsonl.gz  its per-sample records
    <results>/<model slug>/<task>/<config hash>.<artifact>.json.gz         files that reproduce the task

Runs with other settings (``--limit``, precision, ``--set``, seed, dense variant, a changed task
file) have another config hash and so sit beside the full default run instead of replacing it.
Results of the previous layout (``<model slug>/<task>.json``, schema version 1) are still read, as
a view without confidence intervals; new runs never touch them.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vlbench.errors import VLBenchError

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # 1: the previous layout, read without CIs; 2: without task.inputs and ties
RESULT_SUFFIX = ".json"
SAMPLES_SUFFIX = ".samples.jsonl.gz"
#: Run settings that are not "other settings" when they have these values.
DEFAULT_RUN_SETTINGS: dict[str, Any] = {"limit": None}


class InvalidResultError(VLBenchError):
    """A file that claims to be a vlbench result (it has ``schema_version``) but is not a valid one."""


def result_path(results_dir: Path, model_slug: str, task: str, config_hash: str) -> Path:
    """Where the result of one (model, task, config hash) lives."""
    return Path(results_dir) / model_slug / task / f"{config_hash}{RESULT_SUFFIX}"


def samples_path(result_file: Path, run_id: str) -> Path:
    """Each run writes its own samples file, so a result JSON always names the samples it was scored from."""
    return result_file.with_name(f"{result_file.stem}.{run_id}{SAMPLES_SUFFIX}")


def artifact_path(result_file: Path, name: str) -> Path:
    return result_file.with_name(f"{result_file.stem}.{name}.json.gz")


def inside(folder: Path, name: Any) -> Path | None:
    """``folder / name`` if that stays inside ``folder`` once resolved (no '..', no absolute path), else None.

    Every file name read from a result file goes through here, so a hostile or hand-edited result can
    never make vlbench read or delete a file elsewhere.
    """
    if not isinstance(name, str) or not name or Path(name).is_absolute():
        return None
    base = Path(folder).resolve()
    target = (base / name).resolve()
    if target == base or base not in target.parents:
        return None
    return base / name


@dataclass
class ModelInfo:
    id: str  # canonical model spec string; results are keyed by it
    adapter: str | None = None  # adapter name (openclip, hf, ...)
    source_stamp: str | None = None  # path/size/mtime hash of local weights; None for hub models
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what the adapter says identifies the weights


@dataclass
class TaskInfo:
    name: str  # task name (its YAML file's `task:`)
    kind: str = ""  # task kind (classification, retrieval, selection, segmentation, grounding)
    version: Any = None  # the task file's version
    config_hash: str = ""  # hash of the resolved task config plus run settings: the result's identity
    file: str = ""  # the task file it was run from
    dataset: dict[str, Any] = field(default_factory=dict)  # format, location, ... and `n`, the scored items
    files: dict[str, Any] = field(default_factory=dict)  # class-name / template files: sha256 and lines
    # what decides the items and labels (annotation, records, split, label files; folder listings):
    # {"digest": ..., "files": {path: "sha256:..." | "stamp:..." | {tree: ..., folders, files}}} (vlbench.stamps)
    inputs: dict[str, Any] = field(default_factory=dict)
    run_settings: dict[str, Any] = field(default_factory=dict)  # limit, seed, precision, dense_variant (non-default)
    overrides: dict[str, Any] = field(default_factory=dict)  # --set values that applied to this task
    protocol_used: dict[str, Any] = field(default_factory=dict)  # what the kind decided while running
    config: dict[str, Any] = field(default_factory=dict)  # the resolved task config (rescore needs it)


@dataclass
class Bootstrap:
    unit: str  # what was resampled: images, queries, items
    replicates_n: int  # number of bootstrap replicates
    seed: int  # numpy seed of the resampling
    level: float  # confidence level of `ci` (0.95)
    main_replicates: list[float | None]  # the main metric on each replicate (rounded; suites combine them)


@dataclass
class Result:
    schema_version: int  # SCHEMA_VERSION when written; 1 for results read from the previous layout
    model: ModelInfo  # which model
    task: TaskInfo  # which task, with which settings
    metrics: dict[str, float | None]  # metric name -> value in [0, 1]; null where undefined (NaN)
    main_metric: str  # the metric leaderboards show
    created: str = ""  # UTC time the result was written (ISO 8601)
    samples: str | None = None  # per-sample records file: a name inside this result's folder
    artifacts: dict[str, Any] = field(default_factory=dict)  # name -> {file (inside the folder), sha256}
    # what the run used: versions, device, precision, batch size, world size, text padding, the decode path its
    # images took (decode; decode_requested when --decode asked for another), and seed: the seed that decided a
    # random part of the task (ARO's generated order options), null when nothing was drawn
    env: dict[str, Any] = field(default_factory=dict)
    # seconds per phase (load_s, predict_s, score_s, bootstrap_s, total_s), images and texts encoded or read
    # from the cache; images_per_s counts only the time spent waiting for and encoding images, not
    # their decoding while the prompts encoded (Encoder.prefetch_images): predict_s is the whole story
    timing: dict[str, Any] = field(default_factory=dict)
    ci: dict[str, list[float | None]] = field(default_factory=dict)  # metric -> [low, high] bootstrap CI
    bootstrap: Bootstrap | None = None  # how `ci` was computed, with the main metric's replicates
    # how exact ties decided the items (TaskKind.ties): {"items": n decided by a tie, "rule": how this kind breaks
    # them, "metrics": {metric: {"low", "high", "expected"}}} -- the metric under the least and the most favourable
    # order of tied scores and over random orders, for metrics whose references leave that order open; null for a
    # kind that does not count ties (and in results written before schema version 3)
    ties: dict[str, Any] | None = None

    # -- derived views ---------------------------------------------------------------------------
    @property
    def main_value(self) -> float:
        value = self.metrics.get(self.main_metric)
        return math.nan if value is None else float(value)

    @property
    def n(self) -> int | None:
        n = self.task.dataset.get("n")
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    @property
    def is_partial(self) -> bool:
        return self.task.run_settings.get("limit") is not None

    @property
    def settings(self) -> dict[str, str]:
        """Every setting that differs from the default run: run settings, then ``--set`` overrides."""
        out = {k: setting_text(v) for k, v in self.task.run_settings.items() if v is not None and DEFAULT_RUN_SETTINGS.get(k, object()) != v}
        out.update({k: setting_text(v) for k, v in self.task.overrides.items()})
        return out

    @property
    def is_default(self) -> bool:
        """A full run with the default settings."""
        return not self.settings

    def samples_file(self, result_file: Path) -> Path:
        """The per-sample records file; VLBenchError if the result names none or one outside its folder."""
        path = inside(Path(result_file).parent, self.samples)
        if path is None:
            raise VLBenchError(f"{result_file}: its samples entry {self.samples!r} is not a file name inside {Path(result_file).parent}; refusing to read it")
        return path

    def artifact_file(self, result_file: Path, name: str) -> Path:
        """An artifact's file; VLBenchError if the result names none or one outside its folder."""
        entry = self.artifacts.get(name)
        path = inside(Path(result_file).parent, entry.get("file") if isinstance(entry, dict) else None)
        if path is None:
            raise VLBenchError(f"{result_file}: its artifact '{name}' is not a file name inside {Path(result_file).parent}; refusing to read it")
        return path

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        for optional in ("bootstrap", "ties"):
            if payload[optional] is None:
                payload.pop(optional)
        return payload


def setting_text(value: Any) -> str:
    """A setting as results show and match it (``--settings KEY=VALUE``): JSON for lists and mappings."""
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _is_metric(value: Any, name: str | None = None) -> bool:
    """None, or a finite number in the metric's range (``metrics.value_range``: [0, 1] for the shares, means of shares
    and ratios of counts that nearly every metric is)."""
    from vlbench.metrics import value_range

    if value is None:
        return True
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    low, high = value_range(name)
    return low <= value <= high and (isinstance(value, int) or math.isfinite(value))


def _need(condition: bool, what: str) -> None:
    if not condition:
        raise InvalidResultError(what)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _build(cls: type, payload: Any, name: str) -> Any:
    """``cls`` from a JSON object, each field checked against its annotated type."""
    from vlbench.spec.schema import matches, type_name

    _need(isinstance(payload, dict), f"'{name}' is not an object")
    known = cls.__dataclass_fields__  # type: ignore[attr-defined]
    try:
        instance = cls(**{k: v for k, v in payload.items() if k in known})
    except TypeError as exc:
        raise InvalidResultError(f"'{name}' lacks a field ({exc})") from None
    for field_name, tp in typing.get_type_hints(cls).items():
        value = getattr(instance, field_name)
        _need(matches(value, tp), f"{name}.{field_name} is {_shown(value)}, not {type_name(tp)}")
    return instance


def _check_metrics(payload: dict[str, Any]) -> None:
    metrics = payload["metrics"]
    _need(isinstance(metrics, dict) and metrics != {}, "metrics is not a non-empty object")
    bad = next((k for k, v in metrics.items() if not _is_metric(v, k.rsplit("/", 1)[-1])), None)
    if bad is not None:
        from vlbench.metrics import value_range

        low, high = value_range(bad.rsplit("/", 1)[-1])
        _need(False, f"metric {bad!r} is {_shown(metrics.get(bad))}, not a number in [{low:g}, {high:g}] or null")
    _need(isinstance(payload["main_metric"], str) and payload["main_metric"] in metrics, "main_metric does not name one of its metrics")
    ci = payload.get("ci") or {}
    _need(isinstance(ci, dict) and all(isinstance(v, list) and len(v) == 2 and all(_is_metric(x, k) for x in v) for k, v in ci.items()),
          "ci is not {metric: [low, high]} with numbers in [0, 1]")
    ties = payload.get("ties")
    _need(ties is None or (isinstance(ties, dict) and isinstance(ties.get("items", 0), int) and not isinstance(ties.get("items", 0), bool)
                           and isinstance(ties.get("metrics", {}), dict)
                           and all(isinstance(b, dict) and all(_is_metric(x, k) for x in b.values()) for k, b in ties.get("metrics", {}).items())),
          "ties is not {items: n, metrics: {metric: {low, high, expected}}}")


def from_json(payload: Any) -> Result:
    """A validated Result from a parsed result file; InvalidResultError saying what is wrong.

    Every field must have its documented type, and every metric, interval bound and replicate must be a
    number in [0, 1] or null: NaN, infinities, huge numbers and strings are refused, so a hand-edited or
    damaged file is skipped with a warning rather than shown in a table or crashing one.
    """
    _need(isinstance(payload, dict), "not a JSON object")
    version = payload.get("schema_version")
    _need(version in READABLE_VERSIONS, f"schema_version {version!r} is not one this vlbench reads ({READABLE_VERSIONS})")
    for key in ("model", "task", "metrics", "main_metric"):
        _need(key in payload, f"missing field '{key}'")
    model = _build(ModelInfo, payload["model"], "model")
    task = _build(TaskInfo, payload["task"], "task")
    _need(model.id != "", "model.id is empty")
    _need(task.name != "", "task.name is empty")
    _check_metrics(payload)
    bootstrap = payload.get("bootstrap")
    if bootstrap is not None:
        bootstrap = _build(Bootstrap, bootstrap, "bootstrap")
        _need(all(_is_metric(v, payload["main_metric"]) for v in bootstrap.main_replicates),
              "bootstrap.main_replicates is not a list of numbers in the main metric's range")
        _need(bootstrap.replicates_n >= 0 and 0 < bootstrap.level < 1, "bootstrap.replicates_n or level is out of range")
    fields = {k: payload[k] for k in ("created", "samples", "artifacts", "env", "timing") if k in payload}
    result = Result(schema_version=version, model=model, task=task, metrics=payload["metrics"], main_metric=payload["main_metric"],
                    ci=payload.get("ci") or {}, bootstrap=bootstrap, ties=payload.get("ties"), **fields)
    for key in ("created", "samples", "artifacts", "env", "timing"):
        tp = typing.get_type_hints(Result)[key]
        from vlbench.spec.schema import matches, type_name

        _need(matches(getattr(result, key), tp), f"{key} is {_shown(getattr(result, key))}, not {type_name(tp)}")
    return result


def read(path: Path) -> Result | None:
    """The result in ``path``; None for JSON that is not a vlbench result (no ``schema_version``).

    InvalidResultError when the file is unreadable or truncated, or claims to be a result and is not one.
    """
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidResultError(f"cannot read it ({exc.strerror})") from None
    except ValueError:
        raise InvalidResultError("not valid JSON (truncated or hand-edited?)") from None
    if not isinstance(payload, dict) or "schema_version" not in payload:
        return None
    return from_json(payload)


def read_quietly(path: Path) -> Result | None:
    """The result in ``path``, or None when there is none or it is not valid."""
    try:
        return read(path)
    except InvalidResultError:
        return None


def scan(results_dir: Path, warn: Callable[[str], None] | None = None) -> Iterator[tuple[Path, Result]]:
    """Every result under ``results_dir`` (sorted); invalid ones are skipped with one warning line each."""
    for path in sorted(Path(results_dir).rglob(f"*{RESULT_SUFFIX}")):
        if not path.is_file():
            continue
        try:
            result = read(path)
        except InvalidResultError as exc:
            if warn is not None:
                warn(f"skipped {path}: {exc}")
            continue
        if result is not None:
            yield path, result


#: Run options that set one task field, on the tasks whose protocol sets that field (option -> field). A table
#: asked for one (``--settings seed=7``) matches it on those tasks and takes the other tasks' runs without it.
SHORTHANDS = {"seed": "protocol.seed", "dense_variant": "protocol.dense_variant"}


def _applies(key: str, result: Result) -> bool:
    """Whether a run of this result's task could record the setting ``key``: a shorthand's field only where
    the task's protocol sets it (as the shorthand applies); every other setting always."""
    if key not in SHORTHANDS.values():
        return True
    protocol = result.task.config.get("protocol") if isinstance(result.task.config, dict) else None
    return isinstance(protocol, dict) and protocol.get(key.removeprefix("protocol.")) is not None


def pick(candidates: list[tuple[Path, Result]], settings: dict[str, str] | None = None, include_partial: bool = False) -> tuple[Path, Result] | None:
    """The result a table shows for one (model, task).

    Eligible: full runs whose non-default settings are exactly those asked for in ``settings``
    (leaving out settings that a run of its kind does not record, such as dense_variant for
    classification), so with none asked only default runs; with ``include_partial``, ``--limit``
    runs too (``limit=N`` asks for the runs of that limit only). Preferred: full over partial, then the current schema, then the newest.
    """
    wanted = {SHORTHANDS.get(k, k): v for k, v in (settings or {}).items()}  # --settings dense_variant=X: the field it sets

    limit = wanted.pop("limit", None)  # --settings limit=N: the smoke runs of that size

    def eligible(result: Result) -> bool:
        own = {k: v for k, v in result.settings.items() if k != "limit"}
        asked = {k: v for k, v in wanted.items() if _applies(k, result)}
        if limit is not None:
            return own == asked and result.settings.get("limit") == limit
        return own == asked and (include_partial or not result.is_partial)

    chosen = [(p, r) for p, r in candidates if eligible(r)]
    if not chosen:
        return None
    return max(chosen, key=lambda pr: (not pr[1].is_partial, pr[1].schema_version, pr[1].created))
