"""Items a trained model has never seen, scored from their text until the next retrain (catalogue churn).

``NewItems`` describes the items appended after the model's catalogue (dense ids ``n_items ..
n_items + M - 1``): for each, its nearest trained items by text embedding (with weights) and optionally its
text embedding in the model's own text space. ``Recommender.with_new_items`` returns a model over
``n_items + M`` items:

- by default ``NeighbourScored``: a new item scores what the model gives its text neighbours (their scores
  averaged with the weights), and a new item inside a history stands for its nearest trained item. It has no
  collaborative signal of its own, so it ranks next to the trained items its text resembles;
- text-aware models (``TextSASRec``) score them natively: a new item's representation is its text
  projection, as for the cold items of training.

Serving only: these models are never fitted or saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from models.base import EpochCallback, EvalData, FitReport, ModelConfig, Recommender, TrainData
from models.inputs import as_histories


@dataclass(frozen=True)
class NewItems:
    """M items appended to a model's catalogue."""

    neighbours: np.ndarray  # (M, K) int64 dense ids of trained items, nearest by text first
    weights: np.ndarray  # (M, K) float32, each row sums to 1
    text: np.ndarray | None = None  # (M, E) float32 text embeddings in the model's text space, if it has one

    def __post_init__(self) -> None:
        if self.neighbours.ndim != 2 or self.neighbours.shape != self.weights.shape:
            raise ValueError(
                f"new items: neighbours {self.neighbours.shape} and weights {self.weights.shape} must both "
                "be (M, K)"
            )
        if self.text is not None and len(self.text) != len(self.neighbours):
            raise ValueError(f"new items: {len(self.text)} text rows for {len(self.neighbours)} items")

    def __len__(self) -> int:
        return int(self.neighbours.shape[0])


class NeighbourScored(Recommender):
    """``base`` over its own items plus ``new`` items scored through their text neighbours."""

    name: ClassVar[str] = "neighbour-scored"
    config_cls: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, base: Recommender, new: NewItems) -> None:
        super().__init__(base.config, base.n_items + len(new))
        if len(new) and (new.neighbours.min() < 0 or new.neighbours.max() >= base.n_items):
            raise ValueError(f"new items: neighbours must be trained items 0..{base.n_items - 1}")
        self.base = base
        self.new = new
        self._proxy = new.neighbours[:, 0] if len(new) else np.zeros(0, np.int64)  # (M,)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        n = self.base.n_items
        mapped = [
            np.where(h >= n, self._proxy[np.maximum(h - n, 0)], h)
            for h in as_histories(histories, self.n_items)
        ]
        base = np.asarray(self.base.score(mapped), dtype=np.float32)  # (B, n)
        new = (base[:, self.new.neighbours] * self.new.weights[None]).sum(axis=2)  # (B, M)
        return np.concatenate([base, new.astype(np.float32)], axis=1)  # (B, n + M)

    def fit(
        self, train: TrainData, valid: EvalData | None = None, on_epoch: EpochCallback | None = None
    ) -> FitReport:
        raise NotImplementedError("a model extended with new items serves only; retrain to learn them")

    def _save_state(self, directory: Path) -> None:
        raise NotImplementedError("a model extended with new items is never saved; save its base model")

    def _load_state(self, directory: Path) -> None:
        raise NotImplementedError("a model extended with new items is never loaded")


def text_neighbours(
    new: np.ndarray, trained: np.ndarray, k: int = 10, sharpness: float = 20.0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` trained items nearest each new one by cosine of unit text vectors, and their weights
    (softmax of ``sharpness`` x cosine: the nearest few dominate). (M, E), (N, E) -> (M, k), (M, k)."""
    k = min(k, len(trained))
    sims = np.asarray(new, np.float32) @ np.asarray(trained, np.float32).T  # (M, N)
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (M, k)
    top = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    part, top = np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)
    w = np.exp(sharpness * (top - top[:, :1]))
    return part.astype(np.int64), (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
