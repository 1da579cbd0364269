"""The registries that cross wings: task kinds, model adapters and model collection generators.

Each holds its built-in entries by reference (``module:attr``, imported when first named) and takes plugins
from its entry-point group. They sit at the bottom so that the catalog (``vlbench.spec``) can name kinds and
adapters without importing the packages that implement them: listing tasks or suites imports no torch.
The dataset-format registries stay beside their kinds' readers (``vlbench.datasets``), which only kinds use.
"""

from __future__ import annotations

from typing import Callable

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
MODEL_ADAPTERS: Registry = Registry("model adapter", entry_point_group="vlbench.models")
MODEL_GENERATORS: Registry[Callable[[], list[str]]] = Registry("model collection generator")

BUILTIN_KINDS = {
    "association": "vlbench.kinds.association:AssociationKind",
    "classification": "vlbench.kinds.classification:ClassificationKind",
    "clustering": "vlbench.kinds.clustering:ClusteringKind",
    "geometry": "vlbench.kinds.geometry:GeometryKind",
    "grounding": "vlbench.kinds.grounding:GroundingKind",
    "instance_retrieval": "vlbench.kinds.instance_retrieval:InstanceRetrievalKind",
    "knn": "vlbench.kinds.knn:KnnKind",
    "linear_probe": "vlbench.kinds.linear_probe:LinearProbeKind",
    "multilabel_classification": "vlbench.kinds.multilabel:MultilabelKind",
    "reassessed_classification": "vlbench.kinds.reassessed:ReassessedKind",
    "retrieval": "vlbench.kinds.retrieval:RetrievalKind",
    "segmentation": "vlbench.kinds.segmentation:SegmentationKind",
    "selection": "vlbench.kinds.selection:SelectionKind",
}
BUILTIN_ADAPTERS = {
    "openclip": "vlbench.models.openclip:OpenClipAdapter",
    "hf": "vlbench.models.hf:HFAdapter",
}
BUILTIN_GENERATORS = {
    "openclip_pretrained": "vlbench.models.collections:openclip_pretrained",
}

for _registry, _builtins in ((TASK_KINDS, BUILTIN_KINDS), (MODEL_ADAPTERS, BUILTIN_ADAPTERS), (MODEL_GENERATORS, BUILTIN_GENERATORS)):
    for _name, _reference in _builtins.items():
        _registry.add_reference(_name, _reference)
