"""Readers for referring-expression grounding: RefCOCO/+/g (refer pickles or row conversions) and shapes."""

from __future__ import annotations

import contextlib
import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from vlbench.datasets.images import Box, FileImage, ImageRef
from vlbench.datasets.shapes import GeneratedReader, ShapesImage, multi_object_scene
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.spec.schema import option, schema
from vlbench.spec.fields import SourceFields
from vlbench.datasets.safe_pickle import PLAIN, load_pickle

GROUNDING_READERS: Registry = Registry("grounding dataset format", entry_point_group="vlbench.readers", entry_point_prefix="grounding.")


@dataclass
class GroundingSample:
    id: str
    image: ImageRef
    expression: str
    target: Box  # x0, y0, x1, y1
    proposals: list[Box]
    image_id: str = ""


@dataclass
class GroundingData:
    samples: list[GroundingSample]

    def limited(self, limit: int | None) -> "GroundingData":
        return self if limit is None else GroundingData(self.samples[:limit])


def xywh_to_xyxy(box: Any) -> Box:
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)


@dataclass(frozen=True)
class ProposalView:
    """One proposal as the model sees it: the box cropped out, or the image blurred outside the box.

    As ReCLIP: the box is clipped to the image; ``blur`` blurs the whole image with a Gaussian of
    standard deviation ``blur_std`` and pastes the box region back sharp; ``square`` resizes the view
    to a square of that side (bicubic), not keeping the aspect ratio.
    """

    source: Any  # an ImageRef
    box: Box
    mode: str
    blur_std: float = 100.0
    square: int | None = None

    @property
    def key(self) -> str:
        box = ",".join(f"{v:g}" for v in self.box)
        return f"{self.source.key}|{self.mode}|{box}|{self.blur_std:g}|{self.square}"

    def load(self) -> Image.Image:
        image = _decoded(self.source)
        x0, y0, x1, y1 = self.box
        clipped = (max(x0, 0), max(y0, 0), min(x1, image.width), min(y1, image.height))
        if self.mode == "crop":
            view = image.crop(clipped)
        elif self.mode == "blur":
            mask = Image.new("L", image.size, 0)
            ImageDraw.Draw(mask).rectangle([clipped[:2], clipped[2:]], fill=255)
            view = _blurred(self.source, self.blur_std).copy()
            view.paste(image, mask=mask)
        else:
            raise VLBenchError(f"unknown proposal representation '{self.mode}' (use crop or blur)")
        if self.square:
            view = view.resize((self.square, self.square), Image.BICUBIC)
        return view


# Views of one image come one after another, so a small per-process cache saves decoding and
# blurring the same image once per proposal.
@functools.lru_cache(maxsize=4)
def _decoded(source: Any) -> Image.Image:
    return source.load()


@functools.lru_cache(maxsize=4)
def _blurred(source: Any, std: float) -> Image.Image:
    return _decoded(source).filter(ImageFilter.GaussianBlur(std))


