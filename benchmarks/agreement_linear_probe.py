"""Does vlbench's linear probe (method clip_benchmark) give CLIP_benchmark 1.6.2's ``linear_probe`` numbers?

Both sides get the same model and the same image-folder trees (a training and a test split of the shapes
world). The CLIP_benchmark side calls ``clip_benchmark.metrics.linear_probe.evaluate`` itself, with its
featurizer, feature files and training loop; that code asserts CUDA, so on a CPU-only machine its
``.cuda()`` / ``.to("cuda")`` calls are mapped to the CPU for the call (nothing else changes). It is called
twice: the first call featurizes and stores the features, the second finds them and goes straight to its
``torch.randperm`` after ``torch.manual_seed(seed)``, which is the permutation vlbench draws from the same
seed, so both train on the same features in the same order. Configurations: the whole training split, a
4-shot draw, and a weight-decay search on a validation part. Reported: the largest feature difference, each
side's acc1 / acc5 / mean per-class recall and the chosen weight decay; fails when features differ by more
than 1e-6 or an accuracy by more than 0.5 points.

    python benchmarks/agreement_linear_probe.py --model "openclip:vlbench-tiny@random?seed=0"
    (also run at the end of benchmarks/agreement_clip_benchmark.py)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from vlbench.datasets.shapes import classification_scene, object_classes

CONFIGS = {  # name -> (slug, fewshot_k, val_proportion)
    "full": ("full", -1, 0.0),
    "4-shot": ("shot4", 4, 0.0),
    "full, weight decay searched": ("searched", -1, 0.2),
}
TASK = """task: lp_agreement_{slug}
kind: linear_probe
version: 1
dataset:
  sources: [{{format: imagefolder, path: test}}]
  train_sources: [{{format: imagefolder, path: {train}}}]
protocol: {{fewshot_k: {k}, val_proportion: {p}, seeds: [0]}}
metrics: [acc1, acc5, mean_per_class_recall]
main_metric: acc1
"""


def write_tree(root: Path, n: int, seed: int, positions: list[int] | None = None) -> None:
    for index in range(n) if positions is None else positions:
        scene, label = classification_scene(seed, index)
        folder = root / object_classes()[label].replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        scene.render().save(folder / f"{index:05d}.png")


@contextlib.contextmanager
def cuda_on_cpu() -> Iterator[None]:
    """CLIP_benchmark's linear probe asserts device == 'cuda' and moves everything there; on a machine without
    CUDA its moves stay on the CPU for the duration of the call."""
    if torch.cuda.is_available():
        yield
        return
    saved = torch.nn.Module.cuda, torch.Tensor.cuda, torch.Tensor.to
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.Tensor.to = lambda self, *a, **k: saved[2](self, *("cpu" if x == "cuda" else x for x in a),
                                                     **{key: ("cpu" if v == "cuda" else v) for key, v in k.items()})
    try:
        yield
    finally:
        torch.nn.Module.cuda, torch.Tensor.cuda, torch.Tensor.to = saved


def clip_benchmark_run(arguments: dict) -> dict:
    """CLIP_benchmark's linear_probe.evaluate, twice: the first call featurizes and stores the features, the
    second reads them and draws its permutation right after torch.manual_seed(seed)."""
    from clip_benchmark.metrics import linear_probe

    with cuda_on_cpu(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its progress lines
        linear_probe.evaluate(**arguments)
        torch.manual_seed(arguments["seed"])
        return linear_probe.evaluate(**arguments)


def compare(model_text: str, images: int, seed: int, batch_size: int) -> tuple[list[str], list[str]]:
    """(table lines, failures)."""
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification

    import vlbench
    from vlbench.encoding.encoder import Encoder
    from vlbench.kinds import probe_fit
    from vlbench.models import MODEL_ADAPTERS
    from vlbench.spec.catalog import Catalog
    from vlbench.datasets.images import FileImage

    # CLIP_benchmark 1.6 calls float() on a one-element array (its accuracy(), which the probe uses), which NumPy 2
    # refuses; this module-level float accepts it and changes nothing else in their code.
    zeroshot_classification.float = lambda value: float(np.asarray(value).item())
    spec = Catalog.load().resolve_model(model_text)
    adapter = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cpu")
    lines, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tree(root / "train", images, seed)
        write_tree(root / "test", images // 2, seed + 1)
        for name, (slug, k, proportion) in CONFIGS.items():
            train_dir = "train"
            val_loader = None
            folder = torchvision.datasets.ImageFolder(str(root / "train"), transform=adapter.image_transform)
            if proportion:  # the same held-out positions on both sides (ImageFolder order = vlbench's imagefolder order)
                fit, held = probe_fit.split_validation(len(folder), proportion, 0)
                train_set, val_set = torch.utils.data.Subset(folder, fit.tolist()), torch.utils.data.Subset(folder, held.tolist())
                val_loader = torch.utils.data.DataLoader(val_set, batch_size=batch_size)
            else:
                train_set = folder
            task_file = root / f"lp_{slug}.yaml"
            task_file.write_text(TASK.format(slug=slug, train=train_dir, k=k, p=proportion))
            ours = vlbench.evaluate(adapter, [str(task_file)], data_root=root, bootstrap_replicates=0, no_cache=True,
                                    batch_size=batch_size)[f"lp_agreement_{slug}"]
            train_loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size)
            test_loader = torch.utils.data.DataLoader(torchvision.datasets.ImageFolder(str(root / "test"), transform=adapter.image_transform),
                                                      batch_size=batch_size)
            theirs = clip_benchmark_run(dict(model=adapter.model, train_dataloader=train_loader, dataloader=test_loader, fewshot_k=k,
                                             batch_size=batch_size, num_workers=0, lr=0.1, epochs=10, model_id=slug, seed=0,
                                             feature_root=str(root / "features"), device="cuda", val_dataloader=val_loader, normalize=True,
                                             amp=False, verbose=False))
            stored = torch.load(root / "features" / slug / "features_train.pt", weights_only=True)
            mine = Encoder(adapter, batch_size=batch_size).images([FileImage(p) for p, _ in folder.samples])
            if proportion:
                mine = mine[torch.as_tensor(fit)]
            feature_diff = float((stored.float() - mine.float()).abs().max())
            if feature_diff > 1e-6:
                failures.append(f"linear probe ({name}): features differ by {feature_diff:.1e}")
            chosen = ours.result.task.protocol_used["chosen"]["weight_decay"]["0"]
            for metric, key in (("acc1", "lp_acc1"), ("acc5", "lp_acc5"), ("mean_per_class_recall", "lp_mean_per_class_recall")):
                a, b = ours.metrics[metric], float(theirs[key])
                if abs(a - b) > 0.005:
                    failures.append(f"linear probe ({name}) {metric}: {a:.4f} vs {b:.4f}")
                lines.append(f"{'linear probe, ' + name:40} {metric:24} {a:9.4f} {b:10.4f} {abs(a - b):8.1e}  features |diff| "
                             f"{feature_diff:.1e}  weight decay {chosen:g} / {theirs['weight_decay']:g}")
    return lines, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openclip:vlbench-tiny")
    parser.add_argument("--images", type=int, default=600, help="training images (the test split has half as many)")
    parser.add_argument("--seed", type=int, default=881)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    lines, failures = compare(args.model, args.images, args.seed, args.batch_size)
    print(f"{'configuration':40} {'metric':24} {'vlbench':>9} {'CLIP_bench':>10} {'|diff|':>8}")
    print("\n".join(lines))
    for failure in failures:
        print(f"DIFFERS: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
