"""Rich-based terminal output: progress bars and tables."""

from __future__ import annotations

import math
from typing import Iterable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vlbench.runner import TaskOutcome

console = Console()
error_console = Console(stderr=True)


class RichProgress:
    """The encoder's progress protocol on top of one rich Progress display."""

    def __init__(self) -> None:
        self.display = Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,  # piped output stays clean
        )

    def __enter__(self) -> "RichProgress":
        self.display.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.display.stop()

    def start(self, description: str, total: int) -> object:
        return self.display.add_task(description, total=total)

    def advance(self, handle: object, amount: int) -> None:
        self.display.advance(handle, amount)  # type: ignore[arg-type]

    def finish(self, handle: object) -> None:
        self.display.remove_task(handle)  # type: ignore[arg-type]


def format_metric(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def summary_table(model_id: str, outcomes: Iterable[TaskOutcome], suites: Iterable[tuple[str, float]] = ()) -> Table:
    """One row per metric; the main metric first and in bold (the task name on every row when piped)."""
    repeat = not console.is_terminal
    table = Table(title=f"vlbench results: {model_id}", title_justify="left")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value (%)", justify="right")
    table.add_column("n", justify="right")
    table.add_column("status")
    for outcome in outcomes:
        status = {"done": f"done in {outcome.seconds:.1f}s", "skipped": "cached", "missing": "no data"}[outcome.status]
        # breakdowns (per class, per tag: names with '/') stay in the result file
        names = [outcome.main_metric] + [k for k in outcome.metrics if k != outcome.main_metric and "/" not in k]
        for row, name in enumerate(names):
            first = row == 0
            table.add_row(
                outcome.task if first or repeat else "",
                f"[bold]{name}[/bold]" if first else name,
                format_metric(outcome.metrics.get(name)),
                "" if outcome.n is None or not first else str(outcome.n),
                status if first else "",
                end_section=row == len(names) - 1,
            )
    for name, value in suites:
        table.add_row(f"[bold]{name}[/bold]", "suite", format_metric(value), "", "")
    return table


def plain_rows(table: Table) -> list[list[str]]:
    """A rich table's header and rows as plain text (markup removed, nothing truncated)."""
    from rich.text import Text

    def plain(cell: object) -> str:
        if isinstance(cell, Text):
            return cell.plain
        return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)

    columns = [[plain(c) for c in column.cells] for column in table.columns]
    header = [plain(column.header) for column in table.columns]
    return [header, *map(list, zip(*columns))]


def print_table(table: Table, out: Console | None = None) -> None:
    """On a terminal, the rich table; otherwise tab-separated lines with whole names, so that
    ``vlbench list tasks | grep ... | cut -f1`` gives names that can be pasted back."""
    out = out or console
    if out.is_terminal:
        out.print(table)
        return
    write_raw("".join("\t".join(" ".join(cell.split()) for cell in row) + "\n" for row in plain_rows(table)), out)


def write_raw(text: str, out: Console | None = None) -> None:
    """Text exactly as given (rich would expand tabs and interpret markup)."""
    file = (out or console).file
    file.write(text)
    file.flush()


def note(message: str) -> None:
    """A human remark beside a table: on stdout at a terminal, on stderr when stdout is piped."""
    (console if console.is_terminal else error_console).print(message, markup=False, highlight=False, emoji=False, soft_wrap=True)


def print_json(payload: object) -> None:
    """Machine-readable output on stdout (strict JSON, NaN as null)."""
    import json

    from vlbench.results import json_safe

    write_raw(json.dumps(json_safe(payload), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
