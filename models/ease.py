"""EASE (Steck 2019): a closed-form linear item-item model with zero diagonal.

``P = (X^T X + lambda I)^-1``, ``B = I - P / diag(P)`` (column-wise), so ``diag(B) = 0``; a history
scores the catalogue as ``x @ B``. EASE's ``x`` is the binary item vector; here each item's entry is
``recency_decay ** (steps before the most recent item)`` of its latest occurrence, so the items a user met
last count most (the next-item task is sequential; 1.0 gives the paper's binary vector). Dense in
``n_items``: memory is ``n_items^2`` float32 for the weights (576 MB at 12k items) and float64 while solving.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from models.base import EpochCallback, EvalData, FitReport, ModelConfig, Recommender, TrainData
from models.inputs import as_histories, check_train_data
from models.interactions import interaction_matrix, item_item_cooccurrence
from models.popularity import item_counts, popularity_prior
from models.validation import closed_form_report

STATE_FILE = "ease.npz"


class EASEConfig(ModelConfig):
    l2: float = Field(
        100.0, gt=0.0, description="L2 regularisation lambda added to the Gram matrix diagonal."
    )
    recency_decay: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Weight of a history item per step back from the most recent one; 1.0 is EASE's "
        "binary history vector.",
    )

    saved_before_defaults: ClassVar[dict[str, Any]] = {"recency_decay": 1.0}  # EASE saved before 2026-12-02


def ease_weights(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """Closed-form EASE weights from the item Gram matrix. (n, n) -> (n, n) float64, zero diagonal."""
    g = gram.to(torch.float64).clone()  # (n, n)
    g.diagonal().add_(l2)
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))  # (n, n) symmetric positive definite inverse
    b = -p / p.diagonal()[None, :]  # B_ij = -P_ij / P_jj
    b.diagonal().zero_()
    return b


def history_vector_times(weights: np.ndarray, history: Sequence[int], decay: float) -> np.ndarray:
    """``x @ weights`` for the recency-weighted history vector ``x`` without building it: O(|h| N).

    ``x[i] = decay ** (steps from item i's latest occurrence to the end of the history)``, 0 elsewhere.
    weights (N, N), history (L,) -> (N,) float32.
    """
    h = np.asarray(history, dtype=np.int64)
    if not h.size:
        return np.zeros(weights.shape[1], dtype=np.float32)
    items, first_from_end = np.unique(h[::-1], return_index=True)  # steps back to each latest occurrence
    x = (decay ** first_from_end.astype(np.float64)).astype(np.float32)  # (U,)
    return x @ weights[items]  # (N,)


class EASE(Recommender):
    name: ClassVar[str] = "ease"
    config_cls: ClassVar[type[ModelConfig]] = EASEConfig
    config: EASEConfig

    def __init__(self, config: ModelConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        self.weights = np.zeros((n_items, n_items), dtype=np.float32)  # (n_items, n_items)
        self.prior = np.zeros(n_items, dtype=np.float32)  # (n_items,)

    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        sequences = check_train_data(self, train)
        self.prior = popularity_prior(item_counts(sequences, self.n_items))
        gram = item_item_cooccurrence(interaction_matrix(sequences, self.n_items))  # (n_items, n_items)
        self.weights = ease_weights(gram, self.config.l2).to(torch.float32).numpy()
        return closed_form_report(self, valid, on_epoch)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        hist = as_histories(histories, self.n_items)
        out = np.empty((len(hist), self.n_items), dtype=np.float32)  # (B, n_items)
        for row, h in enumerate(hist):
            out[row] = history_vector_times(self.weights, h, self.config.recency_decay)
        return out + self.prior  # (B, n_items)

    def _save_state(self, directory: Path) -> None:
        np.savez(directory / STATE_FILE, weights=self.weights, prior=self.prior)

    def _load_state(self, directory: Path) -> None:
        with np.load(directory / STATE_FILE, allow_pickle=False) as state:
            self.weights = state["weights"].astype(np.float32)
            self.prior = state["prior"].astype(np.float32)
