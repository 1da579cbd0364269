"""Compositionality benchmarks: official rules (ties, macro/micro), loaders on real files, ARO order."""

import json
import random

import numpy as np
import pytest
from selection_fixtures import (
    SUGARCREPE_COUNTS,
    WordListTagger,
    sugarcrepe_data_root,
    write_aro_order,
    write_aro_vg,
    write_winoground,
)

from data_fixtures import source_options

from vlbench.spec.catalog import Catalog
from vlbench.datasets.aro_order import TAGGERS, OrderPerturber, pre_caption
from vlbench.datasets.selection import (
    AroOrderReader,
    AroVisualGenomeReader,
    SugarCrepeReader,
    WinogroundReader,
)
from vlbench.errors import VLBenchError
from vlbench.kinds.base import RunContext
from vlbench.kinds.selection import (
    SelectionKind,
    argmax_rule,
    strict_rule,
    winoground_rule,
)
from vlbench.spec.taskfile import TaskSpec

TAGGERS.add("word-lists", WordListTagger, replace=True)


def spec(metrics, protocol, files=None, name="t"):
    return TaskSpec(name, "selection", None, {"metrics": metrics, "main_metric": metrics[0], "protocol": protocol, "files": files or {}})  # type: ignore[arg-type]


# -- rules and metrics against hand-computed values ---------------------------------------------
def test_argmax_rule_ties_go_to_the_first_option():
    assert argmax_rule([[0.3, 0.3]], 1) == {"correct": False}  # ARO VG: true caption at 1, tie is wrong
    assert argmax_rule([[0.3, 0.3, 0.1]], 0) == {"correct": True}  # ARO Order: original at 0, tie is right
    assert argmax_rule([[0.2, 0.4, 0.3]], 1) == {"correct": True}


def test_strict_rule_counts_ties_as_wrong():
    assert strict_rule([[0.5, 0.5]], 0) == {"correct": False}
    assert strict_rule([[0.5, 0.4999]], 0) == {"correct": True}
    assert strict_rule([[0.1, 0.5, 0.2]], 1) == {"correct": True}


def test_winoground_scores_by_hand():
    # scores[i][c]: image i, caption c
    assert winoground_rule([[0.9, 0.1], [0.2, 0.8]], None) == {"text": True, "image": True, "group": True}
    # image 1 prefers caption 0 (0.95 > 0.8): text fails; each caption still prefers its own image? c1: 0.8 > 0.1 yes; c0: 0.9 > 0.95 no
    assert winoground_rule([[0.9, 0.1], [0.95, 0.8]], None) == {"text": False, "image": False, "group": False}
    # text holds, image fails: c0 scores image 1 higher (0.6 > 0.5)
    assert winoground_rule([[0.5, 0.4], [0.6, 0.7]], None) == {"text": True, "image": False, "group": False}
    # exact ties are failures (strict inequalities)
    assert winoground_rule([[0.5, 0.5], [0.1, 0.9]], None)["text"] is False


def test_macro_accuracy_excludes_listed_groups_and_small_groups(tmp_path):
    excluded = tmp_path / "excluded.txt"
    excluded.write_text("near\n")
    records = (
        [{"scores": [[0.1, 0.9]], "answer": 1, "group": "on"}] * 3  # on: 3/3
        + [{"scores": [[0.9, 0.1]], "answer": 1, "group": "on"}]  # on: 3/4
        + [{"scores": [[0.9, 0.1]], "answer": 1, "group": "behind"}] * 2  # behind: 0/2
        + [{"scores": [[0.1, 0.9]], "answer": 1, "group": "near"}] * 5  # excluded
    )
    result = SelectionKind().score(records, spec(["macro_accuracy", "accuracy"], {"rule": "argmax"}, {"excluded_groups": str(excluded)}))
    assert result["accuracy"] == pytest.approx(8 / 11)  # micro: every item, excluded groups included
    assert result["macro_accuracy"] == pytest.approx((3 / 4 + 0) / 2)
    assert result["accuracy/on"] == 0.75 and result["accuracy/behind"] == 0.0 and "accuracy/near" not in result
    with_min = SelectionKind().score(records, spec(["macro_accuracy"], {"rule": "argmax", "min_group_count": 3}, {"excluded_groups": str(excluded)}))
    assert with_min["macro_accuracy"] == pytest.approx(3 / 4)  # 'behind' has only 2 items


