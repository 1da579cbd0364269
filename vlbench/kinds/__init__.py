"""Task kinds, one unit per evaluation protocol: options schema, predict, pure score, ties, resampler.

The built-in kinds are registered by reference in ``vlbench.registries.TASK_KINDS`` and imported on first use
(a kind's module imports torch); plugins add theirs through the ``vlbench.kinds`` entry-point group.
"""

from vlbench.registries import TASK_KINDS

__all__ = ["TASK_KINDS"]
