"""Do vlbench's zero-shot classification and retrieval numbers equal LAION's CLIP_benchmark's?

Both sides get the same open_clip model and the same images on disk, drawn from the shapes world:

- ``imagefolder``: an image-folder tree; ``flickr30k``: a Karpathy-format JSON with its images;
- ``imagenet-r``: ImageNet-R's original layout (200 ``<wnid>/`` folders), in Italian (the run's
  ``--language it``, which CLIP_benchmark applies to its ImageNet variants too); CLIP_benchmark masks its
  packaged ImageNet class names, vlbench selects them with the task's class subset; one template on
  both sides (CLIP_benchmark's ``custom_template_file``, vlbench's ``--set files.templates``);
- ``imagenet-a``: the 200-class webdataset layout, with the folder's own class names and templates (in
  English: CLIP_benchmark ignores the language on a webdataset folder, vlbench would apply it, so the run
  sets ``imagenet-a:language=en``);
- ``vtab-pets``: a webdataset folder whose own class names and templates (stray spaces included)
  replace the packaged ones;
- ``voc2007_multilabel``: a multilabel webdataset (``npy`` 0/1 vectors), mean average precision;
- ``multilingual_mscoco_captions`` in Italian: CLIP_benchmark's caption-file layout.

The vlbench side is the ordinary CLI (``vlbench run``); the CLIP_benchmark side builds each dataset
with ``clip_benchmark.datasets.builder.build_dataset`` (webdatasets through the ``webdataset``
package, as its CLI does) and calls ``clip_benchmark.metrics.zeroshot_classification.evaluate`` /
``zeroshot_retrieval.evaluate`` with the model's own transform and tokenizer and mixed precision off
(vlbench's fp32 default).

    pip install clip_benchmark==1.6.2 --no-deps && pip install webdataset   # metrics need torch, scikit-learn, tqdm
    python benchmarks/agreement_clip_benchmark.py --model "openclip:vlbench-tiny@random?seed=0"

Both sides are also compared item by item: CLIP_benchmark's per-item outcomes are read from the
functions its ``evaluate`` calls (``run_classification``'s logits, ``batchify``'s per-query recalls),
vlbench's from its per-sample records. Items whose outcome an exact tie decides (two classes or
captions with equal scores: CLIP_benchmark's ``torch.topk`` orders them as the data falls, vlbench
by index) are reported apart; every other item must have the same outcome on both sides, and each
CLIP_benchmark metric must lie within vlbench's bounds over the tied scores' orders (``ties`` in the
result). Prints every metric from both sides, their difference and the tie-decided items; exits 1
when a tie-free item differs, or a difference exceeds --tolerance that ties do not explain.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlbench.results import schema as result_schema
from vlbench.datasets.shapes import (
    classification_scene,
    multi_object_scene,
    object_classes,
    retrieval_captions,
)

REPO = Path(__file__).resolve().parents[1]
SHAPES_TEMPLATES = REPO / "tasks" / "shapes" / "templates.txt"
IMAGENET = REPO / "tasks" / "classification" / "imagenet1k"
SUBSETS = REPO / "tasks" / "classification" / "standard" / "subsets"
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
               "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
TASKS = ("imagefolder", "flickr30k", "imagenet-r", "imagenet-a", "vtab-pets", "voc2007_multilabel", "multilingual_mscoco_captions")


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def write_wds(folder: Path, samples: list[dict[str, bytes]], classnames: list[str], templates: list[str] | None = None,
              dataset_type: str | None = None, per_shard: int = 64) -> None:
    """CLIP_benchmark's webdataset layout, as its ``clip_benchmark_export_wds`` writes it."""
    (folder / "test").mkdir(parents=True)
    shards = [samples[i : i + per_shard] for i in range(0, len(samples), per_shard)]
    for number, shard in enumerate(shards):
        with tarfile.open(folder / "test" / f"{number}.tar", "w") as tar:
            for index, sample in enumerate(shard):
                for extension, payload in sample.items():
                    info = tarfile.TarInfo(f"s{number * per_shard + index:07d}.{extension}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    (folder / "test" / "nshards.txt").write_text(str(len(shards)))
    (folder / "classnames.txt").write_text("\n".join(classnames) + "\n", encoding="utf-8")
    if templates is not None:
        (folder / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n", encoding="utf-8")
    if dataset_type is not None:
        (folder / "dataset_type.txt").write_text(dataset_type + "\n")


def write_standard_sets(data_root: Path, n: int, seed: int) -> Path:
    """The five datasets of the standard suites; returns the one-template file used for ImageNet-R."""
    rng = np.random.default_rng(seed)
    scene = lambda index: classification_scene(seed, index)[0].render()  # noqa: E731
    # ImageNet-R, original layout: one folder per wnid of its 200 (torchvision's ImageFolder needs every folder filled)
    for index, wnid in enumerate(lines(SUBSETS / "imagenet-r_wnids.txt")):
        folder = data_root / "imagenet-r" / wnid
        folder.mkdir(parents=True)
        for copy in range(1 + index % 2):
            scene(1000 + 2 * index + copy).save(folder / f"{copy}.png")
    one_template = data_root / "one_template.txt"
    one_template.write_text("a photo of a {c}.\n")
    # ImageNet-A as a webdataset: the 200 names CLIP_benchmark masks out of ImageNet's 1000, and two templates
    keep = set(lines(SUBSETS / "imagenet-a_wnids.txt"))
    names_a = [name for name, wnid in zip(lines(IMAGENET / "classnames_en.txt"), lines(IMAGENET / "wnids.txt")) if wnid in keep]
    write_wds(data_root / "wds_imagenet-a", [{"png": png(scene(3000 + i)), "cls": str(int(rng.integers(200))).encode()} for i in range(n)],
              names_a, ["a photo of a {c}.", "itap of the {c}."])
    # a folder with its own lists, stray spaces included (CLIP_benchmark strips every line)
    pets = [" red thing", "green thing ", "blue thing", "yellow thing", "purple thing"]
    write_wds(data_root / "wds_vtab-pets", [{"png": png(scene(5000 + i)), "cls": str(i % 5).encode()} for i in range(n)],
              pets, [" a photo of my {c}. ", "a {c}, a pet."])
    # VOC2007 multilabel: 1-3 classes per image
    targets = [np.isin(np.arange(20), rng.choice(20, size=int(rng.integers(1, 4)), replace=False)).astype(np.float32) for _ in range(n)]
    write_wds(data_root / "wds_voc2007_multilabel", [{"png": png(scene(7000 + i)), "npy": npy(t)} for i, t in enumerate(targets)],
              VOC_CLASSES, ["a photo of a {c}."], dataset_type="multilabel")
    # multilingual MS-COCO in Italian: CLIP_benchmark's caption file with absolute image paths
    root = data_root / "multilingual_mscoco_captions"
    images = root / "multilingual_mscoco" / "images"
    images.mkdir(parents=True)
    paths, captions = [], []
    for index in range(n):
        shapes = multi_object_scene(seed + 5, index)
        shapes.render().save(images / f"{index:05d}.jpg", quality=95)
        paths.append(str(images / f"{index:05d}.jpg"))
        captions.append("una foto: " + retrieval_captions(shapes)[index % 2].replace(" and ", " e "))
    (root / "multilingual_mscoco_captions-it.json").write_text(json.dumps({"image_paths": paths, "annotations": captions}, ensure_ascii=False))
    return one_template


def write_classification_tree(root: Path, n: int, seed: int) -> None:
    for index in range(n):
        scene, label = classification_scene(seed, index)
        folder = root / object_classes()[label].replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        scene.render().save(folder / f"{index:05d}.png")


def write_karpathy_retrieval(root: Path, n: int, seed: int) -> None:
    images = root / "flickr30k" / "flickr30k-images"
    images.mkdir(parents=True)
    entries = []
    for index in range(n):
        scene = multi_object_scene(seed, index)
        scene.render().save(images / f"{index:05d}.png")
        entries.append({"filename": f"{index:05d}.png", "split": "test", "sentences": [{"raw": c} for c in retrieval_captions(scene)]})
    (root / "flickr30k" / "dataset_flickr30k.json").write_text(json.dumps({"images": entries}))


def vlbench_side(model: str, data_root: Path, tree: Path, batch_size: int, one_template: Path) -> dict[str, tuple]:
    """Per task: (metrics, per-sample records, ties) of an ordinary ``vlbench run``."""
    from vlbench.results.rescore import records

    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "vlbench", "run", "--model", model, "--tasks", ",".join(TASKS), "--language", "it",
                   "--data-root", str(data_root), "--output", out, "--batch-size", str(batch_size), "--device", "cpu", "--no-cache",
                   "--set", f"imagefolder:dataset.path={tree}", "--set", f"imagefolder:files.templates={SHAPES_TEMPLATES}",
                   "--set", f"imagenet-r:files.templates={one_template}", "--set", "imagenet-a:language=en"]
        subprocess.run(command, check=True, capture_output=True, text=True)
        found = {result.task.name: (result.metrics, records(path, result), result.ties or {}) for path, result in result_schema.scan(Path(out))}
        return {task: found[task] for task in TASKS}


class Capture:
    """CLIP_benchmark's per-item outcomes, read from the functions its ``evaluate`` calls by module-level name."""

    def __init__(self) -> None:
        from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

        self.logits: list = []
        self.recalls: list = []
        run_classification, batchify = zeroshot_classification.run_classification, zeroshot_retrieval.batchify

        def capture_logits(*args, **kwargs):
            out = run_classification(*args, **kwargs)
            self.logits.append(out)
            return out

        def capture_recalls(func, X, Y, *args, **kwargs):
            out = batchify(func, X, Y, *args, **kwargs)
            self.recalls.append((kwargs["k"], out))
            return out

        zeroshot_classification.run_classification = capture_logits
        zeroshot_retrieval.batchify = capture_recalls

    def classification(self) -> dict[str, np.ndarray]:
        """The last evaluate's per-item outcomes: top-k hits as its torch.topk orders them, argmax hits, or per-class AP."""
        from clip_benchmark.metrics.zeroshot_classification import average_precision_per_class

        logits, target = self.logits.pop()
        if target.ndim == 2:
            return {"target": target.numpy(), "ap_per_class": average_precision_per_class(logits, target).numpy()}
        top = logits.topk(min(5, logits.shape[1]), 1, True, True)[1]
        items = {"target": target.numpy(), "acc1": (top[:, 0] == target).numpy(), "mean_per_class_recall": (logits.argmax(1) == target).numpy()}
        if logits.shape[1] >= 5:
            items["acc5"] = (top == target[:, None]).any(1).numpy()
        return items

    def retrieval(self) -> dict[str, np.ndarray]:
        """The last evaluate's per-query hits: for each k, image retrieval (text queries) then text retrieval."""
        calls, self.recalls = self.recalls, []
        items = {}
        for (k, image), (_, text) in zip(calls[::2], calls[1::2]):
            items[f"image_retrieval_recall@{k}"] = (image > 0).numpy()
            items[f"text_retrieval_recall@{k}"] = (text > 0).numpy()
        return items


def vlbench_items(records: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(per-item outcome, decided by a tie) of a per-item metric, from vlbench's records; None for other metrics."""
    from vlbench.kinds.classification import label_hit_bounds
    from vlbench.metrics import hit_bounds

    if metric in ("acc1", "acc5", "mean_per_class_recall"):
        k = 5 if metric == "acc5" else 1
        bounds = [label_hit_bounds(r, k) for r in sorted(records, key=lambda r: r["i"])]
        hits = [float(r["label"] in r["top"][:k]) for r in sorted(records, key=lambda r: r["i"])]
    elif "_retrieval_recall@" in metric:
        direction, k = metric.split("_recall@")
        rows = sorted((r for r in records if r["type"] == ("text" if direction == "image_retrieval" else "image")), key=lambda r: r["i"])
        bounds = [hit_bounds(*r["tie"], int(k)) if "tie" in r else (float(r["rank"] < int(k)),) * 2 for r in rows]
        hits = [float(r["rank"] < int(k)) for r in rows]
    else:
        return None
    return np.asarray(hits), np.asarray([b[0] != b[1] for b in bounds])


def vlbench_class_ap(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(per-class AP, classes with a tie between a positive and a negative image) of a multilabel task."""
    from vlbench import metrics

    rows = sorted(records, key=lambda r: r["i"])
    scores = np.asarray([r["scores"] for r in rows])
    targets = np.zeros_like(scores)
    for n, r in enumerate(rows):
        targets[n, r["targets"]] = 1
    tied = np.asarray([metrics.mixed_tie_members(scores[:, [c]], targets[:, [c]]).any() for c in range(scores.shape[1])])
    return metrics.average_precision_per_class(scores, targets), tied


class KarpathyTest(torch.utils.data.Dataset):
    def __init__(self, root: Path, transform):
        self.root = root / "flickr30k"
        self.entries = json.loads((self.root / "dataset_flickr30k.json").read_text())["images"]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        entry = self.entries[index]
        image = Image.open(self.root / "flickr30k-images" / entry["filename"]).convert("RGB")
        return self.transform(image), [s["raw"] for s in entry["sentences"]]


def clip_benchmark_standard_sets(model, tokenizer, transform, data_root: Path, batch_size: int, one_template: Path, capture: Capture) -> dict[str, tuple]:
    """The standard-suite datasets, built by CLIP_benchmark's own ``build_dataset``."""
    from clip_benchmark.datasets.builder import build_dataset, image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    def classify(dataset, loader) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        metrics = zeroshot_classification.evaluate(model, loader, tokenizer, dataset.classes, dataset.templates, "cpu", amp=False)
        return {k: float(v) for k, v in metrics.items()}, capture.classification()

    results: dict[str, dict[str, float]] = {}
    custom = data_root / "custom_templates.json"
    custom.write_text(json.dumps({"imagenet-r": lines(one_template)}))
    imagenet_r = build_dataset("imagenet-r", root=str(data_root / "imagenet-r"), transform=transform, split="test", download=False, language="it",
                               custom_template_file=str(custom))
    results["imagenet-r"] = classify(imagenet_r, torch.utils.data.DataLoader(imagenet_r, batch_size=batch_size))
    for task in ("imagenet-a", "vtab-pets", "voc2007_multilabel"):
        dataset = build_dataset(f"wds/{task.replace('-', '/', 1) if task.startswith('vtab-') else task}", root=str(data_root / f"wds_{task}"),
                                transform=transform, split="test", download=False)
        results[task] = classify(dataset, torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None))
    coco = build_dataset("multilingual_mscoco_captions", root=str(data_root / "multilingual_mscoco_captions"), transform=transform,
                         split="test", download=False, language="it", task="zeroshot_retrieval")
    loader = torch.utils.data.DataLoader(coco, batch_size=batch_size, collate_fn=image_captions_collate_fn)
    results["multilingual_mscoco_captions"] = (zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10]),
                                                capture.retrieval())
    return results


