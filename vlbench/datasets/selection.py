"""Readers for selection benchmarks (ARO, SugarCrepe, Winoground, shapes): instances of images x captions."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from vlbench.datasets import hf
from vlbench.datasets.base import AnnotationFileReader
from vlbench.datasets.aro_order import TAGGERS, OrderPerturber
from vlbench.datasets.images import FileImage, ImageRef
from vlbench.datasets.shapes import (
    GeneratedReader,
    ShapesSource,
    ShapesImage,
    pair_scene,
    relation_caption,
    with_article,
)
from vlbench.errors import VLBenchError
from vlbench.hub_access import endpoint
from vlbench.registry import Registry
from vlbench.spec.schema import option, schema
from vlbench.spec.fields import SourceFields, TestSplitSource

SELECTION_READERS: Registry = Registry("selection dataset format", entry_point_group="vlbench.readers", entry_point_prefix="selection.")


@dataclass
class SelectionInstance:
    id: str
    images: list[ImageRef]
    captions: list[str]
    answer: int | None = None  # index of the correct caption, for single-image rules
    group: str | None = None  # relation, attribute pair or tag, for macro averages and breakdowns
    # records format only: which captions are positive, the field each caption came from, group values
    positives: list[int] | None = None
    caption_fields: list[str] | None = None
    groups: dict[str, str] | None = None
    positive_images: list[int] | None = None  # with negative images: which images the positives describe


@dataclass
class SelectionData:
    instances: list[SelectionInstance]
    artifacts: dict[str, Any] = field(default_factory=dict)  # files that reproduce the task (saved with results)
    seed: int | None = None  # the seed that generated part of the items (ARO order options), recorded as env.seed
    #: Items of the data the run leaves out, by reason (the records format's missing_images: skip): {reason: {records, examples}}
    left_out: dict[str, Any] = field(default_factory=dict)

    def limited(self, limit: int | None) -> "SelectionData":
        return self if limit is None else SelectionData(self.instances[:limit], self.artifacts, self.seed, self.left_out)


def read_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise VLBenchError(f"cannot read {path}: {exc}") from exc


def image_root(options: Any, spec: Any, ctx: Any, default_base: Path) -> Path:
    """Where images live: --set dataset.images=..., else the source's 'images' under the data root."""
    override = spec.dataset.get("images")
    if override:
        return Path(override)
    return Path(ctx.data_root) / options.images if options.images is not None else default_base


def check_images_exist(refs: Sequence[FileImage], where: Path, hint: str) -> None:
    missing = [ref for ref in dict.fromkeys(refs) if not Path(ref.path).is_file()]
    if missing:
        raise VLBenchError(f"{len(missing)} image(s) not found, e.g. {missing[0].path}; {hint} (images go under {where})")


@schema
class AnnotationSource(SourceFields):
    annotation: str = option(help="annotation file relative to the source's folder")
    images: str | None = option(None, help="image folder relative to the data root (default: the source's folder)")


@schema
class AroVgSource(AnnotationSource):
    group_by: str = option(help="group items by relation name or by attribute pair", choices=("relation", "attributes"))


@schema
class AroOrderSource(AnnotationSource):
    images: str = option(help="image folder relative to the data root")


@SELECTION_READERS.register("sugarcrepe")
class SugarCrepeReader(AnnotationFileReader):
    """Official ``data/<subset>.json``: {key: {filename, caption, negative_caption}} + COCO val2017.

    Values are read in file order (keys are not contiguous); captions exactly as in the file.
    """

    options = AnnotationSource

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SelectionData:
        items = read_json(Path(location) / options.annotation)
        root = image_root(options, spec, ctx, Path(location))
        instances = [
            SelectionInstance(str(key), [FileImage(str(root / item["filename"]))], [item["caption"], item["negative_caption"]], answer=0)
            for key, item in items.items()
        ]
        check_images_exist([i.images[0] for i in instances], root, "SugarCrepe uses the COCO 2017 validation images")
        return SelectionData(instances)


