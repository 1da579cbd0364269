"""What every task kind shares: the kind protocol, run context and dataset-source resolution."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Protocol

from vlbench.encoding import Encoder
from vlbench.errors import DatasetNotFoundError, TaskSpecError, VLBenchError
from vlbench.registry import Registry
from vlbench.specs import TaskSpec

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
    seed: int | None = None  # the run's --seed; None leaves each task's default
    dense_variant: str | None = None  # the run's --dense-variant; None leaves each task's default
    item_shard: tuple[int, int] = (0, 1)  # (rank, world size): kinds with shards_items take every N-th item
    info: dict[str, Any] = field(default_factory=dict)  # what a kind decided while running (recorded)


@dataclass
class Located:
    """A dataset source that was found: its entry in the task file and its resolved location."""

    source: dict[str, Any]
    location: str  # a filesystem path, a hub id, or a generator name
    mirror: str | None = None  # a Hugging Face dataset repo to download into ``location`` first (--hf-hub)

    def describe(self) -> dict[str, Any]:
        return {"format": self.source["format"], "location": self.location, **{
            k: v for k, v in self.source.items() if k not in ("format", "path", "hub")}}


class Reader(Protocol):
    """Reads one on-disk format into the data structure its kind works on.

    ``required`` names the source keys the format needs (checked when the task file is loaded).
    """

    required: tuple[str, ...]

    def exists(self, location: Path, source: dict[str, Any]) -> bool: ...

    def read(self, location: str, source: dict[str, Any], spec: TaskSpec, ctx: RunContext) -> Any: ...


class TaskKind(ABC):
    """One evaluation protocol: ``predict`` (expensive, needs the model) and ``score`` (pure)."""

    name: ClassVar[str]
    readers: ClassVar[Registry]
    #: Metric names this kind computes; regexes so that e.g. recall@k works for any k.
    metric_patterns: ClassVar[tuple[str, ...]] = ()
    #: Run options (beyond --limit and --seed) that change this kind's numbers, e.g. dense_variant.
    run_settings_used: ClassVar[tuple[str, ...]] = ()
    #: True when ``predict`` works per item without the encoder (segmentation): in a data-parallel
    #: run it yields only the items of ``ctx.item_shard`` and the runner gathers the records.
    shards_items: ClassVar[bool] = False
    #: ``protocol`` keys this kind reads even when a task file leaves them out (``--set`` may name them).
    protocol_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate(cls, spec: TaskSpec) -> None:
        """Check kind-specific fields; raise TaskSpecError naming the file and field."""
        for metric in spec.metrics:
            if not any(re.fullmatch(p, metric) for p in cls.metric_patterns):
                raise TaskSpecError(spec.source_file, "metrics", f"'{metric}' is not a {cls.name} metric")
        sources = spec.dataset.get("sources")
        if not isinstance(sources, list) or not sources:
            raise TaskSpecError(spec.source_file, "dataset.sources", "expected a non-empty list of sources")
        for i, source in enumerate(sources):
            if not isinstance(source, dict) or "format" not in source:
                raise TaskSpecError(spec.source_file, f"dataset.sources[{i}]", "expected a mapping with 'format'")
            if source["format"] not in cls.readers:
                known = ", ".join(cls.readers.names())
                raise TaskSpecError(spec.source_file, f"dataset.sources[{i}].format", f"unknown format '{source['format']}' for {cls.name} (known: {known})")
            if source.get("hub"):
                continue
            reader = cls.readers.get(source["format"])
            for key in getattr(reader, "required", ()):
                if key not in source:
                    raise TaskSpecError(spec.source_file, f"dataset.sources[{i}].{key}", f"missing; the {source['format']} format needs it")
            problem = getattr(reader, "check_source", lambda source: None)(source)
            if problem:
                raise TaskSpecError(spec.source_file, f"dataset.sources[{i}].{problem[0]}", problem[1])

    # -- data ----------------------------------------------------------------------------------
    def reader(self, format_name: str) -> Reader:
        return self.readers.get(format_name)()

    def locate(self, spec: TaskSpec, data_root: Path, allow_hub: bool = False) -> Located:
        """The first source whose data exists; a clear error listing every place looked at.

        ``dataset.path`` (e.g. from ``--set``) replaces every source's location; ``hf:org/name``
        there names a hub dataset, read by the task's first source that reads Hugging Face
        datasets. ``dataset.image_key`` / ``label_key`` / ``caption_key`` override the sources' columns.
        """
        looked: list[str] = []
        override = spec.dataset.get("path")
        columns = {k: spec.dataset[k] for k in COLUMN_KEYS if k in spec.dataset}
        sources = [{**s, **columns} for s in spec.dataset["sources"]]
        if isinstance(override, str) and override.startswith(HUB_PREFIX):
            for source in sources:
                if source["format"] in HUB_FORMATS:
                    return Located({k: v for k, v in source.items() if k != "hub"}, override)
            raise DatasetNotFoundError(f"task '{spec.name}' has no source that reads Hugging Face datasets, so {override} cannot be used")
        download: Located | None = None  # the first source with a mirror to download (--hf-hub)
        for source in sources:
            reader = self.reader(source["format"])
            if source.get("hub"):
                if allow_hub and not override:
                    return download or Located(source, HUB_PREFIX + source["hub"])
                looked.append(f"Hugging Face hub '{source['hub']}' (pass --hf-hub to download it)")
                continue
            if getattr(reader, "generated", False):
                return Located(source, f"generated:{source['format']}")
            relative = source.get("path", "")
            location = Path(override) if override else data_root / relative
            if reader.exists(location, source):
                return Located(source, str(location))
            looked.append(f"{source['format']} layout at {location}")
            if source.get("mirror") and allow_hub and not override and download is None:
                download = Located(source, str(location), mirror=str(source["mirror"]))
        if download is not None:
            return download
        help_text = f" To get it: {spec.help}" if spec.help else ""
        raise DatasetNotFoundError(f"dataset for task '{spec.name}' not found; looked for: {'; '.join(looked)}.{help_text}")

    def is_available(self, spec: TaskSpec, data_root: Path) -> bool:
        try:
            self.locate(spec, data_root)
            return True
        except DatasetNotFoundError:
            return False

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Located]:
        located = self.locate(spec, ctx.data_root, ctx.allow_hub)
        if located.mirror:
            from vlbench.datasets.mirror import download_mirror

            download_mirror(located.mirror, Path(located.location), located.source.get("split", "test"))
        reader = self.reader(located.source["format"])
        try:
            return reader.read(located.location, located.source, spec, ctx), located
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # a field the format needs is missing or malformed in the user's files
            raise VLBenchError(
                f"task '{spec.name}': the data at {located.location} does not match the {located.source['format']} "
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

    def count(self, records: list[dict[str, Any]]) -> int:
        """How many scored items the records hold (for micro-averaged suites)."""
        return len(records)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require_number(spec: TaskSpec, key: str, value: Any, low: float | None = None, high: float | None = None) -> None:
    """A protocol value must be a number in [low, high]; TaskSpecError otherwise."""
    if not is_number(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f" in [{low}, {high}]" if high is not None else f" >= {low}" if low is not None else ""
        raise TaskSpecError(spec.source_file, f"protocol.{key}", f"expected a number{bounds}, got {value!r}")


def apply_limit(items: list, limit: int | None) -> list:
    return items if limit is None else items[:limit]
