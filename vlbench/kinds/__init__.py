"""Task kinds. Importing this package registers the built-in ones."""

from vlbench.registry import Registry

TASK_KINDS: Registry = Registry("task kind", entry_point_group="vlbench.kinds")

from vlbench.kinds import classification as _classification, retrieval as _retrieval, selection as _selection  # noqa: E402,F401

__all__ = ["TASK_KINDS"]
