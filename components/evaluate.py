"""Offline evaluation: full ranking over the whole catalogue (never sampled negatives).

Metrics: HR@K, NDCG@K, MRR@K for every K in config; catalogue coverage@K and popularity bias@K of the
top-K lists; the same ranking metrics on slices of short and long histories, and of cold targets (items
training never showed; only with ``features.item_scope: catalogue``) and warm ones; scoring latency of
single requests (p50/p95 ms). With ``exclude_seen`` the items already in a history are removed from its
ranking.
"""

from __future__ import annotations

import time

import numpy as np

from components.config import EvaluateConfig
from components.metrics import (
    catalogue_coverage,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    popularity_bias,
)
from models.base import EvalData, Recommender


def rank_cases(model: Recommender, data: EvalData, cfg: EvaluateConfig) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of the targets (N,) and top-max(K) lists (N, Kmax) under the protocol.

    Every seen item leaves the ranking when ``exclude_seen`` (a repeated target too: it then counts as a
    miss; sparing only the target would leak it). Torch models rank on their device.
    """
    kmax = max(cfg.ks)
    n = len(data.targets)
    ranks = np.zeros(n, dtype=np.int64)
    top = np.zeros((n, min(kmax, model.n_items)), dtype=np.int64)
    for start in range(0, n, cfg.batch_size):
        stop = min(start + cfg.batch_size, n)
        r, t = model.rank_targets(
            data.histories[start:stop], np.asarray(data.targets[start:stop]), kmax, cfg.exclude_seen
        )
        assert r is not None
        ranks[start:stop] = r
        top[start:stop] = t
    return ranks, top


def ranking_metrics(ranks: np.ndarray, ks: list[int], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ks:
        out[f"{prefix}hr@{k}"] = hit_rate_at_k(ranks, k)
        out[f"{prefix}ndcg@{k}"] = ndcg_at_k(ranks, k)
        out[f"{prefix}mrr@{k}"] = mrr_at_k(ranks, k)
    return out


def evaluate(
    model: Recommender,
    data: EvalData,
    cfg: EvaluateConfig,
    item_popularity: np.ndarray,
    latency_samples: int = 50,
) -> dict[str, float]:
    """All offline metrics of ``model`` on ``data``."""
    if len(data.targets) == 0:
        raise ValueError("evaluation split is empty: no case has a target known to the training vocabulary")
    ranks, top = rank_cases(model, data, cfg)
    metrics = ranking_metrics(ranks, cfg.ks)
    for k in cfg.ks:
        metrics[f"coverage@{k}"] = catalogue_coverage(top[:, :k], model.n_items)
        metrics[f"popularity_bias@{k}"] = popularity_bias(top[:, :k], item_popularity)
    lengths = np.array([len(h) for h in data.histories])
    for name, mask in (
        ("short", lengths <= cfg.short_history_max),
        ("long", lengths > cfg.short_history_max),
    ):
        metrics[f"{name}/n_cases"] = float(mask.sum())
        if mask.any():
            metrics.update(ranking_metrics(ranks[mask], cfg.ks, prefix=f"{name}/"))
    cold = np.asarray(item_popularity)[np.asarray(data.targets, dtype=np.int64)] == 0
    if cold.any():  # targets training never showed (item_scope: catalogue): the cold-start slice
        for name, mask in (("cold", cold), ("warm", ~cold)):
            metrics[f"{name}/n_cases"] = float(mask.sum())
            if mask.any():
                metrics.update(ranking_metrics(ranks[mask], cfg.ks, prefix=f"{name}/"))
    metrics["n_cases"] = float(len(ranks))
    metrics.update(scoring_latency(model, data, latency_samples))
    return metrics


def scoring_latency(model: Recommender, data: EvalData, samples: int = 50) -> dict[str, float]:
    """Latency of scoring one history against the catalogue, like one /recommend call (ms)."""
    samples = min(samples, len(data.histories))
    if samples == 0:
        return {}
    model.score([data.histories[0].tolist()])  # warm-up
    times = []
    for h in data.histories[:samples]:
        t0 = time.perf_counter()
        model.score([h.tolist()])
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "latency_p50_ms": float(np.percentile(times, 50)),
        "latency_p95_ms": float(np.percentile(times, 95)),
    }


def protocol(cfg: EvaluateConfig, split: str) -> dict[str, object]:
    """The evaluation protocol, logged with every run."""
    return {
        "split": split,
        "ranking": "full",
        "ks": list(cfg.ks),
        "exclude_seen": cfg.exclude_seen,
        "short_history_max": cfg.short_history_max,
        "primary_metric": cfg.primary_metric,
    }
