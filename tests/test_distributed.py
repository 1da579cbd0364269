"""Data parallel under torchrun: 2 CPU processes (gloo) give the 1-process results.

A rank encodes other batches than one process does (other sizes and members), and on some CPUs and
GPUs a batch's composition changes the last bits of an embedding. So metrics, intervals and every
per-item decision must be equal, and per-item scores equal to float rounding."""

import gzip
import json
import os
import socket
import subprocess
import sys

from conftest import REPO
from typer.testing import CliRunner

from vlbench.cli import app
from vlbench.distributed import World, world_from_env

# no persistent cache: the 1-process run must encode everything itself, not read the 2-process embeddings
# the trained tiny model: its decisions have margins far above float rounding (a random init has near-ties)
ARGS = ["run", "--model", "openclip:vlbench-tiny@shapes", "--tasks", "shapes", "--limit", "5", "--num-workers", "0", "--data-root", ".", "--no-cache",
        "--device", "cpu"]  # gloo, also where a GPU is present


def test_world_from_torchrun_variables_and_round_robin_shares():
    assert world_from_env({}) == World(0, 1, 0) and not World().active
    world = world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert world.active and not world.is_main
    assert world.mine(range(5)) == [1, 3] and World(0, 2).mine(range(5)) == [0, 2, 4]
    assert World(2, 3).mine(["a", "b"]) == []


def test_more_ranks_than_gpus_is_refused_with_the_fix(monkeypatch):
    import pytest
    import torch

    import vlbench.distributed as distributed
    from vlbench.errors import VLBenchError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for rank in ("0", "1"):  # rank 0 too: it must not wait for the rank that stopped
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", rank)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        with pytest.raises(VLBenchError, match=r"more processes on this machine than it has GPUs \(1\); use --nproc-per-node 1"):
            distributed.init("auto")


def test_two_gloo_processes_match_one_process(tmp_path, monkeypatch):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "vlbench", *ARGS, "--output", "res2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    # rank 1 prints nothing (stdout is a pipe: the table as TSV, its title on stderr)
    assert launched.stdout.count("loading model") == 1 and launched.stderr.count("vlbench results") == 1, (launched.stdout[-2000:], launched.stderr[-2000:])
    monkeypatch.chdir(tmp_path)
    single = CliRunner().invoke(app, [*ARGS, "--output", "res1"], catch_exceptions=False)
    assert single.exit_code == 0, single.output
    one, two = sorted((tmp_path / "res1").glob("*/*/*.json")), sorted((tmp_path / "res2").glob("*/*/*.json"))
    assert [p.relative_to(tmp_path / "res1") for p in one] == [p.relative_to(tmp_path / "res2") for p in two] and len(one) == 6
    assert not [p for p in (tmp_path / "res2").rglob("*") if p.name.startswith(".")]  # no stray temporary files
    for a_path, b_path in zip(one, two):
        a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
        assert a["metrics"] == b["metrics"] and a["ci"] == b["ci"], (a_path.parent.name, a["metrics"], b["metrics"])
        assert a["task"]["config_hash"] == b["task"]["config_hash"]
        assert (a["env"]["world_size"], b["env"]["world_size"]) == (1, 2)
        with gzip.open(a_path.parent / a["samples"], "rt") as fa, gzip.open(b_path.parent / b["samples"], "rt") as fb:
            records_a, records_b = [json.loads(line) for line in fa], [json.loads(line) for line in fb]
        assert len(records_a) == len(records_b) >= 5, a_path.name
        for ra, rb in zip(records_a, records_b):  # every per-item record, in the same order
            assert_same_record(ra, rb, f"{a_path.parent.name} item {ra.get('i')}")


def assert_same_record(a: object, b: object, where: str) -> None:
    """Equal structure and non-float values; floats equal to float32 rounding of unit-norm products."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-5, (where, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, a, b)
        for key in a:
            assert_same_record(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (where, a, b)
        for x, y in zip(a, b):
            assert_same_record(x, y, where)
    else:
        assert a == b, (where, a, b)


def test_the_evaluator_inside_a_ddp_job_shares_the_work_and_every_rank_gets_rank_0s_metrics(tmp_path):
    """The script's own process group (no vlbench setup); the same metrics as one process."""
    tasks, limit = "shapes_cls,shapes_attribute_swap", "40"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), "OMP_NUM_THREADS": "1"}
    script = str(REPO / "tests" / "ddp_evaluator.py")
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", script, tasks, limit],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"metrics.{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["has_results"] for r in ranks] == [True, False]
    assert ranks[0]["returned"] == ranks[1]["returned"]
    (tmp_path / "one").mkdir()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    single = subprocess.run([sys.executable, script, tasks, limit], capture_output=True, text=True, cwd=tmp_path / "one", timeout=300,
                            env={**env, "RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "LOCAL_RANK": "0"})
    assert single.returncode == 0, single.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "metrics.0.json").read_text())
    assert one["world"] == 1 and one["returned"] == ranks[0]["returned"]
    assert ranks[0]["returned"][0] != ranks[0]["returned"][1]  # the weights changed between the calls
