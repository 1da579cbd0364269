"""The generic fields of a task file, and the bases of kind protocols and dataset sources.

What a kind adds lives with the kind (``protocol_schema``, ``files_schema``), what a dataset
format adds lives with its reader (``options``): see ``vlbench.spec.schema`` for how to add a field.
A new generic field is one line in ``TaskFields`` or ``DatasetFields`` below.
"""

from __future__ import annotations

from typing import Any

from vlbench.spec.schema import SchemaError, option, schema


@schema
class SourceFields:
    """Keys every dataset source has; a reader's ``options`` schema subclasses this."""

    format: str = option(help="dataset format (reader) of this source")
    path: str | None = option(None, help="folder under the data root (or dataset.path) where this source's data is")
    hub: str | None = option(None, help="Hugging Face hub id, read only with --hf-hub")
    mirror: str | None = option(None, help="Hugging Face dataset repo holding this source's files, downloaded into its path with --hf-hub")


@schema
class SplitSource(SourceFields):
    split: str | None = option(None, help="the split to read (default: dataset.split)")


@schema
class TestSplitSource(SourceFields):
    split: str = option("test", help="the split to read")


@schema
class DatasetFields:
    sources: list[dict[str, Any]] = option(help="where the data may be, tried in order (each a mapping with 'format')")
    split: str | None = option(None, help="the split evaluated (recorded; sources may name their own)")
    train_sources: list[dict[str, Any]] | None = option(None, help="where the training split may be, tried in order like sources (kinds "
                                                        "that fit on one: linear_probe, knn)")
    path: str | None = option(None, help="replaces every source's location (e.g. --set dataset.path=/data/x, or hf:org/name)")
    image_key: str | None = option(None, help="image column, replacing the sources' (Hugging Face formats)")
    label_key: str | None = option(None, help="label column, replacing the sources' (Hugging Face formats)")
    caption_key: str | None = option(None, help="caption column, replacing the sources' (Hugging Face formats)")
    images: str | None = option(None, help="image folder, replacing the sources' 'images' (selection formats)")
    fields: dict[str, Any] | None = option(None, help="records format: the field mapping shared by every records source (a source's own wins)")
    filter: list[dict[str, Any]] | dict[str, Any] | None = option(None, help="records format: record filters shared by every records source")
    image_pattern: str | None = option(None, help="records format: the image file-name pattern shared by every records source")

    def check(self) -> None:
        if not self.sources:
            raise SchemaError("sources", "expected a non-empty list of sources")


@schema
class TaskFields:
    """The top level of a task file (after ``include:`` files are merged in)."""

    task: str = option(help="task name (default: the file name)")
    kind: str = option(help="evaluation protocol (see 'vlbench list kinds')")
    version: int | str = option(help="bump when the task's numbers change meaning")
    description: str = option("", help="one line for people (not hashed)")
    help: str = option("", help="how to get the data and lay it out (not hashed)")
    protocol_reference: str = option("", help="where the protocol comes from: paper, repository, file (not hashed)")
    languages: list[str] | None = option(None, help="multilingual tasks: the languages it can be run in; '{language}' in files and dataset fields is replaced by the one chosen")
    language: str | None = option(None, help="the language evaluated (default: the first of languages; --language picks another)")
    include: str | list[str] | None = option(None, help="base task files merged under this one (relative paths)")
    dataset: DatasetFields = option(help="the data: sources and split")
    files: dict[str, str] = option({}, help="files the task reads (class names, templates...), relative to the YAML file")
    protocol: dict[str, Any] | None = option(None, help="the kind's protocol options (see 'vlbench show kind:NAME')")
    metrics: list[str] = option(help="metrics to compute")
    main_metric: str = option(help="the metric leaderboards show; one of metrics")

    def check(self) -> None:
        if self.main_metric not in self.metrics:
            raise SchemaError("main_metric", f"'{self.main_metric}' is not one of metrics {self.metrics}")


@schema
class ProtocolFields:
    """Protocol keys every kind accepts; a kind's ``protocol_schema`` subclasses this."""

    named_protocol: str | None = option(None, help="the published protocol these settings follow (recorded)")


@schema
class NoFiles:
    """A kind that reads no ``files:`` entries."""
