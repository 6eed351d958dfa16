"""Validation scoring shared by every model: full-ranking NDCG@k on next-item cases.

Used inside ``fit`` for early stopping (torch models) and for the single reported validation point of
the closed-form models. The evaluator (components/) owns the reported test protocol; this module only
needs to rank models consistently while they train.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numpy as np

from components.metrics import ndcg_at_k, target_ranks
from models.base import EpochCallback, EvalData, FitReport

VALID_METRIC = "valid_ndcg@10"
VALID_K = 10

# scores histories -> (B, n_items) float32
Scorer = Callable[[Sequence[Sequence[int]]], np.ndarray]


def exclude_seen(scores: np.ndarray, histories: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
    """Set the scores of items already in each history to -inf, in place. scores (B, n_items)."""
    for row, history in enumerate(histories):
        if len(history):
            scores[row, np.asarray(history, dtype=np.int64)] = -np.inf
    return scores


def valid_ndcg(
    scorer: Scorer,
    valid: EvalData,
    k: int = VALID_K,
    exclude_history: bool = True,
    batch_size: int = 512,
) -> float:
    """Full-ranking NDCG@k of ``scorer`` on ``valid``; seen items are excluded when ``exclude_history``."""
    if len(valid.histories) != len(valid.targets):
        raise ValueError(
            f"valid data: {len(valid.histories)} histories but {len(valid.targets)} targets; "
            "they must pair up"
        )
    ranks: list[np.ndarray] = []
    for start in range(0, len(valid.histories), batch_size):
        histories = valid.histories[start : start + batch_size]
        targets = np.asarray(valid.targets[start : start + batch_size], dtype=np.int64)
        scores = np.array(
            scorer(cast(Sequence[Sequence[int]], histories)), dtype=np.float32
        )  # (B, n_items) copy
        if exclude_history:
            exclude_seen(scores, histories)
        ranks.append(target_ranks(scores, targets))
    return ndcg_at_k(np.concatenate(ranks), k) if ranks else 0.0


def closed_form_report(scorer: Scorer, valid: EvalData | None, on_epoch: EpochCallback | None) -> FitReport:
    """The one-'epoch' report of a model fitted in closed form: its validation NDCG@10 when ``valid``."""
    report = FitReport(epochs=1, device="cpu")
    metrics: dict[str, float] = {}
    if valid is not None:
        metrics[VALID_METRIC] = valid_ndcg(scorer, valid)
        report.curves[VALID_METRIC] = [metrics[VALID_METRIC]]
    if on_epoch is not None:
        on_epoch(1, metrics)
    return report
