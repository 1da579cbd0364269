"""Visual associations (WinoGAViL, scored as DataComp does): given a cue, pick as many candidate
images as there are associations, highest cue-image similarity first; Jaccard index of the pick."""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np

from vlbench.datasets.association import ASSOCIATION_READERS, AssociationData
from vlbench.bootstrap import Resampler, weighted_mean
from vlbench.errors import VLBenchError
from vlbench.registries import TASK_KINDS
from vlbench.metrics import similarities
from vlbench.kinds.base import Decisions, RunContext, TaskKind, autocast_used, mean_bounds, tie_report
from vlbench.spec.schema import option, schema
from vlbench.spec.fields import ProtocolFields
from vlbench.spec.taskfile import TaskSpec

# metric -> which instances it averages, by their number of candidates (DataComp's wino_eval.py)
CANDIDATE_GROUPS = {
    "avg_jaccard_score": lambda n: True,
    "jaccard_score_5": lambda n: n == 5,
    "jaccard_score_6": lambda n: n == 6,
    "jaccard_score_10": lambda n: n == 10,
    "jaccard_score_12": lambda n: n == 12,
    "jaccard_score_5-6": lambda n: n <= 6,
    "jaccard_score_10-12": lambda n: n >= 10,
}


def cue_prompt(cue: str) -> str:
    """DataComp's prompt: the lower-cased cue after 'A', or 'An' before a vowel."""
    cue = cue.lower()
    return f"An {cue}" if cue[:1] in "aeiou" and cue else f"A {cue}"


def jaccard_of_pick(scores: list[float], positives: list[int]) -> float:
    """Pick the len(positives) highest-scoring candidates (the last ones of an ascending stable
    sort, as ``np.argsort(s)[-n:]``; with no positives that slice is every candidate) and return
    |pick & positives| / |pick | positives|."""
    n = len(positives)
    order = np.argsort(np.asarray(scores), kind="stable")
    pick = set(order[-n:].tolist())
    truth = set(positives)
    union = pick | truth
    return len(pick & truth) / len(union) if union else 0.0


def jaccard_bounds(scores: list[float], positives: list[int]) -> tuple[float, float, float]:
    """(low, high, expected) Jaccard index of the pick over the orders of the candidates tied at the pick's
    boundary (the n-th highest score): the boundary group fills the pick's free places with its positives
    last, first, or in a random order (a hypergeometric number of them)."""
    n, values = len(positives), np.asarray(scores, dtype=np.float64)
    if n == 0 or n >= len(values):
        value = jaccard_of_pick(scores, positives)
        return value, value, value
    truth = np.zeros(len(values), dtype=bool)
    truth[positives] = True
    boundary = np.sort(values)[-n]
    above, at = values > boundary, values == boundary
    slots, group_positives, group_size = n - int(above.sum()), int((at & truth).sum()), int(at.sum())
    sure = int((above & truth).sum())
    low_hits, high_hits = sure + max(0, slots - (group_size - group_positives)), sure + min(group_positives, slots)
    expected = sum(math.comb(group_positives, h) * math.comb(group_size - group_positives, slots - h) / math.comb(group_size, slots)
                   * (sure + h) / (2 * n - sure - h) for h in range(low_hits - sure, high_hits - sure + 1))
    return low_hits / (2 * n - low_hits), high_hits / (2 * n - high_hits), float(expected)


@schema
class AssociationProtocol(ProtocolFields):
    autocast: Literal["none", "cuda_fp16"] = option("none", help="encode images and cues under fp16 autocast when the model runs on CUDA, "
                                                    "nothing on the CPU (DataComp's wino_eval.py: torch.cuda.amp.autocast)")


TIE_RULE = ("candidates with equal scores keep their order in a stable sort (the later ones are picked first); DataComp's "
            "np.argsort (quicksort) leaves that order to the data: low/high pick the tied positives last/first")


class AssociationResampler(Resampler):
    """Instances; each metric is the count-weighted mean Jaccard index over the instances of its candidate count."""

    unit = "instances"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.keys = [r.get("id", r.get("i")) for r in records]
        self.jaccards = np.asarray([jaccard_of_pick(r["scores"], r["positives"]) for r in records], dtype=np.float64)
        self.counts = np.asarray([len(r["scores"]) for r in records])

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        if name not in CANDIDATE_GROUPS:
            return None
        chosen = np.asarray([CANDIDATE_GROUPS[name](int(n)) for n in self.counts], dtype=np.float64)
        return weighted_mean(weights[0] * chosen, self.jaccards)


@TASK_KINDS.register("association")
class AssociationKind(TaskKind):
    name = "association"
    resampler = AssociationResampler
    readers = ASSOCIATION_READERS
    protocol_schema = AssociationProtocol
    metric_patterns = tuple(CANDIDATE_GROUPS)
    record_fields = {
        "i": (int, "the instance's position"),
        "id": (str | None, "its id"),
        "cue": (str | None, "the cue word"),
        "scores": (list[float], "cue-candidate cosine similarities"),
        "positives": (list[int], "the candidates associated with the cue"),
    }

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        return data.limited(ctx.limit), located

    def decide(self, model: Any, data: AssociationData, spec: TaskSpec) -> Decisions:
        decisions = super().decide(model, data, spec)
        decisions.protocol["autocast_used"] = autocast_used(model, self.options(spec).autocast)
        return decisions

    def predict(self, model: Any, data: AssociationData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        images = [ref for inst in data.instances for ref in inst.images]
        prompts = list(dict.fromkeys(cue_prompt(inst.cue) for inst in data.instances))
        autocast = self.options(spec).autocast
        image_emb = ctx.encoder.images(images, spec.name, autocast)
        text_emb = ctx.encoder.texts(prompts, f"{spec.name} cues", autocast)
        text_index = {p: i for i, p in enumerate(prompts)}
        start = 0
        for i, inst in enumerate(data.instances):
            rows = image_emb[start : start + len(inst.images)]
            start += len(inst.images)
            scores = similarities(rows, text_emb[[text_index[cue_prompt(inst.cue)]]])[:, 0]
            yield {"i": i, "id": inst.id, "cue": inst.cue, "scores": scores.tolist(), "positives": inst.positives}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        records = list(records)
        if not records:
            raise VLBenchError(f"task '{spec.name}' has no instances to score")
        return self.point_estimates(records, spec, spec.metrics)

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
        bounds = [jaccard_bounds(r["scores"], r["positives"]) for r in records]
        counts = [len(r["scores"]) for r in records]
        values = {}
        for metric in spec.metrics:
            chosen = [b for b, n in zip(bounds, counts) if CANDIDATE_GROUPS[metric](n)]
            values[metric] = mean_bounds(chosen) if chosen else (float("nan"),) * 3
        return tie_report(sum(low != high for low, high, _ in bounds), TIE_RULE, values)
