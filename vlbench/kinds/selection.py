"""Selection benchmarks (ARO, SugarCrepe, Winoground): per instance an images x captions matrix.

The expensive part encodes every distinct image and caption once and logs each instance's score
matrix. A task's ``protocol.rule`` turns a matrix into outcomes, and the metrics average them:

- ``argmax``: correct when the first maximum of the caption scores is the answer (``np.argmax``;
  ARO: a tie counts as wrong for VG, where the answer is index 1, and right for Order, index 0);
- ``strict``: correct when the answer scores strictly higher than every other caption (SugarCrepe);
- ``winoground``: text, image and group scores over the 2x2 matrix, with strict inequalities.

Tasks read with the ``records`` format may instead declare named outcomes (``protocol.outcomes``,
see ``selection_outcomes``): "every positive above every negative", text-anchored comparisons,
Winoground-style matrices and per-group breakdowns from any field.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from vlbench.datasets import records as _records  # noqa: F401  (registers the records format)
from vlbench.datasets.aro_order import TAGGERS
from vlbench.datasets.selection import SELECTION_READERS, SelectionData
from vlbench.bootstrap import Resampler, grouping, macro_mean, weighted_mean
from vlbench.errors import TaskSpecError, VLBenchError
from vlbench.kinds.base import Decisions, RunContext, TaskKind, tie_report
from vlbench.registries import TASK_KINDS
from vlbench.metrics import similarities
from vlbench.kinds.selection_outcomes import Outcome, outcome_rule_docs, records_mappings, score_outcomes, validate_outcomes
from vlbench.registry import Registry
from vlbench.spec.schema import SchemaError, as_dict, option, schema
from vlbench.spec.taskfile import TaskSpec
from vlbench.spec.fields import ProtocolFields

Matrix = list[list[float]]
SELECTION_RULES: Registry = Registry("selection rule")


@SELECTION_RULES.register("argmax")
def argmax_rule(scores: Matrix, answer: int | None) -> dict[str, bool]:
    """Correct when the first maximum of the caption scores is the answer (np.argmax; ties go to the first)."""
    return {"correct": int(np.argmax(scores[0])) == answer}


@SELECTION_RULES.register("strict")
def strict_rule(scores: Matrix, answer: int | None) -> dict[str, bool]:
    """Correct when the answer scores strictly higher than every other caption (a tie is wrong)."""
    row = scores[0]
    return {"correct": all(row[answer] > s for j, s in enumerate(row) if j != answer)}  # type: ignore[index]


@SELECTION_RULES.register("winoground")
def winoground_rule(scores: Matrix, answer: int | None) -> dict[str, bool]:
    """2 images x 2 captions: text, image and group scores with strict inequalities; scores[i][c] = s(caption c, image i)."""
    (s00, s01), (s10, s11) = scores  # s_ic
    text = s00 > s01 and s11 > s10  # each image prefers its own caption
    image = s00 > s10 and s11 > s01  # each caption prefers its own image
    return {"text": text, "image": image, "group": text and image}


def group_means(outcomes: list[bool], groups: list[str | None], exclude: set[str], min_count: int) -> dict[str, float]:
    by_group: dict[str, list[bool]] = defaultdict(list)
    for outcome, group in zip(outcomes, groups):
        if group is not None and group not in exclude:
            by_group[group].append(outcome)
    return {g: float(np.mean(v)) for g, v in sorted(by_group.items()) if len(v) >= min_count}


def nudged(record: dict[str, Any], direction: float, candidates: str = "captions") -> dict[str, Any]:
    """The record with the positive side's scores one float64 step towards ``direction``: the answer
    (single-image rules), each image's own caption (N x N matrices), the positive captions, or with
    ``candidates: images`` the positive images."""
    def step(value: float) -> float:
        return math.nextafter(value, direction)

    scores = [list(row) for row in record["scores"]]
    out = {**record, "scores": scores}
    if "positives" not in record:  # a rule's answer, or a matrix whose diagonal holds the pairs
        cells = [(0, record["answer"])] if record.get("answer") is not None else [(i, i) for i in range(min(len(scores), len(scores[0]) if scores else 0))]
        for r, c in cells:
            scores[r][c] = step(scores[r][c])
        return out
    if candidates == "images":
        for r in record.get("positive_images") or []:
            scores[r] = [step(v) for v in scores[r]]
        return out
    positives = set(record["positives"])
    out["scores"] = [[step(v) if c in positives else v for c, v in enumerate(row)] for row in scores]
    if "text_scores" in record:
        out["text_scores"] = [[step(v) if c in positives else v for c, v in enumerate(row)] for row in record["text_scores"]]
    return out


@schema
class SelectionProtocol(ProtocolFields):
    rule: str | None = option(None, help="how a score matrix becomes outcomes (see rules); or declare outcomes", choices=SELECTION_RULES.names)
    outcomes: dict[str, Outcome] | None = option(None, help="records format: named outcomes, each a metric of the same name (see outcome rules)")
    min_group_count: int = option(1, help="macro_accuracy: groups with fewer items are dropped", low=1)
    breakdown: str | bool | None = option(None, help="winoground rule: also report scores per group (the field named)")
    seed: int | None = option(None, help="seed of generated options (aro_order); --seed sets it where set")
    tagger: str = option("spacy", help="part-of-speech tagger of generated options (aro_order)", choices=TAGGERS.names)

    def check(self) -> None:
        if (self.rule is None) == (self.outcomes is None):
            raise SchemaError("rule", "give either rule or outcomes (records format), not both" if self.rule else "missing; give rule (see rules) or outcomes")
        if self.outcomes is not None and not self.outcomes:
            raise SchemaError("outcomes", "expected at least one outcome")


@schema
class SelectionFiles:
    excluded_groups: str | None = option(None, help="group names left out of macro_accuracy, one per line")
    order_options: str | None = option(None, help="aro_order: options saved by an earlier run, used instead of generating")


class SelectionResampler(Resampler):
    unit = "items"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        super().__init__(records, spec)
        self.declared: dict[str, tuple[np.ndarray, Any]] = {}
        if "outcomes" in spec.protocol:  # records format: the task file's declared outcomes
            self._declared(records, spec)
            return
        rule = SELECTION_RULES.get(spec.protocol["rule"])
        decided = [rule(r["scores"], r.get("answer")) for r in records]
        self.keys = [r.get("id", r.get("i")) for r in records]
        self.values = {name: np.asarray([d[name] for d in decided], dtype=np.float64) for name in (decided[0] if decided else {})}
        self.groups = None
        if "correct" in self.values:  # macro accuracy: the groups that count on the full data
            groups = [r.get("group") for r in records]
            exclude = set(spec.read_lines("excluded_groups") or [])
            min_count = int(spec.protocol.get("min_group_count", 1))
            names = sorted({g for g in groups if g is not None and g not in exclude})
            names = [g for g in names if groups.count(g) >= min_count]
            code = {g: i for i, g in enumerate(names)}
            codes = np.asarray([code.get(g, -1) for g in groups], dtype=np.int64)
            kept = np.flatnonzero(codes >= 0)
            order, starts, _ = grouping(codes[kept])
            self.groups = (kept[order], starts)

    def _declared(self, records: Sequence[dict[str, Any]], spec: TaskSpec) -> None:
        """Per-item values of each declared outcome, and for ``macro: FIELD`` its group layout."""
        from vlbench.kinds.selection_outcomes import outcome_values

        self.keys = [r.get("id", r.get("i")) for r in records]
        self.values, self.groups = {}, None
        min_count = int(spec.protocol.get("min_group_count", 1))
        for name, options in spec.protocol["outcomes"].items():
            values = np.asarray(outcome_values(list(records), options), dtype=np.float64)
            layout = None
            if options.get("macro"):
                groups = [r.get("groups", {}).get(options["macro"]) for r in records]
                kept_names = sorted({g for g in groups if g is not None and groups.count(g) >= min_count})
                code = {g: i for i, g in enumerate(kept_names)}
                codes = np.asarray([code.get(g, -1) for g in groups], dtype=np.int64)
                kept = np.flatnonzero(codes >= 0)
                order, starts, _ = grouping(codes[kept])
                layout = (kept[order], starts)
            self.declared[name] = (values, layout)

    def outcomes(self, name: str) -> np.ndarray | None:
        if self.declared:
            values, layout = self.declared.get(name, (None, None))
            binary = values is not None and layout is None and bool(np.isin(values, (0.0, 1.0)).all())
            return values if binary else None
        key = {"accuracy": "correct", "text_score": "text", "image_score": "image", "group_score": "group"}.get(name)
        return self.values.get(key) if key else None

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        (w,) = weights
        if self.declared:
            if name not in self.declared:
                return None
            values, layout = self.declared[name]
            if layout is None:
                return weighted_mean(w, values)
            return macro_mean(w, values, *layout)
        values = self.outcomes(name)
        if values is not None:
            return weighted_mean(w, values)
        if name == "macro_accuracy" and self.groups is not None:
            return macro_mean(w, self.values["correct"], *self.groups)
        return None


@TASK_KINDS.register("selection")
class SelectionKind(TaskKind):
    """Per instance an images x captions score matrix; a rule turns it into outcomes (ARO, SugarCrepe, Winoground)."""

    name = "selection"
    resampler = SelectionResampler
    readers = SELECTION_READERS
    metric_patterns = ("accuracy", "macro_accuracy", "text_score", "image_score", "group_score")
    protocol_schema = SelectionProtocol
    files_schema = SelectionFiles
    record_fields = {
        "i": (int, "the item's position"),
        "id": (str | None, "the item's id"),
        "scores": (list[list[float]], "images x captions cosine similarities"),
        "answer": (int | None, "the correct caption (single-image rules)"),
        "group": (str | None, "the item's group (macro accuracy, breakdowns)"),
        "fields": (list[str] | None, "records format: the field each caption came from"),
        "text_scores": (list[list[float]] | None, "records format: captions x captions cosine similarities"),
        "positives": (list[int] | None, "records format: the positive captions"),
        "groups": (dict[str, str] | None, "records format: group field -> value"),
        "positive_images": (list[int] | None, "records format: the images the positive captions describe"),
        "outcomes": (dict[str, float] | None, "the item's value of each outcome (1 right, 0 wrong; a fraction for pairwise), as the "
                     "metrics average them: items compare without recomputing"),
    }
    RULE_METRICS: dict[str, tuple[str, ...]] = {
        "argmax": ("accuracy", "macro_accuracy"),
        "strict": ("accuracy", "macro_accuracy"),
        "winoground": ("text_score", "image_score", "group_score"),
    }

    @classmethod
    def docs(cls) -> dict[str, list[tuple[str, str]]]:
        rules = []
        for name in SELECTION_RULES.names():
            doc = " ".join((SELECTION_RULES.get(name).__doc__ or "").split())
            metrics = ", ".join(cls.RULE_METRICS.get(name, cls.metric_patterns))
            rules.append((name, f"{doc} Metrics: {metrics}.".strip()))
        return {"rules": rules, "outcome rules": outcome_rule_docs()}

    @classmethod
    def task_metrics(cls, spec: TaskSpec) -> list[str]:
        return list(cls.options(spec).outcomes or {})

    @classmethod
    def check(cls, spec: TaskSpec) -> None:
        if cls.options(spec).outcomes is not None:
            validate_outcomes(spec, records_mappings(spec, cls.source_options))  # the field mapping against the outcomes' needs
            return
        rule = cls.options(spec).rule
        allowed = cls.RULE_METRICS.get(rule, cls.metric_patterns)
        for metric in spec.metrics:
            if metric not in allowed:
                raise TaskSpecError(spec.source_file, "metrics", f"'{metric}' does not go with rule '{rule}' (use {list(allowed)})")

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        return data.limited(ctx.limit), located

    def decide(self, model: Any, data: SelectionData, spec: TaskSpec) -> Decisions:
        return Decisions(protocol=as_dict(self.options(spec)), artifacts=dict(data.artifacts), seed=data.seed, left_out=dict(data.left_out))

    def predict(self, model: Any, data: SelectionData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        images = list({ref.key: ref for inst in data.instances for ref in inst.images}.values())
        texts = list(dict.fromkeys(c for inst in data.instances for c in inst.captions))
        image_index = {ref.key: i for i, ref in enumerate(images)}
        text_index = {t: i for i, t in enumerate(texts)}
        if images:
            ctx.encoder.prefetch_images(images)  # images decode while the captions encode
        text_emb = ctx.encoder.texts(texts, f"{spec.name} captions")
        image_emb = ctx.encoder.images(images, spec.name) if images else None  # text-only records have none
        for i, inst in enumerate(data.instances):
            cols = text_emb[[text_index[c] for c in inst.captions]]
            scores = similarities(image_emb[[image_index[r.key] for r in inst.images]], cols).tolist() if inst.images else []
            record: dict[str, Any] = {"i": i, "id": inst.id, "scores": scores}
            if inst.answer is not None:
                record["answer"] = inst.answer
            if inst.group is not None:
                record["group"] = inst.group
            if inst.caption_fields is not None:  # records format: what declared outcomes need
                record["fields"] = inst.caption_fields
                record["text_scores"] = similarities(cols, cols).tolist()
                if inst.positives is not None:
                    record["positives"] = inst.positives
                if inst.groups:
                    record["groups"] = inst.groups
                if inst.positive_images is not None:
                    record["positive_images"] = inst.positive_images
            record["outcomes"] = self.item_outcomes(record, spec)
            yield record

    def item_outcomes(self, record: dict[str, Any], spec: TaskSpec) -> dict[str, float]:
        """One item's decisions: every declared outcome's value, or the rule's (correct; text / image / group)."""
        protocol = self.options(spec)
        if protocol.outcomes is not None:
            from vlbench.kinds.selection_outcomes import outcome_values

            return {name: float(outcome_values([record], options)[0]) for name, options in spec.protocol["outcomes"].items()}
        rule: Callable = SELECTION_RULES.get(protocol.rule)
        return {name: float(value) for name, value in rule(record["scores"], record.get("answer")).items()}

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
        """Items whose outcome an exact tie decides: those whose outcome changes when the positive side's
        scores move by one float64 step up versus down (far less than any float32 difference). The task's
        rule decides such ties (the official code's strict inequalities or first maximum), so no bounds."""
        protocol = self.options(spec)
        if protocol.outcomes is not None:
            from vlbench.kinds.selection_outcomes import outcome_values

            options = spec.protocol["outcomes"].values()

            def outcome(record: dict[str, Any], direction: float) -> tuple:
                return tuple(outcome_values([nudged(record, direction, o.get("candidates", "captions"))], o)[0] for o in options)
        else:
            rule: Callable = SELECTION_RULES.get(protocol.rule)

            def outcome(record: dict[str, Any], direction: float) -> tuple:
                return tuple(rule(nudged(record, direction)["scores"], record.get("answer")).values())

        decided = sum(outcome(r, math.inf) != outcome(r, -math.inf) for r in records)
        return tie_report(decided, "decided by the task's rule, as in its official code (strict comparisons: a tie is wrong; argmax: the first caption)", {})

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        records = list(records)
        if not records:
            raise VLBenchError(f"task '{spec.name}' has no instances to score")
        results = self.breakdowns(records, spec)
        results.update(self.point_estimates(records, spec, [name for name in results if "/" not in name]))  # one definition with the CIs
        return results

    def breakdowns(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        """The metrics and their per-group breakdowns (``NAME/group``)."""
        protocol = self.options(spec)
        if protocol.outcomes is not None:
            return score_outcomes(records, spec.protocol)
        rule: Callable = SELECTION_RULES.get(protocol.rule)
        outcomes = [rule(r["scores"], r.get("answer")) for r in records]
        groups = [r.get("group") for r in records]
        results: dict[str, float] = {}
        if "correct" in outcomes[0]:
            correct = [o["correct"] for o in outcomes]
            results["accuracy"] = float(np.mean(correct))
            if "macro_accuracy" in spec.metrics:
                exclude = set(spec.read_lines("excluded_groups") or [])
                per_group = group_means(correct, groups, exclude, protocol.min_group_count)
                results["macro_accuracy"] = float(np.mean(list(per_group.values()))) if per_group else float("nan")
                results.update({f"accuracy/{group}": value for group, value in per_group.items()})
        else:
            for name in ("text", "image", "group"):
                values = [o[name] for o in outcomes]
                results[f"{name}_score"] = float(np.mean(values))
                if protocol.breakdown:
                    for group, mean in group_means(values, groups, set(), 1).items():
                        results[f"{name}_score/{group}"] = mean
        return results
