"""``vlbench report``: a static site from a results folder that works offline (file:// or any web server).

index.html (leaderboard, suite bars, scatter of two columns), tasks/<task>.html (metrics,
breakdowns, provenance per result), suites/<suite>.html (members); plotly.js copied once into assets/.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

from vlbench.results.tables import Board, interval_text, leaderboard_table_html, load_board, percent
from vlbench.spec.catalog import Catalog
from vlbench.errors import VLBenchError
from vlbench.results.housekeeping import writing
from vlbench.results.selection import Entry
from vlbench.results.schema import inside
from vlbench.results.report import plots
from vlbench.results.report.assets import SCATTER_SCRIPT, STYLE, TABLE_SCRIPT
from vlbench.results.io import atomic_write_bytes, atomic_write_text

e = html.escape
PLOTLY_ASSET = "plotly.min.js"


def page_name(name: str) -> str:
    """A file name for a task or suite page: the name when it is plain, else a sanitized name plus a short hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if safe != name or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return f"{safe}.html"


def build_site(results_dir: Path, catalog: Catalog, out: Path, include_partial: bool = False, settings: dict[str, str] | None = None,
               warn: Callable[[str], None] | None = None) -> tuple[Path, Board]:
    """Write the site into ``out`` (created; existing pages replaced) and return its index page; the
    cells are the runs ``load_board`` picks for ``settings`` / ``include_partial``."""
    if out.exists() and not out.is_dir():
        raise VLBenchError(f"--out {out} is a file; give a folder for the site")
    board = load_board(results_dir, catalog, include_partial, settings, warn)
    if not board.models:
        raise VLBenchError(f"no complete result files under {results_dir}; run 'vlbench run' first")
    tasks = sorted({t for row in board.entries.values() for t in row})
    suites = [s for s in board.columns if s in board.suites and any(board.cells[m][s].value is not None for m in board.models)]
    pages = [out / "index.html", *(out / "tasks" / page_name(t) for t in tasks), *(out / "suites" / page_name(s) for s in suites)]
    _check_site_layout(out, pages)
    with writing(out, "--out", "the report"):
        (out / "assets").mkdir(parents=True, exist_ok=True)
        _write_assets(out / "assets")
        for name in ("tasks", "suites"):
            (out / name).mkdir(exist_ok=True)
        for task in tasks:
            atomic_write_text(out / "tasks" / page_name(task), task_page(board, task, catalog))
        for suite in suites:
            atomic_write_text(out / "suites" / page_name(suite), suite_page(board, suite, catalog, set(tasks)))
        index = out / "index.html"
        atomic_write_text(index, index_page(board, set(tasks), suites))
    return index, board


def _check_site_layout(out: Path, pages: list[Path]) -> None:
    """Refuse (before writing anything) a site folder whose pages or folders are taken by something else."""
    for folder in (out / "assets", out / "tasks", out / "suites"):
        if folder.exists() and not folder.is_dir():
            raise VLBenchError(f"--out {out}: {folder} is a file where the report keeps a folder; remove it or choose another --out")
    for page in pages:
        if page.is_dir():
            raise VLBenchError(f"--out {out}: {page} is a folder where the report writes a page; remove it or choose another --out")


def _write_assets(folder: Path) -> None:
    from plotly.offline import get_plotlyjs

    target = folder / PLOTLY_ASSET
    data = get_plotlyjs().encode("utf-8")
    if not target.exists() or target.read_bytes() != data:
        atomic_write_bytes(target, data)
    atomic_write_text(folder / "style.css", STYLE)
    atomic_write_text(folder / "report.js", TABLE_SCRIPT)


def _page(title: str, body: str, depth: int, scripts: Iterable[str] = ()) -> str:
    up = "../" * depth
    extra = "".join(f"<script>{s}</script>" for s in scripts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><link rel=\"stylesheet\" href=\"{up}assets/style.css\">"
        f"<script src=\"{up}assets/{PLOTLY_ASSET}\"></script></head><body>"
        f"<nav><a href=\"{up}index.html\">vlbench report</a></nav><h1>{e(title)}</h1>\n{body}\n"
        f"<script src=\"{up}assets/report.js\"></script>{extra}</body></html>\n"
    )


