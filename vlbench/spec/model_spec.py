"""Model spec strings, parsed without importing any model library.

A spec is ``<adapter>:<name>[@<tag>][?key=value&...]``, e.g. ``openclip:ViT-B-32@laion2b_s34b_b79k``,
``hf:openai/clip-vit-base-patch32``, ``openclip:/ckpt/epoch_32.pt?arch=ViT-B-32``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vlbench.errors import VLBenchError

#: The --precision values an adapter runs in (``vlbench.models.base.PRECISIONS`` maps them to autocast dtypes).
PRECISION_NAMES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ModelSpec:
    adapter: str
    name: str
    tag: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Canonical spec string; results are keyed by it."""
        text = f"{self.adapter}:{self.name}"
        if self.tag:
            text += f"@{self.tag}"
        if self.options:
            text += "?" + "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return text

    @property
    def slug(self) -> str:
        """A folder name for this model's results: readable, stable, and distinct for distinct ids.

        The id with its first ':' as '__'. When that is not a plain, reversible folder name (other
        characters replaced, too long), a short hash of the full id is appended, so that e.g.
        ``sl/run1/epoch_1.pt`` and ``sl/run1_epoch_1.pt`` never share a folder.
        """
        from hashlib import sha1

        readable = re.sub(r"[^A-Za-z0-9._@+-]+", "_", self.id.replace(":", "__", 1)).strip("_")
        reversible = readable.replace("__", ":", 1) == self.id and not readable.startswith(".")
        if reversible and len(readable) <= 80:
            return readable
        return readable[:70].rstrip("_") + "-" + sha1(self.id.encode()).hexdigest()[:8]


def parse_model_spec(text: str) -> ModelSpec:
    """Split on the first ':' for the adapter; '?' starts options; a final '@tag' is the tag."""
    adapter, sep, rest = text.strip().partition(":")
    if not sep or not adapter or not rest:
        raise VLBenchError(f"model spec '{text}' must look like <adapter>:<name>[@tag], e.g. openclip:ViT-B-32")
    rest, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq:
            raise VLBenchError(f"model spec option '{item}' in '{text}' must be key=value")
        options[key] = value
    name, tag = rest, None
    head, at, tail = rest.rpartition("@")
    if at and head and tail and "/" not in tail and not Path(rest).expanduser().exists():
        name, tag = head, tail
    return ModelSpec(adapter=adapter, name=name, tag=tag, options=options)
