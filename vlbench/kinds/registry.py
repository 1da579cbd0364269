"""The task-kind registry (kept apart so that kinds and the catalog import it without cycles)."""

from vlbench.errors import VLBenchError
from vlbench.registry import Registry


def require_resampler(name: str, kind: object) -> None:
    """A kind is one unit: without a bootstrap resampler its results would silently have no intervals."""
    resampler = getattr(kind, "resampler", None)
    if not (isinstance(resampler, type) and callable(getattr(resampler, "metric", None))):
        raise VLBenchError(f"task kind '{name}' ({getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', kind)}) declares no "
                           "resampler: set its 'resampler' to a vlbench.bootstrap.Resampler subclass that computes its metrics "
                           "from count-weighted records (its confidence intervals, and the point estimates 'score' reports)")


TASK_KINDS: Registry = Registry("task kind", entry_point_group="vlbench.kinds", check=require_resampler)

#: The built-in kinds, imported when first named (``vlbench.kinds`` registers them).
BUILTIN_KINDS = {
    "association": "vlbench.kinds.association:AssociationKind",
    "classification": "vlbench.kinds.classification:ClassificationKind",
    "grounding": "vlbench.kinds.grounding:GroundingKind",
    "multilabel_classification": "vlbench.kinds.multilabel:MultilabelKind",
    "retrieval": "vlbench.kinds.retrieval:RetrievalKind",
    "segmentation": "vlbench.kinds.segmentation:SegmentationKind",
    "selection": "vlbench.kinds.selection:SelectionKind",
}
