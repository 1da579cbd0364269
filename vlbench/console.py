"""Rich-based terminal output: progress bars, tables, the run summary and the kinds' documentation."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from vlbench.run.runner import TaskOutcome

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


@dataclass
class _Job:
    description: str
    total: int
    started: float
    done: int = 0
    reported_step: int = 0  # the last 10% step printed
    reported_at: float = 0.0


class LogProgress:
    """Progress as plain lines, for logs (stderr not a terminal): a line per 10% or per 30 s.

    ``encoding shapes_cls: 300/600 (50%), 41.2/s, ETA 7s``. ``clock`` and ``stream`` are
    injectable for tests.
    """

    STEPS = 10  # a line every 1/STEPS of the work
    INTERVAL_S = 30.0  # and at least every INTERVAL_S seconds while work goes on

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.clock = clock

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def start(self, description: str, total: int) -> object:
        now = self.clock()
        return _Job(description, total, now, reported_at=now)

    def advance(self, handle: object, amount: int) -> None:
        job: _Job = handle  # type: ignore[assignment]
        job.done += amount
        now = self.clock()
        step = job.done * self.STEPS // job.total if job.total else self.STEPS
        if step > job.reported_step or now - job.reported_at >= self.INTERVAL_S:
            job.reported_step, job.reported_at = step, now
            self._line(job, now)

    def finish(self, handle: object) -> None:
        pass

    def _line(self, job: _Job, now: float) -> None:
        elapsed = now - job.started
        rate = job.done / elapsed if elapsed > 0 else float("nan")
        percent = f" ({100 * job.done // job.total}%)" if job.total else ""
        if job.done >= job.total:
            tail = f"done in {_duration(elapsed)}"
        else:
            tail = f"ETA {_duration((job.total - job.done) / rate)}" if rate > 0 else "ETA ?"
        rate_text = f"{rate:.1f}/s" if math.isfinite(rate) else "-/s"
        print(f"{job.description}: {job.done}/{job.total}{percent}, {rate_text}, {tail}", file=self.stream or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def make_progress(stream: TextIO | None = None) -> "RichProgress | LogProgress":
    """Live bars on a terminal; plain progress lines on stderr when it is a log file or pipe."""
    stream = stream or sys.stderr
    return RichProgress() if stream.isatty() else LogProgress(stream)


def format_metric(value: float | None, name: str | None = None) -> str:
    """In percent with 2 decimals; a metric that is not a share of items (``metrics.NOT_PERCENTAGES``) as it is, 4 decimals."""
    from vlbench.metrics import is_percentage

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.2f}" if is_percentage(name) else f"{value:.4f}"


def format_with_ci(value: float | None, interval: Sequence[float | None] | None, name: str | None = None) -> str:
    """``format_metric`` plus the 95% CI when known: "95.80 [94.10, 97.30]"."""
    text = format_metric(value, name)
    if text != "-" and interval and all(v is not None for v in interval):
        text += f" [{format_metric(interval[0], name)}, {format_metric(interval[1], name)}]"
    return text


def summary_table(model_id: str, outcomes: Iterable[TaskOutcome], suites: Iterable[tuple[str, float] | tuple[str, float, Sequence[float | None] | None]] = ()) -> Table:
    """One row per metric; the main metric first and in bold, with its 95% bootstrap CI (the task
    name on every row when piped)."""
    from vlbench.metrics import is_percentage

    repeat = not console.is_terminal
    table = Table(title=f"vlbench results: {model_id}", title_justify="left")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value (%) [95% CI]", justify="right")
    table.add_column("n", justify="right")
    table.add_column("status")
    for outcome in outcomes:
        status = {"done": f"done in {outcome.seconds:.1f}s", "skipped": "cached", "missing": "no data", "unsupported": "unsupported"}[outcome.status]
        # breakdowns (per class, per tag: names with '/') stay in the result file
        names = [outcome.main_metric] + [k for k in outcome.metrics if k != outcome.main_metric and "/" not in k]
        for row, name in enumerate(names):
            first = row == 0
            table.add_row(
                outcome.task if first or repeat else "",
                (f"[bold]{name}[/bold]" if first else name) + ("" if is_percentage(name) else " (not %)"),
                format_with_ci(outcome.metrics.get(name), outcome.ci.get(name) if first else None, name),
                "" if outcome.n is None or not first else str(outcome.n),
                status if first else "",
                end_section=row == len(names) - 1,
            )
    for name, value, *interval in suites:
        table.add_row(f"[bold]{name}[/bold]", "suite", format_with_ci(value, interval[0] if interval else None), "", "")
    return table


def tie_note(task: str, main_metric: str, ties: dict | None) -> str | None:
    """One line for a task whose items exact ties decided: how many, and the metrics their order moves
    (the main metric first) with their bounds over those orders, where its references leave the order open."""
    if not ties or not ties.get("items"):
        return None
    text = f"{task}: {ties['items']} item(s) decided by an exact tie"
    bounds = ties.get("metrics") or {}
    moved = [name for name in [main_metric, *sorted(bounds)] if name in bounds and bounds[name].get("low") != bounds[name].get("high")]
    if not bounds:
        return f"{text} ({ties.get('rule', '')})" if ties.get("rule") else text
    if main_metric in bounds and main_metric not in moved:
        text += f"; {main_metric} does not depend on their order"
    for name in list(dict.fromkeys(moved))[:2]:
        b = bounds[name]
        expected = f", expected {format_metric(b['expected'])}" if b.get("expected") is not None else ""
        text += f"; {name} from {format_metric(b.get('low'))} to {format_metric(b.get('high'))} over the tied scores' orders{expected}"
    return text


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
    if table.title:  # e.g. which model a run summary is of
        note(str(table.title))
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

    from vlbench.results.io import json_safe

    write_raw(json.dumps(json_safe(payload), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


# -- 'vlbench list kinds' and 'vlbench show kind:NAME': task kinds described from their schemas --------------
def print_kinds() -> None:
    from vlbench.kinds import TASK_KINDS
    from vlbench.kinds.docs import kind_doc

    """One row per kind: formats, metrics, protocol options."""
    table = Table("kind", "formats", "metrics", "protocol options", "what it does")
    for name in TASK_KINDS.names():
        doc = kind_doc(name)
        table.add_row(name, ", ".join(doc["formats"]), escape(", ".join(doc["metrics"])),
                      ", ".join(o.name for o in doc["protocol"]), escape(doc["doc"]))
    print_table(table)
    console.print("every option: vlbench show kind:NAME; JSON schema of task files: vlbench schema --out task.schema.json", markup=False)


def _options_table(title: str, rows: list) -> Table:
    table = Table("key", "type", "default", "allowed", "meaning", title=title, title_justify="left")
    for row in rows:
        table.add_row(row.name, escape(row.type), escape(row.default), escape(row.allowed), escape(row.help))
    return table


def _print_section(table: Table) -> None:
    """A titled table of a kind's document: rich at a terminal; piped, the title then whole-name TSV rows."""
    if console.is_terminal:
        console.print(table)
        return
    rows = plain_rows(table)
    write_raw(f"{table.title}\n" + "".join("\t".join(" ".join(cell.split()) for cell in row) + "\n" for row in rows))


