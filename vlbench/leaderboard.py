"""Result files -> one wide table: a row per model, a column per task main metric and per suite."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from vlbench.catalog import Catalog
from vlbench.results import iter_results

FORMATS = ("csv", "md")


@dataclass(frozen=True)
class Entry:
    value: float
    n: int | None
    ci: tuple[float, float] | None = None  # of the main metric, when the result carries one
    replicates: np.ndarray | None = field(default=None, compare=False)  # main-metric bootstrap replicates
    level: float = 0.95
    path: Path | None = field(default=None, compare=False)
    result: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, path: Path, result: Mapping[str, Any], value: float) -> "Entry":
        """The main metric of one result file, with its interval and replicates when present."""
        from vlbench.intervals import result_intervals, result_replicates

        replicates, level = result_replicates(result)
        ci = result_intervals(result).get(result["main_metric"])
        return cls(value, result["task"]["dataset"].get("n"), ci, replicates, level, path, result)


def collect(results_dir: Path, include_partial: bool = False) -> tuple[dict[str, dict[str, Entry]], dict[str, set[str]], int]:
    """{model id: {task: main-metric entry}}, each model's non-default settings, and how many
    partial (--limit) results were left out."""
    table: dict[str, dict[str, Entry]] = {}
    settings: dict[str, set[str]] = {}
    partial = 0
    for path, result in iter_results(results_dir):
        task = result["task"]
        if task.get("run_settings", {}).get("limit") is not None and not include_partial:
            partial += 1
            continue
        value = result["metrics"].get(result["main_metric"])
        if value is None:
            continue
        model = result["model"]["id"]
        table.setdefault(model, {})[task["name"]] = Entry.of(path, result, float(value))
        notes = settings.setdefault(model, set())
        notes.update(f"{k}={v}" for k, v in task.get("run_settings", {}).items() if k != "limit" and v is not None)
        notes.update(f"{task['name']}:{k}" for k in task.get("overrides", {}))
    return table, settings, partial


def suite_value(catalog: Catalog, suite: str, entries: dict[str, Entry]) -> float:
    """A suite's value; NaN unless every task in it has a result.

    ``mean``: the mean over the suite's members, where a member suite counts once with its own value
    (``compositionality`` = mean of aro, sugarcrepe, ...); ``micro``: items pooled over all its tasks.
    """
    tasks = catalog.suite_tasks(suite)
    if not tasks or any(t not in entries for t in tasks):
        return math.nan
    if catalog.suites[suite].aggregate == "micro":
        values = [entries[t] for t in tasks]
        if any(e.n is None for e in values):
            return math.nan
        return sum(e.value * e.n for e in values) / sum(e.n for e in values)  # type: ignore[operator]
    members: list[float] = []
    for member in catalog.suites[suite].members:
        if member in catalog.suites and member != suite:
            members.append(suite_value(catalog, member, entries))
        else:
            members += [entries[t].value for t in catalog.expand_member(member)]
    return sum(members) / len(members)


def build(results_dir: Path, catalog: Catalog, include_partial: bool = False) -> tuple[pd.DataFrame, int]:
    entries, settings, partial = collect(results_dir, include_partial)
    return frame_from(entries, settings, catalog), partial


def columns_for(entries: dict[str, dict[str, Entry]], catalog: Catalog) -> list[str]:
    """Every declared leaderboard column, in its declared order (empty where nothing has a result),
    then the other tasks with results, sorted."""
    tasks_present = sorted({t for row in entries.values() for t in row})
    columns = list(dict.fromkeys(catalog.leaderboard_columns))
    return columns + [t for t in tasks_present if t not in columns]


def frame_from(entries: dict[str, dict[str, Entry]], settings: dict[str, set[str]], catalog: Catalog) -> pd.DataFrame:
    """The wide table: a row per model (sorted), the columns of ``columns_for``."""
    columns = columns_for(entries, catalog)
    rows: list[dict[str, Any]] = []
    for model in sorted(entries):
        row: dict[str, Any] = {"model": model}
        for column in columns:
            if column in catalog.suites:
                row[column] = suite_value(catalog, column, entries[model])
            else:
                entry = entries[model].get(column)
                row[column] = entry.value if entry else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["model", *columns])
    if any(settings.get(model) for model in entries):  # results run with non-default settings say so
        frame["settings"] = ["; ".join(sorted(settings.get(model, ()))) for model in frame["model"]]
    return frame


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub table, metrics in percent with one decimal; empty cells where a result is missing."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(frame.columns) - 1)) + "|"
    lines = [header, rule]
    for _, row in frame.iterrows():
        cells = [str(row["model"])] + [_cell(v) for v in row.iloc[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if pd.isna(value) else f"{100 * value:.1f}"


def render(frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(frame)
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
