"""Result files -> one wide table: a row per model, a column per task main metric and per suite."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from vlbench import bootstrap, result_schema
from vlbench.catalog import Catalog

if TYPE_CHECKING:  # pandas costs ~0.3 s to import; `vlbench run` only needs suite_value
    import pandas as pd

FORMATS = ("csv", "md")


@dataclass(frozen=True)
class Entry:
    value: float
    n: int | None
    replicates: tuple[float | None, ...] | None = None  # the main metric's bootstrap replicates
    ci: tuple[float | None, float | None] | None = None  # the main metric's [low, high]
    settings: tuple[tuple[str, str], ...] = ()  # non-default settings of the run shown


def entry_of(result: result_schema.Result) -> Entry:
    """A result's main metric as a table entry (what ``suite_value`` / ``suite_ci`` take, per task)."""
    ci = result.ci.get(result.main_metric)
    replicates = tuple(result.bootstrap.main_replicates) if result.bootstrap else None
    return Entry(result.main_value, result.n, replicates, tuple(ci) if ci else None, tuple(sorted(result.settings.items())))


@dataclass
class Board:
    frame: pd.DataFrame  # a row per model: model, one column per suite / task, maybe settings
    ci: dict[str, dict[str, tuple[float | None, float | None]]]  # model -> column -> 95% CI
    partial: int  # (model, task) cells left empty because only --limit runs exist
    other: int = 0  # (model, task) cells left empty because only runs with other settings exist


def collect(results_dir: Path, include_partial: bool = False, settings: dict[str, str] | None = None,
            warn: Callable[[str], None] | None = None) -> tuple[dict[str, dict[str, Entry]], int, int]:
    """{model id: {task: main-metric entry}} of the runs picked (``result_schema.pick``), and how
    many (model, task) cells were left out for having only partial (--limit) runs, or only runs with
    other settings."""
    groups: dict[tuple[str, str], list] = {}
    for path, result in result_schema.scan(results_dir, warn):
        groups.setdefault((result.model.id, result.task.name), []).append((path, result))
    table: dict[str, dict[str, Entry]] = {}
    partial = other = 0
    for (model, task), candidates in sorted(groups.items()):
        chosen = result_schema.pick(candidates, settings, include_partial)
        if chosen is None:
            if result_schema.pick(candidates, settings, True) is not None:
                partial += 1
            else:
                other += 1
            continue
        table.setdefault(model, {})[task] = entry_of(chosen[1])
    return table, partial, other


def aggregate(catalog: Catalog, suite: str, values: Mapping[str, Any], ns: Mapping[str, int | None]) -> Any:
    """A suite's aggregate of per-task values (floats, or arrays of replicates); None unless every task has one.

    ``mean``: the mean over the suite's members, where a member suite counts once with its own value
    (``compositionality`` = mean of aro, sugarcrepe, ...); ``micro``: items pooled over all its tasks.
    """
    tasks = catalog.suite_tasks(suite)
    if not tasks or any(t not in values for t in tasks):
        return None
    if catalog.suites[suite].aggregate == "micro":
        if any(ns.get(t) is None for t in tasks):
            return None
        return sum(values[t] * ns[t] for t in tasks) / sum(ns[t] for t in tasks)  # type: ignore[operator]
    members: list[Any] = []
    for member in catalog.suites[suite].members:
        if member in catalog.suites and member != suite:
            value = aggregate(catalog, member, values, ns)
            if value is None:
                return None
            members.append(value)
        else:
            members += [values[t] for t in catalog.expand_member(member)]
    return sum(members) / len(members)


def suite_value(catalog: Catalog, suite: str, entries: dict[str, Entry]) -> float:
    """A suite's value; NaN unless every task in it has a result."""
    value = aggregate(catalog, suite, {t: e.value for t, e in entries.items()}, {t: e.n for t, e in entries.items()})
    return math.nan if value is None else float(value)


