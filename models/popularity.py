"""Popularity: every history gets the same scores, the item counts of the training sequences.

``item_counts`` is also the fallback other models use for empty histories.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from models.base import EpochCallback, EvalData, FitReport, ModelConfig, Recommender, TrainData
from models.inputs import as_histories, check_train_data
from models.validation import closed_form_report

COUNTS_FILE = "counts.npy"
PRIOR_SCALE = 1e-6  # popularity prior added to similarity scores: breaks ties, never outweighs a signal


def item_counts(sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """How often each item occurs in ``sequences`` (ids already checked). -> (n_items,) float32."""
    if not sequences:
        return np.zeros(n_items, dtype=np.float32)
    flat = np.concatenate([np.asarray(s, dtype=np.int64).ravel() for s in sequences])
    return np.bincount(flat, minlength=n_items).astype(np.float32)


def popularity_prior(counts: np.ndarray) -> np.ndarray:
    """Counts scaled into ``[0, PRIOR_SCALE]``, a tie-breaker for score-based models. -> (n_items,) f32."""
    return (counts / max(float(counts.max(initial=0.0)), 1.0) * PRIOR_SCALE).astype(np.float32)


class PopularityConfig(ModelConfig):
    """Popularity has nothing to tune beyond the shared seed."""


class Popularity(Recommender):
    name: ClassVar[str] = "popularity"
    config_cls: ClassVar[type[ModelConfig]] = PopularityConfig

    def __init__(self, config: ModelConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        self.counts = np.zeros(n_items, dtype=np.float32)  # (n_items,)

    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        sequences = check_train_data(self, train)
        self.counts = item_counts(sequences, self.n_items)
        return closed_form_report(self, valid, on_epoch)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        as_histories(histories, self.n_items)
        return np.tile(self.counts, (len(histories), 1))  # (B, n_items)

    def _save_state(self, directory: Path) -> None:
        np.save(directory / COUNTS_FILE, self.counts, allow_pickle=False)

    def _load_state(self, directory: Path) -> None:
        self.counts = np.load(directory / COUNTS_FILE, allow_pickle=False).astype(np.float32)
