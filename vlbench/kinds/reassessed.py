"""Zero-shot classification scored against reassessed label sets (ImageNet-ReaL, Beyer et al. 2020).

A prediction counts when it is in the image's set of reassessed labels; images whose set is empty (no label
fits, per the raters) are left out, as big_vision's ``imagenet2012_real`` evaluation does. ``real_acc1`` is
"ReaL accuracy"; ``real_acc5`` counts an image when any of the 5 best classes is in its set; ``acc1`` /
``acc5`` stay the original single-label accuracies over every image. The predictions are classification's
(``vlbench.kinds.classification``); each record adds its label set, so everything rescores from the records.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from vlbench.bootstrap import weighted_mean
from vlbench.datasets.classification import ClassificationData
from vlbench.errors import VLBenchError
from vlbench.kinds.base import RunContext
from vlbench.kinds.classification import TOP_K_RECORDED, ClassificationKind, ClassificationResampler
from vlbench.registries import TASK_KINDS
from vlbench.spec.taskfile import TaskSpec


class ReassessedResampler(ClassificationResampler):
    """Images. real_acc1 / real_acc5: the weighted share of the images with a non-empty label set whose top-1 /
    any top-5 class is in it; acc1, acc5 and mean per-class recall as classification's."""

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.counted = np.asarray([bool(r["real"]) for r in records])
        self.real_hits = {k: np.asarray([any(c in r["real"] for c in r["top"][:k]) for r in records], dtype=np.float64)
                          for k in (1, TOP_K_RECORDED)}

    def outcomes(self, name: str) -> np.ndarray | None:
        return None if name.startswith("real_") else super().outcomes(name)

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        if name in ("real_acc1", "real_acc5"):
            (w,) = weights
            return weighted_mean(w[:, self.counted], self.real_hits[1 if name == "real_acc1" else TOP_K_RECORDED][self.counted])
        return super().metric(name, weights)


@TASK_KINDS.register("reassessed_classification")
class ReassessedKind(ClassificationKind):
    """Zero-shot classification scored against reassessed label sets (ImageNet-ReaL): right when in the image's set."""

    name = "reassessed_classification"
    resampler = ReassessedResampler
    metric_patterns = ("real_acc1", "real_acc5", "acc1", "acc5", "mean_per_class_recall")
    record_fields = {**ClassificationKind.record_fields, "real": (list[int], "the image's reassessed labels (empty: left out of real_acc*)")}

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        if data.label_sets is None:
            raise VLBenchError(f"task '{spec.name}': its source gives no reassessed label sets (use the imagenet_real format)")
        return data, located

    def decide(self, model: Any, data: ClassificationData, spec: TaskSpec) -> Any:
        decisions = super().decide(model, data, spec)
        assert data.label_sets is not None
        decisions.protocol["images_without_real_labels"] = sum(1 for labels in data.label_sets if not labels)
        return decisions

    def predict(self, model: Any, data: ClassificationData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        assert data.label_sets is not None
        for record in super().predict(model, data, spec, ctx):
            yield {**record, "real": list(data.label_sets[record["i"]])}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        results = self.point_estimates(list(records), spec, spec.metrics)
        return {name: results[name] for name in spec.metrics}
