"""A model known from an earlier load, built only when a run needs more than its identity.

A run whose embeddings are all in the cache needs from its model only what identifies it: the
fingerprint (with the weights hash), the transform and text-padding identities that key the cache,
its device. Importing the model library and building the model would be most of such a run's
time. When a model is loaded, the runner keeps these answers in the cache folder, under a *pin*:
a digest of everything that decides them and is cheap to read without the model library (the
spec, the adapter and its version, ``pinned_weights`` -- local weights by path, size and mtime,
random init by seed, hub names by their snapshot in the local Hugging Face cache while a load
would read it --, precision, device, text trimming, library versions; computed again after a
load, which may have downloaded files). The next run with the same pin gets a ``DeferredModel``:
it answers from the record and builds the real model on first use of anything else (an image or
text the cache does not hold, dense features...). The built model must give the recorded
identity; else the run stops, and the results it wrote from the cache before the model was built
are removed (the runner does that). Deferral is opt-in per adapter (``ModelAdapter.pinned_weights``);
models without a pin (a hub name not in the local cache, or newer on the Hub; remote code) are
always loaded.
"""

from __future__ import annotations

import hashlib
import json
import platform
from typing import Any, Callable

import torch

from vlbench.encoding.cache import transform_identity
from vlbench.errors import StaleModelRecordError
from vlbench.models.base import ModelAdapter, ModelSpec, adapter_version, package_version

#: The identity a run reads before it encodes anything; recorded after a load.
RECORDED = ("transform_id", "text_padding_mode", "trims_text_padding", "logit_scale", "input_size", "decodes_on_gpu")


def identity_pin(adapter_class: type[ModelAdapter], spec: ModelSpec, device: torch.device, precision: str, text_trimming: bool) -> str | None:
    """The key of a model's record, or None when the adapter cannot pin its weights cheaply."""
    try:
        weights = adapter_class.pinned_weights(spec)
    except (OSError, ValueError, ImportError):  # files that vanish or cannot be read: the model is loaded
        return None
    if weights is None:
        return None
    decided_by = {
        "id": spec.id,
        "adapter": spec.adapter,
        "adapter_version": adapter_version(adapter_class),
        "weights": weights,
        "device": str(device),
        "precision": precision,
        "text_trimming": text_trimming,
        "libraries": {lib: package_version(lib) for lib in (*adapter_class.libraries, "vlbench")},
        "python": platform.python_version(),
        "recorded": RECORDED,  # a record with other fields is another record
    }
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True).encode()).hexdigest()[:32]


def usable_record(record: Any) -> dict[str, Any] | None:
    """A model record read from the cache if it has the shape ``model_record`` writes, else None (a
    damaged or hand-edited record means "load the model")."""
    if not isinstance(record, dict) or not isinstance(record.get("fingerprint"), dict) or not isinstance(record.get("attributes"), dict):
        return None
    if not isinstance(record["fingerprint"].get("id"), str) or any(name not in record["attributes"] for name in RECORDED):
        return None
    return record


def model_record(model: ModelAdapter) -> dict[str, Any]:
    """What a deferred stand-in answers for this (loaded) model, as JSON would return it."""
    return json.loads(json.dumps({"fingerprint": model.fingerprint(), "attributes": {name: getattr(model, name) for name in RECORDED}}))


def same_identity(record: dict[str, Any], other: dict[str, Any]) -> bool:
    """Records of one model: equal, up to the memory addresses a transform's repr may hold
    (open_clip 2.x puts a plain function in its Compose)."""
    def comparable(r: dict[str, Any]) -> dict[str, Any]:
        attributes = dict(r.get("attributes", {}))
        attributes["transform_id"] = transform_identity(str(attributes.get("transform_id")))
        return {**r, "attributes": attributes}

    return comparable(record) == comparable(other)


class DeferredModel:
    """Stands in for a model: its recorded identity now, the real model (built once) for the rest."""

    def __init__(self, spec: ModelSpec, device: torch.device, precision: str, record: dict[str, Any],
                 build: Callable[[], ModelAdapter], forget: Callable[[], None]):
        self.spec, self.device, self.precision = spec, torch.device(device), precision
        self._record, self._build, self._forget = record, build, forget
        self._adapter: ModelAdapter | None = None

    def fingerprint(self) -> dict[str, Any]:
        return dict(self._record["fingerprint"])

    def build(self) -> ModelAdapter:
        """The real model, built (and checked against the record) on first use."""
        if self._adapter is None:
            adapter = self._build()
            if not same_identity(model_record(adapter), self._record):
                self._forget()
                raise StaleModelRecordError(
                    f"model {self.spec.id} loaded with another identity than the embedding cache recorded for it "
                    "(its weights or libraries changed in a way the cache could not see); the record is removed: "
                    "run again, and use 'vlbench cache clear --model " + self.spec.id + "' if this repeats"
                )
            self._adapter = adapter
        return self._adapter

    def __getattr__(self, name: str) -> Any:  # only for names this object does not hold itself
        if name.startswith("__"):
            raise AttributeError(name)
        recorded = self.__dict__.get("_record", {}).get("attributes", {})
        if name in recorded:  # also once built: the checked record keeps in-run keys stable
            return recorded[name]
        return getattr(self.build(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not (name.startswith("_") or name in ("spec", "device", "precision")):
            # settings (e.g. allow_text_trimming) are part of the pin: the builder applies them
            raise AttributeError(f"cannot set '{name}' on a model deferred under its cache record")
        object.__setattr__(self, name, value)
