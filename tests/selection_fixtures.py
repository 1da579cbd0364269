"""Selection benchmarks written in their official on-disk formats, with generated images."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
from conftest import shared_data
from PIL import Image

SUGARCREPE_COUNTS = {"replace_obj": 1652, "replace_att": 788, "replace_rel": 1406, "swap_obj": 245, "swap_att": 666, "add_obj": 2062, "add_att": 692}


def placeholder(path: Path, size=(24, 18), color=(120, 80, 40), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        Image.new(mode, size, color if mode == "RGB" else (*color, 128)).save(path)


def sugarcrepe_data_root(root: Path) -> Path:
    """The real SugarCrepe JSONs (from the shared folder) + placeholder COCO val2017 images they name."""
    source = shared_data("sugarcrepe")
    (root / "sugarcrepe").mkdir(parents=True, exist_ok=True)
    for subset in SUGARCREPE_COUNTS:
        shutil.copy(source / f"{subset}.json", root / "sugarcrepe" / f"{subset}.json")
        for item in json.loads((source / f"{subset}.json").read_text()).values():
            placeholder(root / "coco" / "val2017" / item["filename"], size=(16, 16))
    return root


def write_aro_vg(root: Path) -> dict:
    """visual_genome_relation.json / _attribution.json in ARO's format, plus images."""
    rng = np.random.default_rng(0)
    images = root / "aro" / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(images / f"{i}.jpg", quality=95)
    box = {"bbox_x": 10, "bbox_y": 5, "bbox_w": 30, "bbox_h": 20}
    relation = [
        {"image_id": str(i % 3), "image_path": f"{i % 3}.jpg", **box, "relation_name": rel,
         "true_caption": f"the horse is {rel} the man", "false_caption": f"the man is {rel} the horse"}
        for i, rel in enumerate(["on", "on", "near", "behind", "behind", "behind"])
    ]
    attribution = [
        {"image_id": str(i % 3), "image_path": f"{i % 3}.jpg", **box, "attributes": attrs,
         "true_caption": f"the {attrs[0]} shirt and the {attrs[1]} dog", "false_caption": f"the {attrs[1]} shirt and the {attrs[0]} dog"}
        for i, attrs in enumerate([["white", "black"]] * 26 + [["black", "white"]] * 2)
    ]
    (root / "aro" / "visual_genome_relation.json").write_text(json.dumps(relation))
    (root / "aro" / "visual_genome_attribution.json").write_text(json.dumps(attribution))
    return {"relation": relation, "attribution": attribution}


def write_aro_order(root: Path) -> dict[str, list]:
    """BLIP's Karpathy test files for COCO and Flickr30k, with images."""
    annotations = {
        "coco_karpathy_test.json": [
            {"image": "val2014/COCO_val2014_000000000001.jpg", "caption": ["A man riding a big horse.", "A red shirt on a man"]},
            {"image": "val2014/COCO_val2014_000000000002.jpg", "caption": ["The small dog sits on the street!"]},
        ],
        "flickr30k_test.json": [
            {"image": "flickr30k-images/1001.jpg", "caption": ["A dog runs across a white street .", "Two men talk"]},
        ],
    }
    for name, entries in annotations.items():
        base = root / ("coco" if name.startswith("coco") else "flickr30k")
        for entry in entries:
            placeholder(base / entry["image"])
        (root / "aro").mkdir(parents=True, exist_ok=True)
        (root / "aro" / name).write_text(json.dumps(entries))
    return annotations


