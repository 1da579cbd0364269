"""Result files -> one wide table: a row per model, a column per task main metric and per suite."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlbench.catalog import Catalog
from vlbench.results import iter_results

FORMATS = ("csv", "md")


@dataclass(frozen=True)
class Entry:
    value: float
    n: int | None


def collect(results_dir: Path, include_partial: bool = False) -> tuple[dict[str, dict[str, Entry]], int]:
    """{model id: {task: main-metric entry}} and how many partial (--limit) results were left out."""
    table: dict[str, dict[str, Entry]] = {}
    partial = 0
    for _path, result in iter_results(results_dir):
        if result["task"].get("run_settings", {}).get("limit") is not None and not include_partial:
            partial += 1
            continue
        value = result["metrics"].get(result["main_metric"])
        if value is None:
            continue
        table.setdefault(result["model"]["id"], {})[result["task"]["name"]] = Entry(float(value), result["task"]["dataset"].get("n"))
    return table, partial


def suite_value(catalog: Catalog, suite: str, entries: dict[str, Entry]) -> float:
    """Mean (or item-weighted micro mean) over the suite's tasks; NaN unless all are present."""
    tasks = catalog.suite_tasks(suite)
    if not tasks or any(t not in entries for t in tasks):
        return math.nan
    values = [entries[t] for t in tasks]
    if catalog.suites[suite].aggregate == "micro":
        if any(e.n is None for e in values):
            return math.nan
        return sum(e.value * e.n for e in values) / sum(e.n for e in values)  # type: ignore[operator]
    return sum(e.value for e in values) / len(values)


def build(results_dir: Path, catalog: Catalog, include_partial: bool = False) -> tuple[pd.DataFrame, int]:
    entries, partial = collect(results_dir, include_partial)
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
    return frame, partial


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub table, metrics in percent with one decimal; empty cells where a result is missing."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(frame.columns) - 1)) + "|"
    lines = [header, rule]
    for _, row in frame.iterrows():
        cells = [str(row["model"])] + ["" if pd.isna(v) else f"{100 * v:.1f}" for v in row.iloc[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render(frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(frame)
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
