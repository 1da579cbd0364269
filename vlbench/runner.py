"""The loop behind ``vlbench run``: resolve, skip what is done, load the model once, run, write."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from vlbench import named_protocols
from vlbench.catalog import Catalog
from vlbench.encoding import Encoder, Progress, SilentProgress
from vlbench.errors import DatasetNotFoundError, VLBenchError
from vlbench.kinds import TASK_KINDS
from vlbench.kinds.base import RunContext, TaskKind
from vlbench.models import MODEL_ADAPTERS, ModelAdapter, ModelSpec
from vlbench.models.base import local_source_stamp
from vlbench.registry import did_you_mean
from vlbench.results import (
    SCHEMA_VERSION,
    SampleWriter,
    environment,
    load_result,
    new_run_id,
    result_path,
    samples_path,
    utc_now,
    write_json,
    write_json_gz,
)
from vlbench.specs import TaskSpec


def default_num_workers() -> int:
    return min(8, max(0, (os.cpu_count() or 1) - 1))


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
    protocol: str | None = None  # a named protocol (vlbench.named_protocols) for the tasks it covers
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def overrides_for(self, task: str) -> dict[str, Any]:
        """The --set values that apply to one task (unscoped ones and those scoped to it)."""
        return {k.split(":", 1)[-1]: v for k, v in self.overrides.items() if ":" not in k or k.split(":", 1)[0] == task}

    def shorthands(self) -> dict[str, Any]:
        """--seed and --dense-variant: set protocol.seed / protocol.dense_variant of the tasks that have them."""
        return {"seed": self.seed, "dense_variant": self.dense_variant}

    def run_settings(self, kind: TaskKind | None = None) -> dict[str, Any]:
        """Settings that change a task's numbers, and so its config hash (shorthands change its config)."""
        settings: dict[str, Any] = {"limit": self.limit}
        if self.precision != "fp32":
            settings["precision"] = self.precision
        return settings


