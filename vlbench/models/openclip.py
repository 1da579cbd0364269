"""open_clip models: ``openclip:<arch>@<tag>``, ``openclip:<arch>@random``, checkpoints and hub ids.

- ``openclip:ViT-B-16@laion2b_s34b_b88k`` -- any architecture and pretrained tag open_clip knows;
- ``openclip:/path/epoch_32.pt?arch=ViT-B-32`` -- a local checkpoint (.pt, .bin, .safetensors);
- ``openclip:hf-hub:org/repo`` and ``openclip:local-dir:/path`` -- open_clip's own schemas;
- ``openclip:<arch>@random?seed=0`` -- random initialisation, for tests and baselines;
- ``?config=/path/arch.json`` registers an architecture config open_clip does not ship.

Tags trained with QuickGELU (the OpenAI weights) always get the QuickGELU architecture: plain
``ViT-B-32`` with ``openai`` weights would silently build the wrong activation.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from PIL import Image

from vlbench.errors import ModelLoadError
from vlbench.models.base import ModelAdapter, ModelSpec
from vlbench.stamps import files_stamp
from vlbench.hub_access import hub_access
from vlbench.models.hub import cached_snapshot_pin, offline_message
from vlbench.models.openclip_import import architecture_needs_towers, import_open_clip
from vlbench.registries import MODEL_ADAPTERS
from vlbench.models.text_trim import openclip_causal_tower, trim_padding
from vlbench.registry import did_you_mean

CONFIG_DIR = Path(__file__).parent / "openclip_configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
SCHEMAS = ("hf-hub:", "local-dir:")


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip logs through the root logger; only while it loads, let errors alone through."""
    root = logging.getLogger()
    previous = root.level
    # logging.info() on a root logger without handlers would install a stderr handler for good
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder:
        root.addHandler(placeholder)
    root.setLevel(max(previous, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(previous)
        if placeholder:
            root.removeHandler(placeholder)


def _open_clip(arch: str | None = None, config: Path | None = None) -> Any:
    """open_clip with vlbench's architectures added; without transformers / timm when ``arch`` is
    known and builds neither kind of tower (``openclip_import``). No ``arch``: the full import."""
    needs_towers = architecture_needs_towers(arch, [CONFIG_DIR], [config] if config else [])
    open_clip = import_open_clip(needs_towers)
    if not getattr(open_clip, "_vlbench_configs_added", False):
        open_clip.add_model_config(CONFIG_DIR)
        open_clip._vlbench_configs_added = True
    return open_clip


def shipped_weights(arch: str, tag: str) -> Path | None:
    """Weights that ship inside vlbench, named ``<arch>@<tag>.safetensors``."""
    path = WEIGHTS_DIR / f"{arch}@{tag}.safetensors"
    return path if path.is_file() else None


def shipped_tags(arch: str) -> list[str]:
    return sorted(p.stem.split("@", 1)[1] for p in WEIGHTS_DIR.glob(f"{arch}@*.safetensors"))


def resolve_openclip(spec: ModelSpec, open_clip: Any) -> tuple[str, dict[str, Any], str]:
    """(architecture, create_model kwargs, human-readable weights source) for a spec."""
    name, tag = spec.name, spec.tag
    if name.startswith(SCHEMAS):
        return name, {}, name
    if name.endswith(CHECKPOINT_SUFFIXES) or "/" in name or Path(name).expanduser().is_file():
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"cannot load {spec.id}: checkpoint not found: {path}")
        arch = spec.options.get("arch")
        if not arch:
            raise ModelLoadError(f"cannot load {spec.id}: a checkpoint needs its architecture, add ?arch=<name> (e.g. ?arch=ViT-B-32)")
        _check_arch(arch, spec, open_clip)
        return arch, {"pretrained": str(path)}, str(path.resolve())
    _check_arch(name, spec, open_clip)
    known = list(open_clip.list_pretrained_tags_by_model(name))
    local = shipped_tags(name)
    if tag is None:
        choices = ", ".join([*local, *known][:8]) or "none"
        raise ModelLoadError(
            f"model spec {spec.id} names no pretrained tag; add @<tag> (known: {choices}) or @random for random init"
        )
    if tag == "random":
        return name, {"pretrained": None}, f"random init (seed {spec.options.get('seed', 0)})"
    if shipped_weights(name, tag):
        return name, {"pretrained": str(shipped_weights(name, tag))}, f"vlbench:{name}@{tag}"
    if tag not in known:
        raise ModelLoadError(f"unknown pretrained tag '{tag}' for {name}{did_you_mean(tag, [*local, *known])}")
    kwargs: dict[str, Any] = {"pretrained": tag}
    tag_cfg = open_clip.get_pretrained_cfg(name, tag)
    model_cfg = open_clip.get_model_config(name) or {}
    if tag_cfg.get("quick_gelu") and not model_cfg.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
    return name, kwargs, f"open_clip:{name}@{tag} ({tag_cfg.get('hf_hub') or tag_cfg.get('url')})"


HUB_DEFAULT_WEIGHTS = "open_clip_pytorch_model.bin"  # open_clip's default file name in a hub repo


def hub_weights_names(filename: str) -> tuple[str, ...]:
    """The files open_clip may load for a hub weights file name: its safetensors twin first."""
    if filename == HUB_DEFAULT_WEIGHTS:
        return ("open_clip_model.safetensors", filename)
    if filename.endswith((".bin", ".pth")):
        return (filename[:-4] + ".safetensors", filename)
    return (filename,)


def hub_weights_of_tag(arch: str, tag: str) -> tuple[str, tuple[str, ...]] | None:
    """(Hugging Face repo, weights file names) open_clip loads ``arch@tag`` from (``hf_hub`` of its
    pretrained config, which open_clip prefers to a URL); None for an unknown tag, a URL or a file."""
    config = _open_clip(arch).get_pretrained_cfg(arch, tag) or {}
    if "file" in config or not config.get("hf_hub"):
        return None
    repo, filename = posixpath.split(config["hf_hub"])  # 'org/repo/' or 'org/repo/file.bin', as open_clip splits it
    return (repo, hub_weights_names(filename or HUB_DEFAULT_WEIGHTS)) if repo else None


def _check_arch(arch: str, spec: ModelSpec, open_clip: Any) -> None:
    if open_clip.get_model_config(arch) is None:
        raise ModelLoadError(f"unknown open_clip architecture '{arch}' in {spec.id}{did_you_mean(arch, open_clip.list_models())}")


@MODEL_ADAPTERS.register("openclip")
class OpenClipAdapter(ModelAdapter):
    adapter_name = "openclip"
    adapter_version = "1"
    libraries = ("torch", "open_clip_torch", "torchvision")
    spec_options = {"arch": "a checkpoint's architecture", "config": "an architecture config file to register",
                    "seed": "the seed of @random"}

    def __init__(self, spec: ModelSpec, device: torch.device | str = "cpu", precision: str = "fp32"):
        super().__init__(spec, device, precision)
        extra_config = Path(spec.options["config"]).expanduser() if "config" in spec.options else None
        open_clip = _open_clip(spec.options.get("arch") or spec.name, extra_config)
        if extra_config is not None:
            if not extra_config.is_file():
                raise ModelLoadError(f"cannot load {spec.id}: architecture config not found: {extra_config}")
            open_clip.add_model_config(extra_config)
        self.arch, kwargs, self.weights_source = resolve_openclip(spec, open_clip)
        # open_clip only warns (and builds an untrained model) when hf-hub:/local-dir: weights are missing
        kwargs["require_pretrained"] = kwargs.get("pretrained", "") is not None
        downloads = isinstance(kwargs.get("pretrained"), str) and not Path(kwargs["pretrained"]).is_file() or self.arch.startswith("hf-hub:")
        with _quiet_open_clip(), hub_access() if downloads else contextlib.nullcontext(None) as offline:
            try:
                # random init draws from a private RNG: the caller's global torch RNG is left as it was
                with torch.random.fork_rng(devices=[]):
                    if spec.tag == "random":
                        torch.manual_seed(int(spec.options.get("seed", 0)))
                    model, _, preprocess = open_clip.create_model_and_transforms(self.arch, device=self.device, **kwargs)
                self.tokenizer = open_clip.get_tokenizer(self.arch)
            except Exception as exc:  # open_clip raises RuntimeError/ValueError/OSError for bad specs
                if offline:
                    raise ModelLoadError(offline_message(spec.id, offline, "openclip:/path/to/checkpoint.pt?arch=" + self.arch)) from exc
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ModelLoadError(f"cannot load {spec.id}: {message}") from exc
        self._adopt(model.eval(), preprocess, self.tokenizer, bool(kwargs.get("force_quick_gelu")) or self.arch.endswith("quickgelu"))

    def _adopt(self, model: Any, preprocess: Any, tokenizer: Any, quick_gelu: bool) -> None:
        self.model, self.tokenizer, self._transform, self.quick_gelu = model, tokenizer, preprocess, quick_gelu
        self._causal_text = openclip_causal_tower(self.model, self.tokenizer)

    @classmethod
    def from_model(cls, model: Any, preprocess: Any, tokenizer: Any, spec: ModelSpec, device: torch.device | str,
                   precision: str = "fp32") -> "OpenClipAdapter":
        """An open_clip model already in memory (e.g. in a training loop), used as it is: not moved, not
        copied; ``spec`` names it (``vlbench.models.in_memory`` makes one from its weights)."""
        self = cls.__new__(cls)
        ModelAdapter.__init__(self, spec, device, precision)
        self.arch, self.weights_source = f"{type(model).__name__} (in memory)", "in memory"
        self._adopt(model, preprocess, tokenizer, quick_gelu=False)
        return self

    @classmethod
    def pinned_weights(cls, spec: ModelSpec) -> str | None:
        """A local checkpoint (or ``local-dir:``) by its files; random init by seed and architecture
        config; shipped weights by their file; hub tags and ``hf-hub:`` names by their snapshot in
        the local Hugging Face cache (None until their weights are there, or while the Hub names a
        newer commit)."""
        configs = [Path(spec.options["config"]).expanduser()] if "config" in spec.options else []
        configs.append(CONFIG_DIR / f"{spec.options.get('arch', spec.name)}.json")  # vlbench's own architectures
        config = "|".join(files_stamp(path) for path in configs if path.is_file())
        if spec.name.startswith("local-dir:"):
            folder = Path(spec.name.removeprefix("local-dir:")).expanduser()
            return f"{files_stamp(folder)}|{config}" if folder.is_dir() else None
        if spec.name.startswith("hf-hub:"):
            snapshot = cached_snapshot_pin(spec.name.removeprefix("hf-hub:"), None, hub_weights_names(HUB_DEFAULT_WEIGHTS))
            return f"{snapshot}|{config}" if snapshot else None
        checkpoint = Path(spec.name).expanduser()
        if spec.name.endswith(CHECKPOINT_SUFFIXES) or "/" in spec.name or checkpoint.is_file():  # as resolve_openclip decides
            return f"{files_stamp(checkpoint)}|{config}" if checkpoint.is_file() else None
        if spec.tag == "random":
            return f"random init, seed {spec.options.get('seed', 0)}|{config}"
        shipped = shipped_weights(spec.name, spec.tag) if spec.tag else None
        if shipped is not None:
            return f"{files_stamp(shipped)}|{config}"
        hub = hub_weights_of_tag(spec.name, spec.tag) if spec.tag else None
        snapshot = cached_snapshot_pin(hub[0], None, hub[1]) if hub else None
        return f"{snapshot}|{config}" if snapshot else None

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    @property
    def trims_text_padding(self) -> bool:
        return self.allow_text_trimming and self._causal_text is not None

    def text_features(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts)
        if self.trims_text_padding:
            return self._causal_text.encode(trim_padding(tokens).to(self.device))
        return self.model.encode_text(tokens.to(self.device))

    def vit_parts(self) -> Any:
        from vlbench.models.dense import openclip_parts

        return openclip_parts(self.model.visual)

    @property
    def pixel_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        from torchvision.transforms import Normalize

        for step in getattr(self._transform, "transforms", []):
            if isinstance(step, Normalize):
                return tuple(step.mean), tuple(step.std)
        return super().pixel_mean_std

    @property
    def input_size(self) -> int | None:
        size = getattr(self.model.visual, "image_size", None)
        return int(size[0] if isinstance(size, (tuple, list)) else size) if size else None

    def describe(self) -> dict[str, Any]:
        dtype = next(self.model.parameters()).dtype
        return {
            "architecture": self.arch + ("" if self.arch.endswith("quickgelu") or not self.quick_gelu else " (QuickGELU forced)"),
            "quick_gelu": self.quick_gelu,
            "weights": self.weights_source,
            "weights_sha256": self.weights_sha256(),
            "dtype": str(dtype).replace("torch.", ""),
        }
