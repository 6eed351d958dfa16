"""Smoke and behaviour tests for every registered model, on tiny synthetic data and tiny configs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from models import REGISTRY, EvalData, FitReport, Recommender, TrainData, build_model, load_model
from models.torch_training import TorchRecommender
from models.validation import VALID_METRIC, exclude_seen, valid_ndcg

N_ITEMS = 12
TEXT_DIM = 8
TORCH_MODELS = ("sasrec", "bert4rec", "textsasrec")
TINY: dict[str, dict[str, Any]] = {
    "popularity": {},
    "itemknn": {"neighbours": 5},
    "ease": {"l2": 1.0},
    "sasrec": {
        "hidden_size": 16,
        "num_layers": 1,
        "num_heads": 2,
        "max_len": 8,
        "batch_size": 16,
        "epochs": 3,
        "eval_every": 1,
        "lr": 0.01,
        "device": "cpu",
    },
    "bert4rec": {
        "hidden_size": 16,
        "num_layers": 1,
        "num_heads": 2,
        "max_len": 8,
        "batch_size": 16,
        "epochs": 3,
        "eval_every": 1,
        "lr": 0.01,
        "device": "cpu",
    },
}
TINY["textsasrec"] = TINY["sasrec"] | {"text_dim": TEXT_DIM}
TINY["hybrid"] = {"members": ["sasrec", "itemknn"], "member_params": {"sasrec": TINY["sasrec"]}}


def item_text(n_items: int = N_ITEMS, seed: int = 3) -> np.ndarray:
    """Unit-norm random 'text embeddings', one row per item."""
    text = np.random.default_rng(seed).normal(size=(n_items, TEXT_DIM)).astype(np.float32)
    return text / np.linalg.norm(text, axis=1, keepdims=True)


def successor_sequences(n_items: int, n_sequences: int, length: int, seed: int = 0) -> list[np.ndarray]:
    """Sequences where item i is always followed by item (i + 1) mod n_items, starting anywhere."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_sequences)
    return [(start + np.arange(length)) % n_items for start in starts]


@pytest.fixture(scope="module")
def data() -> tuple[TrainData, EvalData]:
    sequences = successor_sequences(N_ITEMS, 80, 7)
    rng = np.random.default_rng(1)
    skewed = [rng.choice(4, 6, p=[0.4, 0.3, 0.2, 0.1]) for _ in range(40)]  # a popularity signal to learn
    train = TrainData([s[:-1] for s in sequences] + skewed, N_ITEMS, item_text())
    valid = EvalData([s[:-1] for s in sequences[:20]], np.array([s[-1] for s in sequences[:20]]))
    return train, valid


@pytest.fixture(scope="module")
def fitted(data: tuple[TrainData, EvalData]) -> dict[str, tuple[Recommender, FitReport, list]]:
    train, valid = data
    out = {}
    for name in REGISTRY:
        model = build_model(name, N_ITEMS, TINY[name])
        calls: list[tuple[int, dict[str, float]]] = []
        report = model.fit(train, valid, on_epoch=lambda epoch, metrics, c=calls: c.append((epoch, metrics)))
        out[name] = (model, report, calls)
    return out


