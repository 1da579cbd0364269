"""Weighted k-nearest-neighbour classification on frozen image features (DINO's ``eval_knn.py``).

Each test image's k most similar training images (dot products of L2-normalised embeddings) vote for
their classes with weight exp(similarity / temperature); classes rank by their summed votes (equal votes:
lower class index first). DINO reports k = 20 and T = 0.07 (also k = 10, 100, 200). Top-1 and top-5
accuracy (top-5 needs k >= 5) and mean per-class recall; the records and the intervals are classification's.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from vlbench import metrics
from vlbench.kinds import probe_fit
from vlbench.kinds.base import RunContext
from vlbench.kinds.classification import TOP_K_RECORDED, ClassificationResampler
from vlbench.kinds.train_split import ProbeData, TrainSplitKind, features
from vlbench.registries import TASK_KINDS
from vlbench.spec.fields import ProtocolFields
from vlbench.spec.schema import option, schema
from vlbench.spec.taskfile import TaskSpec


@schema
class KnnProtocol(ProtocolFields):
    k: int = option(20, help="neighbours that vote (DINO: 20; also 10, 100, 200)", low=1)
    temperature: float = option(0.07, help="votes weigh exp(similarity / temperature) (DINO: 0.07)", gt=0.0)


class KnnResampler(ClassificationResampler):
    """Classification's, without its protocol's group metrics (a k-NN task has none)."""

    def __init__(self, records: Any, spec: TaskSpec | None):
        super().__init__(records, None)
        self.spec = spec


@TASK_KINDS.register("knn")
class KnnKind(TrainSplitKind):
    """k-NN on frozen image features: the training split's nearest neighbours vote (DINO's weighted k-NN)."""

    name = "knn"
    resampler = KnnResampler
    metric_patterns = ("acc1", "acc5", "mean_per_class_recall")
    protocol_schema = KnnProtocol
    record_fields = {**TrainSplitKind.record_fields, "top": (list[int], "the 5 classes with the most votes, best first")}

    def predict(self, model: Any, data: ProbeData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        protocol = self.options(spec)
        train_x, train_y = features(ctx.encoder, data.train, f"{spec.name} (train)")
        test_x, _ = features(ctx.encoder, data.test, spec.name)
        classes = max(int(train_y.max()), max(data.test.labels, default=0)) + 1
        votes = probe_fit.weighted_knn(train_x, train_y, test_x, classes, protocol.k, protocol.temperature)
        top = metrics.stable_topk(votes, min(TOP_K_RECORDED, protocol.k, classes))
        for i, image in enumerate(data.test.images):
            yield {"i": i, "key": image.key, "label": data.test.labels[i], "top": top[i].tolist()}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        results = self.point_estimates(list(records), spec, spec.metrics)
        return {name: results[name] for name in spec.metrics}
