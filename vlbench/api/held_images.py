"""A task's images (and segmentation labels) decoded once and held in memory, for an ``Evaluator``.

``hold(data, budget_bytes)`` walks a kind's data (dataclasses, lists, tuples, dicts) and replaces each
leaf reference with a ``load()`` (an image file, a tar member, image bytes, a label PNG, a generated
scene) by a ``Held`` value: the decoded result, kept as it was decoded (mode and size), with the
original's key and cache identity. A later ``load()`` returns a copy, so the model's transform sees the
very pixels it would have read, and no file is opened again. Composite references (a grounding crop of a
source image) keep their own logic and get their source held. Leaves past the budget stay as they were.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Held:
    key: str
    value: Any = field(repr=False)  # a PIL image or a numpy array, as the original's load() returned it
    cache_id: str | None = None

    def load(self) -> Any:
        return self.value.copy()


def _is_leaf(obj: Any) -> bool:
    if not (callable(getattr(obj, "load", None)) and hasattr(obj, "key")) or isinstance(obj, Held):
        return False
    if not dataclasses.is_dataclass(obj):
        return True
    return not any(_holds_refs(getattr(obj, f.name)) for f in dataclasses.fields(obj))


def _holds_refs(value: Any) -> bool:
    return (callable(getattr(value, "load", None)) and hasattr(value, "key")) or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, Image.Image):
        return value.width * value.height * max(1, len(value.getbands())) * (2 if value.mode.startswith("I;16") else 4 if value.mode in ("I", "F") else 1)
    return 0


@dataclass
class HeldStats:
    held: int = 0
    left: int = 0  # leaves past the budget, read as before
    bytes: int = 0


class Holder:
    def __init__(self, budget_bytes: int, workers: int):
        self.budget, self.workers, self.stats = budget_bytes, max(1, workers), HeldStats()
        self._done: dict[int, Any] = {}  # id of a leaf -> its replacement (a leaf shared by several items is held once)

    def hold(self, data: Any) -> Any:
        leaves: dict[int, Any] = {}
        self._collect(data, leaves)
        with ThreadPoolExecutor(self.workers) as pool:  # decoding releases the GIL
            for leaf, value in zip(leaves.values(), pool.map(lambda ref: ref.load(), leaves.values())):
                size = nbytes(value)
                if self.stats.bytes + size > self.budget:
                    self.stats.left += 1
                    self._done[id(leaf)] = leaf
                    continue
                self.stats.held += 1
                self.stats.bytes += size
                self._done[id(leaf)] = Held(leaf.key, value, getattr(leaf, "cache_id", None))
        return self._rebuild(data)

    def _collect(self, obj: Any, leaves: dict[int, Any]) -> None:
        if _is_leaf(obj):
            leaves.setdefault(id(obj), obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                self._collect(item, leaves)
        elif isinstance(obj, dict):
            for item in obj.values():
                self._collect(item, leaves)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                self._collect(getattr(obj, f.name), leaves)

    def _rebuild(self, obj: Any) -> Any:
        if id(obj) in self._done:
            return self._done[id(obj)]
        if isinstance(obj, list):
            return [self._rebuild(item) for item in obj]
        if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
            return tuple(self._rebuild(item) for item in obj)
        if isinstance(obj, dict):
            return {k: self._rebuild(v) for k, v in obj.items()}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            changes = {f.name: self._rebuild(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
            return dataclasses.replace(obj, **changes)
        return obj


def hold(data: Any, budget_bytes: int, workers: int = 1) -> tuple[Any, HeldStats]:
    holder = Holder(budget_bytes, workers)
    return holder.hold(data), holder.stats
