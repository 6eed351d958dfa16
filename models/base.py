"""The one recommender interface every model implements.

Item ids inside models are dense integers ``0 .. n_items-1`` given by the item vocabulary
(components/features.py). A *history* is a sequence of those integers, oldest first. Scores cover the
whole catalogue: ``score(histories)`` returns a float32 array of shape ``(batch, n_items)``.

Sequence models that need a padding token shift ids by one internally (``0`` = padding); that detail
never leaks through this interface.

A saved model is rebuilt from its directory alone (``config.json`` + weights). The id vocabulary and
item metadata travel next to it in the model bundle (components/bundle.py).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from models.new_items import NewItems

CONFIG_FILE = "config.json"


class ModelConfig(BaseModel):
    """Fields every model config shares. Subclasses add their own, each documented."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(42, description="Seed for numpy/torch/python RNGs; runs are repeatable.")

    # Values for fields a model saved before they existed did not write: loading such a model keeps the
    # behaviour it was evaluated and promoted with, while new models get the field's (new) default.
    saved_before_defaults: ClassVar[dict[str, Any]] = {}


@dataclass(frozen=True)
class TrainData:
    """What ``fit`` sees: training sequences as dense item ids, oldest first.

    ``sequences[i]`` is one user's (or session's) training history; ``n_items`` is the catalogue size
    of the item vocabulary (items a training sequence never shows may be part of it: cold items).
    ``item_text`` is the optional ``(n_items, E)`` float32 matrix of item text embeddings, in vocabulary
    order, for text-aware models; other models ignore it.
    """

    sequences: list[np.ndarray]
    n_items: int
    item_text: np.ndarray | None = None


@dataclass(frozen=True)
class EvalData:
    """Next-item prediction cases: ``histories[i]`` followed by ``targets[i]``."""

    histories: list[np.ndarray]
    targets: np.ndarray  # (N,) int64 dense item ids


@dataclass
class FitReport:
    """What training did: per-epoch curves (name -> list of values), epochs, device."""

    epochs: int = 0
    device: str = "cpu"
    curves: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None  # epoch whose weights were kept (validation early stopping)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. the loss actually used, fusion weights


# A history: dense item ids, oldest first (a list or a 1-d int array).
History = Sequence[int] | np.ndarray

# Called after each epoch with (epoch, {"loss": ..., "valid_ndcg@10": ...}); used for tracking/progress.
EpochCallback = Callable[[int, dict[str, float]], None]


class Recommender(ABC):
    """Base class: fit on training sequences, score histories against the whole catalogue."""

    name: ClassVar[str]
    config_cls: ClassVar[type[ModelConfig]]

    def __init__(self, config: ModelConfig, n_items: int) -> None:
        if n_items <= 0:
            raise ValueError(f"{type(self).__name__}: n_items must be positive, got {n_items}")
        self.config = config
        self.n_items = n_items

    @abstractmethod
    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        """Train on ``train``; ``valid`` may drive early stopping; ``on_epoch`` reports progress."""

    @abstractmethod
    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """Scores ``(len(histories), n_items)`` float32; higher is better. Empty histories are allowed."""

    def rank_targets(
        self,
        histories: Sequence[History],
        targets: np.ndarray | None,
        k: int,
        exclude_seen: bool,
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """0-based target ranks ``(B,)`` (pessimistic ties; ``None`` without targets) and top-``k`` ids
        ``(B, k)`` best first. With ``exclude_seen`` every item of a history leaves its ranking (a repeated
        target too: it then ranks last). Torch models override this to rank on their device."""
        from components.metrics import target_ranks

        scores = np.array(self.score(cast(Sequence[Sequence[int]], histories)), np.float32)  # (B, n_items)
        if exclude_seen:
            for row, history in enumerate(histories):
                if len(history):
                    scores[row, np.asarray(history, dtype=np.int64)] = -np.inf
        ranks = target_ranks(scores, np.asarray(targets, np.int64)) if targets is not None else None
        kk = min(k, self.n_items)
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        return ranks, np.take_along_axis(part, order, axis=1)

    uses_item_text: ClassVar[bool] = False  # scores items from their text embeddings (TextSASRec)

    def with_new_items(self, new: NewItems) -> Recommender:
        """This model over ``n_items + len(new)`` items, the new ones (appended ids) scored without
        retraining: through their text neighbours by default (models/new_items.py); text-aware models
        override this to score them from their own text embeddings."""
        from models.new_items import NeighbourScored

        return NeighbourScored(self, new)

    @abstractmethod
    def _save_state(self, directory: Path) -> None:
        """Write weights/state files into ``directory`` (config is written by ``save``)."""

    @abstractmethod
    def _load_state(self, directory: Path) -> None:
        """Read what ``_save_state`` wrote."""

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "n_items": self.n_items, "config": self.config.model_dump()}
        (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        self._save_state(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        directory = Path(directory)
        meta = read_model_meta(directory)
        if meta["model"] != cls.name:
            raise ValueError(f"{directory} holds a {meta['model']!r} model, not {cls.name!r}")
        config = {**cls.config_cls.saved_before_defaults, **meta["config"]}
        model = cls(cls.config_cls.model_validate(config), int(meta["n_items"]))
        model._load_state(directory)
        return model


def read_model_meta(directory: Path) -> dict:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a saved sessionflow model directory")
    return json.loads(path.read_text())
