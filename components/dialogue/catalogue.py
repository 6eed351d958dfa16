"""A served model's catalogue with the changes made since training (issue 9: catalogue churn).

``extend_catalogue`` turns the trained Predictor and its packaged conversation index into what a service
serves under an overlay (components/catalogue_overlay.py):

- **added items** (ids the model was not trained on) join the model's vocabulary after its own items. Their
  text is embedded with the same MiniLM encoder and the same item text as at packaging, and the index is
  rebuilt by the packaging code (``build_index``: facets, phrases, BM25, title linker, with the embeddings
  already known reused), so /chat finds them by text, facets and title at once. /recommend scores them
  through ``Recommender.with_new_items``: a text-aware champion (TextSASRec) from its own text projection,
  any other model through the trained items nearest by text (models/new_items.py);
- **re-described items** (ids the model knows, sent again) get their new title, text and facet values in the
  index; the model keeps what it learnt about them;
- **retired items** stay in the vocabulary (a session may still name them) but are masked: the Predictor and
  the ranker never return them, whatever the model scores.

The result (``ServedCatalogue``) keeps per-item vectors and neighbours, so the next change re-encodes only
rows whose text changed; a change that only retires items reuses the index and the model as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.bundle import AUDIENCE_FILE, ITEMS_FILE, PRIOR_FILE, CatalogueDelta, Predictor
from components.catalogue_overlay import OverlayState
from components.dialogue.index import CatalogueIndex, build_index, item_fields
from models.new_items import NewItems, text_neighbours

N_NEIGHBOURS = 10


@dataclass(frozen=True)
class _Row:
    """What was computed for one overlay row (reused while its text is the same)."""

    text: str  # the index text (item_fields)
    vector: np.ndarray  # (D,) its MiniLM embedding
    model_text: str = ""  # the text a text-aware model embeds (the canonical ``text`` column)
    model_vector: np.ndarray | None = None
    neighbours: np.ndarray | None = None  # (K,) trained items nearest by text
    weights: np.ndarray | None = None  # (K,)


@dataclass(frozen=True)
class ServedCatalogue:
    """The trained model and index as they serve one overlay revision."""

    predictor: Predictor
    index: CatalogueIndex
    retired: np.ndarray  # (N,) bool over the index rows
    delta: CatalogueDelta
    rows_key: str = ""
    rows: dict[str, _Row] = field(default_factory=dict, repr=False)

    @property
    def n_added(self) -> int:
        return len(self.delta.added)

    def describe(self) -> dict[str, Any]:
        return {
            "revision": self.delta.revision,
            "added": len(self.delta.added),
            "described": len(self.rows) - len(self.delta.added),
            "retired": int(self.retired.sum()),
            "n_items": len(self.index) - int(self.retired.sum()),
        }


def base_catalogue(predictor: Predictor, index: CatalogueIndex) -> ServedCatalogue:
    """The catalogue as trained: no changes."""
    return ServedCatalogue(predictor, index, np.zeros(len(index), bool), CatalogueDelta())


def extend_catalogue(
    predictor: Predictor,
    index: CatalogueIndex,
    bundle_dir: str | Path,
    state: OverlayState,
    previous: ServedCatalogue | None = None,
) -> ServedCatalogue:
    """``predictor`` and ``index`` (as trained and packaged) serving the overlay ``state``; ``previous``
    (the catalogue serving now, over the same trained model) lends what it already computed."""
    key = state.rows_key() if state.items else ""
    if previous is not None and previous.rows_key == key:
        # only retirements changed: the same index and model, another mask
        delta = replace(previous.delta, retired=_retired(state, previous.index), revision=state.revision)
        served = previous.predictor
        retired_ids = [i for i in (served.vocab.index(r) for r in delta.retired) if i is not None]
        out = Predictor(served.model, served.vocab, served.titles, served.meta, retired_ids)
        return replace(previous, predictor=out, retired=_mask(previous.index, delta.retired), delta=delta)
    if not state.items:
        delta = CatalogueDelta(retired=_retired(state, index), revision=state.revision)
        return ServedCatalogue(predictor.with_changes(delta), index, _mask(index, delta.retired), delta)
    return _rebuild(predictor, index, Path(bundle_dir), state, key, previous)


def _rebuild(
    predictor: Predictor,
    index: CatalogueIndex,
    bundle_dir: Path,
    state: OverlayState,
    key: str,
    previous: ServedCatalogue | None,
) -> ServedCatalogue:
    known = set(predictor.vocab.item_ids)
    overlay = [{k: v for k, v in r.items() if k != "changed_at"} for r in state.items.values()]
    cached = previous.rows if previous is not None else {}
    text_aware = bool(getattr(predictor.model, "uses_item_text", False))
    rows: dict[str, _Row] = {}
    todo: list[tuple[str, str]] = []  # (id, index text) to encode
    for r in overlay:
        item = r["item_id"]
        text = item_fields(item, r).text
        old = cached.get(item)
        if old is not None and old.text == text:
            rows[item] = old
        else:
            todo.append((item, text))
            rows[item] = _Row(text, np.zeros(0, np.float32))
    model_todo = [
        r for r in overlay if text_aware and r["item_id"] not in known
        and (rows[r["item_id"]].model_vector is None or rows[r["item_id"]].model_text != r["text"])
    ]  # fmt: skip
    vectors = _encode([t for _, t in todo] + [r["text"] for r in model_todo])
    for (item, text), vec in zip(todo, vectors[: len(todo)], strict=True):
        rows[item] = _Row(text, vec)  # its neighbours are computed below
    for r, vec in zip(model_todo, vectors[len(todo) :], strict=True):
        rows[r["item_id"]] = replace(rows[r["item_id"]], model_text=r["text"], model_vector=vec)

    added = [r["item_id"] for r in overlay if r["item_id"] not in known]
    need = [i for i in added if rows[i].neighbours is None]
    if need:
        trained = index.embeddings[: len(predictor.vocab)]
        nbrs, weights = text_neighbours(np.stack([rows[i].vector for i in need]), trained, N_NEIGHBOURS)
        for i, n, w in zip(need, nbrs, weights, strict=True):
            rows[i] = replace(rows[i], neighbours=n, weights=w)
    new_items = None
    if added:
        new_items = NewItems(
            neighbours=np.stack([rows[i].neighbours for i in added]),  # type: ignore[misc]
            weights=np.stack([rows[i].weights for i in added]),  # type: ignore[misc]
            text=np.stack([rows[i].model_vector for i in added]) if text_aware else None,  # type: ignore[misc]
        )
    delta = CatalogueDelta(
        added=tuple(added),
        new_items=new_items,
        titles={r["item_id"]: r["title"] for r in overlay},
        retired=(),
        revision=state.revision,
    )
    served = predictor.with_changes(delta)

    # the index: the packaging code over the bundle's items with the overlay rows, known embeddings reused
    base = _items_table(bundle_dir, predictor)
    table = pd.concat(
        [base[~base["item_id"].astype(str).isin(set(rows))], pd.DataFrame(overlay)], ignore_index=True
    )
    emb = np.concatenate([index.embeddings, np.zeros((len(added), index.embeddings.shape[1]), np.float32)])
    for item, row in rows.items():
        emb[served.vocab.index(item)] = row.vector  # type: ignore[index]
    prior = _prior(bundle_dir, len(added))
    audience = _audience(bundle_dir, len(added))
    new_index = build_index(served, table, index.spec, embeddings=emb, prior=prior, audience=audience)
    delta = replace(delta, retired=_retired(state, new_index))
    served = Predictor(served.model, served.vocab, served.titles, served.meta, _dense(served, delta.retired))
    return ServedCatalogue(served, new_index, _mask(new_index, delta.retired), delta, key, rows)


def _encode(texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 0), np.float32)
    from components.text_encoder import get_encoder

    return get_encoder().encode(texts)


def _items_table(bundle_dir: Path, predictor: Predictor) -> pd.DataFrame:
    path = bundle_dir / ITEMS_FILE
    if path.is_file():
        return pd.read_parquet(path)
    return pd.DataFrame({"item_id": list(predictor.titles), "title": list(predictor.titles.values())})


def _prior(bundle_dir: Path, n_added: int) -> np.ndarray | None:
    """The bundle's popularity prior with none for the added items (they have no interactions yet)."""
    path = bundle_dir / PRIOR_FILE
    return np.concatenate([np.load(path), np.zeros(n_added)]) if path.is_file() else None