def suite_replicates(catalog: Catalog, suite: str, entries: dict[str, Entry]) -> np.ndarray | None:
    """The suite's aggregate on each bootstrap replicate, combining its tasks' replicates as ``aggregate`` does."""
    arrays = {t: bootstrap.as_array(e.replicates) for t, e in entries.items() if e.replicates}
    if len({len(a) for a in arrays.values()}) > 1:
        return None  # tasks resampled with different replicate counts cannot be combined
    return aggregate(catalog, suite, arrays, {t: e.n for t, e in entries.items()})


def suite_ci(catalog: Catalog, suite: str, entries: dict[str, Entry], level: float = bootstrap.LEVEL) -> tuple[float | None, float | None] | None:
    """A suite's bootstrap confidence interval, or None when a member task has no replicates."""
    replicates = suite_replicates(catalog, suite, entries)
    return None if replicates is None else tuple(bootstrap.interval(replicates, level))  # type: ignore[return-value]


def build_board(results_dir: Path, catalog: Catalog, include_partial: bool = False, settings: dict[str, str] | None = None,
                warn: Callable[[str], None] | None = None) -> Board:
    """The leaderboard with each cell's confidence interval."""
    entries, partial, other = collect(results_dir, include_partial, settings, warn)
    tasks_present = sorted({t for row in entries.values() for t in row})
    columns: list[str] = []
    for column in catalog.leaderboard_columns:
        if column in catalog.suites or column in tasks_present:
            columns.append(column)
    columns += [t for t in tasks_present if t not in columns]
    rows: list[dict[str, Any]] = []
    cis: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    for model in sorted(entries):
        row: dict[str, Any] = {"model": model}
        model_ci = cis.setdefault(model, {})
        for column in columns:
            if column in catalog.suites:
                row[column] = suite_value(catalog, column, entries[model])
                ci = suite_ci(catalog, column, entries[model])
            else:
                entry = entries[model].get(column)
                row[column] = entry.value if entry else math.nan
                ci = entry.ci if entry else None
            if ci is not None and not math.isnan(row[column]):
                model_ci[column] = ci
        rows.append(row)
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["model", *columns])
    frame = frame.dropna(axis=1, how="all") if len(frame) else frame
    notes = {model: [f"{task}: " + " ".join(f"{k}={v}" for k, v in e.settings) for task, e in sorted(row.items()) if e.settings]
             for model, row in entries.items()}
    if any(notes.values()):  # every cell from a run with non-default settings is named here
        frame["settings"] = ["; ".join(notes.get(model, ())) for model in frame["model"]]
    return Board(frame, cis, partial, other)


def build(results_dir: Path, catalog: Catalog, include_partial: bool = False, settings: dict[str, str] | None = None,
          warn: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, int]:
    """The leaderboard table and the number of cells left out for having only partial runs."""
    board = build_board(results_dir, catalog, include_partial, settings, warn)
    return board.frame, board.partial


def to_markdown(frame: pd.DataFrame, ci: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A GitHub table, metrics in percent with one decimal and, where known, the 95% CI
    ("95.8 [94.1, 97.3]"); empty cells where a result is missing."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(frame.columns) - 1)) + "|"
    lines = [header, rule]
    for _, row in frame.iterrows():
        intervals = (ci or {}).get(row["model"], {})
        cells = [str(row["model"])] + [_cell(v, intervals.get(c)) for c, v in row.iloc[1:].items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_with_ci(value: Any, interval: Any = None, digits: int = 1) -> str:
    """A metric in percent, followed by its CI when there is one: "95.8 [94.1, 97.3]"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{100 * value:.{digits}f}"
    if interval and all(v is not None for v in interval):
        text += f" [{100 * interval[0]:.{digits}f}, {100 * interval[1]:.{digits}f}]"
    return text


def _cell(value: Any, interval: Any = None) -> str:
    if isinstance(value, str):
        return value
    return format_with_ci(value, interval)


def render(frame: pd.DataFrame, fmt: str, ci: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    if fmt == "md":
        return to_markdown(frame, ci)
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
