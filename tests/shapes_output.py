"""A digest of everything the shapes world makes for each shipped shapes task: pixels, masks, captions, labels.

``python tests/shapes_output.py`` writes ``tests/golden/shapes_output.json`` for the current
``vlbench.datasets.shapes.GENERATOR_VERSION``; ``test_datasets`` checks that today's code makes the same
output under that version. Results and cached embeddings of shapes tasks are keyed by the version, not by
the code's text, so this pin is what keeps a changed output from reusing them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).parent / "golden" / "shapes_output.json"
SCENES = 6  # per task: every reader and layout, small enough to make in a second


def _feed(digest: Any, value: Any) -> None:
    if hasattr(value, "load") and callable(value.load):  # an image or a label map: what it loads to
        value = value.load()
    if hasattr(value, "tobytes") and hasattr(value, "mode"):  # PIL image
        digest.update(f"image{value.size}{value.mode}".encode())
        digest.update(value.tobytes())
    elif isinstance(value, np.ndarray):
        digest.update(f"array{value.shape}{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(type(value).__name__.encode())
        for item in dataclasses.fields(value):
            digest.update(item.name.encode())
            _feed(digest, getattr(value, item.name))
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"seq{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(repr(value).encode())


def shapes_output() -> dict[str, str]:
    from vlbench.kinds import TASK_KINDS
    from vlbench.kinds.base import RunContext
    from vlbench.spec.catalog import Catalog

    catalog = Catalog.load()
    out = {}
    for name in sorted(catalog.select(["shapes", "shapes_compositional"])):
        spec = catalog.load_task(name)
        data, _ = TASK_KINDS.get(spec.kind)().load(spec, RunContext(Path("."), None, limit=SCENES))  # type: ignore[arg-type]
        digest = hashlib.sha256()
        _feed(digest, data)
        out[name] = digest.hexdigest()[:16]
    return out


def main() -> None:
    from vlbench.datasets.shapes import GENERATOR_VERSION

    GOLDEN.write_text(json.dumps({"generator_version": GENERATOR_VERSION, "scenes": SCENES, "tasks": shapes_output()}, indent=1) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
