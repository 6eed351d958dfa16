"""Items a trained model never saw, scored without retraining (models/new_items.py), and the Predictor that
serves catalogue changes: added items appended, retired ones never returned (components/bundle.py)."""

from __future__ import annotations

import numpy as np
import pytest

from components.bundle import CatalogueDelta, Predictor
from components.vocab import ItemVocab
from models import TrainData, build_model
from models.new_items import NeighbourScored, NewItems, text_neighbours
from tests.model.test_models import TINY, item_text, successor_sequences

N = 12


@pytest.fixture(scope="module")
def itemknn():
    model = build_model("itemknn", N, TINY["itemknn"])
    model.fit(TrainData(successor_sequences(N, 60, 6), N))
    return model


def test_text_neighbours_are_the_nearest_by_cosine_with_softmax_weights():
    trained = np.eye(4, dtype=np.float32)
    new = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.2, 0.98]], np.float32)
    nbrs, weights = text_neighbours(new, trained, k=2)
    assert nbrs.tolist() == [[0, 1], [3, 2]]
    assert np.allclose(weights.sum(axis=1), 1) and (weights[:, 0] > weights[:, 1]).all()
    assert text_neighbours(new, trained, k=10)[0].shape == (2, 4)  # at most the trained items


def test_neighbour_scored_items_score_what_the_model_gives_their_neighbours(itemknn):
    new = NewItems(
        neighbours=np.array([[3, 5], [7, 0]]), weights=np.array([[0.75, 0.25], [1.0, 0.0]], np.float32)
    )
    model = itemknn.with_new_items(new)
    assert isinstance(model, NeighbourScored) and model.n_items == N + 2
    histories = [[2], [1, 2], []]
    scores = model.score(histories)
    base = itemknn.score(histories)
    assert scores.shape == (3, N + 2) and np.allclose(scores[:, :N], base)
    assert np.allclose(scores[:, N], 0.75 * base[:, 3] + 0.25 * base[:, 5])
    assert np.allclose(scores[:, N + 1], base[:, 7])
    # a new item in a history stands for its nearest trained item
    assert np.allclose(model.score([[N + 1]])[:, :N], itemknn.score([[7]]))
    with pytest.raises(ValueError, match="outside 0..13"):
        model.score([[N + 2]])
    with pytest.raises(NotImplementedError, match="retrain"):
        model.fit(TrainData([], N + 2))


def test_textsasrec_scores_a_new_item_from_its_text_like_a_cold_item():
    text = item_text(N)
    model = build_model("textsasrec", N, TINY["textsasrec"] | {"epochs": 1})
    train = [s[s != 4] for s in successor_sequences(N, 60, 6)]  # item 4 is never seen: a cold item
    model.fit(TrainData(train, N, text))
    new = NewItems(
        neighbours=np.zeros((2, 1), np.int64), weights=np.ones((2, 1), np.float32), text=text[[4, 9]]
    )
    grown = model.with_new_items(new)
    assert type(grown).__name__ == "TextSASRec" and grown.n_items == N + 2
    histories = [[1, 2, 3], [7], []]
    scores, base = grown.score(histories), model.score(histories)
    assert np.allclose(scores[:, :N], base, atol=1e-5)  # the trained items are scored as before
    assert np.allclose(scores[:2, N], base[:2, 4], atol=1e-5)  # same text, never seen: the same score
    assert not np.allclose(scores[:2, N + 1], base[:2, 9])  # item 9 has its id embedding; the new one not
    assert (scores[2, N:] == 0).all()  # no interactions yet: no popularity
    assert grown.score([[1, N]]).shape == (1, N + 2)  # and it can be in a history
    without_text = model.with_new_items(NewItems(new.neighbours, new.weights))
    assert isinstance(without_text, NeighbourScored)


def test_the_predictor_serves_added_items_and_never_returns_retired_ones(itemknn):
    vocab = ItemVocab([str(i) for i in range(N)])
    predictor = Predictor(itemknn, vocab, {str(i): f"T{i}" for i in range(N)}, {})
    top = predictor.recommend(["1"], k=1).items[0].item_id
    delta = CatalogueDelta(
        added=("new",),
        new_items=NewItems(np.array([[2]]), np.ones((1, 1), np.float32)),
        titles={"new": "Brand new"},
        retired=(top, "not-there"),
    )
    served = predictor.with_changes(delta)
    assert len(served.vocab) == N + 1 and served.titles["new"] == "Brand new"
    everything = [r.item_id for r in served.recommend(["1"], k=100).items]
    assert top not in everything and "new" in everything and len(everything) == N - 1  # all but 1 and top
    assert served.recommend(["1"], k=1).items[0].item_id != top  # masked before the top-k, not after
    answer = served.recommend(["new", "x"], k=3)
    assert answer.unknown_items == ["x"] and "new" not in [r.item_id for r in answer.items]
    assert predictor.recommend(["1"], k=1).items[0].item_id == top  # the trained predictor is unchanged
    with pytest.raises(ValueError, match="already in the model's vocabulary"):
        predictor.with_changes(
            CatalogueDelta(added=("3",), new_items=NewItems(np.array([[2]]), np.ones((1, 1))))
        )
