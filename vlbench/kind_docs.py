"""'vlbench list kinds' and 'vlbench show kind:NAME': task kinds described from their schemas."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from vlbench.console import console, plain_rows, print_table, write_raw
from vlbench.errors import UnknownNameError
from vlbench.kinds import TASK_KINDS
from vlbench.registry import did_you_mean
from vlbench.spec.schema import OptionDoc
from vlbench.spec.checking import kind_doc


def print_kinds() -> None:
    """One row per kind: formats, metrics, protocol options."""
    table = Table("kind", "formats", "metrics", "protocol options", "what it does")
    for name in TASK_KINDS.names():
        doc = kind_doc(name)
        table.add_row(name, ", ".join(doc["formats"]), escape(", ".join(doc["metrics"])),
                      ", ".join(o.name for o in doc["protocol"]), escape(doc["doc"]))
    print_table(table)
    console.print("every option: vlbench show kind:NAME; JSON schema of task files: vlbench schema --out task.schema.json", markup=False)


def _options_table(title: str, rows: list[OptionDoc]) -> Table:
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
