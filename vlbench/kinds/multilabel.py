"""Zero-shot multilabel classification (VOC2007 multilabel): mean average precision over classes."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from vlbench import metrics
from vlbench.datasets.multilabel import MULTILABEL_READERS, MultilabelData
from vlbench.bootstrap import Resampler
from vlbench.errors import VLBenchError
from vlbench.registries import TASK_KINDS
from vlbench.kinds.base import RunContext, tie_report
from vlbench.kinds.classification import ClassificationKind, choose_prompts, zero_shot_classifier
from vlbench.spec.taskfile import TaskSpec

TIE_RULE = ("images with equal scores for a class keep their dataset order (a stable sort); CLIP_benchmark's torch.sort "
            "leaves it to the data: low/high order every tied group negatives/positives first")


class MultilabelResampler(Resampler):
    """Images; mean average precision of the count-weighted ranking (``metrics.weighted_average_precision``)."""

    unit = "images"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.keys = [r.get("key", r.get("i")) for r in records]
        self.scores = np.asarray([r["scores"] for r in records], dtype=np.float64).reshape(len(records), -1)
        self.targets = np.zeros_like(self.scores)
        for row, record in enumerate(records):
            self.targets[row, record["targets"]] = 1

    @property
    def cells_per_replicate(self) -> int:
        return len(self.keys) * 4  # the ranking's weights, counts and gains of one class at a time

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        if name != "mean_average_precision":
            return None
        return metrics.weighted_average_precision(self.scores, self.targets, weights[0]).mean(axis=1)


@TASK_KINDS.register("multilabel_classification")
class MultilabelKind(ClassificationKind):
    """Classes are prompted as in classification; every image records its score for every class."""

    name = "multilabel_classification"
    resampler = MultilabelResampler
    readers = MULTILABEL_READERS
    metric_patterns = ("mean_average_precision",)
    record_fields = {
        "i": (int, "the image's position in the dataset"),
        "key": (str | None, "the image's key"),
        "targets": (list[int], "the classes present"),
        "scores": (list[float], "its score for every class"),
    }

    def prompts(self, spec: TaskSpec, data: MultilabelData) -> tuple[list[str], list[str]]:  # type: ignore[override]
        classnames, _ = choose_prompts(spec, data, "classnames")  # type: ignore[arg-type]
        templates, _ = choose_prompts(spec, data, "templates")  # type: ignore[arg-type]
        if not classnames or not templates:
            raise VLBenchError(f"task '{spec.name}' needs class names and templates (files.classnames / files.templates)")
        if len(classnames) != data.num_classes:
            raise VLBenchError(f"task '{spec.name}': the labels have {data.num_classes} classes but there are {len(classnames)} class names")
        return classnames, templates

    def predict(self, model: Any, data: MultilabelData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        classnames, templates = self.prompts(spec, data)
        ctx.encoder.prefetch_images(data.images)  # images decode while the prompts encode
        classifier = zero_shot_classifier(ctx.encoder, classnames, templates, self.options(spec).text_autocast)
        records: list[dict[str, Any] | None] = [None] * len(data.images)
        for indices, embeddings in ctx.encoder.iter_images(data.images, spec.name):
            logits = metrics.similarities(embeddings, classifier)
            for row, i in enumerate(indices):
                records[i] = {"i": i, "key": data.images[i].key, "targets": data.targets[i], "scores": logits[row].tolist()}
        yield from (r for r in records if r is not None)  # item order, whichever images came from the cache

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        records = list(records)
        if not records:
            return {"mean_average_precision": float("nan")}
        return self.point_estimates(records, spec, ["mean_average_precision"])

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
        """Images that share a score with an image of the other label in some class decide how that class's
        tied group is ordered; the mean AP is bounded by ordering every tied group negatives / positives first."""
        if not records:
            return tie_report(0, TIE_RULE, {})
        scores = np.asarray([r["scores"] for r in records], dtype=np.float64)
        targets = np.zeros_like(scores)
        for row, record in enumerate(records):
            targets[row, record["targets"]] = 1
        low, high = metrics.average_precision_bounds(scores, targets)
        return tie_report(int(metrics.mixed_tie_members(scores, targets).sum()), TIE_RULE,
                          {"mean_average_precision": (float(low.mean()), float(high.mean()), None)})
