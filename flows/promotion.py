"""Champion/challenger promotion in the MLflow model registry (aliases only: no stages, no 'latest').

1. Eligible candidates: run FINISHED, tagged ``sessionflow.complete=true``, a logged model, and a finite
   logged primary metric. A failed or partial run can never be registered, let alone become champion.
2. The best eligible candidate is registered as a new version of ``cfg.registered_model`` and gets the
   alias ``challenger``.
3. No champion yet -> the challenger becomes ``champion``. Otherwise it replaces the champion only if it
   beats the champion's primary metric by more than ``cfg.min_improvement`` and the guardrails hold:
   coverage does not fall below ``champion * (1 - cfg.max_coverage_drop)`` and p95 latency stays within
   ``cfg.max_latency_ms``. The champion's metrics come from ``evaluate_champion`` on its downloaded bundle
   (current data) when given, else from the champion's own logged run.
4. The decision (reason + evidence) is logged to the parent run and tagged on the challenger version.

Manual promotions and rollbacks (``sessionflow promote VERSION``, flows/manual_promotion.py) are recorded
through the same ``record_decision``.
"""

from __future__ import annotations

import json
import math
import numbers
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import PromoteConfig
from flows.tracking import COMPLETE_TAG, MODEL_URI_TAG, CandidateResult, metric_key, metric_name

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
LATENCY_METRIC = "latency_p95_ms"


