"""Readers for each on-disk format, on small files written in that format."""

import json
import pickle

import numpy as np
import pytest
from data_fixtures import (
    COLORS,
    source_options,
    color_image,
    encoded,
    write_cifar,
    write_imagefolder,
    write_karpathy,
    write_wds,
)

from vlbench.spec.catalog import Catalog
from vlbench.datasets.classification import (
    CifarReader,
    HFClassificationReader,
    ImageFolderReader,
    WdsClassificationReader,
)
from vlbench.datasets.retrieval import (
    HFRetrievalReader,
    KarpathyReader,
    WdsRetrievalReader,
)
from vlbench.errors import DatasetNotFoundError, UnsafePickleError, VLBenchError
from vlbench.kinds.base import RunContext
from vlbench.datasets.safe_pickle import NUMPY_ARRAYS, PLAIN, load_pickle
from vlbench.spec.taskfile import TaskSpec

NO_SPEC = TaskSpec("t", "classification", None, {"dataset": {}})  # type: ignore[arg-type]


def test_imagefolder_sorted_classes_and_names(tmp_path):
    items = write_imagefolder(tmp_path / "tree")
    data = ImageFolderReader().read(str(tmp_path / "tree"), source_options(ImageFolderReader, {}), None, None)
    assert data.classnames == sorted(COLORS)
    assert [(ref.path, label) for ref, label in zip(data.images, data.labels)] == items
    assert data.images[0].load().mode == "RGB"


def test_imagefolder_with_numbered_class_folders_as_imagenet_v2_ships_them(tmp_path):
    from PIL import Image

    for index in (0, 1, 2, 10):  # sorted as text, '10' would come before '2'
        (tmp_path / "v2" / str(index)).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "v2" / str(index) / f"img{index}.jpeg")
    data = ImageFolderReader().read(str(tmp_path / "v2"), source_options(ImageFolderReader, {"class_folders": "numeric"}), None, None)
    assert [(ref.path.rsplit("/", 2)[-2], label) for ref, label in zip(data.images, data.labels)] == [("0", 0), ("1", 1), ("2", 2), ("10", 10)]
    assert data.classnames is None  # the task's ImageNet class names apply
    (tmp_path / "v2" / "extra").mkdir()
    with pytest.raises(VLBenchError, match="class folder 'extra' is not a class index"):
        ImageFolderReader().read(str(tmp_path / "v2"), source_options(ImageFolderReader, {"class_folders": "numeric"}), None, None)


def test_imagefolder_with_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "tree" / "cat").mkdir(parents=True)
    with pytest.raises(VLBenchError, match="no images found"):
        ImageFolderReader().read(str(tmp_path / "tree"), source_options(ImageFolderReader, {}), None, None)


@pytest.mark.parametrize("variant, names", [("cifar10", ["airplane", "automobile", "bird"]), ("cifar100", ["apple", "aquarium fish", "baby"])])
def test_cifar_python_archive(tmp_path, variant, names):
    images = write_cifar(tmp_path / variant, variant)
    reader = CifarReader()
    assert reader.exists(tmp_path / variant, source_options(reader, {}))
    data = reader.read(str(tmp_path / variant), source_options(reader, {}), None, None)
    assert data.labels == [0, 1, 2, 0, 1, 2]
    assert data.classnames == names
    assert np.array_equal(np.asarray(data.images[4].load()), images[4])  # CHW rows -> HWC pixels


def test_restricted_unpickler_refuses_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (eval, ("1+1",))

    evil = tmp_path / "evil.p"
    evil.write_bytes(pickle.dumps({"refs": [Payload()]}))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_pickle(evil, PLAIN)
    array_pickle = tmp_path / "arr.p"
    array_pickle.write_bytes(pickle.dumps({"a": np.arange(3)}))
    with pytest.raises(UnsafePickleError, match="numpy"):
        load_pickle(array_pickle, PLAIN)  # arrays only where the caller allows them
    assert load_pickle(array_pickle, NUMPY_ARRAYS)["a"].tolist() == [0, 1, 2]


def _hf_dataset(tmp_path):
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["red_thing", "blue"])})
    rows = {"img": [color_image("red", seed=1), color_image("blue", seed=2), color_image("red", seed=3)], "label": [0, 1, 0]}
    return datasets.Dataset.from_dict(rows, features=features)


