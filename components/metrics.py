"""Full-ranking metrics. Ranks are 0-based: rank 0 means the target was scored highest.

Ties are broken pessimistically: every other item with a score equal to the target's counts as ranked
above it, so a model cannot gain from constant scores.
"""

from __future__ import annotations

import numpy as np


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its row. scores (B, n_items), targets (B,) -> (B,) int64.

    Items scored -inf (excluded) rank below everything; a target scored -inf gets rank n_items.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(targets))
    t = scores[rows, targets][:, None]  # (B, 1)
    higher = (scores > t).sum(axis=1)
    ties = (scores == t).sum(axis=1) - 1
    ranks = (higher + ties).astype(np.int64)
    ranks[~np.isfinite(t[:, 0])] = scores.shape[1]
    return ranks


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """One relevant item per case: DCG = 1/log2(rank+2) when rank < k; ideal DCG = 1."""
    if not len(ranks):
        return 0.0
    gains = np.where(ranks < k, 1.0 / np.log2(ranks.astype(np.float64) + 2.0), 0.0)
    return float(gains.mean())


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    if not len(ranks):
        return 0.0
    return float(np.where(ranks < k, 1.0 / (ranks.astype(np.float64) + 1.0), 0.0).mean())


def catalogue_coverage(top_k: np.ndarray, n_items: int) -> float:
    """Share of the catalogue appearing in at least one top-k list. top_k (B, k) dense ids."""
    if n_items <= 0:
        return 0.0
    return float(len(np.unique(top_k)) / n_items)


def popularity_bias(top_k: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean popularity percentile (0 = rarest, 1 = most popular) of recommended items (ARP, normalised)."""
    if top_k.size == 0:
        return 0.0
    order = np.argsort(np.argsort(item_popularity, kind="stable"), kind="stable")
    percentile = order / max(len(item_popularity) - 1, 1)
    return float(percentile[top_k].mean())
