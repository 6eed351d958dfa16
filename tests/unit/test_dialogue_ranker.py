"""Ranker: hard filters are never violated, critiques change the next answer, MMR diversifies."""

from __future__ import annotations

import random

import numpy as np
import pytest

from components.dialogue import ConversationConfig
from components.dialogue.ranker import RankRequest, mmr, rank
from tests.unit.dialogue_fixtures import make_engine

PHRASES = [
    "a funny movie", "no horror", "something scary", "from the 90s", "after 1985", "before 1980", "no comedy",
    "a western", "without romance", "like Star Wars", "nothing like Alien", "more recent", "older", "lighter",
    "darker", "kids", "no drama or thriller", "a crime film", "between 1990 and 1995", "not the first one",
    "another one like the second", "sci-fi", "start over", "no action", "a war film", "like Toy Story",
]  # fmt: skip


@pytest.fixture(scope="module")
def engine():
    return make_engine(ConversationConfig(w_text=0.0))  # filters do not depend on text: skip encoding


def check_filters(engine, state: dict, item_ids: list[str], exclude: set[str] = frozenset()) -> None:
    cat = engine.catalogue
    banned = set(state["disliked"]) | set(state["rejected_items"]) | set(state["negative_refs"]) | exclude
    banned |= set(state["positive_refs"]) | set(state["history"]) | set(state["liked"])
    for item in item_ids:
        i = cat.index(item)
        assert item not in banned, (item, state)
        assert not set(cat.categories[i]) & set(state["rejected_categories"]), (item, state)
        year = cat.years[i]
        if state["year_min"] is not None:
            assert np.isfinite(year) and year >= state["year_min"], (item, year, state)
        if state["year_max"] is not None:
            assert np.isfinite(year) and year <= state["year_max"], (item, year, state)
    assert len(set(item_ids)) == len(item_ids)


def test_hard_filters_hold_over_random_dialogues(engine) -> None:
    rng = random.Random(11)
    for n in range(40):
        sid = f"prop-{n}"
        for _ in range(rng.randint(1, 4)):
            msg = ", ".join(rng.sample(PHRASES, rng.randint(1, 3)))
            res = engine.chat(sid, msg, k=10)
            check_filters(engine, res.state, [i.item_id for i in res.items])
            if res.items and rng.random() < 0.5:
                fb = engine.feedback(
                    sid, res.items[-1].item_id, rng.choice(["dislike", "like", "click", "skip"])
                )
                check_filters(engine, fb["state"], [i["item_id"] for i in fb["items"]])
        exclude = {engine.catalogue.item_ids[j] for j in rng.sample(range(len(engine.catalogue)), 30)}
        recs = engine.recommend(sid, ["1", "2"], k=15, exclude=sorted(exclude))
        state = engine.store.get(sid).to_dict()
        state["history"] = ["1", "2", *state["history"]]
        check_filters(engine, state, [r.item_id for r in recs], exclude)


def test_no_horror_removes_horror() -> None:
    engine = make_engine()
    first = engine.chat("h", "something scary", k=10)
    cat = engine.catalogue
    assert sum("Horror" in cat.categories[cat.index(i.item_id)] for i in first.items) >= 5
    second = engine.chat("h", "no horror", k=10)
    assert second.items and all("Horror" not in cat.categories[cat.index(i.item_id)] for i in second.items)


def test_more_recent_raises_the_mean_year_and_older_lowers_it() -> None:
    engine = make_engine()
    cat = engine.catalogue

    def mean_year(res) -> float:
        return float(np.nanmean([cat.years[cat.index(i.item_id)] for i in res.items]))

    base = engine.chat("y", "a drama", k=10)
    newer = engine.chat("y", "more recent", k=10)
    assert mean_year(newer) > mean_year(base)
    engine.reset("y")
    base = engine.chat("y", "a drama", k=10)
    older = engine.chat("y", "older", k=10)
    assert mean_year(older) < mean_year(base)


def test_lighter_and_darker_shift_the_categories() -> None:
    engine = make_engine()
    cat = engine.catalogue
    light = {"Comedy", "Children's", "Animation"}
    dark = {"Horror", "Thriller", "Crime", "Film-Noir"}

    def share(res, cats: set[str]) -> float:
        return float(np.mean([bool(cats & set(cat.categories[cat.index(i.item_id)])) for i in res.items]))

    base = engine.chat("t", "a film from the 90s", k=10)
    lighter = engine.chat("t", "something lighter", k=10)
    assert share(lighter, light) > share(base, light)
    darker = engine.chat("t", "darker", k=10)
    assert share(darker, dark) > share(lighter, dark)


def test_required_categories_filter_mode() -> None:
    engine = make_engine(ConversationConfig(category_mode="filter", w_text=0.0))
    cat = engine.catalogue
    res = engine.chat("f", "a funny sci-fi film", k=5)
    assert all({"Comedy", "Sci-Fi"} <= set(cat.categories[cat.index(i.item_id)]) for i in res.items)
    res = engine.chat("f2", "a western musical war film", k=5)  # too few have all three: relaxed to any
    assert len(res.items) == 5
    assert all({"Western", "Musical", "War"} & set(cat.categories[cat.index(i.item_id)]) for i in res.items)


def test_mmr_diversifies_and_lambda_one_is_pure_relevance() -> None:
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    cands = np.array([0, 1, 2])
    rel = np.array([1.0, 0.99, 0.5])
    assert mmr(cands, rel, emb, 2, lam=1.0) == [0, 1]
    assert mmr(cands, rel, emb, 2, lam=0.5) == [0, 2]  # the duplicate of item 0 is passed over


def test_rank_returns_fewer_when_filters_leave_few() -> None:
    engine = make_engine(ConversationConfig(w_text=0.0))
    req = RankRequest(year_min=1930, year_max=1939)
    out = rank(engine.catalogue, engine.predictor.model, req, engine.config, k=50)
    assert len(out) == 4  # Snow White, The Wizard of Oz, Gone with the Wind, Mr. Smith Goes to Washington
    assert all(1930 <= engine.catalogue.years[r.idx] <= 1939 for r in out)
    res = engine.chat("none", "a western from 1931", k=10)
    assert res.items == [] and "Nothing in the catalogue" in res.reply
