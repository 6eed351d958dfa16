"""Lexical retrieval over item texts: BM25 (the bm25s library) with Snowball stemming, queried with weighted
terms so that common English words ("saw", "date") weigh less than rare ones ("zombie", "kubrick")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from components.dialogue.text import fold


def _stemmer():  # noqa: ANN202 - PyStemmer has no type stubs
    import Stemmer

    return Stemmer.Stemmer("english")


class LexicalIndex:
    """BM25 over one text per item (dense item order)."""

    def __init__(self, retriever, n_items: int) -> None:  # noqa: ANN001 - bm25s.BM25 (None: no words at all)
        self._retriever = retriever
        self.n_items = n_items
        self._stem = _stemmer()
        self._vocab: dict[str, int] = dict(getattr(retriever, "vocab_dict", None) or {}) if retriever else {}

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        folded = [fold(t) for t in texts]
        if not any(folded):
            return cls(None, len(texts))
        tokens = bm25s.tokenize(folded, stopwords="en", stemmer=_stemmer(), show_progress=False)
        if not any(tokens.ids):
            return cls(None, len(texts))
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever, len(texts))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self._retriever is None:
            (directory / "EMPTY").write_text("no item has any text to index\n")
        else:
            self._retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path, n_items: int) -> LexicalIndex:
        import bm25s

        if (directory / "EMPTY").is_file():
            return cls(None, n_items)
        retriever = bm25s.BM25.load(str(directory), show_progress=False)
        return cls(retriever, n_items)

    def stem(self, word: str) -> str:
        return str(self._stem.stemWord(fold(word)))

    def has(self, word: str) -> bool:
        """Whether the (stemmed) word occurs in any item text."""
        return self.stem(word) in self._vocab

    def mentions_all(self, text: str) -> bool:
        """Whether some item's text holds every word of ``text`` (stemmed): 'tom cruise' in a catalogue
        whose texts never name him is False."""
        return bool(self.phrase_score(text).any())

    def phrase_score(self, text: str) -> np.ndarray:
        """(N,) BM25 of the words of ``text`` (stemmed), only on the items whose text holds every one of
        them: 'star wars' finds the Star Wars films, not every war film."""
        stems = list(dict.fromkeys(self.stem(w) for w in fold(text).split()))
        if not stems or any(s not in self._vocab for s in stems):
            return np.zeros(self.n_items, dtype=np.float64)
        per = [np.asarray(self._retriever.get_scores([s]), dtype=np.float64) for s in stems]
        return np.where(np.all([p > 0 for p in per], axis=0), np.sum(per, axis=0), 0.0)

    def score(self, terms: Mapping[str, float]) -> np.ndarray:
        """(N,) sum over terms of weight * BM25(term, item); unknown terms add nothing."""
        out = np.zeros(self.n_items, dtype=np.float64)
        merged: dict[str, float] = {}
        for word, weight in terms.items():
            for part in fold(word).split():
                stem = self.stem(part)
                if stem in self._vocab and weight > 0:
                    merged[stem] = merged.get(stem, 0.0) + float(weight)
        for stem, weight in merged.items():
            out += weight * np.asarray(self._retriever.get_scores([stem]), dtype=np.float64)
        return out
