"""ItemKNN: cosine item-item similarity from co-occurrence in training sequences, top-k neighbours kept.

A history scores item ``j`` as ``sum_t w_t * sim(h_t, j)`` over its items ``h_t``, with recency weights
``w_t = recency_decay ** (steps before the most recent item)``. Ties (items no history item points to) are
broken by a vanishing popularity prior, which is also what an empty history gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from models.base import EpochCallback, EvalData, FitReport, ModelConfig, Recommender, TrainData
from models.inputs import as_histories, check_train_data
from models.interactions import cooccurrence_block, interaction_matrix
from models.popularity import item_counts, popularity_prior
from models.validation import closed_form_report

STATE_FILE = "itemknn.npz"
BLOCK_ROWS = 1024  # similarity rows computed at once: BLOCK_ROWS x n_items floats in memory


class ItemKNNConfig(ModelConfig):
    neighbours: int = Field(50, ge=1, description="Neighbours kept per item (top-k by similarity).")
    shrink: float = Field(
        10.0, ge=0.0, description="Added to the cosine denominator; damps similarities of rare item pairs."
    )
    recency_decay: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Weight factor per step back in the history; 1.0 weighs all history items equally.",
    )


class ItemKNN(Recommender):
    name: ClassVar[str] = "itemknn"
    config_cls: ClassVar[type[ModelConfig]] = ItemKNNConfig
    config: ItemKNNConfig

    def __init__(self, config: ModelConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        k = min(self.config.neighbours, n_items)
        self.neighbour_ids = np.zeros((n_items, k), dtype=np.int64)  # (n_items, k)
        self.neighbour_sims = np.zeros((n_items, k), dtype=np.float32)  # (n_items, k)
        self.prior = np.zeros(n_items, dtype=np.float32)  # (n_items,)

    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        sequences = check_train_data(self, train)
        counts = item_counts(sequences, self.n_items)
        self.prior = popularity_prior(counts)
        x = interaction_matrix(sequences, self.n_items)  # (S, n_items) sparse binary
        x_t = x.t().coalesce()
        support = torch.bincount(x_t.indices()[0], minlength=self.n_items).float()  # (n_items,) sequences
        norms = support.sqrt()  # (n_items,)
        k = self.neighbour_ids.shape[1]
        for start in range(0, self.n_items, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, self.n_items)
            co = cooccurrence_block(x, x_t, start, stop)  # (blk, n_items)
            denominator = norms[start:stop, None] * norms[None, :] + self.config.shrink + 1e-12
            sim = co / denominator  # (blk, n_items) shrunk cosine
            sim[torch.arange(stop - start), torch.arange(start, stop)] = 0.0  # not its own neighbour
            top = torch.topk(sim, k, dim=1)
            self.neighbour_ids[start:stop] = top.indices.numpy()
            self.neighbour_sims[start:stop] = top.values.numpy()
        return closed_form_report(self, valid, on_epoch)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        hist = as_histories(histories, self.n_items)
        batch = len(hist)
        flat_cells: list[np.ndarray] = []
        flat_values: list[np.ndarray] = []
        for row, h in enumerate(hist):
            if not len(h):
                continue
            steps_back = np.arange(len(h) - 1, -1, -1, dtype=np.float64)  # (L,) oldest has the most
            weights = self.config.recency_decay**steps_back  # (L,)
            flat_cells.append(row * self.n_items + self.neighbour_ids[h].ravel())  # (L*k,)
            flat_values.append((weights[:, None] * self.neighbour_sims[h]).ravel())  # (L*k,)
        scores = np.zeros(batch * self.n_items, dtype=np.float64)
        if flat_cells:
            scores += np.bincount(
                np.concatenate(flat_cells),
                weights=np.concatenate(flat_values),
                minlength=batch * self.n_items,
            )
        return (scores.reshape(batch, self.n_items) + self.prior).astype(np.float32)  # (B, n_items)

    def _save_state(self, directory: Path) -> None:
        np.savez(
            directory / STATE_FILE,
            neighbour_ids=self.neighbour_ids,
            neighbour_sims=self.neighbour_sims,
            prior=self.prior,
        )

    def _load_state(self, directory: Path) -> None:
        with np.load(directory / STATE_FILE, allow_pickle=False) as state:
            self.neighbour_ids = state["neighbour_ids"].astype(np.int64)
            self.neighbour_sims = state["neighbour_sims"].astype(np.float32)
            self.prior = state["prior"].astype(np.float32)
