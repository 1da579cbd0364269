"""``vlbench compare``: two models' paired differences per task and suite, on the same items."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vlbench import bootstrap
from vlbench.results import intervals

from vlbench.results import schema as result_schema
from vlbench.spec.catalog import Catalog
from vlbench.errors import VLBenchError
from vlbench.results.selection import aggregate
from vlbench.results.rescore import records, spec_from_result

Picked = tuple[Path, result_schema.Result]


@dataclass
class CompareRow:
    task: str  # a task, or a suite
    metric: str  # the main metric ("suite" for suites)
    a: float
    b: float
    diff: float  # b - a
    ci: list[float | None]  # 95% paired-bootstrap interval of the difference
    p_value: float
    test: str  # mcnemar | bootstrap
    n: int | None  # units compared (tasks: first population; suites: none)


def _runs_by_model(folder: Path, warn: Callable[[str], None] | None = None) -> dict[str, dict[str, list[Picked]]]:
    if not Path(folder).is_dir():
        raise VLBenchError(f"results folder not found: {folder}")
    runs: dict[str, dict[str, list[Picked]]] = {}
    for path, result in result_schema.scan(folder, warn):
        runs.setdefault(result.model.id, {}).setdefault(result.task.name, []).append((path, result))
    if not runs:
        raise VLBenchError(f"no result files under {folder}")
    return runs


def _one_model(folder: Path, warn: Callable[[str], None] | None = None) -> dict[str, list[Picked]]:
    runs = _runs_by_model(folder, warn)
    if len(runs) != 1:
        raise VLBenchError(f"{folder} holds {len(runs)} models ({', '.join(sorted(runs))}); pass one folder and --models A --models B")
    return next(iter(runs.values()))


def _pick(candidates: list[Picked], settings: dict[str, str] | None = None) -> Picked | None:
    """The run a leaderboard with these ``--settings`` shows (a full run preferred, else a --limit one)."""
    return result_schema.pick(candidates, settings) or result_schema.pick(candidates, settings, include_partial=True)


def _model_id(text: str, runs: dict, catalog: Catalog | None) -> str:
    """``text`` as stored, or its canonical id after alias resolution (openclip:ViT-B-32 -> ...@openai)."""
    if text in runs or catalog is None:
        return text
    try:
        return catalog.resolve_model(text).id
    except VLBenchError:
        return text


def select(results_a: Path, results_b: Path | None, models: Sequence[str] | None, catalog: Catalog | None = None,
           warn: Callable[[str], None] | None = None, settings: dict[str, str] | None = None) -> tuple[dict[str, Picked], dict[str, Picked]]:
    """Per task, the run of A and the run of B that a leaderboard with these ``settings`` would show
    (runs with the default settings when none are given)."""
    if models:
        if len(models) != 2 or results_b is not None:
            raise VLBenchError("--models takes two model ids (--models A --models B) and one results folder")
        runs = _runs_by_model(results_a, warn)
        models = [_model_id(m, runs, catalog) for m in models]
        for model in models:
            if model not in runs:
                raise VLBenchError(f"no results of model '{model}' under {results_a} (it holds: {', '.join(sorted(runs))})")
        tasks_a, tasks_b = runs[models[0]], runs[models[1]]
    else:
        if results_b is None:
            raise VLBenchError("give two results folders (RESULTS_A RESULTS_B), or one folder and --models A --models B")
        tasks_a, tasks_b = _one_model(results_a, warn), _one_model(results_b, warn)
    picked_a = {t: p for t, c in tasks_a.items() if (p := _pick(c, settings)) is not None}
    picked_b = {t: p for t, c in tasks_b.items() if (p := _pick(c, settings)) is not None}
    return picked_a, picked_b


def compare_runs(results_a: Path, results_b: Path | None, models: Sequence[str] | None, catalog: Catalog,
                 replicates: int = bootstrap.DEFAULT_REPLICATES, seed: int = bootstrap.DEFAULT_SEED,
                 warn: Callable[[str], None] | None = None, settings: dict[str, str] | None = None) -> list[CompareRow]:
    """A row per task both have (main metric), then per suite whose tasks they both have."""
    picked_a, picked_b = select(results_a, results_b, models, catalog, warn, settings)
    common = sorted(set(picked_a) & set(picked_b))
    if not common:
        hint = "" if settings else " with the default settings (--settings KEY=VALUE compares runs made with --set, --precision, ...)"
        raise VLBenchError(f"the two runs have no task in common{hint}")
    rows: list[CompareRow] = []
    diffs: dict[str, np.ndarray] = {}
    values_a: dict[str, float] = {}
    values_b: dict[str, float] = {}
    ns: dict[str, int | None] = {}
    for task in common:
        (path_a, a), (path_b, b) = picked_a[task], picked_b[task]
        if a.task.kind != b.task.kind or a.main_metric != b.main_metric:
            raise VLBenchError(f"task '{task}': the runs differ in kind or main metric ({a.task.kind}/{a.main_metric} vs {b.task.kind}/{b.main_metric})")
        paired = intervals.paired(a.task.kind, records(path_a, a), records(path_b, b), spec_from_result(a), a.main_metric, replicates, seed)
        rows.append(CompareRow(task, a.main_metric, paired.a, paired.b, paired.diff, paired.ci, paired.p_value, paired.test, paired.n))
        diffs[task], values_a[task], values_b[task], ns[task] = paired.replicates, paired.a, paired.b, a.n
    for suite in catalog.suites:
        tasks = catalog.suite_tasks(suite)
        if len(tasks) < 2 or not set(tasks) <= set(common):
            continue
        replicated = aggregate(catalog, suite, diffs, ns)
        a_value, b_value = aggregate(catalog, suite, values_a, ns), aggregate(catalog, suite, values_b, ns)
        if replicated is None or a_value is None or b_value is None:
            continue
        rows.append(CompareRow(suite, "suite", float(a_value), float(b_value), float(b_value - a_value), bootstrap.interval(replicated),
                               bootstrap.bootstrap_p_value(replicated), "bootstrap", None))
    return rows
