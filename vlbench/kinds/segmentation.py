"""Open-vocabulary semantic segmentation from dense patch features (training-free, CLIP-style).

Per image, as SCLIP / NACLIP / ClearCLIP do: resize so the short side is S (long side at most
``max_long_side``), run windows of ``window`` pixels every ``stride`` (or the whole image), average
the windows' raw cosine similarities between patch features and query embeddings (each query is the
80 OpenAI templates averaged), upsample to the label size, optionally refine with PAMR, then
softmax(logit_scale x cosine) over all queries, take each class's best synonym, optionally drop
small classes (``area_threshold``, SCLIP on VOC) and set pixels whose best probability is below
``prob_threshold`` to class 0 (background). The metric sums pixel counts over the dataset.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vlbench import metrics
from vlbench.datasets.segmentation import SEGMENTATION_READERS, SegmentationData
from vlbench.encoding.encoder import loader_errors
from vlbench.bootstrap import Resampler, nanmean_rows
from vlbench.errors import CapabilityError, TaskSpecError
from vlbench.kinds.base import Decisions, RunContext, TaskKind, tie_report
from vlbench.kinds.classification import zero_shot_classifier
from vlbench.registries import TASK_KINDS
from vlbench.models.dense import DENSE_VARIANTS
from vlbench.kinds.pamr import pamr
from vlbench.spec.schema import SchemaError, as_dict, option, schema
from vlbench.spec.taskfile import TaskSpec
from vlbench.spec.fields import ProtocolFields


@schema
class SegmentationProtocol(ProtocolFields):
    dense_variant: str = option("sclip", help="last-block variant giving dense features (--dense-variant sets it)", choices=DENSE_VARIANTS.names)
    short_side: float = option(336, help="resize so the short side is this many pixels", gt=0)
    max_long_side: float = option(2048, help="... unless the long side would exceed this", gt=0)
    window: int | None = option(224, help="sliding-window size in pixels; 0 or null: the whole image at once", low=0)
    stride: int | None = option(112, help="sliding-window stride in pixels (0 < stride <= window)", low=1)
    logit_scale: float = option(40.0, help="softmax(logit_scale x cosine) over all queries", gt=0)
    prob_threshold: float = option(0.0, help="pixels whose best probability is below this become class 0", low=0, high=1)
    area_threshold: float | None = option(None, help="drop classes covering at most this share of the predicted foreground (SCLIP, VOC)", low=0, high=1)
    pamr_steps: int = option(0, help="PAMR refinement iterations (0: none)", low=0)
    pamr_dilations: list[int] = option([8, 16], help="PAMR dilations", low=1)
    synonym_separator: str = option(", ", help="splits a class-name line into synonyms (separate queries)")
    pixel_mean: list[float] | None = option(None, help="image normalisation mean, RGB on the 0-255 scale as mmseg configs write it (default: the model's)")
    pixel_std: list[float] | None = option(None, help="image normalisation std, RGB on the 0-255 scale (default: the model's)", gt=0)

    def check(self) -> None:
        if self.window and not (self.stride and self.stride <= self.window):
            raise SchemaError("stride", f"window and stride must be whole numbers with 0 < stride <= window, got {self.window!r} / {self.stride!r}")
        if not self.pamr_dilations:
            raise SchemaError("pamr_dilations", "expected a non-empty list of positive whole numbers")
        for name in ("pixel_mean", "pixel_std"):
            if getattr(self, name) is not None and len(getattr(self, name)) != 3:
                raise SchemaError(name, "expected three values (R, G, B)")
        if (self.pixel_mean is None) != (self.pixel_std is None):
            raise SchemaError("pixel_std", "set pixel_mean and pixel_std together")


@schema
class SegmentationFiles:
    classnames: str = option(help="class names, one line per class in label order; synonyms split by synonym_separator")
    templates: str | None = option(None, help="prompt templates with {c}, one per line (default: the bare name)")
    background_words: str | None = option(None, help="words that replace class 0's queries, one per line")




def class_queries(lines: list[str], separator: str) -> tuple[list[str], list[int]]:
    """Each line is a class; its synonyms (split on ``separator``) are separate queries."""
    queries, owners = [], []
    for index, line in enumerate(lines):
        for name in line.split(separator):
            if name.strip():
                queries.append(name)
                owners.append(index)
    return queries, owners


def resize_short_side(image: torch.Tensor, short_side: int, max_long_side: int) -> torch.Tensor:
    """uint8-valued [3, H, W] -> resized, rounded to uint8 values as an image library would."""
    height, width = image.shape[-2:]
    scale = min(max_long_side / max(height, width), short_side / min(height, width))
    size = (int(height * scale + 0.5), int(width * scale + 0.5))
    resized = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return resized.round().clamp(0, 255)


def windows(height: int, width: int, crop: int | None, stride: int | None) -> list[tuple[int, int, int, int]]:
    """(y1, x1, y2, x2) windows as mmseg's slide inference places them; the last ones end at the border."""
    if not crop:
        return [(0, 0, height, width)]
    stride = stride or crop
    rows = max(height - crop + stride - 1, 0) // stride + 1
    cols = max(width - crop + stride - 1, 0) // stride + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, height), min(c * stride + crop, width)
            boxes.append((max(y2 - crop, 0), max(x2 - crop, 0), y2, x2))
    return boxes


