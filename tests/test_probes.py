"""Linear probe, few-shot and k-NN kinds: each procedure against an independent implementation on the
same features (scikit-learn for the CLIP paper's probe, a loop for DINO's k-NN), the draws recorded and
rescored without the model, and the training split located, identified and described like the test split."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
import torch
from conftest import invoke

import vlbench
from vlbench.datasets.shapes import ShapesImage, classification_label
from vlbench.errors import VLBenchError
from vlbench.kinds import probe_fit

SHIPPED = "openclip:vlbench-tiny@shapes"
LIMIT = 300  # of each split


@pytest.fixture(scope="module")
def shapes_features():
    """The features the probe tasks fit on (the model's normalised image embeddings, as the kinds get them),
    in float64, and the labels; the procedures are then checked by independent code."""
    from vlbench.encoding.encoder import Encoder
    from vlbench.models.openclip import OpenClipAdapter
    from vlbench.spec.catalog import Catalog

    encoder = Encoder(OpenClipAdapter(Catalog.load().resolve_model(SHIPPED), device="cpu"))

    def encode(seed: int) -> tuple[np.ndarray, np.ndarray]:
        x = encoder.images([ShapesImage("single", seed, i, 128) for i in range(LIMIT)])
        return x.double().numpy(), np.array([classification_label(i) for i in range(LIMIT)])

    return {"train": encode(20251207), "test": encode(20240917)}


@pytest.fixture(scope="module")
def probe_results():
    return vlbench.evaluate(SHIPPED, ["probe_shapes_clip_paper", "knn_shapes", "fewshot4_shapes"], limit=LIMIT, bootstrap_replicates=50,
                            no_cache=True)


def reference_clip_paper(train_x, train_y, val_x, val_y, test_x):
    """The CLIP paper's sweep as written there (A.3): lambda over 1e-6..1e6 in 96 log steps, starting from the 7
    values 1e-6, 1e-4, ..., 1e6 and halving the interval around the best until one step; then fitted on all."""
    from sklearn.linear_model import LogisticRegression

    grid = np.logspace(-6, 6, 97)

    def accuracy(i):
        model = LogisticRegression(C=1 / grid[i], max_iter=1000, random_state=0).fit(train_x, train_y)
        return (model.predict(val_x) == val_y).mean()

    scores = {}
    best = max(range(0, 97, 16), key=lambda i: (scores.setdefault(i, accuracy(i)), -i))
    for half in (8, 4, 2, 1):
        for i in (best - half, best + half):
            if 0 <= i < 97 and i not in scores:
                scores[i] = accuracy(i)
        best = max((i for i in (best - half, best, best + half) if 0 <= i < 97), key=lambda i: (scores[i], -i))
    final = LogisticRegression(C=1 / grid[best], max_iter=1000, random_state=0).fit(np.concatenate([train_x, val_x]),
                                                                                   np.concatenate([train_y, val_y]))
    return final.predict(test_x), grid[best]


def test_the_clip_paper_probe_gives_an_independent_scikit_learn_scripts_predictions(probe_results, shapes_features):
    result = probe_results["probe_shapes_clip_paper"]
    (train_x, train_y), (test_x, _) = shapes_features["train"], shapes_features["test"]
    used = result.result.task.protocol_used
    fit, held = probe_fit.split_validation(LIMIT, 0.2, 0)
    predicted, strength = reference_clip_paper(train_x[fit], train_y[fit], train_x[held], train_y[held], test_x)
    assert [s["top"][0][0] for s in result.samples] == predicted.tolist()
    assert used["chosen"]["l2_strength"]["0"] == pytest.approx(strength) and used["method"] == "clip_paper"
    assert result.metrics["acc1"] == pytest.approx(np.mean(predicted == shapes_features["test"][1]))


def test_knn_equals_a_hand_written_weighted_vote(probe_results, shapes_features):
    (train_x, train_y), (test_x, test_y) = shapes_features["train"], shapes_features["test"]
    expected = []
    for query in test_x:
        similarity = train_x @ query
        votes = np.zeros(30)
        for j in np.argsort(-similarity, kind="stable")[:20]:
            votes[train_y[j]] += np.exp(similarity[j] / 0.07)
        expected.append(int(np.argmax(votes)))
    result = probe_results["knn_shapes"]
    assert [s["top"][0] for s in result.samples] == expected
    assert result.metrics["acc1"] == pytest.approx(np.mean(np.array(expected) == test_y))
    assert result.result.task.protocol_used["k"] == 20


def test_few_shot_draws_k_per_class_per_seed_and_reports_their_mean_and_spread(probe_results):
    result = probe_results["fewshot4_shapes"]
    assert all(len(s["top"]) == 3 for s in result.samples)  # one ranking per seed
    per_seed = [np.mean([s["top"][k][0] == s["label"] for s in result.samples]) for k in range(3)]
    assert result.metrics["acc1"] == pytest.approx(np.mean(per_seed)) and result.metrics["acc1_std"] == pytest.approx(np.std(per_seed))
    used = result.result.task.protocol_used
    assert used["seeds"] == [1, 2, 3] and used["fewshot_k"] == 4 and len(used["train_positions_sha256"]) == 16
    labels = [classification_label(i) for i in range(LIMIT)]
    for seed in (1, 2, 3):  # the first 4 of each class in a permutation seeded with the seed (CLIP_benchmark's fewshot_k)
        drawn = probe_fit.fewshot_indices(labels, 4, seed, "clip_benchmark")
        order = torch.randperm(LIMIT, generator=torch.Generator().manual_seed(seed)).tolist()
        assert drawn == [p for n, p in enumerate(order) if sum(labels[q] == labels[p] for q in order[:n]) < 4]
        assert sorted(np.bincount([labels[p] for p in drawn]).tolist()) == [4] * 30


def test_the_draws_are_saved_with_the_result_and_rescore_reproduces_it(tmp_path):
    from vlbench.results import schema as result_schema
    from vlbench.results.rescore import rescore

    results = vlbench.evaluate(SHIPPED, ["fewshot4_shapes"], limit=120, bootstrap_replicates=20, output=tmp_path, no_cache=True)
    path = results["fewshot4_shapes"].path
    saved = json.loads(path.read_text())
    with gzip.open(result_schema.read(path).artifact_file(path, "train_positions"), "rt") as f:
        positions = json.load(f)
    labels = [classification_label(i) for i in range(120)]
    assert positions["1"]["fit"] == probe_fit.fewshot_indices(labels, 4, 1, "clip_benchmark") and positions["1"]["validation"] == []
    assert rescore(path, result_schema.read(path)) == pytest.approx(saved["metrics"])


def test_coop_draws_follow_dassl_random_sample_per_class():
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    drawn = probe_fit.fewshot_indices(labels, 2, 5, "coop")
    rng = random.Random(5)
    assert drawn == [p for c in (0, 1, 2) for p in rng.sample([i for i, y in enumerate(labels) if y == c], 2)]
    with pytest.raises(VLBenchError, match="fewshot_k=5 needs that many training images of every class; class 0 has 4 \\(and 2 more classes are short\\)"):
        from vlbench.kinds.linear_probe import LinearProbeKind, LinearProbeProtocol

        LinearProbeKind.draw(labels, LinearProbeProtocol(fewshot_k=5, fewshot_rule="coop"), 0)


def test_the_clip_benchmark_probe_is_seeded_and_leaves_the_global_rng_alone():
    x = torch.nn.functional.normalize(torch.randn(200, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    y = torch.arange(200) % 4
    state = torch.random.get_rng_state()
    one = probe_fit.clip_benchmark_probe(x, y, x[:50], 4, lr=0.1, epochs=3, batch_size=32, seed=7, weight_decay=0.0, validation=None,
                                         refit_with_validation=True)[0]
    assert torch.equal(torch.random.get_rng_state(), state)
    two = probe_fit.clip_benchmark_probe(x, y, x[:50], 4, lr=0.1, epochs=3, batch_size=32, seed=7, weight_decay=0.0, validation=None,
                                         refit_with_validation=True)[0]
    assert torch.equal(one, two)
    searched, decay = probe_fit.clip_benchmark_probe(x[:150], y[:150], x[150:], 4, lr=0.1, epochs=2, batch_size=32, seed=7,
                                                     weight_decay=0.0, validation=(x[150:], y[150:]), refit_with_validation=True)
    assert decay in probe_fit.WEIGHT_DECAYS and searched.shape == (50, 4)


def test_the_training_split_is_located_identified_and_shown(tmp_path):
    shown = invoke(["show", "probe_shapes"])
    assert shown.returncode == 0 and "train_sources" in shown.stdout
    bad = tmp_path / "probe_bad.yaml"
    bad.write_text("task: probe_bad\nkind: linear_probe\nversion: 1\ndataset:\n  sources: [{format: shapes, seed: 1, n: 10, size: 64}]\n"
                   "metrics: [acc1]\nmain_metric: acc1\n")
    done = invoke(["run", "--tasks", str(bad), "-o", str(tmp_path / "out")])
    assert done.returncode != 0 and "dataset.train_sources" in done.stderr and "fit on a training split" in done.stderr


def test_a_missing_training_split_says_where_it_was_looked_for(tmp_path):
    from vlbench.kinds.linear_probe import LinearProbeKind
    from vlbench.spec.catalog import Catalog
    from vlbench.errors import DatasetNotFoundError

    spec = Catalog.load().load_task("probe_cifar10")
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match=r"training split for task 'probe_cifar10' not found; looked for: .*cifar layout at"):
        LinearProbeKind().locate(spec, tmp_path)