def test_hf_saved_to_disk_and_parquet(tmp_path):
    dataset = _hf_dataset(tmp_path)
    dataset.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "parquet").mkdir()
    dataset.to_parquet(str(tmp_path / "parquet" / "test-00000-of-00001.parquet"))
    source = {"image_key": "img", "label_key": "label", "split": "test"}
    reader = HFClassificationReader()
    for folder in ("saved", "parquet"):
        assert reader.exists(tmp_path / folder, source_options(reader, source))
        data = reader.read(str(tmp_path / folder), source_options(reader, source), NO_SPEC, None)
        assert data.labels == [0, 1, 0]
        assert data.classnames == ["red thing", "blue"]
        assert np.asarray(data.images[1].load())[0, 0, 2] > 150  # blue
    with pytest.raises(VLBenchError, match="no column"):
        reader.read(str(tmp_path / "saved"), source_options(reader, {"image_key": "image"}), NO_SPEC, None)


def test_hf_splits_of_one_dataset_have_distinct_image_keys(tmp_path):
    import datasets

    dataset = _hf_dataset(tmp_path)
    datasets.DatasetDict({"train": dataset, "test": dataset}).save_to_disk(str(tmp_path / "both"))
    reader = HFClassificationReader()
    train = reader.read(str(tmp_path / "both"), source_options(reader, {"image_key": "img", "split": "train"}), NO_SPEC, None)
    test = reader.read(str(tmp_path / "both"), source_options(reader, {"image_key": "img", "split": "test"}), NO_SPEC, None)
    assert not {r.key for r in train.images} & {r.key for r in test.images}  # the embedding cache keeps them apart


def test_parquet_files_of_other_splits_are_not_used(tmp_path):
    dataset = _hf_dataset(tmp_path)
    (tmp_path / "p").mkdir()
    dataset.to_parquet(str(tmp_path / "p" / "train-00000-of-00001.parquet"))
    with pytest.raises(VLBenchError, match="none for split 'test'"):
        HFClassificationReader().read(str(tmp_path / "p"), source_options(HFClassificationReader, {"image_key": "img", "split": "test"}), NO_SPEC, None)


def test_retrieval_image_without_captions_is_a_clear_error(tmp_path):
    from vlbench.kinds import TASK_KINDS

    write_karpathy(tmp_path / "coco", "dataset_coco.json")
    annotation = tmp_path / "coco" / "dataset_coco.json"
    entries = json.loads(annotation.read_text())
    entries["images"][0]["sentences"] = []
    annotation.write_text(json.dumps(entries))
    with pytest.raises(VLBenchError, match="1 image.* no caption.*img0.jpg"):
        TASK_KINDS.get("retrieval")().load(Catalog.load().load_task("mscoco"), RunContext(tmp_path, None))  # type: ignore[arg-type]


def test_annotation_without_a_needed_field_is_a_clear_error(tmp_path):
    from vlbench.kinds import TASK_KINDS

    write_karpathy(tmp_path / "coco", "dataset_coco.json")
    annotation = tmp_path / "coco" / "dataset_coco.json"
    entries = json.loads(annotation.read_text())
    del entries["images"][0]["filename"]
    annotation.write_text(json.dumps(entries))
    with pytest.raises(VLBenchError, match=r"mscoco.*does not match the karpathy layout \(KeyError: 'filename'\)"):
        TASK_KINDS.get("retrieval")().load(Catalog.load().load_task("mscoco"), RunContext(tmp_path, None))  # type: ignore[arg-type]


def test_hf_retrieval_reader(tmp_path):
    import datasets

    rows = {"image": [color_image("red"), color_image("blue")], "caption": [["a red one", "red"], ["blue"]]}
    datasets.Dataset.from_dict(rows, features=datasets.Features({"image": datasets.Image(), "caption": datasets.Sequence(datasets.Value("string"))})).save_to_disk(str(tmp_path / "d"))
    data = HFRetrievalReader().read(str(tmp_path / "d"), source_options(HFRetrievalReader, {}), NO_SPEC, None)
    assert data.captions == [["a red one", "red"], ["blue"]]
    assert data.flat_captions() == (["a red one", "red", "blue"], [0, 0, 1])


def test_wds_classification_layout(tmp_path):
    samples = [{"__key__": f"s{i:04d}", "webp": encoded(color_image(c, seed=i), "WEBP"), "cls": str(label)}
               for i, (c, label) in enumerate([("red", 0), ("green", 1), ("blue", 2), ("red", 0), ("blue", 2)])]
    write_wds(tmp_path / "wds_colors", samples)
    (tmp_path / "wds_colors" / "classnames.txt").write_text("red\ngreen\nblue\n")
    (tmp_path / "wds_colors" / "zeroshot_classification_templates.txt").write_text("a {c} photo.\n")
    reader = WdsClassificationReader()
    assert reader.exists(tmp_path / "wds_colors", source_options(reader, {"split": "test"}))
    data = reader.read(str(tmp_path / "wds_colors"), source_options(reader, {"split": "test"}), None, None)
    assert data.labels == [0, 1, 2, 0, 2]
    assert data.classnames == ["red", "green", "blue"] and data.templates == ["a {c} photo."]
    pixel = np.asarray(data.images[2].load())[5, 5]
    assert pixel[2] > 150 and pixel[0] < 100


