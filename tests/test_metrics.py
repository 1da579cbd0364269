"""Metric definitions against hand-computed values (ties included) and scikit-learn."""

import math

import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from vlbench import metrics


def test_stable_topk_breaks_ties_by_index():
    scores = torch.tensor([[0.5, 0.9, 0.9, 0.1], [0.2, 0.2, 0.2, 0.2]])
    assert metrics.stable_topk(scores, 3).tolist() == [[1, 2, 0], [0, 1, 2]]
    assert metrics.stable_topk(scores, 10).shape == (2, 4)  # k capped at the number of classes


def test_topk_accuracy_by_hand():
    tops = [[2, 0, 1], [1, 2, 0], [0, 1, 2], [2, 1, 0]]
    labels = [2, 2, 1, 0]
    assert metrics.topk_accuracy(tops, labels, 1) == pytest.approx(1 / 4)
    assert metrics.topk_accuracy(tops, labels, 2) == pytest.approx(3 / 4)
    assert metrics.topk_accuracy(tops, labels, 3) == pytest.approx(1.0)


def test_mean_per_class_recall_by_hand_and_sklearn():
    labels = [0, 0, 0, 1, 1, 2]
    predictions = [0, 0, 1, 1, 0, 3]  # class 3 is predicted but has no samples: left out
    # recalls: class0 2/3, class1 1/2, class2 0/1 -> mean 7/18
    assert metrics.mean_per_class_recall(predictions, labels) == pytest.approx(7 / 18)
    with pytest.warns(UserWarning):
        reference = balanced_accuracy_score(labels, predictions)
    assert metrics.mean_per_class_recall(predictions, labels) == pytest.approx(reference)


def test_rank_of_positive_with_ties():
    scores = torch.tensor(
        [
            [0.3, 0.7, 0.7, 0.1],  # positive 2 ties with 1 (lower index): rank 1
            [0.3, 0.7, 0.7, 0.1],  # positive 1: rank 0
            [0.9, 0.5, 0.5, 0.5],  # positives 2 and 3 tie with 1: best positive index 2, rank 2
            [0.1, 0.2, 0.3, 0.4],  # positives 0 and 3: best is 3, rank 0
        ]
    )
    positive = torch.tensor(
        [
            [False, False, True, False],
            [False, True, False, False],
            [False, False, True, True],
            [True, False, False, True],
        ]
    )
    assert metrics.rank_of_positive(scores, positive).tolist() == [1, 0, 2, 0]


def test_rank_needs_a_positive():
    with pytest.raises(ValueError):
        metrics.rank_of_positive(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool))


def test_recall_at_k_and_multi_caption_retrieval_by_hand():
    from vlbench.kinds.retrieval import ranks

    # 2 images, 4 captions: captions 0,1 belong to image 0; 2,3 to image 1.
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.nn.functional.normalize(torch.tensor([[0.0, 1.0], [1.0, 0.2], [0.0, 1.0], [1.0, 0.0]]), dim=1)
    owners = torch.tensor([0, 0, 1, 1])
    positive = owners.unsqueeze(1) == torch.arange(2).unsqueeze(0)
    # text->image: caption 0 prefers image 1 (rank 1); caption 1 -> image 0 (rank 0);
    # caption 2 -> image 1 (rank 0); caption 3 prefers image 0 (rank 1)
    text_ranks = ranks(texts, images, positive)
    assert text_ranks == [1, 0, 0, 1]
    # image->text: image 0 scores [0, .98, 0, 1]; best own caption is 1 (.98), caption 3 is higher: rank 1.
    # image 1 scores [1, .196, 1, 0]; own caption 2 ties caption 0 (lower index): rank 1.
    image_ranks = ranks(images, texts, positive.T.contiguous())
    assert image_ranks == [1, 1]
    assert metrics.recall_at_k(text_ranks, 1) == 0.5
    assert metrics.recall_at_k(image_ranks, 1) == 0.0
    assert metrics.recall_at_k(image_ranks, 2) == 1.0
    assert math.isnan(metrics.recall_at_k([], 1))
