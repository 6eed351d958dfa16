"""Item id vocabulary: raw string ids <-> dense integers ``0 .. n_items-1``.

Fitted on the training split only. Ids never seen in training are *unknown*: ``encode`` reports them
instead of inventing an index, so callers decide (skip them in a history, count them in evaluation,
report them in an API answer).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

VOCAB_FILE = "vocab.json"


@dataclass
class ItemVocab:
    item_ids: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {item: i for i, item in enumerate(self.item_ids)}
        if len(self._index) != len(self.item_ids):
            raise ValueError("item vocabulary has duplicate ids")

    @classmethod
    def fit(cls, item_ids: Iterable[str]) -> ItemVocab:
        """Vocabulary of the distinct ids, in first-seen order made stable by sorting."""
        return cls(sorted({str(i) for i in item_ids}))

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def index(self, item_id: str) -> int | None:
        return self._index.get(item_id)

    def encode(self, item_ids: Sequence[str]) -> tuple[list[int], list[str]]:
        """Dense ids of the known items (order kept) and the list of unknown raw ids."""
        known: list[int] = []
        unknown: list[str] = []
        for item in item_ids:
            idx = self._index.get(str(item))
            if idx is None:
                unknown.append(str(item))
            else:
                known.append(idx)
        return known, unknown

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.item_ids[int(i)] for i in indices]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / VOCAB_FILE
        path.write_text(json.dumps({"item_ids": self.item_ids}))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ItemVocab:
        path = Path(directory) / VOCAB_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the model bundle has no item vocabulary")
        return cls(list(json.loads(path.read_text())["item_ids"]))