def test_registry_lists_the_models() -> None:
    assert set(REGISTRY) == {"popularity", "itemknn", "ease", "sasrec", "bert4rec", "textsasrec", "hybrid"}
    assert set(TINY) == set(REGISTRY)
    for name, cls in REGISTRY.items():
        assert cls.name == name


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_config_fields_are_documented_and_unknown_keys_rejected(name: str) -> None:
    cls = REGISTRY[name].config_cls
    for field_name, info in cls.model_fields.items():
        assert info.description, f"{name}: config field {field_name!r} has no description"
    with pytest.raises(ValidationError):
        build_model(name, N_ITEMS, {"no_such_field": 1})


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_score_shapes_and_finite_values(name: str, fitted: dict) -> None:
    model, _, _ = fitted[name]
    histories = [[1, 2, 3], [4], [], list(range(N_ITEMS)) * 3]  # includes empty and longer than max_len
    scores = model.score(histories)
    assert scores.shape == (4, N_ITEMS)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert model.score([]).shape == (0, N_ITEMS)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_unfitted_model_scores_without_crashing(name: str) -> None:
    scores = build_model(name, N_ITEMS, TINY[name]).score([[0, 1], []])
    assert scores.shape == (2, N_ITEMS) and np.isfinite(scores).all()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_empty_history_gets_popularity_order(name: str) -> None:
    skewed = TrainData([np.array([3, 3, 3, 5, 5, 7])] * 3 + [np.array([1, 2])], N_ITEMS, item_text())
    model = build_model(name, N_ITEMS, TINY[name] | ({"epochs": 1} if name in TORCH_MODELS else {}))
    model.fit(skewed)
    top3 = np.argsort(-model.score([[]])[0], kind="stable")[:3]
    assert list(top3) == [3, 5, 7]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_out_of_range_ids_are_rejected_with_a_clear_error(name: str, fitted: dict) -> None:
    model, _, _ = fitted[name]
    with pytest.raises(ValueError, match="outside 0..11"):
        model.score([[0, N_ITEMS]])
    with pytest.raises(ValueError, match="built for 12 items"):
        model.fit(TrainData([np.array([0, 1])], N_ITEMS + 1))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_fit_report_and_epoch_callback(name: str, fitted: dict) -> None:
    _, report, calls = fitted[name]
    assert report.epochs == len(calls) >= 1
    assert [epoch for epoch, _ in calls] == list(range(1, report.epochs + 1))
    valid_curve = report.curves[VALID_METRIC]
    assert valid_curve == [m[VALID_METRIC] for _, m in calls if VALID_METRIC in m]
    assert all(0.0 <= v <= 1.0 for v in valid_curve)
    if name in TORCH_MODELS:
        losses = report.curves["loss"]
        assert len(losses) == report.epochs and all(math.isfinite(v) for v in losses)
        assert losses[-1] < losses[0], f"{name}: loss did not go down: {losses}"
        assert report.device == "cpu"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_save_load_gives_identical_scores(name: str, fitted: dict, tmp_path) -> None:
    model, _, _ = fitted[name]
    histories = [[1, 2, 3], [], [11, 0, 5, 6]]
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model)
    assert loaded.config == model.config and loaded.n_items == model.n_items
    np.testing.assert_array_equal(loaded.score(histories), model.score(histories))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_backward_gives_finite_gradients(name: str, data: tuple[TrainData, EvalData]) -> None:
    train, _ = data
    model = build_model(name, N_ITEMS, TINY[name])
    assert isinstance(model, TorchRecommender)
    windows = torch.from_numpy(model._training_windows(list(train.sequences)))[:8]  # (8, W)
    model.net.train()
    loss = model._batch_loss(windows)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.net.item_embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_training_is_repeatable_with_the_same_seed(name: str, data: tuple[TrainData, EvalData]) -> None:
    train, _ = data
    config = TINY[name] | {"epochs": 1}
    first, second = build_model(name, N_ITEMS, config), build_model(name, N_ITEMS, config)
    first.fit(train)
    second.fit(train)
    np.testing.assert_array_equal(first.score([[1, 2], [5]]), second.score([[1, 2], [5]]))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_early_stopping_keeps_the_best_weights(name: str, data: tuple[TrainData, EvalData]) -> None:
    train, valid = data
    model = build_model(name, N_ITEMS, TINY[name] | {"epochs": 6, "lr": 0.05, "patience": 2})
    report = model.fit(train, valid)
    assert report.epochs <= 6
    assert valid_ndcg(model, valid) == pytest.approx(max(report.curves[VALID_METRIC]), abs=1e-12)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("itemknn", {"neighbours": 4}),
        ("sasrec", TINY["sasrec"] | {"epochs": 40, "eval_every": 40, "dropout": 0.0}),
    ],
)
def test_learns_that_item_i_is_followed_by_i_plus_1(name: str, params: dict) -> None:
    n_items = 10
    sequences = successor_sequences(n_items, 120, 6, seed=1)
    model = build_model(name, n_items, params)
    model.fit(TrainData(sequences, n_items))
    histories = [[(i - 2) % n_items, (i - 1) % n_items, i] for i in range(n_items)]
    scores = exclude_seen(model.score(histories), histories)
    np.testing.assert_array_equal(scores.argmax(axis=1), (np.arange(n_items) + 1) % n_items)


def test_popularity_scores_are_training_counts() -> None:
    model = build_model("popularity", 4)
    model.fit(TrainData([np.array([0, 1, 1]), np.array([1, 3])], 4))
    np.testing.assert_array_equal(model.score([[2], []]), np.array([[1, 3, 0, 1]] * 2, dtype=np.float32))


def test_ease_matches_a_hand_computed_example() -> None:
    # X = [[1, 1], [1, 0]] -> G = X^T X = [[2, 1], [1, 1]]; lambda = 1 -> G + I = [[3, 1], [1, 2]], det 5,
    # P = [[2/5, -1/5], [-1/5, 3/5]]; B_ij = -P_ij / P_jj: B_01 = 1/3, B_10 = 1/2, diagonal 0.
    model = build_model("ease", 2, {"l2": 1.0, "recency_decay": 1.0})  # the paper's binary history
    model.fit(TrainData([np.array([0, 1]), np.array([0])], 2))
    expected = np.array([[0.0, 1 / 3], [1 / 2, 0.0], [1 / 2, 1 / 3]])
    np.testing.assert_allclose(model.score([[0], [1], [0, 1]]), expected, atol=2e-6)  # prior <= 1e-6
    # recency weights: in [0, 1] item 0 is one step back (x_0 = decay), a repeat counts once, at its
    # latest position ([1, 0, 1]: x_0 = decay, x_1 = 1)
    model.config.recency_decay = 0.5
    expected = np.array([[0.5 * 0.0 + 1 / 2, 0.5 * 1 / 3 + 0.0]] * 2)
    np.testing.assert_allclose(model.score([[0, 1], [1, 0, 1]]), expected, atol=2e-6)


def test_ease_saved_before_recency_loads_with_its_binary_history(tmp_path: Path) -> None:
    model = build_model("ease", 3, {"l2": 1.0})
    model.fit(TrainData([np.array([0, 1, 2]), np.array([0, 2])], 3))
    folder = model.save(tmp_path / "ease")
    meta = json.loads((folder / "config.json").read_text())
    del meta["config"]["recency_decay"]  # as a bundle written before the field existed
    (folder / "config.json").write_text(json.dumps(meta))
    old = load_model(folder)
    assert old.config.recency_decay == 1.0
    assert load_model(model.save(tmp_path / "new")).config.recency_decay == 0.9


def test_itemknn_weights_recent_items_more() -> None:
    # 0 co-occurs only with 1, 2 only with 3: after history [0, 2] item 3 (via the recent 2) ranks first.
    train = TrainData([np.array([0, 1])] * 3 + [np.array([2, 3])] * 3, 4)
    for decay, first in ((0.5, 3), (1.0, None)):
        model = build_model("itemknn", 4, {"recency_decay": decay, "shrink": 0.0})
        model.fit(train)
        scores = model.score([[0, 2]])[0]
        if first is None:
            assert scores[1] == pytest.approx(scores[3], abs=2e-6)  # equal weights: a tie up to the prior
        else:
            assert scores.argmax() == first and scores[3] > scores[1] * 1.5
