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
def shapes_encoder():
    from vlbench.encoding.encoder import Encoder
    from vlbench.models.openclip import OpenClipAdapter
    from vlbench.spec.catalog import Catalog

    return Encoder(OpenClipAdapter(Catalog.load().resolve_model(SHIPPED), device="cpu"))


@pytest.fixture(scope="module")
def shapes_features(shapes_encoder):
    """The features the probe tasks fit on (the model's normalised image embeddings, as the kinds get them),
    in float64, and the labels; the procedures are then checked by independent code."""

    def encode(seed: int) -> tuple[np.ndarray, np.ndarray]:
        x = shapes_encoder.images([ShapesImage("single", seed, i, 128) for i in range(LIMIT)])
        return x.double().numpy(), np.array([classification_label(i) for i in range(LIMIT)])

    return {"train": encode(20251207), "test": encode(20240917)}


@pytest.fixture(scope="module")
def probe_results():
    return vlbench.evaluate(SHIPPED, ["probe_shapes_clip_paper", "knn_shapes", "fewshot4_shapes", "tipadapter4_shapes"], limit=LIMIT, bootstrap_replicates=50,
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


def official_tip_adapter(encoder, test_x, keys, key_labels, alpha, beta):
    """Tip-Adapter's training-free logits as its main.py / utils.py write them (clip_classifier: per class the mean of
    the normalised template embeddings, renormalised; cache logits exp(-(beta - beta * affinity)) @ one-hot values)."""
    from vlbench.datasets.shapes import object_classes

    templates = [line for line in open("tasks/shapes/templates.txt").read().splitlines() if line]
    weights = []
    for name in object_classes():
        embeddings = encoder.texts([t.replace("{c}", name) for t in templates]).double().numpy()
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        mean = embeddings.mean(axis=0)
        weights.append(mean / np.linalg.norm(mean))
    clip_weights = np.stack(weights, axis=1)
    values = np.eye(clip_weights.shape[1])[key_labels]
    return 100.0 * test_x @ clip_weights + alpha * np.exp(-1 * (beta - beta * (test_x @ keys.T))) @ values


def test_tip_adapter_equals_the_official_formula_on_each_seeds_shots(probe_results, shapes_features, shapes_encoder):
    (train_x, train_y), (test_x, _) = shapes_features["train"], shapes_features["test"]
    result = probe_results["tipadapter4_shapes"]
    used = result.result.task.protocol_used
    assert used["method"] == "tip_adapter" and used["alpha"] == 1.0 and used["beta"] == 1.0
    for k, seed in enumerate((1, 2, 3)):
        shots = probe_fit.fewshot_indices(train_y.tolist(), 4, seed, "coop")
        logits = official_tip_adapter(shapes_encoder, test_x, train_x[shots], train_y[shots], 1.0, 1.0)
        assert [s["top"][k][0] for s in result.samples] == logits.argmax(axis=1).tolist()


def test_tip_adapter_search_follows_the_official_search_hp_loop():
    rng = np.random.default_rng(0)
    keys = torch.nn.functional.normalize(torch.randn(40, 16, dtype=torch.float64), dim=1)
    key_labels = torch.arange(40) % 8
    classifier = torch.nn.functional.normalize(torch.randn(8, 16, dtype=torch.float64), dim=1)
    val_x = torch.nn.functional.normalize(keys[rng.integers(0, 40, 60)] + 0.8 * torch.randn(60, 16, dtype=torch.float64), dim=1)
    val_y = key_labels[torch.as_tensor(rng.integers(0, 40, 60))]
    betas, alphas = [i * (7 - 0.1) / 30 + 0.1 for i in range(30)], [i * (3 - 0.1) / 10 + 0.1 for i in range(10)]
    best_acc, best = 0.0, (0.0, 0.0)
    for beta in betas:  # utils.py search_hp
        for alpha in alphas:
            cache = torch.exp(-1 * (beta - beta * (val_x @ keys.T))) @ torch.nn.functional.one_hot(key_labels, 8).double()
            acc = float(((100.0 * val_x @ classifier.T + cache * alpha).argmax(1) == val_y).double().mean())
            if acc > best_acc:
                best_acc, best = acc, (beta, alpha)
    assert probe_fit.tip_adapter_grid(7, 30) == pytest.approx(betas) and probe_fit.tip_adapter_grid(3, 10) == pytest.approx(alphas)
    assert probe_fit.tip_adapter_search(val_x, val_y, keys, key_labels, classifier, betas, alphas) == best


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


def write_coop_dtd(root, per_class=(5, 2, 3)):
    """A CoOp DTD folder in the real layout: split_zhou_DescribableTextures.json ([path, label, class name] lists) and images/."""
    from PIL import Image

    names = ["banded", "zig_zagged", "dotted", "striped"]
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    split = {}
    for part, count in zip(("train", "val", "test"), per_class):
        rows = []
        for label, name in enumerate(names):
            for n in range(count):
                path = f"{name}/{name}_{part}_{n}.jpg"
                (root / "dtd" / "images" / name).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (40 + n, 40), colours[label]).save(root / "dtd" / "images" / path)
                rows.append([path, label, name])
        split[part] = rows
    (root / "dtd" / "split_zhou_DescribableTextures.json").write_text(json.dumps(split))
    return split


