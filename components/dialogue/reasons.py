"""One-line reasons built only from evidence that is true of the item.

Each fragment is checked against the catalogue before it is said: a category is named only when the item
has it, a year only when it is the item's year and inside the asked range, "similar to X" only when the
embedding cosine passes a threshold, a word only when it occurs in the item's own text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from components.dialogue import lexicon as lx
from components.dialogue.catalogue import Catalogue, fold
from components.dialogue.state import year_label


@dataclass(frozen=True)
class Evidence:
    """What a reason rests on, kept next to its text so tests (and UIs) can check it."""

    categories: tuple[str, ...] = ()
    year: int | None = None
    similar_to: str | None = None  # raw item id
    similarity: float | None = None
    terms: tuple[str, ...] = ()


@dataclass
class ReasonContext:
    """The session facts reasons may cite (dense ids)."""

    accepted: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    liked: list[int] = field(default_factory=list)
    references: list[int] = field(default_factory=list)
    history: list[int] = field(default_factory=list)
    query_terms: list[str] = field(default_factory=list)
    tone_categories: list[str] = field(default_factory=list)  # categories the tone prefers
    tone: int = 0


def query_terms(texts: Sequence[str], limit: int = 12) -> list[str]:
    """Content words of what was asked (most recent first, no stopwords, at least 3 letters)."""
    out: list[str] = []
    for text in reversed(list(texts)):
        for w in fold(text).split():
            if len(w) >= 3 and w not in lx.STOPWORDS and not w.isdigit() and w not in out:
                out.append(w)
    return out[:limit]


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def explain(
    idx: int, catalogue: Catalogue, ctx: ReasonContext, parts: dict[str, float], min_similarity: float = 0.5
) -> tuple[str, Evidence]:
    """A short sentence saying why item ``idx`` is shown, and the evidence behind it."""
    cats = set(catalogue.categories[idx])
    fragments: list[str] = []
    matched = tuple(c for c in ctx.accepted if c in cats)
    if matched:
        fragments.append(f"{_join(matched)}, as asked")
    year_val = catalogue.years[idx]
    year: int | None = int(year_val) if np.isfinite(year_val) else None
    said_year: int | None = None
    label = year_label(ctx.year_min, ctx.year_max)
    if year is not None and label is not None:
        inside = (ctx.year_min is None or year >= ctx.year_min) and (
            ctx.year_max is None or year <= ctx.year_max
        )
        if inside:
            where = f"in {label}" if label.startswith("the ") else label
            fragments.append(f"from {year}" + ("" if where == str(year) else f", {where}") + " as asked")
            said_year = year
    similar_to, similarity = None, None
    sources = [(i, "which you liked") for i in ctx.liked]
    sources += [(i, "which you asked for") for i in ctx.references]
    sources += [(i, "which you picked earlier") for i in ctx.history[-5:]]
    sources = [(i, why) for i, why in sources if i != idx]
    if sources:
        ids = [i for i, _ in sources]
        sims = catalogue.embeddings[ids] @ catalogue.embeddings[idx]  # (S,)
        best = int(np.argmax(sims))
        if float(sims[best]) >= min_similarity:
            ref, why = sources[best]
            fragments.append(f"similar to {catalogue.label(ref)}, {why}")
            similar_to, similarity = catalogue.item_ids[ref], float(sims[best])
    terms: tuple[str, ...] = ()
    if ctx.query_terms:
        words = catalogue.words(idx)
        category_words = catalogue.category_words
        found = [t for t in ctx.query_terms if (t in words or t + "s" in words) and t not in category_words]
        terms = tuple(found[:3])
        if terms:
            fragments.append("mentions " + _join([f"'{t}'" for t in terms]))
    tone_cats: tuple[str, ...] = ()
    if ctx.tone and not fragments:
        tone_cats = tuple(c for c in ctx.tone_categories if c in cats)[:2]
        if tone_cats:
            side = "lighter" if ctx.tone > 0 else "darker"
            fragments.append(f"on the {side} side ({_join(tone_cats)})")
    if not fragments:
        fragments.append(_fallback(parts, bool(ctx.history or ctx.liked)))
    text = "; ".join(fragments)
    text = text[0].upper() + text[1:]
    evidence = Evidence(
        categories=tuple(dict.fromkeys(matched + tone_cats)), year=said_year, similar_to=similar_to,
        similarity=similarity, terms=terms,
    )  # fmt: skip
    return text, evidence


def _fallback(parts: dict[str, float], has_session: bool) -> str:
    """A claim about the ranking itself (always true: it says which signal put the item here)."""
    signals = {k: v for k, v in parts.items() if v > 0}
    if not signals:
        return "a close overall match"
    top = max(signals, key=lambda k: signals[k])
    return {
        "model": "fits what you picked in this session"
        if has_session
        else "a strong match for your requests",
        "prior": "a popular pick",
        "text": "close to what you described",
        "ref": "close to the titles you mentioned",
        "category": "matches the kind you asked for",
        "tone": "matches the mood you asked for",
    }.get(top, "a close overall match")
