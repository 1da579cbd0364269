"""Bootstrap confidence intervals and paired comparisons, from per-sample records alone.

Each task kind registers a ``Resampler`` that turns its records into per-unit arrays once and then
computes its metrics for a whole batch of bootstrap replicates at a time (numpy, no Python loop per
replicate). A replicate is a matrix of counts: how often each unit was drawn. The unit is what the
benchmark averages over: images (classification; segmentation, whose per-image confusion matrices
are summed), queries (retrieval: text queries for image retrieval, image queries for text
retrieval, each population resampled on its own), items (selection, grounding).

Intervals are percentile intervals (``level`` = 0.95: the 2.5th and 97.5th percentiles of the
replicates). The same seed gives the same replicates, so results are reproducible; units are taken
in item order (``item_order``), so neither intervals nor paired comparisons depend on the order in
which records were written.
"""

from __future__ import annotations

import math
import re
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from vlbench import metrics as metric_fns
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.results.schema import Bootstrap
from vlbench.spec.taskfile import TaskSpec

DEFAULT_REPLICATES = 1000
DEFAULT_SEED = 0
LEVEL = 0.95
CELLS_PER_CHUNK = 4_000_000  # replicates x units held in memory at once
ROUND = 6  # digits kept of stored replicates

RESAMPLERS: Registry = Registry("bootstrap resampler")


