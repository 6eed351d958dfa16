"""The retraining deployment declared in prefect.yaml points at the real flow with a valid cron."""

import importlib

from prefect.client.schemas.schedules import CronSchedule

from flows.schedule import retrain_deployment_spec


def test_deployment_entrypoint_and_cron_are_valid():
    dep = retrain_deployment_spec()
    module_path, func = dep["entrypoint"].split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    flow_obj = getattr(module, func)
    assert flow_obj.name == "sessionflow-pipeline"
    cron = dep["schedules"][0]["cron"]
    assert CronSchedule(cron=cron, timezone="UTC").cron == "0 2 * * *"
    assert set(dep["parameters"]) <= set(flow_obj.parameters.properties)
