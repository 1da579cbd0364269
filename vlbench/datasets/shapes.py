"""The shapes world: seeded, procedural scenes of coloured geometric shapes.

Every scene is a pure function of ``(seed, index, layout)``, so tasks need no files and a scene
can be regenerated anywhere (in a data-loader worker, in a test, in the training script). A scene
knows its objects exactly: shape, colour, bounding box and pixel mask, so classification labels,
captions, boxes and segmentation masks are all ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from vlbench.spec.fields import SourceFields
from vlbench.spec.schema import option, schema
from vlbench.stamps import Generated

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 200, 30),
    "purple": (135, 55, 175),
    "orange": (240, 125, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon")
BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((245, 245, 240), (225, 228, 232), (240, 232, 220), (210, 220, 210))


def object_classes() -> list[str]:
    """All 'colour shape' names, colour-major: index = colour * len(SHAPES) + shape."""
    return [f"{color} {shape}" for color in COLORS for shape in SHAPES]


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    color: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive-exclusive pixel box)

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def class_index(self) -> int:
        return list(COLORS).index(self.color) * len(SHAPES) + SHAPES.index(self.shape)

    @property
    def center_x(self) -> float:
        return (self.box[0] + self.box[2]) / 2


@dataclass(frozen=True)
class Scene:
    size: int
    background: tuple[int, int, int]
    objects: tuple[ShapeObject, ...] = field(default_factory=tuple)

    def render(self) -> Image.Image:
        image = Image.new("RGB", (self.size, self.size), self.background)
        draw = ImageDraw.Draw(image)
        for obj in self.objects:
            _draw(draw, obj, COLORS[obj.color])
        return image

    def instance_mask(self) -> np.ndarray:
        """HxW uint8: 0 background, k for the k-th object (1-based); later objects on top."""
        mask = Image.new("L", (self.size, self.size), 0)
        draw = ImageDraw.Draw(mask)
        for k, obj in enumerate(self.objects, start=1):
            _draw(draw, obj, k)
        return np.asarray(mask, dtype=np.uint8).copy()

    def left_to_right(self) -> list[ShapeObject]:
        return sorted(self.objects, key=lambda o: o.center_x)


def _polygon(shape: str, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (x1 - x0 - 1) / 2
    if shape == "triangle":
        return [(cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)]
    if shape == "hexagon":
        return [(cx + r * math.cos(math.pi / 3 * k), cy + r * math.sin(math.pi / 3 * k)) for k in range(6)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + math.pi / 5 * k
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    raise ValueError(shape)


def _draw(draw: ImageDraw.ImageDraw, obj: ShapeObject, fill: object) -> None:
    x0, y0, x1, y1 = obj.box
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    else:
        draw.polygon(_polygon(obj.shape, obj.box), fill=fill)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def scene_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


def make_scene(
    rng: np.random.Generator,
    kinds: Sequence[tuple[str, str]],
    size: int = 128,
    min_frac: float = 0.22,
    max_frac: float = 0.45,
) -> Scene:
    """Place the given (colour, shape) objects at random non-overlapping spots.

    Objects keep a gap between them and distinct horizontal centres, so 'left of' is well-defined.
    """
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if len(kinds) > 1:  # several objects must fit side by side
        max_frac = min(max_frac, 0.9 / len(kinds))
        min_frac = min(min_frac, max_frac * 0.75)
    for _attempt in range(200):
        placed: list[ShapeObject] = []
        for color, shape in kinds:
            side = int(rng.integers(int(size * min_frac), int(size * max_frac) + 1))
            for _try in range(60):
                x0 = int(rng.integers(0, size - side + 1))
                y0 = int(rng.integers(0, size - side + 1))
                box = (x0, y0, x0 + side, y0 + side)
                gap = max(2, size // 32)
                if all(not _overlaps(box, o.box, gap) and abs((box[0] + box[2]) / 2 - o.center_x) >= side / 4 for o in placed):
                    placed.append(ShapeObject(shape, color, box))
                    break
            else:
                break
        if len(placed) == len(kinds):
            return Scene(size=size, background=background, objects=tuple(placed))
    raise RuntimeError(f"cannot place {len(kinds)} objects in a {size}px scene")


def random_kinds(rng: np.random.Generator, n: int, distinct: bool = True) -> list[tuple[str, str]]:
    """n random (colour, shape) pairs; with ``distinct`` no two objects share colour or shape."""
    colors = list(COLORS)
    if distinct:
        chosen_colors = rng.choice(len(colors), size=n, replace=False)
        chosen_shapes = rng.choice(len(SHAPES), size=n, replace=False)
        return [(colors[c], SHAPES[s]) for c, s in zip(chosen_colors, chosen_shapes)]
    return [(colors[int(rng.integers(len(colors)))], SHAPES[int(rng.integers(len(SHAPES)))]) for _ in range(n)]


def with_article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def list_caption(objects: Sequence[ShapeObject]) -> str:
    """'a red circle', 'a red circle and a blue star', 'a red circle, a blue star and ...'."""
    names = [with_article(o.name) for o in objects]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def relation_caption(left: ShapeObject, right: ShapeObject, relation: str) -> str:
    """'a red circle to the left of a blue star' (relation 'left') or the mirrored sentence."""
    if relation == "left":
        return f"{with_article(left.name)} to the left of {with_article(right.name)}"
    return f"{with_article(right.name)} to the right of {with_article(left.name)}"


def classification_label(index: int) -> int:
    """Classes cycle with the index, so every class has the same number of images."""
    return index % (len(COLORS) * len(SHAPES))


def classification_scene(seed: int, index: int, size: int = 128) -> tuple[Scene, int]:
    """One object per image, of class ``classification_label(index)``."""
    label = classification_label(index)
    color, shape = object_classes()[label].split(" ")
    scene = make_scene(scene_rng(seed, index), [(color, shape)], size=size, min_frac=0.3, max_frac=0.7)
    return scene, label


def multi_object_scene(seed: int, index: int, size: int = 128, min_objects: int = 2, max_objects: int = 3) -> Scene:
    rng = scene_rng(seed, index)
    n = int(rng.integers(min_objects, max_objects + 1))
    return make_scene(rng, random_kinds(rng, n), size=size)


def retrieval_captions(scene: Scene) -> list[str]:
    """Two captions: objects listed left to right, and a spatial sentence about two of them."""
    ordered = scene.left_to_right()
    captions = [list_caption(ordered)]
    captions.append(relation_caption(ordered[0], ordered[-1], "left"))
    return captions


#: The shapes world's version: bump it whenever a generated scene, or a caption, label, box or mask a
#: shapes reader makes of it, changes. Results (``task.inputs``) and cached scene embeddings are keyed by it;
#: tests/golden/shapes_output.json pins the output of this version, so a change without a bump fails a test.
GENERATOR_VERSION = "1"


def generator_stamp() -> str:
    """What identifies the scenes this module draws (and the shapes readers' items): its version."""
    return f"v{GENERATOR_VERSION}"


@dataclass(frozen=True)
class ShapesImage:
    """A generated scene as an ImageRef; ``layout`` names the generator function's recipe."""

    layout: str
    seed: int
    index: int
    size: int

    @property
    def key(self) -> str:
        return f"shapes:{self.layout}:{self.seed}:{self.index}:{self.size}"

    @property
    def cache_id(self) -> str:
        """The recipe plus the generator's code, so changing the generator invalidates cached scenes."""
        return f"{self.key}:{generator_stamp()}"

    def scene(self) -> Scene:
        return SCENE_LAYOUTS[self.layout](self.seed, self.index, self.size)

    def load(self) -> Image.Image:
        return self.scene().render()


def pair_scene(seed: int, index: int, size: int = 128) -> Scene:
    """Two objects with distinct colours and shapes (the compositional tasks' scenes)."""
    rng = scene_rng(seed, index)
    return make_scene(rng, random_kinds(rng, 2), size=size)


SCENE_LAYOUTS = {
    "single": lambda seed, index, size: classification_scene(seed, index, size)[0],
    "multi": lambda seed, index, size: multi_object_scene(seed, index, size),
    "pair": pair_scene,
}


@schema
class ShapesSource(SourceFields):
    seed: int = option(help="seed of the generated scenes", low=0)
    n: int = option(help="number of scenes", low=1, high=1_000_000)
    size: int = option(128, help="scene size in pixels (at least 32: three shapes with gaps must fit)", low=32)


class GeneratedReader:
    """Base of the readers of generated data: always available, nothing on disk."""

    generated = True
    options: type = ShapesSource

    def exists(self, location: object, options: Any) -> bool:
        return True

    def inputs(self, location: object, options: Any, spec: object) -> list[Generated]:
        """The generator's version: it covers the scenes and every shapes reader's items, captions and labels."""
        return [Generated("shapes", GENERATOR_VERSION)]

    @staticmethod
    def params(options: Any, ctx: object = None) -> tuple[int, int, int]:
        """(seed, number of scenes, scene size in pixels) of a shapes source; with a run's --limit
        (``ctx.limit``) only the scenes it keeps are generated."""
        n, limit = int(options.n), getattr(ctx, "limit", None)
        return int(options.seed), n if limit is None else min(n, int(limit)), int(options.size)
