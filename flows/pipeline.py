"""The training pipeline as a Prefect 3 flow: pull -> feedback export -> ingest -> validate -> featurize ->
train/evaluate (one task per candidate) -> MLflow runs -> promotion -> bento.

The feedback export snapshots the service's feedback log (data/feedback/<dataset>/events.parquet); ingest
merges its positive events, so every scheduled run trains on a new data version when feedback arrived.

Tasks are thin wrappers over sessionflow.stages / components (retries where I/O can fail; caching of data
stages keyed by the content of their input files, their settings and the code they run:
sessionflow/fingerprint.py). Runs without a Prefect server (ephemeral API).
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.config import Settings, load_settings
from sessionflow import stages


def _stage_key(stage: str, settings: Settings, inputs: list[Path], outputs: list[Path], root: Path) -> str:
    """Cache key: the stage's fingerprint -- its settings, the content of its inputs and the code it runs
    (sessionflow/fingerprint.py) -- plus whether its outputs still exist."""
    from sessionflow.fingerprint import stage_fingerprint

    exists = "".join("1" if o.exists() else "0" for o in outputs)
    return hashlib.sha256(f"{stage_fingerprint(stage, settings, inputs, root)}|{exists}".encode()).hexdigest()


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def pull_task(settings: Settings, root: Path) -> str | None:
    path = stages.run_pull(settings, root)
    return str(path) if path else None


def _cached(stage: str, inputs, outputs):
    """Prefect cache key fn: reuse a data stage's result while its inputs, settings and code are unchanged."""

    def key(context, parameters) -> str:
        settings, root = parameters["settings"], Path(parameters["root"])
        paths = stages.paths_for(settings, root)
        return _stage_key(stage, settings, inputs(settings, paths), outputs(paths), root)

    return key


def _ingest_inputs(settings: Settings, paths: stages.Paths) -> list[Path]:
    """The raw files and the feedback snapshot (rewritten by the export only when its content changed)."""
    return stages.ingest_inputs(settings, paths.root)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def feedback_export_task(settings: Settings, root: Path) -> dict:
    return stages.run_feedback_export(settings, root)


@task(
    cache_key_fn=_cached("ingest", _ingest_inputs, lambda p: [p.interim / "ingest.json"]), persist_result=True
)
def ingest_task(settings: Settings, root: Path) -> dict:
    return stages.run_ingest(settings, root)


@task(
    cache_key_fn=_cached("validate", lambda s, p: [p.interim], lambda p: [p.clean / "interactions.parquet"]),
    persist_result=True,
)
def validate_task(settings: Settings, root: Path) -> dict:
    return stages.run_validate(settings, root)


@task(
    cache_key_fn=_cached("featurize", lambda s, p: [p.clean], lambda p: [p.features / "features.json"]),
    persist_result=True,
)
def featurize_task(settings: Settings, root: Path) -> dict:
    return stages.run_featurize(settings, root)


