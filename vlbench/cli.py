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
    dense_variant: Optional[str] = typer.Option(None, "--dense-variant", help="Shorthand for --set protocol.dense_variant=X (plain|maskclip|sclip|clearclip|naclip) on segmentation tasks; the rest of their protocol is kept."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Shorthand for --set protocol.seed=N on the tasks whose protocol sets a seed (ARO order)."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="A paper's own settings for the tasks it covers, e.g. naclip, clearclip, maskclip (see README)."),
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """Evaluate a model on tasks and write one result file per task."""
    from vlbench.console import RichProgress, console, summary_table
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
        protocol=protocol,
        overrides=dict(parse_override(item) for item in set_),
    )
    with RichProgress() as progress:
        runner = Runner(catalog, options, progress=progress, log=lambda m: console.print(m, style="dim", markup=False))
        model_spec, outcomes = runner.run(model, selection)
    entries = {o.task: Entry(o.metrics[o.main_metric], o.n) for o in outcomes if o.main_metric in o.metrics}
    suites = [
        (name, suite_value(catalog, name, entries))
        for name in catalog.suites
        if set(catalog.suite_tasks(name)) <= set(entries) and len(catalog.suite_tasks(name)) > 1
    ]
    console.print(summary_table(model_spec.id, outcomes, suites))
    console.print(f"results in {options.output / model_spec.slug}")


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
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """List tasks (with whether their data is found), suites, models or task kinds."""
    from rich.markup import escape

    from vlbench.console import console
    from vlbench.kinds import TASK_KINDS

    if what is ListWhat.kinds:
        from vlbench.kind_docs import print_kinds

        print_kinds()
        return
    catalog = _catalog(tasks_dir, registry)
    if what is ListWhat.tasks:
        table = Table("task", "kind", "data", "main metric", "description")
        for name in sorted(catalog.tasks):
            spec = catalog.load_task(name)
            kind = TASK_KINDS.get(spec.kind)()
            found = kind.is_available(spec, data_root.expanduser())
            table.add_row(name, spec.kind, "[green]found[/green]" if found else "[red]missing[/red]", spec.main_metric, escape(spec.description))
        console.print(table)
        console.print(f"data root: {data_root}")
    elif what is ListWhat.suites:
        table = Table("suite", "aggregate", "tasks")
        for name, suite in sorted(catalog.suites.items()):
            table.add_row(name, suite.aggregate, ", ".join(catalog.suite_tasks(name)))
        console.print(table)
    else:
        from vlbench.models import MODEL_ADAPTERS
        from vlbench.models.openclip import WEIGHTS_DIR

        table = Table("model", "means")
        for alias, target in sorted(catalog.aliases.items()):
            table.add_row(alias, target)
        for weights in sorted(WEIGHTS_DIR.glob("*.safetensors")):
            table.add_row(f"openclip:{weights.stem}", "weights shipped with vlbench")
        console.print(table)
        console.print("adapters: " + ", ".join(MODEL_ADAPTERS.names()))
        console.print("spec form: <adapter>:<name>[@tag][?key=value], e.g. openclip:ViT-B-16@laion2b_s34b_b88k, hf:google/siglip-base-patch16-224", markup=False)
        if all_:
            import open_clip

            for arch, tag in open_clip.list_pretrained():
                console.print(f"openclip:{arch}@{tag}", highlight=False)


@app.command()
@user_errors
def show(
    task: str = typer.Argument(..., help="A task name or task-file path, or kind:NAME for a task kind's options."),
    data_root: Path = typer.Option(paths.default_data_root(), "--data-root", envvar=paths.DATA_ROOT_ENV),
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """What a task measures, how, and where its data must be; kind:NAME: every option of a kind."""
    if task.startswith("kind:"):
        from vlbench.kind_docs import print_kind

        print_kind(task.split(":", 1)[1])
        return
    import yaml
    from rich.markup import escape

    from vlbench.console import console
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
    except DatasetNotFoundError as exc:
        data = f"missing: {exc}"
    suites = [name for name in catalog.suites if spec.name in catalog.suite_tasks(name)]
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

    from vlbench.results import atomic_write_text
    from vlbench.validation import task_json_schema

    text = json.dumps(task_json_schema(), indent=1, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)


class Format(str, Enum):
    csv = "csv"
    md = "md"


@app.command()
@user_errors
def leaderboard(
    results_dir: Path = typer.Argument(paths.default_results_dir(), help="Folder of result files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table here (default: print it)."),
    fmt: Format = typer.Option(Format.csv, "--format", help="csv or md."),
    include_partial: bool = typer.Option(False, "--include-partial", help="Include results of --limit runs."),
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """One row per model, one column per task main metric, plus suite aggregates."""
    from vlbench.console import console, error_console
    from vlbench.leaderboard import build, render
    from vlbench.results import atomic_write_text

    if not results_dir.is_dir():
        raise VLBenchError(f"results folder not found: {results_dir}")
    frame, partial = build(results_dir, _catalog(tasks_dir, registry), include_partial)
    if frame.empty:
        raise VLBenchError(f"no complete result files under {results_dir}" + (f" ({partial} partial --limit results; add --include-partial)" if partial else ""))
    text = render(frame, fmt.value)
    if partial:
        error_console.print(f"left out {partial} partial result(s) from --limit runs (--include-partial adds them)")
    if out is None:
        console.print(text, end="", highlight=False, markup=False, soft_wrap=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
        console.print(f"wrote {out} ({len(frame)} models, {len(frame.columns) - 1} columns)")


@app.command()
@user_errors
def rescore(
    results_dir: Path = typer.Argument(paths.default_results_dir(), help="Folder of result files."),
    write: bool = typer.Option(False, "--write", help="Store the recomputed metrics in the result files."),
) -> None:
    """Recompute metrics from the per-sample records, without the model."""
    from vlbench.console import console, format_metric
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
    console.print(table)


def main() -> None:
    app(prog_name="vlbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