def test_winoground_breakdown_by_tag():
    records = [
        {"scores": [[0.9, 0.1], [0.2, 0.8]], "group": "Object"},
        {"scores": [[0.5, 0.4], [0.6, 0.7]], "group": "Object"},
        {"scores": [[0.1, 0.9], [0.9, 0.1]], "group": "Relation"},
    ]
    result = SelectionKind().score(records, spec(["group_score", "text_score", "image_score"], {"rule": "winoground", "breakdown": "collapsed_tag"}))
    assert result["text_score"] == pytest.approx(2 / 3) and result["image_score"] == pytest.approx(1 / 3)
    assert result["group_score"] == pytest.approx(1 / 3)
    assert result["group_score/Object"] == pytest.approx(1 / 2) and result["text_score/Relation"] == 0.0


def test_rule_and_metrics_must_match(tmp_path):
    task = tmp_path / "t.yaml"
    task.write_text("task: t\nkind: selection\nversion: 1\ndataset: {sources: [{format: shapes, variant: relation_swap, seed: 1, n: 2}]}\n"
                    "protocol: {rule: strict}\nmetrics: [group_score]\nmain_metric: group_score\n")
    from vlbench.errors import TaskSpecError
    from vlbench.spec.checking import load_task_file

    with pytest.raises(TaskSpecError, match="does not go with rule 'strict'"):
        load_task_file(task)


