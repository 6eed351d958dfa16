"""Model registry: an explicit name -> class dict (no import-by-name tricks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.base import EvalData, FitReport, ModelConfig, Recommender, TrainData, read_model_meta
from models.bert4rec import BERT4Rec
from models.ease import EASE
from models.hybrid import Hybrid
from models.itemknn import ItemKNN
from models.popularity import Popularity
from models.sasrec import SASRec
from models.textsasrec import TextSASRec

REGISTRY: dict[str, type[Recommender]] = {
    Popularity.name: Popularity,
    ItemKNN.name: ItemKNN,
    EASE.name: EASE,
    SASRec.name: SASRec,
    BERT4Rec.name: BERT4Rec,
    TextSASRec.name: TextSASRec,
    Hybrid.name: Hybrid,
}


def model_class(name: str) -> type[Recommender]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(REGISTRY)}") from None


def build_model(name: str, n_items: int, params: dict[str, Any] | None = None) -> Recommender:
    """Instantiate ``name`` with its config class validating ``params`` (unknown keys are errors)."""
    cls = model_class(name)
    return cls(cls.config_cls.model_validate(params or {}), n_items)


def load_model(directory: str | Path) -> Recommender:
    """Rebuild any saved model from its directory alone."""
    meta = read_model_meta(Path(directory))
    return model_class(meta["model"]).load(directory)


__all__ = [
    "REGISTRY",
    "EvalData",
    "FitReport",
    "ModelConfig",
    "Recommender",
    "TrainData",
    "build_model",
    "load_model",
    "model_class",
]
