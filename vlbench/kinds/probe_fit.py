"""Classifiers fitted on frozen image features: the procedures of the linear-probe, few-shot and k-NN kinds.

Pure functions of feature matrices (no model, no dataset), so that each can be checked against an
independent implementation:

- ``clip_benchmark_probe``: CLIP_benchmark 1.6.2's ``metrics/linear_probe.py`` — a ``torch.nn.Linear`` trained
  with AdamW and a per-step cosine schedule (no warm-up) on shuffled mini-batches, ``torch.manual_seed(seed)``
  before the layer is made; with a validation part, the weight decay chosen by its parametric search over
  ``logspace(-6, 2, 97)`` (``find_peak``), then refitted on train + validation (all data) or the k-shot set.
- ``clip_paper_probe``: the CLIP paper's (Radford et al. 2021, appendix A.3) L-BFGS logistic regression
  (scikit-learn), its L2 strength searched on a validation part over 10^-6 .. 10^6 in 96 log steps by the same
  parametric binary search, then refitted on all of train; fitted in float64 (scikit-learn fits in the features'
  precision, and float32 fits at weak regularisation move with the last bits of C); ``solver="torch"`` minimises the
  same objective with torch's full-batch L-BFGS (``TorchLogistic``), on the GPU where the run has one.
- ``fewshot_indices``: k training examples per class, CLIP_benchmark's way (the first k of each class in a
  seeded permutation) or CoOp's (Dassl's ``generate_fewshot_dataset``: ``random.sample`` per class).
- ``tip_adapter_logits``: Tip-Adapter's training-free cache classifier (Zhang et al. 2022, official ``main.py`` /
  ``utils.py``) added to the zero-shot classifier; ``tip_adapter_search`` its validation search of beta and alpha.
- ``weighted_knn``: DINO's weighted k-NN (``eval_knn.py``: cosine similarity, the k nearest training
  features vote with weight exp(similarity / T)).

Every random draw comes from ``seed``; the global torch RNG is left as it was.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

import numpy as np
import torch

WEIGHT_DECAYS = np.logspace(-6, 2, num=97).tolist()  # CLIP_benchmark's sweep
LAMBDAS = np.logspace(-6, 6, num=97).tolist()  # the CLIP paper's: 96 log-spaced steps, 8 per decade
START_INDICES = list(range(0, 97, 16))  # 7 starting points, one every 16 steps, as both start


def parametric_search(grid_size: int, start: Sequence[int], accuracy: Callable[[int], float]) -> int:
    """CLIP_benchmark's ``find_peak`` search: the best of ``start``, then of (peak - s, peak, peak + s) for
    s = 8, 4, 2, 1; a later index wins only with a strictly higher accuracy."""
    cache: dict[int, float] = {}

    def best(indices: Sequence[int]) -> int:
        peak, top = 0, 0.0
        for index in indices:
            if index not in cache:
                cache[index] = accuracy(index)
            if top < cache[index]:
                peak, top = index, cache[index]
        return peak

    peak, span = best(start), 8
    while span > 0:
        peak = best([max(peak - span, 0), peak, min(peak + span, grid_size - 1)])
        span //= 2
    return peak


def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean())


def split_validation(n: int, proportion: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions: a seeded permutation, its first round(proportion * n) held out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    held = int(round(proportion * n))
    return np.sort(order[held:]), np.sort(order[:held])


def _cosine(base_lr: float, steps: int, step: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * step / steps)) * base_lr


def train_linear(features: torch.Tensor, labels: torch.Tensor, classes: int, weight_decay: float, lr: float, epochs: int,
                 batch_size: int, seed: int) -> torch.nn.Linear:
    """CLIP_benchmark's ``train``: Linear(d, classes) made after ``torch.manual_seed(seed)``, AdamW, cross-entropy,
    cosine learning rate per step, the batches of a shuffling DataLoader (one permutation per epoch)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(features.shape[1], classes)
        optimizer = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(features, labels), batch_size=batch_size, shuffle=True)
        steps, step = epochs * len(loader), 0
        for _ in range(epochs):
            for x, y in loader:
                for group in optimizer.param_groups:
                    group["lr"] = _cosine(lr, steps, step)
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(layer(x), y).backward()
                optimizer.step()
                step += 1
    return layer


