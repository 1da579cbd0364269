"""Readers that turn image-caption datasets into ``RetrievalData`` (several captions per image)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vlbench.datasets import hf, wds
from vlbench.datasets.base import AnnotationFileReader
from vlbench.datasets.images import FileImage, ImageRef
from vlbench.datasets.records import FilterCondition
from vlbench.datasets.video import MISSING_VIDEOS_HELP, MissingVideos, VideoFrames, missing_videos_left_out, video_files
from vlbench.datasets.shapes import (
    GeneratedReader,
    ShapesImage,
    multi_object_scene,
    retrieval_captions,
)
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.spec.schema import option, schema
from vlbench.spec.fields import SourceFields, SplitSource, TestSplitSource
from vlbench.stamps import Input

RETRIEVAL_READERS: Registry = Registry("retrieval dataset format", entry_point_group="vlbench.readers", entry_point_prefix="retrieval.")


@dataclass
class RetrievalData:
    images: list[ImageRef]
    captions: list[list[str]]  # captions[i] belong to images[i]
    #: Items the reader left out, by reason ({"missing_videos": {"records": n, "examples": [ids]}}): the result's
    #: protocol_used.left_out, said after the summary.
    left_out: dict[str, Any] = field(default_factory=dict)

    def limited(self, limit: int | None) -> "RetrievalData":
        return self if limit is None else RetrievalData(self.images[:limit], self.captions[:limit], self.left_out)

    def flat_captions(self) -> tuple[list[str], list[int]]:
        """All captions, and for each the index of its image."""
        texts = [c for caps in self.captions for c in caps]
        owners = [i for i, caps in enumerate(self.captions) for _ in caps]
        return texts, owners


@schema
class KarpathySource(TestSplitSource):
    annotation: str = option(help="Karpathy's dataset_*.json, relative to the source's folder")
    images_dir: str = option("", help="image folder relative to the source's folder")


@schema
class AnnotationJsonSource(SourceFields):
    annotation: str = option(help="the caption file ({image_paths, annotations}), relative to the source's folder; may hold {language}")
    split: str | None = option(None, help="recorded only: the caption file is one split")
    images_dir: str = option("", help="image folder relative to the source's folder")


@schema
class HFRetrievalSource(SplitSource):
    image_key: str = option("image", help="image column")
    caption_key: str = option("caption", help="caption column (a caption or a list of captions)")


@RETRIEVAL_READERS.register("karpathy")
class KarpathyReader(AnnotationFileReader):
    """Karpathy split JSON (``dataset_coco.json`` / ``dataset_flickr30k.json``) + image folder.

    Image path: ``<location>/<images_dir>/<filepath>/<filename>`` (``filepath`` only in COCO's file).
    Captions: each sentence's ``raw`` text, as in the file.
    """

    options = KarpathySource

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        root = Path(location)
        annotation = root / options.annotation
        entries = self.parse(annotation, lambda content: content["images"], "a Karpathy split file (expected {'images': [...]})")
        split = options.split
        image_root = root / options.images_dir
        images: list[ImageRef] = []
        captions: list[list[str]] = []
        for entry in entries:
            if entry.get("split") != split:
                continue
            images.append(FileImage(str(image_root / entry.get("filepath", "") / entry["filename"])))
            captions.append([s["raw"] for s in entry["sentences"]])
        if not images:
            raise VLBenchError(f"{annotation} has no images in split '{split}'")
        missing = next((ref for ref in images if not Path(ref.path).is_file()), None)  # type: ignore[attr-defined]
        if missing is not None:
            raise VLBenchError(f"image {missing.key} listed in {annotation.name} not found; images go under {image_root}")
        return RetrievalData(images, captions)


@RETRIEVAL_READERS.register("wds")
class WdsRetrievalReader(wds.WdsReader):
    """CLIP_benchmark webdataset layout; ``txt`` holds the captions of one image, one per line.

    Lines are split exactly as CLIP_benchmark does (``str.splitlines``).
    """

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        samples = wds.read_samples(Path(location), options.split, need=("txt",))
        return RetrievalData(
            images=[s.image for s in samples],
            captions=[s.text("txt").splitlines() for s in samples],
        )


@RETRIEVAL_READERS.register("annotation_json")
class AnnotationJsonReader(AnnotationFileReader):
    """CLIP_benchmark's multilingual caption files (multilingual MS-COCO, Crossmodal-3600, XTD,
    Flickr30k-200): ``{"image_paths": [...], "annotations": [...]}``, one caption per image.

    An image path is used as written when it exists, else relative to the dataset folder, else
    by its file name under ``images_dir``.
    """

    options = AnnotationJsonSource

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        root = Path(location)
        annotation = root / options.annotation
        pairs = self.parse(annotation, lambda content: list(zip(content["image_paths"], content["annotations"], strict=True)),
                           "a caption file (expected {'image_paths': [...], 'annotations': [...]} of equal length)")
        images_dir = root / options.images_dir
        images: list[ImageRef] = []
        for path, _ in pairs:
            candidates = (Path(path), root / path, images_dir / Path(path).name)
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise VLBenchError(f"image {path} listed in {annotation.name} not found; images go under {images_dir}")
            images.append(FileImage(str(found)))
        return RetrievalData(images, [[caption] for _, caption in pairs])


@schema
class CaptionFilesSource(SourceFields):
    caption_dir: str = option("caption", help="folder of <name>.txt caption files, relative to the source's folder")
    image_dir: str = option("image", help="folder of the images, relative to the source's folder")
    image_suffix: str = option(".jpg", help="an image's file name: the caption file's stem plus this")
    lines: Literal["first", "all"] = option("first", help="first: a caption file's first line is its caption (Long-CLIP's Urban1k.py: "
                                            "readlines()[0]); all: every non-empty line is a caption of the image")


@RETRIEVAL_READERS.register("caption_files")
class CaptionFilesReader:
    """One caption file per image (Long-CLIP's Urban-1k: ``caption/<name>.txt`` beside ``image/<name>.jpg``), in
    sorted file-name order."""

    options = CaptionFilesSource

    def exists(self, location: Path, options: Any) -> bool:
        return (Path(location) / options.caption_dir).is_dir()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        return [Path(location) / options.caption_dir]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        root = Path(location)
        files = sorted(p for p in (root / options.caption_dir).iterdir() if p.suffix == ".txt")
        if not files:
            raise VLBenchError(f"no .txt caption files in {root / options.caption_dir}")
        images: list[ImageRef] = []
        captions: list[list[str]] = []
        for file in files:
            lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
            image = root / options.image_dir / f"{file.stem}{options.image_suffix}"
            if not image.is_file():
                raise VLBenchError(f"image {image} of caption file {file.name} not found; images go under {root / options.image_dir}")
            images.append(FileImage(str(image)))
            captions.append(lines[:1] if options.lines == "first" else [line for line in lines if line.strip()])
        return RetrievalData(images, captions)


@schema
class RetrievalRecordsSource(SourceFields):
    annotation: str = option(help="the records file, relative to the source's folder: .json (a list), .jsonl, .csv or .parquet")
    image: str = option(help="the field with the image's file name (dotted names reach into nested values)")
    caption: str = option(help="the field with the image's caption, or a list of captions ('conversations.1.value': the second "
                          "conversation turn's value)")
    images_dir: str = option("", help="the image folder, relative to the source's folder")
    first: int | None = option(None, help="keep only the first N records (file order, before filter), as official evaluators that "
                               "score the first N do (Long-CLIP's ShareGPT4V-1k: 1,000)", low=1)
    filter: list[FilterCondition] = option([], help="conditions a record must meet, as the records format's filter (e.g. "
                                           "{field: split, equals: test})")
    newlines: Literal["keep", "space"] = option("keep", help="space: each newline in a caption becomes a space (Long-CLIP's "
                                                "sharegpt4v.py: caption.replace('\\n', ' '))")
    caption_separator: str | None = option(None, help="split each caption value at this separator into several captions (Perception "
                                           "Encoder's MSVD file joins a video's sentences with '@')")
    file_suffix: str = option("", help="appended to the image field's value to make the file name (CLIP4Clip's video_id column: '.mp4')")
    video: VideoFrames | None = option(None, help="the files are videos, sampled by this frame protocol ({} for the defaults: 8 uniform "
                                       "frames, mean-pooled and renormalised; vlbench.datasets.video)")


@RETRIEVAL_READERS.register("records")
class RetrievalRecordsReader(AnnotationFileReader):
    """A table of records with an image file name and a caption (or a list of them) each, read with the records
    format's file types, dotted field names and filters; records naming the same image add to its captions."""

    options = RetrievalRecordsSource

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        from vlbench.datasets.record_files import MISSING, iter_records, keep, lookup
        from vlbench.spec.schema import as_dict

        path = Path(location) / options.annotation
        conditions = [{k: v for k, v in as_dict(c).items() if v is not None} for c in options.filter]
        by_image: dict[str, list[str]] = {}
        for position, (key, record) in enumerate(iter_records(path)):
            if options.first is not None and position >= options.first:
                break
            where = f"{path}, record {key}"
            if not all(keep(record, c, where) for c in conditions):
                continue
            image, caption = lookup(record, options.image), lookup(record, options.caption)
            if image is MISSING or caption is MISSING:
                missing = options.image if image is MISSING else options.caption
                raise VLBenchError(f"{where}: no field '{missing}' (the source's {'image' if image is MISSING else 'caption'} option)")
            texts = list(caption) if isinstance(caption, list) else [caption]
            if not all(isinstance(t, str) for t in texts):
                raise VLBenchError(f"{where}: field '{options.caption}' holds {caption!r}, not a caption (text)")
            if options.newlines == "space":
                texts = [t.replace("\n", " ") for t in texts]
            if options.caption_separator:
                texts = [part for t in texts for part in t.split(options.caption_separator)]
            by_image.setdefault(f"{image}{options.file_suffix}", []).extend(texts)
        if not by_image:
            raise VLBenchError(f"{path}: no record passes the filter {conditions}")
        root = Path(location) / options.images_dir
        paths = [root / name for name in by_image]
        refs = video_files(paths, options.video) if options.video is not None else [FileImage(str(path)) for path in paths]
        missing_image = next((ref for ref in refs if not Path(ref.path).is_file()), None)
        if missing_image is not None:
            what = "video" if options.video is not None else "image"
            raise VLBenchError(f"{what} {missing_image.path} listed in {path.name} not found; {what}s go under {root}")
        return RetrievalData(refs, list(by_image.values()))


@schema
class VideoListSource(SourceFields):
    annotation: str = option(help="the caption file, relative to the source's folder")
    video_list: str = option(help="the split's list of video ids, relative to the source's folder")
    videos_dir: str = option("", help="the video folder, relative to the source's folder (searched recursively, as CLIP4Clip's os.walk)")
    video: VideoFrames | None = option(None, help="the frame protocol (8 uniform frames, mean-pooled and renormalised when not given)")
    missing_videos: MissingVideos = option("error", help=MISSING_VIDEOS_HELP)


class VideoListReader(AnnotationFileReader):
    """Base of CLIP4Clip's video-retrieval layouts: a split list of video ids, a caption file, a folder of videos found by
    walking it; ``captions`` says what each listed video's captions are."""

    options = VideoListSource
    match_suffix = False  # True: a listed id is a whole file name (DiDeMo); False: a file's name without its suffix

    def exists(self, location: Path, options: Any) -> bool:
        return (Path(location) / options.annotation).is_file() and (Path(location) / options.video_list).is_file()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Input | Path]:
        """The caption file and the list; with ``missing_videos: skip`` also the video folder's listing, since which
        videos are there decides which are scored."""
        found: list[Input | Path] = [Path(location) / options.annotation, Path(location) / options.video_list]
        folder = Path(location) / options.videos_dir
        if options.missing_videos == "skip" and folder.is_dir():
            found.append(Input(folder))
        return found

    def video_ids(self, path: Path) -> list[str]:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def captions(self, annotation: Path, ids: list[str]) -> dict[str, list[str]]:
        raise NotImplementedError

    def video_file_id(self, video_id: str) -> str:
        """The name a listed video's file goes by (``match_suffix``)."""
        return video_id

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        root = Path(location)
        ids = self.video_ids(root / options.video_list)
        captions = self.captions(root / options.annotation, ids)
        folder = root / options.videos_dir
        found = {(p.name if self.match_suffix else p.stem): p for p in sorted(folder.rglob("*")) if p.is_file()}
        unnamed = [i for i in ids if i not in captions]
        if unnamed:
            raise VLBenchError(f"{root / options.annotation} has no caption for video '{unnamed[0]}' of {options.video_list} ({len(unnamed)} in all)")
        missing = [i for i in ids if self.video_file_id(i) not in found]
        left_out = missing_videos_left_out(missing, len(ids), options.video_list, folder, options.missing_videos)
        ids = [i for i in ids if i not in set(missing)]
        paths = [found[self.video_file_id(i)] for i in ids]
        return RetrievalData(video_files(paths, options.video or VideoFrames()), [captions[i] for i in ids], left_out)