def query_logits(
    model: Any, image: torch.Tensor, queries: torch.Tensor, protocol: dict[str, Any], variant: str, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw cosine similarities [Q, h, w] at the resized image's size (windows averaged), and the normalised image."""
    if protocol.get("pixel_mean") is not None:  # a paper's own normalisation, e.g. MaskCLIP's ImageNet values
        mean, std = [m / 255 for m in protocol["pixel_mean"]], [s / 255 for s in protocol["pixel_std"]]
    else:
        mean, std = model.pixel_mean_std
    normalised = (image / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    height, width = image.shape[-2:]
    total = torch.zeros(len(queries), height, width)
    count = torch.zeros(1, height, width)
    boxes = windows(height, width, protocol["window"], protocol["stride"])
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        sizes = {(y2 - y1, x2 - x1) for y1, x1, y2, x2 in chunk}
        for size in sizes:  # windows of one size go through the model together
            group = [b for b in chunk if (b[2] - b[0], b[3] - b[1]) == size]
            crops = torch.stack([normalised[:, y1:y2, x1:x2] for y1, x1, y2, x2 in group])
            features = model.dense_features(crops, variant).cpu()  # [b, gh, gw, D]
            cosine = metrics.similarities(features, queries, unique_queries=False).permute(0, 3, 1, 2)  # [b, Q, gh, gw]
            cosine = F.interpolate(cosine, size=size, mode="bilinear", align_corners=False)
            for (y1, x1, y2, x2), crop_logits in zip(group, cosine):
                total[:, y1:y2, x1:x2] += crop_logits
                count[:, y1:y2, x1:x2] += 1
    return total / count, normalised


def predict_classes(logits: torch.Tensor, owners: list[int], num_classes: int, protocol: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """[Q, H, W] cosines -> ([H, W] class indices, pixels whose best probability two classes share) (softmax over
    queries, max over synonyms, thresholds; a shared best goes to the first class, as argmax)."""
    probabilities = (logits * float(protocol["logit_scale"])).softmax(dim=0)
    if len(owners) != num_classes:
        index = torch.tensor(owners)
        probabilities = torch.stack([probabilities[index == c].max(dim=0).values for c in range(num_classes)])
    if protocol.get("area_threshold") is not None:
        predicted = F.one_hot(probabilities.argmax(0), num_classes)  # [H, W, C]
        area = predicted[:, :, 1:].sum(dim=(0, 1))
        keep = (area > float(protocol["area_threshold"]) * area.sum()).to(probabilities.dtype)
        probabilities[1:] *= keep.view(-1, 1, 1)
    best, prediction = probabilities.max(dim=0)
    tied = int(((probabilities == best.unsqueeze(0)).sum(dim=0) > 1).sum())
    prediction[best < float(protocol["prob_threshold"])] = 0
    return prediction, tied


def resize_identity(protocol: dict[str, Any]) -> dict[str, str]:
    """The pixel-cache geometry of ``resize_short_side``: its sizes and the libraries that compute it."""
    import PIL

    steps = f"segmentation resize_short_side v1: short side {protocol['short_side']}, long side <= {protocol['max_long_side']}, torch bilinear, rounded"
    return {"steps": steps, "torch": torch.__version__, "pillow": PIL.__version__}


def resized_image(sample: Any, protocol: dict[str, Any]) -> torch.Tensor:
    """A sample's image decoded and resized for the windows: uint8 [3, H, W]."""
    image = torch.from_numpy(np.asarray(sample.image.load(), dtype=np.uint8).copy()).permute(2, 0, 1)
    return resize_short_side(image, int(protocol["short_side"]), int(protocol["max_long_side"])).to(torch.uint8)


class _Images(Dataset):
    """(resized image, label) per position of ``items``; (None, label) for the positions in ``stored`` (their image
    comes from the pixel cache)."""

    def __init__(self, data: SegmentationData, items: Sequence[int], protocol: dict[str, Any], stored: set[int]):
        self.data, self.items, self.protocol, self.stored = data, items, protocol, stored

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> tuple[torch.Tensor | None, np.ndarray]:
        sample = self.data.samples[self.items[position]]
        image = None if position in self.stored else resized_image(sample, self.protocol)
        return image, sample.label.load()


class SegmentationResampler(Resampler):
    """Images; a replicate's confusion matrix is the count-weighted sum of per-image matrices."""

    unit = "images"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        super().__init__(records, spec)
        self.classes = len(spec.read_lines("classnames") or [])
        self.keys = [r.get("key", r.get("i")) for r in records]
        rows = [(image, gt * self.classes + pred, count) for image, r in enumerate(records) for gt, pred, count in r["confusion"]]
        triplets = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        order = np.argsort(triplets[:, 1], kind="stable")
        self.image, cells, self.count = triplets[order, 0], triplets[order, 1], triplets[order, 2].astype(np.float64)
        self.cells, self.starts = np.unique(cells, return_index=True)
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def sizes(self) -> list[int]:
        return [len(self.keys)]

    @property
    def cells_per_replicate(self) -> int:
        return max(len(self.keys), len(self.image), self.classes * self.classes)

    def ids(self) -> list[Any]:
        return list(self.keys)

    def confusion(self, w: np.ndarray) -> np.ndarray:
        """[r, C, C] summed confusion matrices."""
        out = np.zeros((w.shape[0], self.classes * self.classes))
        if len(self.cells):
            out[:, self.cells] = np.add.reduceat(w[:, self.image] * self.count, self.starts, axis=1)
        return out.reshape(w.shape[0], self.classes, self.classes)

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        if name not in ("mIoU", "mAcc", "aAcc"):
            return None
        if self._last is None or self._last[0] is not weights[0]:  # the metrics of one batch share its matrices
            self._last = (weights[0], self.confusion(weights[0]))
        confusion = self._last[1]
        tp = np.diagonal(confusion, axis1=1, axis2=2)
        gt, pred = confusion.sum(axis=2), confusion.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if name == "mIoU":
                union = gt + pred - tp
                return nanmean_rows(np.where(union > 0, tp / union, np.nan))
            if name == "mAcc":
                return nanmean_rows(np.where(gt > 0, tp / gt, np.nan))
            total = confusion.sum(axis=(1, 2))
            return np.where(total > 0, tp.sum(axis=1) / total, np.nan)


@TASK_KINDS.register("segmentation")
class SegmentationKind(TaskKind):
    """Open-vocabulary semantic segmentation from dense patch features; mIoU over the dataset."""

    name = "segmentation"
    resampler = SegmentationResampler
    readers = SEGMENTATION_READERS
    metric_patterns = ("mIoU", "mAcc", "aAcc")
    shards_items = True
    protocol_schema = SegmentationProtocol
    files_schema = SegmentationFiles
    record_fields = {
        "i": (int, "the image's position"),
        "key": (str | None, "the image's key"),
        "confusion": (list[list[int]], "its confusion matrix as [ground truth, prediction, pixels] rows"),
        "tied_pixels": (int | None, "pixels whose best probability two classes shared"),
    }

    @classmethod
    def protocol(cls, spec: TaskSpec) -> dict[str, Any]:
        return as_dict(cls.options(spec))

    @classmethod
    def check(cls, spec: TaskSpec) -> None:
        for template in spec.read_lines("templates") or []:
            if "{c}" not in template:
                raise TaskSpecError(spec.source_file, "files.templates", f"template without {{c}}: '{template}'")

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        return data.limited(ctx.limit), located

    def class_lines(self, spec: TaskSpec) -> list[str]:
        lines = spec.read_lines("classnames") or []
        background = spec.read_lines("background_words")
        if background:  # a user list of background words replaces class 0's queries
            lines = [", ".join(w.strip() for w in background)] + lines[1:]
        return lines

    def unsupported_reason(self, model: Any) -> str | None:
        try:
            model.patch_size  # dense features need ViT patch tokens (vit_parts) and the pixel normalisation
            model.pixel_mean_std
        except CapabilityError as exc:
            return str(exc)
        return None

    def decide(self, model: Any, data: SegmentationData, spec: TaskSpec) -> Decisions:
        protocol = self.protocol(spec)
        lines = self.class_lines(spec)
        queries, _ = class_queries(lines, protocol["synonym_separator"])
        decided = {"dense_variant": protocol["dense_variant"], "queries": len(queries), "classes": len(lines), "protocol": protocol}
        if "protocol.dense_variant" in spec.shorthands:
            decided["dense_variant_from"] = "--dense-variant (the rest of the task's protocol unchanged)"
        return Decisions(protocol=decided)

    def predict(self, model: Any, data: SegmentationData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        model.patch_size  # raises "this model cannot do segmentation" before any work
        protocol = self.protocol(spec)
        lines = self.class_lines(spec)
        queries, owners = class_queries(lines, protocol["synonym_separator"])
        templates = spec.read_lines("templates") or ["{c}"]
        query_embeddings = zero_shot_classifier(ctx.encoder, queries, templates)
        rank, world_size = ctx.item_shard
        items = list(range(rank, len(data.samples), world_size))
        store = ctx.encoder.pixel_cache  # the resize is deterministic: its output is cached like a model's crops
        crops = store.lookup([data.samples[i].image for i in items], resize_identity(protocol), ctx.encoder.stats.images_decoded) if store else None
        images = _Images(data, items, protocol, crops.stored if crops else set())
        loader = DataLoader(images, batch_size=None, num_workers=min(ctx.encoder.num_workers, 4), prefetch_factor=2 if ctx.encoder.num_workers else None)
        if crops is None:
            ctx.encoder.stats.images_decoded["pil"] = ctx.encoder.stats.images_decoded.get("pil", 0) + len(items)
        handle = ctx.encoder.progress.start(f"segmenting {spec.name}", len(items))
        try:
            with loader_errors():
                for position, (i, (image, label)) in enumerate(zip(items, loader)):
                    if crops is not None:
                        image = crops.read(position, lambda: resized_image(data.samples[i], protocol)) if image is None else crops.put(position, image)
                    record = self.segment(model, image, np.asarray(label), query_embeddings, owners, len(lines), protocol, ctx)
                    ctx.encoder.progress.advance(handle, 1)
                    yield {"i": i, "key": data.samples[i].image.key, **record}
        finally:
            ctx.encoder.progress.finish(handle)
            if crops is not None:
                crops.finish()

    def segment(self, model: Any, image: torch.Tensor, label: np.ndarray, queries: torch.Tensor, owners: list[int],
                num_classes: int, protocol: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """One image (uint8, resized by ``resized_image``): logits, optional PAMR, classes; its confusion matrix as
        sparse [gt, pred, pixels] rows."""
        logits, normalised = query_logits(model, image.float(), queries, protocol, protocol["dense_variant"], ctx.encoder.batch_size)
        height, width = label.shape
        logits = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)
        if int(protocol["pamr_steps"]) > 0:
            guide = F.interpolate(normalised[None], size=(height, width), mode="bilinear", align_corners=False)
            logits = pamr(guide, logits, int(protocol["pamr_steps"]), protocol["pamr_dilations"])
        prediction, tied = predict_classes(logits[0], owners, num_classes, protocol)
        confusion = metrics.confusion_matrix(prediction.numpy(), label, num_classes)
        rows, cols = np.nonzero(confusion)
        return {"confusion": [[int(r), int(c), int(confusion[r, c])] for r, c in zip(rows, cols)], **({"tied_pixels": tied} if tied else {})}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        records = list(records)
        lines = spec.read_lines("classnames") or []
        num_classes = len(lines)
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        for record in records:
            for row, col, count in record["confusion"]:
                confusion[row, col] += count
        scores = metrics.segmentation_scores(confusion)
        results = self.point_estimates(list(records), spec, ("mIoU", "mAcc", "aAcc"))  # one definition with the CIs
        separator = self.options(spec).synonym_separator
        for line, iou in zip(lines, scores["iou"]):  # type: ignore[arg-type]
            results[f"IoU/{line.split(separator)[0].strip()}"] = float(iou)
        return results

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
        pixels = sum(r.get("tied_pixels", 0) for r in records)
        return {**tie_report(sum(1 for r in records if r.get("tied_pixels")), "a pixel whose best probability two classes share "
                             "gets the first of them (argmax, as the segmentation references)", {}), "pixels": pixels}