@SELECTION_READERS.register("aro_vg")
class AroVisualGenomeReader(AnnotationFileReader):
    """ARO VG-Relation / VG-Attribution JSON + images; each image is cropped to the item's box.

    Options are [false caption, true caption], so the answer is 1 (a tie is wrong under argmax).
    """

    options = AroVgSource

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SelectionData:
        items = read_json(Path(location) / options.annotation)
        root = image_root(options, spec, ctx, Path(location) / "images")
        group_by = options.group_by
        instances = []
        for index, item in enumerate(items):
            x, y, w, h = (item[k] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
            group = item["relation_name"] if group_by == "relation" else f"{item['attributes'][0]}_{item['attributes'][1]}"
            image = FileImage(str(root / item["image_path"]), box=(x, y, x + w, y + h))
            instances.append(SelectionInstance(str(index), [image], [item["false_caption"], item["true_caption"]], answer=1, group=group))
        check_images_exist([i.images[0] for i in instances], root, "unzip ARO's vgr_vga_images.zip there")
        return SelectionData(instances)


@SELECTION_READERS.register("aro_order")
class AroOrderReader(AnnotationFileReader):
    """COCO-Order / Flickr30k-Order: BLIP's Karpathy test JSON [{image, caption: [...]}] + images.

    Every caption is an instance with 5 options (original first, answer 0). Options are generated
    with the task's tagger and seed, or read from ``files.order_options`` (a file saved by an
    earlier run), and are saved with the results either way.
    """

    options = AroOrderSource

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SelectionData:
        annotation = read_json(Path(location) / options.annotation)
        root = image_root(options, spec, ctx, Path(location))
        pairs = [(entry["image"], caption) for entry in annotation for caption in entry["caption"]]
        if ctx.limit is not None:
            pairs = pairs[: ctx.limit]  # options of the first N captions are the same as in a full run
        protocol = spec.protocol
        options_file = spec.file("order_options")
        if options_file:
            saved = read_json(options_file)
            items = saved.get("items", [])
            if [(i["image"], i["caption"]) for i in items[: len(pairs)]] != pairs:
                raise VLBenchError(f"options file {options_file} does not match {options.annotation} (other captions or order)")
            options = [i["options"] for i in items[: len(pairs)]]
            provenance = {k: v for k, v in saved.items() if k != "items"}
        else:
            seed = int(protocol["seed"]) if protocol.get("seed") is not None else 1
            tagger = TAGGERS.get(protocol.get("tagger", "spacy"))()
            perturber = OrderPerturber(tagger, seed)
            options = [perturber.options(caption) for _, caption in pairs]
            provenance = {"seed": seed, "tagger": protocol.get("tagger", "spacy"), "tagger_versions": tagger.describe()}
        instances = [
            SelectionInstance(str(i), [FileImage(str(root / image))], opts, answer=0)
            for i, ((image, _), opts) in enumerate(zip(pairs, options))
        ]
        check_images_exist([i.images[0] for i in instances], root, "Order tasks use the Karpathy test images")
        items_out = [{"image": image, "caption": caption, "options": opts} for (image, caption), opts in zip(pairs, options)]
        return SelectionData(instances, artifacts={"options": {**provenance, "items": items_out}}, seed=provenance.get("seed"))


@SELECTION_READERS.register("winoground")
class WinogroundReader:
    """A local copy (``examples.jsonl`` + ``images/<name>.png``), a parquet / saved HF copy, or the
    gated hub dataset with the user's token (``--hf-hub``). RGBA images are converted to RGB."""

    options = TestSplitSource
    HUB_ID = "facebook/winoground"
    ACCESS_HINT = (
        "accept the terms at {endpoint}/datasets/facebook/winoground, log in "
        "(huggingface-cli login, or set HF_TOKEN) and pass --hf-hub; or put examples.jsonl and images/ "
        "from that page under <data root>/winoground"
    )

    def _jsonl(self, location: Path) -> Path | None:
        for candidate in (location / "examples.jsonl", location / "data" / "examples.jsonl"):
            if candidate.is_file():
                return candidate
        return None

    def exists(self, location: Path, options: Any) -> bool:
        return self._jsonl(location) is not None or hf.exists(location)

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        jsonl = self._jsonl(Path(location))
        return [jsonl] if jsonl is not None else [Path(location)]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SelectionData:
        jsonl = None if location.startswith(hf.HUB_PREFIX) else self._jsonl(Path(location))
        if jsonl is not None:
            rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
            images_dir = jsonl.parent / "images"
            instances = [
                SelectionInstance(
                    str(row["id"]),
                    [FileImage(str(images_dir / f"{row['image_0']}.png")), FileImage(str(images_dir / f"{row['image_1']}.png"))],
                    [row["caption_0"], row["caption_1"]],
                    group=row.get("collapsed_tag"),
                )
                for row in rows
            ]
            check_images_exist([img for i in instances for img in i.images], images_dir, "unzip images.zip from the Winoground dataset page")
            return SelectionData(instances)
        split = options.split
        try:
            dataset = hf.open_dataset(location, split)
        except VLBenchError as exc:
            if location.startswith(hf.HUB_PREFIX):
                raise VLBenchError(f"cannot load {self.HUB_ID} from {endpoint()} ({exc}); {self.ACCESS_HINT.format(endpoint=endpoint())}") from exc
            raise
        hf.require_columns(dataset, location, "image_0", "image_1", "caption_0", "caption_1")
        image_0 = hf.image_refs(dataset, "image_0", location, split)
        image_1 = hf.image_refs(dataset, "image_1", location, split)
        tags = dataset["collapsed_tag"] if "collapsed_tag" in dataset.column_names else [None] * len(dataset)
        ids = dataset["id"] if "id" in dataset.column_names else list(range(len(dataset)))
        instances = [
            SelectionInstance(str(ids[i]), [image_0[i], image_1[i]], [dataset[i]["caption_0"], dataset[i]["caption_1"]], group=tags[i])
            for i in range(len(dataset))
        ]
        return SelectionData(instances)


def attribute_swap_instance(seed: int, index: int, size: int) -> SelectionInstance:
    """Two objects; the negative swaps their colours: 'a red circle and a blue star' vs 'a blue circle and a red star'."""
    left, right = pair_scene(seed, index, size).left_to_right()
    positive = f"{with_article(left.name)} and {with_article(right.name)}"
    negative = f"{with_article(f'{right.color} {left.shape}')} and {with_article(f'{left.color} {right.shape}')}"
    return SelectionInstance(str(index), [ShapesImage("pair", seed, index, size)], [positive, negative], answer=0)


def relation_swap_instance(seed: int, index: int, size: int) -> SelectionInstance:
    """Two objects; the negative swaps the relation: 'a red circle to the left of ...' vs '... to the right of ...'."""
    left, right = pair_scene(seed, index, size).left_to_right()
    positive = relation_caption(left, right, "left")
    negative = f"{with_article(left.name)} to the right of {with_article(right.name)}"
    return SelectionInstance(str(index), [ShapesImage("pair", seed, index, size)], [positive, negative], answer=0)


SHAPES_VARIANTS = {"attribute_swap": attribute_swap_instance, "relation_swap": relation_swap_instance}


@schema
class ShapesSelectionSource(ShapesSource):
    variant: str = option(help="which negative is generated", choices=lambda: sorted(SHAPES_VARIANTS))


@SELECTION_READERS.register("shapes")
class ShapesSelectionReader(GeneratedReader):
    """Generated two-object scenes with a positive and a compositional negative caption."""

    options = ShapesSelectionSource

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SelectionData:
        variant = SHAPES_VARIANTS.get(options.variant)
        if variant is None:
            raise VLBenchError(f"shapes selection variant must be one of {sorted(SHAPES_VARIANTS)}, got '{options.variant}'")
        seed, n, size = self.params(options, ctx)
        return SelectionData([variant(seed, i, size) for i in range(n)])
