"""The task-kind registry (kept apart so that kinds and the catalog import it without cycles)."""

from vlbench.registry import Registry

TASK_KINDS: Registry = Registry("task kind", entry_point_group="vlbench.kinds")

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
