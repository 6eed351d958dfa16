"""Retrieval and ranking over the whole catalogue: fused signals -> hard filters -> relax-if-empty -> MMR.

Signals, each scaled to [0, 1] and weighted by ``ConversationConfig`` (weights fitted on a development
dialogue set, see benchmarks/tune_conversation.py):

- ``model``: the session model's score with the session's items and liked items as history;
- ``cf``: collaborative neighbours: the model's answer to each liked item alone, best over liked items;
- ``content``: embedding cosine to the liked (and, weaker, mentioned) items;
- ``dense`` / ``lexical``: the free-text preferences against item texts (sentence embeddings; BM25 with
  informativeness weights, so "saw" weighs less than "zombie");
- ``assistant``: what the assistant said (stateless histories), weakly;
- ``facet``: share of the asked facet values an item has; ``mood``: lighter/darker preferences;
- ``prior``: popularity; negative: similarity to disliked items (only close ones are demoted, so one
  dislike never pushes the list into the long tail), avoided text, items shown before.

Hard constraints (``is``, ranges, ``is_not``...) filter; when nothing passes, positive constraints are relaxed
oldest first and the relaxation is reported. Items the user named, saw, liked, disliked or rejected are never
recommended back, and retired items (catalogue changes since training) never at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from components.dialogue.config import ConversationConfig
from components.dialogue.index import RATING, CatalogueIndex, minmax
from components.dialogue.query import Constraint
from components.dialogue.text import fold
from models import Recommender


@dataclass
class RankRequest:
    """What to rank for (dense ids)."""

    history: list[int] = field(default_factory=list)  # session items, then liked items (model input)
    liked: list[int] = field(default_factory=list)
    similar: list[int] = field(default_factory=list)  # items the user asked for more like
    mentioned: list[int] = field(default_factory=list)  # named by the user, or by the assistant
    disliked: list[int] = field(default_factory=list)
    banned: set[int] = field(default_factory=set)
    shown_before: set[int] = field(default_factory=set)
    constraints: list[Constraint] = field(default_factory=list)
    query: np.ndarray | None = None  # (D,) unit vector of the soft preferences
    terms: dict[str, float] = field(default_factory=dict)  # weighted words of the soft preferences
    avoid_terms: dict[str, float] = field(default_factory=dict)
    avoid_queries: tuple[np.ndarray, ...] = ()  # (D,) unit vector of each avoided phrase
    title_terms: dict[str, float] = field(default_factory=dict)  # words of titles the catalogue lacks
    head: str = ""  # a shop's search: the request's head noun phrase ("test tubes")
    title_phrases: tuple[str, ...] = ()  # ... and of franchises, each as a phrase (they search the texts)
    said_words: set[str] = field(default_factory=set)  # every word the user typed lately
    assistant: np.ndarray | None = None  # (D,) what the assistant said
    assistant_terms: dict[str, float] = field(default_factory=dict)
    mood: dict[tuple[str, str], float] = field(default_factory=dict)
    retired: np.ndarray | None = None  # (N,) bool: items no longer in the catalogue, never recommended
    text_only: bool = False  # free words are all the list follows (no facets, items or mood)


@dataclass(frozen=True)
class Ranked:
    idx: int
    score: float
    parts: dict[str, float]


@dataclass
class RankResult:
    items: list[Ranked]
    relaxed: list[Constraint]  # constraints dropped because nothing satisfied all of them
    n_allowed: int  # items passing the filters that were kept


def constraint_mask(index: CatalogueIndex, c: Constraint) -> np.ndarray:
    """(N,) True where the item satisfies ``c`` (unknown values fail positive range constraints)."""
    n = len(index)
    if c.facet == "title":
        key = fold(c.value or "")
        return np.array(
            [not fold(t).startswith(key) and f" {key}" not in f" {fold(t)}" for t in index.titles]
        )
    if c.facet in index.categories:
        facet = index.categories[c.facet]
        has = facet.has(c.value or "")
        if facet.spec.proper_names and c.value:  # a name in the title is the item's too ("3M 1860 N95 Mask")
            has = has | index.title_mentions(c.value)
        return ~has if c.op == "is_not" else has if c.op in ("is", "prefer") else np.ones(n, bool)
    if c.facet in index.numbers:
        v = index.numbers[c.facet].values
        known = np.isfinite(v)
        if c.op == "any_of_ranges" or (c.op == "prefer" and c.ranges):
            ok = np.zeros(n, bool)
            for a, b in c.ranges:
                ok |= known & (v >= a) & (v <= b)
            return ok
        lo = -np.inf if c.low is None else c.low
        hi = np.inf if c.high is None else c.high
        inside = known & (v >= lo) & (v <= hi)
        return ~inside if c.op == "not_between" else inside
    return np.ones(n, bool)  # a facet this catalogue does not have: no filter


def filter_mask(
    index: CatalogueIndex, constraints: Sequence[Constraint], category_filter: bool
) -> np.ndarray:
    """AND over facets; several ``is`` values of one facet are alternatives (OR), except the values one
    phrase names together ("rom-com" -> Comedy and Romance: same ``said``), which must all hold."""
    ok = np.ones(len(index), bool)
    groups: dict[str, dict[tuple[str, int], np.ndarray]] = {}
    for n, c in enumerate(constraints):
        if c.op == "prefer":
            continue  # a soft preference: the facet signal boosts it
        m = constraint_mask(index, c)
        if c.op == "is":
            if category_filter:
                key = (c.said, -1) if c.said else ("", n)  # one phrase -> one group
                facet = groups.setdefault(c.facet, {})
                facet[key] = facet[key] & m if key in facet else m
        else:
            ok &= m
    for alternatives in groups.values():
        ok &= np.logical_or.reduce(list(alternatives.values()))
    return ok


def rank(
    index: CatalogueIndex, model: Recommender, req: RankRequest, cfg: ConversationConfig, k: int
) -> RankResult:
    """Top ``k`` allowed items, diversified with MMR."""
    n = len(index)
    banned = np.zeros(n, bool) if req.retired is None else req.retired.copy()
    if req.banned:
        banned[list(req.banned)] = True
    constraints = list(req.constraints)
    relaxed: list[Constraint] = []
    ok = filter_mask(index, constraints, cfg.category_filter) & ~banned
    while not ok.any():
        positive = [
            c for c in constraints if c.op in ("is", "at_least", "at_most", "between", "any_of_ranges")
        ]
        if not positive:
            break
        drop = positive[0]
        constraints.remove(drop)
        relaxed.append(drop)
        ok = filter_mask(index, constraints, cfg.category_filter) & ~banned
    total, parts = fuse(index, model, req, cfg, ok)
    allowed = np.flatnonzero(ok)
    if allowed.size == 0 or k <= 0:
        return RankResult([], relaxed, 0)
    pool = min(allowed.size, max(cfg.mmr_pool, 5 * k))
    order = _distinct_labels(index, allowed[np.argsort(-total[allowed], kind="stable")[:pool]])
    picks = (
        mmr(order, total[order], index.embeddings, k, cfg.mmr_lambda)
        if cfg.mmr_lambda < 1
        else list(range(min(k, len(order))))
    )
    items = [
        Ranked(int(order[p]), float(total[order[p]]), {s: float(v[order[p]]) for s, v in parts.items()})
        for p in picks
    ]
    return RankResult(items, relaxed, int(allowed.size))


def _distinct_labels(index: CatalogueIndex, order: np.ndarray) -> np.ndarray:
    """``order`` without the later of two items shown alike (a shop lists one product under two ids:
    "AcuRite 00613 Humidity Monitor" twice in one list); remakes differ by their year."""
    seen: set[str] = set()
    keep = []
    for i in order:
        label = fold(index.label(int(i)))
        if label not in seen:
            seen.add(label)
            keep.append(i)
    return order if len(keep) == len(order) else np.asarray(keep, dtype=order.dtype)


SIGNS = {"dislike": -1.0, "avoid": -1.0, "shown": -1.0, "echo": -1.0}
FOUND = "_found"  # not a signal: in a shop's text search, the items the words found (ranked first)


def weights(cfg: ConversationConfig) -> dict[str, float]:
    """Signal name -> weight (negative for demotions)."""
    w = {
        "prior": cfg.w_prior, "model": cfg.w_model, "cf": cfg.w_cf, "content": cfg.w_content,
        "mention": cfg.w_mention, "recency": cfg.w_recency, "title": cfg.w_title,
        "dense": cfg.w_dense, "lexical": cfg.w_lexical, "assistant": cfg.w_assistant, "facet": cfg.w_facet,
        "similar": cfg.w_similar,
        "mood": cfg.w_mood, "dislike": cfg.w_dislike, "avoid": cfg.w_avoid, "shown": cfg.shown_penalty,
        "echo": cfg.w_echo,
    }  # fmt: skip
    return {name: SIGNS.get(name, 1.0) * value for name, value in w.items()}


def fuse(
    index: CatalogueIndex, model: Recommender, req: RankRequest, cfg: ConversationConfig, ok: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fused scores (N,) with -inf where not allowed, and each weighted signal (N,)."""
    w = weights(cfg)
    found = None
    parts = {}
    for name, v in signals(index, model, req, cfg, ok).items():
        if name == FOUND:
            found = v > 0
        elif w[name] != 0:
            parts[name] = w[name] * v
    if "similar" in parts and "mood" in parts:  # "like Heat but lighter": both halves weigh alike (signals)
        parts["mood"] *= w["similar"] / w["mood"]
    total = np.zeros(len(index))
    for v in parts.values():
        total += v
    if found is not None:  # a search: what the words found first (tiered), then the rest
        rest = ok & ~found
        if rest.any() and (ok & found).any():
            total[ok & found] += max(0.0, float(total[rest].max() - total[ok & found].min())) + 1.0
    total[~ok] = -np.inf
    return total, parts


