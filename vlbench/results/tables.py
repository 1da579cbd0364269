"""The leaderboard as data (value, interval, item count and settings per cell) and its export formats:
wide CSV/TSV, long CSV, Markdown, JSON and a standalone HTML page.

Which result fills a cell, and how suites combine their tasks, is ``vlbench.results.selection``'s job; this
module lays the picked entries out (declared columns first, always present) and writes them.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from vlbench.spec.catalog import Catalog
from vlbench.errors import VLBenchError
from vlbench.results import TABLE_FORMATS
from vlbench.results.selection import Entry, collect, suite_ci, suite_value

if TYPE_CHECKING:  # pandas costs ~0.3 s to import
    import pandas as pd

LONG_COLUMNS = ("model", "task", "metric", "value", "ci_low", "ci_high", "n", "settings")
EXTENSIONS = {".csv": "csv", ".md": "md", ".json": "json", ".html": "html", ".htm": "html", ".tsv": "tsv"}
NON_DEFAULT_MARK = "†"  # after a Markdown value from a run with other settings (the settings column says which)


@dataclass(frozen=True)
class Cell:
    """One model's value in one column (a task's main metric or a suite aggregate)."""

    value: float | None
    ci: tuple[float, float] | None = None
    n: int | None = None
    settings: str = ""  # the run's non-default settings, "key=value key=value" ('' for the default run)


@dataclass
class Board:
    columns: list[str]  # declared leaderboard columns in their order, then other tasks with results, sorted
    suites: set[str]
    models: list[str]  # sorted
    cells: dict[str, dict[str, Cell]]  # model -> column -> cell
    entries: dict[str, dict[str, Entry]]  # model -> task -> entry (the picked result behind each task cell)
    partial: int = 0  # (model, task) cells left empty because only --limit runs exist
    other: int = 0  # (model, task) cells left empty because only runs with other settings exist

    def model_settings(self, model: str) -> str:
        """Every task cell of ``model`` from a run with other settings: "task: k=v k=v; task2: ..."."""
        return "; ".join(f"{task}: {e.settings_text}" for task, e in sorted(self.entries[model].items()) if e.settings)

    @property
    def has_settings(self) -> bool:
        return any(self.model_settings(m) for m in self.models)

    @property
    def frame(self) -> "pd.DataFrame":
        """The wide table: a row per model, a column per board column (NaN where empty), and a
        ``settings`` column when any cell comes from a run with other settings."""
        import pandas as pd

        rows = [{"model": m, **{c: math.nan if self.cells[m][c].value is None else self.cells[m][c].value for c in self.columns}}
                for m in self.models]
        frame = pd.DataFrame(rows, columns=["model", *self.columns])
        if self.has_settings:
            frame["settings"] = [self.model_settings(m) for m in self.models]
        return frame


def load_board(results_dir: Path, catalog: Catalog, include_partial: bool = False, settings: dict[str, str] | None = None,
               warn: Callable[[str], None] | None = None, models: Iterable[str] | None = None) -> Board:
    """The leaderboard of the results under ``results_dir`` (only ``models`` when given), with the runs
    ``leaderboard.collect`` picks for ``settings`` / ``include_partial``."""
    entries, partial, other = collect(results_dir, include_partial, settings, warn)
    if models is not None:
        wanted = set(models)
        entries = {m: row for m, row in entries.items() if m in wanted}
    columns = columns_for(entries, catalog)
    cells = {model: {column: _cell(catalog, column, entries[model]) for column in columns} for model in sorted(entries)}
    return Board(columns, {c for c in columns if c in catalog.suites}, sorted(entries), cells, entries, partial, other)


def columns_for(entries: dict[str, dict[str, Entry]], catalog: Catalog) -> list[str]:
    """Every declared leaderboard column, in its declared order (empty where nothing has a result),
    then the other tasks with results, sorted."""
    columns = list(dict.fromkeys(catalog.leaderboard_columns))
    present = sorted({t for row in entries.values() for t in row})
    return columns + [t for t in present if t not in columns]


def _interval(ci: Any) -> tuple[float, float] | None:
    return (float(ci[0]), float(ci[1])) if ci and all(v is not None for v in ci) else None


def _cell(catalog: Catalog, column: str, entries: dict[str, Entry]) -> Cell:
    if column in catalog.suites:
        value = suite_value(catalog, column, entries)
        if math.isnan(value):
            return Cell(None)
        items = [entries[t].n for t in catalog.suite_tasks(column)]
        n = sum(items) if all(i is not None for i in items) else None  # type: ignore[misc]
        marked = " ".join(sorted({e.settings_text for t, e in entries.items() if t in catalog.suite_tasks(column) and e.settings}))
        return Cell(value, _interval(suite_ci(catalog, column, entries)), n, marked)
    entry = entries.get(column)
    if entry is None or math.isnan(entry.value):
        return Cell(None)
    return Cell(entry.value, _interval(entry.ci), entry.n, entry.settings_text)


def _number(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def long_rows(board: Board) -> list[dict[str, Any]]:
    """One row per (model, task, metric) - every metric of every result, breakdowns included - and
    one per (model, suite) with metric ``suite``."""
    rows: list[dict[str, Any]] = []
    for model in board.models:
        for task, entry in sorted(board.entries[model].items()):
            result = entry.result
            metrics = result.metrics if result else {}
            main = result.main_metric if result else ""
            for metric in [main] + sorted(k for k in metrics if k != main) if main in metrics else sorted(metrics):
                value = metrics.get(metric)
                ci = _interval(result.ci.get(metric)) if result else None
                rows.append(_long_row(model, task, metric, value, ci, entry.n, entry.settings_text))
        for suite in sorted(board.suites):
            cell = board.cells[model][suite]
            if cell.value is not None:
                rows.append(_long_row(model, suite, "suite", cell.value, cell.ci, cell.n, cell.settings))
    return rows


def _long_row(model: str, task: str, metric: str, value: Any, ci: tuple[float, float] | None, n: int | None, settings: str) -> dict[str, Any]:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return {"model": model, "task": task, "metric": metric, "value": _number(number), "ci_low": _number(ci[0]) if ci else None,
            "ci_high": _number(ci[1]) if ci else None, "n": n, "settings": settings}


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
                "settings": board.model_settings(model),
                "cells": {
                    column: {"value": _number(cell.value), "ci": [_number(cell.ci[0]), _number(cell.ci[1])] if cell.ci else None,
                             "n": cell.n, "settings": cell.settings}
                    for column, cell in board.cells[model].items()
                },
            }
            for model in board.models
        ],
        "partial_left_out": board.partial,
        "other_settings_left_out": board.other,
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def percent(value: float | None, digits: int = 1) -> str:
    return "" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}"


def interval_text(ci: tuple[float, float] | None, digits: int = 1) -> str:
    return f"[{percent(ci[0], digits)}, {percent(ci[1], digits)}]" if ci else ""


def to_markdown(board: Board) -> str:
    """A GitHub table in percent with one decimal, the 95% interval after the value where known, and
    ``†`` on a value from a run with other settings (named in the settings column)."""
    header = ["model", *board.columns] + (["settings"] if board.has_settings else [])
    lines = ["| " + " | ".join(_md(h) for h in header) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(board.columns) + (["---"] if board.has_settings else [])) + "|"]
    for model in board.models:
        cells = [_md(model)]
        for column in board.columns:
            cell = board.cells[model][column]
            mark = NON_DEFAULT_MARK if cell.settings and cell.value is not None else ""
            cells.append(" ".join(filter(None, (percent(cell.value) + mark, interval_text(cell.ci)))))
        if board.has_settings:
            cells.append(_md(board.model_settings(model)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """A Markdown table cell that shows ``text`` as written (no HTML, no column break)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def leaderboard_table_html(board: Board, link: Callable[[str], str | None] | None = None) -> str:
    """The leaderboard as an HTML table (sortable by the report's script); every name is escaped.
    ``link(column)`` may give a relative URL for a column's page. Unlike the machine formats, a page
    for people shows only the columns some model has a value in (declared order kept)."""
    e = html.escape
    columns = [c for c in board.columns if any(board.cells[m][c].value is not None for m in board.models)]
    head = ['<th data-sort="text">model</th>']
    for column in columns:
        label = e(column)
        url = link(column) if link else None
        if url:
            label = f'<a href="{e(url)}">{label}</a>'
        css = ' class="suite"' if column in board.suites else ""
        head.append(f'<th data-sort="number"{css}>{label}</th>')
    if board.has_settings:
        head.append('<th data-sort="text">settings</th>')
    body = []
    for model in board.models:
        row = [f'<td class="model">{e(model)}</td>']
        for column in columns:
            cell = board.cells[model][column]
            css = ["suite"] if column in board.suites else []
            if cell.settings:
                css.append("non-default")
            value = "" if cell.value is None else f"{cell.value:.6f}"
            title = f' title="{e(cell.settings)}"' if cell.settings else ""
            ci = f' <span class="ci">{e(interval_text(cell.ci))}</span>' if cell.ci else ""
            row.append(f'<td data-value="{value}" class="{" ".join(css)}"{title}>{percent(cell.value)}{ci}</td>')
        if board.has_settings:
            row.append(f"<td>{e(board.model_settings(model))}</td>")
        body.append("<tr>" + "".join(row) + "</tr>")
    return '<table class="leaderboard sortable"><thead><tr>' + "".join(head) + "</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"