@dataclass
class PromotionDecision:
    promoted: bool
    challenger_version: str | None
    champion_version_before: str | None
    champion_version_after: str | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def promote(
    candidates: list[tuple[CandidateResult, str]],
    cfg: PromoteConfig,
    primary_metric: str,
    evaluate_champion: Callable[[Path], dict[str, float]] | None = None,
    parent_run_id: str | None = None,
) -> PromotionDecision:
    """Register the best eligible candidate as challenger and decide whether it becomes champion."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    name = cfg.registered_model
    coverage_metric = f"coverage@{_k_of(primary_metric)}"
    champion = version_by_alias(client, name, CHAMPION)
    champion_before = str(champion.version) if champion else None
    evidence: dict[str, Any] = {
        "registered_model": name,
        "primary_metric": primary_metric,
        "thresholds": {
            "min_improvement": cfg.min_improvement,
            "max_coverage_drop": cfg.max_coverage_drop,
            "max_latency_ms": cfg.max_latency_ms,
        },
    }

    eligible, eligibility = _eligible(client, candidates, primary_metric)
    evidence["eligibility"] = eligibility
    if not eligible:
        kept = f"champion version {champion_before} kept" if champion_before else "there is still no champion"
        why = "; ".join(f"{e['model']}: {e['reason']}" for e in eligibility) or "no candidates"
        decision = PromotionDecision(
            False,
            None,
            champion_before,
            champion_before,
            f"No candidate is eligible for promotion ({why}); {kept}.",
            evidence,
        )
        return record_decision(client, decision, parent_run_id)

    # pick the challenger on the validation split when it was logged ("valid/<metric>"), so the test split
    # stays an unbiased estimate; the champion gate below compares on the test metric
    selection = f"valid/{primary_metric}"

    def rank_key(entry: tuple) -> float:
        logged = entry[3]
        value = logged.get(selection)
        return float(value) if value is not None and math.isfinite(value) else float(logged[primary_metric])

    result, run_id, model_uri, metrics = max(eligible, key=rank_key)
    evidence["selected_by"] = selection if selection in metrics else primary_metric
    version = mlflow.register_model(
        model_uri,
        name,
        tags={
            "model": result.model_name,
            "run_id": run_id,
            "data_hash": result.data_hash,
            "primary_metric": primary_metric,
            metric_key(primary_metric): repr(metrics[primary_metric]),
        },
    )
    new_version = str(version.version)
    client.set_registered_model_alias(name, CHALLENGER, new_version)
    challenger_metrics = _pick(metrics, primary_metric, coverage_metric)
    evidence["challenger"] = {
        "version": new_version,
        "model": result.model_name,
        "run_id": run_id,
        "model_uri": model_uri,
        "metrics": challenger_metrics,
    }
    label = f"version {new_version} ({result.model_name})"
    primary = metrics[primary_metric]

    if champion is None:
        client.set_registered_model_alias(name, CHAMPION, new_version)
        decision = PromotionDecision(
            True,
            new_version,
            None,
            new_version,
            f"Challenger {label} became the first champion "
            f"({primary_metric}={primary:.4f}); there was no champion before.",
            evidence,
        )
        return record_decision(client, decision, parent_run_id)

    old_version = str(champion.version)
    served, trained = _run_dataset(client, champion.run_id), _run_dataset(client, run_id)
    if served and trained and served != trained:
        # another catalogue's champion: its ids mean other items here, so no comparison means anything
        evidence["champion"] = {"version": old_version, "run_id": champion.run_id, "dataset": served}
        evidence["challenger"]["dataset"] = trained
        reason = (
            f"Champion version {old_version} kept: it serves {served} and challenger {label} was trained "
            f"on {trained}; one registered model holds one catalogue's champion. Give {trained} its own "
            f"(promote.registered_model, e.g. sessionflow-{trained}), or promote by hand (sessionflow "
            f"promote {new_version}) to switch this one."
        )
        decision = PromotionDecision(False, new_version, old_version, old_version, reason, evidence)
        return record_decision(client, decision, parent_run_id)
    champion_metrics, source = _champion_metrics(client, champion, evaluate_champion)
    evidence["champion"] = {
        "version": old_version,
        "run_id": champion.run_id,
        "metrics_source": source,
        "metrics": _pick(champion_metrics, primary_metric, coverage_metric),
    }
    checks = _checks(metrics, champion_metrics, cfg, primary_metric, coverage_metric)
    evidence["checks"] = checks
    failed = [c for c in ("coverage", "latency") if not checks[c]["passed"]]
    champ_primary = champion_metrics.get(primary_metric, math.nan)
    if checks["primary"]["passed"] and not failed:
        client.set_registered_model_alias(name, CHAMPION, new_version)
        reason = (
            f"Challenger {label} replaced champion version {old_version}: {primary_metric} "
            f"{primary:.4f} > {champ_primary:.4f} + min_improvement {cfg.min_improvement:g}, "
            "and the coverage and latency guardrails held."
        )
        decision = PromotionDecision(True, new_version, old_version, new_version, reason, evidence)
    elif not checks["primary"]["passed"]:
        reason = (
            f"Champion version {old_version} kept: challenger {label} {primary_metric} {primary:.4f} "
            f"does not beat the champion's {champ_primary:.4f} + min_improvement {cfg.min_improvement:g}."
        )
        decision = PromotionDecision(False, new_version, old_version, old_version, reason, evidence)
    else:
        broken = "; ".join(f"{c} guardrail: {checks[c]['detail']}" for c in failed)
        reason = (
            f"Champion version {old_version} kept: challenger {label} beats it on {primary_metric} "
            f"({primary:.4f} > {champ_primary:.4f}) but fails the {broken}."
        )
        decision = PromotionDecision(False, new_version, old_version, old_version, reason, evidence)
    return record_decision(client, decision, parent_run_id)


# ------------------------------------------------------------------------------------------- eligibility


def _eligible(
    client: MlflowClient, candidates: list[tuple[CandidateResult, str]], primary_metric: str
) -> tuple[list[tuple[CandidateResult, str, str, dict[str, float]]], list[dict[str, Any]]]:
    """Candidates that may be registered, with their logged metrics; plus a per-candidate report."""
    from mlflow.exceptions import MlflowException

    eligible = []
    report = []
    for result, run_id in candidates:
        entry: dict[str, Any] = {"model": result.model_name, "run_id": run_id, "eligible": False}
        report.append(entry)
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            entry["reason"] = f"run {run_id} not found ({exc.error_code})"
            continue
        metrics = {metric_name(k): v for k, v in run.data.metrics.items()}
        model_uri = run.data.tags.get(MODEL_URI_TAG) or _model_uri_from_outputs(run)
        value = metrics.get(primary_metric)
        if run.info.status != "FINISHED":
            entry["reason"] = f"run status is {run.info.status}, not FINISHED"
        elif run.data.tags.get(COMPLETE_TAG) != "true":
            entry["reason"] = f"run is not tagged {COMPLETE_TAG}=true (logging did not complete)"
        elif not model_uri:
            entry["reason"] = "run has no logged model"
        elif not _finite(value):
            entry["reason"] = f"logged {primary_metric} is missing or not finite ({value})"
        else:
            entry.update(eligible=True, reason="ok", **{primary_metric: value})
            eligible.append((result, run_id, model_uri, metrics))
    return eligible, report


def _model_uri_from_outputs(run: Any) -> str | None:
    outputs = getattr(run, "outputs", None)
    models = getattr(outputs, "model_outputs", None) or []
    return f"models:/{models[-1].model_id}" if models else None


# ------------------------------------------------------------------------------------------------ champion


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _run_dataset(client: MlflowClient, run_id: str | None) -> str:
    """The dataset a candidate run was trained on (its ``dataset`` tag; '' when unknown)."""
    if not run_id:
        return ""
    try:
        return str(client.get_run(run_id).data.tags.get("dataset", ""))
    except Exception:  # noqa: BLE001 - a run deleted from the store: unknown, compared as before
        return ""


def _champion_metrics(
    client: MlflowClient, champion: ModelVersion, evaluate: Callable[[Path], dict[str, float]] | None
) -> tuple[dict[str, float], str]:
    """Champion metrics on the current data when ``evaluate`` is given, else its logged run metrics."""
    from flows.mlflow_model import fetch_bundle

    note = ""
    if evaluate is not None:
        uri = f"models:/{champion.name}@{CHAMPION}"
        try:
            with tempfile.TemporaryDirectory(prefix="sessionflow-champion-") as tmp:
                metrics = evaluate(fetch_bundle(uri, tmp))
            numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, numbers.Real)}
            return numeric, f"re-evaluated {uri} on the current data"
        except Exception as exc:  # noqa: BLE001 - fall back to logged metrics, reported in the evidence
            note = f" (re-evaluation failed: {type(exc).__name__}: {exc})"
    metrics: dict[str, float] = {}
    if champion.run_id:
        run = client.get_run(champion.run_id)
        metrics = {metric_name(k): v for k, v in run.data.metrics.items()}
    return metrics, f"logged metrics of run {champion.run_id}{note}"


def _checks(
    challenger: dict[str, float],
    champion: dict[str, float],
    cfg: PromoteConfig,
    primary_metric: str,
    coverage_metric: str,
) -> dict[str, dict[str, Any]]:
    ch, cp = challenger.get(primary_metric), champion.get(primary_metric)
    if _finite(cp):
        primary_ok = _finite(ch) and ch > cp + cfg.min_improvement
        primary_detail = f"{ch:.4f} vs champion {cp:.4f} + {cfg.min_improvement:g}"
    else:  # a champion that cannot be measured on the primary metric loses the comparison
        primary_ok = _finite(ch)
        primary_detail = f"champion has no finite {primary_metric}"
    checks: dict[str, dict[str, Any]] = {
        "primary": {"passed": bool(primary_ok), "challenger": ch, "champion": cp, "detail": primary_detail}
    }

    cov, champ_cov = challenger.get(coverage_metric), champion.get(coverage_metric)
    if not _finite(cov):
        checks["coverage"] = {"passed": False, "detail": f"challenger has no finite {coverage_metric}"}
    elif not _finite(champ_cov):
        checks["coverage"] = {"passed": True, "detail": f"champion has no {coverage_metric} to compare"}
    else:
        floor = champ_cov * (1 - cfg.max_coverage_drop)
        checks["coverage"] = {
            "passed": bool(cov >= floor),
            "challenger": cov,
            "champion": champ_cov,
            "floor": floor,
            "detail": f"{coverage_metric} {cov:.4f} vs floor {floor:.4f} "
            f"(champion {champ_cov:.4f} x (1 - {cfg.max_coverage_drop:g}))",
        }

    latency = challenger.get(LATENCY_METRIC)
    if not _finite(latency):
        checks["latency"] = {"passed": False, "detail": f"challenger has no finite {LATENCY_METRIC}"}
    else:
        checks["latency"] = {
            "passed": bool(latency <= cfg.max_latency_ms),
            "challenger": latency,
            "limit": cfg.max_latency_ms,
            "detail": f"{LATENCY_METRIC} {latency:.1f} vs limit {cfg.max_latency_ms:g}",
        }
    return checks


# ------------------------------------------------------------------------------------------------- record


def record_decision(
    client: MlflowClient, decision: PromotionDecision, parent_run_id: str | None
) -> PromotionDecision:
    """Tag the challenger version and log the decision (JSON + tags) to the parent run."""
    name = decision.evidence["registered_model"]
    if decision.challenger_version is not None:
        client.set_model_version_tag(
            name, decision.challenger_version, "promotion", "promoted" if decision.promoted else "rejected"
        )
        client.set_model_version_tag(
            name, decision.challenger_version, "promotion_reason", decision.reason[:5000]
        )
    if parent_run_id is not None:
        client.log_text(
            parent_run_id, json.dumps(asdict(decision), indent=2, default=str), "promotion/decision.json"
        )
        tags = {
            "promotion.promoted": str(decision.promoted).lower(),
            "promotion.reason": decision.reason[:5000],
            "promotion.challenger_version": decision.challenger_version or "",
            "promotion.champion_version": decision.champion_version_after or "",
        }
        for key, value in tags.items():
            client.set_tag(parent_run_id, key, value)
    return decision


def _pick(metrics: dict[str, float], *names: str) -> dict[str, float | None]:
    return {n: metrics.get(n) for n in (*names, LATENCY_METRIC)}


def _k_of(metric: str) -> str:
    return metric.split("@", 1)[1] if "@" in metric else "10"


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
