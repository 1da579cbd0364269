"""Task kinds. Importing this package registers the built-in ones."""

from vlbench.registry import Registry

TASK_KINDS: Registry = Registry("task kind", entry_point_group="vlbench.kinds")

# Registration: each module adds its kind to TASK_KINDS (they import TASK_KINDS from here).
from vlbench.kinds import association, classification, grounding, multilabel, retrieval, segmentation, selection  # noqa: E402,F401,I001

__all__ = ["TASK_KINDS"]
