"""Shared fixture for the dialogue tests: a real tiny MovieLens-100K catalogue, EASE bundle and embeddings.

Built once per test process (item embeddings take a few seconds on CPU) from ../shared/datasets/ml-100k;
tests skip, with the reason, when that folder is absent.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
ML100K = SHARED / "ml-100k"
MAX_ITEM_ID = 400  # items 1..400: Toy Story, Star Wars, Alien(s), Terminator, Scream, Fargo, ...
EMBEDDING_CACHE = Path(tempfile.gettempdir()) / "sessionflow-test-embeddings"  # keyed by a hash of the texts


@dataclass(frozen=True)
class DialogueFixture:
    predictor: object  # components.bundle.Predictor
    items: pd.DataFrame
    interactions: pd.DataFrame
    embeddings: np.ndarray
    bundle_dir: Path


def require_ml100k() -> None:
    if not (ML100K / "u.item").is_file():
        pytest.skip(f"MovieLens-100K not found at {ML100K} (the shared datasets folder)")


@lru_cache(maxsize=1)
def _build() -> DialogueFixture:
    from components.bundle import Predictor, save_bundle
    from components.datasets import DatasetSpec
    from components.dialogue.catalogue import item_text
    from components.ingest import ingest
    from components.text_encoder import embed_items
    from components.vocab import ItemVocab
    from models import build_model
    from models.base import TrainData

    data = ingest(DatasetSpec(name="ml-100k", format="movielens-100k", path=str(ML100K)))
    keep = {str(i) for i in range(1, MAX_ITEM_ID + 1)}
    items = data.items[data.items["item_id"].isin(keep)].reset_index(drop=True)
    inter = data.interactions[data.interactions["item_id"].isin(keep)].reset_index(drop=True)
    vocab = ItemVocab.fit(items["item_id"])
    seqs = [np.asarray(vocab.encode(list(g.astype(str)))[0]) for _, g in inter.groupby("user_id")["item_id"]]
    model = build_model("ease", len(vocab), {"l2": 100.0})
    model.fit(TrainData(seqs, len(vocab)))
    bundle_dir = Path(tempfile.mkdtemp(prefix="sessionflow-dialogue-test-")) / "bundle"
    save_bundle(bundle_dir, model, vocab, items, {"data_hash": "test"})
    predictor = Predictor.load(bundle_dir)
    by_id = items.set_index("item_id")
    texts = [
        item_text(str(by_id.loc[i, "title"]), list(by_id.loc[i, "categories"]), str(by_id.loc[i, "text"]))
        for i in vocab.item_ids
    ]
    embeddings, _ = embed_items(texts, EMBEDDING_CACHE)
    return DialogueFixture(predictor, items, inter, embeddings, bundle_dir)


def fixture() -> DialogueFixture:
    require_ml100k()
    return _build()


def make_engine(config=None, store=None, **overrides):
    """A fresh ConversationEngine over the shared fixture (cheap: embeddings are reused)."""
    from components.dialogue import ConversationConfig
    from components.dialogue.engine import ConversationEngine
    from components.dialogue.state import InMemorySessionStore

    fx = fixture()
    cfg = config or ConversationConfig(**overrides)
    return ConversationEngine(
        fx.predictor,
        fx.items,
        cfg,
        store if store is not None else InMemorySessionStore(),
        embeddings=fx.embeddings,
    )
