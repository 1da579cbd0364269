"""The shapes world: deterministic, exact labels, boxes and masks."""

import numpy as np

from vlbench.datasets.shapes import (
    COLORS,
    ShapesImage,
    classification_scene,
    multi_object_scene,
    object_classes,
    retrieval_captions,
)


def test_scenes_are_a_pure_function_of_seed_and_index():
    a, b = multi_object_scene(7, 3), multi_object_scene(7, 3)
    assert a == b
    assert np.array_equal(np.asarray(a.render()), np.asarray(b.render()))
    assert multi_object_scene(8, 3) != a
    assert ShapesImage("multi", 7, 3, 128).load().tobytes() == a.render().tobytes()


def test_masks_and_boxes_match_the_rendered_pixels():
    for index in range(20):
        scene = multi_object_scene(11, index)
        image = np.asarray(scene.render())
        mask = scene.instance_mask()
        for k, obj in enumerate(scene.objects, start=1):
            ys, xs = np.nonzero(mask == k)
            assert len(xs) > 20
            x0, y0, x1, y1 = obj.box
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            assert (image[mask == k] == COLORS[obj.color]).all()  # every mask pixel has the object's colour
        assert (image[mask == 0] == scene.background).all()


def test_classification_labels_are_balanced_and_exact():
    classes = object_classes()
    assert len(classes) == 30 and len(set(classes)) == 30
    for index in range(60):
        scene, label = classification_scene(3, index)
        assert len(scene.objects) == 1 and scene.objects[0].name == classes[label]
        assert scene.objects[0].class_index == label
    assert [classification_scene(3, i)[1] for i in range(30)] == list(range(30))


def test_captions_describe_objects_left_to_right():
    scene = multi_object_scene(5, 0)
    ordered = scene.left_to_right()
    listing, relation = retrieval_captions(scene)
    positions = [listing.index(o.name) for o in ordered]
    assert positions == sorted(positions)
    assert relation.startswith(f"a{'n' if ordered[0].name[0] in 'aeiou' else ''} {ordered[0].name} to the left of")
    assert relation.endswith(ordered[-1].name)
