"""Outcomes declared in a task file (``protocol.outcomes``), scored from stored similarities.

Each outcome names a rule and, optionally, what plays the image's role (``anchor``) and which
caption fields take part. Every records-format sample stores its images x captions matrix
(``scores``), its captions x captions cosine matrix (``text_scores``), which captions are
positive and the field each caption came from, so any outcome can be recomputed from the samples
without the model (``vlbench rescore``).

Each outcome is one metric of the same name (the mean over items, or with ``macro: FIELD`` the
mean of the per-group means), plus ``NAME/FIELD=VALUE`` for every value of every group field.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

import numpy as np

from vlbench.datasets.records import Mapping, names
from vlbench.errors import TaskSpecError, VLBenchError
from vlbench.registry import Registry, did_you_mean
from vlbench.spec.schema import option, schema

ANCHOR_IMAGE, ANCHOR_POSITIVES = "image", "positives"

@dataclass
class Comparison:
    """One anchor's scores for the positive and the negative candidates."""

    positives: list[float]
    negatives: list[float]


@dataclass
class ItemView:
    """One stored sample seen through one outcome's options."""

    record: dict[str, Any]
    options: dict[str, Any]

    def _chosen(self, indices: Iterable[int], key: str) -> list[int]:
        fields = self.record["fields"]
        wanted = names(self.options.get(key))
        return [i for i in indices if not wanted or fields[i] in wanted]

    def comparisons(self) -> list[Comparison]:
        if "positives" not in self.record:
            raise VLBenchError(f"item {self.record.get('id')}: this rule needs positive and negative captions (fields.positives / negatives)")
        n = len(self.record["fields"])
        positives = self._chosen(self.record["positives"], "positives")
        negatives = self._chosen([i for i in range(n) if i not in self.record["positives"]], "negatives")
        anchor = self.options.get("anchor", ANCHOR_IMAGE)
        if self.options.get("candidates") == "images":
            return self._image_comparisons(positives, anchor)
        if anchor == ANCHOR_IMAGE:
            rows = [(None, row) for row in self.record["scores"]]
        else:
            fields = self.record["fields"]
            anchors = self.record["positives"] if anchor == ANCHOR_POSITIVES else [i for i in range(n) if fields[i] in names(anchor)]
            rows = [(a, self.record["text_scores"][a]) for a in anchors]
        out = []
        for a, row in rows:
            pos = [row[i] for i in positives if i != a]
            neg = [row[i] for i in negatives if i != a]
            if not pos or not neg:
                raise VLBenchError(f"item {self.record.get('id')}: no positive or no negative caption left to compare with anchor {a}")
            out.append(Comparison(pos, neg))
        if not out:
            raise VLBenchError(f"item {self.record.get('id')}: no anchor (anchor: {anchor})")
        return out

    def _image_comparisons(self, positives: list[int], anchor: Any) -> list[Comparison]:
        """Each anchor caption's scores for the positive and the negative images (a column of ``scores``)."""
        good = self.record.get("positive_images")
        if good is None:
            raise VLBenchError(f"item {self.record.get('id')}: candidates: images needs negative images (fields.negative_images)")
        fields = self.record["fields"]
        anchors = positives if anchor in (ANCHOR_IMAGE, ANCHOR_POSITIVES) else [i for i in positives if fields[i] in names(anchor)]
        scores = self.record["scores"]
        out = [Comparison([scores[i][a] for i in good], [scores[i][a] for i in range(len(scores)) if i not in good]) for a in anchors]
        if not out or not all(c.positives and c.negatives for c in out):
            raise VLBenchError(f"item {self.record.get('id')}: no anchor caption, positive image or negative image to compare")
        return out

    def ordered(self) -> list[tuple[float, bool]]:
        """The image row's (score, is positive) in caption order (one image)."""
        if "positives" not in self.record or len(self.record["scores"]) != 1:
            raise VLBenchError(f"item {self.record.get('id')}: this rule needs one image with positive and negative captions")
        row, fields = self.record["scores"][0], self.record["fields"]
        keep = set(self._chosen(self.record["positives"], "positives"))
        keep |= set(self._chosen([i for i in range(len(fields)) if i not in self.record["positives"]], "negatives"))
        return [(row[i], i in self.record["positives"]) for i in range(len(fields)) if i in keep]

    def matrix(self) -> np.ndarray:
        scores = np.asarray(self.record["scores"], dtype=float)
        if "positives" in self.record or scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
            raise VLBenchError(f"item {self.record.get('id')}: this rule needs N images and their N captions (fields.image + fields.captions)")
        return scores


OUTCOME_RULES: Registry = Registry("selection outcome rule")
#: Rules that read a square image x caption matrix (caption i belongs to image i) rather than positives/negatives.
MATRIX_RULES = {"text_match", "image_match", "group_match", "image_match_second_takes_ties"}
#: Rules that rank the captions of one image.
RANKING_RULES = {"top1_positive", "top_k_positive"}


