"""Validation scoring shared by every model: full-ranking NDCG@k on next-item cases.

Used inside ``fit`` for early stopping (torch models), for fitting fusion weights (hybrid) and for the
single reported validation point of the closed-form models. The evaluator (components/) owns the
reported test protocol; this module only needs to rank models consistently while they train.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.metrics import ndcg_at_k
from models.base import EpochCallback, EvalData, FitReport, Recommender

VALID_METRIC = "valid_ndcg@10"
VALID_K = 10


def ndcg_from_ranks(ranks: np.ndarray, k: int = VALID_K) -> float:
    return ndcg_at_k(ranks, k)


def exclude_seen(scores: np.ndarray, histories: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
    """Set the scores of items already in each history to -inf, in place. scores (B, n_items)."""
    for row, history in enumerate(histories):
        if len(history):
            scores[row, np.asarray(history, dtype=np.int64)] = -np.inf
    return scores


def check_pairs(valid: EvalData) -> None:
    if len(valid.histories) != len(valid.targets):
        raise ValueError(
            f"valid data: {len(valid.histories)} histories but {len(valid.targets)} targets; "
            "they must pair up"
        )


def valid_ndcg(
    model: Recommender,
    valid: EvalData,
    k: int = VALID_K,
    exclude_history: bool = True,
    batch_size: int = 512,
) -> float:
    """Full-ranking NDCG@k of ``model`` on ``valid``; seen items are excluded when ``exclude_history``."""
    check_pairs(valid)
    ranks: list[np.ndarray] = []
    for start in range(0, len(valid.histories), batch_size):
        histories = valid.histories[start : start + batch_size]
        targets = np.asarray(valid.targets[start : start + batch_size], dtype=np.int64)
        r, _ = model.rank_targets(histories, targets, k, exclude_history)  # type: ignore[arg-type]
        assert r is not None
        ranks.append(r)
    return ndcg_at_k(np.concatenate(ranks), k) if ranks else 0.0


def closed_form_report(
    model: Recommender, valid: EvalData | None, on_epoch: EpochCallback | None
) -> FitReport:
    """The one-'epoch' report of a model fitted in closed form: its validation NDCG@10 when ``valid``."""
    report = FitReport(epochs=1, device="cpu")
    metrics: dict[str, float] = {}
    if valid is not None:
        metrics[VALID_METRIC] = valid_ndcg(model, valid)
        report.curves[VALID_METRIC] = [metrics[VALID_METRIC]]
        report.best_epoch = 1
    if on_epoch is not None:
        on_epoch(1, metrics)
    return report
