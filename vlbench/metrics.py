"""Pure metric functions. Tie rules are part of each definition and are stated in its docstring."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

#: Metrics that are not shares of items (the geometry kind's distances and log-kernels): shown as they are, not in percent.
NOT_PERCENTAGES = frozenset({"modality_gap", "alignment", "image_uniformity", "text_uniformity"})


def is_percentage(name: str | None) -> bool:
    """Whether tables show ``name`` in percent (every metric but ``NOT_PERCENTAGES``)."""
    return name not in NOT_PERCENTAGES


def value_range(name: str | None) -> tuple[float, float]:
    """The values a metric can take: [0, 1] for shares of items; the adjusted Rand index goes below 0 (chance is 0);
    the geometry diagnostics are any finite number."""
    if name in NOT_PERCENTAGES:
        return -math.inf, math.inf
    return (-1.0, 1.0) if name == "ari" else (0.0, 1.0)


def similarities(queries: torch.Tensor, candidates: torch.Tensor, unique_queries: bool = True) -> torch.Tensor:
    """``queries @ candidates.T`` ([Q, C]) computed once per distinct pair of rows and gathered, so that
    identical inputs get bit-identical scores wherever they stand.

    A float32 matrix product's last bits depend on a row's or column's position (the kernel's blocking),
    so two copies of one caption could score 1e-8 apart and an exact tie -- which a rule may count as
    wrong -- would be broken at random. ``unique_queries=False`` dedupes only the candidates (for many
    query rows that rarely repeat, such as patch features).
    """
    distinct_candidates, candidate_of = torch.unique(candidates, dim=0, return_inverse=True)
    if not unique_queries:
        return (queries @ distinct_candidates.T)[..., candidate_of]
    distinct_queries, query_of = torch.unique(queries, dim=0, return_inverse=True)
    return (distinct_queries @ distinct_candidates.T)[query_of][:, candidate_of]


def stable_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores per row; equal scores keep index order (lower index first).

    This is the order ``np.argmax`` and ``torch.argmax`` use for the top-1, made explicit for every k.
    """
    k = min(k, scores.shape[-1])
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]


def topk_accuracy(topk: Sequence[Sequence[int]], labels: Sequence[int], k: int) -> float:
    """Share of samples whose label is among their first k predictions."""
    if not labels:
        return float("nan")
    return float(np.mean([label in list(pred)[:k] for pred, label in zip(topk, labels)]))


