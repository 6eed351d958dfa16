"""The catalogue as the conversation sees it: per dense item id a title, categories, year and text embedding.

Built once from a Predictor (its vocabulary fixes the dense order) and the canonical items table. Items the
table lacks keep the Predictor's title (or their id) and no categories. An item's year is the one its title
carries when it has one ("Star Wars (1977)"), else the table's year. The title index resolves free-text titles
("The Matrix", "matrix", "Matrix, The (1999)", "toy story 1995") to dense ids (rapidfuzz when installed,
else difflib).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from components.bundle import Predictor

try:  # optional, faster and more tolerant fuzzy matching
    from rapidfuzz import fuzz as _rf_fuzz  # type: ignore[import-not-found]
    from rapidfuzz import process as _rf_process  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _rf_fuzz = None
    _rf_process = None

ARTICLES = ("the", "a", "an", "la", "le", "les", "l", "il", "el", "das", "die", "der", "los", "las")
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
_TRAILING_ARTICLE = re.compile(r",\s*(" + "|".join(ARTICLES) + r")'?$", re.IGNORECASE)


def fold(text: str) -> str:
    """Lower-case, accents removed, every run of non-alphanumerics one space."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def title_keys(title: str) -> tuple[list[str], int | None]:
    """Normalised lookup keys of a catalogue title and the year it carries.

    ``"Matrix, The (1999)"`` -> ``["the matrix", "matrix"]``, 1999; a parenthesised alias
    (``"Seven (Se7en) (1995)"``) adds its own key.
    """
    year: int | None = None
    t = title.strip()
    m = _YEAR_SUFFIX.search(t)
    if m:
        year = int(m.group(1))
        t = t[: m.start()]
    aliases = re.findall(r"\(([^)]*)\)", t)
    t = re.sub(r"\([^)]*\)", " ", t).strip()
    keys: list[str] = []
    m2 = _TRAILING_ARTICLE.search(t)
    if m2:
        base = t[: m2.start()]
        keys.append(fold(f"{m2.group(1)} {base}"))
        keys.append(fold(base))
    else:
        key = fold(t)
        keys.append(key)
        first, _, rest = key.partition(" ")
        if first in ARTICLES and rest:
            keys.append(rest)
    for alias in aliases:
        if fold(alias) and not fold(alias).isdigit():
            keys.append(fold(alias))
    return [k for k in dict.fromkeys(keys) if k], year


def query_key(text: str) -> tuple[str, int | None]:
    """Normalised key of a title as a person types it, and a trailing year if given."""
    year: int | None = None
    t = text.strip()
    m = re.search(r"\(?\b(1[89]\d\d|20\d\d)\)?\s*$", t)
    if m and m.start() > 0:
        year = int(m.group(1))
        t = t[: m.start()]
    key = fold(t)
    m2 = re.match(r"^(.*) (" + "|".join(ARTICLES) + r")$", key)  # "matrix the"
    if m2:
        key = f"{m2.group(2)} {m2.group(1)}"
    return key, year


