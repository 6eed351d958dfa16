"""Ranking: filters (OR within a facet, AND across), relax-if-empty, dislikes demote only close items, MMR."""

from __future__ import annotations

import numpy as np

from components.dialogue.config import ConversationConfig
from components.dialogue.query import Constraint
from components.dialogue.ranker import RankRequest, constraint_mask, filter_mask, mmr, rank
from tests.unit.dialogue_fixtures import fixture, tiny_index


def genre(value: str, op: str = "is") -> Constraint:
    return Constraint(facet="genre", op=op, value=value)


def test_masks() -> None:
    ix = fixture().index
    horror = constraint_mask(ix, genre("Horror"))
    assert horror[ix.index("183")] and not horror[ix.index("1")]  # Alien is horror, Toy Story is not
    nineties = constraint_mask(ix, Constraint(facet="year", op="between", low=1990, high=1999))
    assert nineties[ix.index("1")] and not nineties[ix.index("183")]
    either = filter_mask(ix, [genre("Horror"), genre("Animation")], category_filter=True)
    assert either[ix.index("1")] and either[ix.index("183")]
    star = constraint_mask(ix, Constraint(facet="title", op="is_not", value="star wars"))
    assert not star[ix.index("50")] and star[ix.index("1")]


def test_relax_if_empty_drops_the_oldest_positive_constraint() -> None:
    fx = fixture()
    cons = [genre("Western"), Constraint(facet="year", op="between", low=1996, high=1996)]  # none together
    res = rank(fx.index, fx.predictor.model, RankRequest(constraints=cons), ConversationConfig(), 5)
    assert res.items and [c.facet for c in res.relaxed] == ["genre"]
    assert all(fx.index.years[r.idx] == 1996 for r in res.items)
    never = [genre("Western"), genre("Western", "is_not")]
    res = rank(fx.index, fx.predictor.model, RankRequest(constraints=never), ConversationConfig(), 5)
    assert res.relaxed  # the positive one goes, the exclusion stays
    assert all("Western" not in fx.index.facet_values(r.idx).get("genre", []) for r in res.items)


def test_banned_items_never_come_back() -> None:
    fx = fixture()
    top = rank(fx.index, fx.predictor.model, RankRequest(), ConversationConfig(), 5)
    banned = {r.idx for r in top.items}
    again = rank(fx.index, fx.predictor.model, RankRequest(banned=banned), ConversationConfig(), 5)
    assert banned.isdisjoint({r.idx for r in again.items})


def test_dislike_only_demotes_close_items() -> None:
    fx = fixture()
    cfg = ConversationConfig()
    alien = fx.index.index("183")
    base = rank(fx.index, fx.predictor.model, RankRequest(), cfg, 20)
    after = rank(fx.index, fx.predictor.model, RankRequest(disliked=[alien], banned={alien}), cfg, 20)
    sims = fx.index.embeddings @ fx.index.embeddings[alien]
    far = [r.idx for r in base.items if sims[r.idx] < cfg.dislike_similarity]
    kept = {r.idx for r in after.items}
    assert sum(i in kept for i in far) >= 0.7 * len(far)


def test_mmr_diversifies() -> None:
    emb = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert mmr(np.arange(3), np.array([1.0, 0.95, 0.9]), emb, 2, 0.5) == [0, 2]
    assert mmr(np.arange(3), np.array([1.0, 0.95, 0.9]), emb, 2, 1.0) == [0, 1]


def test_minmax_over_allowed_items_is_the_nan_masked_scaling() -> None:
    """``minmax(v, where=ok)`` gives exactly (bit for bit) the scaling of ``v`` with the others set to NaN."""
    from components.dialogue.index import minmax

    def reference(values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(v)
        out = np.zeros_like(v)
        if finite.any():
            lo, hi = v[finite].min(), v[finite].max()
            if hi - lo > 1e-12:
                out[finite] = (v[finite] - lo) / (hi - lo)
        return out

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 60))
        v = rng.normal(size=n) * rng.choice([1e-14, 1.0, 1e6])
        v = v.astype(np.float32) if rng.random() < 0.5 else v
        v[rng.random(n) < 0.1] = np.nan
        v[rng.random(n) < 0.05] = np.inf
        if rng.random() < 0.1:
            v[:] = 3.0
        ok = rng.random(n) < rng.random()
        assert minmax(v, where=ok).tobytes() == reference(np.where(ok, v, np.nan)).tobytes()
        assert minmax(v).tobytes() == reference(v).tobytes()


