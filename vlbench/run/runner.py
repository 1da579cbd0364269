"""The loop behind ``vlbench run``: resolve, skip what is done, load the model once, run, write."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from vlbench import bootstrap, distributed
from vlbench.results import intervals

from vlbench.spec import named_protocols

from vlbench.results import schema as result_schema
from vlbench.spec.catalog import Catalog
from vlbench.encoding.encoder import Encoder, Progress, SilentProgress
from vlbench.errors import CapabilityError, DatasetNotFoundError, ModelLoadError, NothingRanError, StaleModelRecordError, VLBenchError
from vlbench.results.housekeeping import check_writable, clean_stale, discard_result, writing
from vlbench.kinds import TASK_KINDS
from vlbench.kinds.base import RunContext, TaskKind
from vlbench.models import ModelAdapter, ModelSpec
from vlbench.models.base import adapter_version, check_spec_options, local_source_stamp
from vlbench.registry import did_you_mean
from vlbench.results.schema import artifact_path, result_path, samples_path
from vlbench.results.io import SampleWriter, environment, new_run_id, utc_now, write_json, write_json_gz
from vlbench.spec.taskfile import TaskSpec
from vlbench.run.shards import Shard


def default_num_workers() -> int:
    """CPUs - 1, at most 8, shared among the ranks of a data-parallel run on one node."""
    return min(8, max(0, (os.cpu_count() or 1) // distributed.current().world_size - 1))


@dataclass
class RunOptions:
    data_root: Path
    output: Path
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 64
    num_workers: int | None = None
    limit: int | None = None
    overwrite: bool = False
    allow_hub: bool = False
    skip_missing: bool = False
    seed: int | None = None  # None: each task's own default seed
    dense_variant: str | None = None  # None: each segmentation task's own default
    bootstrap_replicates: int = bootstrap.DEFAULT_REPLICATES  # 0: no confidence intervals
    bootstrap_seed: int = bootstrap.DEFAULT_SEED
    decode: str = "pil"  # "gpu": JPEGs decoded by torchvision.io with tensor transforms (vlbench.encoding.gpu_decode)
    cache_dir: Path | None = None  # the persistent embedding cache; None: off
    full_text_padding: bool = False  # pad texts to the context length even where trimming is exact
    strict: bool = False  # a task the model cannot do is an error, not an "unsupported" row
    protocol: str | None = None  # a named protocol (vlbench.spec.named_protocols) for the tasks it covers
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def shorthands(self) -> dict[str, Any]:
        """--seed and --dense-variant: set protocol.seed / protocol.dense_variant of the tasks that have them."""
        return {"seed": self.seed, "dense_variant": self.dense_variant}

    def run_settings(self, task: TaskSpec | None = None) -> dict[str, Any]:
        """Settings that change a task's numbers, and so its config hash (shorthands change its config);
        ``protocol`` for a task the run's --protocol covers, so that a leaderboard tells its results from
        the task's own protocol (``--settings protocol=NAME`` picks them)."""
        settings: dict[str, Any] = {"limit": self.limit}
        if self.precision != "fp32":
            settings["precision"] = self.precision
        if self.decode != "pil":
            settings["decode"] = self.decode
        if task is not None and task.named_protocol is not None:
            settings["protocol"] = task.named_protocol
        return settings


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VLBenchError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto")
    if not name.startswith(("cpu", "cuda", "mps")):
        raise VLBenchError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