def neighbours(model: Recommender, refs: Sequence[int]) -> np.ndarray:
    """(N,) collaborative closeness to the references: the model's scores for each one alone as a
    history, scaled per reference, best of."""
    per_ref = np.asarray(model.score([[r] for r in refs]), dtype=np.float64)  # (R, N)
    return np.max([minmax(row) for row in per_ref], axis=0)


def adjacent(index: CatalogueIndex, phrase: str, hits: np.ndarray) -> np.ndarray:
    """``hits`` (N,) bool, kept where the item's text has the phrase's words next to each other, in order
    (any endings: "test tubes" holds "Test Tube Rack", not "inspection tube ... test")."""
    stems = [index.lexical.stem(w) for w in fold(phrase).split()]
    if len(stems) < 2:
        return hits
    pattern = re.compile(r"\b" + r"[\w'-]*[\s-]+".join(re.escape(st) for st in stems), re.IGNORECASE)
    out = hits.copy()
    for i in np.flatnonzero(hits):
        out[i] = bool(pattern.search(fold(index.texts[i])))
    return out


def facet_overlap(index: CatalogueIndex, anchors: Sequence[int]) -> np.ndarray:
    """(N,) how much each item shares the anchors' category values (genres, tags, brand): Jaccard per facet
    the anchor has values in, averaged over those facets, best anchor."""
    best = np.zeros(len(index))
    for a in anchors:
        per_facet = []
        for facet in index.categories.values():
            cols = np.flatnonzero(facet.matrix[a])
            if cols.size == 0:
                continue
            counts = getattr(facet, "_counts", None)
            if counts is None:  # values per item, computed once per facet
                counts = facet.matrix.sum(axis=1)
                facet._counts = counts  # type: ignore[attr-defined]
            shared = facet.matrix[:, cols].sum(axis=1)
            per_facet.append(shared / np.maximum(counts + cols.size - shared, 1))
        if per_facet:
            best = np.maximum(best, np.mean(per_facet, axis=0))
    return best


