"""The ``records`` format: any selection benchmark shipped as a table of records, mapped in YAML.

A record is one item: an image (or several, or none for text-only tasks), positive captions,
negative captions, optional group fields and an id. The task file maps the file's own field names
onto these roles (``fields:``), keeps the records it wants (``filter:``) and says where images
are (``images:``, ``image_pattern:``). Files: ``.json`` (a list of records, or a mapping
id -> record), ``.jsonl``, ``.csv`` and ``.parquet``; ``.json`` / ``.jsonl`` / ``.csv`` may be gzipped
(read by ``record_files``).

Every option is declared once below, in the schema dataclasses ``RecordsSource``, ``RecordFields``
and ``FilterCondition`` (``vlbench.spec.schema``), which the task-file check and the docs use.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any, Iterator, Literal

from vlbench.datasets.base import AnnotationFileReader
from vlbench.datasets.images import BytesImage, FileImage, ImageRef
from vlbench.datasets.record_files import MISSING, field_names, iter_records, keep, lookup
from vlbench.datasets.selection import SELECTION_READERS, SelectionData, SelectionInstance, check_images_exist
from vlbench.errors import VLBenchError
from vlbench.registry import did_you_mean
from vlbench.spec.schema import SchemaError, as_dict, option, schema
from vlbench.spec.fields import SplitSource
from vlbench.stamps import Input

#: A field name, or several; numbers are positional names (a record that is a list: ``0``, ``1``), so YAML need not quote them.
FieldNames = str | int | list[str | int] | None


@schema
class RecordFields:
    """Keys of ``fields:`` in a records source. Dotted names (``mturk.caption``) reach into nested mappings."""

    image: FieldNames = option(None, help="field(s) with the image file name or id (records that are lists name their items '0', '1', '1.POS', ...); several fields give several images per record (scored as an images x captions matrix); none: a text-only task")
    positives: FieldNames = option(None, help="field(s) with captions that describe the image; a field may hold a list of captions")
    negatives: FieldNames = option(None, help="field(s) with captions that do not (foils, hard negatives); a field may hold a list")
    negative_images: FieldNames = option(None, help="field(s) with images the positive captions do not describe; scored with an outcome's candidates: images (a caption ranks images)")
    captions: FieldNames = option(None, help="instead of positives/negatives, with several images: caption i belongs to image i (Winoground-style matrices)")
    groups: str | int | list[str | int] = option([], help="field(s) whose values split the results into per-group metrics (protocol.breakdown / macro)")
    id: str | int | None = option(None, help="field with the item id (default: the mapping key of a JSON mapping, else the record's position)")
    box: list[str | int] | None = option(None, help="four fields [left, top, width, height] in pixels: every image of the record is cropped to that box "
                                         "(CREPE's x, y, width, height, as torchvision's TF.crop(image, y, x, height, width))")

    def check(self) -> None:
        if self.box is not None and len(self.box) != 4:
            raise SchemaError("box", f"names four fields (left, top, width, height), not {len(self.box)}")
        images, captions = names(self.image), names(self.captions)
        if captions and (self.positives or self.negatives or self.negative_images):
            raise SchemaError("", "give either captions (caption i belongs to image i) or positives/negatives, not both")
        if captions and len(captions) != len(images):
            raise SchemaError("captions", f"needs one caption field per image field ({len(images)} image fields)")
        if not captions and not (names(self.positives) and (names(self.negatives) or names(self.negative_images))):
            raise SchemaError("", "needs positives and negatives (or negative_images; or, with several images, captions)")
        if names(self.negative_images) and not images:
            raise SchemaError("image", "negative_images need the positive image field(s) too")


@schema
class FilterCondition:
    """One ``filter:`` condition; a record is kept when every condition holds."""

    field: str = option(help="the field tested (dotted names reach into nested mappings)")
    at_least: float | None = option(None, help="keep records whose value is >= this number")
    at_most: float | None = option(None, help="keep records whose value is <= this number")
    equals: str | int | float | bool | None = option(None, help="keep records whose value equals this")
    one_of: list[Any] | None = option(None, help="keep records whose value is one of these")
    truthy: bool | None = option(None, help="true: keep records whose value is truthy (non-empty, non-zero); false: falsy ones")

    def check(self) -> None:
        if all(getattr(self, test) is None for test in FILTER_TESTS):
            raise SchemaError("", f"needs a test: one of {', '.join(FILTER_TESTS)}")


FILTER_TESTS = ("at_least", "at_most", "equals", "one_of", "truthy")


@schema
class ImageRewrite:
    """How a record's image value becomes the file name ``image_pattern`` formats (``image_rewrite:``)."""

    pattern: str | None = option(None, help="a regular expression; each match in the value is replaced by replacement (re.sub), e.g. "
                                 "'^https?://[^/]+/' with '' strips a URL's host")
    replacement: str = option("", help="what replaces each match of pattern (\\1 for its first group)")
    basename: bool = option(False, help="keep only the last part of the value's path (after pattern): 'http://host/val2017/1.jpg?x=1' -> "
                            "'1.jpg', 'images/a/b.png' -> 'b.png'")

    def check(self) -> None:
        if self.pattern is None and not self.basename:
            raise SchemaError("", "give pattern (with replacement) or basename: true")
        if self.pattern is not None:
            import re

            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise SchemaError("pattern", f"is not a regular expression: {exc}") from None


