"""``vlbench leaderboard``, ``report``, ``rescore`` and ``compare``: tables and checks made from result files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vlbench.cli import (
    Format,
    IncludePartialOption,
    RegistryOption,
    ResultsDirArgument,
    SettingsOption,
    TasksDirOption,
    _catalog,
    _require_folder,
    _wanted_settings,
    _warn,
    app,
    user_errors,
)
from vlbench.errors import VLBenchError


@app.command()
@user_errors
def leaderboard(
    results_dir: Path = ResultsDirArgument,
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table to this file; its extension (.csv .tsv .md .json .html) picks the format. x.csv also writes the long table x.long.csv."),
    fmt: Optional[Format] = typer.Option(None, "--format", help="csv (default), tsv, md, json, html, or long (one row per model, task and metric, with intervals)."),
    include_partial: bool = IncludePartialOption,
    settings: list[str] = SettingsOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """One row per model, one column per task main metric, plus suite aggregates."""
    from vlbench.results.tables import format_for, load_board, long_path, render_board, write_board
    from vlbench.console import console, error_console, write_raw

    _require_folder(results_dir)
    if out is not None and out.is_dir():
        raise VLBenchError(f"--out {out} is a folder; give a file name such as {out / 'leaderboard.csv'}")
    chosen = format_for(out, fmt.value if fmt else None) if out is not None else (fmt.value if fmt else "csv")
    board = load_board(results_dir, _catalog(tasks_dir, registry), include_partial, _wanted_settings(settings), warn=_warn)
    partial = board.partial
    if not board.models:
        other = f" ({board.other} with only runs of other settings; --settings KEY=VALUE picks them)" if board.other else ""
        raise VLBenchError(f"no complete result files under {results_dir}" + (f" ({partial} partial --limit results; add --include-partial)" if partial else "") + other)
    if partial:
        error_console.print(f"left out {partial} partial result(s) from --limit runs (--include-partial adds them)")
    if board.other:
        error_console.print(f"left out {board.other} result(s) run with other settings than the default (--settings KEY=VALUE picks them)")
    if out is None:
        write_raw(render_board(board, chosen))
        return
    written = write_board(board, out, chosen)
    console.print(f"wrote {out} ({len(board.models)} models, {len(board.columns)} columns)", markup=False, highlight=False, soft_wrap=True)
    if long_path(out) in written:
        console.print(f"wrote {long_path(out)} (one row per model, task and metric)", markup=False, highlight=False, soft_wrap=True)


@app.command()
@user_errors
def report(
    results_dir: Path = ResultsDirArgument,
    out: Path = typer.Option(Path("site"), "--out", help="Folder for the site (created; its pages are replaced)."),
    include_partial: bool = IncludePartialOption,
    settings: list[str] = SettingsOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """A static HTML report that works offline: leaderboard, a page per task and suite, plots, provenance."""
    from vlbench.console import console
    from vlbench.results.report import build_site

    _require_folder(results_dir)
    index, board = build_site(results_dir, _catalog(tasks_dir, registry), out, include_partial, _wanted_settings(settings), warn=_warn)
    console.print(f"wrote {index} ({len(board.models)} models); open it in a browser", markup=False, highlight=False, soft_wrap=True)


@app.command()
@user_errors
def rescore(
    results_dir: Path = ResultsDirArgument,
    write: bool = typer.Option(False, "--write", help="Store the recomputed metrics and confidence intervals in the result files."),
    check: bool = typer.Option(False, "--check", help="Exit 1, naming the file and metric, when a stored metric differs from the recomputed one (tolerance 1e-9); a file that cannot be read exits 2."),
) -> None:
    """Recompute metrics from the per-sample records, without the model."""
    from vlbench.results import schema as result_schema
    from vlbench.console import error_console, format_metric, print_table
    from vlbench.results.housekeeping import writing
    from vlbench.results.rescore import differences, rescore_with_ci
    from vlbench.results.io import write_json

    _require_folder(results_dir)
    found = list(result_schema.scan(results_dir, _warn))
    if not found:
        raise VLBenchError(f"no result files under {results_dir}")
    table = Table("model", "task", "metric", "stored (%)", "rescored (%)")
    mismatches: list[str] = []
    for path, result in found:
        metrics, ci, resampled, ties = rescore_with_ci(path, result)
        for name, value in metrics.items():
            if "/" not in name:  # breakdowns stay in the file
                table.add_row(result.model.id, result.task.name, name, format_metric(result.metrics.get(name), name), format_metric(value, name))
        mismatches += [f"{path}: {name} stored {result.metrics.get(name)!r}, recomputed {metrics.get(name)!r}" for name in differences(result.metrics, metrics)]
        if write:
            result.metrics, result.ci, result.bootstrap, result.ties = metrics, ci, resampled, ties
            with writing(path.parent, "folder", "the rescored result"):
                write_json(path, result.to_json())
    print_table(table)
    if check and mismatches:
        for line in mismatches:
            error_console.print(f"mismatch: {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def compare(
    results_a: Path = typer.Argument(..., help="Results folder of model A (or the one folder, with --models)."),
    results_b: Optional[Path] = typer.Argument(None, help="Results folder of model B."),
    models: Optional[list[str]] = typer.Option(None, "--models", help="Model A and model B by id, both in RESULTS_A (give --models twice)."),
    replicates: int = typer.Option(1000, "--bootstrap-replicates", min=1, help="Paired bootstrap replicates."),
    seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the resampling."),
    settings: list[str] = SettingsOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """Paired difference B - A of the main metric per task and suite, on the same items, with CI and p-value."""
    from vlbench.results.compare import compare_runs
    from vlbench.console import format_metric, print_table

    rows = compare_runs(results_a, results_b, models, _catalog(tasks_dir, registry), replicates, seed, warn=_warn,
                        settings=_wanted_settings(settings))
    table = Table("task", "metric", "A (%)", "B (%)", "B - A (points)", "95% CI", "p", "test", "n")
    for row in rows:
        low, high = row.ci
        interval = "-" if low is None or high is None else f"[{100 * low:+.2f}, {100 * high:+.2f}]"
        table.add_row(row.task, row.metric, format_metric(row.a), format_metric(row.b), f"{100 * row.diff:+.2f}", interval,
                      f"{row.p_value:.3g}", row.test, "" if row.n is None else str(row.n))
    print_table(table)