def _linker(tasks: set[str], suites: Iterable[str], depth: int) -> Callable[[str], str | None]:
    up = "../" * depth
    suite_set = set(suites)

    def link(column: str) -> str | None:
        if column in suite_set:
            return f"{up}suites/{page_name(column)}"
        if column in tasks:
            return f"{up}tasks/{page_name(column)}"
        return None

    return link


def index_page(board: Board, tasks: set[str], suites: list[str]) -> str:
    parts = [
        f"<p class=\"muted\">{len(board.models)} model(s), {len(tasks)} task(s). Main metric of each task and suite aggregates in percent; "
        "the 95% bootstrap interval in brackets where the result carries one. Blue columns are suites; yellow cells used non-default settings "
        "(hover for which). Click a header to sort.</p>",
        '<h2 id="leaderboard">Leaderboard</h2><div class="scroll">',
        leaderboard_table_html(board, _linker(tasks, suites, 0)),
        "</div>",
    ]
    if board.partial:
        parts.append(f"<p class=\"muted\">{board.partial} cell(s) with only partial (--limit) runs left out.</p>")
    if board.other:
        parts.append(f"<p class=\"muted\">{board.other} cell(s) with only runs of other settings left out.</p>")
    shown = [c for c in board.columns if any(board.cells[m][c].value is not None for m in board.models)]
    for suite in suites:
        parts.append(plots.embed(_column_bars(board, suite), f"bars-{page_name(suite)}"))
    if len(shown) >= 2:
        x_default, y_default = (suites + [c for c in shown if c not in suites])[:2]
        options = "".join(f"<option>{e(c)}</option>" for c in shown)
        data = {"models": [plots.label(m) for m in board.models],
                "columns": {c: [None if board.cells[m][c].value is None else 100 * board.cells[m][c].value for m in board.models] for c in shown}}
        parts += [
            '<h2 id="two-columns">Two columns across models</h2>',
            f'<label>x <select id="scatter-x">{options}</select></label><label>y <select id="scatter-y">{options}</select></label>',
            '<div class="plot" id="scatter"></div>',
            f'<script type="application/json" id="scatter-data">{plots.script_json(data)}</script>',
            f"<script>document.getElementById('scatter-x').value = {plots.script_json(x_default)};"
            f"document.getElementById('scatter-y').value = {plots.script_json(y_default)};</script>",
        ]
    parts.append("<h2>Pages</h2><ul>" + "".join(
        f'<li><a href="suites/{e(page_name(s))}">{e(s)}</a> (suite)</li>' for s in suites) + "".join(
        f'<li><a href="tasks/{e(page_name(t))}">{e(t)}</a></li>' for t in sorted(tasks)) + "</ul>")
    scripts = [SCATTER_SCRIPT] if len(shown) >= 2 else []
    return _page("vlbench report", "\n".join(parts), 0, scripts)


def _column_bars(board: Board, column: str) -> Any:
    cells = [board.cells[m][column] for m in board.models]
    return plots.bars(f"{column} across models", board.models, [c.value for c in cells], [c.ci for c in cells], f"{column} (%)")


