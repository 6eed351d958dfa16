"""Tracking: parent/child runs, metrics, curves, artifacts, and the pyfunc bundle model round trip."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.tracking import (
    COMPLETE_TAG,
    CandidateResult,
    artifact_root,
    configure_tracking,
    flatten,
    metric_key,
    metric_name,
)
from tests.flows import make_bundle, use_tracking

mlflow = pytest.importorskip("mlflow")

EXPERIMENT = "sessionflow-test"


@pytest.fixture()
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from use_tracking(tmp_path / "mlruns-root", monkeypatch)


def candidate(bundle: Path, name: str = "itemknn", ndcg: float = 0.3) -> CandidateResult:
    return CandidateResult(
        model_name=name,
        bundle_dir=bundle,
        metrics={
            "ndcg@10": ndcg,
            "hr@10": 0.5,
            "mrr@10": 0.2,
            "coverage@10": 0.4,
            "latency_p95_ms": 3.0,
            "short/ndcg@10": 0.25,
            "long/ndcg@10": 0.35,
        },
        params={"neighbours": 5, "optim": {"lr": 0.001, "betas": [0.9, 0.98]}},
        curves={"loss": [1.0, 0.7, 0.5], "valid_ndcg@10": [0.1, 0.2, 0.3]},
        train_seconds=1.5,
        epochs=3,
        device="cpu",
        data_hash="hash-1",
        protocol={"split": "leave-one-out", "ks": [5, 10], "exclude_seen": True, "full_ranking": True},
        settings={"train": {"models": [name]}, "evaluate": {"primary_metric": "ndcg@10"}},
    )


def test_names_and_flatten() -> None:
    assert metric_key("short/ndcg@10") == "short/ndcg_at_10"
    assert metric_name(metric_key("coverage@10")) == "coverage@10"
    flat = flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f@5": None})
    assert flat == {"a.b": "1", "a.c.d": "x", "e": "[1, 2]", "f_at_5": "null"}


def test_configure_tracking_fresh_dir_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "fresh" / "nested"
    uri = configure_tracking(root)
    assert uri == f"sqlite:///{root.resolve() / 'mlflow.db'}"
    assert artifact_root(uri) == (root.resolve() / "mlartifacts").as_uri()
    env_uri = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_uri)
    assert configure_tracking(root) == env_uri
    assert mlflow.get_tracking_uri() == env_uri
    assert artifact_root("http://localhost:5000") is None
    mlflow.set_tracking_uri(None)


def test_log_candidate_and_model_round_trip(tracking: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from components.bundle import Predictor
    from flows.mlflow_model import fetch_bundle
    from flows.tracking import end_pipeline_run, log_candidate, log_comparison, start_pipeline_run

    bundle = make_bundle(tmp_path / "bundle")
    parent = start_pipeline_run(EXPERIMENT, "tiny", "hash-1", {"data": {"dataset": "tiny"}})
    result = candidate(bundle)
    run_id, model_uri = log_candidate(result, parent, EXPERIMENT)
    other = candidate(make_bundle(tmp_path / "pop", "popularity"), "popularity", ndcg=0.1)
    with mlflow.start_run(run_id=parent):  # a caller's active run does not get in the way
        other_id, _ = log_candidate(other, parent, EXPERIMENT)
        assert mlflow.active_run().info.run_id == parent
    png = log_comparison([(result, run_id), (other, other_id)], parent, "ndcg@10", out_dir=tmp_path / "cmp")
    end_pipeline_run(parent)

    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags[COMPLETE_TAG] == "true"
    assert {run.data.tags[k] for k in ("model", "dataset", "data_hash", "device")} == {
        "itemknn",
        "tiny",
        "hash-1",
        "cpu",
    }
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(0.3)
    assert run.data.metrics["short/ndcg_at_10"] == pytest.approx(0.25)
    assert run.data.params["optim.lr"] == "0.001"
    assert run.data.params["protocol.split"] == "leave-one-out"
    history = client.get_metric_history(run_id, "curve/valid_ndcg_at_10")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 0.1),
        (2, 0.2),
        (3, 0.3),
    ]
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {
        a.path for a in client.list_artifacts(run_id, "plots")
    }
    assert {"settings.json", "protocol.json", "metrics.json", "plots/training_curves.png"} <= artifacts
    assert model_uri.startswith("models:/m-")
    assert str(artifact_root(tracking)).startswith("file://")

    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags["best_model"] == "itemknn"
    assert png.is_file() and (tmp_path / "cmp" / "candidates.csv").is_file()
    assert {a.path for a in client.list_artifacts(parent, "comparison")} == {
        "comparison/comparison.png",
        "comparison/candidates.csv",
        "comparison/candidates.json",
    }
    # artifacts live next to the sqlite db, not in the working directory
    assert any((Path(tracking.removeprefix("sqlite:///")).parent / "mlartifacts").rglob("MLmodel"))

    # the logged model reloads as pyfunc and predicts
    loaded = mlflow.pyfunc.load_model(model_uri)
    out = loaded.predict(pd.DataFrame({"items": [["i0", "i1"], ["i6", "zzz"]], "k": [3, 2]}))
    assert list(out.columns) == ["request", "rank", "item_id", "title", "score"]
    assert out.groupby("request").size().to_dict() == {0: 3, 1: 2}
    assert not set(out[out.request == 0].item_id) & {"i0", "i1"}
    assert len(loaded.predict(pd.DataFrame({"items": [["i0"]]}), params={"k": 2})) == 2  # k as a param

    # fetch_bundle + Predictor give the original model's scores
    fetched = fetch_bundle(model_uri, tmp_path / "fetched")
    original, again = Predictor.load(bundle), Predictor.load(fetched)
    histories = [[0, 1], [6], []]
    np.testing.assert_array_equal(original.model.score(histories), again.model.score(histories))
    top = original.recommend(["i0", "i1"], k=3)
    assert [r.item_id for r in top.items] == list(out[out.request == 0].item_id)
    assert [r.score for r in top.items] == pytest.approx(list(out[out.request == 0].score))


def test_failed_logging_leaves_run_failed_and_incomplete(tracking: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from flows.tracking import log_candidate, start_pipeline_run

    parent = start_pipeline_run(EXPERIMENT, "tiny", "hash-1", {})
    broken = candidate(tmp_path / "no-bundle-here")
    with pytest.raises(ValueError, match="not a sessionflow model bundle"):
        log_candidate(broken, parent, EXPERIMENT)
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert COMPLETE_TAG not in runs[0].data.tags
    assert math.isclose(
        runs[0].data.metrics["ndcg_at_10"], 0.3
    )  # partial logging happened before the failure
