"""Recompute a result's metrics from its per-sample records alone (no model, no task files)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vlbench import bootstrap
from vlbench.results import intervals
from vlbench.errors import VLBenchError
from vlbench.kinds import TASK_KINDS
from vlbench.kinds.base import check_record
from vlbench.results.schema import Result, from_json
from vlbench.results.io import read_samples
from vlbench.spec.taskfile import TaskSpec

TOLERANCE = 1e-9


def _typed(result: Result | dict[str, Any]) -> Result:
    return result if isinstance(result, Result) else from_json(result)


def spec_from_result(result: Result | dict[str, Any]) -> TaskSpec:
    """The task as it was run: its resolved config, with the lines of its text files from the result."""
    task = _typed(result).task
    embedded = {k: v["lines"] for k, v in task.files.items() if isinstance(v, dict) and "lines" in v}
    return TaskSpec(task.name, task.kind, Path(task.file), task.config, embedded)


def records(result_file: Path, result: Result | dict[str, Any]) -> list[dict[str, Any]]:
    """The per-sample records of a result (only from a file inside its own folder), each checked against
    its kind's ``record_fields``; a damaged file or record is a one-line VLBenchError naming the file."""
    result = _typed(result)
    path = result.samples_file(result_file)
    if not path.is_file():
        raise VLBenchError(f"{result_file} has no per-sample file {path.name} beside it")
    kind = TASK_KINDS.get(result.task.kind)
    rows = list(read_samples(path))
    for number, row in enumerate(rows, 1):
        check_record(kind, row, f"per-sample file {path}, record {number}")
    return rows


def rescore(result_file: Path, result: Result | dict[str, Any]) -> dict[str, float]:
    result = _typed(result)
    return TASK_KINDS.get(result.task.kind)().score(records(result_file, result), spec_from_result(result))


def rescore_with_ci(result_file: Path, result: Result) -> tuple[dict[str, float], dict[str, Any], Any, dict[str, Any] | None]:
    """Metrics, ``ci``, ``bootstrap`` and ``ties`` recomputed (with the result's own bootstrap settings, or the defaults)."""
    rows = records(result_file, result)
    spec = spec_from_result(result)
    kind = TASK_KINDS.get(result.task.kind)()
    metrics = kind.score(rows, spec)
    settings = result.bootstrap
    replicates = settings.replicates_n if settings else bootstrap.DEFAULT_REPLICATES
    seed = settings.seed if settings else bootstrap.DEFAULT_SEED
    ci, resampled = intervals.confidence(result.task.kind, rows, spec, list(metrics), result.main_metric, replicates, seed)
    return metrics, ci, resampled, kind.ties(rows, spec)


def differences(stored: dict[str, float | None], recomputed: dict[str, float], tolerance: float = TOLERANCE) -> list[str]:
    """Metrics whose stored value differs from the recomputed one (null and NaN are equal; a missing one differs)."""
    out = []
    for name in sorted(set(stored) | set(recomputed)):
        a, b = stored.get(name, "missing"), recomputed.get(name, "missing")
        a_nan = a is None or (isinstance(a, float) and math.isnan(a))
        b_nan = b is None or (isinstance(b, float) and math.isnan(b))
        if a_nan and b_nan:
            continue
        if a_nan != b_nan or not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or abs(a - b) > tolerance:
            out.append(name)
    return out
