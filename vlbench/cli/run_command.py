"""``vlbench run``: the run settings from the options, the runner, the summary and the run's leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer

from vlbench import paths
from vlbench.cli import (
    CacheDirOption,
    Decode,
    Device,
    Output,
    OutputOption,
    Precision,
    RegistryOption,
    TasksDirOption,
    _cache_dir,
    _catalog,
    app,
    user_errors,
)
from vlbench.errors import VLBenchError


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
    protocol: Optional[str] = typer.Option(None, "--protocol", help="A paper's own settings for the tasks it covers, e.g. naclip, clearclip, maskclip (docs/metrics.md lists them)."),
    decode: Decode = typer.Option(Decode.pil, "--decode", help="pil (default, reproduces reference numbers) or gpu: JPEGs decoded by torchvision.io on the GPU (on the CPU without CUDA) with the model's resize/crop/normalisation as tensor ops; recorded."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: run block K (0-based) of N of the sorted (model, task) grid, e.g. --shard $SLURM_ARRAY_TASK_ID/8."),
    log: list[str] = typer.Option([], "--log", help="Also log every metric with its CI and the run's settings to an experiment tracker: tensorboard[:DIR] (default DIR: OUTPUT/tensorboard) or wandb[:PROJECT] (default: WANDB_PROJECT or vlbench); repeatable. Needs pip install 'vlbench[tensorboard]' / 'vlbench[wandb]'."),
    leaderboard_file: Optional[Path] = typer.Option(None, "--leaderboard", help="At the end, write a leaderboard of this run's models from every result under --output; its extension picks the format (.csv .tsv .md .json .html)."),
    bootstrap_replicates: int = typer.Option(1000, "--bootstrap-replicates", min=0, help="Bootstrap replicates for the 95% confidence intervals (0: none)."),
    bootstrap_seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the bootstrap resampling."),
    language: Optional[str] = typer.Option(None, "--language", help="Language of multilingual tasks (class names, templates, captions), e.g. it; same as --set language=it; other tasks ignore it."),
    cache_dir: Optional[Path] = CacheDirOption,
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the persistent embedding cache (nor the pixel cache in it)."),
    no_pixel_cache: bool = typer.Option(False, "--no-pixel-cache", help="Decode every image again instead of reading its transformed crop from the pixel cache (<cache dir>/pixels, shared by every model with the same transform geometry)."),
    pixel_cache_gb: float = typer.Option(50.0, "--pixel-cache-gb", min=0.0, help="Size budget of the pixel cache; the least recently used files are removed past it."),
    full_text_padding: bool = typer.Option(False, "--full-text-padding", help="Pad texts to the context length even where trimming to the batch's longest is exact (recorded in env)."),
    strict: bool = typer.Option(False, "--strict", help="Stop (exit 2) when the model cannot do a selected task, instead of reporting it as unsupported."),
    fmt: Output = OutputOption,
    tasks_dir: Optional[list[Path]] = TasksDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """Evaluate models on tasks and write one result file per (model, task)."""
    from vlbench.models.openclip_import import allow_lean_import
    from vlbench.run.settings import RunSettings
    from vlbench.spec.taskfile import parse_override

    allow_lean_import()  # this process is a run: open_clip need not bring towers no model builds

    settings = RunSettings(
        data_root=data_root.expanduser(), output=output.expanduser(), device=device.value, precision=precision.value, batch_size=batch_size,
        num_workers=num_workers, limit=limit, overwrite=overwrite, allow_hub=hf_hub, skip_missing=skip_missing, seed=seed,
        dense_variant=dense_variant, bootstrap_replicates=bootstrap_replicates, bootstrap_seed=bootstrap_seed, decode=decode.value,
        strict=strict, overrides={**({"language": language} if language else {}), **dict(parse_override(item) for item in set_)},
        cache_dir=None if no_cache else _cache_dir(cache_dir), full_text_padding=full_text_padding, protocol=protocol,
        pixel_cache=not no_pixel_cache, pixel_cache_gb=pixel_cache_gb,
    )
    catalog = _catalog(tasks_dir, registry)
    _run(catalog, settings, _model_texts(catalog, model, models_file), (tasks or str(catalog.defaults.get("tasks", ""))).split(","),
         shard, leaderboard_file, fmt, log)


def _model_texts(catalog: Any, model: list[str] | None, models_file: Path | None) -> list[str]:
    from vlbench.models.collections import read_spec_file, split_specs

    texts = split_specs(model or []) + (read_spec_file(models_file) if models_file else [])
    if not texts and catalog.defaults.get("model"):
        texts = [str(catalog.defaults["model"])]
    if not texts:
        raise VLBenchError("no --model given and registry.yaml sets no defaults.model")
    return texts


def _run(catalog: Any, settings: Any, model_texts: list[str], selection: list[str], shard: str | None, leaderboard_file: Path | None,
         fmt: "Output", log: list[str] | None = None) -> None:
    from vlbench import distributed
    from vlbench.console import console, error_console, make_progress, print_table, summary_table
    from vlbench.errors import NothingRanError
    from vlbench.run.runner import Runner
    from vlbench.run.shards import Shard
    from vlbench.run.tracking import check_trackers

    model_specs = catalog.resolve_models(model_texts)
    shard_part = Shard.parse(shard) if shard is not None else None
    if leaderboard_file is not None:
        from vlbench.results.tables import format_for

        format_for(leaderboard_file, None, "--leaderboard")  # a bad extension is refused before the run, not after it
    check_trackers(log)
    log_console = error_console if fmt is Output.json else console  # keep stdout pure JSON
    world = distributed.init(settings.device)
    try:
        if not world.is_main:  # the other ranks of a torchrun job print nothing but errors
            Runner(catalog, settings).run_many(model_specs, selection, shard_part)
            distributed.barrier()  # every rank is done before any takes the process group down
            return
        with make_progress() as progress:
            runner = Runner(catalog, settings, progress=progress, log=lambda m: log_console.print(m, style="dim", markup=False))
            try:
                runs = runner.run_many(model_specs, selection, shard_part)
                distributed.barrier()  # (a failed rank ends the job: torchrun stops the others)
            except NothingRanError as exc:  # list what is missing, then the one-line error
                for model_spec, outcomes in exc.runs:
                    print_table(summary_table(model_spec.id, outcomes, []))
                raise
    finally:
        distributed.shutdown()
    _summarise(catalog, settings, runs, fmt)
    _track(log, settings, runs)
    if leaderboard_file is not None:
        say = (lambda m: log_console.print(m, markup=False, highlight=False, soft_wrap=True)) if fmt is Output.json else None
        write_run_leaderboard(leaderboard_file, settings, catalog, [m.id for m, _ in runs], say=say)


def _track(log: list[str] | None, settings: Any, runs: list[tuple[Any, list[Any]]]) -> None:
    """Each model's results to the trackers ``--log`` names (a tracker run per model)."""
    from vlbench.results import schema as result_schema
    from vlbench.run.tracking import log_run

    if not log:
        return
    models = []
    for spec, outcomes in runs:
        results = (result_schema.read(o.result_file) for o in outcomes if o.result_file is not None)
        models.append((spec.id, [result for result in results if result is not None]))
    log_run(log, settings.output, settings, models)


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
            elif outcome.status == "done" and outcome.note:
                note(f"{outcome.task}: {outcome.note}")
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


