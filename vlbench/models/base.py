"""The model adapter protocol: what an adapter implements, and what the harness adds (inference mode,
autocast, L2 normalisation, fingerprints). Spec strings are parsed in ``vlbench.spec.model_spec``."""

from __future__ import annotations

import contextlib
import platform
from abc import ABC, abstractmethod

from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch
from PIL import Image

from vlbench.errors import CapabilityError, VLBenchError
from vlbench.spec.model_spec import PRECISION_NAMES, ModelSpec, parse_model_spec  # noqa: F401  (parse_model_spec: re-exported)
from vlbench.registry import package_version
from vlbench.stamps import files_stamp

PRECISIONS: dict[str, torch.dtype | None] = dict(zip(PRECISION_NAMES, (None, torch.bfloat16, torch.float16)))


def check_spec_options(adapter_class: type, spec: ModelSpec) -> None:
    """A one-line error for a spec option its adapter does not declare (``spec_options``): a typo such
    as ``?sede=1`` must not run another model under another id."""
    known = getattr(adapter_class, "spec_options", None)
    if known is None:
        return
    from vlbench.registry import did_you_mean

    for key in spec.options:
        if key not in known:
            choices = ", ".join(f"{name} ({meaning})" for name, meaning in known.items()) or "none"
            raise VLBenchError(f"model spec '{spec.id}': unknown option '{key}' for the {spec.adapter} adapter"
                               f"{did_you_mean(key, known)}; its options: {choices}")


def local_source_stamp(spec: ModelSpec) -> str | None:
    """The stamp (``vlbench.stamps``: path, size, inode, modification and change times) of local
    weights, a file or a folder; None for hub names.

    Cheap enough to check on every run, and it changes when a checkpoint is replaced at the same path,
    also by one of the same size with its mtime restored, so results of the old weights are not reused.
    """
    for candidate in (spec.name, spec.name.split(":", 1)[-1]):
        path = Path(candidate).expanduser()
        if path.exists():
            return files_stamp(path)
    return None