def task_page(board: Board, task: str, catalog: Catalog) -> str:
    models = [m for m in board.models if task in board.entries[m]]
    entries = {m: board.entries[m][task] for m in models}
    main = next(iter(entries.values())).result.main_metric
    parts = []
    description = _description(catalog, task)
    if description:
        parts.append(f"<p>{e(description)}</p>")
    in_suites = [s for s in catalog.suites if task in catalog.suite_tasks(s)]
    if in_suites:
        parts.append("<p class=\"muted\">In suites: " + ", ".join(e(s) for s in in_suites) + "</p>")
    parts.append(plots.embed(plots.bars(f"{task}: {main}", models, [board.cells[m][task].value for m in models], [board.cells[m][task].ci for m in models], f"{main} (%)"), "main-bars"))

    metric_names = [main] + sorted({k for m in models for k in entries[m].result.metrics if "/" not in k and k != main})
    parts.append("<h2>Metrics</h2>" + _metric_table(models, entries, metric_names))

    groups: dict[str, list[str]] = {}
    for m in models:
        for name in entries[m].result.metrics:
            if "/" in name:
                prefix = name.split("/", 1)[0]
                groups.setdefault(prefix, [])
                if name not in groups[prefix]:
                    groups[prefix].append(name)
    for number, (prefix, names) in enumerate(sorted(groups.items())):
        keys = [n.split("/", 1)[1] for n in names]
        parts.append(f"<h2>Breakdown: {e(prefix)}</h2>")
        series = {m: [_metric(entries[m], n) for n in names] for m in models}
        intervals = {m: [_intervals(entries[m]).get(n) for n in names] for m in models}
        parts.append(plots.embed(plots.grouped_bars(f"{prefix} per {_breakdown_unit(prefix)}", keys, series, intervals), f"breakdown-{number}"))
        parts.append(_breakdown_table(models, entries, names, keys))

    parts.append("<h2>Provenance</h2>")
    for m in models:
        parts.append(_provenance(m, entries[m]))
    return _page(f"task {task}", "\n".join(parts), 1)


def _breakdown_unit(prefix: str) -> str:
    return {"IoU": "class", "Acc": "class"}.get(prefix, "group")


def _metric(entry: Entry, name: str) -> float | None:
    value = entry.result.metrics.get(name)
    return None if value is None else float(value)


def _intervals(entry: Entry) -> dict[str, tuple[float, float]]:
    """The result's ``ci`` per metric, where both bounds are known."""
    return {name: (float(ci[0]), float(ci[1])) for name, ci in entry.result.ci.items() if ci and None not in ci}


def _value_cell(value: float | None, ci: tuple[float, float] | None) -> str:
    data = "" if value is None else f"{value:.6f}"
    extra = f' <span class="ci">{e(interval_text(ci))}</span>' if ci else ""
    return f'<td data-value="{data}">{percent(value, 2)}{extra}</td>'


