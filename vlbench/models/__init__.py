"""Model adapters: spec string or model object -> image transform + two encoders.

The built-in adapters (``openclip``, ``hf``) are registered by reference (``vlbench.registries``) and imported on first use, so that
naming models, suites or tasks imports no model library; ``ModelAdapter`` and friends are imported from their
modules on first access (``vlbench.models.ModelAdapter`` works as before).
"""

from __future__ import annotations

from typing import Any

from vlbench.registries import MODEL_ADAPTERS
from vlbench.spec.model_spec import ModelSpec, parse_model_spec

__all__ = ["MODEL_ADAPTERS", "ModelAdapter", "ModelSpec", "parse_model_spec"]


def __getattr__(name: str) -> Any:
    if name == "ModelAdapter":
        from vlbench.models.base import ModelAdapter

        return ModelAdapter
    raise AttributeError(f"module 'vlbench.models' has no attribute '{name}'")
