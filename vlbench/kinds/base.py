"""What every task kind shares: the kind protocol, run context and dataset-source resolution."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Protocol

import numpy as np

from vlbench.encoding.encoder import Encoder
from vlbench.errors import DatasetNotFoundError, VLBenchError
from vlbench.registry import Registry
from vlbench.spec.schema import as_dict, fields_of, matches, parse, type_name
from vlbench.spec.taskfile import TaskSpec
from vlbench.stamps import describe_inputs
from vlbench.spec.fields import NoFiles, ProtocolFields

HUB_PREFIX = "hf:"
HUB_FORMATS = ("hf", "winoground")  # formats whose readers accept hf:<hub id>
COLUMN_KEYS = ("image_key", "label_key", "caption_key")


@dataclass
class RunContext:
    """What a kind needs from the run besides the model: where data is, encoder, limits."""

    data_root: Path
    encoder: Encoder
    limit: int | None = None
    allow_hub: bool = False
    item_shard: tuple[int, int] = (0, 1)  # (rank, world size): kinds with shards_items take every N-th item
    #: Extra models a task asked for (``TaskKind.extra_models``): spec text -> (model, its encoder).
    models: dict[str, tuple[Any, Encoder]] = field(default_factory=dict)


@dataclass
class Decisions:
    """What a kind decided for a task, returned to the runner, which records it.

    ``protocol``: the protocol as used (defaults filled in, plus what was derived, e.g. the model's
    input size), stored as the result's ``task.protocol_used``; ``artifacts``: JSON payloads saved
    beside the result that reproduce the task (e.g. generated options); ``seed``: the seed those used.
    """

    protocol: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None  # the seed that decided a random part of the task (generated options), recorded as env.seed
    #: Items of the data the task leaves out, by reason ({"missing_images": {"records": n, "examples": [ids]}}): recorded as
    #: protocol_used.left_out and said after the run's summary.
    left_out: dict[str, Any] = field(default_factory=dict)
    #: Lines about what the task did that a reader of the summary should know (e.g. captions truncated); a kind
    #: may add them while it predicts. Said after the run's summary.
    notes: list[str] = field(default_factory=list)


@dataclass
class Located:
    """A dataset source that was found: its entry in the task file, its typed options (what its reader
    reads, see ``TaskKind.source_options``) and its resolved location."""

    source: dict[str, Any]
    options: Any
    location: str  # a filesystem path, a hub id, or a generator name
    mirror: str | None = None  # a Hugging Face dataset repo to download into ``location`` first (--hf-hub)

    @property
    def format(self) -> str:
        return self.source["format"]

    def describe(self) -> dict[str, Any]:
        return {"format": self.source["format"], "location": self.location, **{
            k: v for k, v in self.source.items() if k not in ("format", "path", "hub")}}


class Reader(Protocol):
    """Reads one on-disk format into the data structure its kind works on.

    ``options`` is the schema of the format's source keys (a ``vlbench.spec.fields.SourceFields``
    subclass), checked when the task is planned, before any model loads; every method receives the
    source as an instance of it, defaults filled in (``TaskKind.source_options``). A reader without
    one (an older plugin) gets only its ``required`` keys checked, unknown keys pass, and its methods
    receive the source's mapping. An optional ``inputs(location, options, spec)`` names the files that
    decide the items (see ``vlbench.datasets.base``); without it, everything at the location counts.
    An optional ``check(location, options, spec)`` is a cheap layout check made at plan time.
    """

    options: type

    def exists(self, location: Path, options: Any) -> bool: ...

    def read(self, location: str, options: Any, spec: TaskSpec, ctx: RunContext) -> Any: ...


class TaskKind(ABC):
    """One evaluation protocol: ``predict`` (expensive, needs the model) and ``score`` (pure)."""

    name: ClassVar[str]
    readers: ClassVar[Registry]
    #: Metric names this kind computes; regexes so that e.g. recall@k works for any k.
    metric_patterns: ClassVar[tuple[str, ...]] = ()
    #: True when ``predict`` works per item without the encoder (segmentation): in a data-parallel
    #: run it yields only the items of ``ctx.item_shard`` and the runner gathers the records.
    shards_items: ClassVar[bool] = False

    #: Schema of ``protocol:`` (a ``ProtocolFields`` subclass) and of ``files:`` entries.
    protocol_schema: ClassVar[type] = ProtocolFields
    files_schema: ClassVar[type] = NoFiles
    #: The per-sample records ``predict`` writes: field -> (type, meaning); a type that admits None marks a
    #: field that may be absent. Records read back (rescore, compare) are checked against it.
    record_fields: ClassVar[dict[str, tuple[Any, str]]] = {"i": (int, "the item's position in the dataset")}

    @classmethod
    def options(cls, spec: TaskSpec) -> Any:
        """The task's protocol, checked against ``protocol_schema``, defaults filled in: parsed once per task
        (when it is checked) and the same typed object every later time."""
        return spec.parsed("protocol", lambda: parse(cls.protocol_schema, spec.protocol, spec.source_file, "protocol.", what=f"the {cls.name} protocol"))

    @classmethod
    def task_metrics(cls, spec: TaskSpec) -> list[str]:
        """Metric names the task's own protocol defines (e.g. classification's group_metrics)."""
        return []

    @classmethod
    def check(cls, spec: TaskSpec) -> None:
        """Checks beyond the schemas (e.g. of file contents); raise TaskSpecError naming file and field."""

    @classmethod
    def extra_models(cls, spec: TaskSpec) -> list[str]:
        """Model specs this task needs besides the run's model (e.g. an ensemble); the runner loads them."""
        return []

    @classmethod
    def docs(cls) -> dict[str, list[tuple[str, str]]]:
        """Extra sections for 'vlbench show kind:NAME', e.g. {"rules": [(name, meaning), ...]}."""
        return {}

    def decide(self, model: Any, data: Any, spec: TaskSpec) -> Decisions:
        """What this task will run with (recorded in the result); called before ``predict``. The items the reader
        left out (``data.left_out``, e.g. missing videos) are recorded and said."""
        return Decisions(protocol=as_dict(self.options(spec)), left_out=dict(getattr(data, "left_out", {})))

    # -- data ----------------------------------------------------------------------------------
    def reader(self, format_name: str) -> Reader:
        return self.readers.get(format_name)()

    @classmethod
    def source_options(cls, spec: TaskSpec, index: int, sources: str = "sources") -> Any:
        """What the reader of ``dataset.sources[index]`` reads, typed by its ``options`` schema: the source's
        keys, the ``dataset:`` keys its reader lets sources inherit (``shared_options``; the source's own
        win) and the ``dataset.*_key`` column overrides its schema declares (these win), defaults filled in.
        Parsed once per task, when it is checked; a reader without a schema gets the merged mapping.
        ``sources``: the list the source is in (``train_sources`` for the training split of kinds that fit one)."""

        def make() -> Any:
            source = spec.dataset[sources][index]
            reader = cls.readers.get(source["format"])
            schema = getattr(reader, "options", None)
            columns = {k: spec.dataset[k] for k in COLUMN_KEYS if k in spec.dataset}
            if schema is None:
                return {**source, **columns}
            shared = {k: spec.dataset[k] for k in getattr(reader, "shared_options", ()) if k in spec.dataset}
            declared = fields_of(schema)
            raw = {**shared, **source, **{k: v for k, v in columns.items() if k in declared}}
            return parse(schema, raw, spec.source_file, f"dataset.{sources}[{index}].", required=not source.get("hub"), what=f"the {source['format']} format")

        return spec.parsed(f"source:{index}" if sources == "sources" else f"{sources}:{index}", make)

    def locate(self, spec: TaskSpec, data_root: Path, allow_hub: bool = False, sources: str = "sources") -> Located:
        """The first source whose data exists; a clear error listing every place looked at.

        ``dataset.path`` (e.g. from ``--set``) replaces every source's location; ``hf:org/name``
        there names a hub dataset, read by the task's first source that reads Hugging Face
        datasets. ``dataset.image_key`` / ``label_key`` / ``caption_key`` override the sources' columns.
        ``sources`` names the list searched (``train_sources``: a training split's).
        """
        looked: list[str] = []
        override = spec.dataset.get("path")
        columns = {k: spec.dataset[k] for k in COLUMN_KEYS if k in spec.dataset}  # recorded with the source, as the reader uses them
        candidates = [({**source, **columns}, self.source_options(spec, i, sources)) for i, source in enumerate(spec.dataset[sources])]
        if isinstance(override, str) and override.startswith(HUB_PREFIX):
            for source, options in candidates:
                if source["format"] in HUB_FORMATS:
                    return Located({k: v for k, v in source.items() if k != "hub"}, options, override)
            raise DatasetNotFoundError(f"task '{spec.name}' has no source that reads Hugging Face datasets, so {override} cannot be used")
        download: Located | None = None  # the first source with a mirror to download (--hf-hub)
        for source, options in candidates:
            reader = self.reader(source["format"])
            if source.get("hub"):
                if allow_hub and not override:
                    return download or Located(source, options, HUB_PREFIX + source["hub"])
                looked.append(f"Hugging Face hub '{source['hub']}' (pass --hf-hub to download it)")
                continue
            if getattr(reader, "generated", False):
                return Located(source, options, f"generated:{source['format']}")
            location = Path(override) if override else data_root / source.get("path", "")
            if reader.exists(location, options):
                return Located(source, options, str(location))
            looked.append(f"{source['format']} layout at {location}")
            if source.get("mirror") and allow_hub and not override and download is None:
                download = Located(source, options, str(location), mirror=str(source["mirror"]))
        if download is not None:
            return download
        help_text = f" To get it: {spec.help}" if spec.help else ""
        what = "dataset" if sources == "sources" else "training split"
        raise DatasetNotFoundError(f"{what} for task '{spec.name}' not found; looked for: {'; '.join(looked)}.{help_text}")

    def inputs(self, spec: TaskSpec, located: Located) -> dict[str, Any]:
        """The identity of what decides the task's items and labels (``vlbench.stamps.describe_inputs``
        of the reader's ``inputs``, by default everything at the location): part of the result's
        identity, so a changed annotation file is never answered with an old result. A hub dataset
        is identified by its id alone (its files are not known before it is read)."""
        if located.location.startswith(HUB_PREFIX):
            return {"digest": f"hub:{located.location}", "files": {}}
        declared = getattr(self.reader(located.format), "inputs", None)
        items = declared(Path(located.location), located.options, spec) if declared is not None else [Path(located.location)]
        return describe_inputs(items)

    def check_data(self, spec: TaskSpec, data_root: Path, allow_hub: bool = False) -> Located:
        """``locate``, then the reader's cheap layout check where it has one (e.g. the records format's
        field names): run when a run is planned, before any model loads."""
        located = self.locate(spec, data_root, allow_hub)
        check = getattr(self.reader(located.format), "check", None)
        if check is not None:
            check(located.location, located.options, spec)
        return located

    def is_available(self, spec: TaskSpec, data_root: Path) -> bool:
        try:
            self.locate(spec, data_root)
            return True
        except DatasetNotFoundError:
            return False

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Located]:
        located = self.locate(spec, ctx.data_root, ctx.allow_hub)
        return self.read_located(spec, located, ctx), located

    def read_located(self, spec: TaskSpec, located: Located, ctx: RunContext) -> Any:
        """A found source read by its reader (its mirror downloaded first); a layout mismatch is one line."""
        if located.mirror:
            from vlbench.datasets.mirror import download_mirror

            download_mirror(located.mirror, Path(located.location), getattr(located.options, "split", None))
        reader = self.reader(located.format)
        try:
            return reader.read(located.location, located.options, spec, ctx)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # a field the format needs is missing or malformed in the user's files
            raise VLBenchError(
                f"task '{spec.name}': the data at {located.location} does not match the {located.format} "
                f"layout ({type(exc).__name__}: {exc}); see 'vlbench show {spec.name}'"
            ) from exc

    # -- evaluation ----------------------------------------------------------------------------
    def unsupported_reason(self, model: Any) -> str | None:
        """Why this model cannot do this kind of task (checked before any task runs), or None."""
        return None

    @abstractmethod
    def predict(self, model: Any, data: Any, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Run the model; yield one JSON-serialisable record per sample."""

    @abstractmethod
    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        """Metrics from records alone (pure; used again by 'vlbench rescore')."""

    #: The kind's bootstrap resampler (``vlbench.bootstrap.Resampler``): its metrics on count-weighted items.
    #: Every kind declares one (a kind without is refused when registered); ``score`` takes its point
    #: estimates from it, so a number and its confidence interval share one definition.
    resampler: ClassVar[type]

    def point_estimates(self, records: list[dict[str, Any]], spec: TaskSpec, names: Iterable[str]) -> dict[str, float]:
        """The metrics the resampler computes, with every item drawn once (the point estimate)."""
        from vlbench.bootstrap import item_order

        res = self.resampler(item_order(records), spec)
        found = {}
        for name in names:
            values = res.metric(name, res.identity())
            if values is not None:
                found[name] = float(values[0])
        return found

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any] | None:
        """How exact ties decided the records (pure, like ``score``): ``tie_report``'s mapping, or None
        for a kind that does not count them."""
        return None

    def count(self, records: list[dict[str, Any]]) -> int:
        """How many scored items the records hold (for micro-averaged suites)."""
        return len(records)


def autocast_used(model: Any, autocast: str) -> str:
    """What a protocol's ``autocast`` option (``none``: the run's --precision; ``cuda_fp16``: fp16 autocast
    where the model runs on CUDA, as CLIP_benchmark 1.4.0's torch.cuda.amp.autocast) did on this model's
    device; recorded in the result's protocol_used."""
    if autocast == "none":
        return f"none (--precision {model.precision})"
    return "fp16 (CUDA)" if model.device.type == "cuda" else f"none: the model runs on {model.device.type} (--precision {model.precision})"


def check_record(kind: type[TaskKind], record: dict[str, Any], where: str) -> None:
    """A one-line VLBenchError when a stored record lacks a field of ``kind.record_fields`` or holds a
    value of another type (a record with ``top: "abc"`` must not be counted as a miss)."""
    for name, (tp, _) in kind.record_fields.items():
        if name not in record:
            if matches(None, tp):
                continue
            raise VLBenchError(f"{where}: the record has no '{name}' field ({kind.name} records need it)")
        if not matches(record[name], tp):
            raise VLBenchError(f"{where}: field '{name}' is {str(record[name])[:40]!r}, not {type_name(tp)}")


def tie_report(items: int, rule: str, bounds: dict[str, tuple[float | None, float | None, float | None]]) -> dict[str, Any]:
    """A result's ``ties``: how many items an exact tie decided, how this kind breaks ties, and for the
    metrics whose reference implementations leave the order of tied scores open, their value under the
    least (``low``) and most (``high``) favourable order and the ``expected`` value over random orders
    (null where a metric has no such closed form). ``metrics`` is empty when no item is tie-decided."""
    return {"items": int(items), "rule": rule,
            "metrics": {name: {"low": low, "high": high, "expected": expected} for name, (low, high, expected) in bounds.items()} if items else {}}


def mean_bounds(per_item: Iterable[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(low, high, expected) of a mean of per-item outcomes given each item's (low, high, expected)."""
    rows = np.asarray(list(per_item), dtype=np.float64).reshape(-1, 3)
    return tuple(float(v) for v in rows.mean(axis=0)) if len(rows) else (float("nan"),) * 3  # type: ignore[return-value]


def apply_limit(items: list, limit: int | None) -> list:
    return items if limit is None else items[:limit]