@RETRIEVAL_READERS.register("clip4clip_msvd")
class Clip4ClipMsvdReader(VideoListReader):
    """MSVD as CLIP4Clip reads it (dataloader_msvd_retrieval.py): ``test_list.txt`` ids, ``raw-captions.pkl`` {id: [[word,
    ...], ...]} (read with the restricted unpickler), each caption its words joined by spaces; all of a video's captions."""

    def captions(self, annotation: Path, ids: list[str]) -> dict[str, list[str]]:
        from vlbench.datasets.safe_pickle import load_pickle

        table = load_pickle(annotation)
        if not isinstance(table, dict):
            raise VLBenchError(f"{annotation} is not a {{video id: [[word, ...], ...]}} table")
        return {vid: [" ".join(words) for words in caps] for vid, caps in table.items() if vid in set(ids)}


@RETRIEVAL_READERS.register("clip4clip_didemo")
class Clip4ClipDidemoReader(VideoListReader):
    """DiDeMo paragraph-to-video as CLIP4Clip reads it (dataloader_didemo_retrieval.py): ``test_list.txt`` video file
    names, ``test_data.json`` [{video, description, times}], a video's descriptions joined by spaces in file order into
    one paragraph."""

    match_suffix = True

    def captions(self, annotation: Path, ids: list[str]) -> dict[str, list[str]]:
        entries = self.parse(annotation, lambda data: [(e["video"], e["description"]) for e in data], "a list of {video, description}")
        parts: dict[str, list[str]] = {}
        for video, description in entries:
            parts.setdefault(video, []).append(description)
        return {video: [" ".join(texts)] for video, texts in parts.items()}


