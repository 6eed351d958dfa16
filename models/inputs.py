"""Input contracts of the recommender interface: item ids in range, catalogue sizes that agree.

Bad ids are reported with what was wrong and how to fix it, never silently dropped or wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.base import Recommender, TrainData


def check_item_ids(ids: np.ndarray, n_items: int, where: str) -> None:
    """Raise a ValueError naming the offending id when ``ids`` leave the dense range ``0 .. n_items-1``."""
    if ids.size and (ids.min() < 0 or ids.max() >= n_items):
        bad = int(ids[(ids < 0) | (ids >= n_items)][0])
        raise ValueError(
            f"{where}: item id {bad} is outside 0..{n_items - 1}; encode ids with the model's item vocabulary"
        )


def as_histories(histories: Sequence[Sequence[int] | np.ndarray], n_items: int) -> list[np.ndarray]:
    """Histories as 1-d int64 arrays (oldest first), checked against the catalogue size."""
    out = [np.asarray(h, dtype=np.int64).ravel() for h in histories]
    for h in out:
        check_item_ids(h, n_items, where="score()")
    return out


def check_train_data(model: Recommender, train: TrainData) -> list[np.ndarray]:
    """Training sequences as int64 arrays after checking they fit ``model``'s catalogue."""
    if train.n_items != model.n_items:
        raise ValueError(
            f"{model.name}: built for {model.n_items} items but the training data has {train.n_items}; "
            "build the model with the training vocabulary's size"
        )
    sequences = [np.asarray(s, dtype=np.int64).ravel() for s in train.sequences]
    for s in sequences:
        check_item_ids(s, model.n_items, where=f"{model.name}.fit() training sequences")
    return sequences
