"""Long-caption retrieval: Urban-1k, ShareGPT4V-1k and DOCCI from their real layouts, and the text-length protocol
(captions past the model's context truncated by its tokenizer, counted and recorded)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import vlbench
from vlbench.datasets.retrieval import RetrievalRecordsReader, RetrievalRecordsSource

SHIPPED = "openclip:vlbench-tiny@shapes"  # a 32-token text context
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 40, 220), "yellow": (230, 220, 30)}
LONG = (" and it stands on a wide grey street next to a row of tall old houses with many small windows under a cloudy sky,"
        " while people walk by with bags and a dog sleeps in the shade of a large green tree")


def picture(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 40), COLOURS[colour]).save(path)


def write_urban1k(root):
    captions = {}
    for n, colour in enumerate(COLOURS):
        name = f"{n + 1}"
        picture(root / "Urban1k" / "image" / f"{name}.jpg", colour)
        captions[name] = f"a {colour} square" + (LONG if n % 2 else "")
        (root / "Urban1k" / "caption").mkdir(parents=True, exist_ok=True)
        (root / "Urban1k" / "caption" / f"{name}.txt").write_text(captions[name] + "\nsecond line, not read\n")
    return captions


def test_urban1k_records_how_many_captions_the_tokenizer_truncates(tmp_path):
    from vlbench.datasets.images import FileImage
    from vlbench.encoding.encoder import Encoder
    from vlbench.models.openclip import OpenClipAdapter
    from vlbench.spec.catalog import Catalog

    captions = write_urban1k(tmp_path)
    result = vlbench.evaluate(SHIPPED, ["urban1k"], data_root=tmp_path, bootstrap_replicates=0, no_cache=True)["urban1k"]
    adapter = OpenClipAdapter(Catalog.load().resolve_model(SHIPPED), device="cpu")
    texts = [captions[name] + "\n" for name in sorted(captions)]  # the first line, as Long-CLIP reads it
    needed = [len(adapter.tokenizer.encode(t)) + 2 for t in texts]  # start and end tokens
    length = result.result.task.protocol_used["text_length"]
    assert length["context_length"] == 32 and length["captions_truncated"] == sum(n > 32 for n in needed) == 2
    assert length["share_truncated"] == 0.5
    assert [bool(s.get("truncated")) for s in result.samples if s["type"] == "text"] == [n > 32 for n in needed]
    assert "2 of 4 captions (50.0%) are longer than the model's 32-token text context" in result.note
    encoder = Encoder(adapter)  # Long-CLIP's R@1: the argmax of the similarities, both ways
    images = encoder.images([FileImage(str(tmp_path / "Urban1k" / "image" / f"{name}.jpg")) for name in sorted(captions)])
    similarity = (encoder.texts(texts) @ images.T).numpy()
    assert result.metrics["image_retrieval_recall@1"] == pytest.approx(np.mean(similarity.argmax(axis=1) == np.arange(4)))
    assert result.metrics["text_retrieval_recall@1"] == pytest.approx(np.mean(similarity.argmax(axis=0) == np.arange(4)))


def test_sharegpt4v_records_keep_the_first_n_and_join_lines(tmp_path):
    rows = [{"id": str(n), "image": f"coco/train2017/{n:012d}.jpg",
             "conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": f"A {c} square.\nIt is alone."}]}
            for n, c in enumerate(["red", "green", "blue", "yellow"])]
    (tmp_path / "sharegpt4v").mkdir()
    (tmp_path / "sharegpt4v" / "share.json").write_text(json.dumps(rows))
    for n, c in enumerate(["red", "green", "blue", "yellow"]):
        picture(tmp_path / "sharegpt4v" / "coco" / "train2017" / f"{n:012d}.jpg", c)
    options = RetrievalRecordsSource(format="records", annotation="share.json", image="image", caption="conversations.1.value", first=3,
                                     newlines="space")
    data = RetrievalRecordsReader().read(str(tmp_path / "sharegpt4v"), options, None, None)
    assert data.captions == [["A red square. It is alone."], ["A green square. It is alone."], ["A blue square. It is alone."]]
    assert data.images[2].path.endswith("sharegpt4v/coco/train2017/000000000002.jpg")


def test_docci_reads_its_test_split(tmp_path):
    rows = [{"example_id": f"{s}_{n}", "split": s, "image_file": f"{s}_{n}.jpg", "description": f"A {c} square{LONG}."}
            for n, (s, c) in enumerate([("train", "red"), ("test", "green"), ("test", "blue"), ("qual_test", "yellow")])]
    (tmp_path / "docci").mkdir()
    (tmp_path / "docci" / "docci_descriptions.jsonlines").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for row, c in zip(rows, COLOURS):
        picture(tmp_path / "docci" / "images" / row["image_file"], c)
    result = vlbench.evaluate(SHIPPED, ["docci"], data_root=tmp_path, bootstrap_replicates=0, no_cache=True)["docci"]
    assert sum(1 for s in result.samples if s["type"] == "image") == 2
    assert result.result.task.protocol_used["text_length"]["captions_truncated"] == 2  # every description here is past 32 tokens