def adapter_version(adapter_class: type) -> str:
    """The version an adapter class declares itself (not inherited), else a hash of its module's source."""
    import hashlib
    import sys

    declared = adapter_class.__dict__.get("adapter_version")
    if declared is not None:
        return str(declared)
    source = getattr(sys.modules.get(adapter_class.__module__), "__file__", None)
    try:
        return "source-sha256:" + hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]  # type: ignore[arg-type]
    except (OSError, TypeError):
        return "unknown"


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    features = features.float()
    return features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class ModelAdapter(ABC):
    """One model family. Subclasses load the model in ``__init__`` and implement three members.

    - ``image_transform``: PIL image -> CHW float tensor (runs in data-loader workers);
    - ``image_features(pixels)``: batch of transformed images (on ``self.device``) -> [B, D];
    - ``text_features(texts)``: list of strings -> [N, D].

    The base class adds inference mode, autocast for --precision and L2 normalisation, so every
    adapter returns comparable float32 unit vectors. ``dense_features`` is optional.
    """

    adapter_name: ClassVar[str] = "custom"
    #: Bump when a change to the adapter changes its numbers; results of other versions are recomputed.
    #: Left unset, the sha256 of the adapter's module source stands in (see ``adapter_version``).
    adapter_version: ClassVar[str | None] = None
    #: Libraries whose versions the fingerprint records.
    libraries: ClassVar[tuple[str, ...]] = ("torch",)
    #: False restores full text padding (``--full-text-padding``) where an adapter would trim it.
    allow_text_trimming: bool = True
    #: The ``?key=value`` options of its specs: name -> meaning. Others are refused (with suggestions)
    #: before any model loads. None: any option passes (an adapter that does not declare them).
    spec_options: ClassVar[dict[str, str] | None] = None

    def __init__(self, spec: ModelSpec, device: torch.device | str = "cpu", precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise VLBenchError(f"unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}")
        self.spec = spec
        self.device = torch.device(device)
        self.precision = precision

    # -- what subclasses implement -------------------------------------------------------------
    @property
    @abstractmethod
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]: ...

    @abstractmethod
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def text_features(self, texts: list[str]) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]:
        """Adapter-specific fingerprint fields (weights hash, revision, architecture...)."""
        return {}

    @classmethod
    def pinned_weights(cls, spec: ModelSpec) -> str | None:
        """A cheap string (no model library imported) that changes whenever the weights behind
        ``spec`` can, or None when only loading tells. With it, a run whose embeddings are all cached
        never loads the model (vlbench.models.deferred). None by default: only an adapter that knows
        where its weights come from can pin them (``vlbench.stamps.files_stamp`` and ``hub.cached_snapshot_pin`` help)."""
        return None

    # -- what the harness calls ----------------------------------------------------------------
    @contextlib.contextmanager
    def _inference(self, autocast: str = "none") -> Iterator[None]:
        """Inference mode, under autocast for --precision; ``autocast="cuda_fp16"`` (a task's protocol,
        e.g. DataComp's) runs fp16 autocast instead where the model is on CUDA, and changes nothing elsewhere."""
        dtype = torch.float16 if autocast == "cuda_fp16" and self.device.type == "cuda" else PRECISIONS[self.precision]
        with torch.inference_mode():
            if dtype is None:
                yield
            else:
                with torch.autocast(device_type=self.device.type, dtype=dtype):
                    yield

    def encode_images(self, pixels: torch.Tensor, autocast: str = "none") -> torch.Tensor:
        """[B, C, H, W] -> [B, D] float32, L2-normalised (``autocast``: see ``_inference``)."""
        with self._inference(autocast):
            features = self.image_features(pixels.to(self.device, non_blocking=True))
        return l2_normalize(features)

    def encode_texts(self, texts: list[str], autocast: str = "none") -> torch.Tensor:
        """N strings -> [N, D] float32, L2-normalised (``autocast``: see ``_inference``)."""
        with self._inference(autocast):
            features = self.text_features(list(texts))
        return l2_normalize(features)

    # -- optional: text batches trimmed to their longest caption (see vlbench.models.text_trim) -----
    @property
    def trims_text_padding(self) -> bool:
        """True when this model's texts are padded only to the longest one of their batch, exactly."""
        return False

    @property
    def text_padding_mode(self) -> str:
        """How texts are padded ("trimmed", "full", ...); recorded in the run's env and cache keys."""
        return "trimmed" if self.trims_text_padding else "full"

    # -- optional: spatial outputs (segmentation) -------------------------------------------------
    def vit_parts(self) -> Any:
        """A ``vlbench.models.dense.VitParts`` view of the vision tower, or None if it has none."""
        return None

    @property
    def pixel_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std (0-1 scale) the image encoder expects."""
        raise CapabilityError(f"model '{self.spec.id}' does not say how its images are normalised")

    @property
    def input_size(self) -> int | None:
        """Square input resolution of the image encoder, when it has one."""
        return None

    def dense_features(self, pixels: torch.Tensor, variant: str = "plain") -> torch.Tensor:
        """Text-aligned, L2-normalised patch features [B, h, w, D] for normalised pixels [B, 3, H, W].

        H and W should be multiples of the patch size; position embeddings are interpolated.
        ``variant`` picks the last-block modification (see ``vlbench.models.dense``).
        """
        from vlbench.models.dense import dense_features

        if not hasattr(self, "_vit_parts"):
            self._vit_parts = self.vit_parts()
        if self._vit_parts is None:
            raise CapabilityError(
                f"this model cannot do segmentation: '{self.spec.id}' has no ViT patch tokens vlbench can read "
                "(supported: open_clip and transformers CLIP ViTs)"
            )
        with self._inference():
            return dense_features(self._vit_parts, pixels.to(self.device), variant)

    @property
    def patch_size(self) -> int:
        if not hasattr(self, "_vit_parts"):
            self._vit_parts = self.vit_parts()
        if self._vit_parts is None:
            raise CapabilityError(f"this model cannot do segmentation: '{self.spec.id}' has no ViT patch tokens")
        return int(self._vit_parts.patch_size)

    @property
    def decodes_on_gpu(self) -> bool:
        """Whether ``--decode gpu`` can reproduce this model's image transform as tensor operations."""
        from vlbench.encoding.gpu_decode import TensorTransform

        return TensorTransform.from_transform(self.image_transform) is not None

    @property
    def transform_id(self) -> str:
        """Identifies the image transform, for caching embeddings of transformed images."""
        return repr(self.image_transform)

    @property
    def logit_scale(self) -> float:
        """exp of the model's learned temperature (OpenAI CLIP: 100); 1.0 for a model without one.
        Ensembles weight each model's cosines by it, as ReCLIP sums logits."""
        scale = getattr(getattr(self, "model", None), "logit_scale", None)
        return float(scale.detach().float().exp()) if isinstance(scale, torch.Tensor) else 1.0

    def weights_sha256(self) -> str | None:
        """sha256 of ``self.model``'s state dict, computed once per loaded model (it is not cheap); None for
        an in-memory model evaluated without hashing (``vlbench.models.in_memory``)."""
        from vlbench.models.weights_hash import state_dict_sha256

        if "_weights_sha256" not in self.__dict__:
            self._weights_sha256 = state_dict_sha256(self.model)
        return self._weights_sha256

    def fingerprint(self) -> dict[str, Any]:
        """Who this model is: spec, adapter and its version, precision, ``describe()`` (weights hash...),
        library versions."""
        libraries = {lib: package_version(lib) for lib in self.libraries}
        return {
            "id": self.spec.id,
            "adapter": self.adapter_name,
            "adapter_version": adapter_version(type(self)),
            "name": self.spec.name,
            "tag": self.spec.tag,
            "precision": self.precision,
            **self.describe(),
            "libraries": libraries,
            "python": platform.python_version(),
        }
