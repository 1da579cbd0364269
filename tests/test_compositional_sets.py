"""ColorSwap, CREPE and MMVP-VLM from their released layouts (ColorSwap's test.json; CREPE's CSVs with a Python-literal
list of hard negatives and a region box per row; MMVP-VLM's Questions.csv, consecutive rows a pair), scored against the
official procedures written out here on the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image
from selection_fixtures import crepe_image_folder, write_colorswap, write_crepe_productivity, write_mmvp_vlm

from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings
from vlbench.spec.catalog import Catalog


def run(tmp_path, task):
    settings = RunSettings(data_root=tmp_path / "data", output=tmp_path / "out", num_workers=0, batch_size=16, bootstrap_replicates=0)
    _, outcomes = Runner(Catalog.load(), settings).run(TINY, [task])
    assert outcomes[0].status == "done", outcomes[0].note
    return json.loads(outcomes[0].result_file.read_text())


def samples(tmp_path, result):
    import gzip

    folder = next((tmp_path / "out").rglob(result["samples"])).parent
    with gzip.open(folder / result["samples"], "rt") as f:
        return [json.loads(line) for line in f]


def test_colorswap_scores_as_winoground(tmp_path, tiny_model):
    root = tmp_path / "data" / "colorswap"
    examples = write_colorswap(tmp_path / "data")
    result = run(tmp_path, "colorswap")
    text = image = group = 0
    for e in examples:
        images = torch.stack([tiny_model.image_transform(Image.open(root / e[k]).convert("RGB")) for k in ("image_1", "image_2")])
        s = (tiny_model.encode_images(images) @ tiny_model.encode_texts([e["caption_1"], e["caption_2"]]).T).numpy()
        t = s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]  # Winoground: each image prefers its own caption
        m = s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1]  # each caption prefers its own image
        text, image, group = text + t, image + m, group + (t and m)
    metrics = result["metrics"]
    assert (metrics["text_score"], metrics["image_score"], metrics["group_score"]) == pytest.approx((text / 4, image / 4, group / 4))
    assert "group_score/image_source=dalle" in metrics


def test_crepe_productivity_as_its_open_clip_evaluation(tmp_path, tiny_model):
    import ast

    import torchvision.transforms.functional as TF

    data = tmp_path / "data"
    rows = write_crepe_productivity(data, types=("swap",), complexities=(7,))
    result = run(tmp_path, "crepe_prod_swap_7")
    # crepe_compo_eval_open_clip.py: crop, encode, [caption] + hard negatives, the caption's place in argsort(descending)
    ranks = []
    stored = samples(tmp_path, result)
    for row, sample in zip(rows, stored):
        folder = crepe_image_folder(row["image_id"] - 1000)
        image = Image.open(data / "visual_genome" / folder / f"{row['image_id']}.jpg").convert("RGB")
        crop = TF.crop(image, row["y"], row["x"], row["height"], row["width"])
        image_features = tiny_model.encode_images(tiny_model.image_transform(crop)[None])
        text_features = tiny_model.encode_texts([row["caption"]] + list(ast.literal_eval(row["hard_negs"])))
        logits = image_features @ text_features.T
        assert np.allclose(sample["scores"][0], logits[0].tolist(), atol=1e-5)  # the cropped region, the same captions
        ranking = torch.argsort(logits, descending=True)
        ranks.append(int(torch.where(ranking == 0)[1][0]))
    ranks = np.array(ranks)
    for k in (1, 3, 5, 10):
        assert result["metrics"][f"recall@{k}"] == pytest.approx(np.mean(ranks < k)), k
    assert result["ties"]["items"] == 0


def test_a_list_literal_that_is_not_a_list_is_a_one_line_error(tmp_path):
    from vlbench.datasets.records import list_literal
    from vlbench.errors import VLBenchError

    assert list_literal("['a', 'b']", "hard_negs", "f.csv, record 0") == ["a", "b"]
    for bad in ("__import__('os')", "{'a': 1}", "[unclosed"):
        with pytest.raises(VLBenchError, match="not a Python list literal"):
            list_literal(bad, "hard_negs", "f.csv, record 0")


def test_mmvp_vlm_as_its_evaluate_vlm_script(tmp_path, tiny_model):
    root = tmp_path / "data" / "mmvp_vlm"
    categories = ["Orientation", "Presence"]
    rows = write_mmvp_vlm(tmp_path / "data", categories)
    result = run(tmp_path, "mmvp_vlm")
    # evaluate_vlm.py: consecutive rows, 'a photo of ' + statement, softmax over the two images, p(img1) > 0.5 picks img1
    scale = tiny_model.logit_scale
    right = {category: 0 for category in categories}
    stored = samples(tmp_path, result)
    for n in range(len(rows) // 2):
        (qid1, qtype1, statement1), (qid2, _, statement2) = rows[2 * n], rows[2 * n + 1]
        images = torch.stack([tiny_model.image_transform(Image.open(root / "MLLM_VLM Images" / qtype1 / f"{q}.jpg").convert("RGB"))
                              for q in (qid1, qid2)])
        image_features = tiny_model.encode_images(images)
        texts = tiny_model.encode_texts(["a photo of " + statement1, "a photo of " + statement2])
        assert np.allclose(stored[n]["scores"], (image_features @ texts.T).tolist(), atol=1e-5)  # the pair, the template
        preds = []
        for statement in (statement1, statement2):
            probs = (scale * tiny_model.encode_texts(["a photo of " + statement]) @ image_features.T).softmax(dim=-1)
            preds.append("img1" if probs[0][0] > 0.5 else "img2")
        truth = ["img1" if int(qid1) % 2 == 1 else "img2", "img1" if int(qid2) % 2 == 1 else "img2"]
        right[categories[n // 15]] += preds == truth
    expected = np.mean([right[c] / 15 for c in categories])
    assert result["metrics"]["pair_accuracy"] == pytest.approx(expected)
    assert result["metrics"]["pair_accuracy/rows.0.type=Presence"] == pytest.approx(right["Presence"] / 15)


def test_mmvp_gives_a_tie_to_the_second_image():
    from vlbench.kinds.selection_outcomes import outcome_values

    def pair(scores):
        return {"id": "0", "scores": scores, "fields": ["c0", "c1"]}

    rule = {"rule": "image_match_second_takes_ties"}
    # rows are images, columns captions: caption 2 ties between the images -> image 2, which is right for it
    assert outcome_values([pair([[0.6, 0.5], [0.4, 0.5]])], rule) == [1.0]
    assert outcome_values([pair([[0.5, 0.5], [0.5, 0.5]])], rule) == [0.0]  # caption 1's tie goes to image 2: wrong
    assert outcome_values([pair([[0.6, 0.5], [0.4, 0.5]])], {"rule": "image_match"}) == [0.0]  # Winoground's strict score
