"""The ``vlbench`` command line: run, list, show, leaderboard, rescore, compare."""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.table import Table

from vlbench import paths
from vlbench.encoding import DECODE_PATHS
from vlbench.errors import VLBenchError
from vlbench.models.spec import PRECISION_NAMES
from vlbench.results import TABLE_FORMATS

app = typer.Typer(
    help="Zero-shot evaluation of vision-language models.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
DEBUG_ENV = "VLBENCH_DEBUG"


_debug = {"on": False}


def debug_enabled() -> bool:
    """--debug (any command) or $VLBENCH_DEBUG=1: show tracebacks instead of one-line errors."""
    import os

    return _debug["on"] or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (also $VLBENCH_DEBUG=1).")) -> None:
    _debug["on"] = debug


def _error_line(message: str) -> None:
    from rich.markup import escape

    from vlbench.console import error_console

    message = " ".join(message.split())
    error_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print an error as one line on stderr (the traceback too with --debug) and exit non-zero.

    User errors (VLBenchError) exit 2; anything else is reported as an internal error and exits 1;
    Ctrl-C exits 130 and SIGTERM 143, after the task in flight has removed its temporary files.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import traceback

        from vlbench.console import error_console
        from vlbench.signals import Terminated, terminate_as_interrupt

        try:
            with terminate_as_interrupt():
                return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt as exc:
            what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            error_console.print(f"{what}; finished tasks are saved, the task in flight is not", highlight=False)
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
        except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
            if debug_enabled():
                traceback.print_exc()
            if isinstance(exc, VLBenchError):
                _error_line(str(exc))
                raise typer.Exit(EXIT_USER_ERROR) from None
            first = (str(exc).strip().splitlines() or [""])[0]
            _error_line(f"internal error: {type(exc).__name__}: {first}" + ("" if debug_enabled() else " (--debug shows the traceback)"))
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None

    return wrapper


def _catalog(tasks_dir: list[Path] | None, registry: list[Path] | None) -> Any:
    from vlbench.spec.catalog import Catalog

    return Catalog.load(tasks_dir or [], registry or [])


CacheDirOption = typer.Option(None, "--cache-dir", help="Persistent embedding cache (default: $VLBENCH_CACHE, else ~/.cache/vlbench/embeddings).")


def _cache_dir(option: Path | None) -> Path:
    from vlbench.encoding.cache import default_cache_dir

    return option.expanduser() if option is not None else default_cache_dir()


TasksDirOption = typer.Option(None, "--tasks-dir", help="Extra folder of task YAML files (repeatable; also $VLBENCH_TASKS_PATH).")
RegistryOption = typer.Option(None, "--registry", help="Extra registry.yaml merged over the built-in one (repeatable; also $VLBENCH_REGISTRY).")
ResultsDirArgument = typer.Argument(paths.default_results_dir(), help="Folder of result files.")
IncludePartialOption = typer.Option(False, "--include-partial", help="Include results of --limit runs (a full run is still preferred).")


def _require_folder(results_dir: Path) -> None:
    if not results_dir.is_dir():
        raise VLBenchError(f"results folder not found: {results_dir}")


class Output(str, Enum):
    table = "table"
    json = "json"


OutputOption = typer.Option(Output.table, "--format", help="table (tab-separated when piped) or json.")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# the choices of --precision, --decode and --format come from the code that implements them
Precision = Enum("Precision", {name: name for name in PRECISION_NAMES}, type=str)  # type: ignore[misc]
Decode = Enum("Decode", {name: name for name in DECODE_PATHS}, type=str)  # type: ignore[misc]


@app.command()
@user_errors
def run(
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Model spec(s), e.g. openclip:ViT-B-32 or hf:openai/clip-vit-base-patch32; a comma list, a collection from registry.yaml (openai_clip), repeatable. Default: the built-in vlbench-tiny."),
    models_file: Optional[Path] = typer.Option(None, "--models", help="A file of model specs, one per line (# comments); added to --model."),
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
    decode: Decode = typer.Option(Decode.pil, "--decode", help="pil (default, reproduces reference numbers) or gpu: JPEGs decoded by torchvision.io on the GPU (on the CPU without CUDA) with the model's resize/crop/normalisation as tensor ops; recorded."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: run block K (0-based) of N of the sorted (model, task) grid, e.g. --shard $SLURM_ARRAY_TASK_ID/8."),
    leaderboard_file: Optional[Path] = typer.Option(None, "--leaderboard", help="At the end, write a leaderboard of this run's models from every result under --output; its extension picks the format (.csv .tsv .md .json .html)."),
    bootstrap_replicates: int = typer.Option(1000, "--bootstrap-replicates", min=0, help="Bootstrap replicates for the 95% confidence intervals (0: none)."),
    bootstrap_seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the bootstrap resampling."),
    language: Optional[str] = typer.Option(None, "--language", help="Language of multilingual tasks (class names, templates, captions), e.g. it; same as --set language=it; other tasks ignore it."),
    cache_dir: Optional[Path] = CacheDirOption,
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the persistent embedding cache."),
    full_text_padding: bool = typer.Option(False, "--full-text-padding", help="Pad texts to the context length even where trimming to the batch's longest is exact (recorded in env)."),
    strict: bool = typer.Option(False, "--strict", help="Stop (exit 2) when the model cannot do a selected task, instead of reporting it as unsupported."),
    fmt: Output = OutputOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """Evaluate models on tasks and write one result file per (model, task)."""
    from vlbench.run.settings import RunSettings
    from vlbench.spec.taskfile import parse_override

    settings = RunSettings(
        data_root=data_root.expanduser(), output=output.expanduser(), device=device.value, precision=precision.value, batch_size=batch_size,
        num_workers=num_workers, limit=limit, overwrite=overwrite, allow_hub=hf_hub, skip_missing=skip_missing, seed=seed,
        dense_variant=dense_variant, bootstrap_replicates=bootstrap_replicates, bootstrap_seed=bootstrap_seed, decode=decode.value,
        strict=strict, overrides={**({"language": language} if language else {}), **dict(parse_override(item) for item in set_)},
        cache_dir=None if no_cache else _cache_dir(cache_dir), full_text_padding=full_text_padding, protocol=protocol,
    )
    catalog = _catalog(tasks_dir, registry)
    _run(catalog, settings, _model_texts(catalog, model, models_file), (tasks or str(catalog.defaults.get("tasks", ""))).split(","),
         shard, leaderboard_file, fmt)


def _model_texts(catalog: Any, model: list[str] | None, models_file: Path | None) -> list[str]:
    from vlbench.models.collections import read_spec_file, split_specs

    texts = split_specs(model or []) + (read_spec_file(models_file) if models_file else [])
    if not texts and catalog.defaults.get("model"):
        texts = [str(catalog.defaults["model"])]
    if not texts:
        raise VLBenchError("no --model given and registry.yaml sets no defaults.model")
    return texts


def _run(catalog: Any, settings: Any, model_texts: list[str], selection: list[str], shard: str | None, leaderboard_file: Path | None,
         fmt: "Output") -> None:
    from vlbench import distributed
    from vlbench.console import console, error_console, make_progress, print_table, summary_table
    from vlbench.errors import NothingRanError
    from vlbench.run.runner import Runner
    from vlbench.run.shards import Shard

    model_specs = catalog.resolve_models(model_texts)
    shard_part = Shard.parse(shard) if shard is not None else None
    if leaderboard_file is not None:
        from vlbench.results.tables import format_for

        format_for(leaderboard_file, None, "--leaderboard")  # a bad extension is refused before the run, not after it
    log_console = error_console if fmt is Output.json else console  # keep stdout pure JSON
    world = distributed.init(settings.device)
    try:
        if not world.is_main:  # the other ranks of a torchrun job print nothing but errors
            Runner(catalog, settings).run_many(model_specs, selection, shard_part)
            return
        with make_progress() as progress:
            runner = Runner(catalog, settings, progress=progress, log=lambda m: log_console.print(m, style="dim", markup=False))
            try:
                runs = runner.run_many(model_specs, selection, shard_part)
            except NothingRanError as exc:  # list what is missing, then the one-line error
                for model_spec, outcomes in exc.runs:
                    print_table(summary_table(model_spec.id, outcomes, []))
                raise
    finally:
        distributed.shutdown()
    _summarise(catalog, settings, runs, fmt)
    if leaderboard_file is not None:
        say = (lambda m: log_console.print(m, markup=False, highlight=False, soft_wrap=True)) if fmt is Output.json else None
        write_run_leaderboard(leaderboard_file, settings, catalog, [m.id for m, _ in runs], say=say)


def _summarise(catalog: Any, settings: Any, runs: list[tuple[Any, list[Any]]], fmt: "Output") -> None:
    """Each model's summary table (or JSON), with its suites, unsupported tasks and tie notes."""
    from vlbench.console import note, print_json, print_table, summary_table, tie_note
    from vlbench.results.selection import outcome_entries, suite_ci, suite_value

    summaries = []
    for model_spec, outcomes in runs:
        if not outcomes:
            continue  # none of this model's tasks is in the shard
        entries = outcome_entries(outcomes)
        suites = [(name, suite_value(catalog, name, entries), suite_ci(catalog, name, entries)) for name in catalog.suites
                  if set(catalog.suite_tasks(name)) <= set(entries) and len(catalog.suite_tasks(name)) > 1]
        if fmt is Output.json:
            summaries.append(run_summary(model_spec.id, settings.output / model_spec.slug, outcomes, suites))
            continue
        print_table(summary_table(model_spec.id, outcomes, suites))
        for outcome in outcomes:
            if outcome.status == "unsupported":
                note(f"{outcome.task}: not run: {outcome.note}")
            if (line := tie_note(outcome.task, outcome.main_metric, outcome.ties)) is not None:
                note(line)
        note(f"results in {settings.output / model_spec.slug}")
    if fmt is Output.json:
        print_json({"runs": summaries})


def run_summary(model_id: str, results_dir: Path, outcomes: list[Any], suites: list[tuple[str, float, Any]]) -> dict[str, Any]:
    """One model's part of ``vlbench run --format json``."""
    return {
        "model": model_id,
        "results_dir": str(results_dir),
        "tasks": [
            {"task": o.task, "status": o.status, "main_metric": o.main_metric, "value": o.metrics.get(o.main_metric), "ci": o.ci.get(o.main_metric),
             "n": o.n, "metrics": o.metrics, "seconds": round(o.seconds, 3), "result_file": str(o.result_file) if o.result_file else None,
             "note": o.note, "ties": o.ties}
            for o in outcomes
        ],
        "suites": {name: {"value": value, "ci": list(ci) if ci else None} for name, value, ci in suites},
    }


def write_run_leaderboard(path: Path, settings: Any, catalog: Any, model_ids: list[str], say: Callable[[str], None] | None = None) -> None:
    """The leaderboard rows of the run's models: their results under ``settings.output`` with this run's
    settings (``RunSettings.leaderboard_settings``; its --limit runs too when the run has --limit), with
    confidence intervals; the file's extension picks the format, as for ``vlbench leaderboard --out``."""
    from vlbench.console import note
    from vlbench.results.tables import format_for, load_board, write_board

    say = say or note
    fmt = format_for(path, None, "--leaderboard")
    board = load_board(settings.output, catalog, settings.limit is not None, settings.leaderboard_settings(), models=model_ids)
    if not board.models:
        raise VLBenchError(f"no result of this run's models under {settings.output} for the leaderboard")
    write_board(board, path, fmt)
    say(f"wrote {path} ({len(board.models)} models)")


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
    from rich.markup import escape

    from vlbench.console import console, note, print_json, print_table
    from vlbench.kinds import TASK_KINDS

    if what is ListWhat.kinds:
        from vlbench.console import print_kinds

        print_kinds()
        return
    catalog = _catalog(tasks_dir, registry)
    if what is ListWhat.tasks:
        rows = []
        for name in sorted(catalog.tasks):
            try:
                spec = catalog.load_task(name)
            except VLBenchError as exc:
                rows.append({"name": name, "kind": "?", "version": None, "data_found": None, "main_metric": "", "description": "", "error": " ".join(str(exc).split())})
                continue
            kind = TASK_KINDS.get(spec.kind)()
            found = kind.is_available(spec, data_root.expanduser())
            rows.append({"name": name, "kind": spec.kind, "version": spec.version, "data_found": found, "main_metric": spec.main_metric, "description": spec.description})
        if fmt is Output.json:
            return print_json({"data_root": str(data_root), "tasks": rows})
        table = Table("task", "kind", "data", "main metric", "description")
        for row in rows:
            data = "[red]invalid[/red]" if "error" in row else "[green]found[/green]" if row["data_found"] else "[red]missing[/red]"
            table.add_row(escape(row["name"]), row["kind"], data, row["main_metric"], escape(row.get("error", row["description"])))
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


@app.command("schema")
@user_errors
def schema_(
    out: Optional[Path] = typer.Option(None, "--out", help="Write the JSON schema here (default: print it)."),
) -> None:
    """JSON schema of task files, generated from the kinds' and formats' schemas (for editors)."""
    import json

    from vlbench.results.io import atomic_write_text
    from vlbench.spec.docs import task_json_schema

    text = json.dumps(task_json_schema(), indent=1, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)


SettingsOption = typer.Option([], "--settings", help="Show runs with these settings, KEY=VALUE (e.g. precision=bf16, protocol.window=112); repeatable. Default: runs with default settings only.")


def _wanted_settings(items: list[str]) -> dict[str, str]:
    """``--settings KEY=VALUE`` options as a dict."""
    wanted = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise VLBenchError(f"--settings '{item}' must be KEY=VALUE, e.g. precision=bf16")
        wanted[key] = value
    return wanted


def _warn(message: str) -> None:
    """A warning line on stderr (e.g. a result file that is skipped)."""
    from vlbench.console import error_console

    error_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


Format = Enum("Format", {name: name for name in TABLE_FORMATS}, type=str)  # type: ignore[misc]


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
                table.add_row(result.model.id, result.task.name, name, format_metric(result.metrics.get(name)), format_metric(value))
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


cache_app = typer.Typer(help="The persistent embedding cache: what it holds, and clearing it.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
@user_errors
def cache_info(cache_dir: Optional[Path] = CacheDirOption) -> None:
    """Size of the cache and its entries per model."""
    from rich.markup import escape

    from vlbench.console import console, print_table
    from vlbench.encoding.cache import EmbeddingStore

    store = EmbeddingStore(_cache_dir(cache_dir))
    rows = store.info()
    table = Table("model", "precision", "device", "entries", "size (MB)")
    for row in rows:
        table.add_row(escape(str(row.get("model"))), str(row.get("precision")), str(row.get("device_type")), str(row["entries"]), f"{row['bytes'] / 1e6:.1f}")
    print_table(table)
    total = sum(row["bytes"] for row in rows)
    console.print(f"{store.root}: {sum(row['entries'] for row in rows)} entries, {total / 1e6:.1f} MB", highlight=False, markup=False)


@cache_app.command("clear")
@user_errors
def cache_clear(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Only this model's entries (a spec or alias); default: everything."),
    cache_dir: Optional[Path] = CacheDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """Delete cached embeddings, of one model or all."""
    from vlbench.console import console
    from vlbench.encoding.cache import EmbeddingStore

    store = EmbeddingStore(_cache_dir(cache_dir))
    models = None
    if model is not None:
        models = {model.strip(), _catalog(None, registry).resolve_model(model).id}
    removed = store.clear(models)
    what = f"model {model}" if model else "all models"
    console.print(f"removed {removed} cached model(s) ({what}) from {store.root}", highlight=False, markup=False)


def main() -> None:
    # --debug is accepted after any command too ('vlbench run --debug'), not only before it
    argv = sys.argv[1:]
    if "--debug" in argv and argv[0] != "--debug":
        argv = ["--debug", *[a for a in argv if a != "--debug"]]
    app(args=argv, prog_name="vlbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
