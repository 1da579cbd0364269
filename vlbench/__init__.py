"""vlbench: zero-shot evaluation harness for vision-language models.

The library face (``vlbench.evaluate``, ``vlbench.Evaluator``, ``vlbench.load_results``) lives in
``vlbench.api`` and is imported on first use, so ``import vlbench`` imports no torch.
"""

from typing import Any

__version__ = "0.1.0"

_API = ("evaluate", "Evaluator", "EvaluationResults", "TaskResult", "load_results")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import vlbench.api as api

        return getattr(api, name)
    raise AttributeError(f"module 'vlbench' has no attribute '{name}'")
