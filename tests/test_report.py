"""``vlbench report``: the static site from the session's real shapes run plus hand-made results of two
more models, checked as files and in a real headless browser (skipped where no chromium binary exists);
and ``vlbench run --format json`` on those results."""

import json
import re
import shutil
import subprocess

import pytest
from conftest import TINY, invoke

from vlbench.results import schema as result_schema
from vlbench.results.io import write_json

DEFAULT_MODEL = "openclip:vlbench-tiny@shapes"  # what the plain `vlbench run` evaluates
HOSTILE = 'evil:<script>alert("x")</script>&co'
OTHER_TASK = """task: mini_other
kind: classification
version: 1
description: a task <small> whose results are made by hand in this test.
dataset:
  sources:
    - {format: shapes, seed: 7, n: 60, size: 64}
metrics: [acc1]
main_metric: acc1
"""


@pytest.fixture(scope="module")
def results(shapes_suite_run, tmp_path_factory):
    """A copy of the session's plain run, plus two more models (one with a hostile name) and a task
    ``mini_other`` made from its shapes_cls result."""
    real_dir, _ = shapes_suite_run
    root = tmp_path_factory.mktemp("report")
    shutil.copytree(real_dir, root / "res")
    (root / "tasks").mkdir()
    (root / "tasks" / "mini_other.yaml").write_text(OTHER_TASK)
    (root / "registry.yaml").write_text("suites:\n  mini: [shapes_cls, mini_other]\nleaderboard:\n  columns: [mini, shapes]\n")
    (path, real), = [(p, r) for p, r in result_schema.scan(root / "res") if r.task.name == "shapes_cls"]
    for k, model in enumerate((DEFAULT_MODEL, TINY, HOSTILE)):
        for task in ("shapes_cls", "mini_other"):
            if k == 0 and task == "shapes_cls":
                continue  # the real one
            value = min(0.9, real.metrics["acc1"] * 0.5 + 0.2 * k + (0.1 if task == "mini_other" else 0))
            payload = real.to_json()
            payload["model"] = {**payload["model"], "id": model}
            payload["task"] = {**payload["task"], "name": task}
            payload["metrics"] = {**real.metrics, "acc1": value, "acc1/group a": value, "acc1/group <b>": value / 2}
            payload["ci"] = {"acc1": [max(0.0, value - 0.03), min(1.0, value + 0.03)]}
            payload["bootstrap"] = {"unit": "images", "replicates_n": 3, "seed": 0, "level": 0.95, "main_replicates": [value - 0.03, value, value + 0.03]}
            target = result_schema.result_path(root / "res", f"model{k}", task, real.task.config_hash)
            write_json(target, payload)
            shutil.copy(real.samples_file(path), target.parent / real.samples)
    return root


def build(root, *extra):
    site = root / "site"
    done = invoke(["report", str(root / "res"), "--out", str(site), "--tasks-dir", str(root / "tasks"), "--registry", str(root / "registry.yaml"), *extra])
    assert done.returncode == 0, done.stderr
    return site


def test_site_is_offline_and_escapes_names(results):
    site = build(results)
    index = (site / "index.html").read_text()
    task_page = (site / "tasks" / "mini_other.html").read_text()
    assert (site / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    for page in (index, task_page):
        assert "<script>alert" not in page and "evil:&lt;script&gt;" in page
        assert not re.search(r'(src|href)="(https?:)?//', page), "the site must not load anything from the network"
    assert "&lt;small&gt;" in task_page  # the task description, escaped
    assert "Breakdown: acc1" in task_page and "group &lt;b&gt;" in task_page
    assert task_page.count("<details>") == 3  # provenance per result
    assert re.search(r"<code>[0-9a-f]{64}</code>", task_page)  # files with sha256
    suite_page = (site / "suites" / "mini.html").read_text()
    assert 'href="../tasks/mini_other.html"' in suite_page
    assert (site / "tasks" / "shapes_seg.html").is_file() and (site / "suites" / "shapes.html").is_file()


def test_report_renders_in_a_headless_browser(results, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium binary on PATH (.ci/run installs Debian's chromium)")
    site = build(results)
    shot = tmp_path / "index.png"  # kept in the test's folder for a look
    flags = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
             f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,1600"]
    dom = subprocess.run([*flags, "--dump-dom", (site / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]  # console messages and uncaught errors
    assert dom.returncode == 0 and not console, "\n".join(console) or dom.stderr[-2000:]
    # plotly marks each div it has drawn into: no plot is left undrawn
    assert 'class="plot"' not in dom.stdout and dom.stdout.count('class="plot js-plotly-plot"') >= 2
    rows = re.findall(r'<td class="model">(.*?)</td>', dom.stdout)
    assert sorted(rows) == sorted([DEFAULT_MODEL, TINY, "evil:&lt;script&gt;alert(\"x\")&lt;/script&gt;&amp;co"])
    assert shot.stat().st_size > 10_000


def test_run_format_json_is_the_summary_on_stdout(shapes_suite_run, monkeypatch):
    """A second plain run into the session's results finds every result (nothing is recomputed or
    written) and prints its summary as JSON only."""
    results, _ = shapes_suite_run
    monkeypatch.chdir(results.parent)
    monkeypatch.setenv("VLBENCH_DATA_ROOT", str(results.parent / "data"))
    monkeypatch.setenv("VLBENCH_CACHE", str(results.parent / "embedding-cache"))
    done = invoke(["run", "--format", "json"])
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert run["model"] == DEFAULT_MODEL and {t["status"] for t in run["tasks"]} == {"skipped"}
    stored = {r.task.name: r for _, r in result_schema.scan(results)}
    for task in run["tasks"]:
        assert task["value"] == stored[task["task"]].main_value and task["n"] == stored[task["task"]].n
    assert 0 <= run["suites"]["shapes"]["ci"][0] <= run["suites"]["shapes"]["value"] <= run["suites"]["shapes"]["ci"][1]
