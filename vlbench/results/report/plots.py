"""Plotly figures for the report, embedded as JSON next to a div; plotly.js itself is one copied asset."""

from __future__ import annotations

import html
import json
from typing import Sequence

import plotly.graph_objects as go

CONFIG = {"responsive": True, "displaylogo": False}


def label(text: str) -> str:
    """Plotly reads a subset of HTML in labels; escape names so they show as written."""
    return html.escape(text, quote=False)


def script_json(payload: object) -> str:
    """JSON that is safe inside a <script> element (no '</script>' or '<!--' can close it)."""
    return json.dumps(payload, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def embed(figure: go.Figure, div_id: str) -> str:
    """A div and the script that draws ``figure`` into it (needs plotly.js loaded before)."""
    spec = json.loads(figure.to_json())
    return (
        f'<div class="plot" id="{html.escape(div_id)}"></div>\n'
        f"<script>Plotly.newPlot({script_json(div_id)}, {script_json(spec['data'])}, {script_json(spec['layout'])}, {script_json(CONFIG)});</script>"
    )


def _errors(values: Sequence[float | None], intervals: Sequence[tuple[float, float] | None]) -> dict | None:
    if not any(intervals):
        return None
    plus = [100 * (ci[1] - v) if ci and v is not None else 0 for v, ci in zip(values, intervals)]
    minus = [100 * (v - ci[0]) if ci and v is not None else 0 for v, ci in zip(values, intervals)]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1.5, "width": 6}


def bars(title: str, names: Sequence[str], values: Sequence[float | None], intervals: Sequence[tuple[float, float] | None], y_title: str) -> go.Figure:
    """One bar per model (percent), with 95% interval whiskers where known."""
    figure = go.Figure(
        go.Bar(
            x=[label(n) for n in names],
            y=[None if v is None else 100 * v for v in values],
            error_y=_errors(values, intervals),
            text=["" if v is None else f"{100 * v:.1f}" for v in values],
            textposition="outside",
            cliponaxis=False,
        )
    )
    figure.update_layout(title={"text": label(title)}, yaxis_title=label(y_title), margin={"t": 50, "b": 80}, height=420, template="plotly_white")
    return figure


def grouped_bars(title: str, categories: Sequence[str], series: dict[str, Sequence[float | None]], intervals: dict[str, Sequence[tuple[float, float] | None]] | None = None) -> go.Figure:
    """Categories (breakdown keys, suite members) on x, one bar per model in each."""
    figure = go.Figure()
    for name, values in series.items():
        figure.add_bar(
            name=label(name),
            x=[label(c) for c in categories],
            y=[None if v is None else 100 * v for v in values],
            error_y=_errors(values, (intervals or {}).get(name, [None] * len(values))),
        )
    figure.update_layout(title={"text": label(title)}, barmode="group", yaxis_title="%", margin={"t": 50, "b": 100}, height=440, template="plotly_white", legend={"orientation": "h", "y": -0.3})
    return figure