@task(cache_policy=NO_CACHE)
def train_candidate_task(
    name: str,
    settings: Settings,
    root: Path,
    run_dir: Path,
    torch_threads: int | None = None,
    members: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train + evaluate one candidate; write its bundle. Returns what tracking needs.

    ``members`` are the results of already trained candidates the hybrid fuses (their bundles are loaded,
    only the fusion weights are fitted). ``torch_threads`` caps torch's threads when tasks share cores.
    """
    from components.bundle import Predictor
    from components.train import train_and_evaluate, write_bundle

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    logger = get_run_logger()
    fs, items, data_hash = stages.load_stage_features(settings, root)

    def on_epoch(epoch: int, values: dict[str, float]) -> None:
        logger.info("%s epoch %d %s", name, epoch, {k: round(v, 4) for k, v in values.items()})

    fitted = [Predictor.load(m["bundle_dir"]).model for m in members] if members else None
    cand = train_and_evaluate(name, fs, settings.train, settings.evaluate, on_epoch=on_epoch, members=fitted)
    catalogue = stages.dataset_spec(settings, root).catalogue
    bundle = write_bundle(
        cand,
        fs,
        items,
        run_dir / name,
        data_hash,
        settings.evaluate,
        settings.features.split,
        catalogue,
        stages.trending_prior(settings, root),
    )
    primary = settings.evaluate.primary_metric
    logger.info(
        "%s: %s=%.4f in %.1fs", name, primary, cand.metrics.get(primary, float("nan")), cand.train_seconds
    )
    return {
        "model_name": name,
        "bundle_dir": str(bundle),
        "metrics": cand.metrics,
        "params": cand.params,
        "curves": cand.report.curves,
        "train_seconds": cand.train_seconds,
        "epochs": cand.report.epochs,
        "device": cand.report.device,
        "data_hash": data_hash,
        "valid_metrics": cand.valid_metrics,
    }


def hybrid_members(settings: Settings) -> list[str]:
    """The hybrid's members when they are all candidates too (then they are trained once, not twice)."""
    if "hybrid" not in settings.train.models:
        return []
    from components.train import model_params

    members = list(model_params("hybrid", settings.train)["members"])
    return members if all(m in settings.train.models for m in members) else []


@flow(name="sessionflow-candidates")
def train_candidates(settings: Settings, root: Path, run_dir: Path) -> dict[str, Any]:
    """Every candidate as a task on the configured runner (train.runner); a result dict per model, or the
    error text of a candidate that failed. The hybrid waits for its member candidates and reuses them."""
    import os

    cfg = settings.train
    threads = None if cfg.runner == "serial" else max(1, (os.cpu_count() or 1) // cfg.workers)
    members = hybrid_members(settings)
    futures = {
        name: train_candidate_task.submit(name, settings, root, run_dir, threads)
        for name in cfg.models
        if not (name == "hybrid" and members)
    }
    if members:
        futures["hybrid"] = train_candidate_task.submit(
            "hybrid", settings, root, run_dir, threads, members=[futures[m] for m in members]
        )
    outcomes: dict[str, Any] = {}
    for name in cfg.models:
        try:
            outcomes[name] = futures[name].result()
        except Exception as exc:  # noqa: BLE001 - one broken candidate must not sink the others
            outcomes[name] = f"{type(exc).__name__}: {exc}"
    return outcomes


@flow(name="sessionflow-pipeline", log_prints=True)
def training_pipeline(
    params_file: str = "params.yaml",
    root: str = ".",
    overrides: dict[str, Any] | None = None,
    package: bool = True,
) -> dict[str, Any]:
    """The whole chain on one dataset; returns a summary (candidates, promotion decision, bento tag)."""
    from flows.promotion import promote
    from flows.tracking import (
        CandidateResult,
        configure_tracking,
        end_pipeline_run,
        log_candidate,
        log_comparison,
        start_pipeline_run,
    )

    logger = get_run_logger()
    t_start = time.perf_counter()
    root_path = Path(root).resolve()
    settings = load_settings(root_path / params_file, overrides)
    pull_task(settings, root_path)
    feedback_info = feedback_export_task(settings, root_path)
    logger.info(
        "feedback snapshot: %d events (%d negative) from %s",
        feedback_info["n_events"],
        feedback_info["n_negative"],
        feedback_info["source"],
    )
    ingest_info = ingest_task(settings, root_path)
    validation = validate_task(settings, root_path)
    feature_info = featurize_task(settings, root_path)
    data_hash = ingest_info["data_hash"]
    run_dir = root_path / "artifacts" / "candidates" / f"{ingest_info['dataset']}-{int(time.time())}"

    configure_tracking(root_path)
    experiment = f"sessionflow-{ingest_info['dataset']}"
    settings_dump = settings.model_dump(mode="json", by_alias=True)
    parent = start_pipeline_run(experiment, ingest_info["dataset"], data_hash, settings_dump)
    status = "FAILED"
    try:
        from flows.runners import make_task_runner

        runner = make_task_runner(settings.train.runner, settings.train.workers, settings.train.dask_address)
        outcomes = train_candidates.with_options(task_runner=runner)(settings, root_path, run_dir)
        from components.evaluate import protocol

        proto = protocol(settings.evaluate, settings.features.split)
        results, failed = [], {}
        for name in settings.train.models:
            out = outcomes[name]
            if isinstance(out, str):
                logger.error("candidate %s failed and is skipped: %s", name, out)
                failed[name] = out
                continue
            res = CandidateResult(
                model_name=out["model_name"],
                bundle_dir=Path(out["bundle_dir"]),
                metrics={**out["metrics"], **{f"valid/{k}": v for k, v in out["valid_metrics"].items()}},
                params=out["params"],
                curves=out["curves"],
                train_seconds=out["train_seconds"],
                epochs=out["epochs"],
                device=out["device"],
                data_hash=data_hash,
                protocol=proto,
                settings=settings_dump,
            )
            run_id, _ = log_candidate(res, parent, experiment)
            results.append((res, run_id))
        if not results:
            raise RuntimeError(f"every candidate failed: {failed}")
        log_comparison(results, parent, settings.evaluate.primary_metric)
        decision = promote(
            results,
            settings.promote,
            settings.evaluate.primary_metric,
            evaluate_champion=partial(stages.evaluate_bundle, settings, root_path),
            parent_run_id=parent,
        )
        logger.info("promotion: %s", decision.reason)
        from flows.simulation import simulate_challenger

        simulation = simulate_challenger(results, decision, settings, root_path, parent, logger=logger)
        bento_tag = None
        if package:
            from flows.package import build_bento, import_champion

            packaged = import_champion(settings.promote.registered_model)
            bento_tag = build_bento(
                str(packaged.tag) if hasattr(packaged, "tag") else str(packaged), root_path
            )
            logger.info("bento built: %s", bento_tag)
        status = "FINISHED"
    finally:
        end_pipeline_run(parent, status)
    primary = settings.evaluate.primary_metric
    summary = {
        "dataset": ingest_info["dataset"],
        "data_hash": data_hash,
        "ingest": ingest_info,
        "feedback": {k: feedback_info[k] for k in ("n_events", "n_negative", "feedback_hash", "snapshot")},
        "validation": validation.get("counts"),
        "features": feature_info,
        "parent_run_id": parent,
        "candidates": {
            r.model_name: {
                primary: r.metrics.get(primary),
                "hr@10": r.metrics.get("hr@10"),
                "train_seconds": round(r.train_seconds, 2),
                "epochs": r.epochs,
                "run_id": rid,
            }
            for r, rid in results
        },
        "failed_candidates": failed,
        "promotion": {
            "promoted": decision.promoted,
            "reason": decision.reason,
            "champion_version": decision.champion_version_after,
        },
        "simulation": simulation,
        "bento_tag": bento_tag,
        "pipeline_seconds": round(time.perf_counter() - t_start, 1),
    }
    (root_path / "artifacts").mkdir(exist_ok=True)
    (root_path / "artifacts" / "last_pipeline.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
