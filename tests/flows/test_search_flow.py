"""The hyperparameter search flow on a local Dask cluster of two worker processes; an MLflow run per trial."""

import pytest

from tests.flows.test_pipeline_flow import _write_dataset


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.slow
def test_search_runs_trials_on_two_dask_workers_and_logs_each_to_mlflow(
    tmp_path, monkeypatch, prefect_harness
):
    import mlflow
    from mlflow import MlflowClient

    from flows.search import run_search

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    _write_dataset(tmp_path)
    overrides = {
        "search.model": "sasrec",
        "search.n_trials": 4,
        "search.parallel": 2,
        "search.runner": "dask",
        "search.workers": 2,
        "search.fixed": {"epochs": 2, "hidden_size": 16, "max_len": 8, "device": "cpu"},
        "search.space": {
            "lr": {"kind": "float", "low": 0.001, "high": 0.01, "log": True},
            "num_layers": {"kind": "int", "low": 1, "high": 2},
        },
    }
    result = run_search(params_file="params.yaml", root=str(tmp_path), overrides=overrides)
    trials = result["trials"]
    assert len(trials) == 4 and all(t["error"] is None for t in trials)
    assert len({t["worker_pid"] for t in trials}) == 2  # two Dask worker processes carried the trials
    assert result["best"]["objective"] == max(t["objective"] for t in trials)
    client = MlflowClient()
    for t in trials:
        run = client.get_run(t["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == result["parent_run_id"]
        assert run.data.metrics["objective"] == pytest.approx(t["objective"])
        assert "valid/ndcg_at_10" in run.data.metrics and "ndcg_at_10" in run.data.metrics
        assert run.info.status == "FINISHED"
    mlflow.set_tracking_uri(None)
