"""Shared fixture for the dialogue tests: a real MovieLens-100K catalogue (items 1..400), an EASE bundle
with the
MovieLens catalogue spec, and its conversation index.

Built once per test process (item embeddings take a few seconds on CPU and are cached in the temp folder)
from ../shared/datasets/ml-100k; tests skip, with the reason, when that folder is absent.
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
MAX_ITEM_ID = 400  # items 1..400: Toy Story, Star Wars, Alien(s), Terminator, Scream, Fargo, Heat...
EMBEDDING_CACHE = Path(tempfile.gettempdir()) / "sessionflow-test-embeddings"  # keyed by a hash of the texts


@dataclass(frozen=True)
class DialogueFixture:
    predictor: object  # components.bundle.Predictor
    items: pd.DataFrame
    interactions: pd.DataFrame
    index: object  # components.dialogue.index.CatalogueIndex
    bundle_dir: Path


def require_ml100k() -> None:
    if not (ML100K / "u.item").is_file():
        pytest.skip(f"MovieLens-100K not found at {ML100K} (the shared datasets folder)")


@lru_cache(maxsize=1)
def _build() -> DialogueFixture:
    from components.bundle import Predictor, save_bundle
    from components.datasets import BUILTIN, DatasetSpec
    from components.dialogue.packaging import write_index
    from components.ingest import ingest
    from components.prior import item_audience, trending_popularity
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
    catalogue = BUILTIN["ml-100k"].spec.catalogue
    prior = trending_popularity(inter, vocab, 365.0)
    audience = item_audience(inter, vocab)  # MovieLens ratings: the "highly rated" / "lesser known" facets
    save_bundle(bundle_dir, model, vocab, items, {"data_hash": "test"}, catalogue, prior, audience)
    write_index(bundle_dir, EMBEDDING_CACHE)
    from components.dialogue.index import CatalogueIndex

    return DialogueFixture(
        Predictor.load(bundle_dir), items, inter, CatalogueIndex.load(bundle_dir), bundle_dir
    )


def fixture() -> DialogueFixture:
    require_ml100k()
    return _build()


def make_engine(config=None, store=None, **overrides):
    """A fresh ConversationEngine over the shared fixture (cheap: the index is shared)."""
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import ConversationEngine
    from components.dialogue.stores import InMemorySessionStore

    fx = fixture()
    cfg = config or ConversationConfig(**overrides)
    return ConversationEngine(
        fx.predictor, fx.index, cfg, store if store is not None else InMemorySessionStore()
    )


def tiny_index(
    titles, years=None, categories=None, attributes=None, facets=None, item_noun=("item", "items"),
    texts=None, titles_describe_items=True,
):  # fmt: skip
    """A small real index over a hand-made table (for linker/price/facet rules), with a popularity model."""
    from components.bundle import Predictor
    from components.dialogue.index import build_index
    from components.facets import CatalogueSpec, FacetSpec
    from components.vocab import ItemVocab
    from models import build_model
    from models.base import TrainData

    n = len(titles)
    ids = [str(i + 1) for i in range(n)]
    table = pd.DataFrame({"item_id": ids, "title": titles})
    table["categories"] = categories or [[] for _ in range(n)]
    table["year"] = years or [None] * n
    if attributes is not None:
        import json

        table["attributes"] = [json.dumps(a) for a in attributes]
    table["text"] = texts or ""
    vocab = ItemVocab.fit(ids)
    model = build_model("popularity", n, {})
    model.fit(TrainData([np.arange(n)[::-1].copy() for _ in range(3)], n))
    predictor = Predictor(model, vocab, dict(zip(ids, titles, strict=True)), {"model": "popularity"})
    spec = CatalogueSpec(
        item_noun=item_noun,
        facets=[FacetSpec(**f) for f in (facets or [])],
        titles_describe_items=titles_describe_items,
    )
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    return build_index(predictor, table, spec, embeddings=emb), predictor
