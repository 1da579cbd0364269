"""CLIP_benchmark / DataComp tasks: wds-first prompts precedence, class subsets, languages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_fixtures import color_image, encoded, write_imagefolder, write_wds
from vlbench.catalog import Catalog
from vlbench.datasets.classification import ClassificationData, ImageFolderReader, WdsClassificationReader
from vlbench.errors import TaskSpecError
from vlbench.kinds.classification import choose_prompts
from vlbench.specs import load_task_file


def task_file(folder: Path, text: str, **files: list[str]) -> Path:
    for name, lines in files.items():
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    path = folder / "t.yaml"
    path.write_text("kind: classification\nversion: 1\nmetrics: [acc1]\nmain_metric: acc1\n" + text)
    return path


def wds_colors(root: Path, labels=(0, 1, 2), metadata=None) -> None:
    names = ["red", "green", "blue"]
    samples = []
    for i, label in enumerate(labels):
        sample = {"__key__": f"s{i:07d}", "webp": encoded(color_image(names[label], seed=i), "WEBP"), "cls": str(label)}
        if metadata is not None:
            buffer = __import__("io").BytesIO()
            np.save(buffer, np.asarray(metadata[i]))
            sample["npy"] = buffer.getvalue()
        samples.append(sample)
    write_wds(root, samples)


def test_a_wds_folders_own_names_and_templates_win_over_packaged_ones_but_not_over_set(tmp_path):
    wds_colors(tmp_path / "w")
    (tmp_path / "w" / "classnames.txt").write_text(" rouge\nvert \nbleu\n")  # stripped, as CLIP_benchmark does
    (tmp_path / "w" / "zeroshot_classification_templates.txt").write_text("une photo de {c}.\n")
    path = task_file(tmp_path, "dataset: {sources: [{format: wds, path: w}]}\nfiles: {classnames: classnames.txt, templates: templates.txt}\n",
                     classnames=["red", "green", "blue"], templates=["a {c}."])
    data = WdsClassificationReader().read(str(tmp_path / "w"), {"split": "test"}, None, None)
    spec = load_task_file(path)
    assert choose_prompts(spec, data, "classnames") == (["rouge", "vert", "bleu"], "dataset folder")
    assert choose_prompts(spec, data, "templates") == (["une photo de {c}."], "dataset folder")
    custom = tmp_path / "custom.txt"
    custom.write_text("r\ng\nb\n")
    spec = load_task_file(path, {"files.classnames": str(custom)})
    assert choose_prompts(spec, data, "classnames") == (["r", "g", "b"], "--set")
    assert choose_prompts(spec, data, "templates")[1] == "dataset folder"
    # without the folder's files, the packaged ones are used; a task can also prefer its own
    bare = ClassificationData(data.images, data.labels, own_prompts=True)
    assert choose_prompts(load_task_file(path), bare, "classnames") == (["red", "green", "blue"], "task file")
    spec = load_task_file(path, {"protocol.dataset_prompts": False})
    assert choose_prompts(spec, data, "classnames") == (["red", "green", "blue"], "task file")


def test_class_subset_selects_packaged_names_by_id_and_imagefolder_reads_only_those_folders(tmp_path):
    write_imagefolder(tmp_path / "images")  # blue, green, red folders
    (tmp_path / "images" / "yellow").mkdir()  # a class outside the subset, like ObjectNet's extra folders
    color_image("red").save(tmp_path / "images" / "yellow" / "x.png")
    path = task_file(tmp_path, "dataset: {sources: [{format: imagefolder, path: images}]}\n"
                     "files: {classnames: names.txt, class_ids: ids.txt, class_subset: subset.txt}\n",
                     names=["Blue", "Cyan", "Green", "Red", "Yellow"], ids=["blue", "cyan", "green", "red", "yellow"],
                     subset=["red", "green", "blue"])
    spec = load_task_file(path)
    data = ImageFolderReader().read(str(tmp_path / "images"), {}, spec, None)
    assert sorted(set(data.labels)) == [0, 1, 2] and len(data.images) == 6
    assert choose_prompts(spec, data, "classnames") == (["Blue", "Green", "Red"], "task file")


def test_wds_npy_member_is_the_metadata_row(tmp_path):
    wds_colors(tmp_path / "w", labels=(0, 1, 2, 0), metadata=[[3, 0, 1], [1, 1, 0], [3, 2, 0], [0, 0, 0]])
    data = WdsClassificationReader().read(str(tmp_path / "w"), {"split": "test"}, None, None)
    assert data.metadata == [[3, 0, 1], [1, 1, 0], [3, 2, 0], [0, 0, 0]]
    assert data.limited(2).metadata == [[3, 0, 1], [1, 1, 0]]


def test_language_picks_the_files_of_one_language(tmp_path):
    for lang, name in (("en", "cat"), ("it", "gatto")):
        (tmp_path / f"names_{lang}.txt").write_text(name + "\n")
    path = task_file(tmp_path, "languages: [en, it]\ndataset: {sources: [{format: wds, path: 'w_{language}'}]}\n"
                     "files: {classnames: 'names_{language}.txt'}\n")
    assert load_task_file(path).read_lines("classnames") == ["cat"]
    spec = load_task_file(path, {"language": "it"})
    assert spec.read_lines("classnames") == ["gatto"] and spec.dataset["sources"][0]["path"] == "w_it"
    with pytest.raises(TaskSpecError, match="not one of this task's languages: en, it"):
        load_task_file(path, {"language": "xx"})
    other = load_task_file(Catalog.load().tasks["cifar10"], {"language": "it"})  # no languages: ignored
    assert "language" not in other.config
