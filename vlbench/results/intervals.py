"""A result's confidence intervals: its kind's resampler (``TaskKind.resampler``) on its per-sample records.

``confidence`` gives the ``ci`` and ``bootstrap`` fields of a result (``vlbench.results.schema``); ``paired``
compares two runs of one task on the same items. The resampling itself is ``vlbench.bootstrap``'s.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Iterable, Sequence

from vlbench import bootstrap
from vlbench.bootstrap import DEFAULT_REPLICATES, DEFAULT_SEED, LEVEL, ROUND, PairedResult, Resampler
from vlbench.results.schema import Bootstrap


def resampler_of(kind: str) -> type[Resampler]:
    from vlbench.kinds import TASK_KINDS

    return TASK_KINDS.get(kind).resampler


def resampled(kind: str, records: Iterable[dict[str, Any]], spec: Any) -> Resampler:
    """The kind's resampler on the records, taken in item order."""
    return resampler_of(kind)(bootstrap.item_order(records), spec)


def confidence(kind: str, records: Iterable[dict[str, Any]], spec: Any, metric_names: Sequence[str], main_metric: str,
               n_replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED, level: float = LEVEL) -> tuple[dict[str, list[float | None]], Bootstrap | None]:
    """``ci`` (metric -> [low, high]) and the ``bootstrap`` record of a result; ({}, None) when the resampler
    does not compute the main metric."""
    res = resampled(kind, records, spec)
    names = [main_metric] + [m for m in metric_names if m != main_metric and "/" not in m]
    # each task draws its own stream (seed, task name): tasks of a suite with the same item count
    # do not resample the same positions, so suite intervals combine independent replicates
    reps = bootstrap.replicates(res, names, n_replicates, [seed, zlib.crc32(getattr(spec, "name", "").encode("utf-8"))])
    if main_metric not in reps:
        return {}, None
    ci = {name: bootstrap.interval(values, level) for name, values in reps.items()}
    main = [None if not math.isfinite(v) else round(float(v), ROUND) for v in reps[main_metric]]
    return ci, Bootstrap(unit=res.unit, replicates_n=n_replicates, seed=seed, level=level, main_replicates=main)


def paired(kind: str, records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]], spec: Any, metric: str,
           n_replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED, level: float = LEVEL) -> PairedResult:
    """B - A on the same items of one task (``bootstrap.paired`` with the kind's resampler)."""
    return bootstrap.paired(resampler_of(kind), records_a, records_b, spec, metric, n_replicates, seed, level)
