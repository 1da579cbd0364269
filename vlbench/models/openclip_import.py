"""Import open_clip without the libraries of towers a run does not build.

``import open_clip`` imports transformers (for Hugging Face text towers, 0.6-0.9 s) and timm (for
timm vision towers, 0.7 s) whatever model is wanted; most CLIP architectures need neither. open_clip
imports both inside ``try: ... except ImportError`` and only uses them when it builds such a tower,
so when the architecture's config names no ``hf_model_name`` / ``timm_model_name`` we import
open_clip with the two withheld. When a later model in the same process does need them, the three
open_clip modules that bound them (``hf_model``, ``timm_model``, ``coca_model``) are executed again
with the libraries present: their classes look the names up in their module at call time, so every
class open_clip already handed out works from then on.

``vlbench.models.openclip`` (the adapter) decides what an architecture needs; this module only
imports. Only a ``vlbench run`` process imports lean (``allow_lean_import``, called by the run command):
a program using vlbench as a library keeps the open_clip it would get from ``import open_clip``; and
before the run loads a model through any other adapter (a plugin may build open_clip towers itself),
the loader makes open_clip whole (``make_whole``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable

OPTIONAL_TOWER_LIBRARIES = ("transformers", "timm")
MODULES_BINDING_THEM = ("open_clip.hf_model", "open_clip.timm_model", "open_clip.coca_model")
WITHHELD_ATTRIBUTE = "_vlbench_withheld"


class _Withhold(importlib.abc.MetaPathFinder):
    """Makes ``import <name>`` fail as if the library were not installed."""

    def __init__(self, names: Iterable[str]):
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 (the finder protocol)
        if fullname.partition(".")[0] in self.names:
            raise ImportError(f"{fullname} is withheld while open_clip imports", name=fullname)
        return None


def open_clip_config_dirs() -> list[Path]:
    """open_clip's own architecture configs, found without importing it."""
    spec = importlib.util.find_spec("open_clip")
    return [Path(location) / "model_configs" for location in (spec.submodule_search_locations or [])] if spec else []


def config_needs_towers(config: dict) -> bool:
    """Whether an open_clip architecture config builds a Hugging Face text tower or a timm vision tower."""
    text, vision = config.get("text_cfg") or {}, config.get("vision_cfg") or {}
    return bool(text.get("hf_model_name") or vision.get("timm_model_name"))


def architecture_needs_towers(arch: str | None, extra_dirs: Iterable[Path] = (), extra_files: Iterable[Path] = ()) -> bool:
    """False only when the architecture's config file is found and names neither kind of tower;
    unknown names, ``hf-hub:`` / ``local-dir:`` models and unreadable configs count as needing them."""
    if not arch or ":" in arch:
        return True
    named = [Path(path) for path in extra_files if Path(path).stem == arch]  # open_clip registers a config file by its stem
    for path in [*named, *(Path(folder) / f"{arch}.json" for folder in [*extra_dirs, *open_clip_config_dirs()])]:
        if path.is_file():
            try:
                return config_needs_towers(json.loads(path.read_text()))
            except (OSError, ValueError, AttributeError):
                return True
    return True


_lean_allowed = False


def allow_lean_import() -> None:
    """Let this process import open_clip lean (the run command does; see the module docstring)."""
    global _lean_allowed
    _lean_allowed = True


def withheld_libraries(needs_towers: bool, loaded: Iterable[str], allowed: bool | None = None) -> list[str]:
    """The tower libraries to withhold while open_clip imports: none unless lean imports are allowed and the towers
    are not needed; never one already imported (``loaded``) or not installed."""
    if needs_towers or not (_lean_allowed if allowed is None else allowed):
        return []
    present = set(loaded)
    return [name for name in OPTIONAL_TOWER_LIBRARIES if name not in present and importlib.util.find_spec(name) is not None]


def make_whole() -> None:
    """open_clip with every tower library, if it was imported lean (nothing otherwise)."""
    if getattr(sys.modules.get("open_clip"), WITHHELD_ATTRIBUTE, ()):
        import_open_clip(needs_towers=True)


def import_open_clip(needs_towers: bool = True) -> ModuleType:
    """open_clip, imported lean when ``needs_towers`` is False, lean imports are allowed and it is not imported
    yet; restored to its full self when a caller needs the towers after a lean import."""
    open_clip = sys.modules.get("open_clip")
    if open_clip is None:
        withheld = withheld_libraries(needs_towers, sys.modules)
        finder = _Withhold(withheld)
        sys.meta_path.insert(0, finder)
        try:
            import open_clip
        finally:
            sys.meta_path.remove(finder)
        setattr(open_clip, WITHHELD_ATTRIBUTE, tuple(withheld))
    elif needs_towers and getattr(open_clip, WITHHELD_ATTRIBUTE, ()):
        for name in getattr(open_clip, WITHHELD_ATTRIBUTE):
            importlib.import_module(name)
        for module in MODULES_BINDING_THEM:
            if module in sys.modules:
                importlib.reload(sys.modules[module])
        setattr(open_clip, WITHHELD_ATTRIBUTE, ())
    return open_clip
