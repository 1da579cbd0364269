"""Experiment trackers that a run's metrics are logged to (``vlbench run --log``, ``log=`` of the library).

A tracker is named ``NAME`` or ``NAME:ARGUMENT``: ``tensorboard`` (event files under
``<output>/tensorboard/<model>``, named as the model's results folder; ``tensorboard:DIR`` under ``DIR/<model>``) and ``wandb`` (a W&B run
per model in the project ``vlbench``, or the one ``WANDB_PROJECT`` names; ``wandb:PROJECT``; inside a
W&B run already started, as in a training script, its metrics go to that run). Each call logs, for
every result, each metric as ``task/metric``, its 95% interval where the result has one as
``task/metric/ci_low`` and ``task/metric/ci_high``, and ``task/n``; the run's settings go in once (the
W&B config, a TensorBoard text summary). The clients are the libraries' own (extras ``vlbench[wandb]``,
``vlbench[tensorboard]``), imported only when one is asked for. Writing result files is the runner's
job (``vlbench.run.runner``); trackers only mirror what was written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from vlbench.errors import VLBenchError
from vlbench.registry import Registry, package_version
from vlbench.results.schema import Result
from vlbench.spec.model_spec import parse_model_spec


class Tracker(Protocol):
    def log(self, results: Sequence[Result], step: int | None) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class TrackedRun:
    """What a tracker is opened for: a name (the model's id, or the evaluator's run name), where local
    files go unless its argument says otherwise, and the settings it records."""

    name: str
    folder: Path
    config: dict[str, Any]


TRACKERS: Registry = Registry("experiment tracker", entry_point_group="vlbench.trackers")


def scalars(results: Iterable[Result]) -> dict[str, float]:
    """``task/metric`` (with ``/ci_low``, ``/ci_high`` where an interval exists) and ``task/n`` of each result."""
    out: dict[str, float] = {}
    for result in results:
        task = result.task.name
        for metric, value in result.metrics.items():
            if value is None:
                continue
            out[f"{task}/{metric}"] = float(value)
            ci = result.ci.get(metric)
            if ci and ci[0] is not None and ci[1] is not None:
                out[f"{task}/{metric}/ci_low"], out[f"{task}/{metric}/ci_high"] = float(ci[0]), float(ci[1])
        out[f"{task}/n"] = float(result.n)
    return out


def run_config(name: str, settings: Any) -> dict[str, Any]:
    """The settings a tracker records: the model (or run) name, vlbench's version and every run option."""
    options = {f.name: _plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    return {"model": name, "vlbench_version": package_version("vlbench"), **options}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _client(module: str, extra: str, tracker: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise VLBenchError(f"logging to {tracker} needs the {extra} package: pip install 'vlbench[{extra}]' (or pip install {extra})") from None


def folder_name(name: str) -> str:
    """A model id's folder as its results have it (``ModelSpec.slug``); another run name made safe."""
    try:
        return parse_model_spec(name).slug
    except VLBenchError:
        return re.sub(r"[^A-Za-z0-9._@+-]+", "_", name).strip("_.") or "run"


@TRACKERS.register("tensorboard")
class TensorBoardTracker:
    """Event files written with torch's ``SummaryWriter`` (the ``tensorboard`` package)."""

    client = ("tensorboard", "tensorboard", "TensorBoard")  # module, extra, what it is

    def __init__(self, run: TrackedRun, argument: str | None):
        _client(*self.client)
        from torch.utils.tensorboard import SummaryWriter

        root = Path(argument).expanduser() if argument else run.folder / "tensorboard"
        self.log_dir = root / folder_name(run.name)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.writer.add_text("vlbench/settings", "```json\n" + json.dumps(run.config, indent=2, sort_keys=True) + "\n```")

    def log(self, results: Sequence[Result], step: int | None) -> None:
        for tag, value in scalars(results).items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


@TRACKERS.register("wandb")
class WandbTracker:
    """A W&B run (``wandb.init``; ``WANDB_MODE=offline`` writes it locally for ``wandb sync``)."""

    client = ("wandb", "wandb", "Weights & Biases")

    def __init__(self, run: TrackedRun, argument: str | None):
        wandb = _client(*self.client)
        self.owned = argument is not None or wandb.run is None
        if self.owned:
            project = argument or os.environ.get("WANDB_PROJECT") or "vlbench"
            run.folder.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(project=project, name=run.name, dir=str(run.folder), config={"vlbench": run.config}, reinit="create_new")
        else:
            self.run = wandb.run
            self.run.config.update({"vlbench": run.config}, allow_val_change=True)

    def log(self, results: Sequence[Result], step: int | None) -> None:
        self.run.log(scalars(results), step=step)

    def close(self) -> None:
        if self.owned:
            self.run.finish()


def _parts(names: str | Sequence[Any] | None) -> list[Any]:
    """``(tracker class, argument)`` per named tracker, tracker objects as given."""
    parts: list[Any] = []
    for item in [names] if isinstance(names, str) else list(names or []):
        if not isinstance(item, str):
            if not (callable(getattr(item, "log", None)) and callable(getattr(item, "close", None))):
                raise VLBenchError(f"log={item!r}: give a tracker name (wandb, tensorboard) or an object with log(results, step) and close()")
            parts.append(item)
            continue
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, _, argument = part.partition(":")
            parts.append((TRACKERS.get(name), argument or None))
    return parts


def check_trackers(names: str | Sequence[Any] | None) -> None:
    """Refuse, before any work, an unknown tracker name or one whose client is not installed."""
    for part in _parts(names):
        if isinstance(part, tuple) and getattr(part[0], "client", None):
            _client(*part[0].client)


def open_trackers(names: str | Sequence[Any] | None, run: TrackedRun) -> list[Tracker]:
    """The trackers ``names`` asks for (``"wandb"``, ``"tensorboard:DIR"``, a comma list, or objects with
    ``log(results, step)`` / ``close()``), opened for ``run``; an unknown name is a one-line error."""
    trackers: list[Tracker] = []
    try:
        for part in _parts(names):
            trackers.append(part[0](run, part[1]) if isinstance(part, tuple) else part)
    except BaseException:
        close_all(trackers)
        raise
    return trackers


def log_all(trackers: Sequence[Tracker], results: Sequence[Result], step: int | None) -> None:
    for tracker in trackers:
        tracker.log(results, step)


def log_run(names: str | Sequence[Any] | None, folder: Path, settings: Any, models: Sequence[tuple[str, Sequence[Result]]]) -> None:
    """A finished run to the trackers: per model a tracker run named by its id, its results logged once."""
    if not names:
        return
    for model_id, results in models:
        trackers = open_trackers(names, TrackedRun(model_id, folder, run_config(model_id, settings)))
        try:
            log_all(trackers, results, None)
        finally:
            close_all(trackers)


def close_all(trackers: Sequence[Tracker]) -> None:
    for tracker in trackers:
        tracker.close()
