"""The generic records format and declared outcomes; SugarCrepe++ and VALSE as task files only."""

import gzip
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from selection_fixtures import BLUE, RED, placeholder, write_sugarcrepe_pp, write_valse

from vlbench.spec.catalog import Catalog
from vlbench.datasets.records import FilterCondition, RecordFields, RecordsReader, RecordsSource
from vlbench.errors import TaskSpecError, VLBenchError
from vlbench.kinds.base import RunContext
from vlbench.kinds.selection import SelectionKind, winoground_rule
from vlbench.kinds.selection_outcomes import Outcome
from vlbench.spec.schema import describe
from vlbench.results.rescore import rescore
from vlbench.results import schema as result_schema
from vlbench.run.loading import ModelLoader
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings
from vlbench.spec.taskfile import TaskSpec
from vlbench.spec.checking import load_task_file

sys.path.insert(0, str(REPO / "tests" / "plugins"))
import color_adapter  # noqa: E402

color_adapter.register_with_decorator("color-records")
MODEL = "color-records:v1"


def run(tmp_path, tasks, task_dirs=(), **options):
    runner = Runner(Catalog.load(extra_task_dirs=list(task_dirs)), RunSettings(data_root=tmp_path, output=tmp_path / "res", num_workers=0, **options))
    return {o.task: o for o in runner.run(MODEL, tasks)[1]}


# -- reading: file types, mapping, filters -----------------------------------------------------------
ROWS = [
    {"qid": "q1", "image_id": 7, "pos": "a red cup", "pos2": "the cup is red", "neg": "a blue cup", "cat": "colour", "votes": 3},
    {"qid": "q2", "image_id": 8, "pos": "a blue cup", "pos2": "blue mug", "neg": "a red cup", "cat": "object", "votes": 1},
    {"qid": "q3", "image_id": 8, "pos": "two cups", "pos2": "a pair of cups", "neg": "one cup", "cat": "colour", "votes": 2},
]
SOURCE = {"format": "records", "images": "coco/val2014", "image_pattern": "COCO_val2014_{:012d}.jpg",
          "fields": {"id": "qid", "image": "image_id", "positives": ["pos", "pos2"], "negatives": "neg", "groups": "cat"},
          "filter": [{"field": "votes", "at_least": 2}]}


def write_table(path: Path, rows: list[dict], kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "json-list":
        path.write_text(json.dumps(rows))
    elif kind == "json-mapping":
        path.write_text(json.dumps({r["qid"]: r for r in rows}))
    elif kind == "jsonl.gz":
        with gzip.open(path, "wt") as f:
            f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    elif kind == "csv":
        import csv

        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path)


def read(tmp_path, source, dataset=None):
    """What a run does with a records source: its typed options (what it inherits from ``dataset:``
    merged), the plan-time check, then the read."""
    spec = TaskSpec("t", "selection", tmp_path / "t.yaml", {"dataset": {**(dataset or {}), "sources": [source]}})
    options = SelectionKind.source_options(spec, 0)
    location = str(tmp_path / "bench")
    RecordsReader().check(location, options, spec)
    return RecordsReader().read(location, options, spec, RunContext(tmp_path, None))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind, name", [("json-list", "a.json"), ("json-mapping", "a.json"), ("jsonl.gz", "a.jsonl.gz"), ("csv", "a.csv"), ("parquet", "a.parquet")])
def test_every_file_type_gives_the_same_items(tmp_path, kind, name):
    write_table(tmp_path / "bench" / name, ROWS, kind)
    for image in (7, 8):
        placeholder(tmp_path / "coco" / "val2014" / f"COCO_val2014_{image:012d}.jpg")
    data = read(tmp_path, {**SOURCE, "annotation": name})
    assert [i.id for i in data.instances] == ["q1", "q3"]  # q2 has 1 vote < 2
    first = data.instances[0]
    assert first.captions == ["a red cup", "the cup is red", "a blue cup"] and first.positives == [0, 1]
    assert first.caption_fields == ["pos", "pos2", "neg"] and first.groups == {"cat": "colour"} and first.group == "colour"
    assert first.images[0].path == str(tmp_path / "coco" / "val2014" / "COCO_val2014_000000000007.jpg")  # type: ignore[attr-defined]


