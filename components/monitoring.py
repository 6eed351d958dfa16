"""Monitoring numbers over a window of served requests and feedback (pure: numpy/pandas only).

- ``reference_profile``: what a model recommends on held-out histories at training time (top-k scores,
  popularity of what it shows) plus the training popularity of every item. Saved in the bundle as
  ``reference.json``; the baseline live traffic is compared with.
- ``compute_report``: request volume, unknown-id share, catalogue coverage, Gini of exposure, feedback rates
  per impression, score and popularity drift (PSI and KS) against the reference; each number checked
  against ``MonitorConfig`` thresholds -> status ``green`` / ``red`` (a threshold broken) / ``insufficient``
  (fewer than ``min_requests`` requests: nothing is judged).

PSI (population stability index) uses 10 quantile bins of the reference and a 1e-4 floor per bin
(0.1 = moderate, 0.25 = large shift, by the usual rule of thumb); KS is the two-sample Kolmogorov-Smirnov
statistic (largest gap between the two empirical CDFs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.config import MonitorConfig
from models.base import EvalData, Recommender

REFERENCE_FILE = "reference.json"
PSI_BINS = 10
PSI_FLOOR = 1e-4
MODEL_SCORE_ENDPOINT = "recommend"  # plain /recommend: raw model scores, comparable with the reference


# ----------------------------------------------------------------------------------------------- statistics


def psi(
    reference: Sequence[float] | np.ndarray,
    live: Sequence[float] | np.ndarray,
    bins: int = PSI_BINS,
    reference_weights: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Population stability index of ``live`` against ``reference`` over quantile bins of the reference:
    sum((p_live - p_ref) * ln(p_live / p_ref)), each share floored at 1e-4. NaN when either is empty."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(live, dtype=np.float64)
    w = None if reference_weights is None else np.asarray(reference_weights, dtype=np.float64)
    if ref.size == 0 or cur.size == 0 or (w is not None and w.sum() <= 0):
        return float("nan")
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    inner = np.unique(_weighted_quantiles(ref, qs, w))
    ref_share = _shares(ref, inner, w)
    cur_share = _shares(cur, inner, None)
    ref_share = np.maximum(ref_share, PSI_FLOOR)
    cur_share = np.maximum(cur_share, PSI_FLOOR)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def ks_statistic(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup|F_a - F_b|; NaN when either sample is empty."""
    x, y = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if x.size == 0 or y.size == 0:
        return float("nan")
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / x.size
    fy = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def gini(counts: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of exposure counts over the whole catalogue (zeros included): 0 = every item shown
    equally often, -> 1 = everything shown is one item. NaN when nothing was shown."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


def lorenz(counts: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of exposure: (share of items, share of impressions), both from 0 to 1."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    total = x.sum()
    cum = np.concatenate([[0.0], np.cumsum(x) / total]) if total > 0 else np.zeros(x.size + 1)
    return np.linspace(0, 1, x.size + 1), cum


def popularity_percentiles(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per item, the share of catalogue items at most as popular (0..1, ties averaged)."""
    return pd.Series(np.asarray(counts, dtype=np.float64)).rank(pct=True, method="average").to_numpy()


def _weighted_quantiles(x: np.ndarray, qs: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    if w is None:
        return np.quantile(x, qs)
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    return xs[np.minimum(np.searchsorted(cw, qs * cw[-1], side="left"), xs.size - 1)]


def _shares(x: np.ndarray, edges: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    idx = np.searchsorted(edges, x, side="right")  # bin b holds edges[b-1] < x <= ... (right-closed)
    weights = np.ones_like(x) if w is None else w
    sums = np.bincount(idx, weights=weights, minlength=edges.size + 1)
    return sums / sums.sum()


# ------------------------------------------------------------------------------------------------ reference


def reference_profile(
    model: Recommender,
    data: EvalData,
    item_popularity: np.ndarray,
    k: int = 10,
    max_cases: int = 500,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:
    """What ``model`` shows for up to ``max_cases`` held-out histories: its top-``k`` scores and the
    popularity percentiles of those items, plus the training popularity of every item (vocabulary order)."""
    n = len(data.histories)
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(n, size=min(n, max_cases), replace=False).tolist()) if n else []
    percentile = popularity_percentiles(item_popularity)
    scores: list[float] = []
    shown_pct: list[float] = []
    kk = min(k, model.n_items)
    for start in range(0, len(picked), batch_size):
        histories = [data.histories[i] for i in picked[start : start + batch_size]]
        s = np.array(model.score(histories), dtype=np.float32, copy=True)  # (B, n_items)
        for row, history in enumerate(histories):
            if len(history):
                s[row, np.asarray(history, dtype=np.int64)] = -np.inf
            top = np.argpartition(-s[row], kk - 1)[:kk]
            top = top[np.isfinite(s[row, top])]
            scores += s[row, top].astype(float).tolist()
            shown_pct += percentile[top].astype(float).tolist()
    return {
        "k": k,
        "n_cases": len(picked),
        "scores": [round(v, 6) for v in scores],
        "shown_popularity": [round(v, 6) for v in shown_pct],
        "item_popularity": [int(c) for c in np.asarray(item_popularity)],
    }


# ---------------------------------------------------------------------------------------------------- report


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    value: float | None
    threshold: float
    kind: Literal["max", "min"]
    passed: bool | None = Field(description="None when the value could not be measured.")


class MonitorNumbers(BaseModel):
    """Everything the report shows, as numbers and series (plots are drawn from these)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    window_start: str
    window_end: str
    model_tag: str | None
    status: Literal["green", "red", "insufficient"]
    metrics: dict[str, float | None]
    checks: list[Check]
    requests_per_hour: dict[str, int] = Field(default_factory=dict)
    exposure: list[int] = Field(default_factory=list, description="impressions per catalogue item")
    top_items: list[tuple[str, int]] = Field(default_factory=list)
    live_scores: list[float] = Field(default_factory=list)
    reference_scores: list[float] = Field(default_factory=list)
    live_shown_popularity: list[float] = Field(default_factory=list)
    reference_shown_popularity: list[float] = Field(default_factory=list)
    feedback_counts: dict[str, int] = Field(default_factory=dict)

    @property
    def red(self) -> bool:
        return self.status == "red"

    @property
    def broken(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]


def compute_report(
    requests: pd.DataFrame,
    feedback: pd.DataFrame,
    item_ids: Sequence[str],
    reference: dict[str, Any] | None,
    cfg: MonitorConfig,
    window_start: pd.Timestamp,
    window_end: pd.Timestamp,
    model_tag: str | None = None,
) -> MonitorNumbers:
    """The monitoring numbers of one window. ``requests``: rows of components.request_log in the window;
    ``feedback``: canonical feedback events in the window; ``item_ids``: the served model's vocabulary
    (``reference["item_popularity"]`` is aligned with it); ``model_tag``: restrict model-level numbers
    (coverage, exposure, drift) to requests answered by that model."""
    ids = [str(i) for i in item_ids]
    index = {item: n for n, item in enumerate(ids)}
    m: dict[str, float | None] = {}
    m["requests"] = float(len(requests))
    for endpoint, n in requests["endpoint"].value_counts().items() if len(requests) else []:
        m[f"requests/{endpoint}"] = float(n)
    m["sessions"] = float(requests["session_id"].dropna().nunique()) if len(requests) else 0.0
    asked = [str(i) for row in requests.get("items", []) for i in row]
    unknown = [str(i) for row in requests.get("unknown", []) for i in row]
    m["asked_ids"] = float(len(asked))
    m["unknown_id_share"] = len(unknown) / len(asked) if asked else None

    own = (
        requests[requests["model_tag"] == model_tag] if model_tag is not None and len(requests) else requests
    )
    shown = [str(i) for row in own.get("shown", []) for i in row]
    exposure = np.zeros(len(ids), dtype=np.int64)
    for item, count in Counter(shown).items():
        if item in index:
            exposure[index[item]] += count
    m["impressions"] = float(len([s for row in requests.get("shown", []) for s in row]))
    m["catalogue_items"] = float(len(ids))
    m["coverage"] = float((exposure > 0).sum() / len(ids)) if ids and shown else None
    m["gini"] = _nan_none(gini(exposure)) if shown else None  # NaN: nothing shown is in the catalogue

    counts = Counter(feedback["event"].astype(str)) if len(feedback) else Counter()
    impressions = m["impressions"] or 0.0
    for event in ("click", "like", "dislike"):
        m[f"{event}_rate"] = counts.get(event, 0) / impressions if impressions else None
    m["feedback_events"] = float(len(feedback))

    plain = own[own["endpoint"] == MODEL_SCORE_ENDPOINT] if len(own) else own
    live_scores = [float(s) for row in plain.get("scores", []) for s in row]
    ref_scores = list((reference or {}).get("scores", []))
    m["score_psi"] = _nan_none(psi(ref_scores, live_scores)) if ref_scores else None
    m["score_ks"] = _nan_none(ks_statistic(ref_scores, live_scores)) if ref_scores else None
    popularity = np.asarray((reference or {}).get("item_popularity", []), dtype=np.float64)
    live_pct: list[float] = []
    ref_pct = list((reference or {}).get("shown_popularity", []))
    if popularity.size == len(ids) and popularity.size:
        pct = popularity_percentiles(popularity)
        live_pct = [
            float(pct[index[i]]) for row in plain.get("shown", []) for i in map(str, row) if i in index
        ]
        asked_pct = [float(pct[index[i]]) for i in asked if i in index]
        m["shown_popularity_psi"] = _nan_none(psi(ref_pct, live_pct)) if ref_pct else None
        # what users ask about vs what they interacted with in training (weighted by interactions)
        m["request_popularity_psi"] = _nan_none(psi(pct, asked_pct, reference_weights=popularity))
    else:
        m["shown_popularity_psi"] = m["request_popularity_psi"] = None

    checks = _checks(m, cfg)
    enough = len(requests) >= cfg.min_requests
    status: Literal["green", "red", "insufficient"] = (
        "insufficient" if not enough else "red" if any(c.passed is False for c in checks) else "green"
    )
    hours = (
        requests["ts"].dt.floor("h").dt.strftime("%Y-%m-%d %H:00").value_counts().sort_index()
        if len(requests)
        else pd.Series(dtype=int)
    )
    top = sorted(((ids[n], int(c)) for n, c in enumerate(exposure) if c), key=lambda t: -t[1])[:15]
    return MonitorNumbers(
        window_start=window_start.isoformat(),
        window_end=window_end.isoformat(),
        model_tag=model_tag,
        status=status,
        metrics=m,
        checks=checks,
        requests_per_hour={str(h): int(n) for h, n in hours.items()},
        exposure=exposure.tolist(),
        top_items=top,
        live_scores=live_scores,
        reference_scores=ref_scores,
        live_shown_popularity=live_pct,
        reference_shown_popularity=ref_pct,
        feedback_counts={str(k): int(v) for k, v in counts.items()},
    )


def _checks(m: dict[str, float | None], cfg: MonitorConfig) -> list[Check]:
    limits: list[tuple[str, float | None, Literal["max", "min"]]] = [
        ("unknown_id_share", cfg.max_unknown_id_share, "max"),
        ("coverage", cfg.min_coverage, "min"),
        ("gini", cfg.max_gini, "max"),
        ("dislike_rate", cfg.max_dislike_rate, "max"),
        ("click_rate", cfg.min_click_rate, "min"),
        ("score_psi", cfg.max_score_psi, "max"),
        ("shown_popularity_psi", cfg.max_popularity_psi, "max"),
        ("request_popularity_psi", cfg.max_popularity_psi, "max"),
    ]
    checks = []
    for metric, threshold, kind in limits:
        if threshold is None:
            continue
        value = m.get(metric)
        passed = None if value is None else (value <= threshold if kind == "max" else value >= threshold)
        checks.append(Check(metric=metric, value=value, threshold=threshold, kind=kind, passed=passed))
    return checks


def _nan_none(value: float) -> float | None:
    return None if value != value else value  # NaN -> None (JSON, MLflow)
