"""Offline evaluation: full ranking over the whole catalogue (never sampled negatives).

Metrics: HR@K, NDCG@K, MRR@K for every K in config; catalogue coverage@K and popularity bias@K of the
top-K lists; the same ranking metrics on slices of short and long histories; scoring latency of single
requests (p50/p95 ms). With ``exclude_seen`` the items already in a history are removed from its ranking.
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
    target_ranks,
)
from models.base import EvalData, Recommender


def rank_cases(model: Recommender, data: EvalData, cfg: EvaluateConfig) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of the targets (N,) and top-max(K) lists (N, Kmax) under the protocol."""
    kmax = max(cfg.ks)
    n = len(data.targets)
    ranks = np.zeros(n, dtype=np.int64)
    top = np.zeros((n, min(kmax, model.n_items)), dtype=np.int64)
    for start in range(0, n, cfg.batch_size):
        stop = min(start + cfg.batch_size, n)
        histories = data.histories[start:stop]
        scores = np.array(model.score([h.tolist() for h in histories]), dtype=np.float32, copy=True)  # (B, I)
        if cfg.exclude_seen:
            for row, h in enumerate(histories):
                # every seen item leaves the ranking, a repeated target too (it then counts as a miss):
                # sparing only the target would leak it
                scores[row, h] = -np.inf
        ranks[start:stop] = target_ranks(scores, data.targets[start:stop])
        part = np.argpartition(-scores, top.shape[1] - 1, axis=1)[:, : top.shape[1]]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        top[start:stop] = np.take_along_axis(part, order, axis=1)
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