@RETRIEVAL_READERS.register("clip4clip_activitynet")
class Clip4ClipActivityNetReader(VideoListReader):
    """ActivityNet Captions paragraph-to-video as CLIP4Clip reads it (dataloader_activitynet_retrieval.py): ``val_ids.json``
    ids ('v_<youtube id>'), ``val_1.json`` {id: {sentences, ...}}, a video's sentences joined by spaces; the video file is
    named by the id without its 'v_'."""

    def video_ids(self, path: Path) -> list[str]:
        return self.parse(path, lambda data: [str(i) for i in data], "a list of video ids")

    def captions(self, annotation: Path, ids: list[str]) -> dict[str, list[str]]:
        return self.parse(annotation, lambda data: {vid: [" ".join(entry["sentences"])] for vid, entry in data.items()},
                          "a {video id: {sentences}} table")

    def video_file_id(self, video_id: str) -> str:
        return video_id[2:]


@RETRIEVAL_READERS.register("hf")
class HFRetrievalReader:
    """A Hugging Face dataset with an image column and a column holding a list of captions."""

    options = HFRetrievalSource

    def exists(self, location: Path, options: Any) -> bool:
        return hf.exists(location)

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        split = options.split or spec.dataset.get("split")
        dataset = hf.open_dataset(location, split)
        image_key, caption_key = options.image_key, options.caption_key
        hf.require_columns(dataset, location, image_key, caption_key)
        captions = [[c] if isinstance(c, str) else list(c) for c in dataset[caption_key]]
        return RetrievalData(hf.image_refs(dataset, image_key, location, split), captions)


@RETRIEVAL_READERS.register("shapes")
class ShapesRetrievalReader(GeneratedReader):
    """Generated scenes of 2-3 shapes, each with a list caption and a spatial caption."""

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> RetrievalData:
        seed, n, size = self.params(options, ctx)
        images = [ShapesImage("multi", seed, i, size) for i in range(n)]
        return RetrievalData(images, [retrieval_captions(multi_object_scene(seed, i, size)) for i in range(n)])
