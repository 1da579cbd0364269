"""The shipped vlbench-tiny model: small, recorded, and far above chance on scenes it never saw."""

import copy
import hashlib
import json

import pytest
from conftest import REPO

from vlbench.spec.catalog import Catalog
from vlbench.encoding.encoder import Encoder
from vlbench.kinds import TASK_KINDS
from vlbench.kinds.base import RunContext
from vlbench.models.openclip import OpenClipAdapter
from vlbench.spec.taskfile import TaskSpec

WEIGHTS = REPO / "vlbench" / "models" / "weights" / "vlbench-tiny@shapes.safetensors"
RECORD = WEIGHTS.with_suffix(".json")
UNSEEN_SEED = 31337  # training draws every scene from seed 1


def test_weights_are_small_and_match_their_record():
    assert WEIGHTS.stat().st_size < 10 * 1024 * 1024
    record = json.loads(RECORD.read_text())
    assert record["sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert record["architecture"] == "vlbench-tiny" and record["seconds"] < 20 * 60
    train_seed = record["train_seed_namespace"]
    catalog = Catalog.load()
    for task in catalog.suite_tasks("shapes"):
        assert catalog.load_task(task).dataset["sources"][0]["seed"] != train_seed, task
    assert UNSEEN_SEED != train_seed


@pytest.fixture(scope="module")
def tiny():
    return OpenClipAdapter(Catalog.load().resolve_model("openclip:vlbench-tiny"))


def evaluate(model, task: str, seed: int) -> dict:
    base = Catalog.load().load_task(task)
    config = copy.deepcopy(base.config)
    config["dataset"]["sources"][0]["seed"] = seed
    spec = TaskSpec(base.name, base.kind, base.source_file, config)
    kind = TASK_KINDS.get(spec.kind)()
    ctx = RunContext(data_root=REPO, encoder=Encoder(model, batch_size=100))
    data, _ = kind.load(spec, ctx)
    return kind.score(list(kind.predict(model, data, spec, ctx)), spec)


def test_alias_loads_the_shipped_weights(tiny):
    fingerprint = tiny.fingerprint()
    assert fingerprint["id"] == "openclip:vlbench-tiny@shapes"
    assert fingerprint["weights"] == "vlbench:vlbench-tiny@shapes"


def test_classification_on_unseen_scenes(tiny):
    assert evaluate(tiny, "shapes_cls", UNSEEN_SEED)["acc1"] >= 0.9


def test_retrieval_on_unseen_scenes(tiny):
    chance_at_5 = 5 / 300
    assert evaluate(tiny, "shapes_retrieval", UNSEEN_SEED)["image_retrieval_recall@5"] >= 3 * chance_at_5


def test_plain_vlbench_run_is_the_tiny_model_on_the_shapes_suite(shapes_suite_run):
    results, result = shapes_suite_run
    folder = results / "openclip__vlbench-tiny@shapes"
    catalog = Catalog.load()
    assert sorted(p.parent.name for p in folder.glob("*/*.json")) == sorted(catalog.suite_tasks("shapes"))  # <task>/<config hash>.json
    assert "shapes_cls" in result.stdout and "suite" in result.stdout