def clip_benchmark_side(model_text: str, data_root: Path, tree: Path, batch_size: int, one_template: Path) -> dict[str, tuple]:
    """Per task: (metrics, per-item outcomes) of CLIP_benchmark's own code."""
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    from vlbench.spec.catalog import Catalog
    from vlbench.models import MODEL_ADAPTERS

    # CLIP_benchmark 1.6 calls float() on a one-element array, which NumPy 2 refuses; this module-level
    # float accepts it and changes nothing else in their code.
    zeroshot_classification.float = lambda value: float(np.asarray(value).item())
    capture = Capture()

    spec = Catalog.load().resolve_model(model_text)
    adapter = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cpu")
    model, tokenizer, transform = adapter.model, adapter.tokenizer, adapter.image_transform

    folder = torchvision.datasets.ImageFolder(str(tree), transform=transform)
    classnames = [name.replace("_", " ") for name in folder.classes]
    templates = [line.rstrip("\n") for line in SHAPES_TEMPLATES.read_text(encoding="utf-8").splitlines() if line.strip()]
    loader = torch.utils.data.DataLoader(folder, batch_size=batch_size)
    classification = zeroshot_classification.evaluate(model, loader, tokenizer, classnames, templates, "cpu", amp=False)
    classification_items = capture.classification()

    retrieval_loader = torch.utils.data.DataLoader(KarpathyTest(data_root, transform), batch_size=batch_size, collate_fn=lambda batch: (torch.stack([b[0] for b in batch]), [b[1] for b in batch]))
    retrieval = zeroshot_retrieval.evaluate(model, retrieval_loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    return {"imagefolder": ({k: float(v) for k, v in classification.items() if isinstance(v, float)}, classification_items),
            "flickr30k": (retrieval, capture.retrieval()),
            **clip_benchmark_standard_sets(model, tokenizer, transform, data_root, batch_size, one_template, capture)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openclip:vlbench-tiny")
    parser.add_argument("--images", type=int, default=300, help="images per task")
    parser.add_argument("--seed", type=int, default=777, help="shapes seed (not one the built-in model was trained on)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_root, tree = Path(tmp) / "data", Path(tmp) / "tree"
        write_classification_tree(tree, args.images, args.seed)
        write_karpathy_retrieval(data_root, args.images, args.seed + 1)
        one_template = write_standard_sets(data_root, args.images, args.seed + 2)
        ours = vlbench_side(args.model, data_root, tree, args.batch_size, one_template)
        theirs = clip_benchmark_side(args.model, data_root, tree, args.batch_size, one_template)
    failures: list[str] = []
    worst = 0.0
    print(f"model {args.model}, {args.images} images per task, shapes seeds {args.seed}/{args.seed + 1}")
    print(f"{'task':30} {'metric':26} {'vlbench':>9} {'CLIP_bench':>10} {'|diff|':>8}  {'tie-free items':>14}  {'tie-decided (differ)':>20}")
    for task, (metrics, items) in theirs.items():
        mine, records, ties = ours[task]
        failures += aligned(task, records, items)
        for name, value in metrics.items():
            ours_value = mine.get(name)
            both_nan = ours_value is not None and np.isnan(ours_value) and np.isnan(value)  # acc5 with fewer than 5 classes
            diff = 0.0 if both_nan else abs(ours_value - value) if ours_value is not None else float("inf")
            free, decided, differ, mismatched = item_agreement(records, items, name)
            bounds = (ties.get("metrics") or {}).get(name)
            explained = decided and bounds and bounds["low"] - args.tolerance <= value <= bounds["high"] + args.tolerance
            if mismatched:
                failures.append(f"{task} {name}: {mismatched} tie-free item(s) differ")
            if diff > args.tolerance and not explained:
                failures.append(f"{task} {name}: |diff| {diff:.2e} is not explained by exact ties")
            worst = max(worst, 0.0 if explained else diff)
            ours_text = f"{ours_value if ours_value is not None else float('nan'):9.6f}"
            free_text = "-" if free is None else f"{free - mismatched}/{free} equal"
            tie_text = "-" if decided is None else f"{decided} ({differ})"
            print(f"{task:30} {name:26} {ours_text} {value:10.6f} {diff:8.1e}  {free_text:>14}  {tie_text:>20}")
    print(f"largest absolute difference not explained by exact ties: {worst:.2e}")
    from agreement_linear_probe import compare as compare_linear_probe  # beside this script

    probe_lines, probe_failures = compare_linear_probe(args.model, 2 * args.images, args.seed + 3, args.batch_size)
    print(f"\n{'linear probe (clip_benchmark.metrics.linear_probe)':40} {'metric':24} {'vlbench':>9} {'CLIP_bench':>10} {'|diff|':>8}")
    print("\n".join(probe_lines))
    failures += probe_failures
    for failure in failures:
        print(f"DIFFERS: {failure}")
    sys.exit(1 if failures else 0)


def aligned(task: str, records: list[dict], items: dict[str, np.ndarray]) -> list[str]:
    """Both sides list the same items in the same order (classification: the same labels, item by item)."""
    if "target" not in items or "label" not in (records[0] if records else {}):
        return []
    labels = np.asarray([r["label"] for r in sorted(records, key=lambda r: r["i"])])
    return [] if np.array_equal(labels, items["target"]) else [f"{task}: the two sides list the items in another order"]


def item_agreement(records: list[dict], items: dict[str, np.ndarray], metric: str) -> tuple[int | None, int | None, int, int]:
    """(tie-free items compared, tie-decided items, tie-decided items that differ, tie-free items that differ);
    per-class AP for mean average precision (classes instead of items)."""
    if metric == "mean_average_precision":
        ap, tied = vlbench_class_ap(records)
        differ = np.abs(ap - items["ap_per_class"]) > 1e-6
        return int((~tied).sum()), int(tied.sum()), int((differ & tied).sum()), int((differ & ~tied).sum())
    ours = vlbench_items(records, metric)
    if ours is None or metric not in items:
        return None, None, 0, 0
    hits, decided = ours
    differ = hits != items[metric].astype(float)
    return int((~decided).sum()), int(decided.sum()), int((differ & decided).sum()), int((differ & ~decided).sum())


if __name__ == "__main__":
    main()
