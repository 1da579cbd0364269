"""Classification and retrieval kinds: classifier construction, records, scoring from records."""

import math

import numpy as np
import pytest
import torch

from vlbench.encoding.encoder import Encoder
from vlbench.kinds.classification import ClassificationKind, zero_shot_classifier
from vlbench.kinds.retrieval import RetrievalKind
from vlbench.spec.taskfile import TaskSpec


class TableModel:
    """Texts map to fixed vectors; lets tests compute expected embeddings by hand."""

    transform_id = "table"

    def __init__(self, table):
        self.table = table

    def encode_texts(self, texts):
        vectors = torch.tensor([self.table[t] for t in texts], dtype=torch.float32)
        return vectors / vectors.norm(dim=1, keepdim=True)


def spec(kind, metrics):
    return TaskSpec("t", kind, None, {"metrics": metrics, "main_metric": metrics[0]})  # type: ignore[arg-type]


def test_classifier_is_mean_of_normalised_template_embeddings_renormalised():
    table = {"a cat": [3.0, 0.0], "the cat": [1.0, 1.0], "a dog": [0.0, 2.0], "the dog": [0.0, 5.0]}
    classifier = zero_shot_classifier(Encoder(TableModel(table)), ["cat", "dog"], ["a {c}", "the {c}"])
    cat = np.array([1.0, 0.0]) + np.array([1.0, 1.0]) / np.sqrt(2)
    expected_cat = cat / np.linalg.norm(cat)
    assert classifier[0].numpy() == pytest.approx(expected_cat, abs=1e-6)
    assert classifier[1].numpy() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_text_cache_encodes_each_distinct_text_once():
    calls = []

    class Counting(TableModel):
        def encode_texts(self, texts):
            calls.extend(texts)
            return super().encode_texts(texts)

    encoder = Encoder(Counting({"x": [1.0, 0.0], "y": [0.0, 1.0]}))
    encoder.texts(["x", "y", "x"])
    encoder.texts(["y", "x"])
    assert sorted(calls) == ["x", "y"]


def test_classification_scores_from_records():
    records = [
        {"label": 0, "top": [0, 1, 2, 3, 4]},
        {"label": 1, "top": [2, 1, 0, 3, 4]},
        {"label": 1, "top": [1, 0, 2, 3, 4]},
        {"label": 2, "top": [4, 3, 1, 0, 2]},
    ]
    result = ClassificationKind().score(records, spec("classification", ["acc1", "acc5", "mean_per_class_recall"]))
    assert result == {"acc1": pytest.approx(0.5), "acc5": pytest.approx(1.0), "mean_per_class_recall": pytest.approx((1 + 0.5 + 0) / 3)}


def test_top5_accuracy_is_undefined_below_five_classes():
    records = [{"label": 0, "top": [0, 1, 2]}, {"label": 2, "top": [1, 0, 2]}]
    result = ClassificationKind().score(records, spec("classification", ["acc1", "acc5"]))
    assert result["acc1"] == 0.5 and math.isnan(result["acc5"])


def test_retrieval_scores_from_records():
    records = [
        {"type": "image", "rank": 0}, {"type": "image", "rank": 3},
        {"type": "text", "rank": 0}, {"type": "text", "rank": 1}, {"type": "text", "rank": 7}, {"type": "text", "rank": 0},
    ]
    metrics = ["mean_recall@1", "image_retrieval_recall@1", "image_retrieval_recall@5", "text_retrieval_recall@1", "text_retrieval_recall@5"]
    result = RetrievalKind().score(records, spec("retrieval", metrics))
    assert result == {
        "mean_recall@1": pytest.approx((0.5 + 0.5) / 2),
        "image_retrieval_recall@1": pytest.approx(0.5),
        "image_retrieval_recall@5": pytest.approx(0.75),
        "text_retrieval_recall@1": pytest.approx(0.5),
        "text_retrieval_recall@5": pytest.approx(1.0),
    }
    assert RetrievalKind().count(records) == 2