def print_kind(name: str) -> None:
    """Every protocol option, files entry, dataset format (with its keys), metric and rule of a kind."""
    from vlbench.errors import UnknownNameError
    from vlbench.kinds import TASK_KINDS
    from vlbench.registry import did_you_mean
    from vlbench.kinds.docs import kind_doc

    if name not in TASK_KINDS:
        raise UnknownNameError(f"unknown task kind '{name}'{did_you_mean(name, TASK_KINDS.names())}; known: {', '.join(TASK_KINDS.names())}")
    doc = kind_doc(name)
    console.print(f"[bold]{name}[/bold]: {escape(doc['doc'])}", highlight=False, soft_wrap=True)
    console.print(f"[bold]metrics[/bold] (regular expressions): {escape(', '.join(doc['metrics']))}", highlight=False, soft_wrap=True)
    _print_section(_options_table("protocol: (under 'protocol:' in a task file)", doc["protocol"]))
    if doc["files"]:
        _print_section(_options_table("files: (paths relative to the task file)", doc["files"]))
    for fmt, rows in doc["formats"].items():
        _print_section(_options_table(f"format '{fmt}' (a dataset source): {doc['format_docs'][fmt]}", rows))
    for cls_name, (meaning, rows) in doc["nested"].items():
        _print_section(_options_table(f"{cls_name} (a mapping inside the above): {meaning}", rows))
    for section, entries in doc["extra"].items():
        console.print(f"[bold]{section}[/bold]")
        for entry, meaning in entries:
            console.print(f"  {entry}: {escape(meaning)}", highlight=False, soft_wrap=True)
    console.print("[bold]samples[/bold] (the result's samples file: one JSON object per item)")
    for field_name, field_type, meaning in doc["samples"]:
        console.print(f"  {field_name} ({escape(field_type)}): {escape(meaning)}", highlight=False, soft_wrap=True)
