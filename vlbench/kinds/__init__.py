"""Task kinds, one unit per evaluation protocol: options schema, predict, pure score, ties, resampler.

The built-in kinds are registered by reference in ``registry.TASK_KINDS`` and imported on first use (a
kind's module imports torch); plugins add theirs through the ``vlbench.kinds`` entry-point group.
"""

from vlbench.kinds.registry import BUILTIN_KINDS, TASK_KINDS

for _name, _reference in BUILTIN_KINDS.items():
    TASK_KINDS.add_reference(_name, _reference)

__all__ = ["TASK_KINDS"]