def test_parquet_with_embedded_images_and_caption_lists(tmp_path):
    import io

    import pandas as pd
    from PIL import Image

    def png(color):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    (tmp_path / "bench").mkdir()
    pd.DataFrame({"img": [png(RED), png(BLUE)], "good": [["a", "b"], ["c"]], "bad": ["x", "y"]}).to_parquet(tmp_path / "bench" / "t.parquet")
    data = read(tmp_path, {"format": "records", "annotation": "t.parquet", "fields": {"image": "img", "positives": "good", "negatives": "bad"}})
    assert [i.captions for i in data.instances] == [["a", "b", "x"], ["c", "y"]] and [i.positives for i in data.instances] == [[0, 1], [0]]
    assert data.instances[1].images[0].load().getpixel((0, 0)) == BLUE


def test_list_fields_named_patterns_default_ids_and_combined_filters(tmp_path):
    records = {
        "k1": {"img": {"id": "a1", "dir": "left"}, "good": ["red", "crimson"], "bad": ["blue", "navy"], "ok": True, "n": 3, "src": "A"},
        "k2": {"img": {"id": "a2", "dir": "right"}, "good": ["red"], "bad": ["green"], "ok": False, "n": 3, "src": "A"},
        "k3": {"img": {"id": "a3", "dir": "right"}, "good": ["red"], "bad": ["green"], "ok": True, "n": 9, "src": "A"},
        "k4": {"img": {"id": "a4", "dir": "right"}, "good": ["red"], "bad": ["green"], "ok": True, "n": 3, "src": "B"},
        "k5": {"img": {"id": "a5", "dir": "left"}, "good": ["red"], "bad": ["green"], "ok": 1, "n": 2, "src": "C"},
    }
    write_table(tmp_path / "bench" / "r.json", [], "json-list")
    (tmp_path / "bench" / "r.json").write_text(json.dumps(records))
    placeholder(tmp_path / "one" / "left" / "a1.jpg")
    placeholder(tmp_path / "two" / "left" / "a1.jpg")
    placeholder(tmp_path / "two" / "left" / "a5.jpg")  # only in the second folder
    source = {"format": "records", "annotation": "r.json", "images": ["one", "two"], "image_pattern": "{img[dir]}/{}.jpg",
              "fields": {"image": "img.id", "positives": "good", "negatives": "bad"},
              "filter": [{"field": "ok", "truthy": True}, {"field": "n", "at_most": 3}, {"field": "src", "one_of": ["A", "C"]}]}
    data = read(tmp_path, source)
    assert [i.id for i in data.instances] == ["k1", "k5"]  # k2 not ok, k3 n > 3, k4 src B
    assert data.instances[0].captions == ["red", "crimson", "blue", "navy"] and data.instances[0].positives == [0, 1]
    assert data.instances[0].images[0].path == str(tmp_path / "one" / "left" / "a1.jpg")  # type: ignore[attr-defined]
    assert data.instances[1].images[0].path == str(tmp_path / "two" / "left" / "a5.jpg")  # type: ignore[attr-defined]
    equals = read(tmp_path, {**source, "filter": {"field": "src", "equals": "C"}})
    assert [i.id for i in equals.instances] == ["k5"]


def test_a_wrong_field_is_one_line_at_planning_before_the_model_loads(tmp_path, monkeypatch):
    write_valse(tmp_path)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mine.yaml").write_text(
        "task: mine\nkind: selection\nversion: 1\n"
        "dataset:\n  sources:\n    - {format: records, path: valse, annotation: existence.json, images: visual7w/images,\n"
        "       fields: {image: image_file, positives: captoin, negatives: foil}}\n"
        "protocol:\n  outcomes:\n    acc: {rule: positives_above_negatives}\nmetrics: [acc]\nmain_metric: acc\n")

    def no_model(*args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(ModelLoader, "load", no_model)
    with pytest.raises(VLBenchError) as error:
        run(tmp_path, ["mine"], [tasks])
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "valse" / "existence.json") in message
    assert "field 'captoin' (named by fields.positives)" in message and "did you mean: caption" in message
    assert "fields there: dataset, original_split" in message and "mturk.caption" in message


