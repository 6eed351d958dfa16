"""Commands of the loop that keeps a deployment current: promote/rollback, monitor, forget, deploy, keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

ParamsOpt = Annotated[Path, typer.Option("--params", help="Settings file.")]
RootOpt = Annotated[Path, typer.Option("--root", help="Project folder (data/, artifacts/, mlflow.db).")]
keys_app = typer.Typer(help="Pseudonymisation keys of the feedback and request logs.", no_args_is_help=True)


def promote(
    version: Annotated[str, typer.Argument(help="Registered model version to make champion.")],
    note: Annotated[str, typer.Option(help="Why (recorded with the decision).")] = "",
    package: Annotated[bool, typer.Option(help="Package and release it (running services switch).")] = True,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Promote -- or roll back to -- any registered version: the champion alias moves, the decision is
    recorded like the gate's, and the version is packaged and released (running services switch to it)."""
    from cli.main import _env_defaults, _fail, _settings
    from flows.manual_promotion import promote_version
    from flows.package import package_champion
    from flows.tracking import configure_tracking

    _env_defaults(root)
    settings = _settings(params, root, {})
    configure_tracking(root.resolve())
    try:
        decision = promote_version(settings.promote, version, note, settings.evaluate.primary_metric)
        release = package_champion(settings, root.resolve(), reason=decision.reason) if package else None
    except (LookupError, ValueError, RuntimeError) as exc:
        _fail(exc)
    out = {
        "promoted": decision.promoted,
        "reason": decision.reason,
        "champion": decision.champion_version_after,
    }
    if release is not None:
        out["release"] = json.loads(release.model_dump_json())
    typer.echo(json.dumps(out, indent=2))


def monitor(
    window_hours: Annotated[
        float | None, typer.Option(help="Window (default: monitor.window_hours).")
    ] = None,
    retrain: Annotated[
        bool | None, typer.Option("--retrain/--no-retrain", help="Retrain when red (default: params.yaml).")
    ] = None,
    fail_on_red: Annotated[bool, typer.Option(help="Exit 2 when the report is red.")] = False,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Monitoring report over the last window of served requests and feedback: HTML under
    artifacts/monitoring/, metrics in MLflow (experiment sessionflow-monitoring)."""
    from cli.main import _env_defaults, _fail
    from flows.monitoring import monitoring_flow

    _env_defaults(root)
    try:
        summary = monitoring_flow(
            params_file=str(params),
            root=str(root.resolve()),
            window_hours=window_hours,
            retrain_on_red=retrain,
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(summary.model_dump_json(indent=2))
    if fail_on_red and summary.status == "red":
        raise typer.Exit(2)


def forget(
    user_or_session: Annotated[str, typer.Argument(help="Raw user id or session id to erase.")],
    service_url: Annotated[
        str | None, typer.Option("--service-url", help="Also reset the session in this running service.")
    ] = None,
    root: RootOpt = Path("."),
) -> None:
    """Remove a user's or session's events from the feedback and request logs, the feedback snapshots and
    derived training data; records that it happened (counts only, never the id)."""
    from cli.main import _env_defaults, _fail
    from sessionflow.forget import forget as run_forget

    _env_defaults(root)
    try:
        record = run_forget(root.resolve(), user_or_session, service_url=service_url)
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(exc)
    typer.echo(record.model_dump_json(indent=2))


def deploy(
    work_pool: Annotated[str | None, typer.Option(help="Process work pool (default: prefect.yaml).")] = None,
    root: RootOpt = Path("."),
) -> None:
    """Register the retraining and monitoring deployments, with their schedules, on the Prefect server at
    PREFECT_API_URL; `prefect worker start --pool sessionflow-process` then runs them."""
    from cli.main import _env_defaults, _fail
    from flows.schedule import deploy as run_deploy

    _env_defaults(root)
    try:
        registered = run_deploy(root.resolve(), work_pool)
    except (RuntimeError, ValueError) as exc:
        _fail(exc)
    typer.echo(json.dumps(registered, indent=2))


@keys_app.command("rotate")
def rotate(
    drop_retired: Annotated[
        bool, typer.Option(help="Also destroy the retired keys (old pseudonyms become unlinkable).")
    ] = False,
    root: RootOpt = Path("."),
) -> None:
    """Start pseudonymising with a new random key; older keys stay (retired) so `forget` still finds
    earlier rows, unless --drop-retired."""
    import os

    from cli.main import _fail
    from components.feedback_log import default_feedback_url, sqlite_path
    from components.pseudonyms import KEY_ENV, key_file_for, rotate_key_file

    url = default_feedback_url(root.resolve())
    if os.environ.get(KEY_ENV):
        message = f"the key comes from ${KEY_ENV}: rotate by setting a new one there and listing the old one"
        _fail(RuntimeError(f"{message} in $SESSIONFLOW_FEEDBACK_RETIRED_KEYS"))
    if not url.startswith("sqlite:"):
        _fail(RuntimeError(f"{url.split('://')[0]} feedback logs take their key from ${KEY_ENV}"))
    path = key_file_for(sqlite_path(url))
    counts = rotate_key_file(path, drop_retired)
    typer.echo(json.dumps({"key_file": str(path), **counts}, indent=2))


def register(app: typer.Typer) -> None:
    """Attach the loop's commands to the main app."""
    for command in (promote, monitor, forget, deploy):
        app.command()(command)
    app.add_typer(keys_app, name="keys")