def load_coco_instances(path: Path) -> Any:
    """pycocotools' COCO index of an instances file (its progress prints are silenced)."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise VLBenchError(f"COCO instances file not found: {path}")
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return COCO(str(path))
        except (ValueError, KeyError) as exc:
            raise VLBenchError(f"{path} is not a COCO instances file: {exc}") from exc


def expression_text(sentence: Any, field: str) -> str:
    if isinstance(sentence, str):
        return sentence
    if field not in sentence:
        raise VLBenchError(f"a referring expression has no '{field}' field (it has {sorted(sentence)}); set protocol.text_field")
    return str(sentence[field])


def coco_image_id(coco: Any, value: Any) -> Any:
    """The instances file's id for a row's image id (conversions often store ids as strings)."""
    if value in coco.imgs:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) in coco.imgs:
        return int(value)
    raise VLBenchError(f"image id {value!r} is not in the COCO instances file")


def ground_truth_proposals(coco: Any, image_id: Any) -> list[Box]:
    return [xywh_to_xyxy(a["bbox"]) for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))]


@schema
class ReferSource(SourceFields):
    refs: str = option(help="the refer toolkit's refs(unc).p / refs(umd).p, relative to the source's folder")
    instances: str = option("instances.json", help="COCO instances file relative to the source's folder")
    images: str = option(help="COCO train2014 image folder, relative to the data root")
    split: str = option(help="refer split: val, testA, testB, test")


@schema
class ReferRowsSource(SourceFields):
    rows: str = option(help="JSON, JSONL or parquet file, one row per referred object")
    instances: str = option("instances.json", help="COCO instances file relative to the source's folder")
    images: str = option(help="COCO train2014 image folder, relative to the data root")
    split: str | None = option(None, help="keep rows of this split (when rows have a split column)")
    columns: dict[str, str] = option({}, help="column names: image_id, bbox, expressions, split, id -> your columns")
    bbox_format: str = option("xywh", help="box format of the bbox column", choices=("xywh", "xyxy"))


@GROUNDING_READERS.register("refer")
class ReferReader:
    """The refer toolkit's files: ``refs(unc).p`` / ``refs(umd).p`` + ``instances.json`` + COCO train2014.

    The pickle is read with a restricted unpickler (plain containers and strings only). The target box
    is the referred annotation's; proposals are all annotations of the image.
    """

    options = ReferSource

    def exists(self, location: Path, options: Any) -> bool:
        return (location / options.refs).is_file() and (location / options.instances).is_file()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        return [Path(location) / options.refs, Path(location) / options.instances]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> GroundingData:
        root = Path(location)
        refs = load_pickle(root / options.refs, PLAIN)
        if not isinstance(refs, list):
            raise VLBenchError(f"{root / options.refs} does not hold a list of refs")
        coco = load_coco_instances(root / options.instances)
        images = Path(ctx.data_root) / options.images
        field = spec.protocol.get("text_field", "raw")
        samples = []
        for ref in refs:
            if ref.get("split") != options.split:
                continue
            image_id = ref["image_id"]
            image = FileImage(str(images / coco.imgs[image_id]["file_name"]))
            target = xywh_to_xyxy(coco.anns[ref["ann_id"]]["bbox"])
            proposals = ground_truth_proposals(coco, image_id)
            for n, sentence in enumerate(ref["sentences"]):
                samples.append(GroundingSample(f"{ref['ref_id']}:{sentence.get('sent_id', n)}", image, expression_text(sentence, field), target, proposals, str(image_id)))
        return _checked(samples, root / options.refs, images)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = json.loads(text)
    return rows if isinstance(rows, list) else rows.get("rows", rows.get("data", []))


@GROUNDING_READERS.register("refer_rows")
class ReferRowsReader:
    """JSON / JSONL / parquet conversions: one row per referred object with its box and expressions.

    Column names and the box format are set in the source (``bbox_format: xywh`` or ``xyxy``); the
    image's other objects, for proposals, still come from the COCO instances file.
    """

    options = ReferRowsSource

    def exists(self, location: Path, options: Any) -> bool:
        return (location / options.rows).is_file() and (location / options.instances).is_file()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        return [Path(location) / options.rows, Path(location) / options.instances]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> GroundingData:
        root = Path(location)
        rows = _read_rows(root / options.rows)
        coco = load_coco_instances(root / options.instances)
        images = Path(ctx.data_root) / options.images
        columns = {"image_id": "image_id", "bbox": "bbox", "expressions": "sentences", "split": "split", "id": "ref_id", **options.columns}
        to_box = xywh_to_xyxy if options.bbox_format == "xywh" else (lambda b: tuple(float(v) for v in b))
        field = spec.protocol.get("text_field", "raw")
        samples = []
        for index, row in enumerate(rows):
            if columns["split"] in row and options.split and row[columns["split"]] != options.split:
                continue
            image_id = coco_image_id(coco, row[columns["image_id"]])
            image = FileImage(str(images / coco.imgs[image_id]["file_name"]))
            expressions = row[columns["expressions"]]
            expressions = [expressions] if isinstance(expressions, (str, dict)) else expressions
            for n, sentence in enumerate(expressions):
                samples.append(GroundingSample(f"{row.get(columns['id'], index)}:{n}", image, expression_text(sentence, field),
                                               to_box(row[columns["bbox"]]), ground_truth_proposals(coco, image_id), str(image_id)))
        return _checked(samples, root / options.rows, images)


def _checked(samples: list[GroundingSample], annotation: Path, images: Path) -> GroundingData:
    if not samples:
        raise VLBenchError(f"{annotation} has no referring expressions in the requested split")
    missing = next((s.image for s in samples if not Path(s.image.path).is_file()), None)  # type: ignore[attr-defined]
    if missing is not None:
        raise VLBenchError(f"image {missing.path} not found; RefCOCO uses the COCO train2014 images (put them under {images})")  # type: ignore[attr-defined]
    return GroundingData(samples)


@GROUNDING_READERS.register("shapes")
class ShapesGroundingReader(GeneratedReader):
    """Generated scenes of 2-3 shapes; one expression per object: 'the red triangle'."""

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> GroundingData:
        seed, n, size = self.params(options, ctx)
        samples = []
        for index in range(n):
            scene = multi_object_scene(seed, index, size)
            image = ShapesImage("multi", seed, index, size)
            boxes = [tuple(float(v) for v in o.box) for o in scene.objects]
            for k, obj in enumerate(scene.objects):
                samples.append(GroundingSample(f"{index}:{k}", image, f"the {obj.name}", boxes[k], boxes, str(index)))  # type: ignore[arg-type]
        return GroundingData(samples)


def load_detections(path: Path) -> dict[str, list[Box]]:
    """A detections file: COCO results ``[{image_id, bbox: [x, y, w, h], ...}]`` or ``{image_id: [[x, y, w, h], ...]}``."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VLBenchError(f"cannot read detections file {path}: {exc}") from exc
    detections: dict[str, list[Box]] = {}
    if isinstance(raw, dict):
        for image_id, boxes in raw.items():
            detections[str(image_id)] = [xywh_to_xyxy(b[:4]) for b in boxes]
    else:
        for item in raw:
            detections.setdefault(str(item["image_id"]), []).append(xywh_to_xyxy(item.get("bbox", item.get("box"))))
    return detections
