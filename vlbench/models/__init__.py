"""Model adapters. Importing this package registers the built-in ones."""

from vlbench.models.base import ModelAdapter, ModelSpec, parse_model_spec
from vlbench.models.registry import MODEL_ADAPTERS
from vlbench.models import hf as _hf, openclip as _openclip  # noqa: F401  (registration)

__all__ = ["MODEL_ADAPTERS", "ModelAdapter", "ModelSpec", "parse_model_spec"]
