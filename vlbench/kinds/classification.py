"""Zero-shot classification: class embeddings from templates, top-k and mean per-class recall."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch

from vlbench import metrics
from vlbench.datasets.classification import CLASSIFICATION_READERS, ClassificationData
from vlbench.encoding.encoder import Encoder
from vlbench.bootstrap import Resampler, grouping, macro_mean, weighted_mean, worst_group_mean
from vlbench.errors import TaskSpecError, VLBenchError
from vlbench.registries import TASK_KINDS
from vlbench.kinds.base import Decisions, RunContext, TaskKind, autocast_used, mean_bounds, tie_report
from vlbench.spec.schema import SchemaError, option, schema
from vlbench.spec.fields import ProtocolFields
from vlbench.spec.taskfile import TaskSpec

PLACEHOLDER = "{c}"
TOP_K_RECORDED = 5


def fill_template(template: str, name: str) -> str:
    return template.replace(PLACEHOLDER, name)


def zero_shot_classifier(encoder: Encoder, classnames: list[str], templates: list[str], autocast: str = "none") -> torch.Tensor:
    """[C, D]: per class, the mean of its L2-normalised template embeddings, renormalised."""
    texts = [fill_template(t, c) for c in classnames for t in templates]
    embeddings = encoder.texts(texts, "class prompts", autocast=autocast).view(len(classnames), len(templates), -1)
    mean = embeddings.mean(dim=1)
    return mean / mean.norm(dim=-1, keepdim=True)


def packaged_classnames(spec: TaskSpec) -> list[str] | None:
    """The task's class names; with ``files.class_ids`` (one id per name) and ``files.class_subset``
    only the names whose id is in the subset, in their original order (ImageNet-A/-R/-O)."""
    names = spec.read_lines("classnames")
    ids, subset = spec.read_lines("class_ids"), spec.read_lines("class_subset")
    if names is None or ids is None or subset is None:
        return names
    if len(ids) != len(names):
        raise VLBenchError(f"task '{spec.name}': files.class_ids has {len(ids)} lines but files.classnames has {len(names)}")
    keep = set(subset)
    return [name for name, class_id in zip(names, ids) if class_id in keep]


def choose_prompts(spec: TaskSpec, data: ClassificationData, key: str) -> tuple[list[str] | None, str]:
    """Class names or templates, in CLIP_benchmark's precedence: a list given on the command line
    (its custom files), then the dataset's own (a webdataset folder's), then the task's packaged
    file, then whatever the dataset provides (folder names, ClassLabel names).
    ``protocol.dataset_prompts: false``, or a language other than English, makes the task's files
    win over the dataset's own."""
    packaged = packaged_classnames(spec) if key == "classnames" else spec.read_lines(key)
    own = getattr(data, key)
    if f"files.{key}" in spec.overridden and packaged is not None:
        return packaged, "--set"
    protocol = ClassificationKind.options(spec)
    if data.own_prompts and own is not None and protocol.dataset_prompts and spec.config.get("language", "en") == "en":
        if protocol.wds_blank_lines == "drop":  # CLIP_benchmark 1.4.0: later class names move up one
            return [line for line in own if line], "dataset folder (blank lines dropped)"
        return own, "dataset folder"
    if packaged is not None:
        return packaged, "task file"
    return own, "dataset"


@schema
class ClassificationFiles:
    classnames: str | None = option(None, help="class names, one per line in label order (default: the dataset's own)")
    templates: str | None = option(None, help="prompt templates with {c}, one per line (default: the dataset's own)")
    class_ids: str | None = option(None, help="one class id per line of classnames (with class_subset: ImageNet-A/-R/-O)")
    class_subset: str | None = option(None, help="the class ids evaluated, one per line; needs class_ids")

    def check(self) -> None:
        if (self.class_ids is None) != (self.class_subset is None):
            raise SchemaError("class_subset" if self.class_subset is None else "class_ids", "class_ids and class_subset go together")


@schema
class GroupMetric:
    """One entry under ``protocol.group_metrics``: a worst-group accuracy."""

    column: int = option(help="the metadata column (of the webdataset's .npy member) whose values are the groups", low=0)
    top_k: int = option(1, help="top-k accuracy per group", choices=(1, 5))


@schema
class ClassificationProtocol(ProtocolFields):
    dataset_prompts: bool = option(True, help="a webdataset folder's own class names/templates win over the task's files (CLIP_benchmark)")
    wds_blank_lines: Literal["keep", "drop"] = option("keep", help="blank lines of a webdataset folder's class names and templates: keep "
                                                      "(CLIP_benchmark >= 1.6: line i is class i) or drop (1.4.0, which DataComp pins: the "
                                                      "names after a blank one move up, and the last labels have no name, so never count as right)")
    text_autocast: Literal["none", "cuda_fp16"] = option("none", help="encode the class prompts under fp16 autocast when the model runs on "
                                                         "CUDA, nothing on the CPU (DataComp: zero_shot_classifier with amp on in "
                                                         "CLIP_benchmark 1.4.0); images keep the run's precision")
    group_metrics: dict[str, GroupMetric] = option({}, help="metric name -> worst-group accuracy over a metadata column (DataComp's WILDS and fairness sets)")


