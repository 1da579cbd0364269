"""The plan of a run: every task file checked, every (model, task) cell decided before any model loads.

``Planner.tasks`` resolves the selection into checked ``TaskSpec`` values (the run's ``--set`` values,
shorthands and named protocol applied); ``Planner.plan`` decides each cell of the (model, task) grid (or of
one ``--shard``): ``skip`` (an up-to-date result exists), ``missing`` (no data; an error unless
``--skip-missing``) or ``pending``. A cell's identity is the model (id, local weights' stamp, adapter
version), the task's config hash under the run's settings and the digest of the task's inputs; the runner
turns pending cells into ``done`` or ``unsupported`` outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from vlbench import distributed
from vlbench.errors import DatasetNotFoundError, NothingRanError, VLBenchError
from vlbench.kinds import TASK_KINDS
from vlbench.models.base import adapter_version, check_spec_options, local_source_stamp
from vlbench.spec.model_spec import ModelSpec
from vlbench.registry import did_you_mean
from vlbench.results import schema as result_schema
from vlbench.results.housekeeping import clean_stale
from vlbench.run.settings import RunSettings
from vlbench.run.shards import Shard
from vlbench.spec import named_protocols
from vlbench.spec.catalog import Catalog
from vlbench.spec.taskfile import TaskSpec


@dataclass
class TaskOutcome:
    task: str
    status: str  # "done", "skipped" (result exists), "missing" (no data, --skip-missing), "unsupported" (model cannot do it)
    main_metric: str
    metrics: dict[str, float] = field(default_factory=dict)
    n: int | None = None
    result_file: Path | None = None
    seconds: float = 0.0
    note: str = ""
    ci: dict[str, list[float | None]] = field(default_factory=dict)  # metric -> [low, high]
    replicates: list[float | None] | None = None  # the main metric's bootstrap replicates
    ties: dict[str, Any] | None = None  # the result's ties (items an exact tie decided, bounds)


@dataclass
class ModelPlan:
    """One model's cells: the outcomes decided at plan time (skip, missing) and the tasks still to run."""

    spec: ModelSpec
    source_stamp: str | None  # the stamp of its local weights (None for hub names)
    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)
    pending: list[TaskSpec] = field(default_factory=list)