@schema
class RecordsSource(SplitSource):
    """Keys of a ``dataset.sources`` entry with ``format: records``."""

    annotation: str = option(help="the records file, relative to the source's path: .json (a list, or a mapping id -> record), .jsonl, .csv or .parquet (.gz allowed except for parquet)")
    fields: RecordFields = option(help="which of the file's fields play which role (see RecordFields); may sit under dataset: for every source")
    images: str | list[str] | None = option(None, help="image folder(s), relative to the data root; with several, each file is taken from the first folder that has it (default: the source's own folder)")
    image_pattern: str = option("{}", help="file name made from the image field: '{}' is its value, e.g. 'COCO_val2014_{:012d}.jpg'; '{name}' is any field of the record, e.g. '{image_id}.jpg'; may sit under dataset:")
    filter: list[FilterCondition] | FilterCondition = option([], help="conditions a record must meet to be kept (all of them); may sit under dataset:")
    absolute_images: bool = option(False, help="image values may be absolute paths, used as written (off: every image is a file name inside the image folders, and one that leaves them is refused)")
    image_rewrite: ImageRewrite | None = option(None, help="turn image values (URLs, paths with a prefix) into file names before image_pattern: a regular expression replacement and/or the basename; may sit under dataset:")
    missing_images: Literal["error", "skip"] = option("error", help="a record whose image file is missing: error (the default: the run stops, naming it) or skip (left out, as some official evaluators do; the count is recorded in the result's protocol_used.left_out and shown after the summary); may sit under dataset:")
    first: int | None = option(None, help="keep only the first N records of the file (file order, before filter), as official evaluators that score the first N do", low=1)
    positions: list[int] | None = option(None, help="keep only the records at these 0-based positions of the file (before filter), in file order")
    columns: list[str] | None = option(None, help="names for a CSV's columns in order, its header row skipped (for a file whose official reader "
                                       "unpacks rows positionally, e.g. MMVP-VLM's Questions.csv: [qid, type, statement])")
    rows_per_item: int = option(1, help="join this many consecutive records into one item {rows: [first, second, ...]} (fields 'rows.0.statement', "
                                "pattern '{rows[0][type]}/{}.jpg'), as MMVP-VLM's evaluate_vlm.py pairs consecutive rows", low=1)
    caption_template: str = option("{}", help="every caption becomes this with '{}' replaced by it (MMVP-VLM: 'a photo of {}')")
    list_literals: list[str] = option([], help="fields whose values are Python list literals in text, as pandas writes a column of lists to CSV "
                                      "(\"['a cat', 'a dog']\"); read with ast.literal_eval, which builds literals only (CREPE's hard_negs)")

    def check(self) -> None:
        if self.first is not None and self.positions is not None:
            raise SchemaError("positions", "give first or positions, not both")
        if self.positions is not None and any(p < 0 for p in self.positions):
            raise SchemaError("positions", "positions are 0-based: none is below 0")
        if "{}" not in self.caption_template:
            raise SchemaError("caption_template", "must contain {} where the caption goes")
        if any("." in field for field in self.list_literals):
            raise SchemaError("list_literals", "names top-level fields (no dotted names)")


#: Options that may sit under ``dataset:`` instead, shared by every records source (a source's own value wins).
SHARED_OPTIONS = ("fields", "filter", "image_pattern", "image_rewrite", "missing_images")

def names(value: str | int | list[str | int] | None) -> list[str]:
    return [] if value is None else [str(value)] if isinstance(value, (str, int)) else [str(v) for v in value]


