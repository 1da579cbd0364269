"""Many models per run: comma lists, spec files and named collections.

A collection in registry.yaml (``models: collections:``) is either a list of specs (which may name
aliases or other collections) or the name of a generator in ``vlbench.registries.MODEL_GENERATORS``, such as
``openclip_pretrained`` (every architecture@tag pair open_clip ships).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from vlbench.errors import VLBenchError
from vlbench.registries import MODEL_GENERATORS



@MODEL_GENERATORS.register("openclip_pretrained")
def openclip_pretrained() -> list[str]:
    """open_clip's pretrained list; ``X@tag`` is left out when the tag forces QuickGELU and
    ``X-quickgelu@tag`` is listed too (vlbench loads both as the same QuickGELU model)."""
    import open_clip

    pairs = [tuple(p) for p in open_clip.list_pretrained()]
    listed = set(pairs)
    specs = []
    for arch, tag in pairs:
        if (f"{arch}-quickgelu", tag) in listed and open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu"):
            continue
        specs.append(f"openclip:{arch}@{tag}")
    return specs


def split_specs(values: Iterable[str]) -> list[str]:
    """``--model a,b --model c`` -> [a, b, c]; blanks dropped."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def read_spec_file(path: Path) -> list[str]:
    """One spec (or collection name) per line; ``#`` at the start or after a space starts a comment."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise VLBenchError(f"cannot read the --models file {path}: {exc.strerror or exc}") from exc
    specs = [re.sub(r"(^|\s)#.*$", "", line).strip() for line in text.splitlines()]
    specs = [s for s in specs if s]
    if not specs:
        raise VLBenchError(f"the --models file {path} names no model (one spec per line, # for comments)")
    return specs
