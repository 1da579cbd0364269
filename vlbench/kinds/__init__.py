"""Task kinds. Importing this package registers the built-in ones."""

from vlbench.registry import Registry

TASK_KINDS: Registry = Registry("task kind", entry_point_group="vlbench.kinds")

from vlbench.kinds import (  # noqa: E402,F401  (registration)
    classification as _classification,
    grounding as _grounding,
    retrieval as _retrieval,
    segmentation as _segmentation,
    selection as _selection,
)

__all__ = ["TASK_KINDS"]
