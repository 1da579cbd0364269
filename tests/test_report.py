"""``vlbench report``: the static site from one real run and two hand-made results, checked as files
and in a real headless browser (skipped where no chromium binary exists)."""

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO, TINY
from typer.testing import CliRunner

from vlbench.cli import app
from vlbench.results import write_json

HOSTILE = 'evil:<script>alert("x")</script>&co'
TASK = f"""task: mini_shapes_cls
kind: classification
version: 1
description: 60 shapes images <small> for the report test.
dataset:
  sources:
    - {{format: shapes, seed: 7, n: 60, size: 64}}
files:
  templates: {REPO / 'tasks/shapes/templates.txt'}
metrics: [acc1, acc5, mean_per_class_recall]
main_metric: acc1
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A real run of the random-init tiny model (JSON summary checked), plus two models made from it."""
    root = tmp_path_factory.mktemp("report")
    (root / "tasks").mkdir()
    (root / "tasks" / "mini_shapes_cls.yaml").write_text(TASK)
    (root / "tasks" / "mini_other.yaml").write_text(TASK.replace("mini_shapes_cls", "mini_other"))  # results made by hand below
    (root / "registry.yaml").write_text("suites:\n  mini: [mini_shapes_cls, mini_other]\nleaderboard:\n  columns: [mini]\n")
    out = root / "res"
    run = CliRunner().invoke(app, ["run", "--model", TINY, "--tasks", "mini_shapes_cls", "--tasks-dir", str(root / "tasks"), "--output", str(out),
                                   "--data-root", str(root), "--num-workers", "0", "--format", "json"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert summary["model"] == TINY and summary["tasks"][0]["status"] == "done" and summary["tasks"][0]["n"] == 60
    real = json.loads(open(summary["tasks"][0]["result_file"]).read())
    assert real["metrics"]["acc1"] == summary["tasks"][0]["value"]
    for k, model in enumerate((TINY, "hf:org/model-b", HOSTILE)):
        for task in ("mini_shapes_cls", "mini_other"):
            if k == 0 and task == "mini_shapes_cls":
                continue  # the real one
            value = min(0.9, real["metrics"]["acc1"] + 0.25 * k + (0.1 if task == "mini_other" else 0))
            payload = {**real, "model": {**real["model"], "id": model}, "task": {**real["task"], "name": task}}
            payload["metrics"] = {**real["metrics"], "acc1": value, "acc1/group a": value, "acc1/group <b>": value / 2}
            payload["ci"] = {"acc1": [max(0.0, value - 0.03), min(1.0, value + 0.03)]}
            payload["bootstrap"] = {"unit": "images", "replicates_n": 3, "seed": 0, "level": 0.95, "main_replicates": [value - 0.03, value, value + 0.03]}
            write_json(out / f"model{k}" / f"{task}.json", payload)
    return root


def build(root):
    site = root / "site"
    done = CliRunner().invoke(app, ["report", str(root / "res"), "--out", str(site), "--tasks-dir", str(root / "tasks"), "--registry", str(root / "registry.yaml")])
    assert done.exit_code == 0, done.output
    return site


def test_site_is_offline_and_escapes_names(results):
    site = build(results)
    index = (site / "index.html").read_text()
    task_page = (site / "tasks" / "mini_shapes_cls.html").read_text()
    assert (site / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    for page in (index, task_page):
        assert "<script>alert" not in page and "evil:&lt;script&gt;" in page
        assert not re.search(r'(src|href)="(https?:)?//', page), "the site must not load anything from the network"
    assert "&lt;small&gt;" in task_page  # the task description, escaped
    assert "Breakdown: acc1" in task_page and "group &lt;b&gt;" in task_page
    assert task_page.count("<details>") == 3  # provenance per result
    suite_page = (site / "suites" / "mini.html").read_text()
    assert 'href="../tasks/mini_other.html"' in suite_page
    assert re.search(r"<code>[0-9a-f]{64}</code>", task_page)  # files with sha256


def test_report_renders_in_a_headless_browser(results, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium binary on PATH (.ci/run installs Debian's chromium)")
    site = build(results)
    flags = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
             f"--user-data-dir={tmp_path / 'profile'}"]

    def render(page, *extra):
        dom = subprocess.run([*flags, *extra, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]  # console messages and uncaught errors
        assert dom.returncode == 0 and not console, "\n".join(console) or dom.stderr[-2000:]
        # plotly marks each div it has drawn into: no plot is left undrawn
        assert 'class="plot"' not in dom.stdout and dom.stdout.count('class="plot js-plotly-plot"') >= 2
        return dom.stdout

    shot = tmp_path / "index.png"  # kept in the test's folder for a look
    index = render(site / "index.html", f"--screenshot={shot}", "--window-size=1280,1600")
    rows = re.findall(r'<td class="model">(.*?)</td>', index)
    assert sorted(rows) == sorted([TINY, "hf:org/model-b", "evil:&lt;script&gt;alert(\"x\")&lt;/script&gt;&amp;co"])
    render(site / "tasks" / "mini_shapes_cls.html")
    assert shot.stat().st_size > 10_000
