"""CLIP_benchmark / DataComp tasks: wds-first prompts precedence, class subsets, languages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_fixtures import color_image, encoded, source_options, write_imagefolder, write_wds
from vlbench.spec.catalog import Catalog
from vlbench.datasets.classification import ClassificationData, ImageFolderReader, WdsClassificationReader
from vlbench.errors import TaskSpecError
from vlbench.kinds.classification import choose_prompts
from vlbench.spec.checking import load_task_file


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
    data = WdsClassificationReader().read(str(tmp_path / "w"), source_options(WdsClassificationReader, {"split": "test"}), None, None)
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
    data = ImageFolderReader().read(str(tmp_path / "images"), source_options(ImageFolderReader, {}), spec, None)
    assert sorted(set(data.labels)) == [0, 1, 2] and len(data.images) == 6
    assert choose_prompts(spec, data, "classnames") == (["Blue", "Green", "Red"], "task file")


def test_wds_npy_member_is_the_metadata_row(tmp_path):
    wds_colors(tmp_path / "w", labels=(0, 1, 2, 0), metadata=[[3, 0, 1], [1, 1, 0], [3, 2, 0], [0, 0, 0]])
    data = WdsClassificationReader().read(str(tmp_path / "w"), source_options(WdsClassificationReader, {"split": "test"}), None, None)
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


# -- metrics -------------------------------------------------------------------------------------

def test_average_precision_by_hand_and_0_for_a_class_without_positives():
    from vlbench.metrics import average_precision_per_class

    # positives at ranks 2, 3, 6 (scikit-learn's average_precision_score: 0.5556 too)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])[:, None]
    targets = np.array([0, 1, 1, 0, 0, 1])[:, None]
    assert average_precision_per_class(scores, targets)[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 6) / 3)
    # by hand: ranks 1..4 hold [pos, neg, pos, neg] -> (1/1 + 2/3) / 2; the second class has no positive
    hand = average_precision_per_class(np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]), np.array([[1, 0], [0, 0], [1, 0], [0, 0]]))
    assert hand.tolist() == pytest.approx([(1 + 2 / 3) / 2, 0.0])


def test_worst_group_and_macro_f1_as_datacomp_reports_them():
    catalog = Catalog.load()
    from vlbench.kinds import TASK_KINDS

    kind = TASK_KINDS.get("classification")()
    # FMoW metadata rows [region, year, y]: region 1 is 2/3 right, region 4 2/2; year 1 is 1/2
    rows = [([0, 1, 2, 3, 4], 0, [1, 0, 0]), ([1, 0, 2, 3, 4], 0, [1, 1, 0]), ([2, 0, 1, 3, 4], 2, [1, 2, 0]),
            ([3, 0, 1, 2, 4], 3, [4, 0, 0]), ([1, 0, 2, 3, 4], 1, [4, 1, 0])]
    records = [{"label": label, "top": top, "meta": meta} for top, label, meta in rows]
    result = kind.score(records, catalog.load_task("wilds-fmow"))
    assert result["acc_worst_region"] == pytest.approx(2 / 3) and result["acc_worst_year"] == pytest.approx(1 / 2)
    assert result["acc1"] == pytest.approx(4 / 5)
    result = kind.score(records, catalog.load_task("dollar_street"))  # top-5 over column 0: all hits
    assert result["acc_top5_wg"] == 1.0
    # iWildCam: macro F1 over the labels present; labels 0 0 2 3 1, predictions 0 1 2 3 1
    result = kind.score(records, catalog.load_task("wilds-iwildcam"))
    # per label: 0 -> p=1, r=1/2 (2/3); 1 -> p=1/2, r=1 (2/3); 2 -> 1; 3 -> 1
    assert result["F1-macro_all"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 1) / 4)
    assert result["recall-macro_all"] == pytest.approx((1 / 2 + 1 + 1 + 1) / 4)


def test_winogavil_jaccard_of_the_top_k_pick():
    from vlbench.kinds.association import AssociationKind, cue_prompt, jaccard_of_pick

    assert cue_prompt("Apple") == "An apple" and cue_prompt("tree") == "A tree"
    assert jaccard_of_pick([0.1, 0.9, 0.8, 0.2, 0.3], [1, 3]) == pytest.approx(1 / 3)  # pick {1, 2}
    assert jaccard_of_pick([0.5, 0.4, 0.3, 0.2, 0.1, 0.0], [0, 1, 2]) == 1.0
    records = [{"scores": [0.1, 0.9, 0.8, 0.2, 0.3], "positives": [1, 3]}, {"scores": list(range(10)), "positives": [9, 8]},
               {"scores": list(range(12)), "positives": [0, 11]}]
    result = AssociationKind().score(records, Catalog.load().load_task("winogavil"))
    assert result["jaccard_score_10-12"] == pytest.approx((1 + 1 / 3) / 2) and result["jaccard_score_5-6"] == pytest.approx(1 / 3)
    assert result["avg_jaccard_score"] == pytest.approx((1 / 3 + 1 + 1 / 3) / 3) and np.isnan(result["jaccard_score_6"])


# -- suites --------------------------------------------------------------------------------------

# DataComp's display names (tasklist.yml "name") -> vlbench tasks; its aggregate_scores.py groups.
DATACOMP_NAMES = {
    "Caltech-101": "vtab-caltech101", "CIFAR-10": "cifar10", "CIFAR-100": "vtab-cifar100", "CLEVR Counts": "vtab-clevr_count_all",
    "CLEVR Distance": "vtab-clevr_closest_object_distance", "Country211": "country211", "Describable Textures": "vtab-dtd",
    "EuroSAT": "vtab-eurosat", "FGVC Aircraft": "fgvc_aircraft", "Food-101": "food101", "GTSRB": "gtsrb", "ImageNet 1k": "imagenet1k",
    "ImageNet Sketch": "imagenet_sketch", "ImageNet v2": "imagenetv2", "ImageNet-A": "imagenet-a", "ImageNet-O": "imagenet-o",
    "ImageNet-R": "imagenet-r", "KITTI Vehicle Distance": "vtab-kitti_closest_vehicle_distance", "MNIST": "mnist", "ObjectNet": "objectnet",
    "Oxford Flowers-102": "vtab-flowers", "Oxford-IIIT Pet": "vtab-pets", "Pascal VOC 2007": "voc2007", "PatchCamelyon": "vtab-pcam",
    "Rendered SST2": "renderedsst2", "RESISC45": "vtab-resisc45", "Stanford Cars": "cars", "STL-10": "stl10", "SUN397": "sun397",
    "SVHN": "vtab-svhn", "Flickr": "flickr30k", "MSCOCO": "mscoco", "WinoGAViL": "winogavil", "iWildCam": "wilds-iwildcam",
    "Camelyon17": "wilds-camelyon17", "FMoW": "wilds-fmow", "Dollar Street": "dollar_street", "GeoDE": "geode",
}
DATACOMP_NAMES = {name: f"datacomp-{task}" for name, task in DATACOMP_NAMES.items()}  # the tasks as DataComp runs them
DATACOMP_GROUPS = {
    "datacomp_imagenet_robustness": {"ImageNet Sketch", "ImageNet v2", "ImageNet-A", "ImageNet-O", "ImageNet-R", "ObjectNet"},
    "datacomp_vtab": {"Caltech-101", "CIFAR-100", "CLEVR Counts", "CLEVR Distance", "Describable Textures", "EuroSAT",
                      "KITTI Vehicle Distance", "Oxford Flowers-102", "Oxford-IIIT Pet", "PatchCamelyon", "RESISC45", "SVHN", "SUN397"},
    "datacomp_retrieval": {"Flickr", "MSCOCO", "WinoGAViL"},
}
DATACOMP_MAIN = {"Caltech-101": "mean_per_class_recall", "FGVC Aircraft": "mean_per_class_recall", "Oxford Flowers-102": "mean_per_class_recall",
                 "Oxford-IIIT Pet": "mean_per_class_recall", "Flickr": "mean_recall@1", "MSCOCO": "mean_recall@1",
                 "WinoGAViL": "jaccard_score_10-12", "iWildCam": "F1-macro_all", "FMoW": "acc_worst_region",
                 "Dollar Street": "acc_top5_wg", "GeoDE": "acc_wg"}


def test_datacomp_suite_aggregates_equal_datacomps_definitions():
    from vlbench.results.selection import Entry, suite_value

    catalog = Catalog.load()
    assert len(DATACOMP_NAMES) == 38 and sorted(catalog.suite_tasks("datacomp")) == sorted(DATACOMP_NAMES.values())
    for name, task in DATACOMP_NAMES.items():
        assert catalog.load_task(task).main_metric == DATACOMP_MAIN.get(name, "acc1"), name
    rng = np.random.default_rng(1)
    results = {name: float(rng.uniform()) for name in DATACOMP_NAMES}  # a hand-made DataComp results file
    entries = {DATACOMP_NAMES[name]: Entry(value, 100) for name, value in results.items()}
    assert suite_value(catalog, "datacomp", entries) == pytest.approx(np.mean(list(results.values())), abs=1e-12)
    for suite, names in DATACOMP_GROUPS.items():
        assert suite_value(catalog, suite, entries) == pytest.approx(np.mean([results[n] for n in names]), abs=1e-12), suite
    del entries["datacomp-geode"]
    assert np.isnan(suite_value(catalog, "datacomp", entries))  # DataComp needs all 38


def test_standard_suites_resolve_and_run_skip_missing_reports_every_member(tmp_path):
    from typer.testing import CliRunner

    from vlbench.cli import app

    catalog = Catalog.load()
    for suite in ("clip_benchmark", "vtab", "imagenet_robustness", "multilingual_retrieval", "clip_benchmark_multilingual"):
        for task in catalog.suite_tasks(suite):
            catalog.load_task(task)
    assert len(catalog.suite_tasks("clip_benchmark")) == 41 and len(catalog.suite_tasks("vtab")) == 19
    result = CliRunner().invoke(app, ["run", "--tasks", "datacomp", "--skip-missing", "--data-root", str(tmp_path),
                                      "--output", str(tmp_path / "results")], env={"COLUMNS": "200"})
    # every member resolves and is reported missing; with nothing to run the command says so and fails
    assert result.exit_code == 2 and "nothing ran" in result.output, result.output
    assert all(task in result.output for task in DATACOMP_NAMES.values())
    assert result.output.count("no data") == 38


# -- end to end on generated webdatasets ---------------------------------------------------------

def npy_bytes(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def test_multilabel_and_worst_group_tasks_run_on_generated_webdatasets(tmp_path):
    from typer.testing import CliRunner

    from vlbench.cli import app
    from vlbench.results.schema import scan

    names = ["red", "green", "blue"]
    data = tmp_path / "data"
    # VOC2007 multilabel: 20-class 0/1 vectors, the folder's own class names and templates
    voc = [{"__key__": f"s{i:07d}", "webp": encoded(color_image(names[i % 3], seed=i), "WEBP"),
            "npy": npy_bytes(np.eye(20, dtype=np.float32)[i % 20] + np.eye(20, dtype=np.float32)[(3 * i) % 20])} for i in range(6)]
    write_wds(data / "wds_voc2007_multilabel", voc)
    (data / "wds_voc2007_multilabel" / "classnames.txt").write_text("\n".join(f"object {c}" for c in range(20)) + "\n")
    (data / "wds_voc2007_multilabel" / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    (data / "wds_voc2007_multilabel" / "dataset_type.txt").write_text("multilabel\n")
    # FMoW in DataComp's folder name, metadata rows [region, year, y]
    write_wds(data / "wds_wilds-fmow_test", [{"__key__": f"s{i}", "png": encoded(color_image(names[i % 3], seed=i)), "cls": str(i % 3),
                                              "npy": npy_bytes([i % 2, i % 3, i % 3])} for i in range(6)])
    (data / "wds_wilds-fmow_test" / "classnames.txt").write_text("\n".join(names) + "\n")
    (data / "wds_wilds-fmow_test" / "zeroshot_classification_templates.txt").write_text("a {c} satellite photo.\n")
    result = CliRunner().invoke(app, ["run", "--model", "openclip:vlbench-tiny@random", "--tasks", "voc2007_multilabel,wilds-fmow",
                                      "--data-root", str(data), "--output", str(tmp_path / "results"), "--device", "cpu",
                                      "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    found = {r.task.name: r.to_json() for _, r in scan(tmp_path / "results")}
    assert set(found) == {"voc2007_multilabel", "wilds-fmow"}
    fmow = found["wilds-fmow"]["task"]
    metrics = found["wilds-fmow"]["metrics"]
    assert found["wilds-fmow"]["main_metric"] == "acc_worst_region" and 0 <= metrics["acc_worst_region"] <= metrics["acc1"]
    assert fmow["protocol_used"]["prompts"] == {"classnames": "dataset folder", "templates": "dataset folder"}
    assert 0 <= found["voc2007_multilabel"]["metrics"]["mean_average_precision"] <= 1


def test_hf_hub_downloads_a_missing_webdataset_mirror_into_the_data_root(tmp_path, monkeypatch):
    import huggingface_hub

    from vlbench.kinds import TASK_KINDS
    from vlbench.kinds.base import RunContext

    calls = []

    def fake_snapshot_download(repo_id, repo_type, local_dir, allow_patterns):
        calls.append((repo_id, repo_type, Path(local_dir), allow_patterns))
        wds_colors(Path(local_dir))
        (Path(local_dir) / "classnames.txt").write_text("red\ngreen\nblue\n")
        return local_dir

    from vlbench import hub_access

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(hub_access, "offline_by_setting", lambda: False)  # a Hub to download from
    monkeypatch.setattr(hub_access, "hub_reachable", lambda: True)
    spec = Catalog.load().load_task("vtab-pets")
    kind = TASK_KINDS.get("classification")()
    with pytest.raises(Exception, match="pass --hf-hub|wds layout at"):
        kind.locate(spec, tmp_path)  # without --hf-hub nothing is downloaded
    data, located = kind.load(spec, RunContext(tmp_path, None, allow_hub=True))  # type: ignore[arg-type]
    assert calls == [("clip-benchmark/wds_vtab-pets", "dataset", tmp_path / "wds_vtab-pets", ["test/*", "*.txt"])]
    assert located.location == str(tmp_path / "wds_vtab-pets") and data.classnames == ["red", "green", "blue"]
    kind.load(spec, RunContext(tmp_path, None, allow_hub=True))  # present now: no second download
    assert len(calls) == 1


def test_multilingual_caption_file_reader(tmp_path):
    import json

    from vlbench.kinds import TASK_KINDS
    from vlbench.kinds.base import RunContext

    root = tmp_path / "xtd10"
    (root / "xtd10" / "images").mkdir(parents=True)
    for i, name in enumerate(("red", "blue")):
        color_image(name).save(root / "xtd10" / "images" / f"{i}.jpg")
    paths = ["/elsewhere/xtd10/images/0.jpg", "xtd10/images/1.jpg"]  # as written on another machine, and relative
    (root / "xtd10-it.json").write_text(json.dumps({"image_paths": paths, "annotations": ["un rosso", "un blu"]}))
    spec = Catalog.load().load_task("xtd10", {"language": "it"})
    data, _ = TASK_KINDS.get("retrieval")().load(spec, RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert data.captions == [["un rosso"], ["un blu"]] and data.images[0].path == str(root / "xtd10" / "images" / "0.jpg")


def test_objectnet_reads_only_the_classes_that_map_to_imagenet(tmp_path):
    import json

    root = tmp_path / "objectnet"
    mappings = root / "objectnet-1.0" / "mappings"
    mappings.mkdir(parents=True)
    folders = {"z_pan": "Frying Pan", "a_mug": "Mug", "m_sock": "Sock"}  # the sock maps to no ImageNet class
    (mappings / "folder_to_objectnet_label.json").write_text(json.dumps(folders))
    (mappings / "objectnet_to_imagenet_1k.json").write_text(json.dumps({"Frying Pan": "frying pan", "Mug": "coffee mug; cup"}))
    for folder in folders:
        (root / "objectnet-1.0" / "images" / folder).mkdir(parents=True)
        for i in range(2):
            color_image("red", seed=i).save(root / "objectnet-1.0" / "images" / folder / f"{i}.png")
    from vlbench.datasets.classification import ObjectNetReader

    assert ObjectNetReader().exists(root, source_options(ObjectNetReader, {}))
    data = ObjectNetReader().read(str(root), source_options(ObjectNetReader, {}), None, None)
    assert data.classnames == ["mug", "frying pan"] and data.labels == [0, 0, 1, 1]
    assert all("m_sock" not in ref.path for ref in data.images)


def test_torchvision_layout_mnist(tmp_path):
    import struct

    from vlbench.kinds import TASK_KINDS
    from vlbench.kinds.base import RunContext

    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 255, (3, 28, 28), dtype=np.uint8)
    (raw / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 3, 28, 28) + pixels.tobytes())
    (raw / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 3) + bytes([7, 0, 3]))
    (raw / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 1, 28, 28) + bytes(784))  # torchvision checks both splits
    (raw / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 1) + bytes([1]))
    spec = Catalog.load().load_task("mnist")
    data, located = TASK_KINDS.get("classification")().load(spec, RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert located.source["format"] == "torchvision" and data.labels == [7, 0, 3]
    assert np.array_equal(np.asarray(data.images[1].load())[..., 0], pixels[1])
    assert data.classnames[0] == "0 - zero"  # torchvision's names; the packaged CLIP_benchmark list wins over them
    assert choose_prompts(spec, data, "classnames") == ([str(d) for d in range(10)], "task file")


def test_winogavil_reader_on_a_saved_hugging_face_copy(tmp_path):
    import datasets

    from vlbench.datasets.association import WinoGavilReader

    features = datasets.Features({"candidate_images": datasets.Sequence(datasets.Image()), "candidates": datasets.Sequence(datasets.Value("string")),
                                  "associations": datasets.Sequence(datasets.Value("string")), "cue": datasets.Value("string")})
    rows = {"candidate_images": [[color_image(c, seed=i) for i, c in enumerate(("red", "green", "blue", "red", "blue"))]],
            "candidates": [["apple", "leaf", "sea", "fire", "sky"]], "associations": [["sky", "sea"]], "cue": ["Ocean"]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "winogavil"))
    data = WinoGavilReader().read(str(tmp_path / "winogavil"), source_options(WinoGavilReader, {"split": "test"}), None, None)
    (instance,) = data.instances
    assert instance.cue == "Ocean" and instance.positives == [2, 4] and len(instance.images) == 5
    assert np.asarray(instance.images[2].load())[3, 3, 2] > 150  # the blue one


def test_language_option_reaches_multilingual_tasks_and_a_bad_code_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from vlbench.cli import app

    common = ["run", "--tasks", "clip_benchmark_multilingual", "--skip-missing", "--data-root", str(tmp_path), "--output", str(tmp_path / "r")]
    result = CliRunner().invoke(app, [*common, "--language", "it"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and result.output.count("no data") == 2 and "nothing ran" in result.output, result.output
    result = CliRunner().invoke(app, [*common, "--language", "xx"], env={"COLUMNS": "200"})
    assert result.exit_code != 0 and "'xx' is not one of this task's languages" in result.output and "Traceback" not in result.output
