"""Catalogue changes served by the conversation (components/dialogue/catalogue.py) on the real MovieLens
catalogue of the dialogue fixture (items 1..400, an EASE model): an added film is found by its text, facets
and year at once; a re-described film by its new words; a retired film is never recommended, whatever is
asked; a change re-encodes only the rows whose text changed."""

from __future__ import annotations

import numpy as np
import pytest

from components.catalogue_overlay import OverlayState
from components.dialogue import catalogue as dc
from tests.unit.dialogue_fixtures import fixture, make_engine

PADDINGTON = {
    "item_id": "pad-2",
    "title": "Paddington 2 (2017)",
    "text": "A polite bear from Peru who loves marmalade is framed for theft in London; a family comedy.",
    "categories": ["Children's", "Comedy"],
    "year": 2017,
    "attributes": {},
}


def state(items=(), retired=(), revision=1) -> OverlayState:
    return OverlayState({r["item_id"]: dict(r) for r in items}, dict.fromkeys(retired, "t"), revision)


@pytest.fixture(scope="module")
def served():
    fx = fixture()
    base = make_engine()
    cat = dc.extend_catalogue(fx.predictor, fx.index, fx.bundle_dir, state([PADDINGTON], ["1", "50"]))
    return base.with_catalogue(cat.predictor, cat.index, cat.retired), cat


def ask(engine, message: str, k: int = 10) -> list[str]:
    return [i.item_id for i in engine.chat_stateless([{"role": "user", "content": message}], k).items]


def test_an_added_film_is_found_by_its_text_facets_and_year(served):
    engine, cat = served
    assert cat.describe() == {"revision": 1, "added": 1, "described": 0, "retired": 2, "n_items": 399}
    assert ask(engine, "something with a bear in london")[0] == "pad-2"
    assert ask(engine, "a children's comedy from 2017") == ["pad-2"]  # only it has that year
    assert engine.index.label(engine.index.index("pad-2")) == "Paddington 2 (2017)"
    # the model scores it through the films nearest by text: a children's film session ranks it
    kids = ["71", "8", "95"]  # The Lion King, Babe, Aladdin
    ranked = [r.item_id for r in cat.predictor.recommend(kids, k=400).items]
    nearest = [cat.predictor.vocab.item_ids[i] for i in cat.delta.new_items.neighbours[0][:3]]
    assert ranked.index("pad-2") < len(ranked) // 2, (ranked.index("pad-2"), nearest)


def test_a_retired_film_is_never_recommended(served):
    engine, cat = served
    for message in ("Toy Story", "a children's animation like Toy Story", "pixar films", "star wars"):
        shown = ask(engine, message, 50)
        assert "1" not in shown and "50" not in shown, (message, shown)
    assert "1" not in [i.item_id for i in engine.recommend(None, ["2", "3"], 400)]
    assert "1" not in [r.item_id for r in cat.predictor.recommend(["2", "3"], 400).items]
    assert engine.n_active == 399
    liked = engine.chat_stateless([{"role": "user", "content": "I loved Toy Story"}], 5)  # still a reference
    assert liked.items and "1" not in [i.item_id for i in liked.items]


def test_a_changed_description_is_searchable_and_the_model_keeps_the_item():
    fx = fixture()
    redescribed = {"item_id": "100", "title": "Fargo (1996)", "text": "Zorblaxian snowbound crime caper.",
                   "categories": ["Crime"], "year": 1996, "attributes": {}}  # fmt: skip
    cat = dc.extend_catalogue(fx.predictor, fx.index, fx.bundle_dir, state([redescribed]))
    assert cat.delta.added == () and len(cat.predictor.vocab) == len(fx.predictor.vocab)
    engine = make_engine().with_catalogue(cat.predictor, cat.index, cat.retired)
    assert ask(engine, "a zorblaxian caper")[0] == "100"


def test_a_change_encodes_only_what_changed(monkeypatch):
    fx = fixture()
    encoded: list[str] = []
    real = dc._encode
    monkeypatch.setattr(dc, "_encode", lambda texts: (encoded.extend(texts), real(texts))[1])
    first = dc.extend_catalogue(fx.predictor, fx.index, fx.bundle_dir, state([PADDINGTON]))
    assert len(encoded) == 1
    retired = dc.extend_catalogue(fx.predictor, fx.index, fx.bundle_dir, state([PADDINGTON], ["5"], 2), first)
    assert len(encoded) == 1 and retired.index is first.index  # only a mask changed
    assert retired.predictor.model is first.predictor.model and retired.retired.sum() == 1
    other = {**PADDINGTON, "item_id": "pad-1", "title": "Paddington (2014)"}
    both = dc.extend_catalogue(
        fx.predictor, fx.index, fx.bundle_dir, state([PADDINGTON, other], ["5"], 3), retired
    )
    assert len(encoded) == 2 and both.delta.added == ("pad-2", "pad-1")
    pad = both.index.index("pad-2")
    assert np.allclose(both.index.embeddings[pad], first.index.embeddings[first.index.index("pad-2")])
    back = dc.extend_catalogue(fx.predictor, fx.index, fx.bundle_dir, state(revision=4), both)
    assert back.index is fx.index and back.delta.added == () and not back.retired.any()


def test_a_text_aware_champion_scores_added_items_from_their_own_text():
    """TextSASRec: the added item's text embedding goes into the model (no neighbour stand-in)."""
    import torch

    from components.bundle import Predictor
    from models import build_model

    fx = fixture()
    n = len(fx.predictor.vocab)
    model = build_model(
        "textsasrec", n, {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "device": "cpu"}
    )
    with torch.no_grad():
        model.net.get_buffer("item_text")[1:] = torch.from_numpy(fx.index.embeddings)
    trained = Predictor(model, fx.predictor.vocab, fx.predictor.titles, {})
    cat = dc.extend_catalogue(trained, fx.index, fx.bundle_dir, state([PADDINGTON]))
    grown = cat.predictor.model
    assert type(grown).__name__ == "TextSASRec" and grown.n_items == n + 1
    assert cat.delta.new_items.text.shape == (1, 384)  # MiniLM of the row's own text
    stored = grown.net.get_buffer("item_text")[-1].numpy()
    assert np.allclose(stored, cat.delta.new_items.text[0]) and grown.net.get_buffer("id_seen")[-1] == 0
    scores = grown.score([[0, 1, 2]])
    assert scores.shape == (1, n + 1) and np.isfinite(scores).all()
    assert "pad-2" in [r.item_id for r in cat.predictor.recommend(["1", "2"], k=n).items]
