"""Linear probe and few-shot linear probe: a classifier trained on the frozen image features of a training
split, scored on the evaluated split (``vlbench.kinds.probe_fit`` has the procedures and their sources).

``protocol.method`` picks the procedure (``clip_benchmark``: its AdamW linear layer; ``clip_paper``: L-BFGS
logistic regression with a searched L2 strength; ``tip_adapter``: Tip-Adapter's training-free cache of the k-shot
features added to the zero-shot classifier of the task's class names and templates — its cache keys are the
features of the evaluation transform, where the official code averages 10 augmented views), ``fewshot_k`` the shots per class (-1: the whole split)
and ``seeds`` the draws: each seed draws its own k-shot set (and validation part) and trains its own
classifier. Metrics are means over the seeds, ``acc1_std`` their spread. Each test image's record holds,
per seed, the 5 best classes, so the metrics and intervals are rescored from the records alone; the
training positions each seed drew are saved as an artifact and their hash recorded in ``protocol_used``,
with the hyperparameter each fit chose.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch

from vlbench import metrics
from vlbench.bootstrap import Resampler, grouping, macro_mean, weighted_mean
from vlbench.errors import VLBenchError
from vlbench.kinds import probe_fit
from vlbench.kinds.base import Decisions, RunContext
from vlbench.kinds.train_split import ProbeData, TrainSplitKind, features
from vlbench.registries import TASK_KINDS
from vlbench.spec.fields import ProtocolFields
from vlbench.spec.schema import SchemaError, option, schema
from vlbench.spec.taskfile import TaskSpec

TOP_K = 5
CHOSEN = {"clip_benchmark": "weight_decay", "clip_paper": "l2_strength", "tip_adapter": "beta_alpha"}


@schema
class LinearProbeProtocol(ProtocolFields):
    method: Literal["clip_benchmark", "clip_paper", "tip_adapter"] = option(
        "clip_benchmark", help="clip_benchmark: CLIP_benchmark 1.6.2's AdamW linear layer; clip_paper: the CLIP paper's L-BFGS logistic "
        "regression (scikit-learn); tip_adapter: Tip-Adapter's training-free cache classifier added to the zero-shot classifier")
    fewshot_k: int = option(-1, help="training images per class (-1: the whole training split)", low=-1)
    fewshot_rule: Literal["clip_benchmark", "coop"] = option("clip_benchmark", help="how the k shots are drawn: the first k of each class "
                                                             "in a seeded permutation (CLIP_benchmark's fewshot_k) or random.sample per "
                                                             "class (CoOp / Dassl)")
    seeds: list[int] = option([0], help="one k-shot draw, validation split and classifier per seed; metrics are their mean")
    val_proportion: float = option(0.0, help="share of the training split held out to search the regularisation (0: none; "
                                   "clip_paper needs one)", low=0.0, high=0.9)
    weight_decay: float = option(0.0, help="clip_benchmark without a validation part: AdamW's weight decay", low=0.0)
    lr: float = option(0.1, help="clip_benchmark: AdamW's peak learning rate (cosine schedule per step)", gt=0.0)
    epochs: int = option(10, help="clip_benchmark: epochs over the training features", low=1)
    batch_size: int = option(64, help="clip_benchmark: features per step", low=1)
    max_iter: int = option(1000, help="clip_paper: L-BFGS iterations", low=1)
    solver: Literal["scikit_learn", "torch"] = option("scikit_learn", help="clip_paper: scikit-learn's L-BFGS, or the same objective "
                                                      "minimised by torch's full-batch L-BFGS on the model's device (a GPU where the run "
                                                      "has one; equal to scikit-learn's solution within the solvers' tolerance)")
    alpha: float = option(1.0, help="tip_adapter without a validation part: the cache logits' weight (the official TipAdapter class: 1)",
                          low=0.0)
    beta: float = option(1.0, help="tip_adapter without a validation part: the affinity's sharpness (every official config's init_beta: 1)",
                         gt=0.0)
    search_scale: list[float] = option([7.0, 3.0], help="tip_adapter with a validation part: the largest beta and alpha searched (the "
                                       "official configs/imagenet.yaml search_scale)")
    search_step: list[int] = option([200, 20], help="tip_adapter with a validation part: the number of betas and alphas searched")

    def check(self) -> None:
        if self.fewshot_k == 0:
            raise SchemaError("fewshot_k", "use -1 for the whole training split, or k >= 1 shots per class")
        if not self.seeds:
            raise SchemaError("seeds", "give at least one seed")
        if len(self.search_scale) != 2 or len(self.search_step) != 2 or min(self.search_step) < 1:
            raise SchemaError("search_scale", "give [largest beta, largest alpha] and search_step [betas, alphas], each at least 1")
        if self.method == "clip_paper" and self.val_proportion <= 0:
            raise SchemaError("val_proportion", "clip_paper searches its L2 strength on a held-out part: set val_proportion, e.g. 0.2")


class LinearProbeResampler(Resampler):
    """Test images. Per image the mean over seeds of its top-k hit; acc1 / acc5 their weighted mean, mean
    per-class recall their mean per class; acc1_std the spread (numpy std) of the seeds' accuracies."""

    unit = "images"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.keys = [r.get("key", r.get("i")) for r in records]
        self.hits = {k: np.asarray([[r["label"] in top[:k] for top in r["top"]] for r in records], dtype=np.float64).reshape(len(records), -1)
                     for k in (1, TOP_K)}
        self.top5_defined = all(len(top) >= TOP_K for r in records for top in r["top"])
        self.classes = grouping(np.asarray([r["label"] for r in records], dtype=np.int64))

    def outcomes(self, name: str) -> np.ndarray | None:
        return self.hits[1].mean(axis=1) if name == "acc1" and self.hits[1].shape[1] == 1 else None

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        (w,) = weights
        if name in ("acc1", "acc5"):
            if name == "acc5" and not self.top5_defined:
                return np.full(w.shape[0], np.nan)
            return weighted_mean(w, self.hits[1 if name == "acc1" else TOP_K].mean(axis=1))
        if name == "mean_per_class_recall":
            order, starts, _ = self.classes
            return macro_mean(w, self.hits[1].mean(axis=1), order, starts)
        if name == "acc1_std":
            per_seed = (w @ self.hits[1]) / w.sum(axis=1, keepdims=True)  # [r, seeds]
            return per_seed.std(axis=1)
        return None


