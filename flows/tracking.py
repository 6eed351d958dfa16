"""MLflow tracking for the training pipeline: one parent run per pipeline, one nested child run per candidate.

Metric names keep the project's spelling in code (``ndcg@10``); MLflow forbids ``@``, so they are logged as
``ndcg_at_10`` (``metric_key``) and read back with ``metric_name``. Final metrics are logged at step 0
(MLflow copies them onto the LoggedModel); per-epoch curves as ``curve/<name>`` with ``step`` = epoch
(1-based). A candidate run gets the tag ``sessionflow.complete=true`` only after its
params, metrics, artifacts and model are all logged, so promotion can tell a complete run from a partial one.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

COMPLETE_TAG = "sessionflow.complete"
ROLE_TAG = "sessionflow.role"
MODEL_URI_TAG = "sessionflow.model_uri"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
_PARENT_TAG = "mlflow.parentRunId"
_RUN_NAME_TAG = "mlflow.runName"
_MAX_PARAM_LEN = 6000


@dataclass
class CandidateResult:
    """One trained and evaluated candidate, as the flow hands it to tracking and promotion."""

    model_name: str
    bundle_dir: Path
    metrics: dict[str, float]
    params: dict[str, Any]
    curves: dict[str, list[float]] = field(default_factory=dict)
    train_seconds: float = 0.0
    epochs: int = 0
    device: str = "cpu"
    data_hash: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)  # sessionflow.results.Lineage as a dict


# ----------------------------------------------------------------------------------------------- names


def metric_key(name: str) -> str:
    """MLflow-safe metric/param key: ``ndcg@10`` -> ``ndcg_at_10`` (``/`` is kept, it groups in the UI)."""
    return name.replace("@", "_at_")


def metric_name(key: str) -> str:
    """Inverse of ``metric_key``."""
    return key.replace("_at_", "@")


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"a.b": "value"}`` with string values cut to MLflow's param length limit."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{metric_key(str(key))}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text[:_MAX_PARAM_LEN]
    return flat


# ----------------------------------------------------------------------------------------------- setup


def configure_tracking(root: str | Path) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` when set, else at ``sqlite:///<root>/mlflow.db``.

    Artifacts of experiments created through this module go to ``<db folder>/mlartifacts`` for sqlite
    stores (a server decides for itself). Returns the tracking URI.
    """
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        root = Path(root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root / DB_FILE}"
    mlflow.set_tracking_uri(uri)
    return uri


def artifact_root(tracking_uri: str) -> str | None:
    """``file://<db folder>/mlartifacts`` for a sqlite tracking URI; None (store default) otherwise."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db_path = tracking_uri[len(prefix) :].split("?")[0]
    if not db_path or db_path == ":memory:":
        return None
    return (Path(db_path).resolve().parent / ARTIFACTS_DIR).as_uri()


def get_or_create_experiment(name: str, client: MlflowClient | None = None) -> str:
    """Experiment id of ``name``; created with the artifact location of ``artifact_root`` if missing."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    root = artifact_root(mlflow.get_tracking_uri())
    location = f"{root}/{name}" if root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created concurrently by another task
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


# ------------------------------------------------------------------------------------------- pipeline run


def lineage_tags(lineage: Mapping[str, Any]) -> dict[str, str]:
    """``{"data": {"data_hash": h}}`` -> ``{"lineage.data.data_hash": h}`` (None values left out)."""
    return {f"lineage.{k}": v for k, v in flatten(lineage).items() if v not in ("null", "")}


def start_pipeline_run(
    experiment: str, dataset: str, data_hash: str, settings: dict, lineage: Mapping[str, Any] | None = None
) -> str:
    """Create the parent run (left RUNNING until ``end_pipeline_run``); returns its id."""
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = get_or_create_experiment(experiment, client)
    run = client.create_run(
        experiment_id,
        run_name=f"pipeline-{dataset}-{data_hash[:8]}",
        tags={
            ROLE_TAG: "pipeline",
            "dataset": dataset,
            "data_hash": data_hash,
            **lineage_tags(lineage or {}),
        },
    )
    run_id = run.info.run_id
    _log_params(client, run_id, flatten(settings))
    _log_json(client, run_id, settings, "settings.json")
    return run_id


def end_pipeline_run(parent_run_id: str, status: str = "FINISHED") -> None:
    """Close the parent run with ``status`` (FINISHED, FAILED or KILLED)."""
    from mlflow import MlflowClient

    MlflowClient().set_terminated(parent_run_id, status=status)


# ------------------------------------------------------------------------------------------ candidate run


