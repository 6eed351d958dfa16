"""The deployments declared in prefect.yaml point at the real flows with valid crons."""

import importlib

import pytest
from prefect.client.schemas.schedules import CronSchedule

from flows.schedule import deployment_specs, retrain_deployment_spec


@pytest.mark.parametrize(
    ("name", "flow_name", "cron"),
    [
        ("nightly-retrain", "sessionflow-pipeline", "0 2 * * *"),
        ("hourly-monitoring", "sessionflow-monitoring", "15 * * * *"),
    ],
)
def test_deployment_entrypoint_and_cron_are_valid(name, flow_name, cron):
    dep = deployment_specs()[name]
    module_path, func = dep["entrypoint"].split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    flow_obj = getattr(module, func)
    assert flow_obj.name == flow_name
    assert CronSchedule(cron=dep["schedules"][0]["cron"], timezone="UTC").cron == cron
    assert set(dep["parameters"]) <= set(flow_obj.parameters.properties)
    assert dep["concurrency_limit"] == 1


def test_retrain_spec_is_the_pipeline():
    assert retrain_deployment_spec()["entrypoint"] == "flows/pipeline.py:training_pipeline"
