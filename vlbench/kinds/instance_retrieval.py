"""Image-to-image (instance) retrieval: each query image ranks the database by embedding similarity; mean average
precision under the revisited Oxford / Paris protocols (Radenović et al. 2018).

The protocols, as revisitop's ``example_evaluate.py`` builds them from the ground truth: Easy (relevant: easy;
ignored: junk and hard), Medium (relevant: easy and hard; ignored: junk) and Hard (relevant: hard; ignored:
junk and easy). Ignored images are taken out of the ranking before AP is computed (``compute_map``: each
relevant image's position drops by the ignored images ranked above it), AP is revisitop's trapezoidal
``compute_ap``, and queries with no relevant image are left out of the mean. mP@k is its precision at
min(k, the last relevant image's position). Each query's record holds the ranking positions of its easy, hard
and junk images, so every protocol and k is rescored from the records. Equal similarities rank in database
order (lower index first; revisitop's ``np.argsort(-scores)`` leaves their order to the sort). Image-text
retrieval is the ``retrieval`` kind.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from vlbench.bootstrap import Resampler
from vlbench.datasets.instance_retrieval import INSTANCE_RETRIEVAL_READERS, InstanceRetrievalData
from vlbench.kinds.base import RunContext, TaskKind
from vlbench.registries import TASK_KINDS
from vlbench.spec.taskfile import TaskSpec

PROTOCOLS = {  # protocol -> (relevant, ignored)
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}
METRIC = re.compile(r"(map|mp@(\d+))_(easy|medium|hard)")
CHUNK = 256


def ranking_positions(scores: torch.Tensor) -> torch.Tensor:
    """[q, n] similarities -> [q, n]: each database image's 0-based position in its query's ranking (higher first,
    equal scores in database order)."""
    order = torch.sort(-scores, dim=1, stable=True).indices
    positions = torch.empty_like(order)
    positions.scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order).contiguous())
    return positions


def relevant_positions(record: dict[str, Any], protocol: str) -> np.ndarray | None:
    """The 0-based positions of the protocol's relevant images once its ignored images are taken out of the
    ranking (revisitop's junk adjustment); None when the query has no relevant image under it."""
    relevant, ignored = PROTOCOLS[protocol]
    positions = np.sort(np.concatenate([np.asarray(record[name], dtype=np.int64) for name in relevant]))
    if positions.size == 0:
        return None
    skipped = np.sort(np.concatenate([np.asarray(record[name], dtype=np.int64) for name in ignored]))
    return positions - np.searchsorted(skipped, positions)  # ignored images ranked above each relevant one


def average_precision(positions: np.ndarray) -> float:
    """revisitop's ``compute_ap``: the trapezoid between precision before and after each relevant image."""
    j = np.arange(len(positions), dtype=np.float64)
    before = np.where(positions == 0, 1.0, j / np.maximum(positions, 1))
    after = (j + 1) / (positions + 1)
    return float(((before + after) / 2).sum() / len(positions))


def precision_at(positions: np.ndarray, k: int) -> float:
    """revisitop's mP@k of one query: relevant images within min(k, the last relevant image's 1-based position)."""
    ranks = positions + 1
    cutoff = min(int(ranks.max()), k)
    return float((ranks <= cutoff).sum() / cutoff)


def query_values(record: dict[str, Any], name: str) -> float:
    """One query's AP or P@k under a protocol (NaN when the query has no relevant image there)."""
    match = METRIC.fullmatch(name)
    assert match is not None
    positions = relevant_positions(record, match.group(3))
    if positions is None:
        return float("nan")
    return average_precision(positions) if match.group(1) == "map" else precision_at(positions, int(match.group(2)))


class InstanceRetrievalResampler(Resampler):
    """Queries: a metric is the weighted mean of the per-query values over the queries that have relevant images."""

    unit = "queries"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.records = list(records)
        self.keys = [r.get("key", r["i"]) for r in records]
        self._values: dict[str, np.ndarray] = {}

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        if not METRIC.fullmatch(name):
            return None
        if name not in self._values:
            self._values[name] = np.asarray([query_values(r, name) for r in self.records], dtype=np.float64)
        values = self._values[name]
        (w,) = weights
        counted = np.isfinite(values)
        total = w[:, counted].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (w[:, counted] @ values[counted]) / total, np.nan)


@TASK_KINDS.register("instance_retrieval")
class InstanceRetrievalKind(TaskKind):
    """Image-to-image retrieval: queries rank the database; mAP and mP@k under the revisited Easy / Medium / Hard protocols."""

    name = "instance_retrieval"
    resampler = InstanceRetrievalResampler
    readers = INSTANCE_RETRIEVAL_READERS
    metric_patterns = (r"map_(easy|medium|hard)", r"mp@\d+_(easy|medium|hard)")
    record_fields = {
        "i": (int, "the query's position"),
        "key": (str | None, "the query image's key (its file and crop)"),
        "easy": (list[int], "0-based ranking positions of the query's easy database images"),
        "hard": (list[int], "... of its hard images"),
        "junk": (list[int], "... of its junk images (ignored by every protocol)"),
    }

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        return data.limited(ctx.limit), located

    def predict(self, model: Any, data: InstanceRetrievalData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        queries = ctx.encoder.images(data.queries, f"{spec.name} queries")
        database = ctx.encoder.images(data.database, f"{spec.name} database")
        for start in range(0, len(queries), CHUNK):
            positions = ranking_positions(queries[start:start + CHUNK] @ database.T)
            for row, i in enumerate(range(start, min(start + CHUNK, len(queries)))):
                found = positions[row]
                yield {"i": i, "key": data.queries[i].key,
                       **{name: sorted(found[data.relevance[i][name]].tolist()) for name in ("easy", "hard", "junk")}}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        results = self.point_estimates(list(records), spec, spec.metrics)
        return {name: results[name] for name in spec.metrics}