def test_item_similarity_rows_are_kept_and_exact() -> None:
    ix = fixture().index
    alien = ix.index("183")
    row = ix.cosines(alien)
    assert np.array_equal(row, ix.embeddings @ ix.embeddings[alien])
    assert ix.cosines(alien) is row and not row.flags.writeable
    ix.forget_cosines()
    assert ix.cosines(alien) is not row


def test_a_free_text_request_in_a_shop_is_a_search() -> None:
    """'nitrile gloves': popularity orders the gloves and lifts nothing else (titles describe products);
    without the rule the shop's best sellers push in between."""
    titles = [f"Nitrile Exam Gloves size {i}" for i in range(12)] + [
        f"Digital Humidity Monitor {i}" for i in range(18)
    ]
    index, predictor = tiny_index(titles, item_noun=("product", "products"))
    index.prior[:] = np.r_[np.full(12, 0.1), np.full(18, 1.0)]  # the monitors sell far better
    cfg = ConversationConfig(mmr_lambda=1.0)
    terms = {"nitrile": 1.0, "gloves": 1.0}
    searched = rank(index, predictor.model, RankRequest(terms=terms, text_only=True), cfg, 10)
    assert all("Gloves" in index.titles[r.idx] for r in searched.items)
    plain = rank(index, predictor.model, RankRequest(terms=terms), cfg, 10)
    assert any("Monitor" in index.titles[r.idx] for r in plain.items)


def test_leaving_out_a_word_does_not_demote_items_free_of_it() -> None:
    """'nitrile gloves, not powdered' demoted the "Powder Free" gloves below plain ones (stem "powder")."""
    titles = [
        "Nitrile Gloves, Powder Free",
        "Powdered Nitrile Gloves",
        "Nitrile Gloves",
        "Gloves, Non-Powdered",
    ]
    index, predictor = tiny_index(titles, item_noun=("product", "products"))
    assert list(index.free_of(["powdered"])) == [True, False, False, True]
    cfg = ConversationConfig(mmr_lambda=1.0)
    req = RankRequest(terms={"gloves": 1.0}, avoid_terms={"powdered": 1.0})
    avoid = {
        index.titles[r.idx]: r.parts.get("avoid", 0.0)
        for r in rank(index, predictor.model, req, cfg, 4).items
    }
    assert avoid["Powdered Nitrile Gloves"] < 0 == avoid["Nitrile Gloves"]
    assert (
        avoid["Nitrile Gloves, Powder Free"] == avoid["Gloves, Non-Powdered"] > 0
    )  # what was asked: they rise


def test_goggles_that_wont_fog_are_the_anti_fog_ones() -> None:
    """ "safety goggles that won't fog up" (a shop without goggles) was small talk, avoided every text that
    mentions fog, the one anti-fog eyewear included, and said nothing mentions 'fog up'."""
    from components.dialogue.planner import BuiltinPlanner

    titles = ["Safety Stripe Tape", "Protective Eyewear, Anti Fog Lens", "Fog Machine", "Waterproof Tape"]
    index, predictor = tiny_index(titles, item_noun=("product", "products"))
    assert list(index.free_of(["fog"])) == [False, True, False, False]
    assert list(index.free_of(["water"])) == [False, False, False, True]  # "tape that won't let water in"
    q = BuiltinPlanner(index).plan("safety goggles that won't fog up")
    assert (q.intent, q.avoid) == ("recommend", "fog")
    assert BuiltinPlanner(index).plan("safety goggles").intent == "recommend"  # a search that finds little
    req = RankRequest(terms={"safety": 1.0, "goggles": 1.0}, avoid_terms={"fog": 1.0})
    ranked = rank(index, predictor.model, req, ConversationConfig(mmr_lambda=1.0), 4).items
    avoid = {index.titles[r.idx]: r.parts.get("avoid", 0.0) for r in ranked}
    assert avoid["Protective Eyewear, Anti Fog Lens"] > 0 > avoid["Fog Machine"]
    assert index.titles[ranked[-1].idx] == "Fog Machine"


