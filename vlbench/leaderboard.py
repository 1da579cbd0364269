"""Result files -> one wide table: a row per model, a column per task main metric and per suite."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlbench.catalog import Catalog
from vlbench.results import iter_results

if TYPE_CHECKING:  # pandas costs ~0.3 s to import; `vlbench run` only needs suite_value
    import pandas as pd

FORMATS = ("csv", "md")


@dataclass(frozen=True)
class Entry:
    value: float
    n: int | None


def collect(results_dir: Path, include_partial: bool = False) -> tuple[dict[str, dict[str, Entry]], dict[str, set[str]], int]:
    """{model id: {task: main-metric entry}}, each model's non-default settings, and how many
    partial (--limit) results were left out."""
    table: dict[str, dict[str, Entry]] = {}
    settings: dict[str, set[str]] = {}
    partial = 0
    for _path, result in iter_results(results_dir):
        task = result["task"]
        if task.get("run_settings", {}).get("limit") is not None and not include_partial:
            partial += 1
            continue
        value = result["metrics"].get(result["main_metric"])
        if value is None:
            continue
        model = result["model"]["id"]
        table.setdefault(model, {})[task["name"]] = Entry(float(value), task["dataset"].get("n"))
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
    import pandas as pd

    entries, settings, partial = collect(results_dir, include_partial)
    tasks_present = sorted({t for row in entries.values() for t in row})
    columns: list[str] = []
    for column in catalog.leaderboard_columns:
        if column in catalog.suites or column in tasks_present:
            columns.append(column)
    columns += [t for t in tasks_present if t not in columns]
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
    frame = frame.dropna(axis=1, how="all") if len(frame) else frame
    if any(settings.get(model) for model in entries):  # results run with non-default settings say so
        frame["settings"] = ["; ".join(sorted(settings.get(model, ()))) for model in frame["model"]]
    return frame, partial


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
    return "" if value is None or value != value else f"{100 * value:.1f}"  # NaN: missing


def render(frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(frame)
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
