"""``vlbench.Evaluator``: tasks prepared once, evaluated on a model as often as a training loop asks.

Built once: the task files are checked, their data located and read (annotations, class names, captions),
and their images decoded and held in memory up to ``memory_mb`` (``vlbench.api.held_images``); the first
call keeps the model's transformed uint8 crops up to ``crops_mb`` (``vlbench.encoding.pixel_memo``), so
later calls with the same transform neither decode nor resize. Each call
``evaluator(model, step=...)`` runs the tasks on the model as it is now through the ordinary runner (the
same kinds, metrics, intervals and per-sample records as ``vlbench run``) and returns
``{"task/metric": value}``; the typed results of the last call are ``evaluator.results``. Images are not
read again; texts are encoded again, as their embeddings change with the weights. The embedding cache is
not used (the weights change between calls), and in-memory models are not hashed unless asked
(``hash_weights=True``), since no result is reused. Without ``output`` the result files of a call are
removed once read back. Inside a data-parallel job (a process group already set up, as DDP and
Lightning do) each rank encodes its share of every request, rank 0 scores and writes, and every rank
gets the metrics; ``results`` and the trackers are rank 0's. ``log`` names experiment trackers (``vlbench.run.tracking``: ``"wandb"``,
``"tensorboard:DIR"``) opened once as one run called ``run_name``; each call logs its metrics at ``step``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from vlbench import distributed
from vlbench.api.evaluate import eval_mode, run_settings, task_result
from vlbench.api.held_images import HeldStats, hold
from vlbench.api.results import EvaluationResults
from vlbench.encoding.pixel_memo import PixelMemo


class Evaluator:
    """Tasks prepared once and evaluated on a model at each call (see the module's description).

    ``tasks``, ``data_root``, ``limit``, ``settings`` (``--set``), ``precision``, ``batch_size``,
    ``num_workers``, ``bootstrap_replicates`` / ``bootstrap_seed``, ``language``, ``hf_hub``, ``tasks_dir``
    and ``registry`` are ``vlbench run``'s options; ``output``: a results folder to keep each call's
    result files in (default: none kept); ``memory_mb``: the budget for decoded images held from the
    start, ``crops_mb``: for the model's transformed crops kept from the first call; ``log``: experiment
    trackers (``"tensorboard[:DIR]"``, ``"wandb[:PROJECT]"`` or tracker objects), one run named
    ``run_name``; ``on_message``: a callable for the runner's progress lines.
    """

    def __init__(
        self,
        tasks: str | Sequence[str] | None = None,
        *,
        data_root: str | Path | None = None,
        limit: int | None = None,
        settings: Mapping[str, Any] | None = None,
        output: str | Path | None = None,
        precision: str = "fp32",
        batch_size: int = 64,
        num_workers: int | None = None,
        bootstrap_replicates: int = 1000,
        bootstrap_seed: int = 0,
        language: str | None = None,
        hf_hub: bool = False,
        memory_mb: float = 4096,
        crops_mb: float = 4096,
        tasks_dir: Sequence[str | Path] | None = None,
        registry: Sequence[str | Path] | None = None,
        log: str | Sequence[Any] | None = None,
        run_name: str = "vlbench-evaluator",
        on_message: Callable[[str], None] | None = None,
    ):
        from vlbench.kinds import TASK_KINDS
        from vlbench.kinds.base import RunContext
        from vlbench.run.runner import Runner
        from vlbench.run.tracking import TrackedRun, check_trackers, open_trackers, run_config
        from vlbench.spec.catalog import Catalog

        check_trackers(log)
        self.world = distributed.adopt()
        catalog = Catalog.load([Path(p) for p in tasks_dir or []], [Path(p) for p in registry or []])
        items = ([tasks] if isinstance(tasks, str) else list(tasks)) if tasks else [str(catalog.defaults.get("tasks", ""))]
        self.selection = [part.strip() for item in items for part in item.split(",") if part.strip()]
        self.output = Path(output).expanduser() if output is not None else None
        self._folder = self.output or Path(tempfile.mkdtemp(prefix="vlbench-evaluator-"))
        self.settings = run_settings(self._folder, data_root=data_root, limit=limit, settings=settings, language=language, cache_dir=None,
                                     no_cache=True, precision=precision, batch_size=batch_size, num_workers=num_workers, allow_hub=hf_hub,
                                     bootstrap_replicates=bootstrap_replicates, bootstrap_seed=bootstrap_seed)
        self._provided: dict[str, Any] = {}
        self._data: dict[str, tuple[Any, Any]] = {}
        self.pixels = PixelMemo(int(crops_mb * 2**20))
        self.runner = Runner(catalog, self.settings, log=on_message, provided=self._provided, preloaded=self._data, pixel_memo=self.pixels)
        self.tasks = self.runner.plan_tasks(self.selection)
        self.held = HeldStats()
        budget = int(memory_mb * 2**20)
        for task in self.tasks:
            kind = TASK_KINDS.get(task.kind)()
            data, located = kind.load(task, RunContext(self.settings.data_root, None, self.settings.limit, self.settings.allow_hub))  # type: ignore[arg-type]
            data, stats = hold(data, budget - self.held.bytes, max(1, self.settings.workers()))
            self.held = HeldStats(self.held.held + stats.held, self.held.left + stats.left, self.held.bytes + stats.bytes)
            self._data[task.name] = (data, located)
        self.results: EvaluationResults | None = None
        self.trackers = open_trackers(log, TrackedRun(run_name, self.output or Path.cwd(), run_config(run_name, self.settings))) \
            if self.world.is_main else []

    def __call__(self, model: Any, *, preprocess: Any = None, tokenizer: Any = None, processor: Any = None, step: int | None = None,
                 hash_weights: bool = False) -> dict[str, float | None]:
        """The tasks' metrics on ``model`` as it is now (``{"task/metric": value}``); ``step`` is kept with
        the typed results (``self.results``, ``self.step``)."""
        from vlbench.models.in_memory import adapt
        from vlbench.run.tracking import log_all

        adapter = adapt(model, preprocess, tokenizer, processor, self.settings.precision, hash_weights)
        self._provided.clear()
        self._provided[adapter.spec.id] = adapter
        with eval_mode(getattr(adapter, "model", None)):
            runs = self.runner.run_many([adapter.spec], self.selection)
        self.step = step
        if not self.world.is_main:  # this rank encoded its share; rank 0 scored it
            self.results = None
            return distributed.broadcast(None)
        results = [task_result(spec.id, outcome, keep_samples=self.output is None) for spec, outcomes in runs for outcome in outcomes]
        if self.output is None:
            shutil.rmtree(self._folder / adapter.spec.slug, ignore_errors=True)
        self.results = EvaluationResults(results, self.output)
        log_all(self.trackers, [r.result for r in results if r.result is not None], step)
        return distributed.broadcast(self.results.metrics())

    def close(self) -> None:
        """Drop the held images and the temporary results folder; finish the trackers' runs."""
        from vlbench.run.tracking import close_all

        close_all(self.trackers)
        self.trackers = []
        self._data.clear()
        self.pixels.crops.clear()
        if self.output is None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
