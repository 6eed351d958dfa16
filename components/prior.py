"""What the interaction log says about each item's audience, for the conversation.

- A popularity prior that favours what is popular lately: interaction counts with an exponential time decay.
  Shipped in each bundle (``prior.npy``) for the conversation's cold start ("popular picks"), as the ``prior``
  ranking signal and for "popular" / "lesser known"; the half-life is ``features.trending_half_life_days``.
- Each item's audience over the whole log (``audience.npy``): how many interactions ("lesser known"), and
  where the log holds explicit ratings (MovieLens) the mean rating and how many ("highly rated", "a hidden
  gem").
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
    df = interactions[~_negative(interactions)]
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


AUDIENCE_COLUMNS = ("interactions", "mean_rating", "ratings")


def item_audience(interactions: pd.DataFrame, vocab: ItemVocab) -> np.ndarray:
    """(n_items, 3), columns ``AUDIENCE_COLUMNS``: each item's number of non-negative interactions over the
    whole log, its mean explicit rating (NaN when it has none) and its number of ratings (0 where the log
    holds purchases or views only)."""
    out = np.zeros((len(vocab), 3), dtype=np.float64)
    out[:, 1] = np.nan
    pos = {str(item): n for n, item in enumerate(vocab.item_ids)}
    kept = interactions[~_negative(interactions)]
    counts = kept["item_id"].astype(str).value_counts()
    for item, count in counts.items():
        n = pos.get(str(item))
        if n is not None:
            out[n, 0] = count
    rated = interactions[interactions["event"] == "rating"]
    values = pd.to_numeric(rated["value"], errors="coerce")
    rated = rated.assign(value=values)[values.notna()]
    stats = rated.groupby(rated["item_id"].astype(str))["value"].agg(["mean", "count"])
    for item, mean, count in zip(stats.index, stats["mean"], stats["count"], strict=True):
        n = pos.get(item)
        if n is not None:
            out[n, 1:] = (mean, count)
    return out


def _negative(df: pd.DataFrame) -> pd.Series:
    """Dislikes, skips and low ratings (``components.schema``'s polarity rule)."""
    negative = df["event"].isin(sorted(NEGATIVE_EVENTS)) | (
        (df["event"] == "rating") & (pd.to_numeric(df["value"], errors="coerce") < NEGATIVE_RATING_BELOW)
    )
    return negative.fillna(False).astype(bool)
