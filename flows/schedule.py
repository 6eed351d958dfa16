"""Scheduled retraining without a work pool: one long-lived process serving the pipeline on a cron.

`sessionflow schedule` calls ``serve_retraining``; prefect.yaml defines the same deployment for work pools.
"""

from __future__ import annotations

from pathlib import Path

import yaml

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


def retrain_deployment_spec(path: Path = PREFECT_YAML) -> dict:
    """The nightly-retrain deployment as declared in prefect.yaml (single source of the cron)."""
    spec = yaml.safe_load(path.read_text())
    for dep in spec.get("deployments", []):
        if dep["name"] == "nightly-retrain":
            return dep
    raise ValueError(f"{path} declares no 'nightly-retrain' deployment")


def serve_retraining(root: str, cron: str | None = None) -> None:
    """Serve the pipeline with the cron from prefect.yaml (or ``cron``); blocks until interrupted."""
    from flows.pipeline import training_pipeline

    dep = retrain_deployment_spec()
    schedule = cron or dep["schedules"][0]["cron"]
    params = {**dep.get("parameters", {}), "root": root}
    training_pipeline.serve(name=dep["name"], cron=schedule, parameters=params, limit=1)