def mean_per_class_recall(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Mean over classes present in ``labels`` of the share of their samples predicted correctly.

    Classes with no samples are left out (scikit-learn's ``balanced_accuracy_score``, which
    CLIP_benchmark reports as ``mean_per_class_recall``).
    """
    if not labels:
        return float("nan")
    predictions_arr, labels_arr = np.asarray(predictions), np.asarray(labels)
    recalls = [np.mean(predictions_arr[labels_arr == c] == c) for c in np.unique(labels_arr)]
    return float(np.mean(recalls))


def rank_of_positive(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """0-based rank of the best-ranked positive in each row of ``scores``.

    ``positive`` is a boolean mask of the same shape. Candidates are ordered by score, highest first,
    with equal scores in index order; the rank is the position of the first positive in that order:
    (# candidates scoring higher than the best positive) + (# candidates with the same score and a
    lower index than the first positive having that score).
    """
    if not bool(positive.any(dim=1).all()):
        raise ValueError("every row needs at least one positive")
    masked = scores.masked_fill(~positive, float("-inf"))
    best = masked.max(dim=1, keepdim=True).values
    first_best = (positive & (scores == best)).float().argmax(dim=1, keepdim=True)
    higher = (scores > best).sum(dim=1)
    index = torch.arange(scores.shape[1]).unsqueeze(0)
    tied_before = ((scores == best) & (index < first_best)).sum(dim=1)
    return higher + tied_before


def best_positive_ties(scores: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: (candidates scoring above the best positive, candidates sharing its score, positives among
    those); with ``hit_bounds`` they bound recall@k over the orders of the tied candidates."""
    best = scores.masked_fill(~positive, float("-inf")).max(dim=1, keepdim=True).values
    at_best = scores == best
    return (scores > best).sum(dim=1), at_best.sum(dim=1), (at_best & positive).sum(dim=1)


def recall_at_k(ranks: Sequence[int], k: int) -> float:
    """Share of queries whose best positive has rank < k (a hit if any positive is in the top k)."""
    if not len(ranks):
        return float("nan")
    return float(np.mean(np.asarray(ranks) < k))


def confusion_matrix(prediction: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """[num_classes, num_classes] pixel counts, rows = ground truth, columns = prediction.

    Pixels labelled ``ignore_index`` are left out, and so are labels or predictions outside
    [0, num_classes) (as mmsegmentation's histograms drop them).
    """
    label = label.astype(np.int64).ravel()
    prediction = prediction.astype(np.int64).ravel()
    keep = (label != ignore_index) & (label >= 0) & (label < num_classes) & (prediction >= 0) & (prediction < num_classes)
    counts = np.bincount(label[keep] * num_classes + prediction[keep], minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray) -> dict[str, float | np.ndarray]:
    """Dataset-level IoU from summed pixel counts (not a mean of per-image IoUs).

    IoU_c = TP_c / (GT_c + Pred_c - TP_c); a class that is neither in the ground truth nor predicted
    has no IoU (NaN) and is skipped by the mean, as in mmsegmentation's IoUMetric.
    """
    confusion = confusion.astype(np.float64)
    true_positive = np.diag(confusion)
    ground_truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    union = ground_truth + predicted - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
        accuracy = np.where(ground_truth > 0, true_positive / ground_truth, np.nan)
    total = confusion.sum()
    return {
        "mIoU": float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan"),
        "mAcc": float(np.nanmean(accuracy)) if np.any(~np.isnan(accuracy)) else float("nan"),
        "aAcc": float(true_positive.sum() / total) if total else float("nan"),
        "iou": iou,
    }


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes in continuous coordinates (no +1)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def worst_group_accuracy(hits: Sequence[bool], groups: Sequence[int]) -> float:
    """Lowest accuracy over the groups that have samples (WILDS' ``acc_wg``: groups are the values
    of one metadata field; empty groups are skipped)."""
    if not len(hits):
        return float("nan")
    hits_arr, groups_arr = np.asarray(hits, dtype=np.float64), np.asarray(groups)
    return float(min(hits_arr[groups_arr == g].mean() for g in np.unique(groups_arr)))


def macro_over_present_labels(predictions: Sequence[int], labels: Sequence[int], measure: str) -> float:
    """Macro F1 or recall over the labels present in ``labels`` (WILDS' ``F1-macro_all`` /
    ``recall-macro_all``: scikit-learn's scores with ``labels=unique(y_true)``). For such a label
    F1 = 2TP / (2TP + FP + FN) and recall = TP / (TP + FN); neither denominator can be 0."""
    if not len(labels):
        return float("nan")
    predictions_arr, labels_arr = np.asarray(predictions), np.asarray(labels)
    values = []
    for c in np.unique(labels_arr):
        tp = np.sum((predictions_arr == c) & (labels_arr == c))
        fp = np.sum((predictions_arr == c) & (labels_arr != c))
        fn = np.sum((predictions_arr != c) & (labels_arr == c))
        values.append(2 * tp / (2 * tp + fp + fn) if measure == "f1" else tp / (tp + fn))
    return float(np.mean(values))


def average_precision_per_class(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[C] average precision of each column of ``scores`` [N, C] against 0/1 ``targets`` [N, C].

    CLIP_benchmark's multilabel definition: rank samples by score (highest first; equal scores
    keep sample order), AP = mean of the precision at the rank of each positive; a class with no
    positive has AP 0. Without ties this equals scikit-learn's ``average_precision_score``.
    ``weighted_average_precision`` with every weight 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return weighted_average_precision(scores, targets, np.ones((1, scores.shape[0])))[0]


def weighted_average_precision(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[r, C] average precision of each class when sample i counts ``weights[r, i]`` times (bootstrap
    replicates; copies of a sample sit together in the ranking).

    A sample drawn w times after C samples (TP of them positive) contributes the precisions of its copies,
    sum over k = 1..w of (TP + k) / (C + k) = w + (TP - C) (H(C + w) - H(C)), H the harmonic numbers.
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0
    weights = np.asarray(weights, dtype=np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, int(weights.sum(axis=1).max(initial=0)) + 2))])
    result = np.zeros((weights.shape[0], scores.shape[1]))
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")
        truth, w = targets[order, c].astype(np.float64), weights[:, order]
        before = np.cumsum(w, axis=1) - w  # copies ranked above each sample
        positives_before = np.cumsum(w * truth, axis=1) - w * truth
        counts = before.astype(np.int64)
        gain = w + (positives_before - before) * (harmonic[counts + w.astype(np.int64)] - harmonic[counts])
        positives = (w * truth).sum(axis=1)
        result[:, c] = (gain * truth).sum(axis=1) / np.maximum(positives, 1)
    return result


# -- exact ties: how far a metric can move with the order of tied scores --------------------------------
# References break exact ties in orders their code does not fix (CLIP_benchmark's top-k and AP sort, DataComp's
# top-k): on tied items vlbench's lower-index-first order and theirs can differ. These give, per item or class,
# the outcome under the least and the most favourable order of the tied candidates, and its expectation when
# every order is equally likely.
def hit_bounds(above: int, tied: int, tied_positives: int, k: int) -> tuple[float, float, float]:
    """(low, high, expected) of "a positive is among the first k" for a query whose best positive has
    ``above`` candidates strictly higher and shares its score with ``tied`` candidates (``tied_positives``
    of them positive, the best one included)."""
    slots = k - above  # places in the top k left for the tied block
    negatives = tied - tied_positives
    if slots <= 0:
        return 0.0, 0.0, 0.0
    if slots > negatives:  # a positive is in the top k whatever the order
        return 1.0, 1.0, 1.0
    # P(the first `slots` of a random order of the block are all negatives) = C(negatives, slots) / C(tied, slots)
    return 0.0, 1.0, 1.0 - math.comb(negatives, slots) / math.comb(tied, slots)


def average_precision_bounds(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[C] average precision (``average_precision_per_class``) with every group of tied scores ordered
    negatives first (low) and positives first (high)."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0
    low, high = np.zeros(scores.shape[1]), np.zeros(scores.shape[1])
    n = scores.shape[0]
    for c in range(scores.shape[1]):
        for bound, positives_first in ((low, False), (high, True)):
            truth = targets[np.lexsort((targets[:, c] != positives_first, -scores[:, c])), c]
            precision = np.cumsum(truth) / np.arange(1, n + 1)
            bound[c] = precision[truth].sum() / max(int(truth.sum()), 1)
    return low, high


def mixed_tie_members(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[N] bool: rows that share a score with a row of the other label in some column (an AP tie)."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0
    member = np.zeros(scores.shape[0], dtype=bool)
    for c in range(scores.shape[1]):
        _, group = np.unique(scores[:, c], return_inverse=True)
        positives = np.bincount(group, weights=targets[:, c], minlength=group.max() + 1 if len(group) else 0)
        sizes = np.bincount(group)
        mixed = (positives > 0) & (positives < sizes)
        member |= mixed[group]
    return member