class Planner:
    def __init__(self, catalog: Catalog, settings: RunSettings, log: Callable[[str], None] | None = None,
                 provided: dict[str, Any] | None = None):
        self.catalog, self.settings = catalog, settings
        self.provided = provided if provided is not None else {}  # model id -> an adapter already in memory (vlbench.evaluate)
        self.log = log or (lambda message: None)
        self._config_hashes: dict[str, str] = {}  # task name -> config hash under this run's settings
        self._located: dict[str, tuple[str | None, str | None]] = {}  # task -> (not-found message, inputs digest)

    def tasks(self, selection: Iterable[str]) -> list[TaskSpec]:
        """Resolve every selected task (validating all task files and run options) before any work."""
        items = self.catalog.select(selection)
        if not items:
            raise VLBenchError("no tasks selected; pass --tasks (see 'vlbench list tasks')")
        settings = self.settings
        if settings.dense_variant is not None:
            from vlbench.models.dense import DENSE_VARIANTS

            DENSE_VARIANTS.get(settings.dense_variant)  # unknown names fail here, with suggestions
        tasks = [self.catalog.load_task(item, settings.overrides, settings.shorthand_fields(), settings.protocol) for item in items]
        named_protocols.check_used(settings.protocol, {t.name: t.named_protocol is not None for t in tasks}, {t.name: t.source_file for t in tasks})
        names = [t.name for t in tasks]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise VLBenchError(f"two selected task files share the name(s) {sorted(duplicates)}")
        self._check_overrides_apply(tasks)
        return tasks

    def _check_overrides_apply(self, tasks: list[TaskSpec]) -> None:
        overrides, names = self.settings.overrides, [t.name for t in tasks]
        unused = [key for key in overrides if ":" not in key and not any(key in t.overrides for t in tasks)]
        if unused:
            from vlbench.spec.checking import settable_keys

            known = set().union(*(settable_keys(t.config) for t in tasks))
            raise VLBenchError(f"--set {unused[0]}: no selected task has that field{did_you_mean(unused[0], known)}")
        stray_scopes = sorted({key.split(":", 1)[0] for key in overrides if ":" in key} - set(names))
        if stray_scopes:
            raise VLBenchError(f"--set {stray_scopes[0]}:... names a task that is not in this run{did_you_mean(stray_scopes[0], names)}")

    def config_hash(self, task: TaskSpec) -> str:
        """The task's config hash under this run's settings (hashes its files: computed once per task)."""
        if task.name not in self._config_hashes:
            self._config_hashes[task.name] = task.config_hash(self.settings.identity(task))
        return self._config_hashes[task.name]

    def result_path(self, model: ModelSpec, task: TaskSpec) -> Path:
        return result_schema.result_path(self.settings.output, model.slug, task.name, self.config_hash(task))

    def plan(self, models: Sequence[ModelSpec], selection: Iterable[str], shard: Shard | None = None) -> tuple[list[TaskSpec], list[ModelPlan]]:
        """Every model's cells. A missing dataset stops the run here, before any model loads (unless
        --skip-missing); a run with nothing left to run at all raises NothingRanError."""
        model_specs = list({m.id: m for m in models}.values())
        if not model_specs:
            raise VLBenchError("no models selected; pass --model (see 'vlbench list models')")
        for model in model_specs:
            check_spec_options(self.adapter_class(model), model)
        tasks = self.tasks(selection)
        cells = shard.select((m.id, t.name) for m in model_specs for t in tasks) if shard else None
        plans = [self._model_plan(model, [t for t in tasks if cells is None or (model.id, t.name) in cells]) for model in model_specs]
        self._refuse_missing(tasks, plans)
        return tasks, plans

    def _model_plan(self, model: ModelSpec, tasks: list[TaskSpec]) -> ModelPlan:
        plan = ModelPlan(model, local_source_stamp(model))
        version = adapter_version(self.adapter_class(model))
        if distributed.current().is_main:
            for leftover in clean_stale(self.settings.output / model.slug):
                self.log(f"removed {leftover.name}, left behind by an interrupted run")
        for task in tasks:
            missing, inputs = self._locate(task)
            skipped = self._existing(model, task, plan.source_stamp, version, inputs)
            if skipped is not None:
                plan.outcomes[task.name] = skipped
            elif missing is not None:
                plan.outcomes[task.name] = TaskOutcome(task.name, "missing", task.main_metric, note="dataset not found")
            else:
                plan.pending.append(task)
        return plan

    def adapter_class(self, model: ModelSpec) -> type:
        """The class of the model's adapter: the in-memory adapter's own, else the registered one."""
        return type(self.provided[model.id]) if model.id in self.provided else self.catalog.adapter_class(model.adapter)

    def _existing(self, model: ModelSpec, task: TaskSpec, stamp: str | None, version: str, inputs: str | None) -> TaskOutcome | None:
        """The "skipped" outcome of an up-to-date result of this cell, or None."""
        path = self.result_path(model, task)
        previous = None if self.settings.overwrite else result_schema.read_quietly(path)
        if (previous is None or previous.model.id != model.id or previous.model.source_stamp != stamp
                or previous.model.fingerprint.get("adapter_version") != version or previous.task.config_hash != self.config_hash(task)
                or (inputs is not None and previous.task.inputs.get("digest") != inputs)):
            return None
        unchecked = " (its data was not found, so its inputs were not checked)" if inputs is None else ""
        return TaskOutcome(task.name, "skipped", previous.main_metric, previous.metrics, previous.n, path,
                           note=f"result exists{unchecked} (use --overwrite to recompute)", ci=previous.ci,
                           replicates=previous.bootstrap.main_replicates if previous.bootstrap else None, ties=previous.ties)

    def _locate(self, task: TaskSpec) -> tuple[str | None, str | None]:
        """(None, digest of the task's inputs) when its data is found; (the not-found message, None) else."""
        if task.name not in self._located:
            kind = TASK_KINDS.get(task.kind)()
            try:
                found = kind.check_data(task, self.settings.data_root, self.settings.allow_hub)
                # a mirror is downloaded when the task runs: nothing to identify yet
                self._located[task.name] = (None, None if found.mirror else kind.inputs(task, found)["digest"])
            except DatasetNotFoundError as exc:
                self._located[task.name] = (str(exc), None)
        return self._located[task.name]

    def _refuse_missing(self, tasks: list[TaskSpec], plans: list[ModelPlan]) -> None:
        missing = {t: self._located[t][0] for p in plans for t, o in p.outcomes.items() if o.status == "missing"}
        if missing and not self.settings.skip_missing:
            more = f" (and {len(missing) - 1} more task(s) without data; --skip-missing runs the rest)" if len(missing) > 1 else ""
            raise DatasetNotFoundError(f"{next(iter(missing.values()))}{more}")
        statuses = [o.status for p in plans for o in p.outcomes.values()]
        if not any(p.pending for p in plans) and statuses and all(s == "missing" for s in statuses):
            raise NothingRanError(
                f"nothing ran: none of the {len(tasks)} selected task(s) has its data under {self.settings.data_root} "
                "(see 'vlbench list tasks'; set --data-root or $VLBENCH_DATA_ROOT)",
                [(p.spec, [p.outcomes[t.name] for t in tasks if t.name in p.outcomes]) for p in plans],
            )