@dataclass
class TitleIndex:
    """Exact-then-fuzzy lookup of titles (difflib, or rapidfuzz when installed)."""

    keys: list[str]
    key_items: list[list[int]]
    years: np.ndarray
    popularity: np.ndarray
    _by_key: dict[str, list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_key = dict(zip(self.keys, self.key_items, strict=True))

    @classmethod
    def build(
        cls, titles: Sequence[str], years: np.ndarray, popularity: np.ndarray | None = None
    ) -> TitleIndex:
        by_key: dict[str, list[int]] = {}
        for idx, title in enumerate(titles):
            for key in title_keys(title)[0]:
                by_key.setdefault(key, []).append(idx)
        pop = popularity if popularity is not None else np.zeros(len(titles), dtype=np.float32)
        return cls(list(by_key), list(by_key.values()), years, pop)

    def exact(self, text: str) -> int | None:
        """Dense id of the title typed as ``text`` (case, articles and a trailing year tolerated)."""
        key, year = query_key(text)
        if not key:
            return None
        cands = self._by_key.get(key)
        if cands is None:
            first, _, rest = key.partition(" ")
            cands = self._by_key.get(rest) if first in ARTICLES and rest else None
        return self._pick(cands, year) if cands else None

    def fuzzy(self, text: str, cutoff: float = 0.86) -> tuple[int, float] | None:
        """Closest title to ``text`` and its similarity in [0, 1], or None below ``cutoff``."""
        key, year = query_key(text)
        if len(key) < 4:
            return None
        if _rf_process is not None:
            hit = _rf_process.extractOne(key, self.keys, scorer=_rf_fuzz.ratio, score_cutoff=cutoff * 100)
            if hit is None:
                return None
            best, score = hit[0], hit[1] / 100.0
        else:
            matches = difflib.get_close_matches(key, self.keys, n=1, cutoff=cutoff)
            if not matches:
                return None
            best = matches[0]
            score = difflib.SequenceMatcher(None, key, best).ratio()
        return self._pick(self._by_key[best], year), score

    def _pick(self, cands: list[int], year: int | None) -> int:
        if year is not None:
            same = [c for c in cands if self.years[c] == year]
            if same:
                cands = same
        return max(cands, key=lambda c: (float(self.popularity[c]), -c))


@dataclass
class Catalogue:
    """Per dense item id (the Predictor's vocabulary order): id, title, categories, year, text, embedding."""

    item_ids: list[str]
    titles: list[str]
    categories: list[tuple[str, ...]]
    years: np.ndarray  # (N,) float64, NaN where unknown
    texts: list[str]
    embeddings: np.ndarray  # (N, D) float32 unit rows
    category_names: list[str]  # the catalogue's category vocabulary, sorted
    category_matrix: np.ndarray  # (N, C) bool
    titles_index: TitleIndex
    popularity: np.ndarray  # (N,) the model's empty-history score scaled to [0, 1]
    _index: dict[str, int] = field(init=False, repr=False)
    _words: dict[int, frozenset[str]] = field(init=False, repr=False)
    category_words: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {item: i for i, item in enumerate(self.item_ids)}
        self._words = {}
        self.category_words = frozenset(w for c in self.category_names for w in fold(c).split())

    def words(self, idx: int) -> frozenset[str]:
        """Folded words of the item's text (cached)."""
        found = self._words.get(idx)
        if found is None:
            found = self._words[idx] = frozenset(fold(self.texts[idx]).split())
        return found

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self, item_id: str) -> int | None:
        return self._index.get(str(item_id))

    def category_column(self, name: str) -> int | None:
        try:
            return self.category_names.index(name)
        except ValueError:
            return None

    def label(self, idx: int) -> str:
        """Title as people write it, with a year: ``Matrix, The (1999)`` -> ``The Matrix (1999)``."""
        return display_title(self.titles[idx], self.years[idx])

    @property
    def year_bounds(self) -> tuple[int, int] | None:
        known = self.years[np.isfinite(self.years)]
        return (int(known.min()), int(known.max())) if known.size else None

    @classmethod
    def build(
        cls,
        predictor: Predictor,
        items: pd.DataFrame,
        embeddings: np.ndarray | None = None,
        cache_dir: str | None = None,
    ) -> Catalogue:
        """Align ``items`` with the Predictor's vocabulary; encode item text unless ``embeddings`` is given.

        ``embeddings`` must have one row per vocabulary item, in vocabulary order.
        """
        ids = list(predictor.vocab.item_ids)
        table = items.copy()
        table["item_id"] = table["item_id"].astype(str)
        rows: dict[str, Any] = {str(r["item_id"]): r for r in table.to_dict("records")}
        titles, cats, years, texts = [], [], [], []
        for item in ids:
            row = rows.get(item, {})
            title = str(row.get("title") or predictor.titles.get(item) or f"item {item}")
            categories = tuple(str(c) for c in _as_list(row.get("categories")))
            years.append(item_year(title, row.get("year")))
            titles.append(title)
            cats.append(categories)
            texts.append(item_text(title, categories, str(row.get("text") or "")))
        names = sorted({c for cs in cats for c in cs})
        matrix = np.zeros((len(ids), len(names)), dtype=bool)  # (N, C)
        col = {n: j for j, n in enumerate(names)}
        for i, cs in enumerate(cats):
            for c in cs:
                matrix[i, col[c]] = True
        if embeddings is None:
            embeddings = encode_texts(texts, cache_dir)
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.shape[0] != len(ids):
            raise ValueError(
                f"embeddings have {embeddings.shape[0]} rows but the model's vocabulary has {len(ids)} "
                "items; pass one row per vocabulary item, in vocabulary order"
            )
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        embeddings = embeddings / np.maximum(norms, 1e-9)
        prior = np.asarray(predictor.model.score([[]])[0], dtype=np.float64)  # (N,)
        popularity = minmax(prior)
        year_arr = np.asarray(years, dtype=np.float64)
        return cls(
            item_ids=ids,
            titles=titles,
            categories=cats,
            years=year_arr,
            texts=texts,
            embeddings=embeddings,
            category_names=names,
            category_matrix=matrix,
            titles_index=TitleIndex.build(titles, year_arr, popularity),
            popularity=popularity.astype(np.float32),
        )