def _group_sums(weights: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[r, n] weights -> [r, groups]: the weights summed within each group (units sorted by group)."""
    if not len(starts):
        return np.zeros((weights.shape[0], 0))
    return np.add.reduceat(weights[:, order], starts, axis=1)


def _macro_mean(weights: np.ndarray, correct: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[r, n] weights -> [r]: the mean over groups present in each resample of the group's weighted accuracy."""
    hits, totals = _group_sums(weights * correct, order, starts), _group_sums(weights, order, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nanmean_rows(np.where(totals > 0, hits / totals, np.nan))


def _grouping(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, group starts and group values of integer codes (for ``_group_sums``)."""
    order = np.argsort(codes, kind="stable")
    values, starts = np.unique(codes[order], return_index=True)
    return order, starts, values


def _mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (weights @ values) / total


def _nanmean_rows(matrix: np.ndarray) -> np.ndarray:
    """Row means over the finite entries; NaN for a row with none (no warning)."""
    finite = np.isfinite(matrix)
    count = finite.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, np.where(finite, matrix, 0).sum(axis=1) / count, np.nan)


class Resampler(ABC):
    """A kind's records as per-unit arrays, and its metrics on batches of replicates."""

    unit: ClassVar[str] = "items"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        self.spec = spec
        self.keys: list[Any] = []  # one population: the identity of each unit, in record order

    @property
    def sizes(self) -> list[int]:
        """Units per population (retrieval has two: text and image queries; others one)."""
        return [len(self.keys)]

    def ids(self) -> list[Any]:
        """Identity of every unit, to check that two runs scored the same items."""
        return list(self.keys)

    @abstractmethod
    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        """``name`` on each replicate ([r] values) given one [r, n] count matrix per population; None if unsupported."""

    def outcomes(self, name: str) -> np.ndarray | None:
        """Per-unit 0/1 outcomes when ``name`` is their plain mean over one population (McNemar applies)."""
        return None

    @property
    def cells_per_replicate(self) -> int:
        """Numbers held per replicate while computing a metric (bounds the replicates per batch)."""
        return sum(self.sizes)

    def identity(self) -> list[np.ndarray]:
        """Weights of the data as observed (every unit once): ``metric`` then gives the point estimate."""
        return [np.ones((1, n)) for n in self.sizes]


@RESAMPLERS.register("classification")
class ClassificationResampler(Resampler):
    unit = "images"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        super().__init__(records, spec)
        self.keys = [r.get("key", r.get("i")) for r in records]
        labels = np.asarray([r["label"] for r in records], dtype=np.int64)
        self.top1 = np.asarray([r["top"][0] == r["label"] for r in records], dtype=np.float64)
        enough = all(len(r["top"]) >= 5 for r in records)
        self.top5 = np.asarray([r["label"] in r["top"][:5] for r in records], dtype=np.float64) if enough else None
        self.groups = _grouping(labels)

    def outcomes(self, name: str) -> np.ndarray | None:
        return {"acc1": self.top1, "acc5": self.top5}.get(name)

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        (w,) = weights
        if name in ("acc1", "acc5"):
            values = self.outcomes(name)
            return np.full(w.shape[0], np.nan) if values is None else _mean(w, values)
        if name == "mean_per_class_recall":  # classes present in the resample, as balanced accuracy
            order, starts, _ = self.groups
            return _macro_mean(w, self.top1, order, starts)
        return None


@RESAMPLERS.register("retrieval")
class RetrievalResampler(Resampler):
    """Population 0: text queries (image_retrieval); population 1: image queries (text_retrieval)."""

    unit = "queries"
    DIRECTIONS = {"image_retrieval": 0, "text_retrieval": 1}

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        super().__init__(records, spec)
        self.text = [r for r in records if r["type"] == "text"]
        self.image = [r for r in records if r["type"] == "image"]
        self.ranks = [np.asarray([r["rank"] for r in self.text]), np.asarray([r["rank"] for r in self.image])]

    @property
    def sizes(self) -> list[int]:
        return [len(self.text), len(self.image)]

    def ids(self) -> list[Any]:
        return [("text", r["i"], r.get("image")) for r in self.text] + [("image", r.get("key", r["i"])) for r in self.image]

    def outcomes(self, name: str) -> np.ndarray | None:
        match = re.fullmatch(r"(image_retrieval|text_retrieval)_recall@(\d+)", name)
        if not match:
            return None
        return (self.ranks[self.DIRECTIONS[match.group(1)]] < int(match.group(2))).astype(np.float64)

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        match = re.fullmatch(r"(image_retrieval|text_retrieval|mean)_recall@(\d+)", name)
        if not match:
            return None
        k = int(match.group(2))
        directions = list(self.DIRECTIONS) if match.group(1) == "mean" else [match.group(1)]
        values = [_mean(weights[self.DIRECTIONS[d]], (self.ranks[self.DIRECTIONS[d]] < k).astype(np.float64)) for d in directions]
        return sum(values) / len(values)


@RESAMPLERS.register("selection")
class SelectionResampler(Resampler):
    unit = "items"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        from vlbench.kinds.selection import SELECTION_RULES

        super().__init__(records, spec)
        self.declared: dict[str, tuple[np.ndarray, Any]] = {}
        if "outcomes" in spec.protocol:  # records format: the task file's declared outcomes
            self._declared(records, spec)
            return
        rule = SELECTION_RULES.get(spec.protocol["rule"])
        decided = [rule(r["scores"], r.get("answer")) for r in records]
        self.keys = [r.get("id", r.get("i")) for r in records]
        self.values = {name: np.asarray([d[name] for d in decided], dtype=np.float64) for name in (decided[0] if decided else {})}
        self.groups = None
        if "correct" in self.values:  # macro accuracy: the groups that count on the full data
            groups = [r.get("group") for r in records]
            exclude = set(spec.read_lines("excluded_groups") or [])
            min_count = int(spec.protocol.get("min_group_count", 1))
            names = sorted({g for g in groups if g is not None and g not in exclude})
            names = [g for g in names if groups.count(g) >= min_count]
            code = {g: i for i, g in enumerate(names)}
            codes = np.asarray([code.get(g, -1) for g in groups], dtype=np.int64)
            kept = np.flatnonzero(codes >= 0)
            order, starts, _ = _grouping(codes[kept])
            self.groups = (kept[order], starts)

    def _declared(self, records: Sequence[dict[str, Any]], spec: TaskSpec) -> None:
        """Per-item values of each declared outcome, and for ``macro: FIELD`` its group layout."""
        from vlbench.kinds.selection_outcomes import outcome_values

        self.keys = [r.get("id", r.get("i")) for r in records]
        self.values, self.groups = {}, None
        min_count = int(spec.protocol.get("min_group_count", 1))
        for name, options in spec.protocol["outcomes"].items():
            values = np.asarray(outcome_values(list(records), options), dtype=np.float64)
            layout = None
            if options.get("macro"):
                groups = [r.get("groups", {}).get(options["macro"]) for r in records]
                kept_names = sorted({g for g in groups if g is not None and groups.count(g) >= min_count})
                code = {g: i for i, g in enumerate(kept_names)}
                codes = np.asarray([code.get(g, -1) for g in groups], dtype=np.int64)
                kept = np.flatnonzero(codes >= 0)
                order, starts, _ = _grouping(codes[kept])
                layout = (kept[order], starts)
            self.declared[name] = (values, layout)

    def outcomes(self, name: str) -> np.ndarray | None:
        if self.declared:
            values, layout = self.declared.get(name, (None, None))
            binary = values is not None and layout is None and bool(np.isin(values, (0.0, 1.0)).all())
            return values if binary else None
        key = {"accuracy": "correct", "text_score": "text", "image_score": "image", "group_score": "group"}.get(name)
        return self.values.get(key) if key else None

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        (w,) = weights
        if self.declared:
            if name not in self.declared:
                return None
            values, layout = self.declared[name]
            if layout is None:
                return _mean(w, values)
            return _macro_mean(w, values, *layout)
        values = self.outcomes(name)
        if values is not None:
            return _mean(w, values)
        if name == "macro_accuracy" and self.groups is not None:
            return _macro_mean(w, self.values["correct"], *self.groups)
        return None


@RESAMPLERS.register("grounding")
class GroundingResampler(Resampler):
    unit = "items"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        from vlbench.kinds.grounding import GroundingKind

        super().__init__(records, spec)
        threshold = float(GroundingKind.protocol(spec)["iou_threshold"])
        self.keys = [r.get("id", r.get("i")) for r in records]
        self.hits = np.asarray([
            bool(r["scores"]) and metric_fns.box_iou(r["proposals"][int(np.argmax(r["scores"]))], r["target"]) > threshold
            for r in records], dtype=np.float64)

    def outcomes(self, name: str) -> np.ndarray | None:
        return self.hits if name == "accuracy" else None

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        return _mean(weights[0], self.hits) if name == "accuracy" else None


@RESAMPLERS.register("segmentation")
class SegmentationResampler(Resampler):
    """Images; a replicate's confusion matrix is the count-weighted sum of per-image matrices."""

    unit = "images"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        super().__init__(records, spec)
        self.classes = len(spec.read_lines("classnames") or [])
        self.keys = [r.get("key", r.get("i")) for r in records]
        rows = [(image, gt * self.classes + pred, count) for image, r in enumerate(records) for gt, pred, count in r["confusion"]]
        triplets = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        order = np.argsort(triplets[:, 1], kind="stable")
        self.image, cells, self.count = triplets[order, 0], triplets[order, 1], triplets[order, 2].astype(np.float64)
        self.cells, self.starts = np.unique(cells, return_index=True)
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def sizes(self) -> list[int]:
        return [len(self.keys)]

    @property
    def cells_per_replicate(self) -> int:
        return max(len(self.keys), len(self.image), self.classes * self.classes)

    def ids(self) -> list[Any]:
        return list(self.keys)

    def confusion(self, w: np.ndarray) -> np.ndarray:
        """[r, C, C] summed confusion matrices."""
        out = np.zeros((w.shape[0], self.classes * self.classes))
        if len(self.cells):
            out[:, self.cells] = np.add.reduceat(w[:, self.image] * self.count, self.starts, axis=1)
        return out.reshape(w.shape[0], self.classes, self.classes)

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        if name not in ("mIoU", "mAcc", "aAcc"):
            return None
        if self._last is None or self._last[0] is not weights[0]:  # the metrics of one batch share its matrices
            self._last = (weights[0], self.confusion(weights[0]))
        confusion = self._last[1]
        tp = np.diagonal(confusion, axis1=1, axis2=2)
        gt, pred = confusion.sum(axis=2), confusion.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if name == "mIoU":
                union = gt + pred - tp
                return _nanmean_rows(np.where(union > 0, tp / union, np.nan))
            if name == "mAcc":
                return _nanmean_rows(np.where(gt > 0, tp / gt, np.nan))
            total = confusion.sum(axis=(1, 2))
            return np.where(total > 0, tp.sum(axis=1) / total, np.nan)


def item_order(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records in item order (by ``type``, then ``i``, the item's place in the dataset), whatever order they
    were written in: replicates, intervals and pairings then do not depend on which items came from a cache."""
    rows = list(records)
    if all("i" in r for r in rows):
        rows.sort(key=lambda r: (str(r.get("type", "")), r["i"]))
    return rows


def resampler(kind: str, records: Iterable[dict[str, Any]], spec: TaskSpec) -> Resampler:
    return RESAMPLERS.get(kind)(item_order(records), spec)


def _replicate_batches(sizes: list[int], replicates: int, seed: int, cells: int = 0) -> Iterable[list[np.ndarray]]:
    """Count matrices, one [r, n] per population, ``replicates`` rows in all; each population draws
    from its own stream, so the replicates do not depend on how they are batched."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(sizes))] if len(sizes) > 1 else [np.random.default_rng(seed)]
    chunk = max(1, min(replicates, CELLS_PER_CHUNK // max(1, cells, sum(sizes))))
    for start in range(0, replicates, chunk):
        r = min(chunk, replicates - start)
        batch = []
        for n, rng in zip(sizes, streams):
            draws = rng.integers(0, n, size=(r, n)) + (np.arange(r) * n)[:, None]
            batch.append(np.bincount(draws.ravel(), minlength=r * n).reshape(r, n).astype(np.float64))
        yield batch


def replicates(res: Resampler, names: Sequence[str], n_replicates: int = DEFAULT_REPLICATES, seed: int | Sequence[int] = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Each supported metric on ``n_replicates`` bootstrap replicates."""
    names = [n for n in names if res.metric(n, res.identity()) is not None]
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    if min(res.sizes, default=0) == 0:
        return {}
    for weights in _replicate_batches(res.sizes, n_replicates, seed, res.cells_per_replicate):
        for name in names:
            out[name].append(res.metric(name, weights))  # type: ignore[arg-type]
    return {name: np.concatenate(parts) for name, parts in out.items()}


def interval(values: np.ndarray, level: float = LEVEL) -> list[float | None]:
    """Percentile interval of the finite replicates; [None, None] when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return [None, None]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def confidence(kind: str, records: Iterable[dict[str, Any]], spec: TaskSpec, metric_names: Sequence[str], main_metric: str,
               n_replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED, level: float = LEVEL) -> tuple[dict[str, list[float | None]], Bootstrap | None]:
    """``ci`` (metric -> [low, high]) and the ``bootstrap`` record of a result; ({}, None) for kinds without a resampler."""
    if kind not in RESAMPLERS:
        return {}, None
    res = resampler(kind, records, spec)
    names = [main_metric] + [m for m in metric_names if m != main_metric and "/" not in m]
    # each task draws its own stream (seed, task name): tasks of a suite with the same item count
    # do not resample the same positions, so suite intervals combine independent replicates
    reps = replicates(res, names, n_replicates, [seed, zlib.crc32(getattr(spec, "name", "").encode("utf-8"))])
    if main_metric not in reps:
        return {}, None
    ci = {name: interval(values, level) for name, values in reps.items()}
    main = [None if not math.isfinite(v) else round(float(v), ROUND) for v in reps[main_metric]]
    return ci, Bootstrap(unit=res.unit, replicates_n=n_replicates, seed=seed, level=level, main_replicates=main)


def as_array(values: Sequence[float | None]) -> np.ndarray:
    """Stored replicates (null for NaN) as a float array."""
    return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)


# -- paired comparison -------------------------------------------------------------------------------
@dataclass
class PairedResult:
    metric: str
    a: float  # the metric for run A
    b: float  # the metric for run B
    diff: float  # b - a on the same items
    ci: list[float | None]  # percentile interval of the paired replicate differences
    p_value: float
    test: str  # "mcnemar" (exact, per-item correctness) or "bootstrap" (paired)
    n: int  # units compared (first population)
    replicates: np.ndarray  # paired differences on each replicate (suites combine them)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value: binomial test of the discordant pairs against 1/2."""
    only_a = int(np.sum((a > 0.5) & (b < 0.5)))
    only_b = int(np.sum((a < 0.5) & (b > 0.5)))
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    low = min(only_a, only_b)
    tail = sum(math.comb(discordant, k) for k in range(low + 1)) / 2**discordant
    return min(1.0, 2 * tail)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value: twice the share of replicates on the far side of zero."""
    d = differences[np.isfinite(differences)]
    if not len(d):
        return math.nan
    return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def paired(kind: str, records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]], spec: TaskSpec, metric: str,
           n_replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED, level: float = LEVEL) -> PairedResult:
    """B - A on the same items, with a paired-bootstrap interval and a p-value; VLBenchError if the items differ."""
    res_a, res_b = resampler(kind, records_a, spec), resampler(kind, records_b, spec)
    if res_a.sizes != res_b.sizes or res_a.ids() != res_b.ids():
        raise VLBenchError(f"task '{getattr(spec, 'name', kind)}': the two runs scored different items ({'/'.join(map(str, res_a.sizes))} vs "
                           f"{'/'.join(map(str, res_b.sizes))} {res_a.unit}, or other ids); compare runs on the same data and --limit")
    a = float(res_a.metric(metric, res_a.identity())[0])  # type: ignore[index]
    b = float(res_b.metric(metric, res_b.identity())[0])  # type: ignore[index]
    diffs = []
    for weights in _replicate_batches(res_a.sizes, n_replicates, seed, max(res_a.cells_per_replicate, res_b.cells_per_replicate)):
        diffs.append(res_b.metric(metric, weights) - res_a.metric(metric, weights))  # type: ignore[operator]
    differences = np.concatenate(diffs)
    outcome_a, outcome_b = res_a.outcomes(metric), res_b.outcomes(metric)
    if outcome_a is not None and outcome_b is not None:
        p, test = mcnemar_exact(outcome_a, outcome_b), "mcnemar"
    else:
        p, test = bootstrap_p_value(differences), "bootstrap"
    return PairedResult(metric, a, b, b - a, interval(differences, level), p, test, res_a.sizes[0], differences)
