"""The catalogue index the conversation searches: built once at packaging, shipped inside the bundle.

Per item (the model's vocabulary order): title, year, text, sentence embedding, facet values; for the
catalogue: the facets declared by the dataset spec (``components.facets``), the phrases that name each facet
value (the value's own name and plural, the spec's vocabulary, and synonyms learnt from the item texts), a
BM25 index of the texts, the title linker and a popularity prior.

Saved under ``<bundle>/conversation/``: ``index.json`` (spec, phrases, titles...), ``embeddings.npy``,
``arrays.npz`` (facet matrices, years, numbers, prior) and ``bm25/``. ``build_index`` writes it;
``CatalogueIndex.load`` reads it and checks it belongs to the bundle (same item ids).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.dialogue.lexical import LexicalIndex
from components.dialogue.linker import TitleLinker, display_title, title_keys
from components.dialogue.text import fold, informativeness
from components.facets import AUDIENCE_COLUMN, CatalogueSpec, FacetSpec, Vocabulary, default_catalogue

if TYPE_CHECKING:
    from components.bundle import Predictor

log = logging.getLogger(__name__)
INDEX_DIR = "conversation"
INDEX_VERSION = 4
EXCLUDES = -1.0  # a phrase's weight for a value it rules out ("for adults": Children)
PREFERS = -2.0  # ... for a value it leans to without requiring it ("date night": Romance)
COSINE_CACHE_BYTES = 32 * 2**20  # item-to-catalogue similarity rows kept (liked, disliked, "more like" items)
# audience facets (components.facets): derived from the interaction log, not declared by the spec
POPULARITY, RATING, RATINGS = "popularity", "rating", "ratings"
RATING_SHRINK = 10.0  # an item's mean rating counts as if this many ratings of the catalogue's mean joined it


@dataclass
class CategoryFacet:
    """A category-like facet: its values and which items have them."""

    spec: FacetSpec
    values: list[str]
    matrix: np.ndarray  # (N, V) bool

    def column(self, value: str) -> int | None:
        try:
            return self.values.index(value)
        except ValueError:
            return None

    def has(self, value: str) -> np.ndarray:
        c = self.column(value)
        return np.zeros(self.matrix.shape[0], bool) if c is None else self.matrix[:, c]


@dataclass
class NumberFacet:
    """A year or number facet: one value per item (NaN when unknown)."""

    spec: FacetSpec
    values: np.ndarray  # (N,) float64

    @property
    def bounds(self) -> tuple[float, float] | None:
        known = self.values[np.isfinite(self.values)]
        return (float(known.min()), float(known.max())) if known.size else None


@dataclass
class CatalogueIndex:
    item_ids: list[str]
    titles: list[str]  # as the catalogue writes them
    years: np.ndarray  # (N,) float64, NaN unknown (the title's year first, else the year column)
    texts: list[str]
    embeddings: np.ndarray  # (N, D) float32 unit rows
    spec: CatalogueSpec
    categories: dict[str, CategoryFacet]
    numbers: dict[str, NumberFacet]
    phrases: dict[str, list[tuple[str, str, float]]]  # folded phrase -> [(facet, value, weight)]
    moods: dict[str, dict[tuple[str, str], float]]  # "lighter" -> (facet, value) -> weight
    prior: np.ndarray  # (N,) popularity prior in [0, 1]
    lexical: LexicalIndex  # item texts (without the titles when titles are names)
    title_lexical: LexicalIndex  # titles alone (franchise words of titles not in the catalogue)
    mean_ratings: np.ndarray | None = None  # (N,) each item's mean rating as rated (NaN unrated), if any
    linker: TitleLinker = field(init=False)
    _pos: dict[str, int] = field(init=False, repr=False)
    _words: dict[int, frozenset[str]] = field(init=False, repr=False, default_factory=dict)
    _cosines: OrderedDict[int, np.ndarray] = field(init=False, repr=False, default_factory=OrderedDict)
    _cosines_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._pos = {item: n for n, item in enumerate(self.item_ids)}
        self.linker = TitleLinker.build(
            self.titles, self.years, self.prior, aliases=not self.spec.titles_describe_items
        )
        self._title_words = [frozenset(title_keys(t)[0][-1].split()) if title_keys(t)[0] else frozenset()
                             for t in self.titles]  # fmt: skip
        self._by_title_word: dict[str, list[int]] = {}
        for i, words in enumerate(self._title_words):
            for w in words:
                self._by_title_word.setdefault(w, []).append(i)

    def title_echoes(self, words: set[str]) -> list[int]:
        """Items whose whole title (articles aside) is made of ``words`` and of common words only: "a date
        night" -> Date Night; a rare word ("hulk") means the title, not a coincidence."""
        cands = {i for w in words for i in self._by_title_word.get(w, [])}
        return [
            i for i in cands
            if self._title_words[i] and self._title_words[i] <= words
            and max(informativeness(w) for w in self._title_words[i]) < 0.5
        ]  # fmt: skip

    def __len__(self) -> int:
        return len(self.item_ids)

    def cosines(self, item: int) -> np.ndarray:
        """(N,) float32 cosine of every item to ``item``: ``embeddings @ embeddings[item]``, kept for the
        items a session keeps referring to (liked, disliked, "more like"), so a turn reads the embeddings
        once per new reference only. Read-only."""
        with self._cosines_lock:
            row = self._cosines.get(item)
            if row is not None:
                self._cosines.move_to_end(item)
                return row
        row = self.embeddings @ self.embeddings[item]
        row.flags.writeable = False
        with self._cosines_lock:
            self._cosines[item] = row
            while len(self._cosines) > max(1, COSINE_CACHE_BYTES // max(row.nbytes, 1)):
                self._cosines.popitem(last=False)
        return row

    def forget_cosines(self) -> None:
        with self._cosines_lock:
            self._cosines.clear()

    # -- lookups --------------------------------------------------------------------------------------
    def index(self, item_id: str) -> int | None:
        return self._pos.get(str(item_id))

    def label(self, idx: int) -> str:
        """The title as people write it, with its year: ``The Matrix (1999)``."""
        return display_title(self.titles[idx], self.years[idx])

    def words(self, idx: int) -> frozenset[str]:
        found = self._words.get(idx)
        if found is None:
            found = self._words[idx] = frozenset(fold(self.texts[idx]).split())
        return found

    def title_mentions(self, name: str) -> np.ndarray:
        """Items whose title holds ``name`` as whole words ("3M" in "3M 1860 N95 Respirator"), cached."""
        cache = self.__dict__.setdefault("_title_mentions", {})
        key = fold(name)
        found = cache.get(key)
        if found is None:
            padded = f" {key} "
            found = np.array([padded in f" {fold(t)} " for t in self.titles], bool) if key else np.zeros(0)
            if len(cache) < 1024:
                cache[key] = found
        return found

    def free_of(self, words: Sequence[str]) -> np.ndarray:
        """Items whose text says they are without one of ``words`` ("Powder Free", "latex-free", "no
        latex", "non-toxic", "Anti Fog", "waterproof", "tear resistant"): leaving out "powdered" (or goggles
        "that won't fog") must not demote them, they are what was asked."""
        stems = sorted({self.lexical.stem(w) for w in words if len(w) >= 3})
        out = np.zeros(len(self), bool)
        if not stems:
            return out
        alt = "|".join(re.escape(s) for s in stems)
        pattern = re.compile(
            rf"\b(?:{alt})\w*(?:[\s-]+(?:free|resistant)|[\s-]?proof)\b"
            rf"|\b(?:(?:no|without|zero)[\s-]+|(?:non|anti)[\s-]*)(?:{alt})",
            re.I,
        )
        negating = self.__dict__.get("_negating")
        if negating is None:  # the few texts that can say "free of" at all, found once
            cue = re.compile(r"\b(?:free|no|non|without|zero|resistant)\b|\banti|proof\b", re.I)
            negating = self.__dict__["_negating"] = [i for i, t in enumerate(self.texts) if cue.search(t)]
        for i in negating:
            if pattern.search(self.texts[i]):
                out[i] = True
        return out

    @property
    def noun(self) -> str:
        return self.spec.item_noun[0]

    @property
    def nouns(self) -> str:
        return self.spec.item_noun[1]

    @property
    def year_facet(self) -> NumberFacet | None:
        return next((f for f in self.numbers.values() if f.spec.kind == "year"), None)

    def facet_values(self, idx: int) -> dict[str, list[str]]:
        """Category facet values of one item: {"genre": ["Comedy", "Drama"], "brand": ["DAP"]}."""
        out = {}
        for name, facet in self.categories.items():
            vals = [facet.values[c] for c in np.flatnonzero(facet.matrix[idx])]
            if vals:
                out[name] = vals
        return out

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, bundle_dir: str | Path) -> Path:
        folder = Path(bundle_dir) / INDEX_DIR
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "version": INDEX_VERSION,
            "item_ids": self.item_ids,
            "titles": self.titles,
            "texts": self.texts,
            "spec": self.spec.model_dump(mode="json"),
            "categories": {n: f.values for n, f in self.categories.items()},
            "numbers": list(self.numbers),
            "phrases": self.phrases,
            "moods": {m: [[f, v, w] for (f, v), w in t.items()] for m, t in self.moods.items()},
        }
        arrays = {"years": self.years, "prior": self.prior}
        if self.mean_ratings is not None:
            arrays["mean_ratings"] = self.mean_ratings
        arrays |= {f"cat__{n}": f.matrix for n, f in self.categories.items()}
        arrays |= {f"num__{n}": f.values for n, f in self.numbers.items()}
        np.savez_compressed(folder / "arrays.npz", **arrays)  # type: ignore[arg-type]
        np.save(folder / "embeddings.npy", self.embeddings.astype(np.float32))
        self.lexical.save(folder / "bm25")
        self.title_lexical.save(folder / "bm25_titles")
        (folder / "index.json").write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, bundle_dir: str | Path) -> CatalogueIndex:
        folder = Path(bundle_dir) / INDEX_DIR
        meta_path = folder / "index.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} is missing: build the index with build_index(bundle)")
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != INDEX_VERSION:
            raise ValueError(f"{meta_path}: index version {meta.get('version')} != {INDEX_VERSION}; rebuild")
        arrays = np.load(folder / "arrays.npz")
        spec = CatalogueSpec.model_validate(meta["spec"])
        by_name = {f.name: f for f in spec.facets}
        cats = {n: CategoryFacet(by_name[n], v, arrays[f"cat__{n}"]) for n, v in meta["categories"].items()}
        nums = {n: NumberFacet(by_name[n], arrays[f"num__{n}"]) for n in meta["numbers"]}
        phrases = {p: [(f, v, float(w)) for f, v, w in rows] for p, rows in meta["phrases"].items()}
        moods = {m: {(f, v): float(w) for f, v, w in rows} for m, rows in meta["moods"].items()}
        n = len(meta["item_ids"])
        return cls(
            item_ids=meta["item_ids"], titles=meta["titles"], years=arrays["years"], texts=meta["texts"],
            embeddings=np.load(folder / "embeddings.npy"), spec=spec, categories=cats, numbers=nums,
            phrases=phrases, moods=moods, prior=arrays["prior"],
            mean_ratings=arrays["mean_ratings"] if "mean_ratings" in arrays.files else None,
            lexical=LexicalIndex.load(folder / "bm25", n),
            title_lexical=LexicalIndex.load(folder / "bm25_titles", n),
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------- building
def build_index(
    predictor: Predictor,
    items: pd.DataFrame,
    spec: CatalogueSpec | None = None,
    embeddings: np.ndarray | None = None,
    cache_dir: str | Path | None = None,
    prior: np.ndarray | None = None,
    audience: np.ndarray | None = None,
) -> CatalogueIndex:
    """Index ``items`` in the order of the predictor's vocabulary. ``spec`` defaults to the categories and
    year of the table; ``embeddings`` (vocabulary order) are encoded with the sentence encoder when absent;
    ``prior`` (popularity, vocabulary order) defaults to the model's empty-history score; ``audience``
    ((N, 3), ``components.prior.item_audience``) gives the audience facets their counts and ratings."""
    ids = [str(i) for i in predictor.vocab.item_ids]
    table = items.copy()
    table["item_id"] = table["item_id"].astype(str)
    rows: dict[str, dict[str, Any]] = {str(r["item_id"]): r for r in table.to_dict("records")}
    titles, texts, years, attrs, cats = [], [], [], [], []
    for item in ids:
        fields = item_fields(item, rows.get(item, {}), predictor.titles.get(item))
        titles.append(fields.title)
        cats.append(fields.categories)
        years.append(fields.year)
        texts.append(fields.text)
        attrs.append(fields.attributes)
    year_arr = np.asarray(years, dtype=np.float64)
    if spec is None:
        spec = default_catalogue(any(cats), bool(np.isfinite(year_arr).any()))
    declared = [f for f in spec.facets if f.kind != "audience"]  # re-derived below (a catalogue change)
    vocab = spec.load_vocabulary()
    categories: dict[str, CategoryFacet] = {}
    numbers: dict[str, NumberFacet] = {}
    for facet in declared:
        if facet.kind == "category":
            columns = zip(cats, attrs, titles, texts, strict=True)
            per_item = [_category_values(facet, c, a, t, x) for c, a, t, x in columns]
            categories[facet.name] = _category_facet(facet, per_item)
        elif facet.kind in ("year", "number"):
            vals = year_arr if facet.column == "year" else _numbers(facet, attrs)
            numbers[facet.name] = NumberFacet(facet, vals)
    if embeddings is None:
        embeddings = encode_texts(texts, cache_dir)
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.shape[0] != len(ids):
        raise ValueError(
            f"embeddings have {emb.shape[0]} rows but the model's vocabulary has {len(ids)} items; "
            "pass one row per vocabulary item, in vocabulary order"
        )
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    if prior is None:
        prior = minmax(np.asarray(predictor.model.score([[]])[0], dtype=np.float64))
    else:
        prior = minmax(np.log1p(np.maximum(np.asarray(prior, dtype=np.float64), 0.0)))
    derived = {  # a facet the spec declares under the same name wins
        n: f for n, f in audience_facets(prior, audience).items() if n not in numbers and n not in categories
    }
    numbers |= derived
    spec = spec.model_copy(update={"facets": [*declared, *(f.spec for f in derived.values())]})
    extra = [_extra_text(t, ti, c) for t, ti, c in zip(texts, titles, cats, strict=True)]
    phrases = facet_phrases(categories, vocab, extra, texts)
    moods = {
        mood: {(f, v): w for f, facet in categories.items() for v, w in table_.items() if v in facet.values}
        for mood, table_ in vocab.moods.items()
    }
    return CatalogueIndex(
        item_ids=ids, titles=titles, years=year_arr, texts=texts, embeddings=emb, spec=spec,
        categories=categories, numbers=numbers, phrases=phrases, moods=moods, prior=prior,
        mean_ratings=None if RATING not in derived else np.asarray(audience, dtype=np.float64)[:, 1],
        lexical=LexicalIndex.build(texts if spec.titles_describe_items else [
            t[len(ti) :] if t.startswith(ti) else t for t, ti in zip(texts, titles, strict=True)
        ]),  # fmt: skip
        title_lexical=LexicalIndex.build([t.split(" (")[0] for t in titles]),
    )  # fmt: skip


def audience_facets(prior: np.ndarray, audience: np.ndarray | None) -> dict[str, NumberFacet]:
    """What the log says about each item, as number facets: ``popularity`` (the higher of the item's
    percentiles of interactions over the whole log and of the prior, which follows what is popular lately;
    100 for the most popular) and, where the log holds ratings, ``rating`` (the mean rating shrunk towards
    the catalogue's mean by ``RATING_SHRINK`` ratings, so 5 stars from one person is no "highly rated"; NaN
    when unrated) and ``ratings`` (how many)."""

    def facet(name: str, values: np.ndarray) -> NumberFacet:
        return NumberFacet(FacetSpec(name=name, kind="audience", column=AUDIENCE_COLUMN), values)

    def percentile(values: np.ndarray) -> np.ndarray:
        ranks = pd.Series(np.asarray(values, dtype=np.float64)).rank(method="average", pct=True)
        return 100.0 * ranks.to_numpy()

    usable = audience is not None and audience.shape == (len(prior), 3)
    pct = percentile(prior)
    if usable:  # known to many over the years or lately: Black Panther has few ratings in a 2018 log
        pct = np.maximum(pct, percentile(audience[:, 0]))  # type: ignore[index]
    out = {POPULARITY: facet(POPULARITY, pct)}
    if not usable:
        return out
    mean, count = np.asarray(audience[:, 1], dtype=np.float64), np.nan_to_num(audience[:, 2])  # type: ignore[index]
    rated = count > 0
    if not rated.any():
        return out
    overall = float(np.average(mean[rated], weights=count[rated]))
    total = np.nan_to_num(mean) * count + overall * RATING_SHRINK
    shrunk = np.where(rated, total / (count + RATING_SHRINK), np.nan)
    return out | {RATING: facet(RATING, shrunk), RATINGS: facet(RATINGS, count)}


@dataclass(frozen=True)
class ItemFields:
    """What the index reads from one row of the items table."""

    title: str
    categories: list[str]
    year: float  # NaN when unknown
    text: str  # 'title. categories. text': what is searched and embedded
    attributes: dict[str, Any]


def item_fields(item_id: str, row: dict[str, Any], fallback_title: str | None = None) -> ItemFields:
    """One items-table row as the index reads it (build_index, and the catalogue changes of a running
    service, which must embed an added item's text exactly as packaging would)."""
    title = str(row.get("title") or fallback_title or f"item {item_id}")
    cats = [str(c) for c in _as_list(row.get("categories"))]
    return ItemFields(
        title=title,
        categories=cats,
        year=item_year(title, row.get("year")),
        text=item_text(title, cats, str(row.get("text") or "")),
        attributes=_attributes(row.get("attributes")),
    )


def undistinctive_names(facet: CategoryFacet, texts: Sequence[str], min_precision: float = 0.5) -> set[str]:
    """Name values (brands) whose words appear mostly in texts of items that do not have the value: saying
    them does not mean the name ("3D", "Universal")."""
    folded = [f" {fold(t)} " for t in texts]
    out = set()
    for j, value in enumerate(facet.values):
        key = f" {fold(value)} "
        if key.strip() == "":
            continue
        mentions = [i for i, t in enumerate(folded) if key in t]
        if mentions and facet.matrix[mentions, j].mean() < min_precision:
            out.add(value)
    return out


def facet_phrases(
    categories: dict[str, CategoryFacet], vocab: Vocabulary, extra_texts: Sequence[str],
    texts: Sequence[str] = (),
) -> dict[str, list[tuple[str, str, float]]]:  # fmt: skip
    """Folded phrase -> [(facet, value, weight)]: weight 1 for a value's name, plural and vocabulary
    phrases (hard evidence); below 1 for synonyms learnt from the item texts (soft evidence only);
    ``EXCLUDES`` for a value the vocabulary says a phrase rules out ("for adults": not Children), ``PREFERS``
    for one it leans to ("date night": Romance, boosted, never required)."""
    out: dict[str, dict[tuple[str, str], float]] = {}

    def add(phrase: str, facet: str, value: str, weight: float) -> None:
        key = fold(phrase)
        if key:
            slot = out.setdefault(key, {})
            slot[(facet, value)] = max(slot.get((facet, value), 0.0), weight)

    for name, facet in categories.items():
        vague = undistinctive_names(facet, texts) if facet.spec.proper_names else set()
        for value in facet.values:
            if value in vague:
                continue  # "3D" as a brand: most products saying "3d" are not by it
            add(value, name, value, 1.0)
            add(plural(fold(value)), name, value, 1.0)
            for p in vocab.values.get(value, []):
                add(p, name, value, 1.0)
        for phrase, values in vocab.combos.items():
            for v in values:
                if v in facet.values:
                    add(phrase, name, v, 1.0)
        for table, weight in ((vocab.excludes, EXCLUDES), (vocab.prefers, PREFERS)):
            for phrase, values in table.items():
                for v in values:
                    if v in facet.values and fold(phrase):
                        out.setdefault(fold(phrase), {})[(name, v)] = weight
        for word, value, weight in learnt_synonyms(facet, extra_texts):
            if word not in out:  # a phrase with hard evidence keeps it
                add(word, name, value, weight)
    return {p: [(f, v, w) for (f, v), w in vals.items()] for p, vals in out.items()}


def learnt_synonyms(
    facet: CategoryFacet, texts: Sequence[str], min_items: int = 4, min_precision: float = 0.6,
    min_lift: float = 2.0, max_values: int = 200,
) -> list[tuple[str, str, float]]:  # fmt: skip
    """Words of the items' own texts (tags, descriptions) that mostly occur on items of one value:
    (word, value, precision) with P(value | word) >= min_precision, lift >= min_lift, >= min_items items."""
    if len(facet.values) > max_values or not any(texts):
        return []
    rows_of: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        for w in set(fold(t).split()):
            rows_of.setdefault(w, []).append(i)
    value_share = facet.matrix.mean(axis=0)
    value_names = {fold(v) for v in facet.values}
    out = []
    for word, rows in rows_of.items():
        if len(rows) < min_items or len(word) < 4 or word.isdigit() or word in value_names:
            continue
        if informativeness(word) < 0.4:  # "great", "time", "will": too common to mean a value
            continue
        share = facet.matrix[rows].mean(axis=0)  # P(value | word)
        best = int(np.argmax(share))
        if share[best] >= min_precision and share[best] >= min_lift * max(value_share[best], 1e-9):
            out.append((word, facet.values[best], round(float(share[best]) * 0.8, 3)))
    return out


def plural(word: str) -> str:
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy")):
        return word[:-1] + "ies"
    return word if word.endswith("s") else word + "s"


def item_year(title: str, year: object) -> float:
    """The year a title carries ("Star Wars (1977)") when it has one, else ``year`` (MovieLens release dates
    are sometimes re-releases)."""
    _, from_title = title_keys(title)
    if from_title is not None:
        return float(from_title)
    try:
        value = float(year)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def item_text(title: str, categories: Sequence[str], text: str) -> str:
    """'title. categories. text', without repeating what ``text`` already holds."""
    text = text.strip()
    if text.startswith(title):
        return text
    parts = [title]
    if categories:
        parts.append(", ".join(categories))
    if text:
        parts.append(text)
    return ". ".join(parts)


def encode_texts(texts: Sequence[str], cache_dir: str | Path | None) -> np.ndarray:
    from components.text_encoder import embed_items, get_encoder

    if cache_dir:
        return embed_items(texts, cache_dir)[0]
    return get_encoder().encode(list(texts))


def minmax(values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Finite values scaled into [0, 1] (zeros when constant); non-finite values become 0. With ``where``
    (bool, same shape) only those values count and the others become 0, as if they were NaN."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if where is not None:
        finite &= where
    out = np.zeros_like(v)
    if finite.all():  # the common case, without masked copies (same numbers as below)
        lo, hi = v.min(), v.max()
        if hi - lo > 1e-12:
            np.divide(np.subtract(v, lo, out=out), hi - lo, out=out)
    elif finite.any():
        lo = v.min(where=finite, initial=np.inf)
        hi = v.max(where=finite, initial=-np.inf)
        if hi - lo > 1e-12:
            np.subtract(v, lo, out=out, where=finite)
            np.divide(out, hi - lo, out=out, where=finite)
    return out


def _category_facet(facet: FacetSpec, per_item: list[list[str]]) -> CategoryFacet:
    counts = Counter(v for vals in per_item for v in dict.fromkeys(vals))
    values = sorted(v for v, _ in counts.most_common(facet.max_values))
    col = {v: j for j, v in enumerate(values)}
    matrix = np.zeros((len(per_item), len(values)), dtype=bool)
    for i, vals in enumerate(per_item):
        for v in vals:
            if v in col:
                matrix[i, col[v]] = True
    return CategoryFacet(facet, values, matrix)


def _category_values(
    facet: FacetSpec, cats: list[str], attrs: dict[str, Any], title: str, text: str
) -> list[str]:
    if facet.column == "categories":
        values = list(cats)
    elif facet.column == "title":
        values = [title]
    elif facet.column == "text":
        values = [text]
    elif facet.column.startswith("attributes."):
        values = [str(v) for v in _as_list(attrs.get(facet.column[len("attributes.") :]))]
    else:
        values = []
    if facet.pattern is not None:
        found = [re.search(facet.pattern, v) for v in values]
        values = [m.group(1) for m in found if m is not None]
    return [v.strip() for v in values if len(v.strip()) >= 2 and any(c.isalpha() for c in v)]  # no "/>"


def _numbers(facet: FacetSpec, attrs: list[dict[str, Any]]) -> np.ndarray:
    key = facet.column[len("attributes.") :] if facet.column.startswith("attributes.") else facet.column
    out = np.full(len(attrs), np.nan)
    for i, a in enumerate(attrs):
        with contextlib.suppress(TypeError, ValueError):  # unknown or unreadable: NaN
            out[i] = float(str(a.get(key)).replace("$", "").replace(",", ""))
    return out


def _attributes(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            loaded = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _extra_text(text: str, title: str, categories: Sequence[str]) -> str:
    """What the item text says beyond its title and categories (tags, description)."""
    rest = text[len(title) :] if text.startswith(title) else text
    joined = ", ".join(categories)
    if joined and joined in rest:
        rest = rest.replace(joined, " ", 1)
    return rest


def _as_list(value: object) -> list[Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]
