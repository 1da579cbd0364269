"""What dataset readers share: a source read from one annotation file, and the inputs a reader declares.

Readers receive a source as its typed options (``TaskKind.source_options``). A reader's
``inputs(location, options, spec)`` names what decides a task's items and labels
(annotation, records, split and label files; folders whose listing decides the items), as paths or
``vlbench.stamps.Input``; their identity is part of every result (``task.inputs``), so a result is
recomputed when they change. A reader without the method is taken to depend on everything at its
location. The readers of each format live beside their kind's data (``classification``,
``retrieval``, ``selection``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from vlbench.errors import VLBenchError
from vlbench.stamps import Input


class AnnotationFileReader:
    """Base of readers whose items come from one file, ``options.annotation`` under the source's folder."""

    def exists(self, location: Path, options: Any) -> bool:
        return (Path(location) / options.annotation).is_file()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Input | Path]:
        return [Path(location) / options.annotation]

    @staticmethod
    def parse(annotation: Path, extract: Callable[[Any], Any], expected: str) -> Any:
        """``extract`` applied to the file's JSON; a one-line error naming the file when it does not fit."""
        try:
            return extract(json.loads(annotation.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise VLBenchError(f"{annotation} is not {expected}: {exc}") from exc
