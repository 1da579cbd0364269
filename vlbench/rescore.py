"""Recompute a result's metrics from its per-sample records alone (no model, no task files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlbench.errors import VLBenchError
from vlbench.kinds import TASK_KINDS
from vlbench.results import read_samples
from vlbench.specs import TaskSpec


def spec_from_result(result: dict[str, Any]) -> TaskSpec:
    """The task as it was run: its resolved config, with the lines of its text files from the result."""
    task = result["task"]
    embedded = {k: v["lines"] for k, v in task.get("files", {}).items() if "lines" in v}
    return TaskSpec(task["name"], task["kind"], Path(task["file"]), task["config"], embedded)


def rescore(result_file: Path, result: dict[str, Any]) -> dict[str, float]:
    samples = result_file.parent / str(result.get("samples", ""))
    if not samples.is_file():
        raise VLBenchError(f"{result_file} has no per-sample file {samples.name} beside it")
    return TASK_KINDS.get(result["task"]["kind"])().score(read_samples(samples), spec_from_result(result))
