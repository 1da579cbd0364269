"""A dataset reader that lives outside vlbench (registered through the ``vlbench.readers`` entry-point group):
a text file of colour names, one image per line, drawn in memory."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from vlbench.datasets.classification import ClassificationData
from vlbench.datasets.images import BytesImage
from vlbench.spec.fields import SourceFields
from vlbench.spec.schema import option, schema

RGB = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 220)}


@schema
class ColorListSource(SourceFields):
    annotation: str = option(help="the list of colour names, one image per line")


class ColorListReader:
    """Flat-coloured pictures named in a text file; the label is the colour's place in RGB."""

    options = ColorListSource

    def exists(self, location: Path, options: ColorListSource) -> bool:
        return (Path(location) / options.annotation).is_file()

    def inputs(self, location: Path, options: ColorListSource, spec: Any) -> list[Path]:
        return [Path(location) / options.annotation]

    def read(self, location: str, options: ColorListSource, spec: Any, ctx: Any) -> ClassificationData:
        names = (Path(location) / options.annotation).read_text().split()
        images = []
        for i, name in enumerate(names):
            buffer = io.BytesIO()
            Image.new("RGB", (16, 16), RGB[name]).save(buffer, format="PNG")
            images.append(BytesImage(f"colorlist#{i}", buffer.getvalue()))
        return ClassificationData(images, [list(RGB).index(n) for n in names], classnames=list(RGB))
