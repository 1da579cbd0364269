"""Image clustering: k-means on frozen image embeddings, scored against the classes (MIEB's image clustering).

MIEB (``mteb`` ``ImageClusteringEvaluator``) fits scikit-learn's ``MiniBatchKMeans`` with as many clusters
as the split has classes, ``batch_size`` 500 and ``n_init="auto"`` (one k-means++ start) on the model's image
embeddings, and reports NMI, V-measure, ARI and cluster accuracy (its main score: NMI). Here the embeddings
are the encoder's L2-normalised ones (as MIEB's CLIP wrappers return) and the fit is seeded (MIEB leaves it
unseeded): the seed, the number of starts and the scikit-learn version are recorded in ``protocol_used``.
Each image's record holds its cluster, so every metric and its interval is rescored from the records
(``vlbench.kinds.partition_metrics`` has the definitions). The neighbouring kinds: ``knn`` and
``linear_probe`` score the same features with a training split's labels.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np

from vlbench.bootstrap import Resampler
from vlbench.datasets.classification import CLASSIFICATION_READERS, ClassificationData
from vlbench.errors import VLBenchError
from vlbench.kinds import partition_metrics
from vlbench.kinds.base import Decisions, RunContext, TaskKind
from vlbench.kinds.classification import ClassificationFiles
from vlbench.kinds.train_split import features
from vlbench.registries import TASK_KINDS
from vlbench.spec.fields import ProtocolFields
from vlbench.spec.schema import option, schema
from vlbench.spec.taskfile import TaskSpec


@schema
class ClusteringProtocol(ProtocolFields):
    algorithm: Literal["minibatch_kmeans", "kmeans"] = option("minibatch_kmeans", help="scikit-learn's MiniBatchKMeans (MIEB) or KMeans (Lloyd)")
    batch_size: int = option(500, help="minibatch_kmeans: samples per step (MIEB's clustering_batch_size: 500)", low=1)
    n_init: int = option(1, help="k-means++ starts, the best kept (MIEB's n_init='auto' is 1 start with k-means++)", low=1)
    seed: int = option(0, help="random_state of the fit (MIEB leaves it unseeded)")
    clusters: int = option(0, help="number of clusters (0: the number of classes in the evaluated split, as MIEB)", low=0)


class ClusteringResampler(Resampler):
    """Images: each metric of the contingency table of (class, cluster) counts of the drawn images."""

    unit = "images"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.keys = [r.get("key", r.get("i")) for r in records]
        self.labels = np.asarray([r["label"] for r in records], dtype=np.int64)
        self.clusters = np.asarray([r["cluster"] for r in records], dtype=np.int64)
        self.shape = (int(self.labels.max(initial=-1)) + 1, int(self.clusters.max(initial=-1)) + 1)

    @property
    def cells_per_replicate(self) -> int:
        return len(self.keys) + self.shape[0] * self.shape[1]

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        function = partition_metrics.METRICS.get(name)
        if function is None:
            return None
        (w,) = weights
        return np.asarray([function(partition_metrics.contingency(self.labels, self.clusters, row, *self.shape)) for row in w])


@TASK_KINDS.register("clustering")
class ClusteringKind(TaskKind):
    """k-means on image embeddings with the number of classes as k; NMI, V-measure, ARI, cluster accuracy."""

    name = "clustering"
    resampler = ClusteringResampler
    readers = CLASSIFICATION_READERS
    files_schema = ClassificationFiles
    protocol_schema = ClusteringProtocol
    metric_patterns = tuple(partition_metrics.METRICS)
    record_fields = {
        "i": (int, "the image's position in the dataset"),
        "key": (str | None, "the image's key"),
        "label": (int, "its class"),
        "cluster": (int, "the cluster k-means put it in"),
    }

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        return data.limited(ctx.limit), located

    @staticmethod
    def cluster_count(protocol: ClusteringProtocol, data: ClassificationData) -> int:
        return protocol.clusters or len(set(data.labels))

    def decide(self, model: Any, data: ClassificationData, spec: TaskSpec) -> Decisions:
        from vlbench.registry import package_version

        decisions = super().decide(model, data, spec)
        protocol = self.options(spec)
        k = self.cluster_count(protocol, data)
        if not 1 <= k <= len(data.images):
            raise VLBenchError(f"task '{spec.name}': {k} clusters cannot be fitted on {len(data.images)} images")
        decisions.protocol.update(clusters_used=k, scikit_learn=package_version("scikit-learn"))
        decisions.seed = protocol.seed
        self.decisions = decisions  # predict adds the fit's inertia
        return decisions

    def predict(self, model: Any, data: ClassificationData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        protocol = self.options(spec)
        x, _ = features(ctx.encoder, data, spec.name)
        assignment, inertia = fit_clusters(x.numpy(), self.cluster_count(protocol, data), protocol)
        self.decisions.protocol["inertia"] = round(inertia, 6)
        for i, image in enumerate(data.images):
            yield {"i": i, "key": image.key, "label": data.labels[i], "cluster": int(assignment[i])}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        results = self.point_estimates(list(records), spec, spec.metrics)
        return {name: results[name] for name in spec.metrics}


def fit_clusters(x: np.ndarray, k: int, protocol: ClusteringProtocol) -> tuple[np.ndarray, float]:
    """(each row's cluster, the fit's inertia) of scikit-learn's k-means as the protocol names it."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if protocol.algorithm == "minibatch_kmeans":
        model = MiniBatchKMeans(n_clusters=k, batch_size=protocol.batch_size, n_init=protocol.n_init, random_state=protocol.seed)
    else:
        model = KMeans(n_clusters=k, n_init=protocol.n_init, random_state=protocol.seed)
    model.fit(x)
    return model.labels_, float(model.inertia_)
