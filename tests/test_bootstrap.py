"""Bootstrap confidence intervals: coverage on a known distribution, and each kind's resampling unit on hand-made records."""

import math

import numpy as np
import pytest
from vlbench.kinds.grounding import GroundingResampler
from vlbench.kinds.segmentation import SegmentationResampler
from vlbench.kinds.selection import SelectionResampler
from vlbench.kinds.retrieval import RetrievalResampler
from vlbench.kinds.classification import ClassificationResampler
from result_fixtures import classification_records

from vlbench import bootstrap, metrics
from vlbench.results import intervals
from vlbench.spec.catalog import Catalog
from vlbench.errors import VLBenchError
from vlbench.kinds import TASK_KINDS


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def test_ci_of_a_bernoulli_accuracy_covers_p_about_95_percent_and_has_the_normal_width():
    p, n, datasets = 0.3, 400, 150
    rng = np.random.default_rng(123)
    covered, widths = 0, []
    for seed in range(datasets):
        res = ClassificationResampler(classification_records(list(rng.random(n) < p)), None)
        low, high = bootstrap.interval(bootstrap.replicates(res, ["acc1"], 500, seed)["acc1"])
        covered += low <= p <= high
        widths.append(high - low)
    assert 0.90 <= covered / datasets <= 0.99
    normal = 2 * 1.959964 * math.sqrt(p * (1 - p) / n)
    assert np.mean(widths) == pytest.approx(normal, rel=0.05)


def test_same_seed_same_interval_and_options_are_recorded():
    records = classification_records([True, False, True, True, False, True, True, True])
    first = intervals.confidence("classification", records, None, ["acc1"], "acc1", 300, 7)
    again = intervals.confidence("classification", records, None, ["acc1"], "acc1", 300, 7)
    other = intervals.confidence("classification", records, None, ["acc1"], "acc1", 300, 8)
    assert first == again and first[1].main_replicates != other[1].main_replicates
    ci, record = first
    assert (record.unit, record.replicates_n, record.seed, record.level) == ("images", 300, 7, 0.95)
    assert len(record.main_replicates) == 300 and ci["acc1"][0] <= 0.75 <= ci["acc1"][1]


def test_classification_resamples_images_and_recomputes_per_class_recall():
    # labels 0, 0, 1; correct, wrong, correct
    res = ClassificationResampler(classification_records([True, False, True], labels=[0, 0, 1]), None)
    w = np.array([[2, 0, 1], [0, 2, 1], [1, 1, 0], [1, 1, 1]], dtype=float)
    assert res.metric("acc1", [w]) == pytest.approx([1.0, 1 / 3, 0.5, 2 / 3])
    # class 1 absent from the third resample: the mean is over the classes present
    assert res.metric("mean_per_class_recall", [w]) == pytest.approx([1.0, 0.5, 0.5, 0.75])


def test_retrieval_resamples_text_and_image_queries_separately(catalog):
    spec = catalog.load_task("shapes_retrieval")
    records = [{"type": "image", "i": 0, "key": "a", "rank": 0}, {"type": "image", "i": 1, "key": "b", "rank": 3},
               {"type": "text", "i": 0, "image": 0, "rank": 0}, {"type": "text", "i": 1, "image": 0, "rank": 1},
               {"type": "text", "i": 2, "image": 1, "rank": 0}]
    res = RetrievalResampler(records, spec)
    assert res.sizes == [3, 2] and res.unit == "queries"
    texts, images = np.array([[3, 0, 0], [0, 2, 1]], float), np.array([[0, 2], [2, 0]], float)
    assert res.metric("image_retrieval_recall@1", [texts, images]) == pytest.approx([1.0, 1 / 3])
    assert res.metric("text_retrieval_recall@1", [texts, images]) == pytest.approx([0.0, 1.0])
    assert res.metric("mean_recall@1", [texts, images]) == pytest.approx([0.5, 2 / 3])
    kind_scores = TASK_KINDS.get("retrieval")().score(records, spec)
    assert all(res.metric(m, res.identity())[0] == pytest.approx(kind_scores[m]) for m in spec.metrics)


