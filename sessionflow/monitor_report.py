"""The monitoring report as one self-contained HTML page (plots embedded) plus the PNGs on their own.

Read top to bottom: a status badge (green / red / insufficient data) and the checks that decided it, then
the pictures -- traffic, who gets shown (Lorenz curve), scores and popularity against the training-time
reference, what users did with what they saw -- then every number.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path

import numpy as np
from jinja2 import Environment, select_autoescape

from components.config import MonitorConfig
from components.monitoring import MonitorNumbers, lorenz

STATUS_COLOURS = {"green": "#1a7f37", "red": "#cf222e", "insufficient": "#6e7781"}
LIVE, REFERENCE = "#0969da", "#bf8700"

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionflow monitoring {{ n.window_end }}</title>
<style>
 body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1180px; color: #1f2328; }
 .badge { display: inline-block; padding: .3rem .9rem; border-radius: 1rem; color: #fff; font-weight: 600;
          background: {{ colour }}; text-transform: uppercase; letter-spacing: .05em; }
 table { border-collapse: collapse; margin: .6rem 0 1.4rem; }
 td, th { padding: .25rem .8rem; border-bottom: 1px solid #d0d7de; text-align: left; }
 td.num { text-align: right; font-variant-numeric: tabular-nums; }
 tr.fail td { background: #ffebe9; } tr.pass td { background: #dafbe1; } tr.na td { color: #6e7781; }
 .grid { display: grid; grid-template-columns: repeat(2, 1fr); gap: 1rem; }
 .grid img { width: 100%; border: 1px solid #d0d7de; border-radius: 6px; }
 .muted { color: #6e7781; }
</style></head><body>
<h1>Monitoring <span class="badge">{{ label }}</span></h1>
<p>Window <b>{{ n.window_start }}</b> to <b>{{ n.window_end }}</b>
 &middot; model <code>{{ n.model_tag or "n/a" }}</code>
 &middot; <b>{{ "%d"|format(n.metrics.requests or 0) }}</b> requests</p>
<p class="muted">{{ subtitle }}</p>
{% if n.status == "insufficient" %}
<p>Fewer than {{ cfg.min_requests }} requests in the window: nothing is judged.</p>
{% endif %}
<h2>Checks</h2>
<table><tr><th>metric</th><th>value</th><th>threshold</th><th>result</th></tr>
{% for c in n.checks %}
<tr class="{{ 'na' if c.passed is none else ('pass' if c.passed else 'fail') }}">
<td>{{ c.metric }}</td><td class="num">{{ fmt(c.value) }}</td>
<td class="num">{{ c.kind }} {{ fmt(c.threshold) }}</td>
<td>{{ "n/a" if c.passed is none else ("ok" if c.passed else "BROKEN") }}</td></tr>
{% endfor %}
</table>
<div class="grid">{% for title, png in plots %}
<figure><img alt="{{ title }}" src="data:image/png;base64,{{ png }}"></figure>
{% endfor %}</div>
<h2>All numbers</h2>
<table>{% for k, v in n.metrics.items() %}
<tr><td>{{ k }}</td><td class="num">{{ fmt(v) }}</td></tr>
{% endfor %}</table>
</body></html>
"""