def test_wds_retrieval_captions_one_per_line(tmp_path):
    samples = [{"__key__": "a", "jpg": encoded(color_image("red"), "JPEG"), "txt": "a red picture\nred again\n"},
               {"__key__": "b", "png": encoded(color_image("blue")), "txt": "blue"}]
    write_wds(tmp_path / "w", samples)
    data = WdsRetrievalReader().read(str(tmp_path / "w"), source_options(WdsRetrievalReader, {"split": "test"}), None, None)
    assert data.captions == [["a red picture", "red again"], ["blue"]]


@pytest.mark.parametrize("images_dir, with_filepath", [("", True), ("flickr30k-images", False)])
def test_karpathy_split(tmp_path, images_dir, with_filepath):
    captions = write_karpathy(tmp_path, "dataset.json", images_dir, with_filepath)
    source = {"annotation": "dataset.json", "images_dir": images_dir, "split": "test"}
    data = KarpathyReader().read(str(tmp_path), source_options(KarpathyReader, source), None, None)
    assert data.captions == captions  # raw captions, exactly as in the file
    assert len(data.images) == 3 and data.images[0].load().size == (40, 40)


def test_karpathy_missing_image_names_the_file(tmp_path):
    write_karpathy(tmp_path, "dataset.json")
    (tmp_path / "val2014" / "img2.jpg").unlink()
    with pytest.raises(VLBenchError, match="img2.jpg"):
        KarpathyReader().read(str(tmp_path), source_options(KarpathyReader, {"annotation": "dataset.json", "split": "test"}), None, None)


def test_generic_hf_task_takes_a_folder_columns_and_split_from_the_command_line(tmp_path):
    from vlbench.kinds import TASK_KINDS

    dataset = _hf_dataset(tmp_path)
    dataset.save_to_disk(str(tmp_path / "saved"))
    overrides = {"dataset.path": str(tmp_path / "saved"), "dataset.image_key": "img"}
    spec = Catalog.load().load_task("hf_classification", overrides)
    kind = TASK_KINDS.get("classification")()
    data, located = kind.load(spec, RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert located.source["image_key"] == "img" and data.labels == [0, 1, 0]
    hub = kind.locate(Catalog.load().load_task("hf_classification", {"dataset.path": "hf:org/name"}), tmp_path)
    assert hub.location == "hf:org/name" and hub.source["format"] == "hf"


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path):
    from vlbench.kinds import TASK_KINDS

    spec = Catalog.load().load_task("cifar10")
    with pytest.raises(DatasetNotFoundError) as info:
        TASK_KINDS.get("classification")().locate(spec, tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar10") in message and str(tmp_path / "wds_cifar10") in message
    assert "cifar-10-python.tar.gz" in message and "--hf-hub" in message


def test_the_shapes_world_makes_what_its_version_pins():
    """Shapes results and cached scene embeddings are keyed by GENERATOR_VERSION, not by the code's text:
    the output of the version is pinned, so changing it without a bump fails here."""
    from shapes_output import GOLDEN, shapes_output

    from vlbench.datasets.shapes import GENERATOR_VERSION

    golden = json.loads(GOLDEN.read_text())
    assert golden["generator_version"] == GENERATOR_VERSION, "GENERATOR_VERSION changed: run 'python tests/shapes_output.py'"
    assert shapes_output() == golden["tasks"], (
        "the shapes world makes different scenes, captions or labels: bump vlbench.datasets.shapes.GENERATOR_VERSION "
        "(results and cached embeddings of shapes tasks are keyed by it), then run 'python tests/shapes_output.py'")


def test_the_shapes_pin_sees_a_changed_colour_and_the_version_is_the_tasks_input(monkeypatch):
    from shapes_output import shapes_output

    from vlbench.datasets import shapes
    from vlbench.stamps import describe_inputs

    before = shapes_output()
    monkeypatch.setitem(shapes.COLORS, "red", (216, 40, 40))
    after = shapes_output()
    assert all(after[task] != before[task] for task in before)
    versioned = describe_inputs(shapes.GeneratedReader().inputs(None, None, None))
    monkeypatch.setattr(shapes, "GENERATOR_VERSION", "2")
    assert describe_inputs(shapes.GeneratedReader().inputs(None, None, None))["digest"] != versioned["digest"]
    assert versioned["files"] == {"generated:shapes": "version:1"}