HEAD = "task: t\nkind: selection\nversion: 1\n"
BASE = (HEAD +
        "dataset:\n  sources:\n    - {format: records, annotation: a.json, fields: {image: f, positives: p, negatives: n, groups: g}}\n")


@pytest.mark.parametrize("body, field, problem", [
    ("dataset: {sources: [{format: records, annotation: a.json, fields: {image: f, positive: p, negatives: n}}]}\n"
     "protocol: {outcomes: {acc: {rule: positives_above_negatives}}}\nmetrics: [acc]\nmain_metric: acc\n",
     "dataset.sources[0].fields.positive", "did you mean: positives"),
    ("protocol: {outcomes: {acc: {rule: positive_above_negatives}}}\nmetrics: [acc]\nmain_metric: acc\n",
     "protocol.outcomes.acc.rule", "did you mean: positives_above_negatives"),
    ("protocol: {outcomes: {acc: {rule: pairwise, anchor: q}}}\nmetrics: [acc]\nmain_metric: acc\n", "protocol.outcomes.acc.anchor", "'q' is not one of"),
    ("protocol: {outcomes: {acc: {rule: pairwise, macro: p}}}\nmetrics: [acc]\nmain_metric: acc\n", "protocol.outcomes.acc.macro", "fields.groups"),
    ("protocol: {outcomes: {acc: {rule: pairwise, ancor: p}}}\nmetrics: [acc]\nmain_metric: acc\n", "protocol.outcomes.acc.ancor", "did you mean: anchor"),
    ("protocol: {outcomes: {acc: {rule: group_match}}}\nmetrics: [acc]\nmain_metric: acc\n", "protocol.outcomes.acc.rule", "fields.captions"),
    ("protocol: {outcomes: {acc: {rule: pairwise}}}\nmetrics: [acc, other]\nmain_metric: acc\n", "metrics", "'other' is not a selection metric"),
    ("dataset: {sources: [{format: records, annotation: a.json, fields: {image: f, positives: p, negatives: n}}], filter: [{field: v, atleast: 2}]}\nprotocol: {outcomes: {acc: {rule: pairwise}}}\nmetrics: [acc]\nmain_metric: acc\n",
     "filter[0].atleast", "did you mean: at_least"),
    ("dataset: {sources: [{format: records, annotation: a.json, fields: {image: f, positives: p, negatives: n}}], filter: [{field: v, at_least: two}]}\nprotocol: {outcomes: {acc: {rule: pairwise}}}\nmetrics: [acc]\nmain_metric: acc\n",
     "filter[0].at_least", "expected number or null"),
])
def test_task_file_mistakes_are_refused_when_the_file_is_read(tmp_path, body, field, problem):
    task = tmp_path / "t.yaml"
    task.write_text((HEAD if body.startswith("dataset") else BASE) + body)
    with pytest.raises(TaskSpecError) as error:
        load_task_file(task)
    assert field in error.value.field and problem in error.value.problem


def test_every_option_is_declared_with_type_default_and_meaning():
    for schema in (RecordsSource, RecordFields, FilterCondition, Outcome):
        for row in describe(schema):
            assert row.type and row.default and row.help, row


# -- rules, by hand ----------------------------------------------------------------------------------
def outcome_spec(**outcomes):
    return TaskSpec("t", "selection", None, {"protocol": {"outcomes": outcomes}, "metrics": list(outcomes)})  # type: ignore[arg-type]


def item(scores, text_scores=None, positives=(0, 1), fields=("p1", "p2", "n"), groups=None, **extra):
    record = {"scores": scores, "fields": list(fields), "positives": list(positives), "text_scores": text_scores, **extra}
    if groups:
        record["groups"] = groups
    return record


def score(records, **outcomes):
    return SelectionKind().score(records, outcome_spec(**outcomes))


