"""Hugging Face transformers models: ``hf:<hub id or local dir>[@revision]``.

CLIPModel and SiglipModel (and any AutoModel with ``get_image_features``/``get_text_features``)
with the matching tokenizer and image processor. ``?trust_remote_code=1`` is off unless the user asks.

- SigLIP text towers were trained on max-length padding, so their texts are padded that way.
- SigLIP 2 was trained on lowercased text (transformers' ``Siglip2Tokenizer``: "Gemma tokenizer +
  SigLIP2 training default: lowercase normalization"); fixed-resolution SigLIP 2 checkpoints load a
  plain Gemma tokenizer, so their texts are lowercased here (``?lowercase=0|1`` overrides).
- NaFlex SigLIP 2 checkpoints (model type ``siglip2``) need per-image patch sequences
  (``pixel_attention_mask``, ``spatial_shapes``) and are refused with a pointer to the fixed ones.
- The image processor's backend is pinned (``?image_backend=pil``, the default, or ``torchvision``)
  and recorded in the fingerprint: transformers 5 picks torchvision when installed, whose resizing
  differs slightly from the PIL reference.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from vlbench.errors import ModelLoadError, VLBenchError
from vlbench.models.base import ModelAdapter, ModelSpec
from vlbench.stamps import files_stamp
from vlbench.hub_access import hub_access
from vlbench.models.hub import cached_snapshot_pin, offline_message
from vlbench.registries import MODEL_ADAPTERS

MAX_LENGTH_PADDING = ("siglip", "siglip2")
# causal text towers pooled at the end-of-text token: padding to the batch's longest text is exact
TRIMMABLE_TEXT = ("clip",)
TRUE_VALUES = ("1", "true", "yes")
IMAGE_BACKENDS = ("pil", "torchvision")
NAFLEX_MODEL_TYPES = ("siglip2",)
FIXED_SIGLIP2_HINT = "use a fixed-resolution SigLIP 2 checkpoint instead, e.g. hf:google/siglip2-base-patch16-224"
# the weights files transformers loads from a hub repo (one of them must be in a cached snapshot)
HUB_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def is_siglip2_text(model_type: str, tokenizer: Any) -> bool:
    """SigLIP 2's text tower: a SigLIP model with the Gemma tokenizer (SigLIP 1 uses its own SentencePiece one)."""
    name = type(tokenizer).__name__
    return model_type in MAX_LENGTH_PADDING and (model_type == "siglip2" or name.startswith(("Gemma", "Siglip2")))


def load_image_processor(name: str, backend: str, load_kwargs: dict[str, Any]) -> Any:
    """The image processor with the asked backend (transformers 5: backend=; 4.x: use_fast=)."""
    import transformers
    from transformers import AutoImageProcessor

    major = int(transformers.__version__.split(".")[0])
    choice = {"backend": backend} if major >= 5 else {"use_fast": backend == "torchvision"}
    return AutoImageProcessor.from_pretrained(name, **load_kwargs, **choice)


def backend_of(image_processor: Any) -> str:
    """The backend an image processor object uses ("pil" or "torchvision"), as ``load_image_processor`` names them."""
    import transformers

    name = type(image_processor).__name__
    if name.endswith("Pil"):
        return "pil"
    return "torchvision" if name.endswith("Fast") or int(transformers.__version__.split(".")[0]) >= 5 else "pil"


def _features(output: Any) -> torch.Tensor:
    """transformers<5 returns a tensor; 5.x returns an output object with pooler_output."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise ModelLoadError("model returned no pooled features from get_*_features")
    return pooled


class HFImageTransform:
    """PIL image -> pixel tensor with the model's own image processor (picklable for workers)."""

    def __init__(self, image_processor: Any):
        self.image_processor = image_processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.image_processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def __repr__(self) -> str:
        return f"HFImageTransform({self.image_processor.to_json_string()})"