@dataclass(frozen=True)
class Mapping:
    """A records source's field mapping and filters, checked against the task-file schema."""

    images: list[str]
    negative_images: list[str]
    positives: list[str]
    negatives: list[str]
    captions: list[str]
    groups: list[str]
    id: str | None
    filters: list[dict[str, Any]]
    pattern: str
    absolute_images: bool = False
    rewrite: ImageRewrite | None = None
    box: list[str] = dataclasses.field(default_factory=list)  # [left, top, width, height] fields
    list_literals: list[str] = dataclasses.field(default_factory=list)
    caption_template: str = "{}"

    @classmethod
    def of(cls, options: RecordsSource) -> "Mapping":
        """The mapping of a records source's options (``TaskKind.source_options``: inherited keys merged)."""
        fields = options.fields
        filters = [options.filter] if isinstance(options.filter, FilterCondition) else options.filter
        return cls(
            names(fields.image), names(fields.negative_images), names(fields.positives), names(fields.negatives), names(fields.captions),
            names(fields.groups), None if fields.id is None else str(fields.id),
            [{k: v for k, v in as_dict(c).items() if v is not None} for c in filters], options.image_pattern, options.absolute_images,
            options.image_rewrite, names(fields.box), [str(f) for f in options.list_literals], options.caption_template,
        )

    def caption_fields(self) -> list[str]:
        return self.captions or self.positives + self.negatives

    def used_fields(self) -> dict[str, str]:
        """Every field the records must have -> the option that names it (for error messages)."""
        used = {f: "fields.image" for f in self.images}
        used.update({f: "fields.negative_images" for f in self.negative_images})
        for role in ("positives", "negatives", "captions", "groups"):
            used.update({f: f"fields.{role}" for f in getattr(self, role)})
        if self.id:
            used[self.id] = "fields.id"
        used.update({f: "fields.box" for f in self.box})
        used.update({f: "list_literals" for f in self.list_literals})
        used.update({c["field"]: f"filter[{i}].field" for i, c in enumerate(self.filters)})
        used.update({name: "image_pattern" for name in pattern_fields(self.pattern)})
        return used


def pattern_fields(pattern: str) -> list[str]:
    """Named fields of a file-name pattern ('{image_id}.jpg' -> ['image_id']); '{}' is the image field."""
    fields = [name.split(".")[0].split("[")[0] for _, name, _, _ in Formatter().parse(pattern) if name]
    return [f for f in fields if f and not f.isdigit()]


# -- records -> instances -----------------------------------------------------------------------
def _texts(record: dict[str, Any], field: str, where: str) -> list[str]:
    value = lookup(record, field)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, str):
            raise VLBenchError(f"{where}: field '{field}' holds {item!r}, not a caption (text)")
    return items


def _values(record: dict[str, Any], field: str) -> list[Any]:
    """A field's value as a list (a field may hold one image or a list of them)."""
    value = lookup(record, field)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def file_name(pattern: str, value: Any, record: dict[str, Any]) -> str:
    named = {k: v for k, v in record.items() if isinstance(k, str)}
    try:
        return pattern.format(value, **named)
    except ValueError:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return pattern.format(int(value), **named)  # CSV ids are text; '{:012d}' wants a number
        raise


@dataclass
class ImageFinder:
    """Turns a record's image value into an ImageRef: a file under one of the roots, or embedded bytes.

    A file name must stay inside the image folders once resolved: a value with '..' that leaves them, or
    an absolute path (unless the source sets ``absolute_images: true``), is refused with the record named,
    so a records file can never make vlbench read a file elsewhere."""

    roots: list[Path]
    pattern: str
    where: str
    absolute: bool = False  # the source's absolute_images: absolute paths are used as written
    rewrite: ImageRewrite | None = None  # the source's image_rewrite, applied to the value before the pattern

    def __call__(self, value: Any, record: dict[str, Any], field: str, key: str) -> ImageRef:
        if isinstance(value, dict) and value.get("bytes") is not None:  # a parquet / Hugging Face image cell
            if not isinstance(value["bytes"], (bytes, bytearray)):
                raise VLBenchError(f"{self.where}, record {key}: field '{field}' holds an image cell whose 'bytes' is "
                                   f"{type(value['bytes']).__name__}, not encoded image bytes")
            return BytesImage(f"{self.where}#{key}:{field}", bytes(value["bytes"]))
        if isinstance(value, dict) and value.get("path"):
            value = value["path"]
        if self.rewrite is not None:
            value = rewritten(str(value), self.rewrite)
        name = file_name(self.pattern, value, record)
        if Path(name).is_absolute():
            if not self.absolute:
                raise VLBenchError(f"{self.where}, record {key}: image '{name}' is an absolute path; image values are file names "
                                   "inside the image folders (set absolute_images: true in the source to allow absolute paths)")
            return FileImage(name)
        for root in self.roots:
            if not within(root / name, root):
                raise VLBenchError(f"{self.where}, record {key}: image '{name}' leaves the image folder {root}; "
                                   "image values are file names inside it")
        if len(self.roots) > 1:
            for root in self.roots:
                if (root / name).is_file():
                    return FileImage(str(root / name))
        return FileImage(str(self.roots[0] / name))