def render_report(numbers: MonitorNumbers, cfg: MonitorConfig, out_dir: Path, subtitle: str = "") -> Path:
    """Write ``report.html`` (self-contained) and one PNG per plot into ``out_dir``; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    for name, title, draw in _PLOTS:
        fig = _figure()
        draw(fig.subplots(), numbers)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plots.append((title, base64.b64encode(path.read_bytes()).decode("ascii")))
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    label = {"insufficient": "insufficient data"}.get(numbers.status, numbers.status)
    html = env.from_string(_TEMPLATE).render(
        n=numbers,
        cfg=cfg,
        plots=plots,
        label=label,
        colour=STATUS_COLOURS[numbers.status],
        subtitle=subtitle,
        fmt=_fmt,
    )
    path = out_dir / "report.html"
    path.write_text(html)
    return path


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#6e7781")
    ax.set_xticks([])
    ax.set_yticks([])


def _traffic(ax, n: MonitorNumbers) -> None:
    ax.set_title("Requests per hour")
    if not n.requests_per_hour:
        return _empty(ax, "no requests in the window")
    hours = list(n.requests_per_hour)
    ax.bar(range(len(hours)), list(n.requests_per_hour.values()), color=LIVE)
    step = max(1, len(hours) // 6)
    ax.set_xticks(range(0, len(hours), step), [h[5:] for h in hours[::step]], rotation=30, fontsize=8)
    share = n.metrics.get("unknown_id_share")
    if share is not None:
        ax.text(0.99, 0.95, f"unknown ids: {share:.1%}", ha="right", va="top", transform=ax.transAxes)
    ax.grid(axis="y", alpha=0.3)


def _exposure(ax, n: MonitorNumbers) -> None:
    ax.set_title("Who gets shown: Lorenz curve of impressions")
    if not any(n.exposure):
        return _empty(ax, "nothing shown in the window")
    x, y = lorenz(n.exposure)
    ax.plot([0, 1], [0, 1], ls="--", color="#6e7781", label="every item equally")
    ax.plot(x, y, color=LIVE, lw=2, label="served")
    ax.fill_between(x, y, x, color=LIVE, alpha=0.12)
    gini, coverage = n.metrics.get("gini"), n.metrics.get("coverage")
    ax.text(0.04, 0.93, f"Gini {gini:.2f}\ncatalogue shown {coverage:.1%}", transform=ax.transAxes, va="top")
    ax.set_xlabel("share of catalogue items (least shown first)")
    ax.set_ylabel("share of impressions")
    ax.legend(loc="lower right", fontsize=8)


def _overlay(ax, live: list[float], reference: list[float], title: str, xlabel: str, note: str) -> None:
    ax.set_title(title)
    if not live and not reference:
        return _empty(ax, "no data")
    both = np.asarray(live + reference, dtype=float)
    bins = np.linspace(both.min(), both.max() if both.max() > both.min() else both.min() + 1, 30)
    if reference:
        ax.hist(reference, bins=bins, density=True, alpha=0.5, color=REFERENCE, label="training time")
    if live:
        ax.hist(live, bins=bins, density=True, alpha=0.5, color=LIVE, label="live")
    ax.set_xlabel(xlabel)
    ax.text(0.99, 0.95, note, ha="right", va="top", transform=ax.transAxes)
    ax.legend(loc="upper left", fontsize=8)


def _scores(ax, n: MonitorNumbers) -> None:
    m = n.metrics
    _overlay(ax, n.live_scores, n.reference_scores, "Scores of shown items (/recommend)", "model score",
             f"PSI {_fmt(m.get('score_psi'))}\nKS {_fmt(m.get('score_ks'))}")  # fmt: skip


def _popularity(ax, n: MonitorNumbers) -> None:
    m = n.metrics
    note = (
        f"PSI shown {_fmt(m.get('shown_popularity_psi'))}\nPSI asked {_fmt(m.get('request_popularity_psi'))}"
    )
    _overlay(ax, n.live_shown_popularity, n.reference_shown_popularity, "Popularity of shown items",
             "training popularity percentile (1 = most popular)", note)  # fmt: skip


def _feedback(ax, n: MonitorNumbers) -> None:
    ax.set_title("What users did with what they saw")
    if not n.feedback_counts:
        return _empty(ax, "no feedback in the window")
    events = sorted(n.feedback_counts, key=lambda e: -n.feedback_counts[e])
    colours = {"like": "#1a7f37", "click": LIVE, "dislike": "#cf222e", "skip": "#bc4c00"}
    counts = [n.feedback_counts[e] for e in events]
    ax.barh(events, counts, color=[colours.get(e, "#6e7781") for e in events])
    impressions = n.metrics.get("impressions") or 0
    for y, c in enumerate(counts):
        rate = f"  {c / impressions:.1%} of impressions" if impressions else ""
        ax.text(c, y, f" {c}{rate}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("events")
    ax.margins(x=0.45)


def _top_items(ax, n: MonitorNumbers) -> None:
    ax.set_title("Most shown items")
    if not n.top_items:
        return _empty(ax, "nothing shown in the window")
    ids = [i for i, _ in n.top_items][::-1]
    ax.barh(ids, [c for _, c in n.top_items][::-1], color=LIVE)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("impressions")


_PLOTS = (
    ("traffic", "Requests per hour", _traffic),
    ("exposure", "Lorenz curve of impressions", _exposure),
    ("scores", "Score drift", _scores),
    ("popularity", "Popularity drift", _popularity),
    ("feedback", "Feedback", _feedback),
    ("top_items", "Most shown items", _top_items),
)