def test_an_avoided_phrase_also_demotes_what_it_means_where_no_text_says_it() -> None:
    """ "no superhero stuff" left Iron Man and Thor first: no text of theirs says "superhero". The items
    closest in meaning to the avoided words are demoted, if the encoder knows the phrase well enough."""
    from components.dialogue.ranker import closest_share

    cos = np.array([0.9, 0.5, 0.45, 0.1, -0.2])
    near = closest_share(cos, 0.4)  # two of five
    assert near[0] == 1.0 and near[1] == 0.5 and (near[2:] == 0).all()
    titles = ["Iron Man", "Thor", "Up", "Heat"]
    index, predictor = tiny_index(titles)
    query = index.embeddings[0] / np.linalg.norm(index.embeddings[0])
    cfg = ConversationConfig(mmr_lambda=1.0, avoid_dense_top=0.25)

    def avoid(req: RankRequest, c: ConversationConfig = cfg) -> dict[str, float]:
        return {
            index.titles[r.idx]: r.parts.get("avoid", 0.0)
            for r in rank(index, predictor.model, req, c, 4).items
        }

    got = avoid(RankRequest(avoid_terms={"superhero": 1.0}, avoid_queries=(query,)))
    assert got["Iron Man"] < 0 and got["Thor"] == got["Up"] == got["Heat"] == 0
    blend = index.embeddings[0] + index.embeddings[1]
    vague = RankRequest(avoid_terms={"superhero": 1.0}, avoid_queries=(blend / np.linalg.norm(blend),))
    assert (
        min(
            avoid(
                vague, ConversationConfig(mmr_lambda=1.0, avoid_dense_top=0.25, avoid_dense_floor=-1.0)
            ).values()
        )
        < 0
    )
    assert set(
        avoid(
            vague, ConversationConfig(mmr_lambda=1.0, avoid_dense_top=0.25, avoid_dense_floor=0.999)
        ).values()
    ) == {0.0}
    off = ConversationConfig(mmr_lambda=1.0, avoid_dense_top=0.0)
    req = RankRequest(avoid_terms={"superhero": 1.0}, avoid_queries=(query,))
    assert set(avoid(req, off).values()) == {0.0}


def test_each_avoided_phrase_is_matched_alone() -> None:
    """ "tired of Marvel, no superhero stuff" is two ideas: encoded as one phrase, neither's closest
    items were demoted (Iron Man, Deadpool stayed). Each phrase demotes its own closest items."""
    titles = ["Iron Man", "Thor", "Up", "Heat"]
    index, predictor = tiny_index(titles)
    unit = [e / np.linalg.norm(e) for e in index.embeddings[:2]]
    cfg = ConversationConfig(mmr_lambda=1.0, avoid_dense_top=0.25, avoid_dense_floor=0.9)
    req = RankRequest(avoid_terms={"marvel": 1.0, "superhero": 1.0}, avoid_queries=tuple(unit))
    ranked = rank(index, predictor.model, req, cfg, 4).items
    got = {index.titles[r.idx]: r.parts.get("avoid", 0.0) for r in ranked}
    assert got["Iron Man"] < 0 and got["Thor"] < 0 and got["Up"] == got["Heat"] == 0


def test_a_name_left_out_also_leaves_out_titles_that_carry_it() -> None:
    """'an N95 mask, not 3M' listed "3M 1860 N95 Respirator" first: its text has no brand part."""
    titles = ["3M 1860 N95 Respirator Mask", "Dynarex Face Mask", "3M Duct Tape", "Curad Face Mask"]
    brands = [[], ["Dynarex"], ["3M"], []]
    facets = [{"name": "brand", "kind": "category", "column": "categories", "proper_names": True}]
    index, _ = tiny_index(titles, categories=brands, facets=facets, item_noun=("product", "products"))
    not_3m = constraint_mask(index, Constraint(facet="brand", op="is_not", value="3M"))
    assert list(not_3m) == [False, True, False, True]
    is_3m = constraint_mask(index, Constraint(facet="brand", op="is", value="3M"))
    assert list(is_3m) == [True, False, True, False]


def test_a_shop_search_lists_what_it_found_first_and_by_how_well() -> None:
    """'an N95 mask' found three masks and the best-selling caliper came first (fewer than ten found kept
    popularity for the whole list); 'a magnifying glass for reading small print' listed best-selling 3D
    printer filament (one common word) above the magnifiers."""
    titles = [
        "Face Mask A",
        "Face Mask B",
        "Digital Caliper",
        "PLA Printer Filament",
        "Reading Magnifier Glass",
    ]
    index, predictor = tiny_index(titles, item_noun=("product", "products"))
    index.prior[:] = [0.1, 0.1, 1.0, 0.9, 0.1]
    cfg = ConversationConfig(mmr_lambda=1.0)
    masks = rank(index, predictor.model, RankRequest(terms={"mask": 1.0}, text_only=True), cfg, 5)
    assert {index.titles[r.idx] for r in masks.items[:2]} == {"Face Mask A", "Face Mask B"}
    terms = {"magnifying": 1.0, "glass": 1.0, "reading": 1.0, "print": 1.0}
    found = rank(index, predictor.model, RankRequest(terms=terms, text_only=True), cfg, 5)
    assert index.titles[found.items[0].idx] == "Reading Magnifier Glass"


