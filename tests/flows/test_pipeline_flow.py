"""The Prefect flow end to end on a small generated dataset: validation, candidates in MLflow, champion.

Runs against a temporary Prefect API (prefect_test_harness) and a temporary SQLite MLflow store.
"""

import json

import numpy as np
import pandas as pd
import pytest
import yaml


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _write_dataset(root, n_users=60, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(0, n_items)
        for t in range(8):  # each user walks forward through the catalogue: a learnable pattern
            rows.append((f"u{u}", f"i{(start + t) % n_items}", 1_600_000_000 + u * 10_000 + t * 60, "click"))
    pd.DataFrame(rows, columns=["visitor", "sku", "ts", "kind"]).to_csv(root / "log.csv", index=False)
    pd.DataFrame(
        {
            "sku": [f"i{i}" for i in range(n_items)],
            "name": [f"Item {i}" for i in range(n_items)],
            "cats": ["a|b" if i % 2 else "c" for i in range(n_items)],
        }
    ).to_csv(root / "items.csv", index=False)
    spec = {
        "name": "tiny-shop",
        "format": "interactions-csv",
        "path": "log.csv",
        "timestamp_unit": "s",
        "columns": {"user_id": "visitor", "item_id": "sku", "timestamp": "ts", "event": "kind"},
        "items": {"path": "items.csv", "columns": {"item_id": "sku", "title": "name", "categories": "cats"}},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    params = {
        "data": {"dataset_spec": str(root / "spec.yaml"), "session_gap_minutes": 600},
        "features": {"sequence_key": "user", "text_embeddings": False},
        "train": {"models": ["popularity", "itemknn"]},
        "promote": {"registered_model": "tiny-shop-recommender", "max_latency_ms": 10_000},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_flow_trains_tracks_and_promotes(tmp_path, monkeypatch, prefect_harness):
    import mlflow
    from mlflow import MlflowClient

    from flows.pipeline import training_pipeline

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    _write_dataset(tmp_path)
    summary = training_pipeline(params_file="params.yaml", root=str(tmp_path), package=False)

    assert set(summary.candidates) == {"popularity", "itemknn"}
    assert summary.candidates["itemknn"].primary > summary.candidates["popularity"].primary
    assert summary.promotion.promoted is True
    client = MlflowClient()
    champion = client.get_model_version_by_alias("tiny-shop-recommender", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["model"] == "itemknn"
    assert run.data.tags["data_hash"] == summary.data_hash
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(summary.candidates["itemknn"].primary)
    # lineage: the data version on the run, created_at and the monitoring reference in the bundle
    assert run.data.tags["lineage.data.raw_data_hash"] == summary.lineage.data.raw_data_hash
    assert run.data.tags["lineage.data.data_hash"] == summary.data_hash
    from flows.mlflow_model import fetch_bundle

    bundle = fetch_bundle(f"models:/tiny-shop-recommender/{champion.version}", tmp_path / "fetched")
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["created_at"] and meta["lineage"]["data"]["data_hash"] == summary.data_hash
    reference = json.loads((bundle / "reference.json").read_text())
    assert reference["k"] == 10 and len(reference["item_popularity"]) == meta["n_items"]
    assert reference["scores"] and len(reference["scores"]) == len(reference["shown_popularity"])
    assert (tmp_path / "data" / "quarantine" / "tiny-shop" / "quarantine.csv").is_file()
    assert json.loads((tmp_path / "artifacts" / "last_pipeline.json").read_text())["parent_run_id"]

    # a second run on the same data: data stages come from the Prefect cache; the same-quality model
    # does not beat the champion by a margin, so the champion stays
    second = training_pipeline(
        params_file="params.yaml",
        root=str(tmp_path),
        package=False,
        overrides={"promote.min_improvement": 0.01},
    )
    assert second.promotion.promoted is False
    assert client.get_model_version_by_alias("tiny-shop-recommender", "champion").version == champion.version
    mlflow.set_tracking_uri(None)


def test_candidates_on_the_thread_runner_and_a_hybrid_that_reuses_them(
    tmp_path, monkeypatch, prefect_harness
):
    import mlflow

    from flows.pipeline import training_pipeline

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    _write_dataset(tmp_path)
    overrides = {
        "train.models": ["popularity", "itemknn", "hybrid"],
        "train.model_params": {"hybrid": {"members": ["popularity", "itemknn"]}},
        "train.runner": "threads",
        "train.workers": 2,
    }
    summary = training_pipeline(
        params_file="params.yaml", root=str(tmp_path), package=False, overrides=overrides
    )
    assert set(summary.candidates) == {"popularity", "itemknn", "hybrid"}
    assert not summary.failed_candidates
    bundles = {p.name for p in (tmp_path / "artifacts" / "candidates").iterdir() for p in p.iterdir()}
    assert bundles == {"popularity", "itemknn", "hybrid"}
    assert summary.primary_metric == "ndcg@10"
    assert summary.candidates["hybrid"].primary >= summary.candidates["popularity"].primary
    meta = json.loads(next((tmp_path / "artifacts" / "candidates").glob("*/hybrid/meta.json")).read_text())
    assert meta["fit_info"]["weights_fitted_on_validation"] is True
    assert set(meta["fit_info"]["weights"]) == {"popularity", "itemknn"}
    mlflow.set_tracking_uri(None)
