"""Catalogue view: alignment with the model vocabulary, years, texts, errors; parser robust to any input."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from components.dialogue.catalogue import Catalogue, item_text, item_year
from tests.unit.dialogue_fixtures import fixture, make_engine


def test_catalogue_follows_the_model_vocabulary() -> None:
    fx = fixture()
    cat = make_engine().catalogue
    assert cat.item_ids == list(fx.predictor.vocab.item_ids)
    i = cat.index("1")
    assert cat.titles[i] == "Toy Story (1995)"
    assert set(cat.categories[i]) == {"Animation", "Children's", "Comedy"}
    assert cat.embeddings.shape == (len(cat), 384)
    assert np.allclose(np.linalg.norm(cat.embeddings, axis=1), 1.0, atol=1e-4)
    assert cat.category_matrix.sum() == sum(len(c) for c in cat.categories)
    assert cat.popularity.min() >= 0.0 and cat.popularity.max() == pytest.approx(1.0)


def test_items_missing_from_the_table_get_a_title_and_no_attributes() -> None:
    fx = fixture()
    partial = fx.items[fx.items["item_id"] != "1"]
    cat = Catalogue.build(fx.predictor, partial, embeddings=fx.embeddings)
    i = cat.index("1")
    assert cat.titles[i] == "Toy Story (1995)"  # from the bundle's titles
    assert cat.categories[i] == () and cat.years[i] == 1995.0  # the year its title carries


def test_embeddings_must_match_the_vocabulary() -> None:
    fx = fixture()
    with pytest.raises(ValueError, match="one row per vocabulary item"):
        Catalogue.build(fx.predictor, fx.items, embeddings=fx.embeddings[:-1])


def test_item_year_prefers_the_title_year() -> None:
    assert item_year("Return of the Jedi (1983)", 1997) == 1983.0  # MovieLens release date is the re-release
    assert item_year("Some product", 2001) == 2001.0
    assert np.isnan(item_year("Some product", pd.NA))


def test_item_text_does_not_repeat_itself() -> None:
    assert item_text("Heat (1995)", ["Action", "Crime"], "") == "Heat (1995). Action, Crime"
    assert item_text("Heat (1995)", ["Action"], "Heat (1995). Action") == "Heat (1995). Action"
    assert item_text("Mug", ["Kitchen"], "A big blue mug") == "Mug. Kitchen. A big blue mug"


def test_parser_survives_arbitrary_text() -> None:
    parser = make_engine().parser
    rng = random.Random(1)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ,.;:!?'’-#()/&+İıßéü\n\t"
    shown = [0, 1, 2]
    for _ in range(500):
        msg = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        parser.parse(msg, shown)
    odd = ["", "   ", "İstanbul in the 90s", "the 00s", "1900s", "between 2010 and the 90s", "#99", "no"]
    for msg in odd:
        parser.parse(msg, shown)
