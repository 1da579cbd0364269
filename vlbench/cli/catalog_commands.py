"""``vlbench list``, ``show`` and ``schema``: what tasks, suites, models and kinds there are."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from vlbench import paths
from vlbench.cli import Output, OutputOption, RegistryOption, TasksDirOption, _catalog, app, user_errors
from vlbench.errors import VLBenchError


class ListWhat(str, Enum):
    tasks = "tasks"
    suites = "suites"
    models = "models"
    kinds = "kinds"


@app.command("list")
@user_errors
def list_(
    what: ListWhat = typer.Argument(..., help="tasks, suites, models or kinds"),
    data_root: Path = typer.Option(paths.default_data_root(), "--data-root", envvar=paths.DATA_ROOT_ENV),
    all_: bool = typer.Option(False, "--all", help="models: also every open_clip architecture@tag."),
    fmt: Output = OutputOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """List tasks (with whether their data is found), suites, models or task kinds."""
    if what is ListWhat.kinds:
        from vlbench.console import print_kinds

        print_kinds()
        return
    catalog = _catalog(tasks_dir, registry)
    if what is ListWhat.tasks:
        _list_tasks(catalog, data_root.expanduser(), fmt)
    elif what is ListWhat.suites:
        _list_suites(catalog, fmt)
    else:
        _list_models(catalog, all_, fmt)


def _list_tasks(catalog: Any, data_root: Path, fmt: Output) -> None:
    from rich.markup import escape

    from vlbench.console import note, print_json, print_table
    from vlbench.kinds import TASK_KINDS

    rows = []
    for name in sorted(catalog.tasks):
        try:
            spec = catalog.load_task(name)
        except VLBenchError as exc:
            rows.append({"name": name, "kind": "?", "version": None, "data_found": None, "main_metric": "", "description": "", "error": " ".join(str(exc).split())})
            continue
        found = TASK_KINDS.get(spec.kind)().is_available(spec, data_root)
        rows.append({"name": name, "kind": spec.kind, "version": spec.version, "data_found": found, "main_metric": spec.main_metric, "description": spec.description})
    if fmt is Output.json:
        return print_json({"data_root": str(data_root), "tasks": rows})
    table = Table("task", "kind", "data", "main metric", "description")
    for row in rows:
        data = "[red]invalid[/red]" if "error" in row else "[green]found[/green]" if row["data_found"] else "[red]missing[/red]"
        table.add_row(escape(row["name"]), row["kind"], data, row["main_metric"], escape(row.get("error", row["description"])))
    print_table(table)
    note(f"data root: {data_root}")


def _list_suites(catalog: Any, fmt: Output) -> None:
    from rich.markup import escape

    from vlbench.console import print_json, print_table

    suites = [{"name": name, "aggregate": suite.aggregate, "description": suite.description, "tasks": catalog.suite_tasks(name)} for name, suite in sorted(catalog.suites.items())]
    if fmt is Output.json:
        return print_json({"suites": suites})
    table = Table("suite", "aggregate", "tasks")
    for suite in suites:
        table.add_row(escape(suite["name"]), suite["aggregate"], escape(", ".join(suite["tasks"])))
    print_table(table)


def _list_models(catalog: Any, all_: bool, fmt: Output) -> None:
    from rich.markup import escape

    from vlbench.console import console, note, print_json, print_table
    from vlbench.models.openclip import WEIGHTS_DIR

    shipped = [f"openclip:{weights.stem}" for weights in sorted(WEIGHTS_DIR.glob("*.safetensors"))]
    pretrained: list[str] = []
    if all_:
        import open_clip

        pretrained = [f"openclip:{arch}@{tag}" for arch, tag in open_clip.list_pretrained()]
    if fmt is Output.json:
        return print_json({"aliases": dict(sorted(catalog.aliases.items())), "collections": dict(sorted(catalog.collections.items())),
                           "shipped_weights": shipped, "adapters": list(catalog.adapter_names()), "pretrained": pretrained})
    table = Table("model", "means")
    for alias, target in sorted(catalog.aliases.items()):
        table.add_row(escape(alias), escape(target))
    for name, members in sorted(catalog.collections.items()):
        table.add_row(escape(name), escape(f"collection: {members} (generated)" if isinstance(members, str) else f"collection: {', '.join(members)}"))
    for name in shipped:
        table.add_row(escape(name), "weights shipped with vlbench")
    print_table(table)
    note("adapters: " + ", ".join(catalog.adapter_names()))
    note("spec form: <adapter>:<name>[@tag][?key=value], e.g. openclip:ViT-B-16@laion2b_s34b_b88k, hf:google/siglip-base-patch16-224")
    for name in pretrained:
        console.print(name, highlight=False, markup=False, emoji=False)


@app.command()
@user_errors
def show(
    task: str = typer.Argument(..., help="A task name or task-file path, or kind:NAME for a task kind's options."),
    data_root: Path = typer.Option(paths.default_data_root(), "--data-root", envvar=paths.DATA_ROOT_ENV),
    fmt: Output = OutputOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """What a task measures, how, and where its data must be; kind:NAME: every option of a kind."""
    if task.startswith("kind:"):
        from vlbench.console import print_kind

        print_kind(task.split(":", 1)[1])
        return
    import yaml
    from rich.markup import escape

    from vlbench.console import console, print_json
    from vlbench.errors import DatasetNotFoundError
    from vlbench.kinds import TASK_KINDS

    catalog = _catalog(tasks_dir, registry)
    items = catalog.select([task])
    if len(items) != 1:
        raise VLBenchError(f"'{task}' names {len(items)} tasks; show takes one (see 'vlbench list suites')")
    spec = catalog.load_task(items[0])
    kind = TASK_KINDS.get(spec.kind)()
    try:
        located = kind.locate(spec, data_root.expanduser())
        data = f"found: {located.format} at {located.location}"
        data_info: dict[str, Any] = {"found": True, "format": located.format, "location": str(located.location)}
    except DatasetNotFoundError as exc:
        data = f"missing: {exc}"
        data_info = {"found": False, "error": " ".join(str(exc).split())}
    suites = [name for name in catalog.suites if spec.name in catalog.suite_tasks(name)]
    if fmt is Output.json:
        print_json(
            {"name": spec.name, "kind": spec.kind, "version": spec.version, "source_file": str(spec.source_file), "description": spec.description,
             "protocol_reference": spec.config.get("protocol_reference"), "data": data_info, "suites": suites,
             "config": {k: v for k, v in spec.config.items() if k in ("dataset", "files", "protocol", "metrics", "main_metric")}}
        )
        return
    console.print(f"[bold]{spec.name}[/bold] ({spec.kind}, version {spec.version}) from {spec.source_file}")
    for label, text in (("description", spec.description), ("protocol", spec.config.get("protocol_reference", "")), ("data", data), ("suites", ", ".join(suites))):
        if text:
            console.print(f"[bold]{label}:[/bold] {escape(' '.join(str(text).split()))}", highlight=False)
    shown = {k: v for k, v in spec.config.items() if k in ("dataset", "files", "protocol", "metrics", "main_metric")}
    console.print(yaml.safe_dump(shown, sort_keys=False, width=120), highlight=False, markup=False)


@app.command("schema")
@user_errors
def schema_(
    out: Optional[Path] = typer.Option(None, "--out", help="Write the JSON schema here (default: print it)."),
) -> None:
    """JSON schema of task files, generated from the kinds' and formats' schemas (for editors)."""
    import json

    from vlbench.results.io import atomic_write_text
    from vlbench.kinds.docs import task_json_schema

    text = json.dumps(task_json_schema(), indent=1, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)