@schema
class Outcome:
    """One entry under ``protocol.outcomes``: a metric of the same name."""

    rule: str = option(help="how an item's scores become its outcome (see outcome rules)", choices=lambda: OUTCOME_RULES.names())
    anchor: str | list[str] = option(ANCHOR_IMAGE, help="what the captions are compared with: 'image' (image-caption cosine), "
                                     "'positives' (each positive caption in turn, against the other captions: text-only), or caption "
                                     "field name(s), whose captions are the anchors in turn; an anchor caption is never its own candidate")
    candidates: Literal["captions", "images"] = option("captions", help="what is ranked: 'captions' (positive vs negative captions), or 'images' (each anchor caption "
                                                       "ranks the record's images against its negative_images; the anchor is then 'positives' or caption field names)")
    positives: str | list[str] | None = option(None, help="only these positive caption fields take part (default: all)")
    negatives: str | list[str] | None = option(None, help="only these negative caption fields take part (default: all)")
    macro: str | None = option(None, help="a group field: the metric is the mean of the per-group means instead of the mean over items")
    k: int = option(1, help="top_k_positive: how many of the highest-scoring captions the positive may be among", low=1)


def outcome_rule_docs() -> list[tuple[str, str]]:
    """(name, meaning) of every outcome rule, for 'vlbench show kind:selection'."""
    return [(name, " ".join((OUTCOME_RULES.get(name).__doc__ or "").split())) for name in OUTCOME_RULES.names()]


@OUTCOME_RULES.register("positives_above_negatives")
def positives_above_negatives(item: ItemView) -> float:
    """1 if, for every anchor, every positive scores strictly above every negative (min pos > max neg)."""
    return float(all(min(c.positives) > max(c.negatives) for c in item.comparisons()))


@OUTCOME_RULES.register("best_positive_above_negatives")
def best_positive_above_negatives(item: ItemView) -> float:
    """1 if, for every anchor, some positive scores strictly above every negative (max pos > max neg)."""
    return float(all(max(c.positives) > max(c.negatives) for c in item.comparisons()))


@OUTCOME_RULES.register("pairwise")
def pairwise(item: ItemView) -> float:
    """The fraction of (anchor, positive, negative) triples where the positive scores strictly higher."""
    wins = [p > n for c in item.comparisons() for p in c.positives for n in c.negatives]
    return float(np.mean(wins))


@OUTCOME_RULES.register("top1_positive")
def top1_positive(item: ItemView) -> float:
    """1 if the first highest-scoring caption (np.argmax in the file's caption order) is a positive: ties go to the earlier caption."""
    ordered = item.ordered()
    return float(ordered[int(np.argmax([score for score, _ in ordered]))][1])


@OUTCOME_RULES.register("top_k_positive")
def top_k_positive(item: ItemView) -> float:
    """1 if a positive caption is among the k highest-scoring captions (outcome option k; recall@k among the record's
    captions, as CREPE's get_one2many_rank): a caption's rank counts the captions scoring strictly higher and the earlier
    ones with an equal score (ties go to the earlier caption)."""
    ordered = item.ordered()

    def rank(i: int) -> int:
        return sum(s > ordered[i][0] for s, _ in ordered) + sum(s == ordered[i][0] for s, _ in ordered[:i])

    return float(min(rank(i) for i, (_, is_positive) in enumerate(ordered) if is_positive) < int(item.options.get("k", 1)))


def _text_match(s: np.ndarray) -> bool:
    own = np.diag(s)
    return bool(all(own[i] > np.delete(s[i], i).max() for i in range(len(s))))


@OUTCOME_RULES.register("text_match")
def text_match(item: ItemView) -> float:
    """Every image scores its own caption strictly above the others (Winoground's text score)."""
    return float(_text_match(item.matrix()))


@OUTCOME_RULES.register("image_match")
def image_match(item: ItemView) -> float:
    """Every caption scores its own image strictly above the others (Winoground's image score)."""
    return float(_text_match(item.matrix().T))


@OUTCOME_RULES.register("image_match_second_takes_ties")
def image_match_second_takes_ties(item: ItemView) -> float:
    """Two images, two captions: the first caption scores the first image strictly above the second, and the second
    caption scores the second image at least as high as the first (MMVP-VLM's evaluate_vlm.py: each statement's choice
    is image 1 when its softmax probability is > 0.5, else image 2, so a tie goes to image 2)."""
    s = item.matrix()
    if s.shape != (2, 2):
        raise VLBenchError(f"item {item.record.get('id')}: image_match_second_takes_ties scores 2 images x 2 captions, not {s.shape}")
    return float(s[0, 0] > s[1, 0] and s[1, 1] >= s[0, 1])


@OUTCOME_RULES.register("group_match")
def group_match(item: ItemView) -> float:
    """Both text_match and image_match (Winoground's group score)."""
    s = item.matrix()
    return float(_text_match(s) and _text_match(s.T))


