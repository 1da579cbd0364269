"""The task-kind registry (kept apart so that kinds and the catalog import it without cycles)."""

from vlbench.registry import Registry

TASK_KINDS: Registry = Registry("task kind", entry_point_group="vlbench.kinds")
