"""The scheduled loop: retraining and monitoring deployments, declared once in prefect.yaml.

- ``sessionflow deploy`` (``deploy``) registers both deployments with their cron schedules on a Prefect
  server (``PREFECT_API_URL``), creating the process work pool if needed; a worker
  (``prefect worker start --pool sessionflow-process``) then runs them from the project folder.
- ``sessionflow schedule`` (``serve_schedules``) is the server-less alternative: one long-lived process
  serving both flows on the same crons (``prefect.serve``).

prefect.yaml stays usable on its own (``prefect deploy --all``): it is the single source of the names,
entrypoints, parameters and crons both paths read.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
RETRAIN_DEPLOYMENT = "nightly-retrain"
MONITOR_DEPLOYMENT = "hourly-monitoring"


def deployment_specs(path: Path = PREFECT_YAML) -> dict[str, dict[str, Any]]:
    """The deployments declared in prefect.yaml, by name."""
    spec = yaml.safe_load(path.read_text()) or {}
    deployments = {dep["name"]: dep for dep in spec.get("deployments", [])}
    for name in (RETRAIN_DEPLOYMENT, MONITOR_DEPLOYMENT):
        if name not in deployments:
            raise ValueError(f"{path} declares no {name!r} deployment")
    return deployments


def retrain_deployment_spec(path: Path = PREFECT_YAML) -> dict[str, Any]:
    """The nightly-retrain deployment as declared in prefect.yaml (single source of the cron)."""
    return deployment_specs(path)[RETRAIN_DEPLOYMENT]


def deployment_name(spec: dict[str, Any]) -> str:
    """``<flow name>/<deployment name>`` as Prefect addresses a deployment (e.g. in run_deployment)."""
    return f"{_load_flow(spec['entrypoint']).name}/{spec['name']}"


def deploy(root: str | Path, work_pool: str | None = None) -> list[dict[str, Any]]:
    """Register the retraining and monitoring deployments with their schedules on the Prefect server at
    ``PREFECT_API_URL``; the flows run from ``root`` (the project folder). Returns what was registered."""
    from prefect import Flow
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise RuntimeError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (an ephemeral API cannot hold deployments)"
        )
    root = Path(root).resolve()
    registered = []
    for spec in deployment_specs().values():
        pool = work_pool or spec.get("work_pool", {}).get("name", "sessionflow-process")
        _ensure_process_pool(pool)
        source = Flow.from_source(source=str(PROJECT_ROOT), entrypoint=spec["entrypoint"])
        schedule = spec["schedules"][0]
        parameters = {**spec.get("parameters", {}), "root": str(root)}
        with contextlib.redirect_stdout(sys.stderr):  # Prefect prints a table; stdout stays machine-readable
            deployment_id = source.deploy(
                name=spec["name"],
                work_pool_name=pool,
                cron=schedule["cron"],
                parameters=parameters,
                description=spec.get("description"),
                concurrency_limit=spec.get("concurrency_limit"),
                build=False,
                push=False,
                print_next_steps=False,
                ignore_warnings=True,  # the "process pool: consider .serve" hint on stdout
            )
        registered.append(
            {
                "deployment": f"{source.name}/{spec['name']}",
                "id": str(deployment_id),
                "cron": schedule["cron"],
                "work_pool": pool,
                "parameters": parameters,
            }
        )
    return registered


def serve_schedules(root: str, retrain_cron: str | None = None, monitor_cron: str | None = None) -> None:
    """Serve retraining and monitoring on their crons from prefect.yaml in this process (blocks)."""
    from prefect import serve

    specs = deployment_specs()
    crons = {RETRAIN_DEPLOYMENT: retrain_cron, MONITOR_DEPLOYMENT: monitor_cron}
    deployments = []
    for name, spec in specs.items():
        flow_obj = _load_flow(spec["entrypoint"])
        deployments.append(
            flow_obj.to_deployment(
                name=name,
                cron=crons.get(name) or spec["schedules"][0]["cron"],
                parameters={**spec.get("parameters", {}), "root": root},
                concurrency_limit=spec.get("concurrency_limit"),
            )
        )
    serve(*deployments, limit=1)


def _load_flow(entrypoint: str) -> Any:
    import importlib

    module_path, func = entrypoint.split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    return getattr(module, func)


def _ensure_process_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # created concurrently
                client.create_work_pool(WorkPoolCreate(name=name, type="process"))
