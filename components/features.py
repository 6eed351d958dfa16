"""Features: sequences, splits, the item vocabulary (fitted on train only) and item text embeddings.

Splits (config ``features.split``):
- leave-one-out: per sequence, last item = test target, second-to-last = validation target, the rest trains.
- temporal: global time cut-offs at quantiles; events before the validation cut-off train; each sequence
  with events after a cut-off gives one case: history = everything before its first event in the window,
  target = that event.

Targets whose item is not in the item vocabulary cannot be ranked: they are counted and left out.
Histories keep only known items (unknown ones are counted). The vocabulary holds the training items
(``item_scope: train``) or the whole catalogue (``item_scope: catalogue``: training items first, then the
items training never shows -- cold items, whose cases form the evaluator's ``cold`` slice). The cold-item
protocol (``cold_item_fraction``) removes a seeded sample of training items from the training sequences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import FeaturesConfig
from components.vocab import ItemVocab
from models.base import EvalData, TrainData


@dataclass
class FeatureSet:
    vocab: ItemVocab
    train: TrainData
    valid: EvalData
    test: EvalData
    item_popularity: np.ndarray  # (n_items,) training counts
    sequence_key: str
    stats: dict[str, int | float | str] = field(default_factory=dict)
    item_text: np.ndarray | None = None  # (n_items, E) text embeddings in vocabulary order, when encoded


def resolve_sequence_key(interactions: pd.DataFrame, key: str) -> str:
    """auto -> 'user' for rating logs (one sequence per user), 'session' for event logs."""
    if key != "auto":
        return key
    return "user" if (interactions["event"] == "rating").all() else "session"


def build_features(
    interactions: pd.DataFrame, cfg: FeaturesConfig, items: pd.DataFrame | None = None
) -> FeatureSet:
    """Clean canonical interactions (+ the items table for ``item_scope: catalogue``) -> vocab +
    train/valid/test (dense ids)."""
    if interactions.empty:
        raise ValueError("no interactions left to build features from (did validation reject everything?)")
    key = resolve_sequence_key(interactions, cfg.sequence_key)
    col = "user_id" if key == "user" else "session_id"
    df = interactions.sort_values([col, "timestamp"], kind="stable")
    grouped = df.groupby(col, sort=True, observed=True)
    seq_items = grouped["item_id"].agg(list)
    seq_times = grouped["timestamp"].agg(list)
    long_enough = seq_items.map(len) >= cfg.min_sequence_length
    seq_items, seq_times = seq_items[long_enough], seq_times[long_enough]
    if seq_items.empty:
        raise ValueError(
            f"no {key} sequence has at least {cfg.min_sequence_length} items (features.min_sequence_length)"
        )
    catalogue: list[str] = []
    if cfg.item_scope == "catalogue":
        if items is None:
            raise ValueError("features.item_scope: catalogue needs the items table")
        catalogue = items["item_id"].astype(str).tolist()
    if cfg.split == "leave-one-out":
        return _leave_one_out(seq_items, key, cfg, catalogue)
    return _temporal(seq_items, seq_times, df, key, cfg, catalogue)


def _vocabulary(
    train_raw: list[list[str]], cfg: FeaturesConfig, catalogue: list[str], stats: dict
) -> tuple[ItemVocab, list[list[str]]]:
    """The item vocabulary and the training sequences after the cold-item hold-out (if any)."""
    train_items = sorted({str(i) for s in train_raw for i in s})
    held: set[str] = set()
    if cfg.cold_item_fraction > 0:
        rng = np.random.default_rng(cfg.cold_item_seed)
        n_cold = int(round(cfg.cold_item_fraction * len(train_items)))
        held = {train_items[i] for i in rng.choice(len(train_items), n_cold, replace=False)}
        train_raw = [[i for i in s if str(i) not in held] for s in train_raw]
        train_items = sorted({str(i) for s in train_raw for i in s})
        stats["cold_items_held_out"] = n_cold
    known = set(train_items)
    rest = sorted({i for i in catalogue if i not in known} | (held - known))
    stats["n_cold_items"] = len(rest)
    return ItemVocab(train_items + rest), train_raw


def _leave_one_out(seq_items: pd.Series, key: str, cfg: FeaturesConfig, catalogue: list[str]) -> FeatureSet:
    stats: dict[str, int | float | str] = {"unknown_history_items": 0}
    vocab, train_raw = _vocabulary([s[:-2] for s in seq_items], cfg, catalogue, stats)
    train = [_encode(vocab, s, stats) for s in train_raw]
    valid = _cases(vocab, [(s[:-2], s[-2]) for s in seq_items], stats, "valid")
    test = _cases(vocab, [(s[:-1], s[-1]) for s in seq_items], stats, "test")
    return _finish(vocab, train, valid, test, key, stats, len(seq_items))


def _temporal(
    seq_items: pd.Series,
    seq_times: pd.Series,
    df: pd.DataFrame,
    key: str,
    cfg: FeaturesConfig,
    catalogue: list[str],
) -> FeatureSet:
    t_valid = df["timestamp"].quantile(1 - cfg.temporal_test_fraction - cfg.temporal_valid_fraction)
    t_test = df["timestamp"].quantile(1 - cfg.temporal_test_fraction)
    train_raw, valid_raw, test_raw = [], [], []
    for items, times in zip(seq_items, seq_times, strict=True):
        t = pd.DatetimeIndex(times)
        n_train = int((t < t_valid).sum())
        n_before_test = int((t < t_test).sum())
        if n_train:
            train_raw.append(items[:n_train])
        if n_train < n_before_test and n_train > 0:
            valid_raw.append((items[:n_train], items[n_train]))
        if n_before_test < len(items) and n_before_test > 0:
            test_raw.append((items[:n_before_test], items[n_before_test]))
    stats: dict[str, int | float | str] = {
        "unknown_history_items": 0,
        "t_valid": str(t_valid),
        "t_test": str(t_test),
    }
    vocab, train_raw = _vocabulary(train_raw, cfg, catalogue, stats)
    train = [_encode(vocab, s, stats) for s in train_raw]
    valid = _cases(vocab, valid_raw, stats, "valid")
    test = _cases(vocab, test_raw, stats, "test")
    return _finish(vocab, train, valid, test, key, stats, len(seq_items))


def _encode(vocab: ItemVocab, items: list[str], stats: dict) -> np.ndarray:
    known, unknown = vocab.encode(items)
    stats["unknown_history_items"] += len(unknown)
    return np.asarray(known, dtype=np.int64)


def _cases(vocab: ItemVocab, cases: list[tuple[list[str], str]], stats: dict, name: str) -> EvalData:
    histories, targets, dropped = [], [], 0
    for history, target in cases:
        t = vocab.index(str(target))
        if t is None:
            dropped += 1
            continue
        histories.append(_encode(vocab, history, stats))
        targets.append(t)
    stats[f"{name}_unknown_targets"] = dropped
    stats[f"{name}_cases"] = len(targets)
    return EvalData(histories, np.asarray(targets, dtype=np.int64))


def _finish(vocab, train, valid, test, key, stats, n_sequences) -> FeatureSet:
    train = [s for s in train if len(s)]
    popularity = np.bincount(np.concatenate(train) if train else np.zeros(0, np.int64), minlength=len(vocab))
    stats.update(
        n_items=len(vocab),
        n_sequences=n_sequences,
        n_train_sequences=len(train),
        n_train_events=int(popularity.sum()),
        sequence_key=key,
    )
    return FeatureSet(
        vocab, TrainData(train, len(vocab)), valid, test, popularity.astype(np.int64), key, stats
    )


# ---- persistence: data/processed/<dataset>/features/ -------------------------------------------------


def save_features(fs: FeatureSet, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fs.vocab.save(directory)
    pd.DataFrame({"items": [s.tolist() for s in fs.train.sequences]}).to_parquet(directory / "train.parquet")
    for name, data in (("valid", fs.valid), ("test", fs.test)):
        pd.DataFrame({"history": [h.tolist() for h in data.histories], "target": data.targets}).to_parquet(
            directory / f"{name}.parquet"
        )
    np.save(directory / "item_popularity.npy", fs.item_popularity)
    (directory / "item_text.npy").unlink(missing_ok=True)  # written again by featurize when encoded
    if fs.item_text is not None:
        np.save(directory / "item_text.npy", fs.item_text)
    meta = {"sequence_key": fs.sequence_key, "stats": fs.stats}
    (directory / "features.json").write_text(json.dumps(meta, indent=2, default=str))
    return directory


def load_features(directory: str | Path) -> FeatureSet:
    directory = Path(directory)
    if not (directory / "features.json").is_file():
        raise FileNotFoundError(f"{directory} holds no features; run the featurize stage first")
    vocab = ItemVocab.load(directory)
    meta = json.loads((directory / "features.json").read_text())
    train = [np.asarray(s, dtype=np.int64) for s in pd.read_parquet(directory / "train.parquet")["items"]]
    text_path = directory / "item_text.npy"
    item_text = np.load(text_path) if text_path.is_file() else None
    if item_text is not None and len(item_text) != len(vocab):
        item_text = None  # stale embeddings of another vocabulary: text-aware models will say so

    def cases(name: str) -> EvalData:
        df = pd.read_parquet(directory / f"{name}.parquet")
        return EvalData(
            [np.asarray(h, dtype=np.int64) for h in df["history"]], df["target"].to_numpy(np.int64)
        )

    return FeatureSet(
        vocab,
        TrainData(train, len(vocab), item_text),
        cases("valid"),
        cases("test"),
        np.load(directory / "item_popularity.npy"),
        meta["sequence_key"],
        meta["stats"],
        item_text,
    )


def remap_eval_data(fs: FeatureSet, vocab: ItemVocab) -> tuple[EvalData, np.ndarray]:
    """The test split and item popularity in another model's vocabulary (e.g. the current champion's).

    Cases whose target that vocabulary lacks are left out; unknown history items are skipped.
    """
    histories, targets = [], []
    for history, target in zip(fs.test.histories, fs.test.targets, strict=True):
        t = vocab.index(fs.vocab.item_ids[int(target)])
        if t is None:
            continue
        histories.append(np.asarray(vocab.encode(fs.vocab.decode(history))[0], dtype=np.int64))
        targets.append(t)
    popularity = np.zeros(len(vocab), dtype=np.int64)
    for i, count in enumerate(fs.item_popularity):
        j = vocab.index(fs.vocab.item_ids[i])
        if j is not None:
            popularity[j] = count
    return EvalData(histories, np.asarray(targets, dtype=np.int64)), popularity


def item_texts(vocab: ItemVocab, items: pd.DataFrame) -> list[str]:
    """Item text in vocabulary order ('' for items missing from the catalogue)."""
    text = dict(zip(items["item_id"].astype(str), items["text"].astype(str), strict=True))
    return [text.get(i, "") for i in vocab.item_ids]


def has_real_text(items: pd.DataFrame) -> bool:
    """False for catalogues that only know ids (sequence-lines, DIGINETICA views): nothing to encode."""
    return bool((items["text"].astype(str).str.len() > 0).any())
