"""The catalogue index: facets from the spec, phrases from the vocabulary (data), learnt synonyms,
save/load."""

from __future__ import annotations

import numpy as np
import pytest

from components.dialogue.index import CatalogueIndex, learnt_synonyms
from components.facets import CatalogueSpec, load_vocabulary
from tests.unit.dialogue_fixtures import fixture, tiny_index


def test_movie_words_are_data_of_the_spec() -> None:
    ix = fixture().index
    assert ix.spec.item_noun == ("film", "films")
    assert ("genre", "Comedy", 1.0) in ix.phrases["funny"]
    assert ("genre", "Horror", 1.0) in ix.phrases["scary"]
    assert load_vocabulary("movies").combos["rom-com"] == ["Comedy", "Romance"]


def test_a_catalogue_without_a_vocabulary_knows_only_its_own_values() -> None:
    facets = [{"name": "category", "kind": "category", "column": "categories"}]
    index, _ = tiny_index(["A", "B"], categories=[["Adhesives"], ["Tapes"]], facets=facets)
    assert "funny" not in index.phrases
    assert index.phrases["adhesives"] == [("category", "Adhesives", 1.0)]
    assert index.phrases["tapes"] == [("category", "Tapes", 1.0)]


def test_learnt_synonyms_come_from_item_texts() -> None:
    index, _ = tiny_index(list("ABCDEFGHIJKL"), categories=[["Horror"]] * 4 + [["Comedy"]] * 8,
                          facets=[{"name": "genre", "kind": "category", "column": "categories"}])  # fmt: skip
    texts = ["slasher gore" if int(i) <= 4 else "jokes" for i in index.item_ids]  # index (vocabulary) order
    syn = learnt_synonyms(index.categories["genre"], texts, min_items=2)
    assert ("slasher", "Horror") in {(w, v) for w, v, _ in syn}


def test_save_load_round_trip(tmp_path) -> None:
    ix = fixture().index
    ix.save(tmp_path)
    again = CatalogueIndex.load(tmp_path)
    assert again.item_ids == ix.item_ids and again.titles == ix.titles
    assert np.array_equal(again.categories["genre"].matrix, ix.categories["genre"].matrix)
    assert again.phrases == ix.phrases and again.spec == ix.spec
    q = {"zombie": 1.0}
    assert np.allclose(again.lexical.score(q), ix.lexical.score(q))


def test_bad_specs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="column"):
        CatalogueSpec.model_validate({"facets": [{"name": "x", "kind": "category", "column": "nope"}]})
    with pytest.raises(ValueError, match="unique"):
        CatalogueSpec.model_validate({"facets": [{"name": "x", "kind": "year", "column": "year"}] * 2})
    with pytest.raises(FileNotFoundError, match="built-in"):
        load_vocabulary("no-such-vocabulary")