def to_html(board: Board) -> str:
    """A single self-contained page with the sortable leaderboard (no plots; ``vlbench report`` makes the site)."""
    from vlbench.results.report.assets import STYLE, TABLE_SCRIPT

    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vlbench leaderboard</title>"
        f"<style>{STYLE}</style></head><body><h1>vlbench leaderboard</h1>"
        "<p>Main metric of each task and suite aggregates, in percent; 95% bootstrap interval in brackets where the result has one; "
        "highlighted cells come from runs with other settings (hover for which). Click a header to sort.</p>"
        f"{leaderboard_table_html(board)}<script>{TABLE_SCRIPT}</script></body></html>\n"
    )


RENDERERS: dict[str, Callable[[Board], str]] = {
    "csv": to_wide_csv,
    "tsv": lambda board: to_wide_csv(board, sep="\t"),
    "md": to_markdown,
    "json": to_json,
    "html": to_html,
    "long": to_long_csv,
}
assert tuple(RENDERERS) == TABLE_FORMATS, "vlbench.results.TABLE_FORMATS names every renderer"


def render_board(board: Board, fmt: str) -> str:
    return RENDERERS[fmt](board)


def format_for(out: Path, explicit: str | None, option: str = "--out") -> str:
    """The output format: ``--format`` when given, else the extension of ``out`` (given as ``option``)."""
    from_extension = EXTENSIONS.get(out.suffix.lower())
    if explicit is not None:
        if from_extension is not None and from_extension != explicit and explicit != "long":
            raise VLBenchError(f"{option} {out} has extension {out.suffix} but --format is {explicit}; drop --format or change the extension")
        return explicit
    if from_extension is None:
        hint = " or pass --format" if option == "--out" else ""
        raise VLBenchError(f"{option} {out}: unknown extension '{out.suffix}'; use one of {', '.join(sorted(EXTENSIONS))}{hint}")
    return from_extension


def long_path(out: Path) -> Path:
    """Where ``--out x.csv`` puts the long-format table: ``x.long.csv``."""
    return out.with_name(f"{out.stem}.long.csv")


def write_board(board: Board, out: Path, fmt: str) -> list[Path]:
    """Write the board to ``out`` in ``fmt`` (atomically), and beside a CSV its long table; the paths written."""
    from vlbench.results.io import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render_board(board, fmt))
    if fmt != "csv":
        return [out]
    atomic_write_text(long_path(out), to_long_csv(board))
    return [out, long_path(out)]
