"""The monitoring flow: report over the last window (sessionflow/monitor.py), logged to MLflow (experiment
``sessionflow-monitoring``: metrics ``monitor/<name>``, the HTML and plots as artifacts, the status as a tag
on the run and on the serving model version), and -- when the report is red and ``monitor.retrain_on_red``
-- the retraining started: the ``nightly-retrain`` deployment when a Prefect server has it, else the
pipeline in this process.

Scheduled next to retraining (prefect.yaml ``hourly-monitoring``; ``sessionflow deploy`` / ``schedule``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from components.config import Settings, load_settings
from sessionflow.monitor import MonitorResult, run_monitor

EXPERIMENT = "sessionflow-monitoring"


class MonitoringSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str
    broken: list[str]
    html: str
    mlflow_run_id: str | None
    retrain: str | None
    metrics: dict[str, float | None]


@flow(name="sessionflow-monitoring", log_prints=True)
def monitoring_flow(
    params_file: str = "params.yaml",
    root: str = ".",
    window_hours: float | None = None,
    retrain_on_red: bool | None = None,
) -> MonitoringSummary:
    """Report the last window, log it, and start a retrain when it is red (and that is switched on)."""
    root_path = Path(root).resolve()
    settings = load_settings(root_path / params_file)
    result = monitor_task(settings, root_path, window_hours)
    run_id = log_monitoring(result, root_path)
    broken = [c.metric for c in result.numbers.broken]
    retrain = None
    wanted = settings.monitor.retrain_on_red if retrain_on_red is None else retrain_on_red
    if result.numbers.red and wanted:
        retrain = trigger_retrain(params_file, str(root_path), reason=f"monitoring red: {', '.join(broken)}")
    get_run_logger().info("monitoring %s (%s); report %s", result.numbers.status, broken or "ok", result.html)
    return MonitoringSummary(
        status=result.numbers.status,
        broken=broken,
        html=result.html,
        mlflow_run_id=run_id,
        retrain=retrain,
        metrics=result.numbers.metrics,
    )


@task(cache_policy=NO_CACHE)
def monitor_task(settings: Settings, root: Path, window_hours: float | None) -> MonitorResult:
    return run_monitor(settings, root, window_hours)


def log_monitoring(result: MonitorResult, root: Path) -> str:
    """One MLflow run per report: metrics, status tags, the HTML + PNGs + numbers.json as artifacts."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from flows.tracking import ROLE_TAG, configure_tracking, get_or_create_experiment, metric_key

    configure_tracking(root)
    client = MlflowClient()
    n = result.numbers
    run = client.create_run(
        get_or_create_experiment(EXPERIMENT, client),
        run_name=f"monitor-{n.window_end[:19]}",
        tags={
            ROLE_TAG: "monitoring",
            "monitor.status": n.status,
            "monitor.model_tag": n.model_tag or "",
            "monitor.window_start": n.window_start,
            "monitor.window_end": n.window_end,
            "monitor.broken": ",".join(c.metric for c in n.broken),
            "monitor.reference": result.reference_source,
        },
    )
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(metric_key(f"monitor/{k}"), float(v), now, 0) for k, v in n.metrics.items() if v is not None
    ]
    client.log_batch(run_id, metrics=metrics)
    client.log_artifacts(run_id, result.report_dir, "report")
    client.set_terminated(run_id, "FINISHED")
    _tag_model_version(client, n.model_tag, n.status, run_id)
    return run_id


def _tag_model_version(client: Any, model_tag: str | None, status: str, run_id: str) -> None:
    """The serving model's registered version gets the latest monitoring status (when it is known)."""
    if not model_tag:
        return
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        labels = bentoml.models.get(model_tag).info.labels
    except NotFound:
        return
    name, version = labels.get("registered_model"), labels.get("mlflow_model_version")
    if not (name and version):
        return
    from mlflow.exceptions import MlflowException

    try:
        client.set_model_version_tag(name, version, "monitoring.status", status)
        client.set_model_version_tag(name, version, "monitoring.run_id", run_id)
    except MlflowException as exc:  # registered in another tracking store: the run still has it all
        logging.getLogger(__name__).warning("could not tag %s version %s: %s", name, version, exc.message)


def trigger_retrain(params_file: str, root: str, reason: str) -> str:
    """Start the retraining deployment on the Prefect server (returns at once), else run the pipeline here."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from flows.schedule import deployment_name, retrain_deployment_spec

    logger = get_run_logger()
    spec = retrain_deployment_spec()
    name = deployment_name(spec)
    try:
        run = run_deployment(name, timeout=0, tags=["monitoring-red"])
        logger.warning("%s: started %s (flow run %s)", reason, name, run.id)
        return f"deployment {name}: flow run {run.id}"
    except ObjectNotFound:
        logger.warning("%s: no deployment %s on this Prefect API; running the pipeline here", reason, name)
    from flows.pipeline import training_pipeline

    summary = training_pipeline(params_file=params_file, root=root, package=True)
    return f"in process: {summary.promotion.reason}"