def test_selection_resamples_items_with_groups(catalog):
    spec = catalog.load_task("aro_vg_relation")  # argmax rule, macro accuracy over relations
    answer = 1
    right, wrong = [[0.1, 0.9]], [[0.9, 0.1]]
    groups = ["on", "on", "under", "near"]
    records = [{"i": i, "id": f"q{i}", "scores": s, "answer": answer, "group": g} for i, (s, g) in enumerate(zip([right, wrong, right, wrong], groups))]
    spec = type(spec)(spec.name, spec.kind, spec.source_file, {**spec.config, "protocol": {**spec.protocol, "min_group_count": 1}, "files": {}})
    res = SelectionResampler(records, spec)
    w = np.array([[1, 1, 1, 1], [2, 0, 0, 2], [0, 0, 4, 0]], float)
    assert res.metric("accuracy", [w]) == pytest.approx([0.5, 0.5, 1.0])
    # groups on: 1/2, under: 1, near: 0 -> 0.5; second: on 1, near 0 -> 0.5; third: under only -> 1
    assert res.metric("macro_accuracy", [w]) == pytest.approx([0.5, 0.5, 1.0])
    kind_scores = TASK_KINDS.get("selection")().score(records, spec)
    assert res.metric("macro_accuracy", res.identity())[0] == pytest.approx(kind_scores["macro_accuracy"])


def test_segmentation_sums_per_image_confusion_matrices(catalog):
    spec = catalog.load_task("shapes_seg")
    classes = len(spec.read_lines("classnames"))
    one = np.zeros((classes, classes), int)
    one[0, 0], one[1, 1], one[1, 0] = 10, 5, 5
    two = np.zeros((classes, classes), int)
    two[2, 2], two[0, 2] = 4, 4

    def sparse(m):
        return [[int(r), int(c), int(m[r, c])] for r, c in zip(*np.nonzero(m))]

    records = [{"i": 0, "key": "a", "confusion": sparse(one)}, {"i": 1, "key": "b", "confusion": sparse(two)}]
    res = SegmentationResampler(records, spec)
    w = np.array([[2, 1], [0, 2], [1, 1]], float)
    for row, (a, b) in enumerate(w):
        expected = metrics.segmentation_scores(a * one + b * two)
        for name in ("mIoU", "mAcc", "aAcc"):
            assert res.metric(name, [w])[row] == pytest.approx(expected[name]), (name, row)
    kind_scores = TASK_KINDS.get("segmentation")().score(records, spec)
    assert res.metric("mIoU", res.identity())[0] == pytest.approx(kind_scores["mIoU"])


def test_grounding_resamples_items(catalog):
    spec = catalog.load_task("shapes_ground")
    hit = {"target": [0, 0, 10, 10], "proposals": [[0, 0, 10, 10], [20, 20, 30, 30]], "scores": [0.9, 0.1]}
    miss = {**hit, "scores": [0.1, 0.9]}
    records = [{"i": i, "id": f"r{i}", **r} for i, r in enumerate([hit, miss, hit])]
    res = GroundingResampler(records, spec)
    assert res.metric("accuracy", [np.array([[0, 3, 0], [1, 0, 2]], float)]) == pytest.approx([0.0, 1.0])
    assert res.metric("accuracy", res.identity())[0] == pytest.approx(TASK_KINDS.get("grounding")().score(records, spec)["accuracy"])


def test_mcnemar_exact_matches_the_binomial_test():
    # A right where B is wrong once, B right where A is wrong six times, 3 concordant
    a = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 0], float)
    b = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0], float)
    assert bootstrap.mcnemar_exact(a, b) == pytest.approx(2 * (1 + 7) / 2**7)  # 0.125 by hand
    scipy_stats = pytest.importorskip("scipy.stats")
    assert bootstrap.mcnemar_exact(a, b) == pytest.approx(scipy_stats.binomtest(1, 7, 0.5).pvalue)
    assert bootstrap.mcnemar_exact(a, a) == 1.0


def test_paired_difference_on_the_same_items_and_refusal_on_different_items():
    a = classification_records([True] * 40 + [False] * 60)
    b = classification_records([True] * 30 + [False] * 10 + [True] * 20 + [False] * 40)
    result = intervals.paired("classification", a, b, None, "acc1", 500, 0)
    assert (result.a, result.b, result.diff) == pytest.approx((0.4, 0.5, 0.1))
    assert result.test == "mcnemar" and result.p_value == pytest.approx(bootstrap.mcnemar_exact(np.r_[[1] * 40, [0] * 60], np.r_[[1] * 30, [0] * 10, [1] * 20, [0] * 40]))
    assert result.ci[0] < 0.1 < result.ci[1]
    mpcr = intervals.paired("classification", a, b, None, "mean_per_class_recall", 500, 0)
    assert mpcr.test == "bootstrap" and 0 <= mpcr.p_value <= 1
    with pytest.raises(VLBenchError, match="different items"):
        intervals.paired("classification", a, b[:-1], None, "acc1", 10, 0)
    with pytest.raises(VLBenchError, match="different items"):
        intervals.paired("classification", a, classification_records([True] * 100, keys=[f"x{i}" for i in range(100)]), None, "acc1", 10, 0)
