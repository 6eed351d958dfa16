"""The model bundle: everything needed to serve one trained model, rebuilt from one directory.

Layout::

    bundle/
      model/          Recommender.save output (config.json + weights)
      vocab.json      item vocabulary fitted on the training split
      items.parquet   item_id, title, text, categories, year, attributes of the catalogue
      catalogue.json  the dataset spec's catalogue section: facets, vocabulary, item noun (conversation)
      prior.npy       time-decayed popularity of the training data (conversation cold start)
      meta.json       model name, data hash, lineage, protocol, metrics, max_len, created_at (UTC)
      reference.json  optional: what the model recommends on held-out histories (monitoring's baseline)
      conversation/   the conversation's catalogue index, added at packaging (components.dialogue.packaging)

The service, evaluator and conversation layer build a ``Predictor`` from a bundle; they never redo
preprocessing themselves. ``Predictor.with_changes(CatalogueDelta)`` serves catalogue changes made after
training (items added: scored from their text; items retired: never returned) without retraining.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.facets import CatalogueSpec
from components.vocab import ItemVocab
from models import Recommender, load_model
from models.new_items import NewItems

META_FILE = "meta.json"
ITEMS_FILE = "items.parquet"
MODEL_DIR = "model"
CATALOGUE_FILE = "catalogue.json"
PRIOR_FILE = "prior.npy"
AUDIENCE_FILE = "audience.npy"


def save_bundle(
    directory: str | Path,
    model: Recommender,
    vocab: ItemVocab,
    items: pd.DataFrame,
    meta: dict[str, Any],
    catalogue: CatalogueSpec | None = None,
    prior: np.ndarray | None = None,
    audience: np.ndarray | None = None,
) -> Path:
    """Write a bundle. ``items`` is the canonical items table (rows outside the vocab are dropped);
    ``catalogue`` the dataset's facets, ``prior`` a popularity prior and ``audience`` each item's
    interactions, mean rating and ratings (vocabulary order, ``components.prior.item_audience``) for the
    conversation."""
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    model.save(directory / MODEL_DIR)
    vocab.save(directory)
    known = items[items["item_id"].isin(set(vocab.item_ids))]
    keep = [c for c in ("item_id", "title", "text", "categories", "year", "attributes") if c in known.columns]
    known[keep].reset_index(drop=True).to_parquet(directory / ITEMS_FILE, index=False)
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    full_meta = {"model": model.name, "n_items": len(vocab), "created_at": created_at, **meta}
    (directory / META_FILE).write_text(json.dumps(full_meta, indent=2, default=str))
    if catalogue is not None:
        (directory / CATALOGUE_FILE).write_text(catalogue.model_dump_json(indent=2))
    if prior is not None:
        if len(prior) != len(vocab):
            raise ValueError(f"prior has {len(prior)} values but the vocabulary {len(vocab)} items")
        np.save(directory / PRIOR_FILE, np.asarray(prior, dtype=np.float64))
    if audience is not None:
        if audience.shape != (len(vocab), 3):
            raise ValueError(f"audience has shape {audience.shape}, expected ({len(vocab)}, 3)")
        np.save(directory / AUDIENCE_FILE, np.asarray(audience, dtype=np.float64))
    return directory


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    title: str
    score: float


@dataclass(frozen=True)
class RecommendResult:
    items: list[Recommendation]
    unknown_items: list[str]


@dataclass(frozen=True)
class CatalogueDelta:
    """Catalogue changes since training, as a Predictor serves them (small and picklable: the service sends
    it to its scoring process). Built by ``components.dialogue.catalogue.extend_catalogue``."""

    added: tuple[str, ...] = ()  # raw ids new to the model, appended to its vocabulary in this order
    new_items: NewItems | None = None  # how the model scores them (one row per added id)
    titles: dict[str, str] = field(default_factory=dict)  # titles of added and re-described items
    retired: tuple[str, ...] = ()  # raw ids never to return
    revision: int = 0  # the overlay revision this delta comes from


class Predictor:
    """A trained model plus its vocabulary and titles: raw ids in, ranked raw ids out."""

    def __init__(
        self,
        model: Recommender,
        vocab: ItemVocab,
        titles: dict[str, str],
        meta: dict[str, Any],
        retired: Sequence[int] = (),
    ):
        if model.n_items != len(vocab):
            raise ValueError(f"model has {model.n_items} items but vocabulary has {len(vocab)}")
        self.model = model
        self.vocab = vocab
        self.titles = titles
        self.meta = meta
        self.retired = np.unique(np.asarray(retired, dtype=np.int64))  # dense ids never recommended

    def with_changes(self, delta: CatalogueDelta) -> Predictor:
        """This predictor (the one trained, never an extended one) serving ``delta``: added items appended to
        the vocabulary and scored by ``model.with_new_items``; retired items never recommended."""
        if delta.added and (delta.new_items is None or len(delta.new_items) != len(delta.added)):
            raise ValueError(f"catalogue delta: {len(delta.added)} added ids need as many new-item rows")
        if any(i in self.vocab for i in delta.added):
            raise ValueError("catalogue delta: an added id is already in the model's vocabulary")
        model = self.model.with_new_items(delta.new_items) if delta.new_items is not None else self.model
        vocab = ItemVocab([*self.vocab.item_ids, *delta.added]) if delta.added else self.vocab
        retired = [i for i in (vocab.index(r) for r in delta.retired) if i is not None]
        return Predictor(model, vocab, {**self.titles, **delta.titles}, self.meta, retired)

    @classmethod
    def load(cls, directory: str | Path) -> Predictor:
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} is missing: {directory} is not a sessionflow model bundle")
        meta = json.loads(meta_path.read_text())
        vocab = ItemVocab.load(directory)
        titles: dict[str, str] = {}
        if (directory / ITEMS_FILE).is_file():
            items = pd.read_parquet(directory / ITEMS_FILE, columns=["item_id", "title"])
            titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=True))
        return cls(load_model(directory / MODEL_DIR), vocab, titles, meta)

    def recommend_batch(
        self,
        sessions: Sequence[Sequence[str]],
        k: int = 10,
        exclude: Sequence[Sequence[str]] | None = None,
        exclude_seen: bool = True,
    ) -> list[RecommendResult]:
        """Top-k raw ids for each session (raw ids, oldest first). Unknown ids are reported, not fatal."""
        encoded = [self.vocab.encode([str(i) for i in s]) for s in sessions]
        histories = [known for known, _ in encoded]
        scores = self.model.score(histories) if histories else np.zeros((0, len(self.vocab)), np.float32)
        scores = np.array(scores, dtype=np.float32, copy=True)  # (B, n_items)
        results = []
        for row, (known, unknown) in enumerate(encoded):
            banned = set(known) if exclude_seen else set()
            if exclude is not None and row < len(exclude):
                banned.update(i for i in (self.vocab.index(str(x)) for x in exclude[row]) if i is not None)
            if banned:
                scores[row, list(banned)] = -np.inf
            if self.retired.size:
                scores[row, self.retired] = -np.inf  # retired: never returned, whatever the model says
            kk = min(k, len(self.vocab))
            part = np.argpartition(-scores[row], kk - 1)[:kk]
            part = part[np.argsort(-scores[row, part], kind="stable")]
            top = [int(i) for i in part if np.isfinite(scores[row, i])]
            items = [
                Recommendation(
                    self.vocab.item_ids[i], self.titles.get(self.vocab.item_ids[i], ""), float(scores[row, i])
                )
                for i in top
            ]
            results.append(RecommendResult(items=items, unknown_items=unknown))
        return results

    def recommend(self, session: Sequence[str], k: int = 10, exclude: Sequence[str] = ()) -> RecommendResult:
        return self.recommend_batch([session], k=k, exclude=[list(exclude)])[0]
