"""Time and peak memory of the probe kinds' fits on a generated feature matrix (no model, no images).

    python benchmarks/probe_fit_speed.py                       # 50,000 x 512 training features, 1,000 classes
    python benchmarks/probe_fit_speed.py --train 5000 --classes 100

Features are unit vectors around one random centre per class (a separable, CLIP-like problem); the test
split has a fifth as many. Each procedure runs in its own process, so its peak resident memory
(``ru_maxrss``) is its own: CLIP_benchmark's linear layer (10 epochs, batch 64), the CLIP paper's
scikit-learn L-BFGS fit at one L2 strength (its search fits ~15 of these; ``--lbfgs-iter`` caps the
iterations, as a full fit to convergence on this size takes far longer), the same fit with the torch
solver (``protocol.solver: torch``; on CUDA where there is one), and DINO's 20-NN.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def features(n: int, dim: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(classes, dim, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.arange(n) % classes
    x = centres[labels] + 0.9 * torch.randn(n, dim, generator=generator) / dim**0.5
    return torch.nn.functional.normalize(x, dim=1), labels


def run_one(method: str, n: int, dim: int, classes: int, lbfgs_iter: int) -> dict[str, float]:
    from vlbench.kinds import probe_fit

    train_x, train_y = features(n, dim, classes, 1)
    test_x, test_y = features(n // 5, dim, classes, 2)
    start = time.perf_counter()
    if method == "clip_benchmark":
        scores, _ = probe_fit.clip_benchmark_probe(train_x, train_y, test_x, classes, lr=0.1, epochs=10, batch_size=64, seed=0,
                                                   weight_decay=0.0, validation=None, refit_with_validation=True)
    elif method in ("clip_paper_one_fit", "clip_paper_one_fit_torch"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        solver = "torch" if method.endswith("torch") else "scikit_learn"
        model = probe_fit.fit_logistic(train_x.double().numpy(), train_y.numpy(), 1e-4, lbfgs_iter, solver, device)
        scores = torch.from_numpy(probe_fit.class_scores(model, test_x.double().numpy(), classes))
    else:
        scores = probe_fit.weighted_knn(train_x, train_y, test_x, classes, 20, 0.07)
    seconds = time.perf_counter() - start
    accuracy = float((scores.argmax(dim=1) == test_y).float().mean())
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "acc1": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--lbfgs-iter", type=int, default=100)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.train, args.dim, args.classes, args.lbfgs_iter)))
        return
    print(f"{args.train} x {args.dim} training features, {args.classes} classes, {args.train // 5} test; torch threads {torch.get_num_threads()}")
    for method in ("clip_benchmark", "knn", "clip_paper_one_fit", "clip_paper_one_fit_torch"):
        done = subprocess.run([sys.executable, __file__, "--one", method, "--train", str(args.train), "--dim", str(args.dim),
                               "--classes", str(args.classes), "--lbfgs-iter", str(args.lbfgs_iter)], capture_output=True, text=True)
        if done.returncode:
            print(f"{method}: failed\n{done.stderr[-2000:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        extra = f" (max_iter {args.lbfgs_iter})" if method.startswith("clip_paper") else ""
        print(f"{method + extra:42} {row['seconds']:8.2f} s   peak RSS {row['peak_rss_mb']:8.1f} MB   acc1 {row['acc1']:.4f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
