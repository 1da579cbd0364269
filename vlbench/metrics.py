"""Pure metric functions. Tie rules are part of each definition and are stated in its docstring."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


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


def recall_at_k(ranks: Sequence[int], k: int) -> float:
    """Share of queries whose best positive has rank < k (a hit if any positive is in the top k)."""
    if not len(ranks):
        return float("nan")
    return float(np.mean(np.asarray(ranks) < k))