class Runner:
    def __init__(self, catalog: Catalog, options: RunOptions, progress: Progress | None = None, log: Any = None):
        self.catalog = catalog
        self.options = options
        self.progress = progress or SilentProgress()
        self.log = log or (lambda message: None)
        self._extra: dict[str, tuple[ModelAdapter, Encoder]] = {}  # models tasks asked for, loaded once per run
        self._extra_fingerprints: dict[str, dict[str, Any]] = {}  # their fingerprints (hashing weights is not cheap)
        self._config_hashes: dict[str, str] = {}  # task name -> config hash under this run's settings

    def plan(self, model_text: str, selection: Iterable[str]) -> tuple[ModelSpec, list[TaskSpec]]:
        """Resolve the model spec and every task (validating all task files) before any work."""
        return self.catalog.resolve_model(model_text), self.plan_tasks(selection)

    def plan_tasks(self, selection: Iterable[str]) -> list[TaskSpec]:
        """Resolve every task (validating all task files and run options) before any work."""
        items = self.catalog.select(selection)
        if not items:
            raise VLBenchError("no tasks selected; pass --tasks (see 'vlbench list tasks')")
        if self.options.dense_variant is not None:
            from vlbench.models.dense import DENSE_VARIANTS

            DENSE_VARIANTS.get(self.options.dense_variant)  # unknown names fail here, with suggestions
        tasks = [self.catalog.load_task(item, self.options.overrides, self.options.shorthands(), self.options.protocol) for item in items]
        named_protocols.check_used(self.options.protocol, {t.name: t.named_protocol is not None for t in tasks},
                                   {t.name: t.source_file for t in tasks})
        names = [t.name for t in tasks]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise VLBenchError(f"two selected task files share the name(s) {sorted(duplicates)}")
        unused = [key for key in self.options.overrides if ":" not in key and not any(key in t.overrides for t in tasks)]
        if unused:
            from vlbench.spec.checking import settable_keys

            known = set().union(*(settable_keys(t.config) for t in tasks))
            raise VLBenchError(f"--set {unused[0]}: no selected task has that field{did_you_mean(unused[0], known)}")
        stray_scopes = sorted({key.split(":", 1)[0] for key in self.options.overrides if ":" in key} - set(names))
        if stray_scopes:
            scope = stray_scopes[0]
            raise VLBenchError(f"--set {scope}:... names a task that is not in this run{did_you_mean(scope, names)}")
        return tasks

    def run(self, model_text: str, selection: Iterable[str]) -> tuple[ModelSpec, list[TaskOutcome]]:
        """Run every selected task that has no up-to-date result; outcomes in selection order."""
        return self.run_many([self.catalog.resolve_model(model_text)], selection)[0]

    def run_many(
        self, models: Sequence[ModelSpec], selection: Iterable[str], shard: Shard | None = None
    ) -> list[tuple[ModelSpec, list[TaskOutcome]]]:
        """Run models one after another, each loaded once, on the tasks without up-to-date results.

        Everything is planned first: every model spec and task file is resolved and the data of
        every task some model still needs is located once, so a missing dataset stops the run
        before any model loads. ``shard`` keeps one block of the (model, task) grid; the outcomes
        of each model list the tasks of its shard, in selection order.
        """
        model_specs = list({m.id: m for m in models}.values())
        if not model_specs:
            raise VLBenchError("no models selected; pass --model (see 'vlbench list models')")
        for model_spec in model_specs:
            check_spec_options(self.catalog.adapter_class(model_spec.adapter), model_spec)
        tasks = self.plan_tasks(selection)
        cells = shard.select((m.id, t.name) for m in model_specs for t in tasks) if shard else None
        kinds = {t.name: TASK_KINDS.get(t.kind)() for t in tasks}
        located: dict[str, str | None] = {}  # task -> None (found) or the not-found message
        inputs: dict[str, str | None] = {}  # task -> the digest of what decides its items (None: data not found)
        missing: dict[str, str] = {}  # tasks some model still needs whose data is not found -> the message
        plans: list[tuple[ModelSpec, str | None, dict[str, TaskOutcome], list[TaskSpec]]] = []
        for model_spec in model_specs:
            source_stamp = local_source_stamp(model_spec)
            version = adapter_version(self.catalog.adapter_class(model_spec.adapter))
            if distributed.current().is_main:
                for leftover in clean_stale(self.options.output / model_spec.slug):
                    self.log(f"removed {leftover.name}, left behind by an interrupted run")
            outcomes: dict[str, TaskOutcome] = {}
            pending: list[TaskSpec] = []
            for task in tasks:
                if cells is not None and (model_spec.id, task.name) not in cells:
                    continue
                if task.name not in located:
                    located[task.name], inputs[task.name] = self._locate(task, kinds[task.name])
                config_hash = self.config_hash(task)
                path = result_path(self.options.output, model_spec.slug, task.name, config_hash)
                previous = None if self.options.overwrite else result_schema.read_quietly(path)
                if (
                    previous is not None
                    and previous.model.id == model_spec.id
                    and previous.model.source_stamp == source_stamp
                    and previous.model.fingerprint.get("adapter_version") == version
                    and previous.task.config_hash == config_hash
                    and (inputs[task.name] is None or previous.task.inputs.get("digest") == inputs[task.name])
                ):
                    unchecked = " (its data was not found, so its inputs were not checked)" if inputs[task.name] is None else ""
                    outcomes[task.name] = TaskOutcome(
                        task.name, "skipped", previous.main_metric, previous.metrics, previous.n, path,
                        note=f"result exists{unchecked} (use --overwrite to recompute)", ci=previous.ci,
                        replicates=previous.bootstrap.main_replicates if previous.bootstrap else None, ties=previous.ties,
                    )
                    continue
                if located[task.name] is not None:
                    outcomes[task.name] = TaskOutcome(task.name, "missing", task.main_metric, note="dataset not found")
                    missing[task.name] = located[task.name]
                    continue
                pending.append(task)
            plans.append((model_spec, source_stamp, outcomes, pending))
        if missing and not self.options.skip_missing:
            more = f" (and {len(missing) - 1} more task(s) without data; --skip-missing runs the rest)" if len(missing) > 1 else ""
            raise DatasetNotFoundError(next(iter(missing.values())) + more)
        statuses = [o.status for *_, outcomes, _ in plans for o in outcomes.values()]
        if not any(pending for *_, pending in plans) and statuses and all(s == "missing" for s in statuses):
            raise NothingRanError(
                f"nothing ran: none of the {len(tasks)} selected task(s) has its data under {self.options.data_root} "
                "(see 'vlbench list tasks'; set --data-root or $VLBENCH_DATA_ROOT)",
                [(spec, [outcomes[t.name] for t in tasks if t.name in outcomes]) for spec, _, outcomes, _ in plans],
            )
        distributed.barrier()  # every rank planned before any result is written
        results = []
        for model_spec, source_stamp, outcomes, pending in plans:
            if pending:
                self.run_model(model_spec, source_stamp, [(t, kinds[t.name]) for t in pending], outcomes)
            results.append((model_spec, [outcomes[t.name] for t in tasks if t.name in outcomes]))
        return results

    def run_model(
        self, model_spec: ModelSpec, source_stamp: str | None, pending: list[tuple[TaskSpec, TaskKind]], outcomes: dict[str, TaskOutcome]
    ) -> None:
        """Load one model and run its pending tasks; the model is released afterwards."""
        if distributed.current().is_main:
            check_writable(self.options.output / model_spec.slug)  # before the (possibly long) model load
        model = self.model_for(model_spec)
        pending = self._supported(model, pending, outcomes)
        fingerprint = {**model.fingerprint(), "source_stamp": source_stamp}  # adapter_version included
        decode = self.options.decode
        if decode == "gpu":
            if not model.decodes_on_gpu:
                self.log(f"--decode gpu: the image transform of {model_spec.id} is not torchvision Resize/CenterCrop/Normalize; its images take the PIL path")
                decode = "pil"
        encoder = distributed.encoder_class()(
            model,
            decode=decode,
            batch_size=self.options.batch_size,
            num_workers=default_num_workers() if self.options.num_workers is None else self.options.num_workers,
            progress=self.progress,
            cache=self.open_cache(model, fingerprint),
        )
        env = environment(
            device=str(model.device),
            precision=self.options.precision,
            batch_size=self.options.batch_size,
            num_workers=encoder.num_workers,
            world_size=distributed.current().world_size,
            text_padding=model.text_padding_mode,
            decode=decode,  # the path this model's images took (timing.images_decoded counts them per decoder)
            **({"decode_requested": self.options.decode} if decode != self.options.decode else {}),
        )
        written: list[Path] = []
        try:
            for task, kind in pending:
                outcomes[task.name] = self.run_task(task, kind, model, model_spec, fingerprint, encoder, env)
                if outcomes[task.name].result_file is not None:
                    written.append(outcomes[task.name].result_file)
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

    def _locate(self, task: TaskSpec, kind: TaskKind) -> tuple[str | None, str | None]:
        """(None, digest of the task's inputs) when its data is found; (the not-found message, None) else."""
        try:
            found = kind.check_data(task, self.options.data_root, self.options.allow_hub)
        except DatasetNotFoundError as exc:
            return str(exc), None
        if found.mirror:  # downloaded when the task runs: nothing to identify yet
            return None, None
        return None, kind.inputs(task, found)["digest"]

    def config_hash(self, task: TaskSpec) -> str:
        """The task's config hash under this run's settings (hashes its files: computed once per task)."""
        if task.name not in self._config_hashes:
            self._config_hashes[task.name] = task.config_hash(self.options.run_settings(task))
        return self._config_hashes[task.name]

    def model_for(self, spec: ModelSpec) -> Any:
        """The model, loaded; or, when the cache recorded its identity under the same pin, a stand-in
        that loads it only if the run needs more than cached embeddings (vlbench.models.deferred)."""
        from vlbench.models.deferred import DeferredModel, identity_pin, model_record, usable_record

        store = self.embedding_store()
        device = resolve_device(self.options.device)
        trimming = not self.options.full_text_padding

        def pin_now() -> str | None:
            if store is None or distributed.current().active:  # ranks must load together
                return None
            return identity_pin(self.catalog.adapter_class(spec.adapter), spec, device, self.options.precision, trimming)

        pin = pin_now()
        record = usable_record(store.model_record(pin)) if pin else None
        if record is not None:
            self.log(f"model {spec.id}: identity read from the embedding cache; it is loaded only if an input is not cached")
            return DeferredModel(spec, device, self.options.precision, record,
                                 build=lambda: self._loaded(spec, trimming), forget=lambda: store.forget_model_record(pin))
        model = self._loaded(spec, trimming)
        pin = pin_now()  # again: loading may have downloaded a hub model's snapshot, or completed it
        if pin and model.fingerprint().get("weights_sha256"):
            try:
                store.write_model_record(pin, model_record(model))
            except OSError:
                pass  # the cache folder is not writable: open_cache says so
        return model

    def _loaded(self, spec: ModelSpec, text_trimming: bool) -> ModelAdapter:
        model = self.load_model(spec)
        model.allow_text_trimming = text_trimming
        return model

    def embedding_store(self) -> Any:
        from vlbench.encoding.cache import EmbeddingStore

        return None if self.options.cache_dir is None else EmbeddingStore(self.options.cache_dir)

    def open_cache(self, model: ModelAdapter, fingerprint: dict[str, Any]) -> Any:
        """This model's part of the persistent embedding cache, or None (off, or no weights hash)."""
        store = self.embedding_store()
        if store is None:
            return None
        if not fingerprint.get("weights_sha256"):
            self.log(f"embedding cache not used: {fingerprint['id']} reports no weights hash to key it by")
            return None
        try:
            return store.namespace(fingerprint, model.device.type)
        except OSError as exc:
            self.log(f"embedding cache not used: cannot write {self.options.cache_dir} ({exc.strerror or exc})")
            return None

    def _supported(
        self, model: ModelAdapter, pending: list[tuple[TaskSpec, TaskKind]], outcomes: dict[str, TaskOutcome]
    ) -> list[tuple[TaskSpec, TaskKind]]:
        """The pending tasks the model can do; the others become "unsupported" (an error with --strict)."""
        kept = []
        for task, kind in pending:
            reason = kind.unsupported_reason(model)
            if reason is None:
                kept.append((task, kind))
            elif self.options.strict:
                raise CapabilityError(f"task '{task.name}': {reason}")
            else:
                outcomes[task.name] = TaskOutcome(task.name, "unsupported", task.main_metric, note=reason)
        return kept

    def extra_model(self, text: str, like: Encoder) -> tuple[ModelAdapter, Encoder]:
        """A model a task needs besides the run's (e.g. an ensemble member), with an encoder like the run's."""
        if text not in self._extra:
            model = self._loaded(self.catalog.resolve_model(text), not self.options.full_text_padding)
            self._extra[text] = (model, Encoder(model, batch_size=like.batch_size, num_workers=like.num_workers, progress=like.progress))
            self._extra_fingerprints[text] = model.fingerprint()
        return self._extra[text]

    def load_model(self, spec: ModelSpec) -> ModelAdapter:
        adapter_class = self.catalog.adapter_class(spec.adapter)
        device = resolve_device(self.options.device)
        self.log(f"loading model {spec.id} on {device}")
        world = distributed.current()
        if not world.is_main:
            distributed.barrier()  # rank 0 loads (and downloads) first
        try:
            model = adapter_class(spec, device=device, precision=self.options.precision)
        except VLBenchError:
            raise
        except Exception as exc:  # an adapter's own bug or an incomplete adapter class
            where = f"{getattr(adapter_class, '__module__', '?')}.{getattr(adapter_class, '__qualname__', adapter_class)}"
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelLoadError(
                f"model adapter '{spec.adapter}' ({where}) failed to load {spec.id}: {type(exc).__name__}: {first} "
                "(--debug shows the traceback)"
            ) from exc
        finally:
            if world.is_main:
                distributed.barrier()
        return model

    def run_task(
        self,
        task: TaskSpec,
        kind: TaskKind,
        model: ModelAdapter,
        model_spec: ModelSpec,
        fingerprint: dict[str, Any],
        encoder: Encoder,
        env: dict[str, Any],
    ) -> TaskOutcome:
        started = time.perf_counter()
        run_settings = self.options.run_settings(task)
        config_hash = self.config_hash(task)
        path = result_path(self.options.output, model_spec.slug, task.name, config_hash)
        ctx = RunContext(
            data_root=self.options.data_root,
            encoder=encoder,
            limit=self.options.limit,
            allow_hub=self.options.allow_hub,
            item_shard=(distributed.current().rank, distributed.current().world_size),
        )
        ctx.models = {text: self.extra_model(text, encoder) for text in kind.extra_models(task)}
        data, located = kind.load(task, ctx)
        decisions = kind.decide(model, data, task)
        if ctx.models:
            decisions.protocol["models"] = {model.spec.id: {"logit_scale": model.logit_scale, "fingerprint": fingerprint}} | {
                m.spec.id: {"logit_scale": m.logit_scale, "fingerprint": self._extra_fingerprints[text]} for text, (m, _) in ctx.models.items()}
        loaded = time.perf_counter()
        predictions = kind.predict(model, data, task, ctx)
        if distributed.current().active and kind.shards_items:
            predictions = iter(distributed.gather_records(list(predictions)))
        if not distributed.current().is_main:  # the other ranks encode their share and write nothing
            for _ in predictions:
                pass
            return TaskOutcome(task.name, "done", task.main_metric, seconds=time.perf_counter() - started)
        encoded_before, image_seconds_before = encoder.images_encoded, encoder.image_seconds
        decoded_before = dict(encoder.images_decoded)
        from_cache_before = (encoder.images_from_cache, encoder.texts_encoded, encoder.texts_from_cache)
        previous = result_schema.read_quietly(path)
        with writing(path.parent):
            writer = SampleWriter(samples_path(path, new_run_id()))
        records: list[dict[str, Any]] = []
        try:
            for record in predictions:
                with writing(path.parent):
                    writer.write(record)
                records.append(record)
            if not records:
                raise VLBenchError(f"task '{task.name}' has no items to evaluate; check its dataset (and --limit); no result written")
            predicted = time.perf_counter()
            metrics = kind.score(records, task)
            ties = kind.ties(records, task)
            scored = time.perf_counter()
            ci, resampled = intervals.confidence(task.kind, records, task, list(metrics), task.main_metric,
                                                 self.options.bootstrap_replicates, self.options.bootstrap_seed) \
                if self.options.bootstrap_replicates > 0 else ({}, None)
            artifacts = {}
            with writing(path.parent):
                for name, payload in decisions.artifacts.items():
                    artifact = artifact_path(path, name)
                    artifacts[name] = {"file": artifact.name, "sha256": write_json_gz(artifact, payload)}
        except BaseException:
            writer.discard()
            try:
                path.parent.rmdir()  # the folder this run created, if nothing else is in it
            except OSError:
                pass
            raise
        with writing(path.parent):
            writer.commit()
        n = kind.count(records)
        encoded = encoder.images_encoded - encoded_before
        image_seconds = encoder.image_seconds - image_seconds_before
        result = result_schema.Result(
            schema_version=result_schema.SCHEMA_VERSION,
            created=utc_now(),
            model=result_schema.ModelInfo(model_spec.id, model_spec.adapter, fingerprint["source_stamp"], fingerprint),
            task=result_schema.TaskInfo(
                name=task.name,
                kind=task.kind,
                version=task.version,
                config_hash=config_hash,
                file=str(task.source_file),
                dataset={**located.describe(), "n": n},
                files=task.file_records(),
                inputs=kind.inputs(task, located),
                run_settings=run_settings,
                overrides=task.overrides,
                protocol_used=decisions.protocol,
                config=task.config,
            ),
            metrics=metrics,
            main_metric=task.main_metric,
            samples=writer.path.name,
            artifacts=artifacts,
            env={**env, "seed": decisions.seed},
            timing={
                "load_s": round(loaded - started, 3),
                "predict_s": round(predicted - loaded, 3),
                "score_s": round(scored - predicted, 3),
                "bootstrap_s": round(time.perf_counter() - scored, 3),
                "total_s": round(time.perf_counter() - started, 3),
                "images_encoded": encoded,
                "images_from_cache": encoder.images_from_cache - from_cache_before[0],
                "texts_encoded": encoder.texts_encoded - from_cache_before[1],
                "texts_from_cache": encoder.texts_from_cache - from_cache_before[2],
                "image_encoding_s": round(image_seconds, 3),
                "images_per_s": round(encoded / image_seconds, 2) if encoded and image_seconds > 0 else None,
                "images_decoded": {k: v - decoded_before.get(k, 0) for k, v in encoder.images_decoded.items() if v - decoded_before.get(k, 0)},
            },
            ci=ci,
            bootstrap=resampled,
            ties=ties,
        )
        try:
            with writing(path.parent):
                write_json(path, result.to_json())
        except BaseException:
            current = result_schema.read_quietly(path)
            if current is None or current.samples != writer.path.name:
                writer.path.unlink(missing_ok=True)  # no result names these samples; the old result stays as it was
            raise
        if previous is not None and previous.samples != writer.path.name:
            old_samples = result_schema.inside(path.parent, previous.samples)  # never a file outside this folder
            if old_samples is not None and old_samples.name.endswith(result_schema.SAMPLES_SUFFIX):
                old_samples.unlink(missing_ok=True)  # the replaced result's samples
        return TaskOutcome(task.name, "done", task.main_metric, metrics, n, path, time.perf_counter() - started,
                           ci=ci, replicates=resampled.main_replicates if resampled else None, ties=ties)
