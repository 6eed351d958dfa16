"""Service and packaging tests: a tiny real model bundle and a throw-away BentoML home."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

N_ITEMS = 20
TRAIN_SESSIONS = [
    ["1", "2", "3", "4"],
    ["2", "3", "5"],
    ["1", "3", "6", "7"],
    ["8", "9", "10"],
    ["1", "2", "3"],
]
DATA_HASH = "test-data-hash-0123"
METRICS = {"ndcg@10": 0.42, "recall@10": 0.5}


def title(item_id: str) -> str:
    return f"Movie {item_id}"


def make_bundle(directory: Path) -> Path:
    """A real item-kNN bundle over items "1".."20" (titles "Movie <id>"), trained on a few sessions."""
    from components.bundle import save_bundle
    from components.vocab import ItemVocab
    from models import TrainData, build_model

    ids = [str(i) for i in range(1, N_ITEMS + 1)]
    vocab = ItemVocab.fit(ids)
    model = build_model("itemknn", len(vocab))
    sequences = [np.array([vocab.index(i) for i in s], dtype=np.int64) for s in TRAIN_SESSIONS]
    model.fit(TrainData(sequences=sequences, n_items=len(vocab)))
    items = pd.DataFrame({"item_id": ids, "title": [title(i) for i in ids]})
    meta = {"data_hash": DATA_HASH, "metrics": METRICS, "created_at": "2026-01-01T00:00:00+00:00"}
    return save_bundle(directory, model, vocab, items, meta)


def save_bentoml_model(bundle: Path, labels: dict[str, str]) -> str:
    """Copy ``bundle`` into the BentoML model store; returns the exact tag."""
    import bentoml

    with bentoml.models.create("sessionflow-recommender", labels=labels) as model:
        shutil.copytree(bundle, model.path, dirs_exist_ok=True)
    return str(model.tag)


@contextlib.contextmanager
def isolated_bentoml_home(home: Path) -> Iterator[Path]:
    """Point BentoML (this process and subprocesses) at ``home``; restore everything afterwards.

    BentoML caches its home and stores on first use, so setting BENTOML_HOME alone is not enough when
    another test already touched them: the cached providers are overridden too.
    """
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    dirs = {name: home / name for name in ("bentos", "models", "envs", "tmp")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    overrides = {
        BentoMLContainer.bentoml_home: str(home),
        BentoMLContainer.bento_store_dir: str(dirs["bentos"]),
        BentoMLContainer.model_store_dir: str(dirs["models"]),
        BentoMLContainer.env_store_dir: str(dirs["envs"]),
        BentoMLContainer.tmp_bento_store_dir: str(dirs["tmp"]),
        BentoMLContainer.bento_store: BentoStore(str(dirs["bentos"])),
        BentoMLContainer.tmp_bento_store: BentoStore(str(dirs["tmp"])),
        BentoMLContainer.model_store: ModelStore(str(dirs["models"])),
    }
    saved_env = {k: os.environ.get(k) for k in ("BENTOML_HOME", "BENTOML_DO_NOT_TRACK")}
    os.environ["BENTOML_HOME"] = str(home)
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    try:
        with contextlib.ExitStack() as stack:
            for provider, value in overrides.items():
                stack.enter_context(provider.patch(value))
            yield home
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