# -- loaders ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sugarcrepe_root(tmp_path_factory):
    return sugarcrepe_data_root(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("subset, count", sorted(SUGARCREPE_COUNTS.items()))
def test_sugarcrepe_loader_on_the_real_files(sugarcrepe_root, subset, count):
    spec_ = Catalog.load().load_task(f"sugarcrepe_{subset}")
    ctx = RunContext(data_root=sugarcrepe_root, encoder=None)  # type: ignore[arg-type]
    data, located = SelectionKind().load(spec_, ctx)
    assert len(data.instances) == count
    raw = json.loads((sugarcrepe_root / "sugarcrepe" / f"{subset}.json").read_text())
    assert [i.id for i in data.instances] == list(raw)  # file order, keys as they are
    for instance, item in zip(data.instances, raw.values()):
        assert instance.captions == [item["caption"], item["negative_caption"]]  # byte for byte
        assert instance.images[0].path.endswith(item["filename"])
    if subset == "swap_obj":
        assert "108" not in [i.id for i in data.instances]


def test_sugarcrepe_captions_keep_stray_whitespace(sugarcrepe_root):
    data = SugarCrepeReader().read(str(sugarcrepe_root / "sugarcrepe"), source_options(SugarCrepeReader, {"annotation": "add_obj.json", "images": "coco/val2017"}),
                                   Catalog.load().load_task("sugarcrepe_add_obj"), RunContext(sugarcrepe_root, None))  # type: ignore[arg-type]
    captions = [i.captions[0] for i in data.instances]
    assert any(c != c.strip() for c in captions) and any("\n" in c for c in captions)


def test_sugarcrepe_missing_images_is_a_clear_error(tmp_path):
    (tmp_path / "sugarcrepe").mkdir()
    (tmp_path / "sugarcrepe" / "x.json").write_text(json.dumps({"0": {"filename": "000000000001.jpg", "caption": "a", "negative_caption": "b"}}))
    with pytest.raises(VLBenchError, match="1 image.*000000000001.jpg.*COCO 2017"):
        SugarCrepeReader().read(str(tmp_path / "sugarcrepe"), source_options(SugarCrepeReader, {"annotation": "x.json", "images": "coco/val2017"}),
                                TaskSpec("x", "selection", None, {"dataset": {}}), RunContext(tmp_path, None))  # type: ignore[arg-type]


def test_aro_vg_crops_and_groups(tmp_path):
    items = write_aro_vg(tmp_path)
    spec_ = Catalog.load().load_task("aro_vg_relation")
    data = AroVisualGenomeReader().read(str(tmp_path / "aro"), source_options(AroVisualGenomeReader, {"annotation": "visual_genome_relation.json", "group_by": "relation"}), spec_, RunContext(tmp_path, None))  # type: ignore[arg-type]
    first = data.instances[0]
    assert first.captions == [items["relation"][0]["false_caption"], items["relation"][0]["true_caption"]] and first.answer == 1
    assert [i.group for i in data.instances] == ["on", "on", "near", "behind", "behind", "behind"]
    from PIL import Image

    full = np.asarray(Image.open(tmp_path / "aro" / "images" / "0.jpg").convert("RGB"))
    assert np.array_equal(np.asarray(first.images[0].load()), full[5:25, 10:40])  # (x, y, x+w, y+h)
    attribution = AroVisualGenomeReader().read(str(tmp_path / "aro"), source_options(AroVisualGenomeReader, {"annotation": "visual_genome_attribution.json", "group_by": "attributes"}), spec_, RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert [i.group for i in attribution.instances] == ["white_black"] * 26 + ["black_white"] * 2  # ordered pairs


# -- ARO order -------------------------------------------------------------------------------------
def test_pre_caption_by_hand():
    assert pre_caption("A man (riding) a horse!!  Fast; now.\n") == "a man riding a horse fast now"
    assert pre_caption("Man's  hat, red ~ blue") == "man's hat, red blue"
    assert pre_caption(" ".join(f"w{i}" for i in range(40))) == " ".join(f"w{i}" for i in range(30))


def reference_options(caption, tagger, seed_calls):
    """An independent reading of ARO's procedure with the *global* RNGs, as the official script seeds them."""
    tagged = tagger.tagged_tokens(caption)
    text = np.array([t for t, _ in tagged])
    nouns = [i for i, (_, tag) in enumerate(tagged) if tag.startswith("NN")]
    adjectives = [i for i, (_, tag) in enumerate(tagged) if tag.startswith("JJ")]
    first = text.copy()
    first[nouns] = np.random.permutation(first[nouns])
    first[adjectives] = np.random.permutation(first[adjectives])
    second = text.copy()
    mask = np.array([not (tag.startswith("NN") or tag.startswith("JJ")) for _, tag in tagged])
    second[mask] = np.random.permutation(second[mask])
    words = tagger.words(caption)
    chunks = [words[i:i + 3] for i in range(0, len(words), 3)]
    for chunk in chunks:
        random.shuffle(chunk)
    third = " ".join(" ".join(c) for c in chunks)
    chunks = [words[i:i + 3] for i in range(0, len(words), 3)]
    random.shuffle(chunks)
    fourth = " ".join(" ".join(c) for c in chunks)
    return [pre_caption(caption)] + [pre_caption(x) for x in (" ".join(first), " ".join(second), third, fourth)]


def test_order_options_match_an_independent_reading_with_global_seeds():
    captions = ["A man riding a big horse.", "A red shirt on a man", "The small dog sits on the white street!"]
    np.random.seed(1)
    random.seed(1)
    expected = [reference_options(c, WordListTagger(), None) for c in captions]
    perturber = OrderPerturber(WordListTagger(), seed=1)
    assert [perturber.options(c) for c in captions] == expected
    options = expected[0]
    assert options[0] == "a man riding a big horse"
    assert sorted(options[1].split()) == sorted(options[0].split())  # same words, nouns/adjectives moved
    assert OrderPerturber(WordListTagger(), seed=2).options(captions[2]) != expected[2]


def order_spec(options_file=None, **protocol):
    base = Catalog.load().load_task("aro_coco_order")
    config = {**base.config, "protocol": {**base.protocol, "tagger": "word-lists", **protocol}}
    if options_file:
        config["files"] = {**base.config.get("files", {}), "order_options": str(options_file)}
    return TaskSpec(base.name, base.kind, base.source_file, config)


def test_order_reader_generates_saves_and_reuses_options(tmp_path):
    annotations = write_aro_order(tmp_path)
    source = {"annotation": "coco_karpathy_test.json", "images": "coco"}
    data = AroOrderReader().read(str(tmp_path / "aro"), source_options(AroOrderReader, source), order_spec(), RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert len(data.instances) == 3 and all(len(i.captions) == 5 and i.answer == 0 for i in data.instances)
    saved = data.artifacts["options"]
    assert saved["seed"] == 1 and saved["tagger"] == "word-lists"
    assert [i["caption"] for i in saved["items"]] == [c for e in annotations["coco_karpathy_test.json"] for c in e["caption"]]
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(saved))
    reused = AroOrderReader().read(str(tmp_path / "aro"), source_options(AroOrderReader, source), order_spec(options_file=str(options_file), tagger="spacy"), RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert [i.captions for i in reused.instances] == [i.captions for i in data.instances]
    reseeded = AroOrderReader().read(str(tmp_path / "aro"), source_options(AroOrderReader, source), order_spec(seed=7), RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert reseeded.artifacts["options"]["seed"] == 7
    saved["items"][0]["caption"] = "something else"
    options_file.write_text(json.dumps(saved))
    with pytest.raises(VLBenchError, match="does not match"):
        AroOrderReader().read(str(tmp_path / "aro"), source_options(AroOrderReader, source), order_spec(options_file=str(options_file)), RunContext(tmp_path, None))  # type: ignore[arg-type]


def test_missing_tagger_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_spacy(name, *args, **kwargs):
        if name == "spacy":
            raise ImportError("No module named 'spacy'", name="spacy")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spacy)
    write_aro_order(tmp_path)
    with pytest.raises(VLBenchError, match=r"need spaCy and nltk.*spacy download en_core_web_sm"):
        AroOrderReader().read(str(tmp_path / "aro"), source_options(AroOrderReader, {"annotation": "coco_karpathy_test.json", "images": "coco"}), order_spec(tagger="spacy"), RunContext(tmp_path, None))  # type: ignore[arg-type]


# -- Winoground ------------------------------------------------------------------------------------
def test_winoground_local_copy_converts_rgba(tmp_path):
    rows = write_winoground(tmp_path)
    data = WinogroundReader().read(str(tmp_path / "winoground"), source_options(WinogroundReader, {}), None, None)
    assert [i.captions for i in data.instances] == [[r["caption_0"], r["caption_1"]] for r in rows]
    assert [i.group for i in data.instances] == [r["collapsed_tag"] for r in rows]
    assert data.instances[0].images[0].load().mode == "RGB"


def test_winoground_parquet_copy(tmp_path):
    import datasets
    from PIL import Image

    rows = {"id": [0, 1], "image_0": [Image.new("RGBA", (8, 8)), Image.new("RGB", (8, 8))], "image_1": [Image.new("RGB", (8, 8))] * 2,
            "caption_0": ["a", "b"], "caption_1": ["c", "d"], "collapsed_tag": ["Object", "Both"]}
    features = datasets.Features({"id": datasets.Value("int32"), "image_0": datasets.Image(), "image_1": datasets.Image(),
                                  "caption_0": datasets.Value("string"), "caption_1": datasets.Value("string"), "collapsed_tag": datasets.Value("string")})
    (tmp_path / "winoground" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "winoground" / "data" / "test-00000-of-00001.parquet"))
    data = WinogroundReader().read(str(tmp_path / "winoground"), source_options(WinogroundReader, {"split": "test"}), None, None)
    assert [i.captions for i in data.instances] == [["a", "c"], ["b", "d"]]
    assert data.instances[0].images[0].load().mode == "RGB"


def test_winoground_parquet_pairs_each_caption_with_its_own_image(tmp_path):
    """Both images of a row must stay distinct (they once shared a cache key): a colour model gets everything right."""
    import sys

    import datasets
    from conftest import REPO
    from PIL import Image

    from vlbench.encoding.encoder import Encoder

    sys.path.insert(0, str(REPO / "tests" / "plugins"))
    from color_adapter import ColorAdapter

    from vlbench.models import parse_model_spec

    rows = {"id": [0, 1], "image_0": [Image.new("RGB", (8, 8), (230, 20, 20)), Image.new("RGB", (8, 8), (20, 20, 230))],
            "image_1": [Image.new("RGB", (8, 8), (20, 20, 230)), Image.new("RGB", (8, 8), (20, 200, 20))],
            "caption_0": ["a red one", "a blue one"], "caption_1": ["a blue one", "a green one"], "collapsed_tag": ["Object", "Object"]}
    (tmp_path / "winoground" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(rows).cast_column("image_0", datasets.Image()).cast_column("image_1", datasets.Image()).to_parquet(
        str(tmp_path / "winoground" / "data" / "test-00000-of-00001.parquet"))
    spec = Catalog.load().load_task("winoground")
    kind = SelectionKind()
    ctx = RunContext(tmp_path, Encoder(ColorAdapter(parse_model_spec("color:x"))))
    data, _ = kind.load(spec, ctx)
    assert len({ref.key for inst in data.instances for ref in inst.images}) == 4
    scores = kind.score(list(kind.predict(None, data, spec, ctx)), spec)
    assert scores["group_score"] == 1.0 and scores["text_score"] == 1.0 and scores["image_score"] == 1.0


def test_winoground_without_access_says_how_to_get_it(monkeypatch):
    from vlbench.datasets import hf

    def gated(location, split):
        raise VLBenchError("cannot open Hugging Face dataset hf:facebook/winoground: 401 Client Error")

    monkeypatch.setattr(hf, "open_dataset", gated)
    with pytest.raises(VLBenchError, match=r"accept the terms at https://huggingface.co/datasets/facebook/winoground.*HF_TOKEN"):
        WinogroundReader().read("hf:facebook/winoground", source_options(WinogroundReader, {"split": "test"}), None, None)