@dataclass
class TaskOutcome:
    task: str
    status: str  # "done", "skipped" (result exists), "missing" (no data, --skip-missing)
    main_metric: str
    metrics: dict[str, float] = field(default_factory=dict)
    n: int | None = None
    result_file: Path | None = None
    seconds: float = 0.0
    note: str = ""


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

    def plan(self, model_text: str, selection: Iterable[str]) -> tuple[ModelSpec, list[TaskSpec]]:
        """Resolve the model spec and every task (validating all task files) before any work."""
        spec = self.catalog.resolve_model(model_text)
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
        stray_scopes = sorted({key.split(":", 1)[0] for key in self.options.overrides if ":" in key} - set(names))
        if stray_scopes:
            scope = stray_scopes[0]
            raise VLBenchError(f"--set {scope}:... names a task that is not in this run{did_you_mean(scope, names)}")
        return spec, tasks

    def run(self, model_text: str, selection: Iterable[str]) -> tuple[ModelSpec, list[TaskOutcome]]:
        """Run every selected task that has no up-to-date result; outcomes in selection order."""
        model_spec, tasks = self.plan(model_text, selection)
        source_stamp = local_source_stamp(model_spec)
        outcomes: dict[str, TaskOutcome] = {}
        pending: list[tuple[TaskSpec, TaskKind]] = []
        missing: list[str] = []
        for task in tasks:
            kind: TaskKind = TASK_KINDS.get(task.kind)()
            path = result_path(self.options.output, model_spec.slug, task.name)
            previous = load_result(path)
            if (
                not self.options.overwrite
                and previous is not None
                and previous["model"]["id"] == model_spec.id
                and previous["model"].get("source_stamp") == source_stamp
                and previous["task"]["config_hash"] == task.config_hash(self.options.run_settings(kind))
            ):
                outcomes[task.name] = TaskOutcome(
                    task.name, "skipped", previous["main_metric"], previous["metrics"], previous["task"]["dataset"].get("n"), path,
                    note="result exists (use --overwrite to recompute)",
                )
                continue
            try:
                kind.locate(task, self.options.data_root, self.options.allow_hub)
            except DatasetNotFoundError as exc:
                if not self.options.skip_missing:
                    missing.append(str(exc))
                    continue
                outcomes[task.name] = TaskOutcome(task.name, "missing", task.main_metric, note="dataset not found")
                continue
            pending.append((task, kind))
        if missing:
            more = f" (and {len(missing) - 1} more task(s) without data; --skip-missing runs the rest)" if len(missing) > 1 else ""
            raise DatasetNotFoundError(missing[0] + more)
        if pending:
            model = self.load_model(model_spec)
            encoder = Encoder(
                model,
                batch_size=self.options.batch_size,
                num_workers=default_num_workers() if self.options.num_workers is None else self.options.num_workers,
                progress=self.progress,
            )
            env = environment(
                device=str(model.device),
                precision=self.options.precision,
                batch_size=self.options.batch_size,
                num_workers=encoder.num_workers,
                seed=self.options.seed,
            )
            fingerprint = {**model.fingerprint(), "source_stamp": source_stamp}
            for task, kind in pending:
                outcomes[task.name] = self.run_task(task, kind, model, model_spec, fingerprint, encoder, env)
        return model_spec, [outcomes[t.name] for t in tasks]

    def extra_model(self, text: str, like: Encoder) -> tuple[ModelAdapter, Encoder]:
        """A model a task needs besides the run's (e.g. an ensemble member), with an encoder like the run's."""
        if text not in self._extra:
            model = self.load_model(self.catalog.resolve_model(text))
            self._extra[text] = (model, Encoder(model, batch_size=like.batch_size, num_workers=like.num_workers, progress=like.progress))
        return self._extra[text]

    def load_model(self, spec: ModelSpec) -> ModelAdapter:
        adapter_class = MODEL_ADAPTERS.get(spec.adapter)
        device = resolve_device(self.options.device)
        self.log(f"loading model {spec.id} on {device}")
        return adapter_class(spec, device=device, precision=self.options.precision)

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
        path = result_path(self.options.output, model_spec.slug, task.name)
        ctx = RunContext(
            data_root=self.options.data_root,
            encoder=encoder,
            limit=self.options.limit,
            allow_hub=self.options.allow_hub,
        )
        ctx.models = {text: self.extra_model(text, encoder) for text in kind.extra_models(task)}
        data, located = kind.load(task, ctx)
        decisions = kind.decide(model, data, task)
        if ctx.models:
            decisions.protocol["models"] = {m.spec.id: {"logit_scale": m.logit_scale, "fingerprint": m.fingerprint()}
                                            for m in [model, *(m for m, _ in ctx.models.values())]}
        loaded = time.perf_counter()
        encoded_before, image_seconds_before = encoder.images_encoded, encoder.image_seconds
        previous = load_result(path)
        writer = SampleWriter(samples_path(path, new_run_id()))
        records: list[dict[str, Any]] = []
        try:
            for record in kind.predict(model, data, task, ctx):
                writer.write(record)
                records.append(record)
            predicted = time.perf_counter()
            metrics = kind.score(records, task)
            scored = time.perf_counter()
            artifacts = {}
            for name, payload in decisions.artifacts.items():
                artifact = path.with_name(f"{task.name}.{name}.json.gz")
                artifacts[name] = {"file": artifact.name, "sha256": write_json_gz(artifact, payload)}
        except BaseException:
            writer.discard()
            raise
        writer.commit()
        n = kind.count(records)
        encoded = encoder.images_encoded - encoded_before
        image_seconds = encoder.image_seconds - image_seconds_before
        payload = {
            "schema_version": SCHEMA_VERSION,
            "created": utc_now(),
            "model": {"id": model_spec.id, "adapter": model_spec.adapter, "source_stamp": fingerprint["source_stamp"], "fingerprint": fingerprint},
            "task": {
                "name": task.name,
                "kind": task.kind,
                "version": task.version,
                "config_hash": task.config_hash(self.options.run_settings(kind)),
                "file": str(task.source_file),
                "dataset": {**located.describe(), "n": n},
                "files": task.file_records(),
                "run_settings": self.options.run_settings(kind),
                "overrides": {**self.options.overrides_for(task.name), **task.shorthands},
                "protocol_used": decisions.protocol,
                "config": task.config,
            },
            "metrics": metrics,
            "main_metric": task.main_metric,
            "samples": writer.path.name,
            "artifacts": artifacts,
            "env": env,
            "timing": {
                "load_s": round(loaded - started, 3),
                "predict_s": round(predicted - loaded, 3),
                "score_s": round(scored - predicted, 3),
                "total_s": round(time.perf_counter() - started, 3),
                "images_encoded": encoded,
                "image_encoding_s": round(image_seconds, 3),
                "images_per_s": round(encoded / image_seconds, 2) if encoded and image_seconds > 0 else None,
            },
        }
        write_json(path, payload)
        if previous and previous.get("samples") and previous["samples"] != writer.path.name:
            (path.parent / previous["samples"]).unlink(missing_ok=True)  # the old result's samples
        return TaskOutcome(task.name, "done", task.main_metric, metrics, n, path, time.perf_counter() - started)
