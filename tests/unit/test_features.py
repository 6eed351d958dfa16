"""Splits, vocabulary fitted on train only, unknown ids, persistence."""

import numpy as np
import pandas as pd
import pytest

from components.config import FeaturesConfig
from components.features import build_features, load_features, remap_eval_data, save_features
from components.vocab import ItemVocab


def _log(rows):
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "t"])
    return pd.DataFrame(
        {
            "user_id": df["user_id"],
            "session_id": df["user_id"] + "-0",
            "item_id": df["item_id"],
            "timestamp": pd.to_datetime(df["t"], unit="s", utc=True),
            "event": "rating",
            "value": 4.0,
        }
    )


def test_leave_one_out_split_and_vocab_from_train_only():
    log = _log(
        [
            ("u1", "a", 1),
            ("u1", "b", 2),
            ("u1", "c", 3),
            ("u1", "d", 4),
            ("u2", "b", 1),
            ("u2", "a", 2),
            ("u2", "z", 3),
        ]
    )
    fs = build_features(log, FeaturesConfig(min_sequence_length=3))
    assert fs.vocab.item_ids == ["a", "b"]  # c, d, z appear only as valid/test targets
    assert [s.tolist() for s in fs.train.sequences] == [[0, 1], [1]]
    # u1 valid target c unknown; u2 valid target a known (history [b])
    assert fs.valid.targets.tolist() == [0]
    assert [h.tolist() for h in fs.valid.histories] == [[1]]
    assert fs.stats["valid_unknown_targets"] == 1
    assert fs.stats["test_unknown_targets"] == 2  # d and z
    assert fs.sequence_key == "user"


def test_short_sequences_are_left_out_and_time_order_is_stable():
    log = _log(
        [("u1", "x", 5), ("u1", "a", 1), ("u1", "b", 1), ("u1", "c", 9), ("u2", "a", 1), ("u2", "b", 2)]
    )
    fs = build_features(log, FeaturesConfig(min_sequence_length=3))
    assert fs.stats["n_sequences"] == 1  # u2 has 2 items
    assert fs.vocab.decode(fs.train.sequences[0]) == ["a", "b"]  # ties at t=1 keep file order


def test_temporal_split_uses_cutoffs():
    rows = [("u1", f"i{t % 4}", t) for t in range(10)] + [("u2", f"i{t % 3}", t) for t in range(10)]
    fs = build_features(
        _log(rows),
        FeaturesConfig(
            split="temporal", temporal_test_fraction=0.2, temporal_valid_fraction=0.2, min_sequence_length=3
        ),
    )
    assert len(fs.test.targets) == 2 and len(fs.valid.targets) == 2
    assert all(len(h) >= 6 for h in fs.test.histories)


def test_event_logs_use_sessions_and_empty_input_errors():
    log = _log([("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3)])
    log["event"] = "view"
    assert build_features(log, FeaturesConfig()).sequence_key == "session"
    with pytest.raises(ValueError, match="no interactions"):
        build_features(log.iloc[:0], FeaturesConfig())


def test_save_load_roundtrip_and_remap(tmp_path):
    log = _log([(f"u{u}", f"i{(u + t) % 5}", t) for u in range(6) for t in range(6)])
    fs = build_features(log, FeaturesConfig())
    save_features(fs, tmp_path)
    back = load_features(tmp_path)
    assert back.vocab.item_ids == fs.vocab.item_ids
    np.testing.assert_array_equal(back.test.targets, fs.test.targets)
    assert [h.tolist() for h in back.test.histories] == [h.tolist() for h in fs.test.histories]
    other = ItemVocab(["i1", "i0"])  # a champion's smaller vocabulary
    data, pop = remap_eval_data(fs, other)
    assert set(data.targets.tolist()) <= {0, 1}
    assert pop.tolist() == [
        fs.item_popularity[fs.vocab.index("i1")],
        fs.item_popularity[fs.vocab.index("i0")],
    ]


def test_catalogue_scope_keeps_cold_targets_after_the_training_items():
    log = _log(
        [
            ("u1", "a", 1),
            ("u1", "b", 2),
            ("u1", "c", 3),
            ("u1", "d", 4),
            ("u2", "b", 1),
            ("u2", "a", 2),
            ("u2", "z", 3),
        ]
    )
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d", "z", "never"]})
    fs = build_features(log, FeaturesConfig(min_sequence_length=3, item_scope="catalogue"), items)
    assert fs.vocab.item_ids == ["a", "b", "c", "d", "never", "z"]  # training items first, then cold ones
    assert fs.stats["test_unknown_targets"] == 0 and len(fs.test.targets) == 2
    assert fs.item_popularity.tolist() == [1, 2, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="needs the items table"):
        build_features(log, FeaturesConfig(min_sequence_length=3, item_scope="catalogue"))


def test_cold_item_protocol_removes_a_seeded_sample_from_training_only():
    rows = [(f"u{u}", f"i{(u + t) % 20}", t) for u in range(30) for t in range(8)]
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(20)]})
    cfg = FeaturesConfig(min_sequence_length=3, item_scope="catalogue", cold_item_fraction=0.2)
    fs = build_features(_log(rows), cfg, items)
    again = build_features(_log(rows), cfg, items)
    assert fs.vocab.item_ids == again.vocab.item_ids  # seeded
    assert fs.stats["cold_items_held_out"] == 4
    cold = set(np.flatnonzero(fs.item_popularity == 0).tolist())
    assert len(cold) == 4 and not cold & {int(i) for s in fs.train.sequences for i in s}
    assert cold & set(fs.test.targets.tolist())  # cold targets are evaluated
    assert any(cold & set(h.tolist()) for h in fs.test.histories)  # and stay in histories
    with pytest.raises(ValueError, match="needs features.item_scope: catalogue"):
        FeaturesConfig(cold_item_fraction=0.1)


def test_item_text_embeddings_round_trip_with_the_features(tmp_path):
    log = _log([("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "a", 4)])
    fs = build_features(log, FeaturesConfig(min_sequence_length=3))
    save_features(fs, tmp_path)
    assert load_features(tmp_path).item_text is None
    np.save(tmp_path / "item_text.npy", np.ones((len(fs.vocab), 4), np.float32))
    loaded = load_features(tmp_path)
    assert loaded.item_text.shape == (len(fs.vocab), 4)
    assert loaded.train.item_text is loaded.item_text
