"""Canonical tables every adapter produces and every later stage reads.

interactions: user_id (str), session_id (str), item_id (str), timestamp (datetime64[ns, UTC]),
              event (str, one of EVENTS), value (float64, NaN when absent)
items:        item_id (str), title (str), text (str), categories (list[str]), year (Int64, <NA> when
              unknown), attributes (str: a JSON object of extra attributes)
quarantine:   the rejected rows with their original columns plus ``rule`` (which check) and
              ``reason`` (a readable sentence)
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

EVENTS: tuple[str, ...] = ("view", "click", "cart", "purchase", "rating", "like", "dislike", "skip")

INTERACTION_COLUMNS: tuple[str, ...] = ("user_id", "session_id", "item_id", "timestamp", "event", "value")
ITEM_COLUMNS: tuple[str, ...] = ("item_id", "title", "text", "categories", "year", "attributes")
QUARANTINE_COLUMNS: tuple[str, ...] = ("rule", "reason")


def empty_interactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype="string"),
            "session_id": pd.Series(dtype="string"),
            "item_id": pd.Series(dtype="string"),
            "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
            "event": pd.Series(dtype="string"),
            "value": pd.Series(dtype="float64"),
        }
    )


def coerce_interactions(df: pd.DataFrame) -> pd.DataFrame:
    """Cast to canonical dtypes without dropping rows (unparseable timestamps become NaT).

    Rows with missing/invalid values are *kept* here; validation decides and quarantines them.
    """
    missing = [c for c in INTERACTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"interactions table lacks columns {missing}; has {list(df.columns)}")
    out = pd.DataFrame(index=df.index)
    for col in ("user_id", "session_id", "item_id", "event"):
        out[col] = df[col].astype("string")
    ts = df["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True, errors="coerce", format="mixed")
    out["timestamp"] = ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def coerce_items(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("item_id", "title") if c not in df.columns]
    if missing:
        raise ValueError(f"items table lacks columns {missing}; has {list(df.columns)}")
    out = pd.DataFrame(index=df.index)
    out["item_id"] = df["item_id"].astype("string")
    out["title"] = df["title"].fillna("").astype("string")
    out["text"] = (df["text"] if "text" in df.columns else out["title"]).fillna("").astype("string")
    if "categories" in df.columns:
        out["categories"] = df["categories"].map(_as_list)
    else:
        out["categories"] = [[] for _ in range(len(df))]
    year = df["year"] if "year" in df.columns else pd.Series([pd.NA] * len(df), index=df.index)
    out["year"] = pd.to_numeric(year, errors="coerce").astype("Int64")
    attrs = df["attributes"] if "attributes" in df.columns else pd.Series(["{}"] * len(df), index=df.index)
    out["attributes"] = attrs.fillna("{}").astype("string")
    return out.reset_index(drop=True)


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return []


# -- the one polarity rule for events: the service's session state, the feedback export and training use it --
NEGATIVE_EVENTS: frozenset[str] = frozenset({"dislike", "skip"})
STRONG_POSITIVE_EVENTS: frozenset[str] = frozenset({"like", "purchase"})  # also a liked item in a session
NEGATIVE_RATING_BELOW = 3.0  # a 'rating' under this is negative (1-5 scale)
POSITIVE_RATING_FROM = 4.0  # a 'rating' from this up is positive and counts as liked; 3 is neutral


def event_polarity(event: str, value: float | None = None) -> str:
    """'negative' (dislike, skip, rating < 3), 'neutral' (rating 3..4), else 'positive'. Negative events never
    become training interactions; positive and neutral ones do."""
    if event in NEGATIVE_EVENTS:
        return "negative"
    if event == "rating":
        if value is None or value != value:
            raise ValueError("a 'rating' event needs a numeric value (e.g. 1-5)")
        if value < NEGATIVE_RATING_BELOW:
            return "negative"
        return "positive" if value >= POSITIVE_RATING_FROM else "neutral"
    return "positive"