def signals(
    index: CatalogueIndex, model: Recommender, req: RankRequest, cfg: ConversationConfig, ok: np.ndarray,
    every: bool = False,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Each signal (N,) scaled to [0, 1] over the allowed items, unweighted; only those with a non-zero
    weight unless ``every`` (weight fitting computes them all once)."""
    w = weights(cfg)
    use = {name: every or w[name] != 0 for name in w}
    out: dict[str, np.ndarray] = {}
    emb = index.embeddings

    def scaled(values: np.ndarray) -> np.ndarray:
        return minmax(values, where=ok)

    if use["prior"]:
        out["prior"] = scaled(index.prior)
    year = index.year_facet
    if year is not None and use["recency"]:
        out["recency"] = scaled(np.where(np.isfinite(year.values), year.values, np.nanmin(year.values)))
    if req.history and use["model"]:
        out["model"] = scaled(np.asarray(model.score([req.history])[0], dtype=np.float64))
    positives = req.liked[-cfg.max_refs :]
    if positives and use["cf"]:
        out["cf"] = scaled(neighbours(model, positives))
    if positives and use["content"]:
        out["content"] = scaled(max_cosine(index, positives))
    anchors = req.similar[-cfg.max_refs :]
    if anchors and use["similar"]:
        cf = neighbours(model, anchors)
        text = minmax(max_cosine(index, anchors))
        # cf breaks ties; popularity keeps the known films near the top ("like Alien": Aliens, The Mist,
        # Signs rather than Plan 9 from Outer Space)
        near = text + facet_overlap(index, anchors) + 0.25 * cf + cfg.similar_popularity * scaled(index.prior)
        close = np.where(ok, near, -np.inf)
        close[anchors] = -np.inf
        top = np.argsort(-close, kind="stable")[: cfg.similar_pool]
        top = top[np.isfinite(close[top])]
        sharp = np.zeros(len(index))
        sharp[top] = 1.0 - np.arange(len(top)) / cfg.similar_pool  # by rank: the nearest few dominate
        out["similar"] = sharp
    mentioned = req.mentioned[-cfg.max_refs :]
    if mentioned and use["mention"]:
        cf = neighbours(model, mentioned)
        out["mention"] = scaled(0.5 * scaled(max_cosine(index, mentioned)) + 0.5 * cf)
    # franchise phrases held whole by item texts ("Jane Austen"): they count in the lexical and title signals
    phrase_hits = [index.lexical.phrase_score(p) for p in req.title_phrases]
    found = np.zeros(len(index), bool)  # items the free words find: a word of theirs, or a close embedding
    cos_found = None
    if req.query is not None and use["dense"]:
        cos = emb @ req.query
        out["dense"] = scaled(cos)
        cos_found = cos >= cfg.weak_match_cosine
        found |= cos_found
    if (req.terms or req.title_phrases) and use["lexical"]:
        lex = index.lexical.score(req.terms)
        for hits in phrase_hits:  # the words of a franchise count where the text holds them all
            lex = lex + hits
        if lex.max() > 0:
            out["lexical"] = scaled(lex)
            found |= lex > 0
    searched = req.text_only and index.spec.titles_describe_items and "prior" in out
    if searched and req.head:
        whole = adjacent(index, req.head, index.lexical.phrase_score(req.head) > 0)
        if (whole & ok).any():  # "test tubes with caps": test tubes first, not heat-shrink tubing; "a
            found &= whole  # bigger beaker": beakers, not the Big Red jack

    if searched and (found & ok).any():
        # "nitrile gloves" in a shop is a search: popularity orders what the words find and lifts nothing
        # they miss, and what they find comes first ("an N95 mask" found three masks; the best-selling
        # caliper came before them); the rest follow by closeness of text. Not for films or books, whose
        # titles are names: there the popular picks are what people in dialogues ask for (INSPIRED dev
        # Recall@10 0.124 -> 0.116 with this rule on films)
        # ... and by how well: a best seller that shares one common word ("print" in "reading small
        # print" -> 3D printer filament) does not outrank the magnifier that matches the whole request
        relevance = np.maximum(
            out.get("lexical", 0.0), out.get("dense", 0.0) * (cos_found if cos_found is not None else 0.0)
        )
        out["prior"] = out["prior"] * found * relevance
        out[FOUND] = found.astype(np.float64)
    if req.title_terms and use["title"]:
        lex = index.title_lexical.score(req.title_terms)
        lex = minmax(lex) if lex.max() > 0 else lex
        for hits in phrase_hits:  # a franchise the texts hold whole ("Jane Austen")
            lex = np.maximum(lex, hits > 0)
        if lex.max() > 0:
            out["title"] = scaled(lex)
    if req.assistant is not None and use["assistant"]:
        said = scaled(emb @ req.assistant)
        if req.assistant_terms:
            lex = index.lexical.score(req.assistant_terms)
            if lex.max() > 0:
                said = 0.5 * said + 0.5 * scaled(lex)
        out["assistant"] = scaled(said)
    facets = set(index.categories) | set(index.numbers)
    wanted = [c for c in req.constraints if c.op in ("is", "prefer") and c.facet in facets]
    if wanted and use["facet"]:  # asked category values, and the ranges asked turns ago (inside: 1)
        out["facet"] = np.mean([_graded(index, c, ok) for c in wanted], axis=0)
    if req.mood and use["mood"]:
        mood = np.zeros(len(index))
        for (facet, value), weight in req.mood.items():
            mood += weight * index.categories[facet].has(value)
        if "similar" in out:
            # "like Heat but less violent": among the items close to Heat, those lighter than Heat rise, by
            # how much lighter; far from Heat no mood lifts an item (a cartoon is not what was asked)
            lift = np.clip(mood - mood[anchors].mean(), 0.0, None) * (out["similar"] > 0)
            out["mood"] = lift / max(float(lift.max()), 1e-9)
        else:
            out["mood"] = np.clip(mood, -1.0, 1.0)
    if req.disliked and use["dislike"]:
        sim = max_cosine(index, req.disliked[-cfg.max_refs :])
        out["dislike"] = np.clip((sim - cfg.dislike_similarity) / (1.0 - cfg.dislike_similarity), 0.0, 1.0)
    if req.avoid_terms and use["avoid"]:
        avoid = np.zeros(len(index))
        for lex in (index.lexical.score(req.avoid_terms), index.title_lexical.score(req.avoid_terms)):
            if lex.max() > 0:
                avoid = np.maximum(avoid, lex / lex.max())
        for query in req.avoid_queries if cfg.avoid_dense_top > 0 else ():
            cos = index.embeddings @ query  # each phrase alone: "marvel, superhero" is two ideas
            near = closest_share(cos, cfg.avoid_dense_top) * (cos >= cfg.avoid_dense_floor)
            avoid = np.maximum(avoid, near)
        if avoid.max() > 0:
            # "not powdered": "Powder Free" is no match but what was asked, as "Anti Fog" is for goggles "that
            # won't fog": they rise as far as a match would sink
            avoid[index.free_of(list(req.avoid_terms))] = -FREE_LIFT
            out["avoid"] = avoid
    if req.said_words and use["echo"] and not index.spec.titles_describe_items:
        echoes = index.title_echoes(req.said_words)
        if echoes:
            out["echo"] = np.zeros(len(index))
            out["echo"][echoes] = 1.0
    if req.shown_before and use["shown"]:
        pen = np.zeros(len(index))
        pen[list(req.shown_before)] = 1.0
        out["shown"] = pen
    return out


def _graded(index: CatalogueIndex, c: Constraint, ok: np.ndarray) -> np.ndarray:
    """(N,) how well each item meets an asked constraint: 0 or 1, except "highly rated", where the better
    rated of the items that qualify count for more (the best rated comedies, not the most popular ones)."""
    inside = constraint_mask(index, c).astype(np.float64)
    if c.facet == RATING and c.low is not None and index.numbers[RATING].spec.kind == "audience":
        rating = np.nan_to_num(index.numbers[RATING].values, nan=c.low)
        return inside * (0.5 + 0.5 * minmax(rating, where=ok & (inside > 0)))
    return inside


FREE_LIFT = 0.5  # how far an item whose text says it is free of an avoided word rises (see ``signals``)


def closest_share(cos: np.ndarray, share: float) -> np.ndarray:
    """(N,) in [0, 1]: 0 outside the ``share`` of items closest to the query, 0.5 at its edge rising to 1
    for the closest item (what the words mean, found where no text says them: Iron Man for 'superhero')."""
    n = len(cos)
    top = max(1, int(round(share * n)))
    edge = float(np.partition(cos, n - top)[n - top])
    span = max(float(cos.max()) - edge, 1e-9)
    return np.where(cos >= edge, 0.5 + 0.5 * (cos - edge) / span, 0.0)


def max_cosine(index: CatalogueIndex, refs: Sequence[int]) -> np.ndarray:
    """(N,) highest cosine of each item to any of ``refs`` (matrix-vector products, fast under load; each
    reference's row is kept by the index, as a session refers to the same items turn after turn)."""
    out = np.full(len(index), -1.0, dtype=np.float64)
    for r in refs:
        np.maximum(out, index.cosines(int(r)), out=out)
    return out


def mmr(
    candidates: np.ndarray, relevance: np.ndarray, embeddings: np.ndarray, k: int, lam: float
) -> list[int]:
    """Greedy maximal marginal relevance: positions into ``candidates`` in pick order."""
    if len(candidates) == 0:
        return []
    rel = minmax(relevance)
    cand_emb = embeddings[candidates]  # (M, D)
    picked: list[int] = []
    max_sim = np.zeros(len(candidates))
    available = np.ones(len(candidates), dtype=bool)
    for step in range(min(k, len(candidates))):
        value = lam * rel - (1.0 - lam) * (max_sim if step else 0.0)
        value = np.where(available, value, -np.inf)
        j = int(np.argmax(value))
        picked.append(j)
        available[j] = False
        max_sim = np.maximum(max_sim, cand_emb @ cand_emb[j])
    return picked