def test_coop_split_tasks_read_coops_split_file_and_draw_its_shots(tmp_path):
    split = write_coop_dtd(tmp_path / "data")
    results = vlbench.evaluate(SHIPPED, ["tipadapter16_dtd"], data_root=tmp_path / "data", settings={"protocol.fewshot_k": 2},
                               bootstrap_replicates=20, no_cache=True)
    result = results["tipadapter16_dtd"]
    assert [s["label"] for s in result.samples] == [label for _, label, _ in split["test"]]
    inputs = result.result.task.inputs["files"]
    assert any(name.endswith("split_zhou_DescribableTextures.json") for name in inputs)
    assert any(name.startswith("train:") for name in inputs)
    used = result.result.task.protocol_used
    assert used["fewshot_k"] == 2 and used["fewshot_rule"] == "coop" and used["method"] == "tip_adapter"
    train_labels = [label for _, label, _ in split["train"]]
    for seed in (1, 2, 3):  # Dassl: per class in order of appearance, random.sample of k after seeding
        draw = random.Random(seed)
        expected = [p for c in range(4) for p in draw.sample([i for i, y in enumerate(train_labels) if y == c], 2)]
        assert probe_fit.fewshot_indices(train_labels, 2, seed, "coop") == expected
    from vlbench.datasets.classification import CoopSplitReader, CoopSplitSource

    data = CoopSplitReader().read(str(tmp_path / "data" / "dtd"), CoopSplitSource(format="coop_split", split_file="split_zhou_DescribableTextures.json",
                                                                              images_dir="images", split="val"), None, None)
    assert data.classnames == ["banded", "zig zagged", "dotted", "striped"] and len(data.images) == 8
    assert data.images[0].path.endswith("dtd/images/banded/banded_val_0.jpg")


def test_a_malformed_coop_split_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "dtd").mkdir()
    (tmp_path / "dtd" / "split_zhou_DescribableTextures.json").write_text(json.dumps({"train": [], "test": [["a.jpg", 0]]}))
    with pytest.raises(VLBenchError, match="is not a CoOp split file"):
        vlbench.evaluate(SHIPPED, ["tipadapter16_dtd"], data_root=tmp_path, no_cache=True)


def test_the_aircraft_reader_reads_the_releases_variant_lists(tmp_path):
    from PIL import Image

    from vlbench.datasets.classification import AircraftReader, AircraftSource

    (tmp_path / "images").mkdir()
    (tmp_path / "variants.txt").write_text("707-320\nA300B4\nF/A-18\n")
    (tmp_path / "images_variant_test.txt").write_text("0056978 A300B4\n1514522 F/A-18\n0034309 707-320\n")
    for image_id in ("0056978", "1514522", "0034309"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / f"{image_id}.jpg")
    data = AircraftReader().read(str(tmp_path), AircraftSource(format="fgvc_aircraft", split="test"), None, None)
    assert data.labels == [1, 2, 0] and data.classnames == ["707-320", "A300B4", "F/A-18"]
    assert data.images[1].path.endswith("images/1514522.jpg")
    (tmp_path / "images_variant_test.txt").write_text("0056978 A310\n")
    with pytest.raises(VLBenchError, match="variant 'A310' is not in"):
        AircraftReader().read(str(tmp_path), AircraftSource(format="fgvc_aircraft", split="test"), None, None)


def test_the_torch_lbfgs_solver_reaches_scikit_learns_solution(shapes_features):
    from sklearn.linear_model import LogisticRegression

    (train_x, train_y), (test_x, _) = shapes_features["train"], shapes_features["test"]
    for strength in (1e-3, 1e-1, 10.0):
        reference = LogisticRegression(C=1 / strength, max_iter=10000, tol=1e-10).fit(train_x, train_y)
        fitted = probe_fit.TorchLogistic(strength, 10000, tol=1e-10).fit(train_x, train_y)
        assert np.abs(fitted.coef_ - reference.coef_).max() < 1e-3 * max(1.0, np.abs(reference.coef_).max())
        assert (fitted.predict(test_x) == reference.predict(test_x)).all()
    binary = (train_y % 2).astype(int)  # two classes: one binomial weight vector, as scikit-learn
    reference = LogisticRegression(C=1.0, max_iter=10000, tol=1e-10).fit(train_x, binary)
    fitted = probe_fit.TorchLogistic(1.0, 10000, tol=1e-10).fit(train_x, binary)
    assert fitted.coef_.shape == reference.coef_.shape and np.abs(fitted.coef_ - reference.coef_).max() < 1e-4
    assert (fitted.predict(test_x) == reference.predict(test_x)).all()


def test_the_clip_paper_probe_with_the_torch_solver_predicts_as_scikit_learn(probe_results):
    sklearn_run = probe_results["probe_shapes_clip_paper"]
    torch_run = vlbench.evaluate(SHIPPED, ["probe_shapes_clip_paper"], limit=LIMIT, settings={"protocol.solver": "torch"},
                                 bootstrap_replicates=0, no_cache=True)["probe_shapes_clip_paper"]
    used = torch_run.result.task.protocol_used
    assert used["solver"] == "torch" and used["solver_device"] == "cpu" and "torch" in used
    # at weak L2 the validation accuracy is flat, so the search may stop one step apart (both solvers stop at tol 1e-4)
    chosen = [run.result.task.protocol_used["chosen"]["l2_strength"]["0"] for run in (torch_run, sklearn_run)]
    assert abs(np.log10(chosen[0]) - np.log10(chosen[1])) <= 2 * 12 / 96 + 1e-9
    same = np.mean([a["top"][0][0] == b["top"][0][0] for a, b in zip(torch_run.samples, sklearn_run.samples)])
    assert same >= 0.98
