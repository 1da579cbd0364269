"""The settings of a run, each with one owner: what it is, and whether it is part of a task's identity
(hashed into its config hash), recorded in the result's ``env``, or neither.

``RunSettings`` holds every option of ``vlbench run`` (the CLI builds it; the Python API will too). Its field
metadata says each option's role; ``identity(task)`` is what goes into a task's config hash,
``shorthand_fields()`` the task fields that ``--seed`` / ``--dense-variant`` set, and
``leaderboard_settings()`` the settings text a leaderboard of the run's own results asks for. ``Env`` is what a
run used, recorded by the code that did it (the decode path each model's images took, the seed a task drew
with, the text padding the model applied).
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from vlbench import bootstrap, distributed
from vlbench.errors import VLBenchError
from vlbench.results.schema import SHORTHANDS, setting_text

IDENTITY, ENV, NEITHER = "identity", "env", "neither"


def setting(default: Any, role: str, help: str, *, always: bool = False, task_field: str | None = None) -> Any:
    """A run option: ``role`` IDENTITY (hashed into the config hash of the tasks it applies to; ``always``:
    even at its default), ENV (recorded in ``env``) or NEITHER; ``task_field``: a shorthand, the task field it
    sets where the task's protocol sets that field (and so part of the task's identity through its config)."""
    metadata = {"role": role, "help": help, "always": always, "task_field": task_field}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunSettings:
    """Every option of a run. ``vlbench run --help`` documents the same options from the CLI's side."""

    data_root: Path = setting(Path("~/vlbench_data"), NEITHER, "where datasets live (task.dataset records the location found)")
    output: Path = setting(Path("results"), NEITHER, "the results folder")
    device: str = setting("auto", ENV, "auto, cpu or cuda (env.device: the device used)")
    precision: str = setting("fp32", IDENTITY, "fp32, or bf16/fp16 autocast (also env.precision)")
    batch_size: int = setting(64, ENV, "images per encoding batch")
    num_workers: int | None = setting(None, ENV, "data-loading processes (None: CPUs - 1, at most 8)")
    limit: int | None = setting(None, IDENTITY, "the first N items of each task", always=True)
    decode: str = setting("pil", IDENTITY, "pil, or gpu (torchvision.io); env.decode says which path the images took")
    protocol: str | None = setting(None, IDENTITY, "a named protocol for the tasks it covers (recorded as protocol=NAME on those)")
    seed: int | None = setting(None, NEITHER, "--seed: protocol.seed of the tasks whose protocol sets a seed", task_field=SHORTHANDS["seed"])
    dense_variant: str | None = setting(None, NEITHER, "--dense-variant: protocol.dense_variant of the tasks that set one",
                                        task_field=SHORTHANDS["dense_variant"])
    overrides: Mapping[str, Any] = setting({}, NEITHER, "--set values: applied to the task configs, and so to their config hashes")
    full_text_padding: bool = setting(False, ENV, "pad texts to the context length (env.text_padding: the padding the model applied)")
    bootstrap_replicates: int = setting(bootstrap.DEFAULT_REPLICATES, NEITHER, "bootstrap replicates (recorded in the result's bootstrap)")
    bootstrap_seed: int = setting(bootstrap.DEFAULT_SEED, NEITHER, "bootstrap seed (recorded in the result's bootstrap)")
    cache_dir: Path | None = setting(None, NEITHER, "the persistent embedding cache; None: off")
    pixel_cache: bool = setting(True, NEITHER, "keep transformed crops in <cache_dir>/pixels for every model with the same transform geometry "
                                "(env.decode and timing.images_decoded say which images it gave)")
    pixel_cache_gb: float = setting(50.0, NEITHER, "the pixel cache's size budget; the least recently used files go first")
    overwrite: bool = setting(False, NEITHER, "recompute tasks whose result exists")
    allow_hub: bool = setting(False, NEITHER, "download missing datasets from the Hugging Face Hub")
    skip_missing: bool = setting(False, NEITHER, "run the tasks whose data exists, report the others")
    strict: bool = setting(False, NEITHER, "a task the model cannot do is an error, not an 'unsupported' row")

    @classmethod
    def roles(cls) -> dict[str, str]:
        """Option name -> its role (IDENTITY, ENV, NEITHER)."""
        return {f.name: f.metadata["role"] for f in fields(cls)}

    def identity(self, task: Any = None) -> dict[str, Any]:
        """The settings hashed into a task's config hash (and recorded as its ``run_settings``): the IDENTITY
        options that differ from their defaults (``limit`` always), ``protocol`` only for a task it covers."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata["role"] != IDENTITY:
                continue
            value = getattr(self, f.name)
            if f.name == "protocol":
                value = getattr(task, "named_protocol", None) if task is not None else None
            if f.metadata["always"] or value != f.default:
                out[f.name] = value
        return out

    def shorthand_fields(self) -> dict[str, Any]:
        """The task fields the run's shorthands set (``protocol.seed``: 7), on the tasks whose protocol sets them."""
        return {f.metadata["task_field"]: getattr(self, f.name) for f in fields(self)
                if f.metadata["task_field"] and getattr(self, f.name) is not None}

    def leaderboard_settings(self) -> dict[str, str]:
        """The settings, as results record them, that pick this run's own results for a table (``--leaderboard``):
        its identity settings, the shorthands' task fields and its unscoped ``--set`` values."""
        wanted = {**{k: v for k, v in self.identity().items() if v is not None}, **self.shorthand_fields()}
        if self.protocol is not None:
            wanted["protocol"] = self.protocol
        wanted.update({k: v for k, v in self.overrides.items() if ":" not in k})
        return {k: setting_text(v) for k, v in wanted.items()}

    def workers(self) -> int:
        """Data-loading processes: as set, else CPUs - 1 (at most 8) shared among a node's data-parallel ranks."""
        if self.num_workers is not None:
            return self.num_workers
        return min(8, max(0, (os.cpu_count() or 1) // distributed.current().world_size - 1))


def resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VLBenchError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto")
    if not name.startswith(("cpu", "cuda", "mps")):
        raise VLBenchError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


def git_sha() -> str | None:
    """The commit of the vlbench source tree, when it runs from a git checkout."""
    import subprocess

    from vlbench.paths import PACKAGE_DIR

    if not (PACKAGE_DIR.parent / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR.parent, capture_output=True, text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR.parent, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class Env:
    """A result's ``env``: the software, the machine, and what the run used for this model and task."""

    vlbench: str
    git_sha: str | None
    python: str
    platform: str
    torch: str
    open_clip: str | None
    transformers: str | None
    device_name: str
    torch_threads: int
    device: str  # the model's device
    precision: str
    batch_size: int
    num_workers: int
    world_size: int
    text_padding: str  # how the model padded texts ("trimmed", "full", ...)
    decode: str  # the path this model's images took: "pil", or "gpu" (timing.images_decoded counts them per decoder)
    decode_requested: str | None = None  # --decode when it differs from the path taken (a transform --decode gpu cannot reproduce)
    seed: int | None = None  # the seed that drew the task's random part (ARO's options); None when nothing was drawn

    @classmethod
    def capture(cls, settings: RunSettings, model: Any, decode: str, num_workers: int) -> "Env":
        import torch

        import vlbench
        from vlbench.registry import package_version

        device = str(model.device)
        name = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else platform.processor() or platform.machine()
        return cls(vlbench.__version__, git_sha(), platform.python_version(), platform.platform(), torch.__version__,
                   package_version("open_clip_torch"), package_version("transformers"), name, torch.get_num_threads(), device,
                   settings.precision, settings.batch_size, num_workers, distributed.current().world_size, model.text_padding_mode,
                   decode, settings.decode if decode != settings.decode else None)

    def for_task(self, seed: int | None) -> dict[str, Any]:
        """The ``env`` of one task's result (``decode_requested`` only when it differs from ``decode``)."""
        out = {**asdict(self), "seed": seed}
        if out["decode_requested"] is None:
            del out["decode_requested"]
        return out
