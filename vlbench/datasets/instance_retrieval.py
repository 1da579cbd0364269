"""Readers of image-to-image (instance) retrieval sets: query images, a database, and per query which database
images are relevant (the revisited Oxford and Paris ground truth, ``gnd_<name>.pkl``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlbench.datasets.images import FileImage, ImageRef
from vlbench.datasets.safe_pickle import NUMPY_ARRAYS, load_pickle
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.spec.fields import SourceFields
from vlbench.spec.schema import option, schema

INSTANCE_RETRIEVAL_READERS: Registry = Registry("instance retrieval dataset format", entry_point_group="vlbench.readers",
                                                entry_point_prefix="instance_retrieval.")
RELEVANCE = ("easy", "hard", "junk")


@dataclass
class InstanceRetrievalData:
    queries: list[ImageRef]
    database: list[ImageRef]
    #: per query, the database positions of its easy, hard and junk images
    relevance: list[dict[str, list[int]]]

    def limited(self, limit: int | None) -> "InstanceRetrievalData":
        """The first ``limit`` queries (the database stays whole: a query's relevant images are anywhere in it)."""
        return self if limit is None else InstanceRetrievalData(self.queries[:limit], self.database, self.relevance[:limit])


@schema
class RevisitedSource(SourceFields):
    gnd: str = option(help="the ground-truth pickle (gnd_roxford5k.pkl, gnd_rparis6k.pkl), relative to the source's folder")
    images_dir: str = option("jpg", help="the image folder, relative to the source's folder")
    suffix: str = option(".jpg", help="appended to the pickle's image names")


@INSTANCE_RETRIEVAL_READERS.register("revisited")
class RevisitedReader:
    """Radenović et al. 2018's revisited Oxford / Paris layout (revisitop's ``configdataset``): ``gnd_<name>.pkl``
    holding ``imlist`` (database names), ``qimlist`` (query names) and ``gnd`` (per query ``bbx`` and the
    ``easy`` / ``hard`` / ``junk`` database indices), the images under ``jpg/``. Each query image is cropped to its
    ``bbx`` (as revisitop's evaluation does), read with a restricted unpickler (plain data only)."""

    options = RevisitedSource

    def exists(self, location: Path, options: Any) -> bool:
        return (Path(location) / options.gnd).is_file()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        return [Path(location) / options.gnd]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> InstanceRetrievalData:
        path = Path(location) / options.gnd
        try:
            cfg = load_pickle(path, NUMPY_ARRAYS)
            database, queries, gnd = list(cfg["imlist"]), list(cfg["qimlist"]), list(cfg["gnd"])
            if len(gnd) != len(queries):
                raise ValueError(f"{len(queries)} queries but {len(gnd)} ground-truth entries")
            relevance = [{name: sorted(int(j) for j in entry.get(name, [])) for name in RELEVANCE} for entry in gnd]
            boxes = [tuple(float(v) for v in entry["bbx"]) for entry in gnd]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VLBenchError(f"{path} is not a revisited ground-truth file (imlist, qimlist, gnd with bbx / easy / hard / junk): "
                               f"{type(exc).__name__}: {exc}") from exc
        bad = next((j for r in relevance for name in RELEVANCE for j in r[name] if not 0 <= j < len(database)), None)
        if bad is not None:
            raise VLBenchError(f"{path}: ground truth names database image {bad}, but the database has {len(database)}")
        images = Path(location) / options.images_dir
        missing = next((name for name in [*queries, *database] if not (images / f"{name}{options.suffix}").is_file()), None)
        if missing is not None:
            raise VLBenchError(f"image {images / (missing + options.suffix)} not found (the set's images go under {images}); "
                               "see the task's help ('vlbench show <task>')")
        return InstanceRetrievalData(
            queries=[FileImage(str(images / f"{name}{options.suffix}"), box) for name, box in zip(queries, boxes)],  # type: ignore[arg-type]
            database=[FileImage(str(images / f"{name}{options.suffix}")) for name in database],
            relevance=relevance,
        )