def _metric_table(models: list[str], entries: dict[str, Entry], names: list[str]) -> str:
    head = '<th data-sort="text">model</th>' + "".join(f'<th data-sort="number">{e(n)}</th>' for n in names) + '<th data-sort="number">n</th><th data-sort="text">settings</th>'
    rows = []
    for m in models:
        intervals = _intervals(entries[m])
        cells = "".join(_value_cell(_metric(entries[m], n), intervals.get(n)) for n in names)
        n = entries[m].n
        rows.append(f'<tr><td class="model">{e(m)}</td>{cells}<td data-value="{n if n is not None else ""}">{n if n is not None else ""}</td><td class="name">{e(entries[m].settings_text)}</td></tr>')
    return f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _breakdown_table(models: list[str], entries: dict[str, Entry], names: list[str], keys: list[str]) -> str:
    head = '<th data-sort="text">key</th>' + "".join(f'<th data-sort="number">{e(m)}</th>' for m in models)
    rows = []
    for name, key in zip(names, keys):
        cells = "".join(_value_cell(_metric(entries[m], name), _intervals(entries[m]).get(name)) for m in models)
        rows.append(f'<tr><td class="name">{e(key)}</td>{cells}</tr>')
    return f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _provenance(model: str, entry: Entry) -> str:
    result = entry.result
    task = result.task
    files = []
    for role, record in sorted(task.files.items()):
        if isinstance(record, dict):
            lines = record.get("lines")
            count = f"{len(lines)} lines" if isinstance(lines, list) else ""
            files.append(f"<tr><td class=\"name\">{e(str(role))}</td><td class=\"name\">{e(str(record.get('path', '')))}</td><td class=\"name\"><code>{e(str(record.get('sha256', '')))}</code></td><td>{e(count)}</td></tr>")
    if entry.path is not None:
        # only files inside the result's folder are read (result_schema.inside)
        for label, path in (("result file", entry.path), ("samples", inside(entry.path.parent, result.samples))):
            if path is not None and path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                files.append(f"<tr><td class=\"name\">{e(label)}</td><td class=\"name\">{e(path.name)}</td><td class=\"name\"><code>{digest}</code></td><td></td></tr>")
    boot = {k: v for k, v in asdict(result.bootstrap).items() if k != "main_replicates"} if result.bootstrap else None
    settings = {
        "task version": task.version,
        "config hash": task.config_hash,
        "settings": result.settings,
        "run settings": task.run_settings,
        "overrides": task.overrides,
        "protocol used": task.protocol_used,
        "dataset": task.dataset,
        "bootstrap": boot,
        "created": result.created,
        "timing": result.timing,
    }
    blocks = [
        f"<h3>Model fingerprint</h3><pre>{e(_pretty(result.model.fingerprint or asdict(result.model)))}</pre>",
        f"<h3>Settings</h3><pre>{e(_pretty({k: v for k, v in settings.items() if v not in (None, {}, [], '')}))}</pre>",
        "<h3>Files</h3><table><thead><tr><th>role</th><th>path</th><th>sha256</th><th></th></tr></thead><tbody>" + "".join(files) + "</tbody></table>",
        f"<h3>Environment</h3><pre>{e(_pretty(result.env))}</pre>",
    ]
    return f"<details><summary>{e(model)}</summary>{''.join(blocks)}</details>"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _description(catalog: Catalog, name: str) -> str:
    if name in catalog.suites:
        return catalog.suites[name].description
    if name in catalog.tasks:
        try:
            return " ".join(catalog.load_task(name).description.split())
        except VLBenchError:
            return ""
    return ""


def suite_page(board: Board, suite: str, catalog: Catalog, tasks: set[str]) -> str:
    definition = catalog.suites[suite]
    members = catalog.suite_tasks(suite)
    parts = []
    description = _description(catalog, suite)
    if description:
        parts.append(f"<p>{e(description)}</p>")
    how = "items pooled over its tasks (main metrics weighted by item counts)" if definition.aggregate == "micro" else "the mean of its members (a member suite counts once)"
    parts.append(f"<p class=\"muted\">Aggregate: {e(definition.aggregate)}, {how}. Members: {', '.join(e(m) for m in definition.members)}.</p>")
    parts.append(plots.embed(_column_bars(board, suite), "suite-bars"))
    models = board.models
    series = {m: [board.entries[m][t].value if t in board.entries[m] else None for t in members] for m in models}
    intervals = {m: [board.cells[m][t].ci if t in board.entries[m] else None for t in members] for m in models}
    parts.append(plots.embed(plots.grouped_bars(f"{suite}: member tasks", members, series, intervals), "member-bars"))
    head = '<th data-sort="text">task</th>' + "".join(f'<th data-sort="number">{e(m)}</th>' for m in models)
    rows = []
    for task in members:
        label = f'<a href="../tasks/{e(page_name(task))}">{e(task)}</a>' if task in tasks else e(task)
        cells = "".join(_value_cell(board.cells[m][task].value, board.cells[m][task].ci) if task in board.entries[m] else '<td data-value=""></td>' for m in models)
        rows.append(f'<tr><td class="name">{label}</td>{cells}</tr>')
    total = "".join(_value_cell(board.cells[m][suite].value, board.cells[m][suite].ci) for m in models)
    rows.append(f'<tr><td class="name"><b>{e(suite)}</b></td>{total}</tr>')
    parts.append(f'<h2>Members</h2><div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return _page(f"suite {suite}", "\n".join(parts), 1)
