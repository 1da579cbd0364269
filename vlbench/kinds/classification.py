"""Zero-shot classification: class embeddings from templates, top-k and mean per-class recall."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch

from vlbench import metrics
from vlbench.datasets.classification import CLASSIFICATION_READERS, ClassificationData
from vlbench.encoding import Encoder
from vlbench.errors import TaskSpecError, VLBenchError
from vlbench.kinds.registry import TASK_KINDS
from vlbench.kinds.base import RunContext, TaskKind
from vlbench.schema import option, schema
from vlbench.specs import TaskSpec

PLACEHOLDER = "{c}"
TOP_K_RECORDED = 5


def fill_template(template: str, name: str) -> str:
    return template.replace(PLACEHOLDER, name)


def zero_shot_classifier(encoder: Encoder, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """[C, D]: per class, the mean of its L2-normalised template embeddings, renormalised."""
    texts = [fill_template(t, c) for c in classnames for t in templates]
    embeddings = encoder.texts(texts, "class prompts").view(len(classnames), len(templates), -1)
    mean = embeddings.mean(dim=1)
    return mean / mean.norm(dim=-1, keepdim=True)


@schema
class ClassificationFiles:
    classnames: str | None = option(None, help="class names, one per line in label order (default: the dataset's own)")
    templates: str | None = option(None, help="prompt templates with {c}, one per line (default: the dataset's own)")


@TASK_KINDS.register("classification")
class ClassificationKind(TaskKind):
    """Zero-shot classification: class embeddings from templates; top-k accuracy and mean per-class recall."""

    name = "classification"
    readers = CLASSIFICATION_READERS
    metric_patterns = ("acc1", "acc5", "mean_per_class_recall")
    files_schema = ClassificationFiles

    @classmethod
    def check(cls, spec: TaskSpec) -> None:
        templates = spec.read_lines("templates")
        for template in templates or []:
            if PLACEHOLDER not in template:
                raise TaskSpecError(spec.source_file, "files.templates", f"template without {PLACEHOLDER}: '{template}'")

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        return data.limited(ctx.limit), located

    def prompts(self, spec: TaskSpec, data: ClassificationData) -> tuple[list[str], list[str]]:
        classnames = spec.read_lines("classnames") or data.classnames
        templates = spec.read_lines("templates") or data.templates
        if not classnames:
            raise VLBenchError(f"task '{spec.name}' has no class names: add files.classnames to the task file")
        if not templates:
            raise VLBenchError(f"task '{spec.name}' has no templates: add files.templates to the task file")
        top_label = max(data.labels, default=-1)
        if top_label >= len(classnames):
            raise VLBenchError(
                f"task '{spec.name}': the data has label {top_label} but only {len(classnames)} class names"
            )
        return classnames, templates

    def predict(self, model: Any, data: ClassificationData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        classnames, templates = self.prompts(spec, data)
        classifier = zero_shot_classifier(ctx.encoder, classnames, templates)
        for indices, embeddings in ctx.encoder.iter_images(data.images, spec.name):
            logits = embeddings @ classifier.T
            top = metrics.stable_topk(logits, TOP_K_RECORDED)
            top_scores = logits.gather(1, top)
            for row, i in enumerate(indices):
                yield {
                    "i": i,
                    "key": data.images[i].key,
                    "label": data.labels[i],
                    "top": top[row].tolist(),
                    "scores": [round(s, 6) for s in top_scores[row].tolist()],
                }

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        records = list(records)
        labels = [r["label"] for r in records]
        tops = [r["top"] for r in records]
        enough_classes = all(len(t) >= TOP_K_RECORDED for t in tops)
        results = {
            "acc1": metrics.topk_accuracy(tops, labels, 1),
            # CLIP_benchmark reports no top-5 accuracy for tasks with fewer than 5 classes
            "acc5": metrics.topk_accuracy(tops, labels, 5) if enough_classes else float("nan"),
            "mean_per_class_recall": metrics.mean_per_class_recall([t[0] for t in tops], labels),
        }
        return {name: results[name] for name in spec.metrics}
