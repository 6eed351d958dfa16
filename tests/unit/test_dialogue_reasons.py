"""Reasons are grounded: every claim is true of the item it explains (property test over many dialogues)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from components.dialogue import ConversationConfig
from components.dialogue.reasons import ReasonContext, explain, query_terms
from components.dialogue.state import DialogueState
from tests.unit.dialogue_fixtures import make_engine

PHRASES = [
    "a funny movie", "no horror", "something scary", "from the 90s", "after 1985", "a western",
    "like Star Wars", "like Toy Story", "a crime film", "between 1990 and 1995", "sci-fi", "a war film",
    "kids",
    "romantic", "space adventure", "lighter", "darker", "a drama about love", "thriller", "like Fargo",
    "an animated film",
    "in the 1970s", "more recent", "another one like the second", "mystery", "musical", "film noir",
]  # fmt: skip


@pytest.fixture(scope="module")
def engine():
    return make_engine(ConversationConfig(w_text=0.0))


def assert_reason_true(engine, item_id: str, reason: str, state: dict) -> None:
    cat = engine.catalogue
    i = cat.index(item_id)
    st = DialogueState.from_dict(state)
    _, ev = explain(i, cat, engine.reason_context(st), {}, engine.config.reason_min_similarity)
    assert set(ev.categories) <= set(cat.categories[i]), (reason, cat.categories[i])
    if ev.year is not None:
        assert ev.year == int(cat.years[i])
        assert state["year_min"] is None or ev.year >= state["year_min"]
        assert state["year_max"] is None or ev.year <= state["year_max"]
    for term in ev.terms:
        assert term in cat.words(i) or term + "s" in cat.words(i)
    # and the sentence the user reads:
    for year in re.findall(r"\bfrom (\d{4})\b", reason):
        assert int(year) == int(cat.years[i]), reason
    stripped = reason
    m = re.search(r"similar to (.+?), which you (liked|asked for|picked earlier)", reason)
    if m:
        pool = {
            "liked": state["liked"],
            "asked for": state["positive_refs"],
            "picked earlier": state["history"],
        }
        refs = [j for j in (cat.index(x) for x in pool[m.group(2)]) if cat.label(j) == m.group(1)]
        assert refs, reason
        assert (
            max(float(cat.embeddings[i] @ cat.embeddings[j]) for j in refs)
            >= engine.config.reason_min_similarity
        )
        stripped = stripped.replace(m.group(1), "")
    for name in cat.category_names:
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", stripped, flags=re.IGNORECASE):
            assert name in cat.categories[i], (name, reason, cat.categories[i])


def test_reasons_never_claim_what_the_item_lacks(engine) -> None:
    rng = random.Random(5)
    checked = 0
    for n in range(30):
        sid = f"r-{n}"
        if rng.random() < 0.5:
            engine.feedback(sid, rng.choice(["1", "50", "100", "183", "288"]), "like")
        for _ in range(rng.randint(1, 3)):
            res = engine.chat(sid, ", ".join(rng.sample(PHRASES, rng.randint(1, 3))), k=8)
            for item in res.items:
                assert_reason_true(engine, item.item_id, item.reason, res.state)
                checked += 1
    assert checked > 300


def test_reason_fragments() -> None:
    engine = make_engine()
    res = engine.chat("f", "a funny sci-fi film from the 90s", k=5)
    top = res.items[0]
    assert "Comedy and Sci-Fi, as asked" in top.reason or "Comedy, as asked" in top.reason
    assert re.search(r"from 199\d, in the 1990s as asked", top.reason)
    engine.feedback("f", "1", "like")
    res = engine.chat("f", "more like that", k=10)
    assert any("similar to Toy Story (1995), which you liked" in i.reason for i in res.items)


def test_query_terms_skip_stopwords() -> None:
    assert query_terms(["a movie about space robots", "with robots"]) == ["robots", "space"]


def test_random_items_and_contexts(engine) -> None:
    """Straight over explain(): random items, random (even contradictory) contexts."""
    cat = engine.catalogue
    rng = np.random.default_rng(3)
    names = cat.category_names
    for _ in range(500):
        i = int(rng.integers(len(cat)))
        ctx = ReasonContext(
            accepted=list(rng.choice(names, size=int(rng.integers(0, 4)), replace=False)),
            year_min=int(rng.integers(1930, 2000)) if rng.random() < 0.5 else None,
            year_max=int(rng.integers(1930, 2000)) if rng.random() < 0.5 else None,
            liked=[int(x) for x in rng.integers(len(cat), size=2)],
            query_terms=["space", "love", "story", "war", "wars", "night"],
            tone=int(rng.choice([-1, 0, 1])),
            tone_categories=["Comedy", "Horror"],
        )
        text, ev = explain(i, cat, ctx, {"model": 0.5})
        assert set(ev.categories) <= set(cat.categories[i]), (text, cat.categories[i])
        stripped = text.replace(cat.label(cat.index(ev.similar_to)), "") if ev.similar_to else text
        for name in names:
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", stripped, flags=re.IGNORECASE):
                assert name in cat.categories[i], (name, text)
