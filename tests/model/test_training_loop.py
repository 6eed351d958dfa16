"""The shared training loop and losses: exact chunked CE, sampled losses, schedule, device ranking,
repeatability under threads, text-aware cold items, the hybrid's fitted weights."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from components.metrics import target_ranks
from models import EvalData, TrainData, build_model, load_model
from models.hybrid import simplex_grid, standardise
from models.losses import chunked_cross_entropy, gbce_beta, gbce_loss, sampled_softmax_loss
from models.torch_training import lr_factor, ranks_on_device, resolve_loss
from models.validation import exclude_seen, valid_ndcg
from tests.model.test_models import TINY, item_text, successor_sequences


def test_chunked_cross_entropy_matches_full_cross_entropy_and_its_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 8, generator=g, requires_grad=True)
    weight = torch.randn(53, 8, generator=g, requires_grad=True)
    targets = torch.randint(0, 53, (37,), generator=g)
    expected = F.cross_entropy(hidden @ weight.T, targets)
    expected.backward()
    gh, gw = hidden.grad.clone(), weight.grad.clone()
    hidden.grad, weight.grad = None, None
    got = chunked_cross_entropy(hidden, weight, targets, chunk_elements=53 * 5)  # 5 rows per chunk
    (got * 2.0).backward()  # the upstream gradient is applied
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hidden.grad, 2.0 * gh, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weight.grad, 2.0 * gw, rtol=1e-5, atol=1e-6)


def test_sampled_losses_are_finite_and_prefer_the_positive() -> None:
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(100, 16, generator=g)
    targets = torch.arange(10)
    good = weight[targets] * 5.0  # queries pointing at their targets
    bad = -good
    for loss in (
        lambda h: sampled_softmax_loss(h, weight, targets, 20, torch.Generator().manual_seed(2)),
        lambda h: gbce_loss(h, weight, targets, 20, 0.75, torch.Generator().manual_seed(2)),
    ):
        assert torch.isfinite(loss(good)) and loss(good) < loss(bad)


def test_gbce_beta_by_hand() -> None:
    # alpha = 10 / 100 = 0.1; beta = 0.1 * (0.5 * (1 - 10) + 10) = 0.1 * 5.5 = 0.55
    assert gbce_beta(101, 10, 0.5) == pytest.approx(0.55)
    assert gbce_beta(101, 10, 0.0) == pytest.approx(1.0)  # t = 0: plain BCE


def test_loss_auto_switches_to_sampled_above_the_catalogue_threshold() -> None:
    cfg = build_model("sasrec", 10, TINY["sasrec"] | {"full_softmax_max_items": 100}).config
    assert resolve_loss(cfg, 100) == "full"
    assert resolve_loss(cfg, 101) == "sampled"
    assert resolve_loss(cfg, 101, "cuda") == "full"  # a GPU trains far larger catalogues exactly
    assert resolve_loss(cfg, cfg.full_softmax_max_items_cuda + 1, "cuda") == "sampled"
    assert resolve_loss(cfg.model_copy(update={"loss": "gbce"}), 10) == "gbce"


def test_lr_schedule_warms_up_then_decays_by_cosine() -> None:
    assert lr_factor(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)


def test_device_ranks_match_the_metric_definition() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (6, 9)).astype(np.float32)  # many ties
    histories = [np.array([0, 1]), np.array([], np.int64), np.array([3]), np.array([2, 2]), np.array([8]), []]
    targets = np.array([1, 2, 4, 5, 6, 7])
    ranks, top = ranks_on_device(
        torch.from_numpy(scores.copy()), histories, torch.from_numpy(targets), True, 3
    )
    expected = target_ranks(exclude_seen(scores.copy(), histories), targets)
    np.testing.assert_array_equal(ranks.numpy(), expected)
    assert top.shape == (6, 3)


@pytest.mark.parametrize("loss", ["full", "sampled", "gbce"])
def test_sasrec_learns_the_successor_pattern_with_every_loss(loss: str) -> None:
    n_items = 10
    params = TINY["sasrec"] | {
        "epochs": 40,
        "eval_every": 40,
        "dropout": 0.0,
        "loss": loss,
        "num_negatives": 5,
    }
    model = build_model("sasrec", n_items, params)
    model.fit(TrainData(successor_sequences(n_items, 120, 6, seed=1), n_items))
    histories = [[(i - 2) % n_items, (i - 1) % n_items, i] for i in range(n_items)]
    scores = exclude_seen(model.score(histories), histories)
    np.testing.assert_array_equal(scores.argmax(axis=1), (np.arange(n_items) + 1) % n_items)


def test_bert4rec_learns_the_successor_pattern() -> None:
    n_items = 10
    params = TINY["bert4rec"] | {"epochs": 60, "eval_every": 60, "dropout": 0.0, "mask_prob": 0.3}
    model = build_model("bert4rec", n_items, params)
    model.fit(TrainData(successor_sequences(n_items, 120, 6, seed=1), n_items))
    histories = [[(i - 2) % n_items, (i - 1) % n_items, i] for i in range(n_items)]
    scores = exclude_seen(model.score(histories), histories)
    assert (scores.argmax(axis=1) == (np.arange(n_items) + 1) % n_items).mean() >= 0.9


def test_two_models_training_side_by_side_in_threads_repeat_a_serial_run_exactly() -> None:
    train = TrainData(successor_sequences(12, 60, 7, seed=2), 12, item_text())
    histories = [[1, 2], [5], [0, 3, 4]]

    def run(name: str, out: dict) -> None:
        model = build_model(name, 12, TINY[name] | {"epochs": 2})
        model.fit(train)
        out[name] = model.score(histories)

    serial: dict = {}
    for name in ("sasrec", "bert4rec"):
        run(name, serial)
    threaded: dict = {}
    threads = [threading.Thread(target=run, args=(n, threaded)) for n in ("sasrec", "bert4rec")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in serial:
        np.testing.assert_array_equal(serial[name], threaded[name])


def test_text_model_scores_an_item_training_never_showed_through_its_text() -> None:
    # Items 0..8 follow each other; item 9 never occurs in training but has item 5's text: after a
    # history ending in 4 (followed by 5), the text model ranks 9 right behind 5; the id model cannot.
    n_items = 10
    text = item_text(n_items, seed=5)
    text[9] = text[5]
    sequences = [s for s in successor_sequences(9, 150, 6, seed=3)]
    train = TrainData(sequences, n_items, text)
    params = TINY["sasrec"] | {"epochs": 60, "eval_every": 60, "dropout": 0.0}
    text_model = build_model("textsasrec", n_items, params | {"text_dim": text.shape[1], "id_dropout": 0.5})
    id_model = build_model("sasrec", n_items, params)
    text_model.fit(train)
    id_model.fit(train)
    history = [[2, 3, 4]]
    text_order = np.argsort(-exclude_seen(text_model.score(history), history)[0])
    id_order = np.argsort(-exclude_seen(id_model.score(history), history)[0])
    assert 9 in text_order[:2].tolist()
    assert 9 not in id_order[:3].tolist()


def _text_model_weights(text: np.ndarray, params: dict) -> dict[str, torch.Tensor]:
    n_items = len(text)
    sequences = [s[s != n_items - 1] for s in successor_sequences(n_items, 60, 6, seed=4)]  # last: never seen
    model = build_model("textsasrec", n_items, TINY["textsasrec"] | {"epochs": 3, "eval_every": 3} | params)
    model.fit(TrainData(sequences, n_items, text))
    return {k: v for k, v in model.net.state_dict().items() if k != "item_text"}


def test_an_item_training_never_shows_is_no_negative_of_the_text_models_loss() -> None:
    # Two runs that differ only in the text of the never-seen item learn the same weights: it was never
    # pushed down as a negative (it did not exist yet), so it is scored from its text alone. With
    # unseen_in_loss (the behaviour before 2026-12-03) its text is a negative and changes what is learned.
    text = item_text(10, seed=6)
    other = text.copy()
    other[9] = item_text(10, seed=7)[9]
    first, second = _text_model_weights(text, {}), _text_model_weights(other, {})
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)
    old, old_other = (
        _text_model_weights(text, {"unseen_in_loss": True}),
        _text_model_weights(other, {"unseen_in_loss": True}),
    )
    assert not torch.equal(old["text_projection.weight"], old_other["text_projection.weight"])


def test_an_item_without_an_id_embedding_gets_the_learned_missing_id_vector(tmp_path) -> None:
    text = item_text(10, seed=6)
    sequences = [s[s != 9] for s in successor_sequences(10, 60, 6, seed=4)]  # item 9 is never seen
    model = build_model("textsasrec", 10, TINY["textsasrec"] | {"epochs": 3, "id_dropout": 0.5})
    model.fit(TrainData(sequences, 10, text))
    net = model.net
    missing = net.missing_id.detach()
    assert missing.abs().sum() > 0  # learned from the id-dropped items, not left at zeros
    with torch.no_grad():
        table = net.item_table()
        cold_row = net.text_projection(net.get_buffer("item_text")[10]) + missing
        warm_row = net.text_projection(net.get_buffer("item_text")[1]) + net.item_embedding.weight[1]
    torch.testing.assert_close(table[10], cold_row)  # the never-seen item: its text + the missing id
    torch.testing.assert_close(table[1], warm_row)  # a seen item: its text + its own id
    # a model saved before the field existed loads as it was trained: no missing-id vector
    old = build_model("textsasrec", 10, TINY["textsasrec"] | {"epochs": 1, "missing_id": False})
    old.fit(TrainData(sequences, 10, text))
    directory = old.save(tmp_path / "old")
    meta = json.loads((directory / "config.json").read_text())
    del meta["config"]["missing_id"], meta["config"]["unseen_in_loss"]
    (directory / "config.json").write_text(json.dumps(meta))
    loaded = load_model(directory)
    assert loaded.config.missing_id is False and loaded.config.unseen_in_loss is True
    np.testing.assert_allclose(loaded.score([[1, 2], [9]]), old.score([[1, 2], [9]]), rtol=1e-6)


def test_hybrid_fits_weights_on_validation() -> None:
    n_items = 12
    sequences = successor_sequences(n_items, 80, 7)
    train = TrainData([s[:-1] for s in sequences], n_items)
    valid = EvalData([s[:-1] for s in sequences[:30]], np.array([s[-1] for s in sequences[:30]]))
    members = [build_model("popularity", n_items), build_model("itemknn", n_items, {"neighbours": 4})]
    for m in members:
        m.fit(train)
    from models.hybrid import Hybrid

    hybrid = Hybrid.from_members(members)
    report = hybrid.fit(train, valid)
    assert report.info["weights_fitted_on_validation"]
    assert report.info["weights"]["itemknn"] >= 0.5
    assert valid_ndcg(hybrid, valid) >= max(valid_ndcg(m, valid) for m in members) - 1e-9


def test_hybrid_does_not_score_a_member_fitted_to_weight_zero() -> None:
    from models.hybrid import Hybrid

    n_items = 12
    train = TrainData(successor_sequences(n_items, 40, 7), n_items)
    members = [build_model("popularity", n_items), build_model("itemknn", n_items, {"neighbours": 4})]
    for m in members:
        m.fit(train)
    hybrid = Hybrid.from_members(members)
    hybrid.weights = np.array([0.0, 1.0])
    calls: list[int] = []
    original = members[0].score
    members[0].score = lambda h: calls.append(1) or original(h)  # type: ignore[method-assign]
    fused = hybrid.score([[1, 2], [5]])
    assert not calls
    np.testing.assert_allclose(fused, standardise(members[1].score([[1, 2], [5]])), atol=1e-6)


def test_fusion_helpers() -> None:
    grid = simplex_grid(3, 4)
    assert len(grid) == 15 and np.allclose(grid.sum(1), 1.0)
    z = standardise(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert np.allclose(z[0], [-1.2247449, 0.0, 1.2247449]) and np.allclose(z[1], 0.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_trains_with_bf16_autocast_and_compile() -> None:
    n_items = 10
    params = TINY["sasrec"] | {
        "device": "cuda",
        "epochs": 30,
        "eval_every": 30,
        "dropout": 0.0,
        "compile": True,
    }
    model = build_model("sasrec", n_items, params)
    sequences = successor_sequences(n_items, 120, 6, seed=1)
    valid = EvalData([s[:-1] for s in sequences[:20]], np.array([s[-1] for s in sequences[:20]]))
    report = model.fit(TrainData(sequences, n_items), valid)
    assert report.device.startswith("cuda")
    histories = [[(i - 2) % n_items, (i - 1) % n_items, i] for i in range(n_items)]
    scores = exclude_seen(model.score(histories), histories)
    assert np.isfinite(scores[np.isfinite(scores)]).all()
    assert (scores.argmax(axis=1) == (np.arange(n_items) + 1) % n_items).mean() >= 0.9


def test_window_stride_adds_shifted_windows_of_long_sequences() -> None:
    sequences = [np.arange(20), np.arange(3)]
    plain = build_model("sasrec", 30, TINY["sasrec"] | {"max_len": 8})
    strided = build_model("sasrec", 30, TINY["sasrec"] | {"max_len": 8, "window_stride": 2})
    bert = build_model("bert4rec", 30, TINY["bert4rec"] | {"max_len": 8, "window_stride": 4})
    # 20 items: windows of 9 ending at 20, 12, 4 (stride 8) vs every 2 items; the short one once
    assert len(plain._training_windows(sequences)) == 4
    assert len(strided._training_windows(sequences)) == 11
    assert plain._training_windows(sequences)[0].tolist() == list(range(12, 21))  # shifted ids, last 9
    assert len(bert._training_windows(sequences)) == 5 + 1


def test_time_budget_cuts_the_epochs_and_replans_the_schedule() -> None:
    n_items = 12
    sequences = successor_sequences(n_items, 60, 6, seed=2)
    valid = EvalData([s[:-1] for s in sequences[:10]], np.array([s[-1] for s in sequences[:10]]))
    params = TINY["sasrec"] | {"epochs": 500, "eval_every": 1, "patience": 500, "max_train_seconds": 0.5}
    model = build_model("sasrec", n_items, params)
    report = model.fit(TrainData(sequences, n_items), valid)
    planned = report.info["time_budget"]["planned_epochs"]
    assert 1 <= planned < 500 and report.epochs <= planned
    assert sum(report.info["epoch_seconds"]) < 5.0  # stopped near the budget, not after 500 epochs
    assert len(report.curves["valid_ndcg@10"]) == report.epochs  # the last epoch was validated too


@pytest.mark.parametrize("name", ["sasrec", "bert4rec", "textsasrec"])
def test_scoring_pads_a_batch_to_its_longest_history_with_the_same_scores(name: str) -> None:
    """Scoring pads to the batch's longest history, not to max_len: the query at the last real item must be
    the one a full-width batch gives (absolute positions, padding never attended to)."""
    from models import torch_training

    n_items = 12
    params = TINY[name] | {"epochs": 2, "eval_every": 2, "max_len": 16}
    model = build_model(name, n_items, params)
    data = TrainData(successor_sequences(n_items, 40, 6, seed=3), n_items)
    if name == "textsasrec":
        data = TrainData(data.sequences, n_items, item_text(n_items))
    model.fit(data)
    histories = [[1], [2, 3, 4], list(range(12)) + [0, 1, 2, 3, 4, 5, 6, 7]]  # short, medium, over max_len
    narrow = model.score(histories)
    original = torch_training.batch_width
    try:
        torch_training.batch_width = lambda hs, cap: cap  # the old behaviour: always max_len columns
        import models.bert4rec
        import models.sasrec

        models.sasrec.batch_width = models.bert4rec.batch_width = torch_training.batch_width
        full = model.score(histories)
    finally:
        torch_training.batch_width = models.sasrec.batch_width = models.bert4rec.batch_width = original
    np.testing.assert_allclose(narrow, full, rtol=1e-5, atol=1e-5)
    assert torch_training.batch_width([[1], [1, 2, 3]], 16) == 3
    assert torch_training.batch_width([list(range(30))], 16) == 16


def test_hybrid_trains_the_members_it_is_not_handed_and_aliases_another_seed() -> None:
    """A seed ensemble: 'sasrec#2' is SASRec again with its own overrides; the hybrid is handed the
    candidates already trained and trains only the alias."""
    from components.config import TrainConfig
    from components.train import model_params
    from models.hybrid import Hybrid, HybridConfig

    cfg = TrainConfig.model_validate(
        {
            "model_params": {
                "itemknn": {"neighbours": 4},
                "hybrid": {"members": ["itemknn", "itemknn#2"], "member_params": {"itemknn#2": {"seed": 7}}},
            }
        }
    )
    params = model_params("hybrid", cfg)
    assert params["member_params"]["itemknn#2"] == {"neighbours": 4, "seed": 7}  # its model's, then its own
    n_items = 12
    sequences = successor_sequences(n_items, 80, 7)
    train = TrainData([s[:-1] for s in sequences], n_items)
    valid = EvalData([s[:-1] for s in sequences[:30]], np.array([s[-1] for s in sequences[:30]]))
    given = build_model("itemknn", n_items, {"neighbours": 4})
    given.fit(train)
    hybrid = Hybrid.from_members({"itemknn": given}, HybridConfig.model_validate(params))
    report = hybrid.fit(train, valid)
    assert hybrid.members[0] is given and hybrid.members[1] is not given
    assert hybrid.members[1].config.seed == 7 and "itemknn#2_epochs" in report.info
    assert set(report.info["weights"]) == {"itemknn", "itemknn#2"}
    with pytest.raises(ValueError, match="repeat"):
        Hybrid(HybridConfig(members=["itemknn", "itemknn"]), n_items)