@TASK_KINDS.register("linear_probe")
class LinearProbeKind(TrainSplitKind):
    """Linear probe (and few-shot) on frozen image features: a classifier fitted on a training split."""

    name = "linear_probe"
    resampler = LinearProbeResampler
    metric_patterns = ("acc1", "acc5", "mean_per_class_recall", "acc1_std")
    protocol_schema = LinearProbeProtocol
    record_fields = {**TrainSplitKind.record_fields, "top": (list[list[int]], "per seed, the probe's 5 best classes, best first")}

    def decide(self, model: Any, data: ProbeData, spec: TaskSpec) -> Decisions:
        decisions = super().decide(model, data, spec)
        protocol = self.options(spec)
        self.draws = {seed: self.draw(data.train.labels, protocol, seed) for seed in protocol.seeds}
        decisions.artifacts["train_positions"] = {str(seed): {"fit": fit, "validation": held} for seed, (fit, held) in self.draws.items()}
        decisions.protocol["train_positions_sha256"] = hashlib.sha256(json.dumps(decisions.artifacts["train_positions"], sort_keys=True)
                                                                      .encode()).hexdigest()[:16]
        decisions.protocol["train_images"] = len(data.train.images)
        if protocol.method == "tip_adapter":
            from vlbench.kinds.classification import choose_prompts

            decisions.protocol["prompts"] = {key: choose_prompts(spec, data.test, key)[1] for key in ("classnames", "templates")}
        if protocol.method == "clip_paper":  # the numbers are its solver's
            from vlbench.registry import package_version

            if protocol.solver == "torch":
                decisions.protocol.update(torch=torch.__version__, solver_device=str(getattr(model, "device", "cpu")))
            else:
                decisions.protocol["scikit_learn"] = package_version("scikit-learn")
        decisions.seed = protocol.seeds[0]
        self.decisions = decisions  # predict adds what each fit chose
        return decisions

    @staticmethod
    def draw(labels: Sequence[int], protocol: LinearProbeProtocol, seed: int) -> tuple[list[int], list[int]]:
        """(training positions, validation positions) of one seed: the validation part held out first, then the
        k shots drawn from the rest, both as positions in the training split, in the order the fit sees them."""
        positions = np.arange(len(labels))
        held: list[int] = []
        if protocol.val_proportion > 0:
            fit_part, held_part = probe_fit.split_validation(len(labels), protocol.val_proportion, seed)
            positions, held = fit_part, held_part.tolist()
        chosen = probe_fit.fewshot_indices([labels[p] for p in positions], protocol.fewshot_k, seed, protocol.fewshot_rule)
        if protocol.fewshot_k > 0:
            counts = np.bincount([labels[positions[c]] for c in chosen], minlength=max(labels) + 1)
            short = [c for c in sorted(set(labels)) if counts[c] < protocol.fewshot_k]
            if short:
                raise VLBenchError(f"fewshot_k={protocol.fewshot_k} needs that many training images of every class; class {short[0]} has "
                                   f"{counts[short[0]]} (and {len(short) - 1} more classes are short)")
        return [int(positions[c]) for c in chosen], [int(p) for p in held]

    def predict(self, model: Any, data: ProbeData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        protocol = self.options(spec)
        train_x, train_y = features(ctx.encoder, data.train, f"{spec.name} (train)")
        test_x, _ = features(ctx.encoder, data.test, spec.name)
        classes = int(train_y.max()) + 1  # CLIP_benchmark: the training labels' count
        classifier = self.zero_shot(spec, data, ctx) if protocol.method == "tip_adapter" else None
        if classifier is not None:
            classes = classifier.shape[0]
        tops, chosen = [], {}
        for seed, (fit, held) in self.draws.items():
            if classifier is not None:
                scores, chosen[str(seed)] = self.tip_adapter(protocol, train_x, train_y, test_x, classifier, fit, held)
            else:
                scores, chosen[str(seed)] = self.fit(protocol, train_x, train_y, test_x, classes, fit, held, seed, str(getattr(model, "device", "cpu")))
            tops.append(metrics.stable_topk(scores, min(TOP_K, classes)))
        self.decisions.protocol["chosen"] = {CHOSEN[protocol.method]: chosen}
        for i, image in enumerate(data.test.images):
            yield {"i": i, "key": image.key, "label": data.test.labels[i], "top": [top[i].tolist() for top in tops]}

    @staticmethod
    def zero_shot(spec: TaskSpec, data: ProbeData, ctx: RunContext) -> torch.Tensor:
        """[classes, d] the zero-shot classifier of the task's class names and templates (as the classification kind's)."""
        from vlbench.kinds.classification import ClassificationKind, zero_shot_classifier

        classnames, templates = ClassificationKind().prompts(spec, data.test)
        top = int(max(data.train.labels, default=-1))
        if top >= len(classnames):
            raise VLBenchError(f"task '{spec.name}': the training split has label {top} but only {len(classnames)} class names")
        return zero_shot_classifier(ctx.encoder, classnames, templates).float()

    @staticmethod
    def tip_adapter(protocol: LinearProbeProtocol, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, classifier: torch.Tensor,
                    fit: list[int], held: list[int]) -> tuple[torch.Tensor, list[float]]:
        """One seed's Tip-Adapter logits: the k-shot features as the cache; beta and alpha searched on the held-out part
        when there is one (the official search_hp), the protocol's otherwise."""
        keys, key_labels = train_x[fit], train_y[fit]
        beta, alpha = protocol.beta, protocol.alpha
        if held:
            (beta_scale, alpha_scale), (beta_steps, alpha_steps) = protocol.search_scale, protocol.search_step
            beta, alpha = probe_fit.tip_adapter_search(train_x[held], train_y[held], keys, key_labels, classifier,
                                                       probe_fit.tip_adapter_grid(beta_scale, beta_steps),
                                                       probe_fit.tip_adapter_grid(alpha_scale, alpha_steps))
        return probe_fit.tip_adapter_logits(test_x, keys, key_labels, classifier, alpha, beta), [beta, alpha]

    @staticmethod
    def fit(protocol: LinearProbeProtocol, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, classes: int,
            fit: list[int], held: list[int], seed: int, device: str = "cpu") -> tuple[torch.Tensor, float]:
        """One seed's classifier: its test scores and the hyperparameter it used."""
        if protocol.method == "clip_paper":
            x = train_x.double().numpy()  # float64: scikit-learn fits in the features' precision (float32 is fragile at weak L2)
            scores, strength = probe_fit.clip_paper_probe(x[fit], train_y[fit].numpy(), x[held], train_y[held].numpy(), test_x.double().numpy(),
                                                          classes, max_iter=protocol.max_iter, solver=protocol.solver, device=device)
            return torch.from_numpy(scores), strength
        validation = (train_x[held], train_y[held]) if held else None
        return probe_fit.clip_benchmark_probe(train_x[fit], train_y[fit], test_x, classes, lr=protocol.lr, epochs=protocol.epochs,
                                              batch_size=protocol.batch_size, seed=seed, weight_decay=protocol.weight_decay,
                                              validation=validation, refit_with_validation=protocol.fewshot_k < 0)

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        results = self.point_estimates(list(records), spec, spec.metrics)
        return {name: results[name] for name in spec.metrics}
