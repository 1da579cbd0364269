"""``vlbench.evaluate``: ``vlbench run`` as a function, on a spec string or a model already in memory.

The keywords are the run command's options (``settings`` is ``--set``: dotted task fields -> values);
they become one ``vlbench.run.settings.RunSettings``, and the run goes through the same planner, runner
and result writer, so the numbers, intervals and per-sample records are those of ``vlbench run``. With
``output=None`` the results are written to a temporary folder, read back (samples included) and the
folder removed: nothing stays on disk but the embedding cache. An in-memory model is used where its
weights are (not moved), switched to eval mode for the call and put back in the mode it was in.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from vlbench import paths
from vlbench.api.results import EvaluationResults, TaskResult
from vlbench.errors import VLBenchError
from vlbench.results import schema as result_schema
from vlbench.run.settings import RunSettings


def run_settings(output: Path, *, data_root: str | Path | None, limit: int | None, settings: Mapping[str, Any] | None,
                 language: str | None, cache_dir: str | Path | None, no_cache: bool, **options: Any) -> RunSettings:
    """The RunSettings of a call, with the command line's defaults (data root and cache from the environment)."""
    from vlbench.encoding.cache import default_cache_dir

    overrides = {**({"language": language} if language else {}), **dict(settings or {})}
    cache = None if no_cache else Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = Path(data_root).expanduser() if data_root is not None else paths.default_data_root()
    return RunSettings(data_root=root, output=output, limit=limit, overrides=overrides, cache_dir=cache, **options)


@contextlib.contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """An in-memory torch module (an adapter's ``model``) in eval mode for the call, in its own mode again afterwards."""
    training = getattr(module, "training", None)
    if training:
        module.eval()
    try:
        yield
    finally:
        if training:
            module.train(True)


@contextlib.contextmanager
def results_folder(output: str | Path | None) -> Iterator[Path]:
    if output is not None:
        yield Path(output).expanduser()
        return
    folder = Path(tempfile.mkdtemp(prefix="vlbench-results-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def evaluate(
    model: Any,
    tasks: str | Sequence[str] | None = None,
    *,
    preprocess: Any = None,
    tokenizer: Any = None,
    processor: Any = None,
    data_root: str | Path | None = None,
    output: str | Path | None = None,
    limit: int | None = None,
    settings: Mapping[str, Any] | None = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 64,
    num_workers: int | None = None,
    overwrite: bool = False,
    hf_hub: bool = False,
    skip_missing: bool = False,
    seed: int | None = None,
    dense_variant: str | None = None,
    protocol: str | None = None,
    decode: str = "pil",
    bootstrap_replicates: int = 1000,
    bootstrap_seed: int = 0,
    language: str | None = None,
    cache_dir: str | Path | None = None,
    no_cache: bool = False,
    no_pixel_cache: bool = False,
    full_text_padding: bool = False,
    strict: bool = False,
    tasks_dir: Sequence[str | Path] | None = None,
    registry: Sequence[str | Path] | None = None,
    hash_weights: bool = True,
    log: str | Sequence[Any] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> EvaluationResults:
    """Evaluate ``model`` on ``tasks`` (names, suites, globs or task files; default: the shapes suite).

    ``model``: a spec string (``"openclip:ViT-B-32@openai"``, a comma list or a collection), a
    ``ModelAdapter``, an open_clip model with ``preprocess`` and ``tokenizer``, a transformers CLIP /
    SigLIP model with its ``processor``, or any object with ``encode_image(pixels)`` /
    ``encode_text(texts)`` and ``preprocess``. ``hash_weights=False`` skips hashing an in-memory model's
    weights (see ``vlbench.models.in_memory``). ``log``: experiment trackers as ``--log`` names them
    (``"wandb"``, ``"tensorboard:DIR"``; local files under ``output``, else the working directory) or
    tracker objects (``vlbench.run.tracking``); ``on_message``: a callable for the runner's progress
    lines. The other keywords are ``vlbench run``'s options.
    """
    from vlbench.run.runner import Runner
    from vlbench.run.tracking import check_trackers, log_run
    from vlbench.spec.catalog import Catalog

    check_trackers(log)
    catalog = Catalog.load([Path(p) for p in tasks_dir or []], [Path(p) for p in registry or []])
    selection = ([tasks] if isinstance(tasks, str) else list(tasks)) if tasks else [str(catalog.defaults.get("tasks", ""))]
    selection = [part.strip() for item in selection for part in item.split(",") if part.strip()]
    specs, provided = resolve_models(catalog, model, preprocess, tokenizer, processor, precision, hash_weights)
    with results_folder(output) as folder, contextlib.ExitStack() as modes:
        for adapter in provided.values():
            modes.enter_context(eval_mode(getattr(adapter, "model", None)))
        run = run_settings(folder, data_root=data_root, limit=limit, settings=settings, language=language, cache_dir=cache_dir,
                           no_cache=no_cache, device=device, precision=precision, batch_size=batch_size, num_workers=num_workers,
                           overwrite=overwrite, allow_hub=hf_hub, skip_missing=skip_missing, seed=seed, dense_variant=dense_variant,
                           protocol=protocol, decode=decode, bootstrap_replicates=bootstrap_replicates, bootstrap_seed=bootstrap_seed,
                           full_text_padding=full_text_padding, strict=strict, pixel_cache=not no_pixel_cache)
        runs = Runner(catalog, run, log=on_message, provided=provided).run_many(specs, selection)
        results = [task_result(spec.id, outcome, keep_samples=output is None) for spec, outcomes in runs for outcome in outcomes]
        log_run(log, Path(output).expanduser() if output is not None else Path.cwd(), run,
                [(spec.id, [r.result for r in results if r.model == spec.id and r.result]) for spec, _ in runs])
    return EvaluationResults(results, None if output is None else Path(output).expanduser())


def resolve_models(catalog: Any, model: Any, preprocess: Any, tokenizer: Any, processor: Any, precision: str,
                   hash_weights: bool) -> tuple[list[Any], dict[str, Any]]:
    """(the model specs to run, the adapters already in memory by id): a spec string resolved by the catalog,
    or an in-memory model wrapped by ``vlbench.models.in_memory.adapt``."""
    if isinstance(model, str):
        from vlbench.models.collections import split_specs

        return catalog.resolve_models(split_specs([model])), {}
    from vlbench.models.in_memory import adapt

    adapter = adapt(model, preprocess, tokenizer, processor, precision, hash_weights)
    return [adapter.spec], {adapter.spec.id: adapter}


def task_result(model_id: str, outcome: Any, keep_samples: bool) -> TaskResult:
    """A task's outcome with its result read back (and its samples, when the folder is about to go)."""
    result = result_schema.read(outcome.result_file) if outcome.result_file is not None else None
    if outcome.status in ("done", "skipped") and result is None:
        raise VLBenchError(f"{outcome.result_file}: the result just written cannot be read back")
    entry = TaskResult(model_id, outcome.task, outcome.status, result, outcome.result_file, outcome.note)
    if keep_samples and result is not None:
        entry.samples  # noqa: B018 - read now: the temporary folder is removed after the call
        entry.path = None
    return entry