def clip_benchmark_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, classes: int, *, lr: float, epochs: int,
                         batch_size: int, seed: int, weight_decay: float, validation: tuple[torch.Tensor, torch.Tensor] | None,
                         refit_with_validation: bool) -> tuple[torch.Tensor, float]:
    """Test logits and the weight decay used. With ``validation`` (its features and labels) the weight decay
    is searched, training on ``train_*`` and scoring on the validation part; the final layer is then trained on
    train + validation when ``refit_with_validation`` (CLIP_benchmark's full-data probes), on train alone
    otherwise (its few-shot probes: more data than k per class would be used)."""
    if validation is not None:
        val_x, val_y = validation
        search = lambda index: top1_accuracy(  # noqa: E731
            train_linear(train_x, train_y, classes, WEIGHT_DECAYS[index], lr, epochs, batch_size, seed)(val_x).detach(), val_y)
        weight_decay = WEIGHT_DECAYS[parametric_search(len(WEIGHT_DECAYS), START_INDICES, search)]
        if refit_with_validation:
            train_x, train_y = torch.cat([train_x, val_x]), torch.cat([train_y, val_y])
    layer = train_linear(train_x, train_y, classes, weight_decay, lr, epochs, batch_size, seed)
    with torch.no_grad():
        return layer(test_x), weight_decay


def fit_logistic(features: np.ndarray, labels: np.ndarray, strength: float, max_iter: int, solver: str = "scikit_learn",
                 device: str = "cpu") -> object:
    """L-BFGS logistic regression with L2 strength ``strength`` (C = 1 / strength), deterministic: scikit-learn's, or
    ``solver="torch"``: the same objective minimised by ``TorchLogistic`` (full batch, float64, on ``device``)."""
    if solver == "torch":
        return TorchLogistic(strength, max_iter, device=device).fit(features, labels)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0 / strength, max_iter=max_iter, solver="lbfgs", random_state=0).fit(features, labels)


class TorchLogistic:
    """scikit-learn's ``LogisticRegression(solver="lbfgs")`` objective minimised with ``torch.optim.LBFGS`` (strong
    Wolfe line search) on the full batch in float64: mean log-loss + strength / (2 n) * ||W||^2, the intercept not
    penalised, multinomial (softmax over every class present) for 3 or more classes and one binomial weight vector
    for 2, as scikit-learn. Its ``decision_function``, ``predict`` and ``classes_`` read like scikit-learn's, so the
    two solvers are interchangeable; it converges to the same minimiser (checked in the tests) and runs on a GPU."""

    def __init__(self, strength: float, max_iter: int, tol: float = 1e-4, device: str = "cpu"):
        self.strength, self.max_iter, self.tol, self.device = strength, max_iter, tol, device

    def fit(self, features: np.ndarray, labels: np.ndarray) -> "TorchLogistic":
        self.classes_, codes = np.unique(labels, return_inverse=True)
        x = torch.as_tensor(features, dtype=torch.float64, device=self.device)
        y = torch.as_tensor(codes, dtype=torch.int64, device=self.device)
        outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        weight = torch.zeros(outputs, x.shape[1], dtype=torch.float64, device=self.device, requires_grad=True)
        bias = torch.zeros(outputs, dtype=torch.float64, device=self.device, requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=self.max_iter, max_eval=self.max_iter * 5 // 4,
                                      tolerance_grad=self.tol, tolerance_change=1e-12, history_size=10, line_search_fn="strong_wolfe")
        n, penalty = len(x), self.strength / (2 * len(x))

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = x @ weight.T + bias
            if outputs == 1:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.double(), reduction="sum") / n
            else:
                loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum") / n
            loss = loss + penalty * (weight * weight).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.coef_, self.intercept_ = weight.detach().cpu().numpy(), bias.detach().cpu().numpy()
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        scores = np.asarray(features, dtype=np.float64) @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, features: np.ndarray) -> np.ndarray:
        scores = self.decision_function(features)
        return self.classes_[(scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)]


def class_scores(model: object, features: np.ndarray, classes: int) -> np.ndarray:
    """[n, classes] decision scores of a fitted scikit-learn classifier, columns by class index (a class absent
    from its training labels scores -inf); a binary model's single score becomes (0, score), as its predict reads it."""
    scores = model.decision_function(features)  # type: ignore[attr-defined]
    if scores.ndim == 1:
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    full = np.full((len(features), classes), -np.inf)
    full[:, model.classes_] = scores  # type: ignore[attr-defined]
    return full


