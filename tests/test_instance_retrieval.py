"""Image-to-image retrieval (revisited Oxford / Paris): mAP and mP@k against revisitop's compute_map written out
independently, on a ground-truth pickle in the real layout, and by hand."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

import vlbench
from vlbench.errors import VLBenchError
from vlbench.kinds import instance_retrieval as ir

SHIPPED = "openclip:vlbench-tiny@shapes"
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 40, 220), (230, 220, 30), (200, 40, 200), (30, 210, 210)]


def write_revisited(root, name="roxford5k"):
    """gnd_<name>.pkl as revisitop ships it (imlist, qimlist, gnd with bbx / easy / hard / junk) and jpg/."""
    (root / name / "jpg").mkdir(parents=True)
    database = [f"db_{i:03d}" for i in range(18)]
    for i, image in enumerate(database):
        picture = Image.new("RGB", (64, 48), COLOURS[i % 6])
        picture.paste((255 - 20 * (i // 6),) * 3, (4 + 10 * (i // 6), 4, 20 + 10 * (i // 6), 20))
        picture.save(root / name / "jpg" / f"{image}.jpg")
    queries = ["q_red", "q_green", "q_blue"]
    for q, colour in zip(queries, COLOURS):
        picture = Image.new("RGB", (80, 60), (128, 128, 128))
        picture.paste(colour, (10, 10, 60, 50))
        picture.save(root / name / "jpg" / f"{q}.jpg")
    gnd = [
        {"bbx": [10.0, 10.0, 60.0, 50.0], "easy": [0, 6], "hard": [12], "junk": [1]},
        {"bbx": [10.4, 9.6, 60.2, 50.0], "easy": [1], "hard": [7, 13], "junk": [0, 12]},
        {"bbx": [10.0, 10.0, 59.0, 49.0], "easy": [2, 8, 14], "hard": [], "junk": []},  # no hard image: left out of map_hard
    ]
    with open(root / name / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump({"imlist": database, "qimlist": queries, "gnd": gnd}, f)
    return database, queries, gnd


def revisitop_compute_map(ranks, gnd, kappas):
    """revisitop's python/evaluate.py compute_map / compute_ap, loop for loop (ranks: [database, queries])."""

    def compute_ap(positions, nres):
        ap = 0.0
        for j, rank in enumerate(positions):
            precision_0 = 1.0 if rank == 0 else float(j) / rank
            precision_1 = float(j + 1) / (rank + 1)
            ap += (precision_0 + precision_1) * (1.0 / nres) / 2.0
        return ap

    total, nempty, pr = 0.0, 0, np.zeros(len(kappas))
    for i in range(len(gnd)):
        qgnd = np.array(gnd[i]["ok"])
        if qgnd.shape[0] == 0:
            nempty += 1
            continue
        qgndj = np.array(gnd[i]["junk"])
        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
        k, ij = 0, 0
        if len(junk):
            ip = 0
            while ip < len(pos):
                while ij < len(junk) and pos[ip] > junk[ij]:
                    k += 1
                    ij += 1
                pos[ip] = pos[ip] - k
                ip += 1
        total += compute_ap(pos, len(qgnd))
        pos += 1
        for j, kappa in enumerate(kappas):
            kq = min(max(pos), kappa)
            pr[j] += (pos <= kq).sum() / kq
    return total / (len(gnd) - nempty), pr / (len(gnd) - nempty)


def test_average_precision_by_hand():
    assert ir.average_precision(np.array([1, 3])) == pytest.approx((0.5 / 2 + (1 / 3 + 2 / 4) / 2) / 2)
    record = {"easy": [0, 2], "hard": [], "junk": [1]}  # the junk image between them is taken out of the ranking
    assert ir.query_values(record, "map_medium") == 1.0 and ir.query_values(record, "mp@5_medium") == 1.0
    assert np.isnan(ir.query_values(record, "map_hard"))
    assert ir.query_values({"easy": [4], "hard": [], "junk": []}, "mp@10_easy") == pytest.approx(1 / 5)


def test_revisited_map_equals_revisitops_compute_map(tmp_path):
    from vlbench.datasets.images import FileImage
    from vlbench.encoding.encoder import Encoder
    from vlbench.models.openclip import OpenClipAdapter
    from vlbench.spec.catalog import Catalog

    database, queries, gnd = write_revisited(tmp_path)
    result = vlbench.evaluate(SHIPPED, ["roxford5k"], data_root=tmp_path, settings={"metrics": ["map_easy", "map_medium", "map_hard",
                              "mp@1_medium", "mp@5_hard", "mp@10_medium"]}, bootstrap_replicates=50, no_cache=True)["roxford5k"]
    encoder = Encoder(OpenClipAdapter(Catalog.load().resolve_model(SHIPPED), device="cpu"))
    jpg = tmp_path / "roxford5k" / "jpg"
    x = encoder.images([FileImage(str(jpg / f"{d}.jpg")) for d in database]).double().numpy()
    q = encoder.images([FileImage(str(jpg / f"{n}.jpg"), tuple(g["bbx"])) for n, g in zip(queries, gnd)]).double().numpy()
    ranks = np.argsort(-(x @ q.T), axis=0, kind="stable")  # revisitop's ranks, [database, queries]
    protocols = {  # example_evaluate.py
        "easy": [{"ok": g["easy"], "junk": g["junk"] + g["hard"]} for g in gnd],
        "medium": [{"ok": g["easy"] + g["hard"], "junk": g["junk"]} for g in gnd],
        "hard": [{"ok": g["hard"], "junk": g["junk"] + g["easy"]} for g in gnd],
    }
    expected = {}
    for protocol, ground in protocols.items():
        mean_ap, precisions = revisitop_compute_map(ranks.copy(), ground, [1, 5, 10])
        expected[f"map_{protocol}"] = mean_ap
        expected.update({f"mp@{k}_{protocol}": p for k, p in zip((1, 5, 10), precisions)})
    assert result.metrics == pytest.approx({name: expected[name] for name in result.metrics}, abs=1e-12)
    assert result.samples[0]["key"].endswith("q_red.jpg#crop=10,10,60,50")
    low, high = result.result.ci["map_medium"]
    assert low <= result.metrics["map_medium"] <= high


def test_a_ground_truth_pickle_that_asks_for_code_is_refused(tmp_path):
    write_revisited(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    with open(tmp_path / "roxford5k" / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump({"imlist": [], "qimlist": [], "gnd": [Evil()]}, f)
    with pytest.raises(VLBenchError, match="refusing to load .*gnd_roxford5k.pkl.*builtins.print"):
        vlbench.evaluate(SHIPPED, ["roxford5k"], data_root=tmp_path, no_cache=True)
