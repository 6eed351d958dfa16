"""Score fusion, hard filters and MMR diversity over the whole catalogue.

``score = w_model * model + w_text * text + w_ref * ref - w_neg * neg - w_neg_model * neg_model
+ w_category * share of requested categories + w_tone * tone - shown_penalty * shown_before``,
every signal scaled to [0, 1] over the items still allowed. Hard filters (rejected categories, year range,
rejected / disliked / excluded items, optionally the session's own items) set a score to -inf and are
never relaxed. The top of the list is then re-ranked with maximal marginal relevance over item embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from components.dialogue.catalogue import Catalogue, minmax
from components.dialogue.config import ConversationConfig
from models import Recommender


@dataclass
class RankRequest:
    """What to rank for: dense ids, categories, years, the query embedding."""

    model_history: list[int] = field(default_factory=list)  # session items then liked/positive refs
    negative_history: list[int] = field(default_factory=list)  # disliked + negative refs
    positive_refs: list[int] = field(default_factory=list)  # liked + positively referenced items
    negative_refs: list[int] = field(default_factory=list)
    query: np.ndarray | None = None  # (D,) unit vector of the accumulated positive text
    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    tone_weights: dict[str, float] = field(default_factory=dict)
    banned: set[int] = field(default_factory=set)
    shown_before: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Ranked:
    """One ranked item: dense id, fused score and the weighted contribution of each signal."""

    idx: int
    score: float
    parts: dict[str, float]


def allowed_mask(catalogue: Catalogue, req: RankRequest) -> np.ndarray:
    """(N,) bool: items passing every hard filter."""
    n = len(catalogue)
    ok = np.ones(n, dtype=bool)
    cols = [c for c in (catalogue.category_column(r) for r in req.rejected) if c is not None]
    if cols:
        ok &= ~catalogue.category_matrix[:, cols].any(axis=1)
    years = catalogue.years
    if req.year_min is not None:
        ok &= np.isfinite(years) & (years >= req.year_min)
    if req.year_max is not None:
        ok &= np.isfinite(years) & (years <= req.year_max)
    if req.banned:
        ok[list(req.banned)] = False
    return ok


def max_cosine(emb: np.ndarray, refs: Sequence[int], limit: int = 50) -> np.ndarray:
    """(N,) highest cosine of each item to any of the (most recent ``limit``) reference items."""
    out = np.full(emb.shape[0], -np.inf, dtype=np.float64)
    for r in list(refs)[-limit:]:
        np.maximum(out, emb @ emb[r], out=out)  # matrix-vector products: fast even when BLAS threads are busy
    return out


def fuse(
    catalogue: Catalogue, model: Recommender, req: RankRequest, cfg: ConversationConfig, k: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fused scores (N,) with -inf for filtered items, and each weighted signal (N,)."""
    n = len(catalogue)
    ok = allowed_mask(catalogue, req)
    parts: dict[str, np.ndarray] = {}

    def scaled(values: np.ndarray) -> np.ndarray:
        v = np.where(ok, values, np.nan)
        return minmax(v)

    # one history per call: a (1, N) product is much cheaper than a batched one on busy CPUs
    if req.model_history and cfg.w_model > 0:
        parts["model"] = cfg.w_model * scaled(
            np.asarray(model.score([req.model_history])[0], dtype=np.float64)
        )
    elif cfg.w_prior > 0:
        parts["prior"] = cfg.w_prior * scaled(catalogue.popularity.astype(np.float64))
    if req.negative_history and cfg.w_neg_model > 0:
        neg = np.asarray(model.score([req.negative_history])[0], dtype=np.float64)
        parts["neg_model"] = -cfg.w_neg_model * scaled(neg)
    emb = catalogue.embeddings
    if req.query is not None and cfg.w_text > 0:
        parts["text"] = cfg.w_text * scaled(emb @ req.query)
    if req.positive_refs and cfg.w_ref > 0:
        parts["ref"] = cfg.w_ref * scaled(max_cosine(emb, req.positive_refs))
    if req.negative_refs and cfg.w_neg > 0:
        parts["neg"] = -cfg.w_neg * scaled(max_cosine(emb, req.negative_refs))
    cat_cols = [c for c in (catalogue.category_column(a) for a in req.accepted) if c is not None]
    if cat_cols:
        has = catalogue.category_matrix[:, cat_cols]  # (N, A)
        share = has.mean(axis=1)
        parts["category"] = cfg.w_category * share
        if cfg.category_mode == "filter":
            strict = ok & has.all(axis=1)
            ok = strict if strict.sum() >= k else ok & has.any(axis=1)
    if req.tone_weights:
        tcols = [(catalogue.category_column(c), w) for c, w in req.tone_weights.items()]
        vec = np.zeros(len(catalogue.category_names))
        for c, w in tcols:
            if c is not None:
                vec[c] = w
        parts["tone"] = cfg.w_tone * np.clip(catalogue.category_matrix.astype(np.float64) @ vec, -1.0, 1.0)
    if req.shown_before and cfg.shown_penalty > 0:
        pen = np.zeros(n)
        pen[list(req.shown_before)] = -cfg.shown_penalty
        parts["shown"] = pen
    total = np.zeros(n)
    for v in parts.values():
        total += v
    total[~ok] = -np.inf
    return total, parts


def mmr(
    candidates: np.ndarray, relevance: np.ndarray, embeddings: np.ndarray, k: int, lam: float
) -> list[int]:
    """Greedy maximal marginal relevance: positions into ``candidates`` in pick order."""
    if len(candidates) == 0:
        return []
    rel = minmax(relevance)
    cand_emb = embeddings[candidates]  # (M, D)
    picked: list[int] = []
    max_sim = np.full(len(candidates), -np.inf)
    available = np.ones(len(candidates), dtype=bool)
    for _ in range(min(k, len(candidates))):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = lam * rel - (1.0 - lam) * penalty
        value[~available] = -np.inf
        j = int(np.argmax(value))
        picked.append(j)
        available[j] = False
        # one row at a time (matrix-vector): small matrix-matrix products are slow under BLAS threading
        max_sim = np.maximum(max_sim, cand_emb @ cand_emb[j])
    return picked


def rank(
    catalogue: Catalogue, model: Recommender, req: RankRequest, cfg: ConversationConfig, k: int
) -> list[Ranked]:
    """Top ``k`` allowed items, diversified with MMR; fewer when fewer pass the filters."""
    total, parts = fuse(catalogue, model, req, cfg, k)
    finite = np.flatnonzero(np.isfinite(total))
    if finite.size == 0 or k <= 0:
        return []
    pool_size = min(finite.size, max(cfg.mmr_pool, 5 * k))
    order = finite[np.argsort(-total[finite], kind="stable")[:pool_size]]
    picks = (
        mmr(order, total[order], catalogue.embeddings, k, cfg.mmr_lambda)
        if cfg.mmr_lambda < 1
        else list(range(min(k, len(order))))
    )
    out = []
    for p in picks:
        idx = int(order[p])
        out.append(Ranked(idx, float(total[idx]), {name: float(v[idx]) for name, v in parts.items()}))
    return out
