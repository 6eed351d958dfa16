"""Tests of the MLflow tracking, model format and promotion flows (offline, sqlite stores in tmp dirs)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore", message=".*SQLAlchemy.*")
warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")

_TEMPLATE_DB: list[Path] = []  # an initialised empty mlflow.db, made once per test process
N_ITEMS = 12
SEQUENCES = [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [5, 6, 7], [6, 7, 8, 9], [8, 9, 10, 11], [0, 2, 4]]


def make_bundle(directory: Path, model_name: str = "itemknn", data_hash: str = "hash-1") -> Path:
    """Fit a tiny real model and write its bundle (item ids 'i0'..'i11', titles 'Item 0'..)."""
    from components.bundle import save_bundle
    from components.vocab import ItemVocab
    from models import TrainData, build_model

    vocab = ItemVocab([f"i{i}" for i in range(N_ITEMS)])
    params: dict[str, Any] = {"neighbours": 5} if model_name == "itemknn" else {}
    model = build_model(model_name, len(vocab), params)
    model.fit(TrainData(sequences=[np.asarray(s) for s in SEQUENCES], n_items=len(vocab)))
    items = pd.DataFrame(
        {
            "item_id": vocab.item_ids,
            "title": [f"Item {i}" for i in range(N_ITEMS)],
            "categories": [["a"]] * N_ITEMS,
            "year": [2000] * N_ITEMS,
        }
    )
    return save_bundle(directory, model, vocab, items, {"data_hash": data_hash})


def use_tracking(root: Path, monkeypatch: Any) -> Iterator[str]:
    """Fresh sqlite tracking store under ``root`` (a copy of an initialised empty db: creating the schema
    takes seconds). Yields the tracking URI; resets mlflow's URI afterwards."""
    import mlflow
    from mlflow import MlflowClient

    from flows.tracking import DB_FILE, configure_tracking

    if not _TEMPLATE_DB:
        folder = Path(tempfile.mkdtemp(prefix="sessionflow-mlflow-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        mlflow.set_tracking_uri(f"sqlite:///{folder / DB_FILE}")
        MlflowClient().search_experiments()  # runs the schema migrations
        _TEMPLATE_DB.append(folder / DB_FILE)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(_TEMPLATE_DB[0], root / DB_FILE)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = configure_tracking(root)
    yield uri
    mlflow.set_tracking_uri(None)