def log_candidate(result: CandidateResult, parent_run_id: str, experiment: str) -> tuple[str, str]:
    """Log one candidate as a nested child run of ``parent_run_id``; returns ``(run_id, model_uri)``.

    A failure while logging leaves the run FAILED and without the completion tag.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id or get_or_create_experiment(experiment, client)
    tags = {
        _PARENT_TAG: parent_run_id,
        ROLE_TAG: "candidate",
        "model": result.model_name,
        "dataset": parent.data.tags.get("dataset", ""),
        "data_hash": result.data_hash,
        "device": result.device,
        **lineage_tags(result.lineage),
    }
    run = client.create_run(experiment_id, run_name=result.model_name, tags=tags)
    run_id = run.info.run_id
    with mlflow.start_run(run_id=run_id, nested=True):  # FAILED on exception, FINISHED on exit
        params = {"model": result.model_name, **flatten(result.params)}
        params.update(flatten(result.protocol, prefix="protocol."))
        _log_params(client, run_id, params)
        _log_curves(client, run_id, result.curves)
        final = {**result.metrics, "train_seconds": result.train_seconds, "epochs": float(result.epochs)}
        _log_metrics(client, run_id, final)  # step 0: log_model links step-0 metrics to the LoggedModel
        _log_json(client, run_id, result.settings, "settings.json")
        _log_json(client, run_id, result.protocol, "protocol.json")
        _log_json(client, run_id, result.metrics, "metrics.json")
        if result.curves:
            with tempfile.TemporaryDirectory() as tmp:
                png = plot_curves(result.curves, Path(tmp) / "training_curves.png", title=result.model_name)
                client.log_artifact(run_id, str(png), "plots")
        info = _log_model(result, run_id)
        client.set_tag(run_id, MODEL_URI_TAG, info.model_uri)
        client.set_tag(run_id, COMPLETE_TAG, "true")
    return run_id, info.model_uri


def _log_model(result: CandidateResult, run_id: str) -> Any:
    from flows.mlflow_model import log_bundle_model

    model_tags = {"model": result.model_name, "data_hash": result.data_hash, "run_id": run_id}
    model_params = {k: v for k, v in flatten(result.params).items() if len(v) <= 1000}
    return log_bundle_model(result.bundle_dir, name=result.model_name, tags=model_tags, params=model_params)


# ------------------------------------------------------------------------------------------- comparison


def log_comparison(
    results: list[tuple[CandidateResult, str]],
    parent_run_id: str,
    primary_metric: str,
    out_dir: str | Path | None = None,
) -> Path:
    """Bar chart + table of all candidates on the parent run; returns the local PNG path.

    The PNG and ``candidates.csv``/``candidates.json`` are written to ``out_dir`` (a new temp folder when
    None) and logged under ``comparison/``. The best candidate by ``primary_metric`` is tagged on the parent.
    """
    import pandas as pd
    from mlflow import MlflowClient

    client = MlflowClient()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="sessionflow-comparison-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "model": r.model_name,
            "run_id": run_id,
            "train_seconds": r.train_seconds,
            "epochs": r.epochs,
            "device": r.device,
            **r.metrics,
        }
        for r, run_id in results
    ]
    table = pd.DataFrame(rows)
    table.to_csv(out / "candidates.csv", index=False)
    (out / "candidates.json").write_text(json.dumps(rows, indent=2, default=_json_default))
    shown = _comparison_metrics(primary_metric, table.columns)
    png = plot_comparison(table, shown, out / "comparison.png", primary_metric)
    for path in (png, out / "candidates.csv", out / "candidates.json"):
        client.log_artifact(parent_run_id, str(path), "comparison")
    scored = [(r, run_id) for r, run_id in results if _finite(r.metrics.get(primary_metric))]
    if scored:
        best, best_run = max(scored, key=lambda pair: pair[0].metrics[primary_metric])
        client.set_tag(parent_run_id, "best_model", best.model_name)
        client.set_tag(parent_run_id, "best_run_id", best_run)
        _log_metrics(client, parent_run_id, {f"best/{primary_metric}": best.metrics[primary_metric]})
    return png


def _comparison_metrics(primary_metric: str, columns: Iterable[str]) -> list[str]:
    k = primary_metric.split("@")[1] if "@" in primary_metric else "10"
    wanted = [primary_metric, f"hr@{k}", f"mrr@{k}", f"ndcg@{k}", f"recall@{k}", f"coverage@{k}"]
    available = set(columns)
    return list(dict.fromkeys(m for m in wanted if m in available))


# ------------------------------------------------------------------------------------------------ plots


def plot_curves(curves: Mapping[str, list[float]], path: str | Path, title: str = "") -> Path:
    """One panel per curve against epoch (1-based); written as PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n, values in curves.items() if values]
    fig = Figure(figsize=(4.5 * max(len(names), 1), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=False):
        values = curves[name]
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_comparison(table: Any, metrics: list[str], path: str | Path, primary_metric: str) -> Path:
    """Grouped bars: one group per metric, one bar per candidate; the primary metric comes first."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.6 * len(metrics) + 0.4 * len(table)), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    n = max(len(table), 1)
    width = 0.8 / n
    x = np.arange(len(metrics))
    for i, (_, row) in enumerate(table.iterrows()):
        values = [float(row[m]) if _finite(row.get(m)) else 0.0 for m in metrics]
        ax.bar(x + (i - (n - 1) / 2) * width, values, width, label=str(row["model"]))
    ax.set_xticks(x, metrics)
    ax.set_title(f"candidates (primary: {primary_metric})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------------------------------- helpers


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def _log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(metric_key(k), float(v), now, step) for k, v in metrics.items() if isinstance(v, numbers.Real)
    ]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


def _log_curves(client: MlflowClient, run_id: str, curves: Mapping[str, list[float]]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(metric_key(f"curve/{name}"), float(v), now + epoch, epoch)
        for name, values in curves.items()
        for epoch, v in enumerate(values, start=1)
    ]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


def _log_json(client: MlflowClient, run_id: str, payload: Any, filename: str) -> None:
    client.log_text(run_id, json.dumps(payload, indent=2, default=_json_default), filename)