def test_positive_rules_by_hand():
    rules = {"all": {"rule": "positives_above_negatives"}, "best": {"rule": "best_positive_above_negatives"}, "pairs": {"rule": "pairwise"},
             "p2": {"rule": "positives_above_negatives", "positives": "p2"}}
    assert score([item([[0.5, 0.3, 0.3]])], **rules) == {"all": 0.0, "best": 1.0, "pairs": 0.5, "p2": 0.0}  # a tie is wrong
    assert score([item([[0.5, 0.31, 0.3]])], **rules) == {"all": 1.0, "best": 1.0, "pairs": 1.0, "p2": 1.0}
    assert score([item([[0.2, 0.1, 0.3]])], **rules) == {"all": 0.0, "best": 0.0, "pairs": 0.0, "p2": 0.0}
    two_negatives = item([[0.5, 0.4, 0.45, 0.1]], fields=("p", "p", "n", "n"))  # a list field: two positives, two negatives
    assert score([two_negatives], all=rules["all"], best=rules["best"], pairs=rules["pairs"]) == {"all": 0.0, "best": 1.0, "pairs": 0.75}


def test_text_anchored_rules_by_hand():
    # SugarCrepe++ TOT: cos(P1,P2) > cos(P1,N) and cos(P1,P2) > cos(P2,N)
    text = [[1.0, 0.8, 0.5], [0.8, 1.0, 0.9], [0.5, 0.9, 1.0]]  # .8 > .5 but not > .9
    rules = {"tot": {"rule": "positives_above_negatives", "anchor": "positives"}, "from_p1": {"rule": "positives_above_negatives", "anchor": "p1"},
             "from_p2": {"rule": "pairwise", "anchor": ["p2"]}}
    assert score([item([], text)], **rules) == {"tot": 0.0, "from_p1": 1.0, "from_p2": 0.0}
    text = [[1.0, 0.8, 0.5], [0.8, 1.0, 0.7], [0.5, 0.7, 1.0]]
    assert score([item([], text)], tot=rules["tot"]) == {"tot": 1.0}


def test_the_from_n_anchor_without_negatives_is_an_error():
    with pytest.raises(VLBenchError, match="no positive or no negative"):
        score([item([], [[1, 0.8, 0.5], [0.8, 1, 0.9], [0.5, 0.9, 1]])], bad={"rule": "pairwise", "anchor": "n"})


def test_matrix_rules_agree_with_winoground_and_extend_to_three_images():
    rng = np.random.default_rng(0)
    matrices = [rng.choice([0.1, 0.2, 0.3], size=(2, 2)).tolist() for _ in range(60)]  # many ties
    rules = {"text": {"rule": "text_match"}, "image": {"rule": "image_match"}, "group": {"rule": "group_match"}}
    for m in matrices:
        assert score([{"scores": m, "fields": ["c0", "c1"]}], **rules) == {k: float(v) for k, v in winoground_rule(m, None).items()}
    s = [[0.9, 0.1, 0.2], [0.3, 0.8, 0.1], [0.2, 0.85, 0.7]]  # image 2 prefers caption 1; caption 1 prefers image 2
    assert score([{"scores": s, "fields": ["a", "b", "c"]}], **rules) == {"text": 0.0, "image": 0.0, "group": 0.0}
    s[2][1] = 0.6
    assert score([{"scores": s, "fields": ["a", "b", "c"]}], **rules) == {"text": 1.0, "image": 1.0, "group": 1.0}