class ClassificationResampler(Resampler):
    """Images. acc1 / acc5: weighted means of the top-k hits; mean per-class recall (and WILDS' recall-macro_all,
    the same number): the mean over the classes drawn of their weighted top-1 accuracy; worst-group accuracies:
    the lowest weighted accuracy over the groups drawn."""

    unit = "images"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.keys = [r.get("key", r.get("i")) for r in records]
        labels = np.asarray([r["label"] for r in records], dtype=np.int64)
        self.hits = {k: np.asarray([r["label"] in r["top"][:k] for r in records], dtype=np.float64) for k in (1, TOP_K_RECORDED)}
        self.top5_defined = all(len(r["top"]) >= TOP_K_RECORDED for r in records)
        self.classes = grouping(labels)
        self.group_metrics = {}
        for name, group in (group_metrics(spec) if spec is not None else {}).items():
            if all("meta" in r for r in records):
                codes = np.asarray([int(r["meta"][group.column]) for r in records], dtype=np.int64)
                self.group_metrics[name] = (self.hits[group.top_k], grouping(codes))

    def outcomes(self, name: str) -> np.ndarray | None:
        return {"acc1": self.hits[1], "acc5": self.hits[TOP_K_RECORDED] if self.top5_defined else None}.get(name)

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        (w,) = weights
        if name in ("acc1", "acc5"):
            values = self.outcomes(name)  # no top-5 accuracy below 5 classes, as CLIP_benchmark
            return np.full(w.shape[0], np.nan) if values is None else weighted_mean(w, values)
        if name in ("mean_per_class_recall", "recall-macro_all"):  # classes present in the resample, as balanced accuracy
            order, starts, _ = self.classes
            return macro_mean(w, self.hits[1], order, starts)
        if name in self.group_metrics:
            hits, (order, starts, _) = self.group_metrics[name]
            return worst_group_mean(w, hits, order, starts)
        return None


