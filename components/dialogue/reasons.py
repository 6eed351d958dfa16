"""One-line reasons built only from facts that are true of the item and of what the user said.

A facet value is named "as asked" only when the user asked for it and the item has it; a year only when it is
the item's year and inside the asked range; "similar to X" only when the embedding cosine passes a threshold;
"fans of X" only when X is a liked item whose collaborative neighbours put the item there; a word only when
it occurs in the item's own text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from components.dialogue import grammar as g
from components.dialogue.index import POPULARITY, PREFERS, RATING, RATINGS, CatalogueIndex, plural
from components.dialogue.query import Constraint
from components.dialogue.state import range_label
from components.dialogue.text import fold


@dataclass(frozen=True)
class Evidence:
    """What a reason rests on, kept next to its text so tests (and UIs) can check it."""

    facets: tuple[tuple[str, str], ...] = ()  # (facet, value) asked for and held by the item
    year: int | None = None
    similar_to: str | None = None  # raw item id
    similarity: float | None = None
    terms: tuple[str, ...] = ()


@dataclass
class ReasonContext:
    """The session facts reasons may cite (dense ids)."""

    constraints: list[Constraint] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)
    history: list[int] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    mood: str | None = None
    mood_values: list[tuple[str, str]] = field(default_factory=list)


def query_terms(texts: Sequence[str], limit: int = 12) -> list[str]:
    """Content words of what was asked (most recent first, no stopwords, at least 3 letters)."""
    out: list[str] = []
    for text in reversed(list(texts)):
        for w in fold(text).split():
            if len(w) >= 3 and w not in g.STOPWORDS and not w.isdigit() and w not in out:
                out.append(w)
    return out[:limit]


def _join(names: Sequence[str], word: str = "and") -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {word} " + names[-1]


def _named_in_title(index: CatalogueIndex, idx: int, facet: str, value: str) -> bool:
    """A name facet's value in the item's title ("3M 1860 N95 Mask" is 3M's, as the filter reads it)."""
    found = index.categories.get(facet)
    return bool(found is not None and found.spec.proper_names and index.title_mentions(value)[idx])


def explain(
    idx: int, index: CatalogueIndex, ctx: ReasonContext, parts: dict[str, float], min_similarity: float = 0.5
) -> tuple[str, Evidence]:
    """A short sentence saying why item ``idx`` is shown, and the evidence behind it."""
    fragments: list[str] = []
    held = index.facet_values(idx)
    matched = tuple(
        (c.facet, c.value) for c in ctx.constraints
        if c.op == "is" and c.value is not None and (c.value in held.get(c.facet, []) or _named_in_title(
            index, idx, c.facet, c.value))
    )  # fmt: skip
    if matched:
        fragments.append(f"{_join([v for _, v in matched])}, as asked")
    leans: dict[str, list[str]] = {}  # "date night" -> the values it leans to that the item has
    mentioned: list[str] = []  # "I like horror": a taste said, which the item has
    for c in ctx.constraints:
        if c.op != "prefer" or c.value is None or c.value not in held.get(c.facet, []):
            continue
        if c.said and any(w == PREFERS for _, _, w in index.phrases.get(fold(c.said), [])):
            leans.setdefault(str(c.said), []).append(str(c.value))
        elif (c.facet, c.value) not in matched and not any(c.value in v for v in leans.values()):
            if not c.said or fold(c.said) in (fold(c.value), plural(fold(c.value))):
                mentioned.append(str(c.value))  # "I like horror" -> "Horror, which you mentioned"
            else:
                leans.setdefault(str(c.said), []).append(str(c.value))  # "zombie" -> "Horror, for 'zombie'"
    for said, values in leans.items():
        fragments.append(f"{_join(values)}, for '{said}'")
    if mentioned:
        fragments.append(f"{_join(list(dict.fromkeys(mentioned)))}, which you mentioned")
    said_year = None
    year_val = index.years[idx]
    year_facet = index.year_facet
    for c in ctx.constraints:
        if year_facet is None or c.facet != year_facet.spec.name or c.op in ("not_between", "prefer"):
            continue
        if np.isfinite(year_val) and _inside(float(year_val), c):
            label = range_label(c)
            where = f"in {label}" if label.startswith("the ") else label
            fragments.append(f"from {int(year_val)}" + ("" if where == str(int(year_val)) else f", {where}")
                             + " as asked")  # fmt: skip
            said_year = int(year_val)
            break
    for c in ctx.constraints:
        facet = index.numbers.get(c.facet)
        if facet is None or facet.spec.kind != "number" or c.op in ("not_between", "prefer"):
            continue
        v = facet.values[idx]
        if np.isfinite(v) and _inside(float(v), c):
            unit = facet.spec.unit or ""
            fragments.append(
                f"{c.facet} {unit}{v:g}, as asked" if unit in "$€£" else f"{c.facet} {v:g}{unit}"
            )
    fragments += _audience(idx, index, ctx.constraints)
    similar_to, similarity = None, None
    sources = [(i, "which you liked") for i in ctx.liked] + [
        (i, "which you picked") for i in ctx.history[-5:]
    ]
    sources = [(i, why) for i, why in sources if i != idx]
    if sources:
        sims = index.embeddings[[i for i, _ in sources]] @ index.embeddings[idx]
        best = int(np.argmax(sims))
        if float(sims[best]) >= min_similarity:
            ref, why = sources[best]
            fragments.append(f"similar to {index.label(ref)}, {why}")
            similar_to, similarity = index.item_ids[ref], float(sims[best])
        elif parts.get("cf", 0) > 0 and parts.get("cf", 0) >= max(parts.values()) * 0.8 and ctx.liked:
            fragments.append(f"often enjoyed by fans of {index.label(ctx.liked[-1])}")
    terms: tuple[str, ...] = ()
    if ctx.terms:
        words = index.words(idx)
        facet_words = {w for vals in held.values() for v in vals for w in fold(v).split()}
        found = [t for t in ctx.terms if (t in words or t + "s" in words) and t not in facet_words]
        terms = tuple(found[:3])
        if terms:
            fragments.append("mentions " + _join([f"'{t}'" for t in terms]))
    if ctx.mood and not fragments:
        mood_vals = [v for f, v in ctx.mood_values if v in held.get(f, [])][:2]
        if mood_vals:
            fragments.append(f"on the {ctx.mood} side ({_join(mood_vals)})")
    if not fragments:
        fragments.append(_fallback(parts, bool(ctx.history or ctx.liked)))
    text = "; ".join(fragments)
    evidence = Evidence(
        facets=matched, year=said_year, similar_to=similar_to, similarity=similarity, terms=terms
    )
    return text[0].upper() + text[1:], evidence


def rating_fact(idx: int, index: CatalogueIndex) -> str:
    """'rated 4.2 on average by 57 people' where the log holds the item's ratings, else ''."""
    count = index.numbers.get(RATINGS)
    means = index.mean_ratings
    n = int(count.values[idx]) if count is not None else 0
    if not n or means is None or not np.isfinite(means[idx]):
        return ""
    return f"rated {float(means[idx]):.1f} on average by {n} {'person' if n == 1 else 'people'}"


def _audience(idx: int, index: CatalogueIndex, constraints: Sequence[Constraint]) -> list[str]:
    """What the log says of the item, where the user asked about it ('highly rated', 'lesser known'): its
    mean rating and how many rated it (the unshrunk facts), or where it stands in popularity."""
    asked = {c.facet: c for c in constraints if c.facet in (RATING, POPULARITY) and c.op != "prefer"}
    rated = rating_fact(idx, index) if RATING in asked else ""
    if rated:
        return [rated]
    wish = asked.get(POPULARITY)
    if wish is None or not _inside(float(index.numbers[POPULARITY].values[idx]), wish):
        return []
    if wish.low is None:
        return ["not among the most popular"]
    share = 100.0 - float(index.numbers[POPULARITY].values[idx])
    return [f"among the {max(1, int(np.ceil(share)))}% most popular"]


def _inside(v: float, c: Constraint) -> bool:
    if c.op == "any_of_ranges":
        return any(a <= v <= b for a, b in c.ranges)
    lo = -np.inf if c.low is None else c.low
    hi = np.inf if c.high is None else c.high
    return lo <= v <= hi


def _fallback(parts: dict[str, float], has_session: bool) -> str:
    """A claim about the ranking itself (true by construction: it names the signal that put the item here)."""
    signals = {k: v for k, v in parts.items() if v > 0}
    if not signals:
        return "a close overall match"
    top = max(signals, key=lambda k: signals[k])
    return {
        "model": "fits what you picked in this session" if has_session else "a strong overall match",
        "prior": "a popular pick",
        "dense": "close to what you described",
        "lexical": "matches the words you used",
        "content": "close to the titles you mentioned",
        "cf": "liked by people with similar taste",
        "facet": "matches the kind you asked for",
        "mood": "matches the mood you asked for",
        "assistant": "close to what we talked about",
    }.get(top, "a close overall match")
