"""The training pipeline as a Prefect 3 flow: pull -> feedback + catalogue export -> ingest -> validate ->
featurize -> train/evaluate (one task per candidate) -> MLflow runs -> promotion -> package + release.

The feedback export snapshots the service's feedback log (data/feedback/<dataset>/events.parquet) and the
catalogue export its catalogue changes (data/catalogue/<dataset>/changes.parquet: items added and retired
while serving); ingest merges the positive events and folds in the changes, so every scheduled run trains on
a new data version when feedback arrived or the catalogue changed. The
package step is the one packaging path (flows/package.py: bento with params.yaml's serve and conversation
sections, then the release record a running service switches to).

Tasks are thin wrappers over the stage layer (sessionflow/stages.py) and return its typed results; data
stages are cached by the content of their input files, their settings and the code they run
(sessionflow/fingerprint.py). Candidates run on the configured task runner (train.runner: serial, threads or
Dask; flows/runners.py); the hybrid waits for its member candidates and reuses them. Runs without a Prefect
server (ephemeral API).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.config import Settings, load_settings
from components.release import Release
from flows.pipeline_summary import PipelineSummary
from flows.promotion import PromotionDecision
from flows.tracking import CandidateResult
from sessionflow import stages
from sessionflow.results import (
    CatalogueExport,
    FeatureResult,
    FeedbackExport,
    IngestResult,
    Lineage,
    ValidationResult,
)


@flow(name="sessionflow-pipeline", log_prints=True)
def training_pipeline(
    params_file: str = "params.yaml",
    root: str = ".",
    overrides: dict[str, Any] | None = None,
    package: bool = True,
) -> PipelineSummary:
    """The whole chain on one dataset; returns a typed summary (also in artifacts/last_pipeline.json)."""
    t_start = time.perf_counter()
    root_path = Path(root).resolve()
    settings = load_settings(root_path / params_file, overrides)
    pull_task(settings, root_path)
    feedback = feedback_export_task(settings, root_path)
    catalogue = catalogue_export_task(settings, root_path)
    ingest = ingest_task(settings, root_path)
    validation = validate_task(settings, root_path)
    features = featurize_task(settings, root_path)
    lineage = stages.lineage(settings, root_path, ingest)
    with pipeline_run(settings, root_path, ingest, lineage) as run:
        from flows.runners import make_task_runner

        runner = make_task_runner(settings.train.runner, settings.train.workers, settings.train.dask_address)
        outcomes = train_candidates.with_options(task_runner=runner)(settings, root_path, run.dir, lineage)
        candidates, failed = track_candidates(outcomes, run)
        decision = promote_task(candidates, settings, root_path, run.id)
        simulation = simulate(candidates, decision, settings, root_path, run.id)
        release = package_task(settings, root_path, decision) if package else None
    summary = PipelineSummary.of(
        settings, lineage, feedback, ingest, validation, features, run.id, candidates, failed, decision,
        simulation, release, time.perf_counter() - t_start, catalogue,
    )  # fmt: skip
    summary.write(root_path)
    return summary


# ------------------------------------------------------------------------------------------------ data tasks


def _stage_key(stage: str, settings: Settings, inputs: list[Path], outputs: list[Path], root: Path) -> str:
    """Cache key: the stage's fingerprint -- its settings, the content of its inputs and the code it runs
    (sessionflow/fingerprint.py) -- plus whether its outputs still exist."""
    from sessionflow.fingerprint import stage_fingerprint

    exists = "".join("1" if o.exists() else "0" for o in outputs)
    return hashlib.sha256(f"{stage_fingerprint(stage, settings, inputs, root)}|{exists}".encode()).hexdigest()


def _cached(stage: str, inputs, outputs):
    """Prefect cache key fn: reuse a data stage's result while its inputs, settings and code are unchanged."""

    def key(context, parameters) -> str:
        settings, root = parameters["settings"], Path(parameters["root"])
        paths = stages.paths_for(settings, root)
        return _stage_key(stage, settings, inputs(settings, paths), outputs(paths), root)

    return key


