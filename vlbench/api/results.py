"""What ``vlbench.evaluate`` returns, and results folders read as data.

``EvaluationResults`` holds one ``TaskResult`` per (model, task) of a call: its outcome (done, skipped
because an up-to-date result existed, missing data, unsupported by the model), the typed result
(``vlbench.results.schema.Result``) and its per-sample records. ``to_pandas`` is the long format the
leaderboard's ``--long`` CSV has (model, task, metric, value, ci_low, ci_high, n, settings).
``load_results(folder)`` gives every result file under a folder in that format, with the fields a
leaderboard picks by (``vlbench.results.schema.pick``: settings, partial runs, creation time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vlbench.errors import VLBenchError
from vlbench.results import schema as result_schema
from vlbench.results.io import read_samples

COLUMNS = ("model", "task", "metric", "value", "ci_low", "ci_high", "n", "settings")


def settings_text(result: result_schema.Result) -> str:
    """A result's non-default settings as ``key=value key=value`` ('' for a default run), as tables show them."""
    return " ".join(f"{k}={v}" for k, v in sorted(result.settings.items()))


def metric_rows(result: result_schema.Result) -> Iterator[dict[str, Any]]:
    """One long-format row per metric of a result, its main metric first."""
    names = [result.main_metric, *sorted(k for k in result.metrics if k != result.main_metric)] if result.main_metric in result.metrics \
        else sorted(result.metrics)
    for name in names:
        ci = result.ci.get(name) or [None, None]
        yield {"model": result.model.id, "task": result.task.name, "metric": name, "value": result.metrics.get(name),
               "ci_low": ci[0], "ci_high": ci[1], "n": result.n, "settings": settings_text(result)}


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns))


@dataclass
class TaskResult:
    model: str  # the model's id (an in-memory model's names its weights' hash)
    task: str
    status: str  # "done", "skipped" (an up-to-date result existed), "missing" (no data), "unsupported"
    result: result_schema.Result | None = None  # None unless done or skipped
    path: Path | None = None  # the result file; None when evaluate() ran without an output folder
    note: str = ""
    _samples: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def metrics(self) -> dict[str, float | None]:
        return dict(self.result.metrics) if self.result else {}

    @property
    def samples(self) -> list[dict[str, Any]]:
        """The per-sample records (what ``vlbench rescore`` and ``compare`` read), in item order."""
        if self._samples is None:
            if self.result is None or self.path is None:
                return []
            self._samples = list(read_samples(self.result.samples_file(self.path)))
        return self._samples


@dataclass
class EvaluationResults:
    tasks: list[TaskResult]
    output: Path | None  # the results folder written; None: nothing was kept on disk

    def __iter__(self) -> Iterator[TaskResult]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, task: str) -> TaskResult:
        found = [t for t in self.tasks if t.task == task]
        if len(found) != 1:
            models = sorted({t.model for t in found})
            raise KeyError(f"{task}: {'no result' if not found else 'one per model ' + ', '.join(models)}; iterate the results instead")
        return found[0]

    def metrics(self) -> dict[str, float | None]:
        """``{"task/metric": value}`` of every task that has a result (one model; prefixed by the model id
        when the call evaluated several)."""
        several = len({t.model for t in self.tasks}) > 1
        return {f"{t.model}/{t.task}/{m}" if several else f"{t.task}/{m}": v for t in self.tasks for m, v in t.metrics.items()}

    def to_pandas(self) -> Any:
        """Long format: one row per (model, task, metric) with its CI, n and the run's non-default settings."""
        return _frame([row for t in self.tasks if t.result for row in metric_rows(t.result)], COLUMNS)


def load_results(path: str | Path, include_partial: bool = True) -> Any:
    """Every valid result file under ``path`` as a long DataFrame: the columns of ``to_pandas`` plus
    ``main`` (the task's main metric), ``partial`` (a --limit run), ``kind``, ``config_hash``, ``created``
    and ``file``. A leaderboard shows, per (model, task), the newest full run with the settings asked for;
    filter on ``settings`` and ``partial`` to do the same."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise VLBenchError(f"no results folder at {folder}")
    rows = []
    for file, result in result_schema.scan(folder):
        if result.is_partial and not include_partial:
            continue
        extra = {"main": None, "partial": result.is_partial, "kind": result.task.kind, "config_hash": result.task.config_hash,
                 "created": result.created, "file": str(file)}
        rows += [{**row, **extra, "main": row["metric"] == result.main_metric} for row in metric_rows(result)]
    return _frame(rows, (*COLUMNS, "main", "partial", "kind", "config_hash", "created", "file"))
