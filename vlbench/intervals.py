"""Confidence intervals read from result files, and suite intervals combined from members' replicates.

A result may carry ``ci: {metric: [low, high]}`` and ``bootstrap: {unit, replicates_n, seed, level,
main_replicates: [...]}``; results written before intervals existed carry neither and show none.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

DEFAULT_LEVEL = 0.95


def result_intervals(result: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """``{metric: (low, high)}`` from a result's ``ci`` field; malformed or null entries are left out."""
    found: dict[str, tuple[float, float]] = {}
    raw = result.get("ci")
    if not isinstance(raw, Mapping):
        return found
    for name, pair in raw.items():
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_finite(v) for v in pair):
            found[str(name)] = (float(pair[0]), float(pair[1]))
    return found


def result_replicates(result: Mapping[str, Any]) -> tuple[np.ndarray | None, float]:
    """The main metric's bootstrap replicates (or None) and the interval level they were drawn for."""
    boot = result.get("bootstrap")
    if not isinstance(boot, Mapping):
        return None, DEFAULT_LEVEL
    level = float(boot["level"]) if _finite(boot.get("level")) else DEFAULT_LEVEL
    values = boot.get("main_replicates")
    if not isinstance(values, list) or not values or not all(_finite(v) for v in values):
        return None, level
    return np.asarray(values, dtype=np.float64), level


def percentile_interval(replicates: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval: the (1-level)/2 and (1+level)/2 quantiles of the replicates."""
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def combine_replicates(
    members: Sequence[np.ndarray | None], weights: Sequence[float] | None = None
) -> np.ndarray | None:
    """A suite's replicates from its members': the element-wise mean (``mean`` aggregate), or the
    weighted mean with item counts as weights (``micro``). None unless every member has replicates
    of the same length (members are independent item sets, so replicate i of each can be paired)."""
    if not members or any(m is None for m in members):
        return None
    arrays = [np.asarray(m, dtype=np.float64) for m in members]  # type: ignore[arg-type]
    if len({a.shape for a in arrays}) != 1:
        return None
    stacked = np.stack(arrays)
    if weights is None:
        return stacked.mean(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(arrays),) or not np.all(w > 0):
        return None
    return (stacked * w[:, None]).sum(axis=0) / w.sum()


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
