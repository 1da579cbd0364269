"""Models already in memory (a training loop's model, a notebook's): made into adapters with an honest name.

``adapt(model, ...)`` takes an open_clip model with its preprocess and tokenizer, a transformers CLIP /
SigLIP model with its processor, a ``ModelAdapter`` (used as it is), or any object with
``encode_image(pixels)`` and ``encode_text(texts)`` plus a ``preprocess`` transform (``ObjectAdapter``).
The recognisers are tried in order (``MODEL_OBJECTS``), so a new kind of object needs one entry, not a
branch.

The name of an in-memory model is ``<adapter>:in-memory:<class>@sha256-<16 hex>``: a hash of its
state dict (every tensor's name, dtype, shape and bytes), its class and its transform, so that equal
weights share results and cached embeddings and changed weights never do. Hashing reads every weight
once per call (about a second per GB on one CPU core); ``hash_weights=False`` skips it: the model is
then named by a random id, its results are never reused and the embedding cache is not used for it.
Spec strings are loaded by the run (``vlbench.run.loading``), not here.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import torch
from PIL import Image

from vlbench.encoding.cache import transform_identity
from vlbench.errors import VLBenchError
from vlbench.models.base import ModelAdapter
from vlbench.spec.model_spec import ModelSpec

IN_MEMORY = "in-memory:"


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _identity_of(component: Any) -> str:
    """A tokenizer's or processor's identity: its class and the settings that change what it produces."""
    if component is None:
        return "none"
    settings = {k: getattr(component, k) for k in ("context_length", "model_max_length", "do_lower_case") if hasattr(component, k)}
    vocab = getattr(component, "vocab_size", None)
    return f"{_class_name(component)}|{sorted(settings.items())}|vocab={vocab}"


def memory_spec(adapter: str, model: Any, transform: Any, *parts: Any, hash_weights: bool = True) -> tuple[ModelSpec, str | None]:
    """(the spec naming an in-memory model, its weights' sha256 or None when not hashed)."""
    from vlbench.models.weights_hash import state_dict_sha256

    name = IN_MEMORY + type(model).__name__
    if not hash_weights or not isinstance(model, torch.nn.Module):
        return ModelSpec(adapter, name, f"unhashed-{uuid.uuid4().hex[:16]}"), None
    weights = state_dict_sha256(model)
    identity = "|".join([weights, _class_name(model), transform_identity(repr(transform)), *(_identity_of(p) for p in parts)])
    return ModelSpec(adapter, name, "sha256-" + hashlib.sha256(identity.encode()).hexdigest()[:16]), weights


def model_device(model: Any, fallback: str = "cpu") -> torch.device:
    """Where an in-memory model's weights are (it is used there, not moved)."""
    parameters = getattr(model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if isinstance(first, torch.Tensor) else torch.device(fallback)


class ObjectAdapter(ModelAdapter):
    """Any object with ``encode_image(pixels) -> [B, D]`` and ``encode_text(list[str]) -> [N, D]``, and
    its ``preprocess`` (PIL image -> CHW tensor). The object tokenizes its own texts; features are
    L2-normalised by the harness as for every adapter."""

    adapter_name = "object"
    adapter_version = "1"

    def __init__(self, obj: Any, preprocess: Callable[[Image.Image], torch.Tensor], spec: ModelSpec, device: torch.device | str,
                 precision: str = "fp32", weights_sha256: str | None = None):
        super().__init__(spec, device, precision)
        self.model, self._transform, self._weights_sha256 = obj, preprocess, weights_sha256

    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self._transform

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def text_features(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(texts)

    def describe(self) -> dict[str, Any]:
        return {"model_class": _class_name(self.model), "weights": "in memory", "weights_sha256": self.weights_sha256()}


@dataclass(frozen=True)
class ModelObject:
    """One kind of in-memory model: how to recognise it and how to make its adapter."""

    name: str
    recognise: Callable[[Any], bool]
    build: Callable[..., ModelAdapter]


def _is_open_clip(model: Any) -> bool:
    return type(model).__module__.startswith("open_clip") and hasattr(model, "encode_image") and hasattr(model, "encode_text")


def _is_transformers(model: Any) -> bool:
    return type(model).__module__.startswith("transformers") and hasattr(model, "get_image_features")


def _need(value: Any, what: str, model: Any) -> Any:
    if value is None:
        raise VLBenchError(f"a {type(model).__name__} needs {what}")
    return value


def _open_clip_adapter(model: Any, preprocess: Any, tokenizer: Any, processor: Any, precision: str, hash_weights: bool) -> ModelAdapter:
    from vlbench.models.openclip import OpenClipAdapter

    preprocess = _need(preprocess, "preprocess= (the transform open_clip.create_model_and_transforms returned)", model)
    tokenizer = _need(tokenizer, "tokenizer= (open_clip.get_tokenizer(<architecture>))", model)
    spec, weights = memory_spec("openclip", model, preprocess, tokenizer, hash_weights=hash_weights)
    adapter = OpenClipAdapter.from_model(model, preprocess, tokenizer, spec, model_device(model), precision)
    adapter._weights_sha256 = weights
    return adapter


def _transformers_adapter(model: Any, preprocess: Any, tokenizer: Any, processor: Any, precision: str, hash_weights: bool) -> ModelAdapter:
    from vlbench.models.hf import HFAdapter

    processor = _need(processor, "processor= (transformers.AutoProcessor.from_pretrained(...) of the model)", model)
    spec, weights = memory_spec("hf", model, getattr(processor, "image_processor", None), getattr(processor, "tokenizer", None),
                                hash_weights=hash_weights)
    adapter = HFAdapter.from_model(model, processor, spec, model_device(model), precision)
    adapter._weights_sha256 = weights
    return adapter


def _object_adapter(model: Any, preprocess: Any, tokenizer: Any, processor: Any, precision: str, hash_weights: bool) -> ModelAdapter:
    preprocess = _need(preprocess, "preprocess= (PIL image -> CHW tensor) for its encode_image", model)
    spec, weights = memory_spec("object", model, preprocess, hash_weights=hash_weights)
    return ObjectAdapter(model, preprocess, spec, model_device(model), precision, weights)


#: In order: the first whose ``recognise`` accepts the object builds its adapter.
MODEL_OBJECTS: list[ModelObject] = [
    ModelObject("open_clip model", _is_open_clip, _open_clip_adapter),
    ModelObject("transformers CLIP / SigLIP model", _is_transformers, _transformers_adapter),
    ModelObject("object with encode_image / encode_text", lambda m: hasattr(m, "encode_image") and hasattr(m, "encode_text"), _object_adapter),
]


def adapt(model: Any, preprocess: Any = None, tokenizer: Any = None, processor: Any = None, precision: str = "fp32",
          hash_weights: bool = True) -> ModelAdapter:
    """The adapter of an in-memory model (a ``ModelAdapter`` is returned as it is)."""
    if isinstance(model, ModelAdapter):
        return model
    for kind in MODEL_OBJECTS:
        if kind.recognise(model):
            return kind.build(model, preprocess, tokenizer, processor, precision, hash_weights)
    known = "; ".join(k.name for k in MODEL_OBJECTS)
    raise VLBenchError(f"cannot evaluate a {type(model).__name__}: pass a model spec string, a ModelAdapter, or one of: {known}")
