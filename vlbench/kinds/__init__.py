"""Task kinds. Importing this package registers the built-in ones in ``registry.TASK_KINDS``."""

from vlbench.kinds.registry import TASK_KINDS
from vlbench.kinds import association, classification, grounding, multilabel, retrieval, segmentation, selection  # noqa: E402,F401,I001

__all__ = ["TASK_KINDS"]
