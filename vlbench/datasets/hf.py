"""Hugging Face datasets: a ``save_to_disk`` folder, local parquet files, or a hub id.

Images are read without decoding the whole column: the image column is cast to undecoded
``{"bytes", "path"}`` and each ``HFImage`` decodes one row when a worker asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vlbench.datasets.images import ImageRef, _decode
from vlbench.errors import VLBenchError
from vlbench.hub_access import require_hub

HUB_PREFIX = "hf:"


def _parquet_files(location: Path, split: str | None) -> list[Path]:
    if location.is_file() and location.suffix == ".parquet":
        return [location]
    if not location.is_dir():
        return []
    files = sorted(location.rglob("*.parquet"))
    if split:
        matching = [f for f in files if _names_split(f, split)]
        if matching:
            return matching
        if any(_names_split(f, other) for f in files for other in KNOWN_SPLITS):
            return []  # the files are split, but not into this one
    return files


KNOWN_SPLITS = ("train", "validation", "valid", "val", "test", "testA", "testB")


def _names_split(path: Path, split: str) -> bool:
    return path.name.startswith(f"{split}-") or path.name.startswith(f"{split}.") or path.parent.name == split


def _is_saved_dataset(location: Path) -> bool:
    return location.is_dir() and ((location / "dataset_info.json").is_file() or (location / "dataset_dict.json").is_file())


def exists(location: Path) -> bool:
    return _is_saved_dataset(location) or bool(_parquet_files(location, None))


def open_dataset(location: str, split: str | None) -> Any:
    """A ``datasets.Dataset`` from a hub id (``hf:org/name``), a saved folder or parquet files."""
    import datasets
    import pyarrow.parquet as pq

    try:
        if location.startswith(HUB_PREFIX):
            require_hub(f"dataset {location[len(HUB_PREFIX):]}")
            return datasets.load_dataset(location[len(HUB_PREFIX):], split=split or "test")
        path = Path(location)
        if _is_saved_dataset(path):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise VLBenchError(f"{path} has splits {list(loaded)}, not '{split}'")
                loaded = loaded[split]
            return loaded
        files = _parquet_files(path, split)
        if not files:
            raise VLBenchError(f"{path} has parquet files, but none for split '{split}' (set dataset.split)")
        tables = [pq.read_table(f) for f in files]
        import pyarrow as pa

        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return datasets.Dataset(datasets.table.InMemoryTable(table))
    except VLBenchError:
        raise
    except Exception as exc:
        raise VLBenchError(f"cannot open Hugging Face dataset {location}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def require_columns(dataset: Any, location: str, *columns: str) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise VLBenchError(
            f"dataset {location} has no column(s) {missing}; it has {dataset.column_names} "
            "(set dataset.sources[..].image_key / label_key in the task file, or --set)"
        )


def class_names(dataset: Any, label_key: str) -> list[str] | None:
    feature = dataset.features.get(label_key)
    names = getattr(feature, "names", None)
    return [n.replace("_", " ") for n in names] if names else None


@dataclass(frozen=True)
class HFImage:
    dataset: Any
    column: str
    index: int
    key: str

    @property
    def cache_id(self) -> str | None:
        """The dataset's own content fingerprint (``datasets`` derives it from the data) and the row."""
        fingerprint = getattr(self.dataset, "_fingerprint", None)
        return None if not fingerprint else f"hf:{fingerprint}|{self.column}|{self.index}"

    def load(self) -> Image.Image:
        cell = self.dataset[self.index][self.column]
        if isinstance(cell, Image.Image):
            return cell.convert("RGB")
        if isinstance(cell, dict) and cell.get("bytes"):
            return _decode(cell["bytes"], self.key)
        if isinstance(cell, dict) and cell.get("path"):
            return _decode(cell["path"], cell["path"])
        raise VLBenchError(f"row {self.index} of {self.key} holds no image in column '{self.column}'")


def image_refs(dataset: Any, column: str, location: str, split: str | None) -> list[ImageRef]:
    """One lazily decoded image per row; keys name the split and column, so no two images share one."""
    import datasets

    if isinstance(dataset.features.get(column), datasets.Image):
        dataset = dataset.cast_column(column, datasets.Image(decode=False))
    return [HFImage(dataset, column, i, f"{location}[{split}]:{column}#{i}") for i in range(len(dataset))]


