"""Bootstrap machinery: resampling units, percentile intervals and paired comparisons (numpy only).

Each task kind declares its ``Resampler`` (``TaskKind.resampler``, beside the kind's ``score``) that turns
its records into per-unit arrays once and then computes its metrics for a whole batch of bootstrap
replicates at a time (numpy, no Python loop per replicate); ``weights`` of ones give the point estimate,
so a kind's ``score`` and its intervals share one definition of each metric. A replicate is a matrix of counts: how often each unit was drawn. The unit is what the
benchmark averages over: images (classification; segmentation, whose per-image confusion matrices
are summed), queries (retrieval: text queries for image retrieval, image queries for text
retrieval, each population resampled on its own), items (selection, grounding).

Intervals are percentile intervals (``level`` = 0.95: the 2.5th and 97.5th percentiles of the
replicates). The same seed gives the same replicates, so results are reproducible; units are taken
in item order (``item_order``), so neither intervals nor paired comparisons depend on the order in
which records were written. A result's intervals are computed in ``vlbench.results.intervals``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from vlbench.errors import VLBenchError

DEFAULT_REPLICATES = 1000
DEFAULT_SEED = 0
LEVEL = 0.95
CELLS_PER_CHUNK = 4_000_000  # replicates x units held in memory at once
ROUND = 6  # digits kept of stored replicates

def group_sums(weights: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[r, n] weights -> [r, groups]: the weights summed within each group (units sorted by group)."""
    if not len(starts):
        return np.zeros((weights.shape[0], 0))
    return np.add.reduceat(weights[:, order], starts, axis=1)


def macro_mean(weights: np.ndarray, correct: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[r, n] weights -> [r]: the mean over groups present in each resample of the group's weighted accuracy."""
    hits, totals = group_sums(weights * correct, order, starts), group_sums(weights, order, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return nanmean_rows(np.where(totals > 0, hits / totals, np.nan))


def worst_group_mean(weights: np.ndarray, values: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[r, n] weights -> [r]: the lowest weighted mean of ``values`` over the groups present in each resample
    (WILDS' worst-group accuracy: empty groups are skipped)."""
    sums, totals = group_sums(weights * values, order, starts), group_sums(weights, order, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(totals > 0, sums / totals, np.inf)
    lowest = means.min(axis=1) if means.shape[1] else np.full(weights.shape[0], np.nan)
    return np.where(np.isfinite(lowest), lowest, np.nan)


def grouping(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, group starts and group values of integer codes (for ``group_sums``)."""
    order = np.argsort(codes, kind="stable")
    values, starts = np.unique(codes[order], return_index=True)
    return order, starts, values


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (weights @ values) / total


def nanmean_rows(matrix: np.ndarray) -> np.ndarray:
    """Row means over the finite entries; NaN for a row with none (no warning)."""
    finite = np.isfinite(matrix)
    count = finite.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, np.where(finite, matrix, 0).sum(axis=1) / count, np.nan)


class Resampler(ABC):
    """A kind's records as per-unit arrays, and its metrics on batches of replicates."""

    unit: ClassVar[str] = "items"

    def __init__(self, records: Sequence[dict[str, Any]], spec: Any):
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


def item_order(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records in item order (by ``type``, then ``i``, the item's place in the dataset), whatever order they
    were written in: replicates, intervals and pairings then do not depend on which items came from a cache."""
    rows = list(records)
    if all("i" in r for r in rows):
        rows.sort(key=lambda r: (str(r.get("type", "")), r["i"]))
    return rows


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


def paired(resampler: type[Resampler], records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]], spec: Any, metric: str,
           n_replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED, level: float = LEVEL) -> PairedResult:
    """B - A on the same items, with a paired-bootstrap interval and a p-value; VLBenchError if the items differ."""
    res_a, res_b = resampler(item_order(records_a), spec), resampler(item_order(records_b), spec)
    if res_a.sizes != res_b.sizes or res_a.ids() != res_b.ids():
        raise VLBenchError(f"task '{getattr(spec, 'name', '?')}': the two runs scored different items ({'/'.join(map(str, res_a.sizes))} vs "
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
