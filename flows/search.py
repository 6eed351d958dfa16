"""Hyperparameter search as a Prefect flow: Optuna proposes, a task runner (Dask by default) trains, MLflow
records one run per trial.

    data stages (cached, as in the pipeline) -> for each batch of `search.parallel` trials:
        Optuna ask (TPE, seeded) -> trial tasks on the runner (local Dask cluster of `search.workers`
        processes, or a scheduler at `search.dask_address`) -> Optuna tell (validation metric)
        -> one MLflow child run per trial (params, validation and test metrics, curves)

The objective is the validation metric (``search.metric`` on the validation split); test metrics are
logged for reading, never optimised. Settings: the ``search`` section of params.yaml.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.config import SearchConfig, Settings, load_settings
from sessionflow import stages


def suggest(trial: Any, cfg: SearchConfig) -> dict[str, Any]:
    """One point of ``cfg.space`` from an Optuna trial."""
    params: dict[str, Any] = {}
    for name, p in cfg.space.items():
        if p.kind == "categorical":
            params[name] = trial.suggest_categorical(name, p.choices)
        elif p.kind == "int":
            params[name] = trial.suggest_int(name, int(p.low or 0), int(p.high or 0), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low or 0.0), float(p.high or 0.0), log=p.log)
    return params


@task(cache_policy=NO_CACHE)
def trial_task(
    number: int, params: dict[str, Any], settings: Settings, root: Path, torch_threads: int | None
) -> dict[str, Any]:
    """Train + evaluate one trial's config (no bundle: the search only measures)."""
    from components.train import train_and_evaluate

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    fs, _, data_hash = stages.load_stage_features(settings, root)
    cand = train_and_evaluate(settings.search.model, fs, settings.train, settings.evaluate, params=params)
    return {
        "number": number,
        "params": cand.params,
        "metrics": cand.metrics,
        "valid_metrics": cand.valid_metrics,
        "curves": cand.report.curves,
        "train_seconds": cand.train_seconds,
        "epochs": cand.report.epochs,
        "best_epoch": cand.report.best_epoch,
        "device": cand.report.device,
        "data_hash": data_hash,
        "worker_pid": os.getpid(),
    }


@flow(name="sessionflow-search", log_prints=True)
def hyperparameter_search(
    params_file: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``search.n_trials`` trials of ``search.model``; returns the best trial and every trial's result.

    Call it through ``run_search`` (or ``.with_options(task_runner=...)``) so the trials land on the
    configured runner.
    """
    import optuna

    from components.train import model_params
    from flows.pipeline import featurize_task, ingest_task, pull_task, validate_task
    from flows.tracking import configure_tracking, end_pipeline_run, start_pipeline_run

    logger = get_run_logger()
    t0 = time.perf_counter()
    root_path = Path(root).resolve()
    settings = load_settings(root_path / params_file, overrides)
    cfg = settings.search
    pull_task(settings, root_path)
    info = ingest_task(settings, root_path)
    validate_task(settings, root_path)
    featurize_task(settings, root_path)
    configure_tracking(root_path)
    experiment = f"sessionflow-search-{info['dataset']}"
    parent = start_pipeline_run(
        experiment, info["dataset"], info["data_hash"], settings.model_dump(mode="json", by_alias=True)
    )
    base = {**model_params(cfg.model, settings.train), **cfg.fixed}
    threads = None if cfg.runner == "serial" else max(1, (os.cpu_count() or 1) // cfg.workers)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    results: list[dict[str, Any]] = []
    status = "FAILED"
    try:
        while len(results) < cfg.n_trials:
            batch = [study.ask() for _ in range(min(cfg.parallel, cfg.n_trials - len(results)))]
            futures = [
                trial_task.submit(t.number, {**base, **suggest(t, cfg)}, settings, root_path, threads)
                for t in batch
            ]
            for trial, future in zip(batch, futures, strict=True):
                try:
                    out = future.result()
                except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the search goes on
                    logger.error("trial %d failed: %s", trial.number, exc)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    results.append({"number": trial.number, "error": repr(exc)})
                    continue
                value = out["valid_metrics"].get(cfg.metric, float("nan"))
                study.tell(trial, value)
                out["objective"] = value
                out["run_id"] = log_trial(out, parent, experiment, cfg)
                logger.info("trial %d: valid %s=%.4f %s", trial.number, cfg.metric, value, suggest_repr(out))
                results.append(out)
        status = "FINISHED"
    finally:
        end_pipeline_run(parent, status)
    done = [r for r in results if "objective" in r]
    best = max(done, key=lambda r: r["objective"]) if done else None
    return {
        "model": cfg.model,
        "runner": cfg.runner,
        "workers": cfg.workers,
        "parent_run_id": parent,
        "best": best and {k: best[k] for k in ("number", "params", "objective", "run_id")},
        "trials": [
            {k: r.get(k) for k in ("number", "objective", "train_seconds", "worker_pid", "run_id", "error")}
            for r in results
        ],
        "search_seconds": round(time.perf_counter() - t0, 1),
    }


def suggest_repr(out: dict[str, Any]) -> str:
    return f"in {out['train_seconds']:.1f}s on pid {out['worker_pid']}"


def log_trial(out: dict[str, Any], parent_run_id: str, experiment: str, cfg: SearchConfig) -> str:
    """One MLflow child run of the search run: trial params, validation + test metrics, curves."""
    from mlflow import MlflowClient

    from flows.tracking import ROLE_TAG, _log_curves, _log_metrics, _log_params, flatten

    client = MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run = client.create_run(
        experiment_id,
        run_name=f"{cfg.model}-trial-{out['number']}",
        tags={"mlflow.parentRunId": parent_run_id, ROLE_TAG: "trial", "model": cfg.model},
    )
    run_id = run.info.run_id
    try:
        _log_params(
            client, run_id, {"model": cfg.model, "trial": str(out["number"]), **flatten(out["params"])}
        )
        metrics = {f"valid/{k}": v for k, v in out["valid_metrics"].items()}
        metrics.update(out["metrics"])
        metrics.update(
            train_seconds=out["train_seconds"], epochs=float(out["epochs"]), objective=out["objective"]
        )
        _log_metrics(client, run_id, metrics)
        _log_curves(client, run_id, out["curves"])
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run.info.run_id


def run_search(
    params_file: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The search flow on the task runner its settings name (search.runner / workers / dask_address)."""
    from flows.runners import make_task_runner

    root_path = Path(root).resolve()
    cfg = load_settings(root_path / params_file, overrides).search
    runner = make_task_runner(cfg.runner, cfg.workers, cfg.dask_address)
    return hyperparameter_search.with_options(task_runner=runner)(params_file, root, overrides)
