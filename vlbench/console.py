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

# no :emoji: codes: model specs such as 'color:x:' must print as written
console = Console(emoji=False)
error_console = Console(stderr=True, emoji=False)


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
    """One row per metric; the main metric first and in bold."""
    table = Table(title=f"vlbench results: {model_id}", title_justify="left")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value (%)", justify="right")
    table.add_column("n", justify="right")
    table.add_column("status")
    for outcome in outcomes:
        status = {"done": f"done in {outcome.seconds:.1f}s", "skipped": "cached", "missing": "no data", "unsupported": "unsupported"}[outcome.status]
        # breakdowns (per class, per tag: names with '/') stay in the result file
        names = [outcome.main_metric] + [k for k in outcome.metrics if k != outcome.main_metric and "/" not in k]
        for row, name in enumerate(names):
            first = row == 0
            table.add_row(
                outcome.task if first else "",
                f"[bold]{name}[/bold]" if first else name,
                format_metric(outcome.metrics.get(name)),
                "" if outcome.n is None or not first else str(outcome.n),
                status if first else "",
                end_section=row == len(names) - 1,
            )
    for name, value in suites:
        table.add_row(f"[bold]{name}[/bold]", "suite", format_metric(value), "", "")
    return table