def _audience(bundle_dir: Path, n_added: int) -> np.ndarray | None:
    """The bundle's audience per item, none yet for the added items."""
    path = bundle_dir / AUDIENCE_FILE
    if not path.is_file():
        return None
    return np.concatenate([np.load(path), np.tile([[0.0, np.nan, 0.0]], (n_added, 1))])


def _retired(state: OverlayState, index: CatalogueIndex) -> tuple[str, ...]:
    return tuple(i for i in state.retired if index.index(i) is not None)


def _mask(index: CatalogueIndex, retired: tuple[str, ...]) -> np.ndarray:
    mask = np.zeros(len(index), bool)
    mask[[index.index(i) for i in retired]] = True  # type: ignore[index]
    return mask


def _dense(predictor: Predictor, ids: tuple[str, ...]) -> list[int]:
    return [i for i in (predictor.vocab.index(x) for x in ids) if i is not None]


def catalogue_rows(index: CatalogueIndex, retired: np.ndarray) -> list[dict[str, Any]]:
    """Every servable item (id, title, year) in index order, retired ones left out."""
    years = index.years.tolist()
    return [
        {"item_id": index.item_ids[i], "title": index.titles[i], "year": None if y != y else float(y)}
        for i, y in enumerate(years)
        if not retired[i]
    ]
