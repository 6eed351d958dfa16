"""A popularity prior that favours what is popular lately: interaction counts with an exponential time decay.

Shipped in each bundle (``prior.npy``) for the conversation's cold start ("popular picks") and as the
``prior`` ranking signal; the half-life is ``features.trending_half_life_days``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.schema import NEGATIVE_EVENTS, NEGATIVE_RATING_BELOW
from components.vocab import ItemVocab


def trending_popularity(interactions: pd.DataFrame, vocab: ItemVocab, half_life_days: float) -> np.ndarray:
    """(n_items,) sum over non-negative interactions of 0.5 ** (age / half_life), age in days before the
    newest interaction; items outside ``vocab`` are ignored."""
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    df = interactions
    negative = df["event"].isin(sorted(NEGATIVE_EVENTS)) | (
        (df["event"] == "rating") & (pd.to_numeric(df["value"], errors="coerce") < NEGATIVE_RATING_BELOW)
    )
    df = df[~negative.fillna(False)]
    out = np.zeros(len(vocab), dtype=np.float64)
    if df.empty:
        return out
    ts = pd.to_datetime(df["timestamp"], utc=True)
    age_days = ((ts.max() - ts).dt.total_seconds() / 86400.0).to_numpy(dtype=np.float64)
    weight = np.power(0.5, np.nan_to_num(age_days, nan=np.inf) / half_life_days)
    pos = {str(item): n for n, item in enumerate(vocab.item_ids)}
    index = np.array([pos.get(str(i), -1) for i in df["item_id"]], dtype=np.int64)
    keep = index >= 0
    np.add.at(out, index[keep], weight[keep])
    return out