def item_year(title: str, year: object) -> float:
    """The item's year: the one its title carries ("Star Wars (1977)") when it has one, else ``year``.

    MovieLens release dates are sometimes re-releases (Star Wars: 1997); a person reading "Star Wars (1977)"
    next to "from the 1990s, as asked" would rightly call the answer wrong.
    """
    m = _YEAR_SUFFIX.search(title)
    if m:
        return float(m.group(1))
    if year is None or pd.isna(year):  # type: ignore[arg-type]
        return np.nan
    return float(year)  # type: ignore[arg-type]


def display_title(title: str, year: float | None = None) -> str:
    """Move a trailing article to the front and make sure a year is shown when known."""
    t = title.strip()
    m = _YEAR_SUFFIX.search(t)
    suffix = ""
    if m:
        suffix, t = f" ({m.group(1)})", t[: m.start()]
    elif year is not None and np.isfinite(year):
        suffix = f" ({int(year)})"
    alias = ""
    m_alias = re.search(r"\s*(\([^)]*\))\s*$", t)
    if m_alias:
        alias, t = " " + m_alias.group(1), t[: m_alias.start()]
    m_art = _TRAILING_ARTICLE.search(t)
    if m_art:
        art = m_art.group(0).lstrip(", ").strip()
        t = f"{art} {t[: m_art.start()]}" if not art.endswith("'") else f"{art}{t[: m_art.start()]}"
    return f"{t}{alias}{suffix}"


def item_text(title: str, categories: Sequence[str], text: str) -> str:
    """'title. genres. text', without repeating what ``text`` holds (ingest puts title + genres in it)."""
    parts = [title]
    if categories:
        parts.append(", ".join(categories))
    text = text.strip()
    if text and not text.startswith(title):
        parts.append(text)
    elif text:
        return text
    return ". ".join(parts)


def encode_texts(texts: Sequence[str], cache_dir: str | None) -> np.ndarray:
    """Sentence embeddings of item texts, cached on disk when ``cache_dir`` is given."""
    from components.text_encoder import embed_items, get_encoder

    if cache_dir:
        return embed_items(texts, cache_dir)[0]
    return get_encoder().encode(list(texts))


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale finite values into [0, 1] (all zeros when constant); non-finite values become 0."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    out = np.zeros_like(v)
    if not finite.any():
        return out
    lo, hi = v[finite].min(), v[finite].max()
    if hi - lo > 1e-12:
        out[finite] = (v[finite] - lo) / (hi - lo)
    return out


def _as_list(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    try:
        return [str(v) for v in value]  # type: ignore[attr-defined]
    except TypeError:
        return []
