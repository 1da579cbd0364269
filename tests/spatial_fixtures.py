"""Segmentation and grounding datasets written in their real on-disk formats, with generated images."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)


def write_voc(root: Path, n: int = 3) -> list[np.ndarray]:
    """VOCdevkit/VOC2012 with JPEGImages, palette-PNG SegmentationClass and the val split file."""
    base = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    names, labels = [], []
    for i in range(n):
        name = f"2007_00{i:04d}"
        label = np.zeros((40, 56), dtype=np.uint8)
        label[5:25, 10:30] = 1 + i % 2  # an object of class 1 or 2
        label[5:25, 9] = 255  # a void border, as VOC has
        image = np.full((40, 56, 3), 200, dtype=np.uint8)
        image[label == 1] = (220, 30, 30)
        image[label == 2] = (30, 30, 220)
        Image.fromarray(image).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
        png = Image.fromarray(label, mode="P")
        png.putpalette(VOC_PALETTE)
        png.save(base / "SegmentationClass" / f"{name}.png")
        names.append(name)
        labels.append(label)
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names) + "\n")
    return labels


def write_coco_grounding(root: Path) -> dict:
    """refcoco/refs(unc).p + instances.json (refer toolkit format) and COCO train2014 images."""
    images_dir = root / "coco" / "train2014"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, refs = [], [], []
    ann_id = 100
    splits = {1: "val", 2: "testA", 3: "testB"}
    for image_id in splits:
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        pixels = np.full((60, 90, 3), 230, dtype=np.uint8)
        boxes = [(5, 10, 25, 30), (50, 15, 30, 35)]  # x, y, w, h
        for (x, y, w, h), color in zip(boxes, [(220, 20, 20), (20, 20, 220)]):
            pixels[y : y + h, x : x + w] = color
        Image.fromarray(pixels).save(images_dir / file_name, quality=95)
        images.append({"id": image_id, "file_name": file_name, "width": 90, "height": 60})
        for k, box in enumerate(boxes):
            annotations.append({"id": ann_id, "image_id": image_id, "bbox": list(box), "category_id": 1, "area": box[2] * box[3], "iscrowd": 0})
            refs.append({"ref_id": ann_id, "ann_id": ann_id, "image_id": image_id, "split": splits[image_id],
                         "category_id": 1, "file_name": f"{file_name[:-4]}_{ann_id}.jpg", "sent_ids": [ann_id * 10],
                         "sentences": [{"raw": "The RED box" if k == 0 else "the blue box", "sent": "the red box" if k == 0 else "the blue box",
                                        "tokens": ["the", "box"], "sent_id": ann_id * 10}]})
            ann_id += 1
    folder = root / "refcoco"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    (folder / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}))
    return {"refs": refs, "annotations": annotations}
