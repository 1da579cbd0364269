"""Clustering and embedding-geometry kinds: the metrics against numbers worked out by hand and against
scikit-learn / Wang & Isola's formulas written independently, the k-means fit against scikit-learn called
directly on the same features, and both rescored from their records alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vlbench
from vlbench.kinds import partition_metrics
from vlbench.kinds.geometry import geometry_metrics, geometry_terms

SHIPPED = "openclip:vlbench-tiny@shapes"


def table(labels, clusters, weights=None):
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    return partition_metrics.contingency(labels, clusters, weights, labels.max() + 1, clusters.max() + 1)


def test_partition_metrics_equal_values_worked_out_by_hand():
    # classes {0,1}, {2,3}; clusters {0,1}, {2}, {3}: MI = log 2, H(classes) = log 2, H(clusters) = 1.5 log 2
    counts = table([0, 0, 1, 1], [0, 0, 1, 2])
    assert partition_metrics.nmi(counts) == pytest.approx(1 / 1.25)
    assert partition_metrics.v_measure(counts) == pytest.approx(0.8)
    # pairs: index 1, expected 2 * 1 / 6, max (2 + 1) / 2: ARI = (1 - 1/3) / (3/2 - 1/3) = 4/7
    assert partition_metrics.ari(counts) == pytest.approx(4 / 7)
    assert partition_metrics.cluster_accuracy(counts) == pytest.approx(0.75)
    perfect = table([0, 0, 1, 1], [1, 1, 0, 0])  # a relabelling is a perfect clustering
    assert [f(perfect) for f in partition_metrics.METRICS.values()] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    one = table([0, 0, 0], [0, 0, 0])  # scikit-learn's limit cases
    assert (partition_metrics.nmi(one), partition_metrics.ari(one), partition_metrics.v_measure(one)) == (1.0, 1.0, 1.0)


def test_partition_metrics_on_counts_equal_scikit_learn_on_the_items_repeated():
    from scipy.optimize import linear_sum_assignment
    from sklearn import metrics

    rng = np.random.default_rng(3)
    labels, clusters = rng.integers(0, 7, 400), rng.integers(0, 9, 400)
    clusters[:150] = labels[:150]  # some agreement
    counts = rng.multinomial(400, np.full(400, 1 / 400))  # a bootstrap replicate
    x, y = np.repeat(labels, counts), np.repeat(clusters, counts)
    confusion = metrics.confusion_matrix(x, y)
    matched = confusion[linear_sum_assignment(confusion, maximize=True)].sum() / len(x)
    expected = {"nmi": metrics.normalized_mutual_info_score(x, y), "v_measure": metrics.v_measure_score(x, y),
                "ari": metrics.adjusted_rand_score(x, y), "cluster_accuracy": matched}
    got = {name: f(table(labels, clusters, counts)) for name, f in partition_metrics.METRICS.items()}
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def shapes_runs():
    return vlbench.evaluate(SHIPPED, ["cluster_shapes", "geometry_shapes"], limit=200, bootstrap_replicates=50, no_cache=True)


@pytest.fixture(scope="module")
def encoder():
    from vlbench.encoding.encoder import Encoder
    from vlbench.models.openclip import OpenClipAdapter
    from vlbench.spec.catalog import Catalog

    return Encoder(OpenClipAdapter(Catalog.load().resolve_model(SHIPPED), device="cpu"))


def test_clustering_equals_scikit_learn_minibatch_kmeans_on_the_same_features(shapes_runs, encoder):
    from sklearn import metrics
    from sklearn.cluster import MiniBatchKMeans

    from vlbench.datasets.shapes import ShapesImage, classification_label

    x = encoder.images([ShapesImage("single", 20240917, i, 128) for i in range(200)]).numpy()
    labels = np.array([classification_label(i) for i in range(200)])
    expected = MiniBatchKMeans(n_clusters=len(set(labels)), batch_size=500, n_init=1, random_state=0).fit(x).labels_
    result = shapes_runs["cluster_shapes"]
    assert [s["cluster"] for s in result.samples] == expected.tolist()
    assert result.metrics["nmi"] == pytest.approx(metrics.normalized_mutual_info_score(labels, expected))
    assert result.metrics["ari"] == pytest.approx(metrics.adjusted_rand_score(labels, expected))
    used = result.result.task.protocol_used
    assert used["clusters_used"] == 30 and used["n_init"] == 1 and used["seed"] == 0 and used["scikit_learn"]
    low, high = result.result.ci["nmi"]
    assert low <= result.metrics["nmi"] <= high and low < high


def test_geometry_terms_give_the_diagnostics_worked_out_by_hand():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-0.6, 0.8]])
    owners = [0, 1, 1]
    terms = geometry_terms(images, texts, owners, alpha=2.0, t=2.0)
    image_rows = [{"uniformity_sum": v} for v in terms["image_uniformity_sum"].tolist()]
    text_rows = [{name: terms[name][j].item() for name in ("alignment", "to_text_centre", "pair_image_to_image_centre",
                                                          "pair_image_to_text_centre")} | {"uniformity_sum": terms["text_uniformity_sum"][j].item()}
                 for j in range(3)]
    got = geometry_metrics(image_rows, text_rows)
    # pair centres: images (1/3, 2/3), captions (0, 1.6) / 3 + (1/3, 0): the gap is 0.4 / 3
    assert got["modality_gap"] == pytest.approx(0.4 / 3)
    assert got["alignment"] == pytest.approx((0 + 0.4 + 0.4) / 3)  # squared pair distances
    assert got["image_uniformity"] == pytest.approx(-4.0)  # one pair at squared distance 2
    assert got["text_uniformity"] == pytest.approx(math.log((math.exp(-1.6) + math.exp(-6.4) + math.exp(-2.88)) / 3))


def test_geometry_equals_wang_and_isola_and_liang_formulas_on_the_models_embeddings(shapes_runs, encoder):
    from vlbench.kinds.base import RunContext
    from pathlib import Path
    from vlbench.spec.catalog import Catalog
    from vlbench.registries import TASK_KINDS

    spec = Catalog.load().load_task("geometry_shapes")
    kind = TASK_KINDS.get("geometry")()
    data, _ = kind.load(spec, RunContext(Path("/nonexistent"), encoder, limit=200))  # generated: reads no data root
    texts, owners = data.flat_captions()
    x, y = encoder.images(data.images).double(), encoder.texts(texts).double()
    paired = x[owners]
    expected = {
        "modality_gap": float((paired.mean(0) - y.mean(0)).norm()),
        "alignment": float((paired - y).norm(p=2, dim=1).pow(2).mean()),
        "image_uniformity": float(torch.pdist(x, p=2).pow(2).mul(-2).exp().mean().log()),
        "text_uniformity": float(torch.pdist(y, p=2).pow(2).mul(-2).exp().mean().log()),
    }
    result = shapes_runs["geometry_shapes"]
    assert result.metrics == pytest.approx(expected, rel=1e-6)
    assert kind.score(result.samples, spec) == pytest.approx(result.metrics, rel=1e-12)  # rescored from the records
    assert result.result.ci == {}  # diagnostics: no intervals


def test_cluster_and_geometry_results_rescore_from_their_files(tmp_path):
    from vlbench.results import schema as result_schema
    from vlbench.results.rescore import rescore

    results = vlbench.evaluate(SHIPPED, ["cluster_shapes", "geometry_shapes"], limit=60, bootstrap_replicates=20, output=tmp_path, no_cache=True)
    for name in ("cluster_shapes", "geometry_shapes"):
        path = results[name].path
        assert rescore(path, result_schema.read(path)) == pytest.approx(results[name].metrics, rel=1e-9)


def test_result_files_hold_each_metrics_own_range(tmp_path):
    import json

    from vlbench.results import schema as result_schema

    results = vlbench.evaluate(SHIPPED, ["cluster_shapes"], limit=40, bootstrap_replicates=0, output=tmp_path, no_cache=True)
    path = results["cluster_shapes"].path
    payload = json.loads(path.read_text())
    payload["metrics"]["ari"] = -0.25  # worse than chance: a valid adjusted Rand index
    path.write_text(json.dumps(payload))
    assert result_schema.read(path).metrics["ari"] == -0.25
    payload["metrics"]["nmi"] = -0.1
    path.write_text(json.dumps(payload))
    with pytest.raises(result_schema.InvalidResultError, match=r"'nmi' is -0.1, not a number in \[0, 1\]"):
        result_schema.read(path)
