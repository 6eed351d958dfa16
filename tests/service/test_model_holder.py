"""Hot reload and rollback in process: the holder follows the release record, refuses broken models, keeps
sessions, and the service answers every request through a swap (bento/model_holder.py, bento/service.py).

Real models in a temporary BentoML store: the tiny item-kNN bundle as version 7 and a popularity bundle as
version 8 (tests/service); a broken one has its weights replaced by NaNs or removed.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import bentoml
import numpy as np
import pytest

from components.dialogue.config import ConversationConfig
from components.release import Release, write_release
from tests.service import N_ITEMS, TRAIN_SESSIONS, isolated_bentoml_home, make_bundle, save_bentoml_model

LABELS = {"registered_model": "sessionflow-recommender", "mlflow_run_id": "run-x", "data_hash": "h"}


def popularity_bundle(directory: Path) -> Path:
    """Same catalogue as make_bundle, a popularity model: a different, valid model."""
    import pandas as pd

    from components.bundle import ITEMS_FILE, save_bundle
    from components.vocab import ItemVocab
    from models import TrainData, build_model

    base = make_bundle(directory.with_name(directory.name + "-base"))
    vocab = ItemVocab.load(base)
    model = build_model("popularity", len(vocab))
    model.fit(TrainData([np.array([vocab.index(i) for i in s]) for s in TRAIN_SESSIONS], len(vocab)))
    return save_bundle(directory, model, vocab, pd.read_parquet(base / ITEMS_FILE), {"data_hash": "h2"})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A BentoML store with versions 7 (item-kNN), 8 (popularity), a NaN model and a model without weights."""
    from components.dialogue.packaging import write_index

    tmp = tmp_path_factory.mktemp("holder")
    with isolated_bentoml_home(tmp / "home"):
        good = make_bundle(tmp / "v7")
        other = popularity_bundle(tmp / "v8")
        nan = popularity_bundle(tmp / "nan")
        missing = make_bundle(tmp / "missing")
        for bundle in (good, other, nan, missing):
            write_index(bundle)  # as packaging does
        shutil.rmtree(missing / "model")
        tags = {
            "7": save_bentoml_model(good, LABELS | {"mlflow_model_version": "7", "model": "itemknn"}),
            "8": save_bentoml_model(other, LABELS | {"mlflow_model_version": "8", "model": "popularity"}),
            "nan": save_bentoml_model(nan, LABELS | {"mlflow_model_version": "9", "model": "popularity"}),
            "missing": save_bentoml_model(
                missing, LABELS | {"mlflow_model_version": "10", "model": "itemknn"}
            ),
        }
        # weights that turned NaN after packaging (packaging itself refuses NaN): the checksums catch it
        stored = Path(bentoml.models.get(tags["nan"]).path)
        np.save(stored / "model" / "counts.npy", np.full(N_ITEMS, np.nan, dtype=np.float32))
        yield {"tmp": tmp, "tags": tags}


def release(path: Path, tag: str, reason: str = "test") -> None:
    write_release(path, Release(model_tag=tag, registered_model="sessionflow-recommender", reason=reason))


def test_holder_switches_to_the_released_model_and_keeps_sessions(store, tmp_path):
    from bento.model_holder import ModelHolder

    rel = tmp_path / "release.json"
    holder = ModelHolder(store["tags"]["7"], ConversationConfig(), rel, interval_s=5)
    assert holder.current.model_version == "7" and holder.current.source == "bento argument"
    holder.current.engine.load_history("s1", ["1", "2"])
    assert holder.check() == {"changed": False, "serving": store["tags"]["7"]}  # no record yet

    release(rel, store["tags"]["8"], "promoted by the gate")
    outcome = holder.check()
    assert outcome["changed"] and outcome["from_version"] == "7" and outcome["to_version"] == "8"
    assert holder.current.model_version == "8" and holder.current.predictor.model.name == "popularity"
    assert holder.current.engine.store.get("s1").history == ["1", "2"]  # the session survived the swap
    status = holder.status()
    assert status["reloads"] == 1 and status["last_reload"]["reason"] == "promoted by the gate"

    release(rel, store["tags"]["7"], "rollback")  # and back
    assert holder.check()["changed"] and holder.current.model_version == "7"


@pytest.mark.parametrize("broken", ["nan", "missing"])
def test_a_broken_model_is_never_served(store, tmp_path, broken):
    from bento.model_holder import ModelHolder

    rel = tmp_path / "release.json"
    holder = ModelHolder(store["tags"]["7"], ConversationConfig(), rel, interval_s=5)
    release(rel, store["tags"][broken])
    outcome = holder.check()
    assert not outcome["changed"] and outcome["serving"] == store["tags"]["7"]
    expected = "counts.npy: sha256" if broken == "nan" else "FileNotFoundError|model"
    assert re.search(expected, outcome["error"]), outcome["error"]
    assert holder.current.model_version == "7"
    status = holder.status()
    assert status["failures"] == 1 and status["last_failure"]["model_tag"] == store["tags"][broken]
    assert status["last_failure"]["kept_serving"] == store["tags"]["7"]
    assert holder.check()["skipped"] == store["tags"][broken]  # not retried every poll
    assert holder.status()["failures"] == 1
    assert "error" in holder.check(force=True)  # an explicit reload tries again (and fails again)


def test_a_service_started_after_a_rollback_serves_the_release(store, tmp_path):
    from bento.model_holder import ModelHolder

    rel = tmp_path / "release.json"
    release(rel, store["tags"]["8"])
    holder = ModelHolder(store["tags"]["7"], ConversationConfig(), rel, interval_s=5)
    assert holder.current.model_version == "8" and holder.current.source == "release record"
    release(rel, store["tags"]["nan"])
    broken_first = ModelHolder(store["tags"]["7"], ConversationConfig(), rel, interval_s=5)
    assert broken_first.current.model_version == "7" and broken_first.status()["failures"] == 1


def test_the_watcher_switches_by_itself(store, tmp_path):
    from bento.model_holder import ModelHolder

    rel = tmp_path / "release.json"
    holder = ModelHolder(store["tags"]["7"], ConversationConfig(), rel, interval_s=0.2)
    holder.start()
    try:
        release(rel, store["tags"]["8"])
        deadline = time.monotonic() + 30
        while holder.current.model_version != "8" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.current.model_version == "8"
    finally:
        holder.stop()