@MODEL_ADAPTERS.register("hf")
class HFAdapter(ModelAdapter):
    adapter_name = "hf"
    adapter_version = "1"
    libraries = ("torch", "transformers")
    spec_options = {"trust_remote_code": "1 runs the repository's own code (off by default)",
                    "image_backend": "pil (default) or torchvision image processing", "max_length": "text padding length",
                    "lowercase": "0 or 1: lowercase texts (SigLIP 2's default)"}

    @classmethod
    def pinned_weights(cls, spec: ModelSpec) -> str | None:
        """A saved model folder by its files; a hub name by its snapshot in the local Hugging Face
        cache at the spec's revision (None when it is not there yet, or with remote code, which
        runs from outside the snapshot)."""
        folder = Path(spec.name).expanduser()
        if folder.is_dir():
            return files_stamp(folder)
        if spec.options.get("trust_remote_code", "0").lower() in TRUE_VALUES or folder.exists():
            return None
        return cached_snapshot_pin(spec.name, spec.tag, HUB_WEIGHTS)

    def __init__(self, spec: ModelSpec, device: torch.device | str = "cpu", precision: str = "fp32"):
        super().__init__(spec, device, precision)
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()

        trust = spec.options.get("trust_remote_code", "0").lower() in TRUE_VALUES
        load_kwargs: dict[str, Any] = {"revision": spec.tag, "trust_remote_code": trust}
        self.image_backend = spec.options.get("image_backend", "pil")
        if self.image_backend not in IMAGE_BACKENDS:
            raise ModelLoadError(f"{spec.id}: image_backend must be one of {', '.join(IMAGE_BACKENDS)}, got '{self.image_backend}'")
        local = Path(spec.name).expanduser().exists()
        with contextlib.nullcontext(None) if local else hub_access() as offline:
            try:
                config = AutoConfig.from_pretrained(spec.name, **load_kwargs)
                if config.model_type in NAFLEX_MODEL_TYPES:
                    raise ModelLoadError(
                        f"cannot use {spec.id}: NaFlex SigLIP 2 checkpoints take variable-length patch sequences "
                        f"(pixel_attention_mask, spatial_shapes), which vlbench does not feed; {FIXED_SIGLIP2_HINT}")
                self.model = AutoModel.from_pretrained(spec.name, **load_kwargs).to(self.device).eval()
                tokenizer = AutoTokenizer.from_pretrained(spec.name, **load_kwargs)
                image_processor = load_image_processor(spec.name, self.image_backend, load_kwargs)
            except ModelLoadError:
                raise
            except Exception as exc:  # OSError (not found / offline), ValueError (unknown type), ImportError ...
                if offline:
                    raise ModelLoadError(offline_message(spec.id, offline, "hf:/path/to/saved/model")) from exc
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                hint = "; SigLIP tokenizers need: pip install sentencepiece protobuf" if "sentencepiece" in str(exc).lower() else ""
                raise ModelLoadError(f"cannot load {spec.id}: {first_line}{hint}") from exc
        self._adopt(self.model, config, tokenizer, image_processor)

    def _adopt(self, model: Any, config: Any, tokenizer: Any, image_processor: Any) -> None:
        spec = self.spec
        for method in ("get_image_features", "get_text_features"):
            if not hasattr(model, method):
                raise ModelLoadError(f"cannot use {spec.id}: {type(model).__name__} has no {method}()")
        self.model = model
        self.model_type = config.model_type
        self.tokenizer = tokenizer
        self._transform = HFImageTransform(image_processor)
        self.max_length = int(spec.options.get("max_length", 0)) or self._text_max_length(config)
        self.default_padding = "max_length" if self.model_type in MAX_LENGTH_PADDING else "longest"
        lowercase = spec.options.get("lowercase")
        self.lowercase = is_siglip2_text(self.model_type, tokenizer) if lowercase is None else lowercase.lower() in TRUE_VALUES
        self.revision = getattr(config, "_commit_hash", None) or spec.tag

    @classmethod
    def from_model(cls, model: Any, processor: Any, spec: ModelSpec, device: torch.device | str, precision: str = "fp32") -> "HFAdapter":
        """A transformers CLIP / SigLIP model already in memory with its processor (``tokenizer`` and
        ``image_processor``), used as it is: not moved, not copied; ``spec`` names it."""
        self = cls.__new__(cls)
        ModelAdapter.__init__(self, spec, device, precision)
        tokenizer, image_processor = getattr(processor, "tokenizer", None), getattr(processor, "image_processor", None)
        if tokenizer is None or image_processor is None:
            raise VLBenchError(f"the processor of a {type(model).__name__} must have a tokenizer and an image_processor "
                               "(pass transformers' AutoProcessor.from_pretrained(...) of the model)")
        self.image_backend = backend_of(image_processor)  # the processor as given; hf: specs load the PIL one by default
        self._adopt(model, model.config, tokenizer, image_processor)
        return self

    def _text_max_length(self, config: Any) -> int:
        text_config = getattr(config, "text_config", config)
        return int(getattr(text_config, "max_position_embeddings", 0) or self.tokenizer.model_max_length)

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    @property
    def trims_text_padding(self) -> bool:
        return self.allow_text_trimming and self.model_type in TRIMMABLE_TEXT

    @property
    def padding(self) -> str:
        """Tokenizer padding: the batch's longest text where exact, max length where asked or needed."""
        if self.model_type in TRIMMABLE_TEXT:
            return "longest" if self.trims_text_padding else "max_length"
        return self.default_padding

    @property
    def text_padding_mode(self) -> str:
        return "trimmed" if self.trims_text_padding else self.padding

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixels))

    def text_features(self, texts: list[str]) -> torch.Tensor:
        if self.lowercase:
            texts = [text.lower() for text in texts]
        tokens = self.tokenizer(
            texts, padding=self.padding, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        inputs = {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        if self.model_type in MAX_LENGTH_PADDING:
            inputs.pop("attention_mask", None)  # SigLIP's text tower is used without a mask
        return _features(self.model.get_text_features(**inputs))

    def vit_parts(self) -> Any:
        from vlbench.models.dense import hf_clip_parts

        return hf_clip_parts(self.model)

    @property
    def pixel_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        processor = self._transform.image_processor
        return tuple(processor.image_mean), tuple(processor.image_std)

    @property
    def input_size(self) -> int | None:
        processor = self._transform.image_processor
        crop = getattr(processor, "crop_size", None) or {}
        size = getattr(processor, "size", None) or {}
        value = crop.get("height") or size.get("height") or size.get("shortest_edge")
        return int(value) if value else None

    def describe(self) -> dict[str, Any]:
        local = Path(self.spec.name).expanduser()
        return {
            "model_class": type(self.model).__name__,
            "model_type": self.model_type,
            "revision": self.revision if not local.is_dir() else None,
            "local_dir": str(local.resolve()) if local.is_dir() else None,
            "text_padding": self.padding,
            "text_lowercase": self.lowercase,
            "tokenizer": type(self.tokenizer).__name__,
            "image_processor": type(self._transform.image_processor).__name__,
            "image_backend": self.image_backend,
            "weights_sha256": self.weights_sha256(),
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
        }


