"""`sessionflow deploy` against a real temporary Prefect server: the retraining and monitoring deployments
with their cron schedules; then a red monitoring report starts the retraining deployment on that server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.flows import use_tracking
from tests.flows.prefect_server import drain_prefect_workers, prefect_server

pytestmark = pytest.mark.slow  # a real server start + the console script: about a minute on 2 cores

SCHEDULES = {
    "sessionflow-pipeline/nightly-retrain": "0 2 * * *",
    "sessionflow-monitoring/hourly-monitoring": "15 * * * *",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


@pytest.fixture(scope="module")
def deployed(server, tmp_path_factory):
    """`sessionflow deploy` run as a user runs it (the console script, PREFECT_API_URL set)."""
    root = tmp_path_factory.mktemp("project")
    env = {
        **os.environ,
        "PREFECT_API_URL": server,
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    exe = Path(sys.executable).with_name("sessionflow")
    proc = subprocess.run(
        [str(exe), "deploy", "--root", str(root)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"root": root, "url": server, "registered": json.loads(proc.stdout)}


def client_for(url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Client:
        def __enter__(self):
            self._settings = temporary_settings(updates={PREFECT_API_URL: url})
            self._settings.__enter__()
            self._client = get_client(sync_client=True)
            return self._client.__enter__()

        def __exit__(self, *exc):
            self._client.__exit__(*exc)
            self._settings.__exit__(*exc)

    return _Client()


def test_deploy_registers_both_deployments_with_their_schedules(deployed):
    assert {r["deployment"]: r["cron"] for r in deployed["registered"]} == SCHEDULES
    with client_for(deployed["url"]) as client:
        for name, cron in SCHEDULES.items():
            dep = client.read_deployment_by_name(name)
            assert [s.schedule.cron for s in dep.schedules] == [cron]
            assert all(s.active for s in dep.schedules)
            assert dep.work_pool_name == "sessionflow-process"
            assert dep.parameters["root"] == str(deployed["root"])
            limit = (
                dep.global_concurrency_limit.limit if dep.global_concurrency_limit else dep.concurrency_limit
            )
            assert limit == 1
            assert dep.entrypoint in (
                "flows/pipeline.py:training_pipeline",
                "flows/monitoring.py:monitoring_flow",
            )
        assert client.read_work_pool("sessionflow-process").type == "process"


def test_deploy_without_a_server_says_what_to_do(tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.schedule import deploy

    with (
        temporary_settings(updates={PREFECT_API_URL: None}),
        pytest.raises(RuntimeError, match="server start"),
    ):
        deploy(tmp_path)


def test_a_red_report_starts_the_retraining_deployment(deployed, tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from components.feedback_log import FEEDBACK_DB_ENV, FEEDBACK_URL_ENV
    from components.request_log import RequestLog
    from flows.monitoring import EXPERIMENT, monitoring_flow
    from tests.service import isolated_bentoml_home

    for _ in use_tracking(tmp_path, monkeypatch):
        break
    monkeypatch.setenv(FEEDBACK_DB_ENV, str(tmp_path / "data" / "feedback" / "feedback.db"))
    monkeypatch.delenv(FEEDBACK_URL_ENV, raising=False)
    params = {"monitor": {"min_requests": 3, "max_unknown_id_share": 0.2, "retrain_on_red": True}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    log = RequestLog(tmp_path / "data" / "feedback" / "requests.db", start=False)
    for n in range(4):  # every requested id is unknown to the model: red
        log.record("recommend", items=[f"new-{n}"], unknown=[f"new-{n}"], shown=["1"], scores=[0.1])
    log.close()

    with (
        isolated_bentoml_home(tmp_path / "bentoml"),
        temporary_settings(updates={PREFECT_API_URL: deployed["url"]}),
    ):
        try:
            summary = monitoring_flow(params_file="params.yaml", root=str(tmp_path))
        finally:
            drain_prefect_workers(deployed["url"])  # before the module's server goes away
    assert summary.status == "red" and summary.broken == ["unknown_id_share"], summary
    assert summary.metrics["requests"] == 4 and summary.metrics["unknown_id_share"] == 1.0
    assert summary.retrain and summary.retrain.startswith("deployment sessionflow-pipeline/nightly-retrain")
    assert Path(summary.html).is_file() and "BROKEN" in Path(summary.html).read_text()

    with client_for(deployed["url"]) as client:
        dep = client.read_deployment_by_name("sessionflow-pipeline/nightly-retrain")
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
    assert [r.tags for r in runs] == [["monitoring-red"]]

    run = MlflowClient().get_run(summary.mlflow_run_id)
    assert run.data.tags["monitor.status"] == "red" and run.data.metrics["monitor/unknown_id_share"] == 1.0
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == EXPERIMENT
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "report")}
    assert "report/report.html" in artifacts and "report/exposure.png" in artifacts