def records_mappings(spec: Any, source_options: Callable[[Any, int], Any]) -> list[Mapping]:
    """The field mappings of the task's records sources (``source_options``: the kind's typed source options)."""
    sources = spec.dataset.get("sources") or []
    return [Mapping.of(source_options(spec, i)) for i, s in enumerate(sources) if s.get("format") == "records"]


def validate_outcomes(spec: Any, mappings: list[Mapping]) -> None:
    """Check protocol.outcomes against the rules and the records sources' field mapping."""
    outcomes = spec.protocol.get("outcomes")
    file = spec.source_file
    if not isinstance(outcomes, dict) or not outcomes:
        raise TaskSpecError(file, "protocol.outcomes", "expected a mapping of metric name -> {rule: ..., ...}")
    if not mappings or len(mappings) != len(spec.dataset["sources"]):
        raise TaskSpecError(file, "protocol.outcomes", "declared outcomes need every source to have format: records")
    for name, options in outcomes.items():
        where = f"protocol.outcomes.{name}"
        rule = options["rule"]  # options checked against Outcome with the protocol
        for mapping in mappings:
            _check_fields_named(options, mapping, rule, file, where)
    for metric in spec.metrics:
        if metric not in outcomes:
            raise TaskSpecError(file, "metrics", f"'{metric}' is not a declared outcome (protocol.outcomes has {', '.join(outcomes)})")


def _check_fields_named(options: dict[str, Any], mapping: Mapping, rule: str, file: Any, where: str) -> None:
    matrix = rule in MATRIX_RULES
    if matrix and not mapping.captions:
        raise TaskSpecError(file, f"{where}.rule", f"'{rule}' needs fields.image with N images and fields.captions with their N captions")
    if not matrix and mapping.captions:
        raise TaskSpecError(file, f"{where}.rule", f"'{rule}' needs fields.positives and fields.negatives")
    anchor = options.get("anchor", ANCHOR_IMAGE)
    candidates = options.get("candidates", "captions")
    if candidates == "images" and (matrix or rule in RANKING_RULES or not mapping.negative_images):
        raise TaskSpecError(file, f"{where}.candidates", f"'images' needs fields.negative_images and a positives/negatives rule, not '{rule}'")
    if candidates == "images" and isinstance(anchor, str) and anchor == ANCHOR_IMAGE and "anchor" in options:
        raise TaskSpecError(file, f"{where}.anchor", "with candidates: images the anchor is a caption: 'positives' or caption field names")
    if rule in RANKING_RULES and anchor != ANCHOR_IMAGE:
        raise TaskSpecError(file, f"{where}.anchor", f"{rule} ranks the captions of one image; use anchor: image")
    if anchor == ANCHOR_IMAGE and candidates == "captions" and not mapping.images and not matrix:
        raise TaskSpecError(file, f"{where}.anchor", "the records have no image (fields.image); use anchor: positives or a caption field")
    allowed = {
        "anchor": mapping.positives + mapping.negatives,
        "positives": mapping.positives,
        "negatives": mapping.negatives,
        "macro": mapping.groups,
    }
    for key, fields in allowed.items():
        given = options.get(key)
        if given is None or (key == "anchor" and given in (ANCHOR_IMAGE, ANCHOR_POSITIVES)):
            continue
        for field in names(given):
            if field not in fields:
                hint = "fields.groups" if key == "macro" else f"fields.{key}" if key != "anchor" else "fields.positives / negatives"
                raise TaskSpecError(file, f"{where}.{key}", f"'{field}' is not one of {hint}: {fields}{did_you_mean(field, fields)}")


def _means(values: list[float], groups: list[str | None], min_count: int) -> dict[str, float]:
    by_group: dict[str, list[float]] = defaultdict(list)
    for value, group in zip(values, groups):
        if group is not None:
            by_group[group].append(value)
    return {g: float(np.mean(v)) for g, v in sorted(by_group.items()) if len(v) >= min_count}


def outcome_values(records: list[dict[str, Any]], options: dict[str, Any]) -> list[float]:
    """One declared outcome's value for every item (0/1, or a fraction for ``pairwise``)."""
    rule: Callable[[ItemView], float] = OUTCOME_RULES.get(options["rule"])
    return [rule(ItemView(r, options)) for r in records]


def score_outcomes(records: list[dict[str, Any]], protocol: dict[str, Any]) -> dict[str, float]:
    """Every declared outcome's metric and per-group breakdown, from stored samples (pure)."""
    results: dict[str, float] = {}
    min_count = int(protocol.get("min_group_count", 1))
    group_fields = list(dict.fromkeys(f for r in records for f in r.get("groups", {})))
    for name, options in protocol["outcomes"].items():
        values = outcome_values(records, options)
        per_field = {f: _means(values, [r.get("groups", {}).get(f) for r in records], min_count) for f in group_fields}
        macro = options.get("macro")
        if macro:
            results[name] = float(np.mean(list(per_field[macro].values()))) if per_field.get(macro) else float("nan")
        else:
            results[name] = float(np.mean(values))
        for field, means in per_field.items():
            results.update({f"{name}/{field}={group}": mean for group, mean in means.items()})
    return results