def test_per_group_and_macro_metrics_by_hand():
    right, wrong = [[0.9, 0.8, 0.1]], [[0.1, 0.8, 0.9]]
    records = [item(right, groups={"piece": "a", "src": "x"}), item(wrong, groups={"piece": "a", "src": "y"}),
               item(right, groups={"piece": "a", "src": "y"}), item(right, groups={"piece": "b", "src": "y"})]
    result = score(records, acc={"rule": "positives_above_negatives"}, macro={"rule": "positives_above_negatives", "macro": "piece"})
    from vlbench.results import intervals

    outcomes = {"acc": {"rule": "positives_above_negatives"}, "macro": {"rule": "positives_above_negatives", "macro": "piece"},
                "pairs": {"rule": "pairwise"}}
    res = intervals.resampled("selection", records, outcome_spec(**outcomes))
    for name, value in score(records, **outcomes).items():
        if "/" not in name:  # the bootstrap's point estimate is the metric itself
            assert res.metric(name, res.identity())[0] == pytest.approx(value), name
    assert res.outcomes("acc") is not None and res.outcomes("macro") is None
    assert result["acc"] == 0.75 and result["macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["acc/piece=a"] == pytest.approx(2 / 3) and result["acc/piece=b"] == 1.0
    assert result["acc/src=x"] == 1.0 and result["acc/src=y"] == pytest.approx(2 / 3)


# -- SugarCrepe++ and VALSE through the whole pipeline (colour model: see selection_fixtures) -------------
def test_sugarcrepe_pp_image_and_text_metrics_through_the_runner(tmp_path):
    write_sugarcrepe_pp(tmp_path)
    outcomes = run(tmp_path, ["sugarcrepe_pp_swap_obj"])
    # item 1: all right; item 2: only P1 beats N, P1-P2 below P1-N; item 3: image wrong, P1 = P2 in text
    assert outcomes["sugarcrepe_pp_swap_obj"].metrics == pytest.approx({"itt": 1 / 3, "tot": 2 / 3, "itt_p1": 2 / 3, "itt_p2": 1 / 3})
    result_file = outcomes["sugarcrepe_pp_swap_obj"].result_file
    result = result_schema.read(result_file).to_json()
    assert rescore(result_file, result) == pytest.approx(result["metrics"])
    low, high = result["ci"]["itt"]
    assert low <= 1 / 3 <= high and set(result["ci"]) >= {"itt", "tot", "itt_p1", "itt_p2"}
    with gzip.open(result_file.parent / result["samples"], "rt") as f:
        first = json.loads(f.readline())
    assert first["fields"] == ["caption", "caption2", "negative_caption"] and first["positives"] == [0, 1]
    assert np.array(first["text_scores"]).shape == (3, 3) and first["id"] == "0"
    shutil.rmtree(tmp_path / "coco")  # the text-only tasks read no image
    text = run(tmp_path, ["sugarcrepe_pp_text"])
    assert {t: o.metrics["tot"] for t, o in text.items()} == pytest.approx({f"sugarcrepe_pp_text_{s}": 2 / 3 for s in
                                                                            ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")})


def test_valse_all_instruments_keep_validated_items_and_score_pairwise_accuracy(tmp_path):
    write_valse(tmp_path)
    outcomes = run(tmp_path, ["valse"])
    assert len(outcomes) == 11
    for task, outcome in outcomes.items():
        assert (outcome.n, outcome.metrics) == (3, pytest.approx({"acc_r": 2 / 3})), task  # right, wrong, (unvalidated), right
    unfiltered = run(tmp_path, ["valse_existence"], overrides={"dataset.filter": []}, overwrite=True)["valse_existence"]
    assert (unfiltered.n, unfiltered.metrics["acc_r"]) == (4, 0.75)


def test_winoground_style_records_with_two_images(tmp_path):
    rows = [
        {"id": 0, "image_0": "r0", "image_1": "b0", "caption_0": "a red dog", "caption_1": "a blue dog", "tag": "Object"},
        {"id": 1, "image_0": "r1", "image_1": "b1", "caption_0": "a blue cat", "caption_1": "a red cat", "tag": "Relation"},
        {"id": 2, "image_0": "g2", "image_1": "p2", "caption_0": "a red bird", "caption_1": "a blue bird", "tag": "Relation"},
    ]
    colors = {"r": RED, "b": BLUE, "g": (120, 230, 20), "p": (200, 20, 230)}  # yellow-green, purple
    for r in rows:
        for key in ("image_0", "image_1"):
            placeholder(tmp_path / "pairs" / "images" / f"{r[key]}.png", color=colors[r[key][0]])
    (tmp_path / "pairs" / "examples.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "pairs.yaml").write_text(
        "task: pairs\nkind: selection\nversion: 1\n"
        "dataset:\n  sources:\n    - format: records\n      path: pairs\n      annotation: examples.jsonl\n      images: pairs/images\n"
        "      image_pattern: '{}.png'\n      fields: {id: id, image: [image_0, image_1], captions: [caption_0, caption_1], groups: tag}\n"
        "protocol:\n  outcomes:\n    text: {rule: text_match}\n    image: {rule: image_match}\n    group: {rule: group_match}\n"
        "metrics: [group, text, image]\nmain_metric: group\n")
    metrics = run(tmp_path, ["pairs"], [tasks])["pairs"].metrics
    # row 0: all right; row 1: captions swapped, all wrong; row 2: s = [[-0.03, -0.85], [0.38, 0.61]], each image prefers
    # its own caption (text right) but 'red' scores the purple image higher than the yellow-green one (image wrong)
    assert metrics == pytest.approx({"text": 2 / 3, "image": 1 / 3, "group": 1 / 3, "text/tag=Object": 1.0, "image/tag=Object": 1.0,
                                     "group/tag=Object": 1.0, "text/tag=Relation": 0.5, "image/tag=Relation": 0.0, "group/tag=Relation": 0.0})


def test_top1_positive_gives_ties_to_the_earlier_caption():
    top1 = {"top1": {"rule": "top1_positive"}}
    assert score([item([[0.5, 0.5]], positives=[0], fields=["p", "n"])], **top1) == {"top1": 1.0}  # ARO Order-like: tie is right
    assert score([item([[0.5, 0.5]], positives=[1], fields=["n", "p"])], **top1) == {"top1": 0.0}  # ARO VG-like: tie is wrong
    assert score([item([[0.2, 0.5, 0.5]], positives=[0, 2], fields=["p", "n", "p"])], **top1) == {"top1": 0.0}
    assert score([item([[0.2, 0.4, 0.5]], positives=[0, 2], fields=["p", "n", "p"])], **top1) == {"top1": 1.0}


def test_a_caption_ranks_positive_against_negative_images(tmp_path):
    """SVO-Probes-like records: one sentence, the image it describes and one it does not."""
    rows = [{"sentence": "a red car", "pos_image_id": "r", "neg_image_id": "b"},   # right
            {"sentence": "a blue car", "pos_image_id": "r", "neg_image_id": "b"},  # wrong
            {"sentence": "a blue car", "pos_image_id": "b", "neg_image_id": ["r", "g"]}]  # right against both
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "probes.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    for name, color in (("r", RED), ("b", BLUE), ("g", (20, 230, 20))):
        placeholder(tmp_path / "bench" / f"{name}.png", color=color)
    source = {"format": "records", "annotation": "probes.jsonl", "image_pattern": "{}.png",
              "fields": {"image": "pos_image_id", "negative_images": "neg_image_id", "positives": "sentence"}}
    data = read(tmp_path, source)
    assert [len(i.images) for i in data.instances] == [2, 2, 3] and data.instances[2].positive_images == [0]
    from vlbench.encoding.encoder import Encoder
    from vlbench.models import parse_model_spec

    spec = TaskSpec("t", "selection", None, {"protocol": {"outcomes": {"acc": {"rule": "positives_above_negatives", "candidates": "images"}}},  # type: ignore[arg-type]
                                             "metrics": ["acc"]})
    kind = SelectionKind()
    records = list(kind.predict(None, data, spec, RunContext(tmp_path, Encoder(color_adapter.ColorAdapter(parse_model_spec("color:x"))))))
    assert records[2]["positive_images"] == [0] and np.array(records[2]["scores"]).shape == (3, 1)
    assert kind.score(records, spec) == {"acc": pytest.approx(2 / 3)}


def test_positional_records_as_vl_checklist_writes_them(tmp_path):
    """VL-CheckList-style JSON: a list of [image path, {"POS": [...], "NEG": [...]}]."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "vlc.json").write_text(json.dumps([["vg/1.jpg", {"POS": ["a red car"], "NEG": ["a blue car"]}],
                                                               ["vg/2.jpg", {"POS": ["a cat"], "NEG": ["a dog", "a cow"]}]]))
    placeholder(tmp_path / "bench" / "vg" / "1.jpg")
    placeholder(tmp_path / "bench" / "vg" / "2.jpg")
    data = read(tmp_path, {"format": "records", "annotation": "vlc.json", "fields": {"image": "0", "positives": "1.POS", "negatives": "1.NEG"}})
    assert [i.captions for i in data.instances] == [["a red car", "a blue car"], ["a cat", "a dog", "a cow"]]
    assert data.instances[1].images[0].path == str(tmp_path / "bench" / "vg" / "2.jpg")  # type: ignore[attr-defined]


# -- records that need no trimming: missing images, the first N, image URLs, positional names -------------------
def write_untouched_benchmark(tmp_path):
    """An annotation file as an official evaluator ships it: image URLs with a host and a query string, 5 records of which
    the evaluator scores the first 4 and skips those whose image was not downloaded (record 'c')."""
    rows = [{"qid": q, "url": f"http://images.example.org/val2017/{n:012d}.jpg?dl=1", "pos": "a red cup", "neg": "a blue cup"}
            for q, n in (("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5))]
    (tmp_path / "bench").mkdir(parents=True, exist_ok=True)
    (tmp_path / "bench" / "ann.json").write_text(json.dumps(rows))
    for n in (1, 2, 4, 5):
        placeholder(tmp_path / "bench" / "imgs" / f"{n:012d}.jpg")
    return {"format": "records", "annotation": "ann.json", "images": "bench/imgs", "first": 4, "missing_images": "skip",
            "image_rewrite": {"basename": True}, "fields": {"id": "qid", "image": "url", "positives": "pos", "negatives": "neg"}}


def test_an_untouched_file_with_urls_missing_images_and_first_n_runs_as_its_evaluator_does(tmp_path):
    source = write_untouched_benchmark(tmp_path)
    data = read(tmp_path, source)
    assert [i.id for i in data.instances] == ["a", "b", "d"]  # 'e' is past the first 4, 'c' has no image
    assert data.left_out == {"missing_images": {"records": 1, "examples": ["c"]}}
    assert data.instances[2].images[0].path == str(tmp_path / "bench" / "imgs" / "000000000004.jpg")  # type: ignore[attr-defined]
    with pytest.raises(VLBenchError, match=r"1 image\(s\) not found.*set missing_images: skip"):  # the default stays an error
        read(tmp_path, {**source, "missing_images": "error"})
    picked = read(tmp_path, {**{k: v for k, v in source.items() if k != "first"}, "positions": [4, 0]})
    assert [i.id for i in picked.instances] == ["a", "e"]  # file order
    regex = read(tmp_path, {**source, "image_rewrite": {"pattern": r"^.*/val2017/(\d+)\.jpg\?dl=1$", "replacement": r"\1.jpg"}})
    assert [i.id for i in regex.instances] == ["a", "b", "d"]


def test_skipped_records_are_recorded_said_and_part_of_the_results_identity(tmp_path, capsys):
    source = write_untouched_benchmark(tmp_path)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "untouched.yaml").write_text(json.dumps({"task": "untouched", "kind": "selection", "version": 1, "dataset": {"sources": [{**source, "path": "bench"}]},
                                                      "protocol": {"outcomes": {"acc": {"rule": "top1_positive"}}}, "metrics": ["acc"], "main_metric": "acc"}))
    outcome = run(tmp_path, ["untouched"], [tasks])["untouched"]
    assert outcome.n == 3 and "1 record(s) left out: image file missing (missing_images: skip), e.g. c" in outcome.note
    saved = result_schema.read(outcome.result_file)
    assert saved.task.protocol_used["left_out"] == {"missing_images": {"records": 1, "examples": ["c"]}}
    from vlbench.results.io import read_samples

    samples = list(read_samples(saved.samples_file(outcome.result_file)))
    assert [s["id"] for s in samples] == ["a", "b", "d"]  # each item's decision is in the samples, as the metric averages it
    assert np.mean([s["outcomes"]["acc"] for s in samples]) == pytest.approx(outcome.metrics["acc"])
    placeholder(tmp_path / "bench" / "imgs" / "000000000003.jpg")  # the image arrives: the old result is not reused
    again = run(tmp_path, ["untouched"], [tasks])["untouched"]
    assert again.status == "done" and again.n == 4 and again.note == ""


def test_positional_field_names_need_no_quotes(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "vlc.json").write_text(json.dumps([["vg/1.jpg", "a red car", "a blue car"]]))
    placeholder(tmp_path / "bench" / "vg" / "1.jpg")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "positional.yaml").write_text(
        "task: positional\nkind: selection\nversion: 1\ndataset:\n  sources:\n    - format: records\n      path: bench\n"
        "      annotation: vlc.json\n      fields: {image: 0, positives: 1, negatives: [2]}\n"
        "protocol:\n  outcomes:\n    acc: {rule: top1_positive}\nmetrics: [acc]\nmain_metric: acc\n")
    assert run(tmp_path, ["positional"], [tasks])["positional"].n == 1
