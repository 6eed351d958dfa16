"""The retraining loop end to end: flow run -> feedback through the log -> flow run on a new data version.

Tiny generated dataset, temporary Prefect API (prefect_test_harness), SQLite MLflow store and feedback log
in tmp dirs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from components.feedback_log import FEEDBACK_DB_ENV, FEEDBACK_URL_ENV, KEY_ENV, FeedbackLog

N_ITEMS = 30


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _write_project(root, n_users: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(0, N_ITEMS)
        for t in range(6):  # each user walks forward through the catalogue
            rows.append((f"u{u}", f"i{(start + t) % N_ITEMS}", 1_600_000_000 + u * 10_000 + t * 60, "click"))
    pd.DataFrame(rows, columns=["visitor", "sku", "ts", "kind"]).to_csv(root / "log.csv", index=False)
    pd.DataFrame(
        {"sku": [f"i{i}" for i in range(N_ITEMS)], "name": [f"Item {i}" for i in range(N_ITEMS)]}
    ).to_csv(root / "items.csv", index=False)
    spec = {
        "name": "tiny-loop",
        "format": "interactions-csv",
        "path": "log.csv",
        "timestamp_unit": "s",
        "columns": {"user_id": "visitor", "item_id": "sku", "timestamp": "ts", "event": "kind"},
        "items": {"path": "items.csv", "columns": {"item_id": "sku", "title": "name"}},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    params = {
        "data": {"dataset_spec": str(root / "spec.yaml"), "session_gap_minutes": 600},
        "features": {"sequence_key": "user", "text_embeddings": False},
        "train": {"models": ["popularity", "itemknn"]},
        "promote": {"registered_model": "tiny-loop-recommender", "max_latency_ms": 10_000},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _feedback_events() -> list[dict]:
    """Two chat sessions as the service logs them: 6 positive, 3 negative, 1 unknown item."""
    t0 = 1_600_500_000
    events = [
        {"user_id": "alice", "session_id": "chat-a", "item_id": f"i{i}", "event": "click"}
        for i in (3, 4, 5, 6)
    ]
    events += [
        {"user_id": "alice", "session_id": "chat-a", "item_id": "i9", "event": "dislike"},
        {"session_id": "chat-b", "item_id": "i10", "event": "like"},
        {"session_id": "chat-b", "item_id": "i11", "event": "skip"},
        {"session_id": "chat-b", "item_id": "i12", "event": "rating", "value": 2},
        {"session_id": "chat-b", "item_id": "i13", "event": "rating", "value": 5},
        {"session_id": "chat-b", "item_id": "no-such-item", "event": "click"},
    ]
    return [{**e, "timestamp": t0 + 60 * n} for n, e in enumerate(events)]


def test_feedback_becomes_a_new_data_version(tmp_path, monkeypatch, prefect_harness):
    import mlflow
    from mlflow import MlflowClient

    from flows.pipeline import training_pipeline

    db = tmp_path / "service" / "feedback.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv(FEEDBACK_DB_ENV, str(db))
    monkeypatch.setenv(KEY_ENV, "test-key")
    monkeypatch.delenv(FEEDBACK_URL_ENV, raising=False)
    _write_project(tmp_path)
    snapshot = tmp_path / "data" / "feedback" / "tiny-loop" / "events.parquet"

    first = training_pipeline(params_file="params.yaml", root=str(tmp_path), package=False)
    assert snapshot.is_file() and pd.read_parquet(snapshot).empty  # written even before any feedback
    assert first.feedback.n_events == 0 and first.ingest.n_feedback_events == 0
    assert first.ingest.n_interactions == 240

    with FeedbackLog(f"sqlite:///{db}") as log:  # what the service's /feedback does
        log.append_many(_feedback_events())

    second = training_pipeline(params_file="params.yaml", root=str(tmp_path), package=False)
    assert second.data_hash != first.data_hash
    ingest = second.ingest
    assert ingest.n_feedback_events == 10 and ingest.n_feedback_negative_dropped == 3
    assert ingest.n_interactions == 240 + 7 and ingest.n_feedback_interactions == 7
    assert second.feedback.n_events == 10 and second.feedback.n_negative == 3
    # lineage: raw data unchanged, the feedback snapshot is what moved the data version
    assert second.lineage.data.raw_data_hash == first.lineage.data.raw_data_hash == first.data_hash
    assert second.lineage.data.feedback_hash == second.feedback.feedback_hash
    snap = pd.read_parquet(snapshot)
    assert len(snap) == 10 and set(snap["event"]) >= {"dislike", "skip"}  # negatives kept for analysis
    assert snap["user_id"].str.startswith("u_").all() and "alice" not in set(snap["user_id"])
    # the item the catalogue lacks is quarantined by the existing GX rule, the rest is clean
    assert second.validation["interactions.unknown_item"] == 1
    assert second.validation["interactions.n_rows_clean"] == 240 + 6
    quarantine = pd.read_csv(tmp_path / "data" / "quarantine" / "tiny-loop" / "quarantine.csv")
    assert quarantine.loc[quarantine["rule"] == "unknown_item", "item_id"].tolist() == ["no-such-item"]
    # the retrained candidates are tracked against the new data version
    parent = MlflowClient().get_run(second.parent_run_id)
    assert parent.data.tags.get("data_hash") == second.data_hash
    assert parent.data.tags.get("lineage.data.feedback_hash") == second.feedback.feedback_hash
    mlflow.set_tracking_uri(None)