def clip_paper_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, test_x: np.ndarray, classes: int, *,
                     max_iter: int, solver: str = "scikit_learn", device: str = "cpu") -> tuple[np.ndarray, float]:
    """Test scores and the L2 strength chosen: searched by fitting on the train part and scoring on the
    validation part, then refitted on both (all of the training split)."""

    def fit(x: np.ndarray, y: np.ndarray, strength: float) -> object:
        return fit_logistic(x, y, strength, max_iter, solver, device)

    search = lambda index: float((fit(train_x, train_y, LAMBDAS[index]).predict(val_x) == val_y).mean())  # noqa: E731
    strength = LAMBDAS[parametric_search(len(LAMBDAS), START_INDICES, search)]
    model = fit(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]), strength)
    return class_scores(model, test_x, classes), strength


def fewshot_indices(labels: Sequence[int], k: int, seed: int, rule: str) -> list[int]:
    """k positions per class (k < 0: every position), in the order drawn. ``clip_benchmark``: walk a permutation seeded with ``seed``
    (``torch.randperm``) and keep the first k of each class; ``coop``: per class in order of first appearance,
    ``random.sample`` of k of its positions after ``random.seed(seed)`` (Dassl's generate_fewshot_dataset)."""
    if rule == "coop":
        by_class: dict[int, list[int]] = {}
        for position, label in enumerate(labels):
            by_class.setdefault(int(label), []).append(position)
        draw = random.Random(seed)
        return [p for positions in by_class.values() for p in (positions if k < 0 or len(positions) < k else draw.sample(positions, k))]
    counts: dict[int, int] = {}
    chosen = []
    for position in torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist():
        label = int(labels[position])
        if k < 0 or counts.get(label, 0) < k:
            counts[label] = counts.get(label, 0) + 1
            chosen.append(position)
    return chosen


def weighted_knn(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, classes: int, k: int, temperature: float,
                 chunk: int = 1024) -> torch.Tensor:
    """[n_test, classes] votes: the k most similar training features (dot products of normalised features),
    each adding exp(similarity / temperature) to its class."""
    votes = []
    for start in range(0, len(test_x), chunk):
        similarity = test_x[start:start + chunk] @ train_x.T
        nearest, positions = similarity.topk(min(k, len(train_x)), dim=1)
        weights = (nearest / temperature).exp()
        votes.append(torch.zeros(len(similarity), classes, dtype=weights.dtype).scatter_add_(1, train_y[positions], weights))
    return torch.cat(votes) if votes else torch.zeros(0, classes)


def tip_adapter_grid(scale: float, steps: int) -> list[float]:
    """One axis of Tip-Adapter's search (the official ``search_hp``): ``steps`` values from 0.1 towards ``scale``."""
    return [i * (scale - 0.1) / steps + 0.1 for i in range(steps)]


def tip_adapter_logits(features: torch.Tensor, keys: torch.Tensor, key_labels: torch.Tensor, classifier: torch.Tensor, alpha: float,
                       beta: float, chunk: int = 4096) -> torch.Tensor:
    """Tip-Adapter's (Zhang et al. 2022) training-free logits: 100 * f W^T (the zero-shot classifier, CLIP's logit
    scale) + alpha * exp(-beta (1 - f K^T)) L, with K the k-shot training features (the cache keys) and L their
    one-hot labels (the values)."""
    values = torch.nn.functional.one_hot(key_labels, classifier.shape[0]).to(features.dtype)
    out = []
    for start in range(0, len(features), chunk):
        f = features[start:start + chunk]
        cache = torch.exp(-beta * (1 - f @ keys.T)) @ values
        out.append(100.0 * f @ classifier.T + alpha * cache)
    return torch.cat(out) if out else torch.zeros(0, classifier.shape[0])


def tip_adapter_search(val_x: torch.Tensor, val_y: torch.Tensor, keys: torch.Tensor, key_labels: torch.Tensor, classifier: torch.Tensor,
                       betas: Sequence[float], alphas: Sequence[float]) -> tuple[float, float]:
    """(beta, alpha) of the official search: every beta (outer loop) and alpha (inner) of the grids, the first pair
    with a strictly higher top-1 accuracy on the validation features kept."""
    values = torch.nn.functional.one_hot(key_labels, classifier.shape[0]).to(val_x.dtype)
    zero_shot, affinity = 100.0 * val_x @ classifier.T, val_x @ keys.T
    best, chosen = 0.0, (0.0, 0.0)
    for beta in betas:
        cache = torch.exp(-beta * (1 - affinity)) @ values
        for alpha in alphas:
            accuracy = top1_accuracy(zero_shot + alpha * cache, val_y)
            if accuracy > best:
                best, chosen = accuracy, (beta, alpha)
    return chosen
