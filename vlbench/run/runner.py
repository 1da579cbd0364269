"""The loop behind ``vlbench run``: plan every cell, load each model once, run its pending tasks, write.

``Runner.run_many`` asks the ``Planner`` for the cells, then per model with pending tasks loads it
(``ModelLoader``), sets the unsupported tasks aside and runs the others; ``run_task`` loads a task's data,
lets its kind decide, predict, score, count ties and resample, and hands everything to the ``ResultWriter``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from vlbench import distributed
from vlbench.encoding.encoder import Encoder, Progress, SilentProgress
from vlbench.encoding.sharded import encoder_class
from vlbench.encoding.video_pool import describe_videos
from vlbench.errors import CapabilityError, StaleModelRecordError, VLBenchError
from vlbench.kinds import TASK_KINDS
from vlbench.kinds.base import RunContext, TaskKind
from vlbench.spec.model_spec import ModelSpec
from vlbench.results import intervals
from vlbench.results.housekeeping import check_writable, discard_result
from vlbench.run.loading import ModelLoader
from vlbench.run.planner import ModelPlan, Planner, TaskOutcome
from vlbench.run.settings import Env, RunSettings
from vlbench.run.shards import Shard
from vlbench.run.writer import ResultWriter, build_result
from vlbench.spec.catalog import Catalog
from vlbench.spec.taskfile import TaskSpec


class Runner:
    """``provided``: model id -> an adapter already in memory (``vlbench.evaluate``), run instead of loading one;
    ``preloaded``: task name -> (its data, where it was found), read once by the caller (``vlbench.Evaluator``),
    which also keeps the transformed crops between runs in ``pixel_memo``."""

    def __init__(self, catalog: Catalog, settings: RunSettings, progress: Progress | None = None, log: Callable[[str], None] | None = None,
                 provided: dict[str, Any] | None = None, preloaded: dict[str, tuple[Any, Any]] | None = None, pixel_memo: Any = None):
        self.preloaded = preloaded if preloaded is not None else {}
        self.pixel_memo = pixel_memo  # transformed crops kept across runs (vlbench.encoding.pixel_memo)
        self.catalog, self.settings = catalog, settings
        self.progress = progress or SilentProgress()
        self.log = log or (lambda message: None)
        self.planner = Planner(catalog, settings, self.log, provided)
        self.models = ModelLoader(catalog, settings, self.log, provided)

    def plan_tasks(self, selection: Iterable[str]) -> list[TaskSpec]:
        """Resolve every task (validating all task files and run options) before any work."""
        return self.planner.tasks(selection)

    def config_hash(self, task: TaskSpec) -> str:
        return self.planner.config_hash(task)

    def run(self, model_text: str, selection: Iterable[str]) -> tuple[ModelSpec, list[TaskOutcome]]:
        """Run every selected task that has no up-to-date result; outcomes in selection order."""
        return self.run_many([self.catalog.resolve_model(model_text)], selection)[0]

    def run_many(self, models: Sequence[ModelSpec], selection: Iterable[str], shard: Shard | None = None) -> list[tuple[ModelSpec, list[TaskOutcome]]]:
        """Run models one after another, each loaded once, on the tasks without up-to-date results.

        Everything is planned first (``Planner.plan``), so a missing dataset stops the run before any model
        loads. ``shard`` keeps one block of the (model, task) grid; the outcomes of each model list the
        tasks of its shard, in selection order.
        """
        tasks, plans = self.planner.plan(models, selection, shard)
        distributed.barrier()  # every rank planned before any result is written
        for plan in plans:
            if plan.pending:
                self.run_model(plan)
        return [(plan.spec, [plan.outcomes[t.name] for t in tasks if t.name in plan.outcomes]) for plan in plans]

    def run_model(self, plan: ModelPlan) -> None:
        """Load one model and run its pending tasks; the model is released afterwards."""
        if distributed.current().is_main:
            check_writable(self.settings.output / plan.spec.slug)  # before the (possibly long) model load
        model = self.models.model(plan.spec)
        pending = self._supported(model, plan)
        fingerprint = {**model.fingerprint(), "source_stamp": plan.source_stamp}  # adapter_version included
        decode = self.settings.decode
        if decode == "gpu" and not model.decodes_on_gpu:
            self.log(f"--decode gpu: the image transform of {plan.spec.id} is not torchvision Resize/CenterCrop/Normalize; its images take the PIL path")
            decode = "pil"
        encoder = encoder_class()(model, decode=decode, batch_size=self.settings.batch_size, num_workers=self.settings.workers(),
                                  progress=self.progress, cache=self.models.cache(model, fingerprint), pixel_memo=self.pixel_memo,
                                  pixel_cache=self.pixel_store())
        env = Env.capture(self.settings, model, decode, encoder.num_workers)
        written: list[Path] = []
        try:
            for task in pending:
                plan.outcomes[task.name] = self.run_task(task, model, plan.spec, fingerprint, encoder, env)
                if plan.outcomes[task.name].result_file is not None:
                    written.append(plan.outcomes[task.name].result_file)  # type: ignore[arg-type]
        except StaleModelRecordError as exc:
            # those results came from embeddings cached under the identity that proved stale
            for path in written:
                discard_result(path)
            removed = (f" The result(s) this run had written from the cache were removed (and any earlier version they "
                       f"replaced): {', '.join(p.parent.name for p in written)}; run again to recompute them.") if written else ""
            raise StaleModelRecordError(f"{exc}.{removed}") from None
        finally:
            if encoder.cache is not None:
                encoder.cache.close()
            if encoder.pixel_cache is not None:
                encoder.pixel_cache.close()

    def pixel_store(self) -> Any:
        """The persistent pixel cache (``vlbench.encoding.pixel_cache``) in the embedding cache's folder, or None (off)."""
        if self.settings.cache_dir is None or not self.settings.pixel_cache or self.pixel_memo is not None:
            return None
        from vlbench.encoding.pixel_cache import PixelStore

        return PixelStore(self.settings.cache_dir, budget_bytes=int(self.settings.pixel_cache_gb * 1e9))

    def _supported(self, model: Any, plan: ModelPlan) -> list[TaskSpec]:
        """The pending tasks the model can do; the others become "unsupported" (an error with --strict)."""
        kept = []
        for task in plan.pending:
            reason = TASK_KINDS.get(task.kind)().unsupported_reason(model)
            if reason is None:
                kept.append(task)
            elif self.settings.strict:
                raise CapabilityError(f"task '{task.name}': {reason}")
            else:
                plan.outcomes[task.name] = TaskOutcome(task.name, "unsupported", task.main_metric, note=reason)
        return kept

    def run_task(self, task: TaskSpec, model: Any, model_spec: ModelSpec, fingerprint: dict[str, Any], encoder: Encoder, env: Env) -> TaskOutcome:
        started = time.perf_counter()
        kind: TaskKind = TASK_KINDS.get(task.kind)()
        encoder.take_stats()  # this task's statistics start now
        world = distributed.current()
        ctx = RunContext(data_root=self.settings.data_root, encoder=encoder, limit=self.settings.limit, allow_hub=self.settings.allow_hub,
                         item_shard=(world.rank, world.world_size))
        ctx.models = {text: self.models.extra(text, encoder)[:2] for text in kind.extra_models(task)}
        data, located = self.preloaded[task.name] if task.name in self.preloaded else kind.load(task, ctx)
        decisions = kind.decide(model, data, task)
        video = describe_videos(getattr(data, "images", None))
        if video:
            decisions.protocol["video"] = video
        if decisions.left_out:
            decisions.protocol["left_out"] = decisions.left_out
        if ctx.models:
            members = {text: self.models.extra(text, encoder) for text in ctx.models}
            decisions.protocol["models"] = {model.spec.id: {"logit_scale": model.logit_scale, "fingerprint": fingerprint}} | {
                m.spec.id: {"logit_scale": m.logit_scale, "fingerprint": fp} for m, _, fp in members.values()}
        loaded = time.perf_counter()
        predictions = kind.predict(model, data, task, ctx)
        if world.active and kind.shards_items:
            predictions = iter(distributed.gather_records(list(predictions)))
        if not world.is_main:  # the other ranks encode their share and write nothing
            for _ in predictions:
                pass
            return TaskOutcome(task.name, "done", task.main_metric, seconds=time.perf_counter() - started)
        path = self.planner.result_path(model_spec, task)
        writer = ResultWriter(path)
        try:
            records = writer.records(predictions)
            if not records:
                raise VLBenchError(f"task '{task.name}' has no items to evaluate; check its dataset (and --limit); no result written")
            predicted = time.perf_counter()
            metrics, ties = kind.score(records, task), kind.ties(records, task)
            scored = time.perf_counter()
            ci, resampled = intervals.confidence(task.kind, records, task, list(metrics), task.main_metric, self.settings.bootstrap_replicates,
                                                 self.settings.bootstrap_seed) if self.settings.bootstrap_replicates > 0 else ({}, None)
            artifacts = writer.artifacts(decisions.artifacts)
        except BaseException:
            writer.discard()
            raise
        samples = writer.publish_samples()
        n = kind.count(records)
        timing = {"load_s": round(loaded - started, 3), "predict_s": round(predicted - loaded, 3), "score_s": round(scored - predicted, 3),
                  "bootstrap_s": round(time.perf_counter() - scored, 3), "total_s": round(time.perf_counter() - started, 3),
                  **encoder.take_stats().timing()}
        writer.publish(build_result(
            model=model_spec, fingerprint=fingerprint, task=task, config_hash=self.planner.config_hash(task),
            run_settings=self.settings.identity(task), located=located, inputs=kind.inputs(task, located), n=n, decisions=decisions,
            metrics=metrics, samples=samples, artifacts=artifacts, env=env.for_task(decisions.seed), timing=timing, ci=ci,
            bootstrap=resampled, ties=ties))
        return TaskOutcome(task.name, "done", task.main_metric, metrics, n, path, time.perf_counter() - started,
                           ci=ci, replicates=resampled.main_replicates if resampled else None, ties=ties, note="; ".join(filter(None, [left_out_note(decisions.left_out), *decisions.notes])))


def left_out_note(left_out: dict[str, Any]) -> str:
    """One line on the items a task left out ("3 record(s) left out: image file missing (missing_images: skip), e.g. 17")."""
    reasons = {"missing_images": "image file missing (missing_images: skip)", "missing_videos": "video file missing (missing_videos: skip)"}
    return "; ".join(f"{entry['records']} record(s) left out: {reasons.get(reason, reason)}, e.g. {', '.join(map(str, entry['examples'][:3]))}"
                     for reason, entry in left_out.items())
