"""Agreement between a clustering and the true classes, from their (weighted) contingency table.

The clustering kind's metrics, as scikit-learn defines them (``sklearn.metrics.cluster``; MIEB's image
clustering calls those functions): normalised mutual information (arithmetic mean of the entropies),
V-measure (beta = 1), the adjusted Rand index, and cluster accuracy (the share of items on the best
one-to-one matching of clusters to classes, ``scipy.optimize.linear_sum_assignment``). Each takes a
contingency table of counts, so a bootstrap replicate (items drawn with multiplicity) is scored exactly as
scikit-learn scores the items repeated; the limit cases follow scikit-learn's.
"""

from __future__ import annotations

import numpy as np


def contingency(labels: np.ndarray, clusters: np.ndarray, weights: np.ndarray, classes: int, groups: int) -> np.ndarray:
    """[classes, groups] sums of ``weights`` per (label, cluster) pair."""
    return np.bincount(labels * groups + clusters, weights=weights, minlength=classes * groups).reshape(classes, groups)


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0]
    total = counts.sum()
    return float(-(counts / total * np.log(counts / total)).sum()) if total else 0.0


def _mutual_information(table: np.ndarray) -> float:
    total = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    i, j = np.nonzero(table)
    cells = table[i, j]
    return float(max((cells / total * (np.log(cells * total) - np.log(rows[i] * cols[j]))).sum(), 0.0))


def _present(table: np.ndarray) -> tuple[int, int]:
    return int((table.sum(axis=1) > 0).sum()), int((table.sum(axis=0) > 0).sum())


def nmi(table: np.ndarray) -> float:
    """``normalized_mutual_info_score`` (average_method 'arithmetic')."""
    classes, groups = _present(table)
    if classes == groups == 1 or classes == groups == 0:
        return 1.0
    mi = _mutual_information(table)
    if mi == 0:
        return 0.0
    return mi / ((_entropy(table.sum(axis=1)) + _entropy(table.sum(axis=0))) / 2)


def v_measure(table: np.ndarray) -> float:
    """``v_measure_score`` with beta = 1: the harmonic mean of homogeneity and completeness."""
    if table.sum() == 0:
        return 1.0
    mi = _mutual_information(table)
    h_classes, h_clusters = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    homogeneity = mi / h_classes if h_classes else 1.0
    completeness = mi / h_clusters if h_clusters else 1.0
    return 0.0 if homogeneity + completeness == 0 else 2 * homogeneity * completeness / (homogeneity + completeness)


def ari(table: np.ndarray) -> float:
    """``adjusted_rand_score``, from the pair confusion matrix as scikit-learn computes it."""
    n = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    squares = (table**2).sum()
    tp = squares - n
    fp = (table @ cols).sum() - squares  # ordered pairs together in a cluster, apart in the classes
    fn = (table.T @ rows).sum() - squares  # together in a class, apart in the clusters
    tn = n**2 - fp - fn - squares
    if fn == 0 and fp == 0:
        return 1.0
    return float(2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def cluster_accuracy(table: np.ndarray) -> float:
    """The share of items that the best one-to-one matching of clusters to classes gets right."""
    from scipy.optimize import linear_sum_assignment

    total = table.sum()
    if not total:
        return float("nan")
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / total)


METRICS = {"nmi": nmi, "v_measure": v_measure, "ari": ari, "cluster_accuracy": cluster_accuracy}