def _ingest_inputs(settings: Settings, paths: stages.Paths) -> list[Path]:
    """The raw files and the feedback and catalogue snapshots (rewritten by their exports only when their
    content changed)."""
    return stages.ingest_inputs(settings, paths.root)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def pull_task(settings: Settings, root: Path) -> str | None:
    path = stages.run_pull(settings, root)
    return str(path) if path else None


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def feedback_export_task(settings: Settings, root: Path) -> FeedbackExport:
    info = stages.run_feedback_export(settings, root)
    get_run_logger().info(
        "feedback snapshot: %d events (%d negative) from %s", info.n_events, info.n_negative, info.source
    )
    return info


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def catalogue_export_task(settings: Settings, root: Path) -> CatalogueExport:
    info = stages.run_catalogue_export(settings, root)
    get_run_logger().info(
        "catalogue changes snapshot: %d added, %d retired (revision %d)",
        info.n_added,
        info.n_retired,
        info.revision,
    )
    return info


@task(
    cache_key_fn=_cached("ingest", _ingest_inputs, lambda p: [p.interim / "ingest.json"]), persist_result=True
)
def ingest_task(settings: Settings, root: Path) -> IngestResult:
    return stages.run_ingest(settings, root)


@task(
    cache_key_fn=_cached("validate", lambda s, p: [p.interim], lambda p: [p.clean / "interactions.parquet"]),
    persist_result=True,
)
def validate_task(settings: Settings, root: Path) -> ValidationResult:
    return stages.run_validate(settings, root)


@task(
    cache_key_fn=_cached("featurize", lambda s, p: [p.clean], lambda p: [p.features / "features.json"]),
    persist_result=True,
)
def featurize_task(settings: Settings, root: Path) -> FeatureResult:
    return stages.run_featurize(settings, root)


# ------------------------------------------------------------------------------------- training + MLflow


@dataclass(frozen=True)
class PipelineRun:
    """The MLflow parent run of one pipeline run and where its candidates' bundles go."""

    id: str
    experiment: str
    dir: Path
    models: list[str]
    primary_metric: str


@contextlib.contextmanager
def pipeline_run(
    settings: Settings, root: Path, ingest: IngestResult, lineage: Lineage
) -> Iterator[PipelineRun]:
    """Open the MLflow parent run (tagged with the lineage); FINISHED on success, FAILED on an exception."""
    from flows.tracking import configure_tracking, end_pipeline_run, start_pipeline_run

    configure_tracking(root)
    experiment = f"sessionflow-{ingest.dataset}"
    settings_dump = settings.model_dump(mode="json", by_alias=True)
    parent = start_pipeline_run(
        experiment, ingest.dataset, ingest.data_hash, settings_dump, lineage.model_dump(mode="json")
    )
    run_dir = root / "artifacts" / "candidates" / f"{ingest.dataset}-{int(time.time())}"
    status = "FAILED"
    try:
        yield PipelineRun(
            parent, experiment, run_dir, settings.train.models, settings.evaluate.primary_metric
        )
        status = "FINISHED"
    finally:
        end_pipeline_run(parent, status)


@task(cache_policy=NO_CACHE)
def train_candidate_task(
    name: str,
    settings: Settings,
    root: Path,
    run_dir: Path,
    lineage: Lineage,
    torch_threads: int | None = None,
    members: list[CandidateResult] | None = None,
) -> CandidateResult:
    """Train + evaluate one candidate and write its bundle (with lineage, monitoring reference, the
    catalogue spec and the popularity prior the conversation starts from).

    ``members`` are already trained candidates the hybrid fuses (their bundles are loaded, only the fusion
    weights are fitted). ``torch_threads`` caps torch's threads when tasks share cores.
    """
    from components.bundle import Predictor
    from components.evaluate import protocol
    from components.train import train_and_evaluate, write_bundle

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    logger = get_run_logger()
    fs, items, data_hash = stages.load_stage_features(settings, root)

    def on_epoch(epoch: int, values: dict[str, float]) -> None:
        logger.info("%s epoch %d %s", name, epoch, {k: round(v, 4) for k, v in values.items()})

    fitted = {m.model_name: Predictor.load(m.bundle_dir).model for m in members} if members else None
    cand = train_and_evaluate(name, fs, settings.train, settings.evaluate, on_epoch=on_epoch, members=fitted)
    chain = lineage.model_dump(mode="json")
    bundle = write_bundle(
        cand,
        fs,
        items,
        run_dir / name,
        data_hash,
        settings.evaluate,
        settings.features.split,
        stages.dataset_spec(settings, root).catalogue,
        stages.trending_prior(settings, root),
        chain,
        audience=stages.item_audience(settings, root),
    )
    primary = settings.evaluate.primary_metric
    logger.info(
        "%s: %s=%.4f in %.1fs", name, primary, cand.metrics.get(primary, float("nan")), cand.train_seconds
    )
    return CandidateResult(
        model_name=name,
        bundle_dir=bundle,
        metrics={**cand.metrics, **{f"valid/{k}": v for k, v in cand.valid_metrics.items()}},
        params=cand.params,
        curves=cand.report.curves,
        train_seconds=cand.train_seconds,
        epochs=cand.report.epochs,
        device=cand.report.device,
        data_hash=data_hash,
        protocol=protocol(settings.evaluate, settings.features.split),
        settings=settings.model_dump(mode="json", by_alias=True),
        lineage=chain,
    )