@TASK_KINDS.register("classification")
class ClassificationKind(TaskKind):
    """Zero-shot classification: class embeddings from templates; top-k accuracy and mean per-class recall."""

    name = "classification"
    resampler = ClassificationResampler
    readers = CLASSIFICATION_READERS
    metric_patterns = ("acc1", "acc5", "mean_per_class_recall", "F1-macro_all", "recall-macro_all")
    protocol_schema = ClassificationProtocol
    files_schema = ClassificationFiles
    record_fields = {
        "i": (int, "the image's position in the dataset"),
        "key": (str | None, "the image's key"),
        "label": (int, "its class"),
        "top": (list[int], "the 5 best classes, best first (equal scores: lower index first)"),
        "scores": (list[float] | None, "their scores (rounded to 6 digits)"),
        "tie": (list[int] | None, "when the label shares its score: [classes above it, classes at its score]"),
        "meta": (list[int] | None, "the sample's metadata row (group metrics)"),
    }

    @classmethod
    def task_metrics(cls, spec: TaskSpec) -> list[str]:
        return list(group_metrics(spec))

    @classmethod
    def check(cls, spec: TaskSpec) -> None:
        templates = spec.read_lines("templates")
        for template in templates or []:
            if PLACEHOLDER not in template:
                raise TaskSpecError(spec.source_file, "files.templates", f"template without {PLACEHOLDER}: '{template}'")

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        return data.limited(ctx.limit), located

    def decide(self, model: Any, data: ClassificationData, spec: TaskSpec) -> Decisions:
        decisions = super().decide(model, data, spec)
        decisions.protocol["prompts"] = {key: choose_prompts(spec, data, key)[1] for key in ("classnames", "templates")}
        decisions.protocol["text_autocast_used"] = autocast_used(model, self.options(spec).text_autocast)
        return decisions

    def prompts(self, spec: TaskSpec, data: ClassificationData) -> tuple[list[str], list[str]]:
        classnames, _ = choose_prompts(spec, data, "classnames")
        templates, _ = choose_prompts(spec, data, "templates")
        if not classnames:
            raise VLBenchError(f"task '{spec.name}' has no class names: add files.classnames to the task file")
        if not templates:
            raise VLBenchError(f"task '{spec.name}' has no templates: add files.templates to the task file")
        top_label = max(data.labels, default=-1)
        if top_label >= len(classnames) and self.options(spec).wds_blank_lines != "drop":
            raise VLBenchError(
                f"task '{spec.name}': the data has label {top_label} but only {len(classnames)} class names"
            )
        return classnames, templates

    def predict(self, model: Any, data: ClassificationData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        classnames, templates = self.prompts(spec, data)
        ctx.encoder.prefetch_images(data.images)  # images decode while the prompts encode
        classifier = zero_shot_classifier(ctx.encoder, classnames, templates, self.options(spec).text_autocast)
        records: list[dict[str, Any] | None] = [None] * len(data.images)
        for indices, embeddings in ctx.encoder.iter_images(data.images, spec.name):
            logits = metrics.similarities(embeddings, classifier)
            top = metrics.stable_topk(logits, TOP_K_RECORDED)
            top_scores = logits.gather(1, top)
            labels = torch.tensor([data.labels[i] for i in indices]).unsqueeze(1)
            # a label without a class name (wds_blank_lines: drop) scores below every class: never right, never tied
            label_scores = logits.gather(1, labels.clamp(max=logits.shape[1] - 1)).masked_fill(labels >= logits.shape[1], float("-inf"))
            above, tied = (logits > label_scores).sum(1).tolist(), (logits == label_scores).sum(1).tolist()
            for row, i in enumerate(indices):
                record = {
                    "i": i,
                    "key": data.images[i].key,
                    "label": data.labels[i],
                    "top": top[row].tolist(),
                    "scores": [round(s, 6) for s in top_scores[row].tolist()],
                }
                if tied[row] > 1:  # the label shares its score with other classes: [classes above it, classes at its score]
                    record["tie"] = [above[row], tied[row]]
                if data.metadata is not None:
                    record["meta"] = data.metadata[i]
                records[i] = record
        yield from (r for r in records if r is not None)  # item order, whichever images came from the cache

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        """acc1, acc5, mean per-class recall and the group metrics from the resampler with every image once
        (one definition for the number and its interval); macro F1 from ``metrics``."""
        records = list(records)
        if any(name in group_metrics(spec) for name in spec.metrics) and any("meta" not in r for r in records):
            raise VLBenchError(f"task '{spec.name}': its group metrics need each sample's metadata row (the webdataset's .npy member)")
        results = self.point_estimates(records, spec, spec.metrics)
        if "F1-macro_all" in spec.metrics:
            results["F1-macro_all"] = metrics.macro_over_present_labels([r["top"][0] for r in records], [r["label"] for r in records], "f1")
        return {name: results[name] for name in spec.metrics}

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
        return classification_ties(records, spec)


TIE_RULE = ("equal scores rank in class-index order (lower index first, as np.argmax); CLIP_benchmark's and DataComp's "
            "torch.topk leave that order to the data: low/high rank the label after/before every class it ties with")


def label_hit_bounds(record: dict[str, Any], k: int) -> tuple[float, float, float]:
    """(low, high, expected) of "the label is in the top k" over the orders of the classes tied with it."""
    if "tie" not in record:
        hit = float(record["label"] in record["top"][:k])
        return hit, hit, hit
    above, tied = record["tie"]
    return metrics.hit_bounds(above, tied, 1, k)


def classification_ties(records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
    """acc1 / acc5 / mean per-class recall (and its macro-recall twin, worst-group accuracies) over tie orders."""
    ks = [1, 5] if all(len(r["top"]) >= TOP_K_RECORDED for r in records) else [1]
    per_k = {k: [label_hit_bounds(r, k) for r in records] for k in ks}
    decided = sum(any(per_k[k][n][0] != per_k[k][n][1] for k in ks) for n in range(len(records)))
    labels = np.asarray([r["label"] for r in records])
    per_class = [mean_bounds(b for b, label in zip(per_k[1], labels) if label == c) for c in np.unique(labels)]
    bounds: dict[str, tuple[float | None, float | None, float | None]] = {
        "acc1": mean_bounds(per_k[1]), "mean_per_class_recall": mean_bounds(per_class), "recall-macro_all": mean_bounds(per_class)}
    if 5 in per_k:
        bounds["acc5"] = mean_bounds(per_k[5])
    for name, group in group_metrics(spec).items():
        groups = np.asarray([int(r["meta"][group.column]) for r in records]) if all("meta" in r for r in records) else None
        if groups is not None and group.top_k in per_k:
            means = [mean_bounds(b for b, g in zip(per_k[group.top_k], groups) if g == value) for value in np.unique(groups)]
            bounds[name] = (min(m[0] for m in means), min(m[1] for m in means), None)
    return tie_report(decided, TIE_RULE, {name: value for name, value in bounds.items() if name in spec.metrics})


def group_metrics(spec: TaskSpec) -> dict[str, GroupMetric]:
    """``protocol.group_metrics``: metric name -> metadata column and top-k, the worst-group
    accuracies DataComp reports for its WILDS and fairness sets."""
    return ClassificationKind.options(spec).group_metrics


