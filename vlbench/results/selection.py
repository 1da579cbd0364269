"""Which result fills each leaderboard cell, and suite aggregates with their confidence intervals.

``collect`` picks one result per (model, task) through ``result_schema.pick``; ``suite_value`` and
``suite_ci`` combine the picked tasks' main metrics and bootstrap replicates. ``vlbench.results.tables`` lays
the cells out as a table and writes its export formats."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from vlbench import bootstrap

from vlbench.results import schema as result_schema
from vlbench.spec.catalog import Catalog


@dataclass(frozen=True)
class Entry:
    value: float
    n: int | None
    replicates: tuple[float | None, ...] | None = None  # the main metric's bootstrap replicates
    ci: tuple[float | None, float | None] | None = None  # the main metric's [low, high]
    settings: tuple[tuple[str, str], ...] = ()  # non-default settings of the run shown
    level: float = bootstrap.LEVEL  # the confidence level the replicates were drawn for
    path: Path | None = field(default=None, compare=False)  # the result file behind the cell
    result: result_schema.Result | None = field(default=None, compare=False, repr=False)

    @property
    def settings_text(self) -> str:
        """The run's non-default settings as ``key=value key=value`` ('' for the default run)."""
        return " ".join(f"{k}={v}" for k, v in self.settings)


def entry_of(result: result_schema.Result, path: Path | None = None) -> Entry:
    """A result's main metric as a table entry (what ``suite_value`` / ``suite_ci`` take, per task)."""
    ci = result.ci.get(result.main_metric)
    replicates = tuple(result.bootstrap.main_replicates) if result.bootstrap else None
    level = result.bootstrap.level if result.bootstrap else bootstrap.LEVEL
    return Entry(result.main_value, result.n, replicates, tuple(ci) if ci else None, tuple(sorted(result.settings.items())),
                 level, path, result)


def outcome_entries(outcomes: Iterable[Any]) -> dict[str, Entry]:
    """{task: Entry} of a run's task outcomes (``runner.TaskOutcome``) that have their main metric:
    what the run summary's suite rows combine."""
    entries = {}
    for outcome in outcomes:
        if outcome.main_metric in outcome.metrics:
            value = outcome.metrics[outcome.main_metric]
            replicates = tuple(outcome.replicates) if outcome.replicates else None
            entries[outcome.task] = Entry(float("nan") if value is None else value, outcome.n, replicates)
    return entries


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
        table.setdefault(model, {})[task] = entry_of(chosen[1], chosen[0])
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
    tasks = set(catalog.suite_tasks(suite))
    arrays = {t: bootstrap.as_array(e.replicates) for t, e in entries.items() if e.replicates and t in tasks}
    if len({len(a) for a in arrays.values()}) > 1:
        return None  # tasks resampled with different replicate counts cannot be combined
    return aggregate(catalog, suite, arrays, {t: e.n for t, e in entries.items()})


def suite_ci(catalog: Catalog, suite: str, entries: dict[str, Entry], level: float | None = None) -> tuple[float | None, float | None] | None:
    """A suite's bootstrap confidence interval, or None when a member task has no replicates; at
    ``level``, by default the level its tasks' replicates were drawn for (95% when they differ)."""
    replicates = suite_replicates(catalog, suite, entries)
    if level is None:
        levels = {entries[t].level for t in catalog.suite_tasks(suite) if t in entries}
        level = levels.pop() if len(levels) == 1 else bootstrap.LEVEL
    return None if replicates is None else tuple(bootstrap.interval(replicates, level))  # type: ignore[return-value]