def test_one_product_under_two_ids_is_listed_once() -> None:
    titles = ["Humidity Monitor", "Humidity Monitor", "Thermometer", "Halloween", "Halloween"]
    index, predictor = tiny_index(titles, years=[None, None, None, 1978, 2018])
    cfg = ConversationConfig(mmr_lambda=1.0)
    shown = [index.label(r.idx) for r in rank(index, predictor.model, RankRequest(), cfg, 5).items]
    assert sorted(shown) == ["Halloween (1978)", "Halloween (2018)", "Humidity Monitor", "Thermometer"]


def test_a_franchise_searches_the_texts_as_a_whole_phrase() -> None:
    """ "my wife loves Jane Austen adaptations" listed The Shawshank Redemption first: the franchise only
    searched titles, and the Austen films are tagged, not titled, so. A franchise phrase counts where an
    item's text holds all its words, and only there ("star wars" is not every war film)."""
    titles = ["Big Popular Film", "Sense and Sensibility", "Emma", "Star Wars", "Saving Private Ryan"]
    cats = [["Drama"], ["Jane Austen"], ["Jane Austen"], ["Sci-Fi", "Star Wars"], ["War"]]
    index, predictor = tiny_index(titles, categories=cats)
    hits = index.lexical.phrase_score("star wars") > 0
    assert [index.titles[i] for i in np.flatnonzero(hits)] == ["Star Wars"]
    cfg = ConversationConfig(mmr_lambda=1.0)
    req = RankRequest(title_terms={"jane": 1.0, "austen": 1.0}, title_phrases=("jane austen",))
    top = [index.titles[r.idx] for r in rank(index, predictor.model, req, cfg, 2).items]
    assert sorted(top) == ["Emma", "Sense and Sensibility"]


def test_a_name_the_texts_hold_is_not_reported_missing() -> None:
    """ "I love Tom Hanks movies" was answered "I couldn't find 'Tom Hanks' in the catalogue" over a list of
    his films (tagged so). Only a name no text holds whole is reported missing."""
    from components.dialogue.query import Query
    from components.dialogue.reply import compose
    from components.dialogue.state import DialogueState

    index, _ = tiny_index(["Big", "Forrest Gump"], categories=[["Drama"], ["Tom Hanks"]])
    state = DialogueState("s")
    reply = compose(Query(unresolved_titles=["Tom Hanks"]), state, index, ["Forrest Gump"], 1)
    assert "couldn't find" not in reply, reply
    reply = compose(Query(unresolved_titles=["Knives Out"]), state, index, ["Big"], 1)
    assert "couldn't find 'Knives Out'" in reply, reply


def test_a_shop_search_lists_what_holds_the_head_noun_phrase_first() -> None:
    """ "test tubes with caps" listed a best-selling heat-shrink tubing kit first ('tube' is one of the
    words): in a shop, the items whose text holds the request's head noun phrase whole come first."""
    titles = ["Heat Shrink Tubing Kit 500 pcs", "Plastic Test Tubes with Caps", "Lab Test Strips"]
    index, predictor = tiny_index(titles)  # a shop: titles describe the items
    cfg = ConversationConfig(mmr_lambda=1.0, w_dense=0.0)
    req = RankRequest(terms={"test": 1.0, "tubes": 1.0, "caps": 0.5}, text_only=True, head="test tubes")
    top = [index.titles[r.idx] for r in rank(index, predictor.model, req, cfg, 3).items]
    assert top[0] == "Plastic Test Tubes with Caps", top
    # whole means next to each other: an inspection camera's "tube" and "test" far apart are no test tubes,
    # and a one-word head counts too ("a bigger beaker": beakers, not the Big Red jack)
    titles = ["Endoscope Inspection Tubes, Tubes Test Kit, Holds Tubes", "Test Tube Rack",
              "Big Red Hydraulic Jack", "Glass Beaker 250 ml"]  # fmt: skip
    index, predictor = tiny_index(titles)
    req = RankRequest(terms={"test": 1.0, "tubes": 1.0, "hold": 0.5}, text_only=True, head="test tubes")
    top = [index.titles[r.idx] for r in rank(index, predictor.model, req, cfg, 2).items]
    assert top[0] == "Test Tube Rack", top
    req = RankRequest(terms={"beaker": 1.0, "big": 1.0}, text_only=True, head="beaker")
    top = [index.titles[r.idx] for r in rank(index, predictor.model, req, cfg, 2).items]
    assert top[0] == "Glass Beaker 250 ml", top
