"""The ``vlbench`` command line: run, list, leaderboard, rescore."""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.table import Table

from vlbench import paths
from vlbench.errors import VLBenchError

app = typer.Typer(
    help="Zero-shot evaluation of vision-language models.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USER_ERROR = 2


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a VLBenchError as one line on stderr and exit 2; no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rich.markup import escape

        from vlbench.console import error_console

        try:
            return command(*args, **kwargs)
        except VLBenchError as exc:
            message = " ".join(str(exc).split())
            error_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            error_console.print("interrupted; finished tasks are saved, the task in flight is not")
            raise typer.Exit(130) from None

    return wrapper


def _catalog(tasks_dir: list[Path] | None, registry: list[Path] | None) -> Any:
    from vlbench.catalog import Catalog

    return Catalog.load(tasks_dir or [], registry or [])


TasksDirOption = typer.Option(None, "--tasks-dir", help="Extra folder of task YAML files (repeatable; also $VLBENCH_TASKS_PATH).")
RegistryOption = typer.Option(None, "--registry", help="Extra registry.yaml merged over the built-in one (repeatable; also $VLBENCH_REGISTRY).")


class Output(str, Enum):
    table = "table"
    json = "json"


OutputOption = typer.Option(Output.table, "--format", help="table (tab-separated when piped) or json.")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@app.command()
@user_errors
def run(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model spec, e.g. openclip:ViT-B-32 or hf:openai/clip-vit-base-patch32. Default: the built-in vlbench-tiny."),
    tasks: Optional[str] = typer.Option(None, "--tasks", "-t", help="Comma list of tasks, suites, globs or task-file paths. Default: the shapes suite."),
    data_root: Path = typer.Option(paths.default_data_root(), "--data-root", envvar=paths.DATA_ROOT_ENV, help="Where datasets live."),
    output: Path = typer.Option(paths.default_results_dir(), "--output", "-o", envvar=paths.RESULTS_ENV, help="Results folder."),
    device: Device = typer.Option(Device.auto, "--device"),
    precision: Precision = typer.Option(Precision.fp32, "--precision", help="fp32, or bf16/fp16 autocast."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", min=0, help="Data-loading processes (default: CPU count - 1, at most 8)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N samples of each task (smoke runs; recorded in the result)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute tasks whose results exist."),
    set_: list[str] = typer.Option([], "--set", help="Override a task field: key=value (e.g. dataset.path=/data/pets), or TASK:key=value for one task. Repeatable."),
    hf_hub: bool = typer.Option(False, "--hf-hub", help="Allow downloading datasets from the Hugging Face Hub when not found locally."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Skip tasks whose data is missing instead of stopping."),
    dense_variant: Optional[str] = typer.Option(None, "--dense-variant", help="Segmentation: last-block variant plain|maskclip|sclip|clearclip|naclip (default: each task's own; recorded)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for tasks that draw random numbers (ARO order); default: each task's own (recorded)."),
    fmt: Output = OutputOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """Evaluate a model on tasks and write one result file per task."""
    from vlbench.console import RichProgress, console, error_console, note, print_json, print_table, summary_table
    from vlbench.leaderboard import Entry, suite_value
    from vlbench.runner import Runner, RunOptions
    from vlbench.specs import parse_override

    catalog = _catalog(tasks_dir, registry)
    model = model or catalog.defaults.get("model")
    if not model:
        raise VLBenchError("no --model given and registry.yaml sets no defaults.model")
    selection = (tasks or str(catalog.defaults.get("tasks", ""))).split(",")
    options = RunOptions(
        data_root=data_root.expanduser(),
        output=output.expanduser(),
        device=device.value,
        precision=precision.value,
        batch_size=batch_size,
        num_workers=num_workers,
        limit=limit,
        overwrite=overwrite,
        allow_hub=hf_hub,
        skip_missing=skip_missing,
        seed=seed,
        dense_variant=dense_variant,
        overrides=dict(parse_override(item) for item in set_),
    )
    with RichProgress() as progress:
        log_console = error_console if fmt is Output.json else console  # keep stdout pure JSON
        runner = Runner(catalog, options, progress=progress, log=lambda m: log_console.print(m, style="dim", markup=False))
        model_spec, outcomes = runner.run(model, selection)
    entries = {o.task: Entry(o.metrics[o.main_metric], o.n) for o in outcomes if o.main_metric in o.metrics}
    suites = [
        (name, suite_value(catalog, name, entries))
        for name in catalog.suites
        if set(catalog.suite_tasks(name)) <= set(entries) and len(catalog.suite_tasks(name)) > 1
    ]
    if fmt is Output.json:
        print_json(
            {
                "model": model_spec.id,
                "results_dir": str(options.output / model_spec.slug),
                "tasks": [
                    {"task": o.task, "status": o.status, "main_metric": o.main_metric, "value": o.metrics.get(o.main_metric),
                     "n": o.n, "metrics": o.metrics, "seconds": round(o.seconds, 3), "result_file": str(o.result_file) if o.result_file else None}
                    for o in outcomes
                ],
                "suites": dict(suites),
            }
        )
        return
    print_table(summary_table(model_spec.id, outcomes, suites))
    note(f"results in {options.output / model_spec.slug}")


class ListWhat(str, Enum):
    tasks = "tasks"
    suites = "suites"
    models = "models"


@app.command("list")
@user_errors
def list_(
    what: ListWhat = typer.Argument(..., help="tasks, suites or models"),
    data_root: Path = typer.Option(paths.default_data_root(), "--data-root", envvar=paths.DATA_ROOT_ENV),
    all_: bool = typer.Option(False, "--all", help="models: also every open_clip architecture@tag."),
    fmt: Output = OutputOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """List tasks (with whether their data is found), suites or models."""
    from rich.markup import escape

    from vlbench.console import console, note, print_json, print_table
    from vlbench.kinds import TASK_KINDS

    catalog = _catalog(tasks_dir, registry)
    if what is ListWhat.tasks:
        rows = []
        for name in sorted(catalog.tasks):
            spec = catalog.load_task(name)
            kind = TASK_KINDS.get(spec.kind)()
            found = kind.is_available(spec, data_root.expanduser())
            rows.append({"name": name, "kind": spec.kind, "version": spec.version, "data_found": found, "main_metric": spec.main_metric, "description": spec.description})
        if fmt is Output.json:
            return print_json({"data_root": str(data_root), "tasks": rows})
        table = Table("task", "kind", "data", "main metric", "description")
        for row in rows:
            table.add_row(escape(row["name"]), row["kind"], "[green]found[/green]" if row["data_found"] else "[red]missing[/red]", row["main_metric"], escape(row["description"]))
        print_table(table)
        note(f"data root: {data_root}")
    elif what is ListWhat.suites:
        suites = [{"name": name, "aggregate": suite.aggregate, "description": suite.description, "tasks": catalog.suite_tasks(name)} for name, suite in sorted(catalog.suites.items())]
        if fmt is Output.json:
            return print_json({"suites": suites})
        table = Table("suite", "aggregate", "tasks")
        for suite in suites:
            table.add_row(escape(suite["name"]), suite["aggregate"], escape(", ".join(suite["tasks"])))
        print_table(table)
    else:
        from vlbench.models import MODEL_ADAPTERS
        from vlbench.models.openclip import WEIGHTS_DIR

        shipped = [f"openclip:{weights.stem}" for weights in sorted(WEIGHTS_DIR.glob("*.safetensors"))]
        pretrained: list[str] = []
        if all_:
            import open_clip

            pretrained = [f"openclip:{arch}@{tag}" for arch, tag in open_clip.list_pretrained()]
        if fmt is Output.json:
            return print_json({"aliases": dict(sorted(catalog.aliases.items())), "shipped_weights": shipped, "adapters": list(MODEL_ADAPTERS.names()), "pretrained": pretrained})
        table = Table("model", "means")
        for alias, target in sorted(catalog.aliases.items()):
            table.add_row(escape(alias), escape(target))
        for name in shipped:
            table.add_row(escape(name), "weights shipped with vlbench")
        print_table(table)
        note("adapters: " + ", ".join(MODEL_ADAPTERS.names()))
        note("spec form: <adapter>:<name>[@tag][?key=value], e.g. openclip:ViT-B-16@laion2b_s34b_b88k, hf:google/siglip-base-patch16-224")
        for name in pretrained:
            console.print(name, highlight=False, markup=False, emoji=False)


@app.command()
@user_errors
def show(
    task: str = typer.Argument(..., help="A task name or task-file path."),
    data_root: Path = typer.Option(paths.default_data_root(), "--data-root", envvar=paths.DATA_ROOT_ENV),
    fmt: Output = OutputOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """What a task measures, how, and where its data must be."""
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
        data = f"found: {located.source['format']} at {located.location}"
        data_info: dict[str, Any] = {"found": True, "format": located.source["format"], "location": str(located.location)}
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


class Format(str, Enum):
    csv = "csv"
    tsv = "tsv"
    md = "md"
    json = "json"
    html = "html"
    long = "long"


@app.command()
@user_errors
def leaderboard(
    results_dir: Path = typer.Argument(paths.default_results_dir(), help="Folder of result files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table to this file; its extension (.csv .tsv .md .json .html) picks the format. x.csv also writes the long table x.long.csv."),
    fmt: Optional[Format] = typer.Option(None, "--format", help="csv (default), tsv, md, json, html, or long (one row per model, task and metric, with intervals)."),
    include_partial: bool = typer.Option(False, "--include-partial", help="Include results of --limit runs."),
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """One row per model, one column per task main metric, plus suite aggregates."""
    from vlbench.board import format_for, load_board, long_path, render_board, to_long_csv
    from vlbench.console import console, error_console, write_raw
    from vlbench.results import atomic_write_text

    if not results_dir.is_dir():
        raise VLBenchError(f"results folder not found: {results_dir}")
    if out is not None and out.is_dir():
        raise VLBenchError(f"--out {out} is a folder; give a file name such as {out / 'leaderboard.csv'}")
    chosen = format_for(out, fmt.value if fmt else None) if out is not None else (fmt.value if fmt else "csv")
    board = load_board(results_dir, _catalog(tasks_dir, registry), include_partial)
    partial = board.partial
    if not board.models:
        raise VLBenchError(f"no complete result files under {results_dir}" + (f" ({partial} partial --limit results; add --include-partial)" if partial else ""))
    text = render_board(board, chosen)
    if partial:
        error_console.print(f"left out {partial} partial result(s) from --limit runs (--include-partial adds them)")
    if out is None:
        write_raw(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
        console.print(f"wrote {out} ({len(board.models)} models, {len(board.columns)} columns)", markup=False, highlight=False, soft_wrap=True)
        if chosen == "csv":
            atomic_write_text(long_path(out), to_long_csv(board))
            console.print(f"wrote {long_path(out)} (one row per model, task and metric)", markup=False, highlight=False, soft_wrap=True)


@app.command()
@user_errors
def report(
    results_dir: Path = typer.Argument(paths.default_results_dir(), help="Folder of result files."),
    out: Path = typer.Option(Path("site"), "--out", help="Folder for the site (created; its pages are replaced)."),
    include_partial: bool = typer.Option(False, "--include-partial", help="Include results of --limit runs."),
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """A static HTML report that works offline: leaderboard, a page per task and suite, plots, provenance."""
    from vlbench.console import console
    from vlbench.report import build_site

    if not results_dir.is_dir():
        raise VLBenchError(f"results folder not found: {results_dir}")
    index, board = build_site(results_dir, _catalog(tasks_dir, registry), out, include_partial)
    console.print(f"wrote {index} ({len(board.models)} models); open it in a browser", markup=False, highlight=False, soft_wrap=True)


@app.command()
@user_errors
def rescore(
    results_dir: Path = typer.Argument(paths.default_results_dir(), help="Folder of result files."),
    write: bool = typer.Option(False, "--write", help="Store the recomputed metrics in the result files."),
) -> None:
    """Recompute metrics from the per-sample records, without the model."""
    from vlbench.console import format_metric, print_table
    from vlbench.rescore import rescore as rescore_result
    from vlbench.results import iter_results, json_safe, write_json

    table = Table("model", "task", "metric", "stored (%)", "rescored (%)")
    for path, result in iter_results(results_dir):
        metrics = rescore_result(path, result)
        for name, value in metrics.items():
            if "/" not in name:  # breakdowns stay in the file
                table.add_row(result["model"]["id"], result["task"]["name"], name, format_metric(result["metrics"].get(name)), format_metric(value))
        if write and json_safe(metrics) != result["metrics"]:
            write_json(path, {**result, "metrics": metrics})
    print_table(table)


def main() -> None:
    app(prog_name="vlbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
