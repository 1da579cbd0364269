"""The leaderboard as data (values, intervals, item counts, settings per cell) and its export formats:
wide CSV, long CSV, Markdown, JSON and a standalone HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlbench.catalog import Catalog
from vlbench.errors import VLBenchError
from vlbench.intervals import combine_replicates, percentile_interval
from vlbench.leaderboard import Entry, collect, columns_for, frame_from, suite_value

LONG_COLUMNS = ("model", "task", "metric", "value", "ci_low", "ci_high", "n", "settings")
EXTENSIONS = {".csv": "csv", ".md": "md", ".json": "json", ".html": "html", ".htm": "html", ".tsv": "tsv"}


@dataclass(frozen=True)
class Cell:
    """One model's value in one column (a task's main metric or a suite aggregate)."""

    value: float | None
    ci: tuple[float, float] | None = None
    n: int | None = None
    settings: str = ""


@dataclass
class Board:
    columns: list[str]
    suites: set[str]
    models: list[str]
    cells: dict[str, dict[str, Cell]]  # model -> column -> cell
    entries: dict[str, dict[str, Entry]]  # model -> task -> entry (the result files behind the cells)
    settings: dict[str, str] = field(default_factory=dict)  # model -> its non-default settings, "; "-joined
    partial: int = 0
    frame: Any = None  # the wide pandas table, as ``leaderboard.build`` gives it


def load_board(results_dir: Path, catalog: Catalog, include_partial: bool = False) -> Board:
    entries, settings, partial = collect(results_dir, include_partial)
    columns = columns_for(entries, catalog)
    models = sorted(entries)
    cells = {
        model: {column: _cell(catalog, column, entries[model]) for column in columns} for model in models
    }
    return Board(
        columns=columns,
        suites={c for c in columns if c in catalog.suites},
        models=models,
        cells=cells,
        entries=entries,
        settings={m: "; ".join(sorted(settings.get(m, ()))) for m in models},
        partial=partial,
        frame=frame_from(entries, settings, catalog),
    )


def _cell(catalog: Catalog, column: str, entries: dict[str, Entry]) -> Cell:
    if column in catalog.suites:
        value = suite_value(catalog, column, entries)
        if math.isnan(value):
            return Cell(None)
        replicates = suite_replicates(catalog, column, entries)
        ci = percentile_interval(replicates, _level(catalog, column, entries)) if replicates is not None else None
        items = [entries[t].n for t in catalog.suite_tasks(column)]
        n = sum(items) if all(i is not None for i in items) else None  # type: ignore[misc]
        return Cell(value, ci, n)
    entry = entries.get(column)
    if entry is None:
        return Cell(None)
    return Cell(entry.value, entry.ci, entry.n, entry_settings(entry))


def suite_replicates(catalog: Catalog, suite: str, entries: dict[str, Entry]) -> np.ndarray | None:
    """A suite's bootstrap replicates, combined from its members' the way ``suite_value`` combines
    their values: element-wise mean (``mean``; a member suite counts once) or n-weighted (``micro``)."""
    tasks = catalog.suite_tasks(suite)
    if not tasks or any(t not in entries for t in tasks):
        return None
    if catalog.suites[suite].aggregate == "micro":
        weights = [entries[t].n for t in tasks]
        if any(w is None for w in weights):
            return None
        return combine_replicates([entries[t].replicates for t in tasks], weights)  # type: ignore[arg-type]
    members: list[np.ndarray | None] = []
    for member in catalog.suites[suite].members:
        if member in catalog.suites and member != suite:
            members.append(suite_replicates(catalog, member, entries))
        else:
            members += [entries[t].replicates for t in catalog.expand_member(member)]
    return combine_replicates(members)


def _level(catalog: Catalog, suite: str, entries: dict[str, Entry]) -> float:
    levels = {entries[t].level for t in catalog.suite_tasks(suite)}
    return levels.pop() if len(levels) == 1 else 0.95


def entry_settings(entry: Entry) -> str:
    """A result's non-default settings, as the leaderboard's settings column writes them."""
    task = entry.result.get("task", {}) if entry.result else {}
    notes = {f"{k}={v}" for k, v in (task.get("run_settings") or {}).items() if v is not None}
    notes.update(f"{task.get('name')}:{k}" for k in (task.get("overrides") or {}))
    return "; ".join(sorted(notes))


def _number(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def long_rows(board: Board) -> list[dict[str, Any]]:
    """One row per (model, task, metric) - every metric of every result, breakdowns included - and
    one per (model, suite) with metric ``suite``."""
    rows: list[dict[str, Any]] = []
    for model in board.models:
        for task in sorted(board.entries[model]):
            entry = board.entries[model][task]
            metrics = entry.result.get("metrics", {}) if entry.result else {entry.result.get("main_metric", "value"): entry.value}
            intervals = _intervals(entry)
            main = entry.result.get("main_metric")
            ordered = [main] + sorted(k for k in metrics if k != main) if main in metrics else sorted(metrics)
            for metric in ordered:
                value = metrics.get(metric)
                ci = intervals.get(metric)
                rows.append(_long_row(model, task, metric, value if isinstance(value, (int, float)) else None, ci, entry.n, entry_settings(entry)))
        for suite in sorted(board.suites):
            cell = board.cells[model][suite]
            if cell.value is not None:
                rows.append(_long_row(model, suite, "suite", cell.value, cell.ci, cell.n, ""))
    return rows


def _intervals(entry: Entry) -> dict[str, tuple[float, float]]:
    from vlbench.intervals import result_intervals

    found = result_intervals(entry.result) if entry.result else {}
    if entry.ci is not None:
        found.setdefault(entry.result.get("main_metric", ""), entry.ci)
    return found


def _long_row(model: str, task: str, metric: str, value: float | None, ci: tuple[float, float] | None, n: int | None, settings: str) -> dict[str, Any]:
    return {
        "model": model,
        "task": task,
        "metric": metric,
        "value": _number(value),
        "ci_low": _number(ci[0]) if ci else None,
        "ci_high": _number(ci[1]) if ci else None,
        "n": n,
        "settings": settings,
    }


def to_long_csv(board: Board) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LONG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in long_rows(board):
        writer.writerow({k: ("" if v is None else (f"{v:.6f}" if isinstance(v, float) else v)) for k, v in row.items()})
    return buffer.getvalue()


def to_wide_csv(board: Board, sep: str = ",") -> str:
    return board.frame.to_csv(index=False, float_format="%.6f", lineterminator="\n", sep=sep)


def to_json(board: Board) -> str:
    payload = {
        "columns": board.columns,
        "suites": sorted(board.suites),
        "rows": [
            {
                "model": model,
                "settings": board.settings.get(model, ""),
                "cells": {
                    column: {
                        "value": _number(cell.value),
                        "ci": [_number(cell.ci[0]), _number(cell.ci[1])] if cell.ci else None,
                        "n": cell.n,
                    }
                    for column, cell in board.cells[model].items()
                },
            }
            for model in board.models
        ],
        "partial_left_out": board.partial,
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def percent(value: float | None, digits: int = 1) -> str:
    return "" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}"


def interval_text(ci: tuple[float, float] | None, digits: int = 1) -> str:
    return f"[{percent(ci[0], digits)}, {percent(ci[1], digits)}]" if ci else ""


def to_markdown(board: Board) -> str:
    """A GitHub table in percent with one decimal; the 95% interval after the value where known."""
    has_settings = any(board.settings.values())
    header = ["model", *board.columns] + (["settings"] if has_settings else [])
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "|".join(["---"] + ["---:"] * len(board.columns) + (["---"] if has_settings else [])) + "|"]
    for model in board.models:
        cells = [_md(model)]
        for column in board.columns:
            cell = board.cells[model][column]
            cells.append(" ".join(filter(None, (percent(cell.value), interval_text(cell.ci)))))
        if has_settings:
            cells.append(_md(board.settings.get(model, "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """A Markdown table cell that shows ``text`` as written (no HTML, no column break)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def leaderboard_table_html(board: Board, link: Any = None) -> str:
    """The leaderboard as an HTML table (sortable by the report's script); every name is escaped.
    ``link(column)`` may give a relative URL for a column's page."""
    e = html.escape
    has_settings = any(board.settings.values())
    head = ['<th data-sort="text">model</th>']
    for column in board.columns:
        label = e(column)
        url = link(column) if link else None
        if url:
            label = f'<a href="{e(url)}">{label}</a>'
        css = ' class="suite"' if column in board.suites else ""
        head.append(f'<th data-sort="number"{css}>{label}</th>')
    if has_settings:
        head.append('<th data-sort="text">settings</th>')
    body = []
    for model in board.models:
        row = [f'<td class="model">{e(model)}</td>']
        for column in board.columns:
            cell = board.cells[model][column]
            css = ["suite"] if column in board.suites else []
            if cell.settings:
                css.append("non-default")
            value = "" if cell.value is None else f"{cell.value:.6f}"
            title = f' title="{e(cell.settings)}"' if cell.settings else ""
            ci = f' <span class="ci">{e(interval_text(cell.ci))}</span>' if cell.ci else ""
            row.append(f'<td data-value="{value}" class="{" ".join(css)}"{title}>{percent(cell.value)}{ci}</td>')
        if has_settings:
            row.append(f"<td>{e(board.settings.get(model, ''))}</td>")
        body.append("<tr>" + "".join(row) + "</tr>")
    return (
        '<table class="leaderboard sortable"><thead><tr>' + "".join(head) + "</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    )


def to_html(board: Board) -> str:
    """A single self-contained page with the sortable leaderboard (no plots; ``vlbench report`` makes the site)."""
    from vlbench.report.assets import STYLE, TABLE_SCRIPT

    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vlbench leaderboard</title>"
        f"<style>{STYLE}</style></head><body><h1>vlbench leaderboard</h1>"
        "<p>Main metric of each task and suite aggregates, in percent; 95% bootstrap interval in brackets where the result has one. Click a header to sort.</p>"
        f"{leaderboard_table_html(board)}<script>{TABLE_SCRIPT}</script></body></html>\n"
    )


RENDERERS = {
    "csv": to_wide_csv,
    "tsv": lambda board: to_wide_csv(board, sep="\t"),
    "md": to_markdown,
    "json": to_json,
    "html": to_html,
    "long": to_long_csv,
}


def render_board(board: Board, fmt: str) -> str:
    return RENDERERS[fmt](board)


def format_for(out: Path, explicit: str | None) -> str:
    """The output format: ``--format`` when given, else the file's extension."""
    from_extension = EXTENSIONS.get(out.suffix.lower())
    if explicit is not None:
        if from_extension is not None and from_extension != explicit and explicit != "long":
            raise VLBenchError(f"--out {out} has extension {out.suffix} but --format is {explicit}; drop --format or change the extension")
        return explicit
    if from_extension is None:
        raise VLBenchError(f"--out {out}: unknown extension '{out.suffix}'; use one of {', '.join(sorted(EXTENSIONS))} or pass --format")
    return from_extension


def long_path(out: Path) -> Path:
    """Where ``--out x.csv`` puts the long-format table: ``x.long.csv``."""
    return out.with_name(f"{out.stem}.long.csv")
