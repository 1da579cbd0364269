"""Hand-made results with per-sample records (classification), in the results layout."""

from __future__ import annotations

from pathlib import Path

from vlbench import bootstrap
from vlbench.results import intervals

from vlbench.results import schema as result_schema
from vlbench.kinds.classification import ClassificationKind
from vlbench.models.base import parse_model_spec
from vlbench.results.io import SampleWriter, write_json
from vlbench.spec.taskfile import TaskSpec

CONFIG = {"task": "toy", "kind": "classification", "metrics": ["acc1", "mean_per_class_recall"], "main_metric": "acc1"}


def classification_records(correct: list[bool], labels: list[int] | None = None, keys: list[str] | None = None) -> list[dict]:
    """One record per image: right (top-1 = label) or wrong (top-1 = label + 1)."""
    labels = labels or [0] * len(correct)
    keys = keys or [f"img{i}" for i in range(len(correct))]
    return [{"i": i, "key": k, "label": y, "top": [y if ok else y + 1], "scores": [1.0]} for i, (ok, y, k) in enumerate(zip(correct, labels, keys))]


def write_classification_result(results: Path, model: str, records: list[dict], task: str = "toy", limit: int | None = None) -> Path:
    """A result as the runner writes it (metrics, CI, samples), for ``records``; returns the result file."""
    spec = TaskSpec(task, "classification", Path("toy.yaml"), {**CONFIG, "task": task})
    metrics = ClassificationKind().score(records, spec)
    ci, resampled = intervals.confidence("classification", records, spec, list(metrics), "acc1", 200, 0)
    run_settings = {"limit": limit}
    path = result_schema.result_path(results, parse_model_spec(model).slug, task, spec.config_hash(run_settings))
    writer = SampleWriter(result_schema.samples_path(path, "run1"))
    for record in records:
        writer.write(record)
    writer.commit()
    result = result_schema.Result(
        schema_version=result_schema.SCHEMA_VERSION, created="2026-01-01T00:00:00+00:00",
        model=result_schema.ModelInfo(model),
        task=result_schema.TaskInfo(task, "classification", config_hash=spec.config_hash(run_settings), file="toy.yaml",
                                    dataset={"n": len(records)}, run_settings=run_settings, config=spec.config),
        metrics=metrics, main_metric="acc1", samples=writer.path.name, ci=ci, bootstrap=resampled,
    )
    write_json(path, result.to_json())
    return path
