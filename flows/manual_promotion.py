"""Manual promotion and rollback: ``sessionflow promote VERSION`` moves the ``champion`` alias to any
registered version, recorded through the gate's own record (flows/promotion.py ``record_decision``: the
version's ``promotion``/``promotion_reason`` tags and ``promotion/decision.json`` on an MLflow run).

The metric gate is the operator's to overrule (a rollback is usually to a model the gate once replaced),
but a version still has to be servable: its training run FINISHED with the completion tag, and its bundle
downloads, loads and answers a recommendation with finite scores. The packaging that follows
(flows/package.py ``package_champion``) writes the release record running services switch to.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

from components.config import PromoteConfig
from flows.promotion import CHAMPION, PromotionDecision, record_decision, version_by_alias
from flows.tracking import COMPLETE_TAG, ROLE_TAG, metric_name


def promote_version(
    cfg: PromoteConfig, version: str | int, note: str = "", primary_metric: str = "ndcg@10"
) -> PromotionDecision:
    """Make registered ``version`` of ``cfg.registered_model`` the champion (promotion or rollback).

    Raises LookupError for an unknown version and ValueError for one that cannot be served; promoting the
    version that already is champion changes nothing and records nothing (``promoted`` False).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    name, version = cfg.registered_model, str(version).strip()
    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        known = _versions(client, name)
        raise LookupError(
            f"registered model {name!r} has no version {version!r}"
            + (f"; registered versions: {', '.join(known)}" if known else " (nothing is registered)")
        ) from exc
    champion = version_by_alias(client, name, CHAMPION)
    before = str(champion.version) if champion else None
    if before == version:
        return PromotionDecision(
            False, version, before, before, f"Version {version} already is the champion; nothing changed."
        )
    metrics, model = _check_servable(client, mv, primary_metric)
    kind = "rollback" if before is not None and int(version) < int(before) else "promotion"
    reason = (
        (
            f"Manual {kind}: version {version} ({model}) replaced champion version {before}"
            if before
            else f"Manual promotion: version {version} ({model}) became the first champion"
        )
        + (f" -- {note}" if note else "")
        + "."
    )
    evidence: dict[str, Any] = {
        "registered_model": name,
        "manual": True,
        "kind": kind,
        "primary_metric": primary_metric,
        "version": {"version": version, "model": model, "run_id": mv.run_id, "metrics": metrics},
        "champion_before": before,
        "gate_decision_at_registration": (mv.tags or {}).get("promotion_reason"),
    }
    client.set_registered_model_alias(name, CHAMPION, version)
    decision = PromotionDecision(True, version, before, version, reason, evidence)
    run_id = _decision_run(client, mv, version)
    try:
        return record_decision(client, decision, run_id)
    finally:
        client.set_terminated(run_id, "FINISHED")


def _check_servable(client: Any, mv: Any, primary_metric: str) -> tuple[dict[str, float], str]:
    """The version's logged metrics and model name, after checking it can be served."""
    from components.bundle import Predictor
    from flows.mlflow_model import fetch_bundle

    label = f"version {mv.version} of {mv.name!r}"
    if not mv.run_id:
        raise ValueError(f"{label} has no training run; only models trained by the pipeline can be served")
    run = client.get_run(mv.run_id)
    if run.info.status != "FINISHED" or run.data.tags.get(COMPLETE_TAG) != "true":
        raise ValueError(
            f"{label}: its run {mv.run_id} is {run.info.status} without {COMPLETE_TAG}=true (incomplete)"
        )
    with tempfile.TemporaryDirectory(prefix="sessionflow-promote-") as tmp:
        try:
            predictor = Predictor.load(fetch_bundle(f"models:/{mv.name}/{mv.version}", tmp))
            history = list(predictor.vocab.item_ids[:3])
            [result] = predictor.recommend_batch([history], k=5, exclude_seen=False)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not servable"
            raise ValueError(f"{label} cannot be served: {type(exc).__name__}: {exc}") from exc
    if not result.items or not all(math.isfinite(r.score) for r in result.items):
        raise ValueError(f"{label} cannot be served: its smoke recommendation had no finite scores")
    metrics = {metric_name(k): float(v) for k, v in run.data.metrics.items()}
    keep = (primary_metric, f"valid/{primary_metric}", "hr@10", "coverage@10", "latency_p95_ms")
    return {k: metrics[k] for k in keep if k in metrics}, str(
        run.data.tags.get("model", mv.tags.get("model"))
    )


def _decision_run(client: Any, mv: Any, version: str) -> str:
    """A run in the version's experiment that holds the decision (role ``promotion``)."""
    experiment_id = client.get_run(mv.run_id).info.experiment_id
    run = client.create_run(
        experiment_id, run_name=f"promote-{mv.name}-v{version}", tags={ROLE_TAG: "promotion"}
    )
    return run.info.run_id


def _versions(client: Any, name: str) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    return sorted((str(v.version) for v in found), key=int)