def write_winoground(root: Path, n: int = 4) -> list[dict]:
    """examples.jsonl + images/<name>.png (some RGBA, as in the real data); never real Winoground data."""
    tags = ["Object", "Relation", "Both", "Relation"]
    rows = []
    for i in range(n):
        rows.append({"id": i, "image_0": f"ex_{i}_img_0", "image_1": f"ex_{i}_img_1", "caption_0": f"a dog above a cat {i}",
                     "caption_1": f"a cat above a dog {i}", "tag": "Noun", "secondary_tag": "", "num_main_preds": 1,
                     "collapsed_tag": tags[i % len(tags)]})
        placeholder(root / "winoground" / "images" / f"ex_{i}_img_0.png", mode="RGBA", color=(200, 30, 30))
        placeholder(root / "winoground" / "images" / f"ex_{i}_img_1.png", color=(30, 30, 200))
    (root / "winoground" / "examples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return rows


class WordListTagger:
    """A deterministic stand-in for spaCy + nltk: regex tokens, tags from small word lists."""

    NOUNS = {"man", "men", "horse", "dog", "shirt", "street", "cat"}
    ADJECTIVES = {"big", "small", "red", "white"}

    def tagged_tokens(self, text):
        tokens = re.findall(r"\w+|[^\w\s]", text)
        return [(t, "NN" if t.lower() in self.NOUNS else "JJ" if t.lower() in self.ADJECTIVES else "XX") for t in tokens]

    def words(self, text):
        return re.findall(r"\w+|[^\w\s]", text)

    def describe(self):
        return {"tagger": "word lists (test)"}


# -- records-format benchmarks (SugarCrepe++, VALSE): their exact field names, generated images --------
RED, BLUE = (230, 20, 20), (20, 20, 230)
SCPP_SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def write_sugarcrepe_pp(root: Path) -> list[dict]:
    """data/<subset>.json of Sri-Harsha/scpp (a list of {id, filename, caption, caption2, negative_caption}) + COCO images.

    With the colour model (cosines ~1 for the same colour word, ~-0.5 for another, ~0 for none):
    item 1: ITT right, TOT right; item 2: only P1 beats N (ITT wrong, TOT wrong); item 3: ITT wrong, TOT right.
    """
    items = [
        {"id": 0, "filename": "000000000001.jpg", "caption": "a red cup", "caption2": "red cup on a table", "negative_caption": "a blue cup"},
        {"id": 1, "filename": "000000000001.jpg", "caption": "a red cup", "caption2": "a blue mug", "negative_caption": "a plain cup"},
        {"id": 2, "filename": "000000000002.jpg", "caption": "a red cup", "caption2": "a red mug", "negative_caption": "a blue cup"},
    ]
    placeholder(root / "coco" / "val2017" / "000000000001.jpg", color=RED)
    placeholder(root / "coco" / "val2017" / "000000000002.jpg", color=BLUE)
    (root / "sugarcrepe_pp").mkdir(parents=True, exist_ok=True)
    for subset in SCPP_SUBSETS:
        (root / "sugarcrepe_pp" / f"{subset}.json").write_text(json.dumps(items))
    return items


# VALSE file -> (images folder under the data root, image file names in that piece's style)
VALSE_FILES = {
    "existence.json": ("visual7w/images", ["v7w_2371044.jpg", "v7w_2371045.jpg"]),
    "plurals.json": ("coco/val2017", ["000000291619.jpg", "000000291620.jpg"]),
    "counting-hard.json": ("visual7w/images", ["v7w_2396743.jpg", "v7w_2396744.jpg"]),
    "counting-small-quant.json": ("visual7w/images", ["v7w_2349294.jpg", "v7w_2349295.jpg"]),
    "counting-adversarial.json": ("visual7w/images", ["v7w_1.jpg", "v7w_2.jpg"]),
    "relations.json": ("coco/val2017", ["000000462576.jpg", "000000462577.jpg"]),
    "action-replacement.json": ("swig/images_512", ["exercising_255.jpg", "exercising_256.jpg"]),
    "actant-swap.json": ("swig/images_512", ["exercising_255.jpg", "exercising_256.jpg"]),
    "coreference-standard.json": ("coco/val2014", ["COCO_val2014_000000254009.jpg", "COCO_train2014_000000000077.jpg"]),
    "coreference-hard.json": ("visdial/VisualDialog_val2018", ["VisualDialog_val2018_000000284024.jpg", "VisualDialog_val2018_000000284025.jpg"]),
    "foil-it.json": ("coco/val2014", ["COCO_val2014_000000165831.jpg", "COCO_val2014_000000165832.jpg"]),
}


def valse_items(red_image: str, blue_image: str, dataset: str = "visual7w") -> dict[str, dict]:
    """Four VALSE records ({key: record}, the repository's fields). mturk.caption >= 2 keeps the first,
    second and fourth: with the colour model, right, wrong, right -> acc_r = 2/3 (3/4 unfiltered)."""

    def item(image, caption, foil, votes):
        return {"dataset": dataset, "original_split": "test", "dataset_idx": image.split(".")[0], "linguistic_phenomena": "existence",
                "image_file": image, "caption": caption, "classes": "x", "classes_foil": "y",
                "mturk": {"foil": 3 - votes, "caption": votes, "other": 0}, "foil": foil}

    return {
        "existence_visual7w_1": item(red_image, "There is a red cup.", "There is a blue cup.", 3),
        "existence_visual7w_2": item(red_image, "There is a blue cup.", "There is a red cup.", 2),
        "existence_visual7w_3": item(blue_image, "There is a blue cup.", "There is a red cup.", 1),
        "existence_visual7w_4": item(blue_image, "A blue thing.", "A plain thing.", 2),
    }


def write_valse(root: Path) -> None:
    """All 11 VALSE files (data/*.json of Heidelberg-NLP/VALSE) with images where each task looks for them."""
    (root / "valse").mkdir(parents=True, exist_ok=True)
    for name, (folder, (red, blue)) in VALSE_FILES.items():
        if name == "coreference-standard.json":  # VisDial train: COCO train2014 and val2014 images, two folders
            placeholder(root / "coco" / "val2014" / red, color=RED)
            placeholder(root / "coco" / "train2014" / blue, color=BLUE)
        else:
            placeholder(root / folder / red, color=RED)
            placeholder(root / folder / blue, color=BLUE)
        (root / "valse" / name).write_text(json.dumps(valse_items(red, blue)))


def noise_image(path: Path, seed: int, size=(80, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[: size[1] // 2] //= 1 + seed % 3  # some structure, so that crops and images differ
    Image.fromarray(pixels).save(path)


def write_colorswap(root: Path, n: int = 4) -> list[dict]:
    """ColorSwap's data/test.json (the README's record layout) and its images."""
    folder = root / "colorswap"
    colours = [("red", "blue"), ("green", "yellow"), ("white", "black"), ("purple", "orange")]
    examples = []
    for i in range(n):
        first, second = colours[i % len(colours)]
        examples.append({"id": i, "caption_1": f"a {first} ball on a {second} table", "caption_2": f"a {second} ball on a {first} table",
                         "image_1": f"images/img_{i}_1.png", "image_2": f"images/img_{i}_2.png",
                         "image_source": "midjourney" if i % 2 else "dalle", "caption_source": "human"})
        noise_image(folder / "images" / f"img_{i}_1.png", 2 * i)
        noise_image(folder / "images" / f"img_{i}_2.png", 2 * i + 1)
    (folder / "test.json").write_text(json.dumps(examples, indent=1))
    return examples


def write_mmvp_vlm(root: Path, categories=("Orientation", "Presence"), pairs: int = 15) -> list[list[str]]:
    """MMVP-VLM's Questions.csv (qid, type, statement; consecutive rows a pair, odd qid first) and its image folders."""
    folder = root / "mmvp_vlm"
    rows = []
    for c, category in enumerate(categories):
        for pair in range(pairs):
            for side in (1, 2):
                qid = 2 * pairs * c + 2 * pair + side
                noise_image(folder / "MLLM_VLM Images" / category / f"{qid}.jpg", qid, size=(40, 40))
                rows.append([str(qid), category, f"the {'left' if side == 1 else 'right'} thing {pair} looks {category.lower()}"])
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "Questions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Question ID", "Type", "Statement"])  # skipped: the task's columns name them as the script unpacks them
        writer.writerows(rows)
    return rows


def crepe_rows(n: int = 6) -> list[dict]:
    rows = []
    for i in range(n):
        negatives = [f"a {w} thing number {i}" for w in ("red", "wooden", "tiny", "striped", "broken")[: 2 + i % 4]]
        rows.append({"image_id": 1000 + i, "caption": f"a photo of object {i} near a window", "x": 5 * i, "y": 3 * i, "width": 60 + i,
                     "height": 50, "hard_negs": str(negatives)})  # as pandas writes a list column
    return rows


def crepe_image_folder(i: int) -> str:
    return "VG_100K" if i % 2 else "VG_100K_2"  # Visual Genome's images are split over two folders


def write_crepe_productivity(root: Path, types=("atom", "swap", "negate"), complexities=range(4, 13), n: int = 6) -> list[dict]:
    """CREPE's productivity CSVs (image_id, caption, x, y, width, height, hard_negs) and the Visual Genome images they crop."""
    rows = crepe_rows(n)
    for i, row in enumerate(rows):
        noise_image(root / "visual_genome" / crepe_image_folder(i) / f"{row['image_id']}.jpg", 10 + i, size=(120, 90))
    for kind in types:
        for complexity in complexities:
            path = root / "crepe" / "prod_hard_negatives" / kind / f"prod_vg_hard_negs_{kind}_complexity_{complexity}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    return rows
