"""Monitoring numbers against hand-computed values (components/monitoring.py) and the rendered report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from components.config import MonitorConfig
from components.monitoring import (
    compute_report,
    gini,
    ks_statistic,
    lorenz,
    popularity_percentiles,
    psi,
    reference_profile,
)

T0 = pd.Timestamp("2026-11-30T10:00:00Z")


def test_psi_by_hand():
    reference = np.arange(1, 11, dtype=float)  # deciles: edges 1.9, 2.8, ... -> one value per bin
    assert psi(reference, reference) == pytest.approx(0.0)
    # live: everything in the top bin -> 9 bins at the 1e-4 floor, one at 1.0 (reference 0.1 each)
    live = np.full(50, 10.0)
    expected = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1.0 - 0.1) * math.log(1.0 / 0.1)
    assert psi(reference, live) == pytest.approx(expected)
    assert math.isnan(psi([], [1.0])) and math.isnan(psi([1.0], []))


def test_psi_with_reference_weights_equals_the_expanded_sample():
    values, weights = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 3, 0, 6])
    live = [1.0, 2.0, 2.0, 4.0, 4.0, 4.0, 3.0]
    expanded = np.repeat(values, weights)
    assert psi(values, live, reference_weights=weights) == pytest.approx(psi(expanded, live))


def test_ks_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 300), rng.normal(0.4, 1.2, 200)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([0, 0], [5, 5]) == 1.0


def test_gini_and_lorenz_by_hand():
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 8]) == pytest.approx(0.75)  # (n - 1) / n for all on one item
    # sorted x = 1, 2, 3: sum((2i - n - 1) x_i) / (n sum x) = (-2*1 + 0*2 + 2*3) / (3*6) = 4/18
    assert gini([3, 1, 2]) == pytest.approx(4 / 18)
    assert math.isnan(gini([0, 0]))
    x, y = lorenz([3, 1, 2])
    assert x.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1]) and y.tolist() == pytest.approx(
        [0, 1 / 6, 3 / 6, 1]
    )


def test_popularity_percentiles():
    assert popularity_percentiles([10, 0, 5, 5]).tolist() == pytest.approx([1.0, 0.25, 0.625, 0.625])


def requests_frame(rows):
    df = pd.DataFrame(
        rows, columns=["ts", "endpoint", "model_tag", "session_id", "items", "unknown", "shown", "scores"]
    )
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def test_report_numbers_by_hand():
    ids = ["a", "b", "c", "d"]
    reference = {
        "scores": [0.1, 0.2, 0.3, 0.4],
        "shown_popularity": [1.0, 0.75],
        "item_popularity": [8, 4, 2, 1],
    }
    requests = requests_frame(
        [
            (T0, "recommend", "m:1", None, ["a", "x"], ["x"], ["b", "c"], [0.4, 0.3]),
            (T0 + pd.Timedelta("10min"), "recommend", "m:1", "s1", ["b"], [], ["b", "a"], [0.2, 0.1]),
            (T0 + pd.Timedelta("70min"), "chat", "m:1", "s1", [], [], ["b"], [2.5]),
        ]
    )
    feedback = pd.DataFrame({"event": ["click", "like", "dislike", "click"]})
    cfg = MonitorConfig(
        min_requests=3, max_unknown_id_share=0.2, max_gini=0.9, min_coverage=0.5, max_popularity_psi=None
    )
    n = compute_report(requests, feedback, ids, reference, cfg, T0, T0 + pd.Timedelta("2h"), "m:1")
    m = n.metrics
    assert m["requests"] == 3 and m["requests/recommend"] == 2 and m["requests/chat"] == 1
    assert m["sessions"] == 1
    assert m["unknown_id_share"] == pytest.approx(1 / 3)  # "x" of a, x, b
    assert m["impressions"] == 5 and m["coverage"] == pytest.approx(3 / 4)
    assert n.exposure == [1, 3, 1, 0]
    assert m["gini"] == pytest.approx(gini([1, 3, 1, 0]))
    assert m["click_rate"] == pytest.approx(2 / 5) and m["dislike_rate"] == pytest.approx(1 / 5)
    assert n.live_scores == [0.4, 0.3, 0.2, 0.1]  # /recommend only: chat scores are on another scale
    assert m["score_ks"] == pytest.approx(0.0) and m["score_psi"] == pytest.approx(0.0)
    assert n.requests_per_hour == {"2026-11-30 10:00": 2, "2026-11-30 11:00": 1}
    assert n.top_items[0] == ("b", 3)
    # percentiles of training counts 8, 4, 2, 1: a 1.0, b 0.75, c 0.5; shown by /recommend: b, c, b, a
    assert n.live_shown_popularity == [0.75, 0.5, 0.75, 1.0]
    assert m["shown_popularity_psi"] > 0.25 and m["request_popularity_psi"] is not None
    assert n.status == "red" and [c.metric for c in n.broken] == ["unknown_id_share"]

    relaxed = cfg.model_copy(update={"max_unknown_id_share": 0.5})
    assert compute_report(requests, feedback, ids, reference, relaxed, T0, T0, "m:1").status == "green"
    few = cfg.model_copy(update={"min_requests": 10})
    assert compute_report(requests, feedback, ids, reference, few, T0, T0, "m:1").status == "insufficient"


def test_report_of_an_empty_window_is_insufficient_not_an_error():
    n = compute_report(requests_frame([]), pd.DataFrame(), ["a"], None, MonitorConfig(), T0, T0, None)
    assert n.status == "insufficient" and n.metrics["requests"] == 0
    assert n.metrics["coverage"] is None and n.metrics["score_psi"] is None


def test_reference_profile_of_a_popularity_model():
    from models import TrainData, build_model
    from models.base import EvalData

    model = build_model("popularity", 5)
    model.fit(TrainData([np.array([0, 1, 1, 2, 2, 2])], 5))
    data = EvalData([np.array([2]), np.array([0, 1])], np.array([1, 3]))
    ref = reference_profile(model, data, np.array([1, 2, 3, 0, 0]), k=2)
    assert ref["n_cases"] == 2 and ref["item_popularity"] == [1, 2, 3, 0, 0]
    assert len(ref["scores"]) == len(ref["shown_popularity"]) == 4  # seen items excluded, 2 per case
    # case 1 (saw item 2): items 1, 0 -> percentiles 0.8, 0.6; case 2 (saw 0, 1): item 2 (1.0), 3 or 4 (0.3)
    assert sorted(ref["shown_popularity"]) == pytest.approx([0.3, 0.6, 0.8, 1.0])


def test_report_renders_html_with_plots(tmp_path):
    from sessionflow.monitor_report import render_report

    requests = requests_frame([(T0, "recommend", "m:1", None, ["a"], [], ["b", "c"], [0.4, 0.3])] * 3)
    reference = {"scores": [0.1, 0.5], "shown_popularity": [0.5], "item_popularity": [3, 2, 1]}
    feedback = pd.DataFrame({"event": ["like"]})
    n = compute_report(requests, feedback, ["a", "b", "c"], reference, MonitorConfig(), T0, T0, "m:1")
    html = render_report(n, MonitorConfig(), tmp_path).read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "insufficient data" in html and "m:1" in html and "<script" not in html
    for name in ("traffic", "exposure", "scores", "popularity", "feedback", "top_items"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
