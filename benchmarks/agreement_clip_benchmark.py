"""Do vlbench's zero-shot classification and retrieval numbers equal LAION's CLIP_benchmark's?

Both sides get the same open_clip model and the same images on disk, drawn from the shapes world:

- ``imagefolder``: an image-folder tree; ``flickr30k``: a Karpathy-format JSON with its images;
- ``imagenet-r``: ImageNet-R's original layout (200 ``<wnid>/`` folders); CLIP_benchmark masks its
  packaged ImageNet class names, vlbench selects them with the task's class subset; one template on
  both sides (CLIP_benchmark's ``custom_template_file``, vlbench's ``--set files.templates``);
- ``imagenet-a``: the 200-class webdataset layout, with the folder's own class names and templates;
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

Prints every metric from both sides and their largest absolute difference; exits 1 when any
difference exceeds --tolerance.
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

from vlbench import result_schema
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


def vlbench_side(model: str, data_root: Path, tree: Path, batch_size: int, one_template: Path) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "vlbench", "run", "--model", model, "--tasks", ",".join(TASKS), "--language", "it",
                   "--data-root", str(data_root), "--output", out, "--batch-size", str(batch_size), "--device", "cpu",
                   "--set", f"imagefolder:dataset.path={tree}", "--set", f"imagefolder:files.templates={SHAPES_TEMPLATES}",
                   "--set", f"imagenet-r:files.templates={one_template}"]
        subprocess.run(command, check=True, capture_output=True, text=True)
        found = {result.task.name: result.metrics for _, result in result_schema.scan(Path(out))}
        return {task: found[task] for task in TASKS}


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


def clip_benchmark_standard_sets(model, tokenizer, transform, data_root: Path, batch_size: int, one_template: Path) -> dict[str, dict[str, float]]:
    """The standard-suite datasets, built by CLIP_benchmark's own ``build_dataset``."""
    from clip_benchmark.datasets.builder import build_dataset, image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    def classify(dataset, loader) -> dict[str, float]:
        metrics = zeroshot_classification.evaluate(model, loader, tokenizer, dataset.classes, dataset.templates, "cpu", amp=False)
        return {k: float(v) for k, v in metrics.items()}

    results: dict[str, dict[str, float]] = {}
    custom = data_root / "custom_templates.json"
    custom.write_text(json.dumps({"imagenet-r": lines(one_template)}))
    imagenet_r = build_dataset("imagenet-r", root=str(data_root / "imagenet-r"), transform=transform, split="test", download=False,
                               custom_template_file=str(custom))
    results["imagenet-r"] = classify(imagenet_r, torch.utils.data.DataLoader(imagenet_r, batch_size=batch_size))
    for task in ("imagenet-a", "vtab-pets", "voc2007_multilabel"):
        dataset = build_dataset(f"wds/{task.replace('-', '/', 1) if task.startswith('vtab-') else task}", root=str(data_root / f"wds_{task}"),
                                transform=transform, split="test", download=False)
        results[task] = classify(dataset, torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None))
    coco = build_dataset("multilingual_mscoco_captions", root=str(data_root / "multilingual_mscoco_captions"), transform=transform,
                         split="test", download=False, language="it", task="zeroshot_retrieval")
    loader = torch.utils.data.DataLoader(coco, batch_size=batch_size, collate_fn=image_captions_collate_fn)
    results["multilingual_mscoco_captions"] = zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    return results


def clip_benchmark_side(model_text: str, data_root: Path, tree: Path, batch_size: int, one_template: Path) -> dict[str, dict[str, float]]:
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    from vlbench.catalog import Catalog
    from vlbench.models import MODEL_ADAPTERS

    # CLIP_benchmark 1.6 calls float() on a one-element array, which NumPy 2 refuses; this module-level
    # float accepts it and changes nothing else in their code.
    zeroshot_classification.float = lambda value: float(np.asarray(value).item())

    spec = Catalog.load().resolve_model(model_text)
    adapter = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cpu")
    model, tokenizer, transform = adapter.model, adapter.tokenizer, adapter.image_transform

    folder = torchvision.datasets.ImageFolder(str(tree), transform=transform)
    classnames = [name.replace("_", " ") for name in folder.classes]
    templates = [line.rstrip("\n") for line in SHAPES_TEMPLATES.read_text(encoding="utf-8").splitlines() if line.strip()]
    loader = torch.utils.data.DataLoader(folder, batch_size=batch_size)
    classification = zeroshot_classification.evaluate(model, loader, tokenizer, classnames, templates, "cpu", amp=False)

    retrieval_loader = torch.utils.data.DataLoader(KarpathyTest(data_root, transform), batch_size=batch_size, collate_fn=lambda batch: (torch.stack([b[0] for b in batch]), [b[1] for b in batch]))
    retrieval = zeroshot_retrieval.evaluate(model, retrieval_loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    return {"imagefolder": {k: float(v) for k, v in classification.items() if isinstance(v, float)}, "flickr30k": retrieval,
            **clip_benchmark_standard_sets(model, tokenizer, transform, data_root, batch_size, one_template)}


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
    worst = 0.0
    print(f"model {args.model}, {args.images} images per task, shapes seeds {args.seed}/{args.seed + 1}")
    print(f"{'task':30} {'metric':28} {'vlbench':>10} {'CLIP_benchmark':>15} {'|diff|':>9}")
    for task, metrics in theirs.items():
        for name, value in metrics.items():
            mine = ours[task].get(name)
            both_nan = mine is not None and np.isnan(mine) and np.isnan(value)  # acc5 with fewer than 5 classes
            diff = 0.0 if both_nan else abs(mine - value) if mine is not None else float("inf")
            worst = max(worst, diff)
            print(f"{task:30} {name:28} {mine if mine is not None else float('nan'):10.6f} {value:15.6f} {diff:9.1e}")
    print(f"largest absolute difference: {worst:.2e}")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