def hybrid_members(settings: Settings) -> list[str]:
    """The hybrid's members that are candidates too (they are trained once, not twice; the hybrid trains
    the others itself)."""
    if "hybrid" not in settings.train.models:
        return []
    from components.train import model_params

    members = list(model_params("hybrid", settings.train)["members"])
    return [m for m in members if m in settings.train.models]


@flow(name="sessionflow-candidates")
def train_candidates(
    settings: Settings, root: Path, run_dir: Path, lineage: Lineage
) -> dict[str, CandidateResult | str]:
    """Every candidate as a task on the configured runner (train.runner): its result, or the error text of
    a candidate that failed. The hybrid waits for its member candidates and reuses them."""
    import os

    cfg = settings.train
    threads = None if cfg.runner == "serial" else max(1, (os.cpu_count() or 1) // cfg.workers)
    members = hybrid_members(settings)
    futures = {
        name: train_candidate_task.submit(name, settings, root, run_dir, lineage, threads)
        for name in cfg.models
        if not (name == "hybrid" and members)
    }
    if members:
        futures["hybrid"] = train_candidate_task.submit(
            "hybrid", settings, root, run_dir, lineage, threads, members=[futures[m] for m in members]
        )
    outcomes: dict[str, CandidateResult | str] = {}
    for name in cfg.models:
        try:
            outcomes[name] = futures[name].result()
        except Exception as exc:  # noqa: BLE001 - one broken candidate must not sink the others
            outcomes[name] = f"{type(exc).__name__}: {exc}"
    return outcomes


def track_candidates(
    outcomes: dict[str, CandidateResult | str], run: PipelineRun
) -> tuple[list[tuple[CandidateResult, str]], dict[str, str]]:
    """Log each finished candidate to MLflow (child run); a failed candidate is skipped and reported."""
    from flows.tracking import log_candidate, log_comparison

    logger = get_run_logger()
    logged, failed = [], {}
    for name, result in outcomes.items():
        if isinstance(result, str):
            logger.error("candidate %s failed and is skipped: %s", name, result)
            failed[name] = result
            continue
        run_id, _ = log_candidate(result, run.id, run.experiment)
        logged.append((result, run_id))
    if not logged:
        raise RuntimeError(f"every candidate failed: {failed}")
    log_comparison(logged, run.id, run.primary_metric)
    return logged, failed


@task(cache_policy=NO_CACHE)
def promote_task(
    candidates: list[tuple[CandidateResult, str]], settings: Settings, root: Path, parent_run_id: str
) -> PromotionDecision:
    """Champion/challenger gate (flows/promotion.py); the champion is re-scored on the current data."""
    from functools import partial

    from flows.promotion import promote

    decision = promote(
        candidates,
        settings.promote,
        settings.evaluate.primary_metric,
        evaluate_champion=partial(stages.evaluate_bundle, settings, root),
        parent_run_id=parent_run_id,
    )
    get_run_logger().info("promotion: %s", decision.reason)
    return decision


def simulate(
    candidates: list[tuple[CandidateResult, str]],
    decision: PromotionDecision,
    settings: Settings,
    root: Path,
    parent_run_id: str,
) -> dict[str, float] | None:
    """Conversation simulation of the registered challenger (flows/simulation.py; never fails the run)."""
    from flows.simulation import simulate_challenger

    return simulate_challenger(candidates, decision, settings, root, parent_run_id, logger=get_run_logger())


@task(retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def package_task(settings: Settings, root: Path, decision: PromotionDecision) -> Release | None:
    """The one packaging path (flows/package.py): bento of the champion + the release record."""
    from flows.package import package_champion

    if decision.champion_version_after is None:
        get_run_logger().warning("nothing packaged: there is no champion yet (%s)", decision.reason)
        return None
    release = package_champion(settings, root, reason=decision.reason)
    get_run_logger().info("released %s (bento %s)", release.model_tag, release.bento_tag)
    return release
