"""Reasons cite only true facts: asked values the item has, its year inside the asked range, real
similarity."""

from __future__ import annotations

from components.dialogue.query import Constraint
from components.dialogue.reasons import ReasonContext, explain, query_terms
from tests.unit.dialogue_fixtures import fixture


def test_asked_values_and_years_only_when_true() -> None:
    ix = fixture().index
    asked = [
        Constraint(facet="genre", op="is", value="Horror"),
        Constraint(facet="year", op="between", low=1990, high=1999),
    ]
    ctx = ReasonContext(constraints=asked)
    text, ev = explain(ix.index("288"), ix, ctx, {})  # Scream (1996): horror, 1996
    assert "Horror, as asked" in text and "from 1996" in text and ev.year == 1996
    text, ev = explain(ix.index("1"), ix, ctx, {})  # Toy Story: not horror
    assert "Horror" not in text and "as asked" in text  # only the year is true
    text, ev = explain(ix.index("183"), ix, ctx, {})  # Alien (1979): horror, outside the 90s
    assert "1979" not in text and ev.year is None


def test_nothing_asked_means_no_as_asked() -> None:
    ix = fixture().index
    text, _ = explain(ix.index("1"), ix, ReasonContext(), {"prior": 0.3})
    assert "as asked" not in text and text == "A popular pick"


def test_similarity_is_claimed_above_the_threshold_only() -> None:
    ix = fixture().index
    ctx = ReasonContext(liked=[ix.index("183")])  # Alien
    text, ev = explain(ix.index("176"), ix, ctx, {}, min_similarity=0.5)  # Aliens
    assert "Similar to Alien (1979), which you liked" in text and ev.similarity >= 0.5
    text, ev = explain(ix.index("176"), ix, ctx, {}, min_similarity=0.999)
    assert "similar" not in text and ev.similar_to is None


def test_query_terms() -> None:
    assert query_terms(["a dark space story", "with robots"]) == ["robots", "dark", "space", "story"]


def test_a_brand_named_in_the_title_is_as_asked() -> None:
    """'something from 3M' keeps "3M 1860 N95 Mask" (its text has no brand part): its reason said "A popular
    pick" instead of what it was chosen for."""
    from tests.unit.dialogue_fixtures import tiny_index

    facets = [{"name": "brand", "kind": "category", "column": "categories", "proper_names": True}]
    ix, _ = tiny_index(["3M 1860 N95 Mask", "Dynarex Face Mask"], categories=[[], ["Dynarex"]], facets=facets)
    ctx = ReasonContext(constraints=[Constraint(facet="brand", op="is", value="3M")])
    text, _ = explain(0, ix, ctx, {"prior": 0.3})
    assert text.startswith("3M, as asked")
    assert "as asked" not in explain(1, ix, ctx, {"prior": 0.3})[0]
