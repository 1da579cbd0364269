"""Model adapters. Importing this package registers the built-in ones."""

# Importing hf and openclip registers their adapters in MODEL_ADAPTERS.
from vlbench.models import hf, openclip  # noqa: E402,F401,I001
from vlbench.models.base import ModelAdapter, ModelSpec, parse_model_spec
from vlbench.models.registry import MODEL_ADAPTERS

__all__ = ["MODEL_ADAPTERS", "ModelAdapter", "ModelSpec", "parse_model_spec"]