def rewritten(value: str, rewrite: ImageRewrite) -> str:
    """``image_rewrite`` applied to one image value: the regular expression replacement, then the basename (of a URL's
    path without its query, or of a file path)."""
    import re
    from urllib.parse import urlsplit

    if rewrite.pattern is not None:
        value = re.sub(rewrite.pattern, rewrite.replacement, value)
    if rewrite.basename:
        path = urlsplit(value).path if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value) else value
        value = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return value


def list_literal(value: Any, field: str, where: str) -> Any:
    """A field named by ``list_literals``: its text parsed as a Python list literal (a list already is one)."""
    import ast

    if not isinstance(value, str):
        return value
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = None
    if not isinstance(parsed, list):
        raise VLBenchError(f"{where}: field '{field}' (list_literals) holds {value[:60]!r}, not a Python list literal such as ['a', 'b']")
    return parsed


def cropped(ref: ImageRef, record: dict[str, Any], box: list[str], where: str) -> ImageRef:
    """An image cropped to the record's [left, top, width, height] box."""
    try:
        left, top, width, height = (float(lookup(record, f)) for f in box)
    except (TypeError, ValueError):
        raise VLBenchError(f"{where}: fields.box {box} must hold numbers, got {[lookup(record, f) for f in box]}") from None
    if not isinstance(ref, FileImage):
        raise VLBenchError(f"{where}: fields.box crops image files; this record's image is embedded")
    return dataclasses.replace(ref, box=(left, top, left + width, top + height))


def within(path: Path, folder: Path) -> bool:
    """Whether ``path`` stays inside ``folder`` as written ('..' resolved, symbolic links not followed: an
    image folder may hold links to files elsewhere, a record's value may not climb out of it)."""
    base, target = os.path.normpath(os.path.abspath(folder)), os.path.normpath(os.path.abspath(path))
    return target == base or target.startswith(base.rstrip(os.sep) + os.sep)


def without_missing_images(instances: list[SelectionInstance]) -> tuple[list[SelectionInstance], list[str]]:
    """The instances whose image files all exist, and the ids of the others."""
    kept, skipped = [], []
    for inst in instances:
        if all(Path(ref.path).is_file() for ref in inst.images if isinstance(ref, FileImage)):
            kept.append(inst)
        else:
            skipped.append(inst.id)
    return kept, skipped


def unknown_field_error(path: Path, field: str, option: str, record: dict[str, Any]) -> VLBenchError:
    fields = field_names(record)
    return VLBenchError(f"{path}: field '{field}' (named by {option}) is not in the records{did_you_mean(field, fields)}; fields there: {', '.join(fields)}")


def source_records(path: Path, options: RecordsSource) -> Iterator[tuple[str, Any]]:
    """The records of a source's file, with its columns and rows_per_item applied."""
    return iter_records(path, options.columns, options.rows_per_item)


def check_fields(path: Path, mapping: Mapping, options: RecordsSource, sample: int = 5) -> None:
    """Raise a one-line error if the first records lack a mapped field (run before any model loads)."""
    records = []
    for _, record in source_records(path, options):
        records.append(record)
        if len(records) >= sample:
            break
    if not records:
        raise VLBenchError(f"{path}: no records")
    for field, option in mapping.used_fields().items():
        for record in records:
            if lookup(record, field) is MISSING:
                raise unknown_field_error(path, field, option, record)


@SELECTION_READERS.register("records")
class RecordsReader(AnnotationFileReader):
    """A table of records mapped onto images, positive and negative captions in the task file."""

    options: type = RecordsSource
    shared_options = SHARED_OPTIONS  # keys a source may inherit from dataset:

    def roots(self, location: str, options: Any, spec: Any, data_root: Path) -> list[Path]:
        override = spec.dataset.get("images") if spec is not None else None
        folders = names(override or options.images)
        if not folders:
            return [Path(location)]
        return [Path(f) if override else data_root / f for f in folders]

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Input | Path]:
        """The records file; with ``missing_images: skip`` also the image folders' listings, since which images are
        there decides which records are scored (a result is recomputed when images appear or go)."""
        found = super().inputs(location, options, spec)
        if options.missing_images == "skip":
            data_root = Path(location)
            for _ in Path(options.path or "").parts:  # the source's folder is <data root>/<path>
                data_root = data_root.parent
            found += [Input(root) for root in self.roots(str(location), options, spec, data_root) if root.is_dir()]
        return found

    def check(self, location: str, options: Any, spec: Any) -> None:
        """Read the first records and check every mapped field is there (cheap; before model load)."""
        check_fields(Path(location) / options.annotation, Mapping.of(options), options)

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SelectionData:
        path = Path(location) / options.annotation
        mapping = Mapping.of(options)
        roots = self.roots(location, options, spec, Path(ctx.data_root))
        find = ImageFinder(roots, mapping.pattern, str(path), mapping.absolute_images, mapping.rewrite)
        instances = []
        wanted = set(options.positions) if options.positions is not None else None
        seen = 0
        for position, (key, record) in enumerate(source_records(path, options)):
            if options.first is not None and position >= options.first:
                break
            if wanted is not None and position not in wanted:
                continue
            seen += 1
            where = f"{path}, record {key}"
            if not all(keep(record, c, where) for c in mapping.filters):
                continue
            instances.append(self.instance(record, key, mapping, find, path))
        if wanted is not None and seen < len(wanted):
            raise VLBenchError(f"{path}: positions name {len(wanted) - seen} record(s) past the file's end (its last position: {max(wanted)} "
                               "asked, fewer records there)")
        if not instances:
            raise VLBenchError(f"{path}: no record passes the filter {mapping.filters}")
        where = roots[0] if len(roots) == 1 else Path(", ".join(map(str, roots)))
        left_out: dict[str, Any] = {}
        if options.missing_images == "skip":
            instances, skipped = without_missing_images(instances)
            if skipped:
                left_out["missing_images"] = {"records": len(skipped), "examples": skipped[:5]}
            if not instances:
                raise VLBenchError(f"{path}: every record's image is missing (missing_images: skip); images go under {where}")
        files = [ref for inst in instances for ref in inst.images if isinstance(ref, FileImage)]
        check_images_exist(files, where, "see the task's help ('vlbench show <task>'), or set missing_images: skip to leave such records out")
        return SelectionData(instances, left_out=left_out)

    @staticmethod
    def instance(record: dict[str, Any], key: str, mapping: Mapping, find: ImageFinder, path: Path) -> SelectionInstance:
        where = f"{path}, record {key}"
        for field, option in mapping.used_fields().items():
            if lookup(record, field) is MISSING:
                raise unknown_field_error(path, field, option, record)
        if mapping.list_literals:
            record = {**record, **{f: list_literal(record[f], f, where) for f in mapping.list_literals}}
        item_id = str(lookup(record, mapping.id)) if mapping.id else key
        # embedded images are keyed by the record's position (ids need not be unique) and their place in it
        images = [find(v, record, f"{f}[{i}]", key) for f in mapping.images for i, v in enumerate(_values(record, f))]
        if mapping.box:
            images = [cropped(ref, record, mapping.box, where) for ref in images]
        n_positive_images = len(images)
        images += [find(v, record, f"{f}[{i}]", key) for f in mapping.negative_images for i, v in enumerate(_values(record, f))]
        captions: list[str] = []
        fields: list[str] = []
        for field in mapping.caption_fields():
            texts = [mapping.caption_template.replace("{}", text) for text in _texts(record, field, where)]
            captions += texts
            fields += [field] * len(texts)
        n_positive = sum(len(_texts(record, f, where)) for f in mapping.positives)
        groups = {f: str(lookup(record, f)) for f in mapping.groups}
        return SelectionInstance(
            item_id, images, captions, answer=0 if n_positive == 1 else None,  # the strict / argmax rules need one answer
            group=next(iter(groups.values()), None),  # the first group field, for the macro_accuracy / breakdown of those rules
            positives=list(range(n_positive)) if not mapping.captions else None, caption_fields=fields, groups=groups,
            positive_images=list(range(n_positive_images)) if mapping.negative_images else None,
        )
