"""Promotion: champion/challenger aliases, the improvement margin, guardrails and eligibility."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.config import PromoteConfig
from flows.promotion import promote
from flows.tracking import COMPLETE_TAG, CandidateResult, log_candidate, start_pipeline_run
from tests.flows import make_bundle, use_tracking

mlflow = pytest.importorskip("mlflow")

EXPERIMENT = "sessionflow-promotion-test"
PRIMARY = "ndcg@10"
CFG = PromoteConfig(
    registered_model="reco-test", min_improvement=0.01, max_coverage_drop=0.5, max_latency_ms=50.0
)

Logger = Callable[..., tuple[CandidateResult, str]]


@pytest.fixture()
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from use_tracking(tmp_path / "mlruns-root", monkeypatch)


@pytest.fixture()
def parent(tracking: str) -> str:
    return start_pipeline_run(EXPERIMENT, "tiny", "hash-1", {})


@pytest.fixture()
def log(tmp_path: Path, parent: str) -> Logger:
    bundle = make_bundle(tmp_path / "bundle", "popularity")

    def _log(
        name: str, ndcg: float, coverage: float = 0.4, latency: float = 5.0, valid: float | None = None
    ) -> tuple[CandidateResult, str]:
        extra = {} if valid is None else {f"valid/{PRIMARY}": valid}
        result = CandidateResult(
            model_name=name,
            bundle_dir=bundle,
            params={},
            curves={"loss": [1.0, 0.5]},
            epochs=2,
            metrics={
                PRIMARY: ndcg,
                "hr@10": ndcg * 2,
                "coverage@10": coverage,
                "latency_p95_ms": latency,
                **extra,
            },
            data_hash="hash-1",
        )
        run_id, _ = log_candidate(result, parent, EXPERIMENT)
        return result, run_id

    return _log


def champion_version() -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(CFG.registered_model, "champion").version)
    except MlflowException:
        return None


def alias_version(alias: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(CFG.registered_model, alias).version)


def test_first_champion_then_worse_then_better(log: Logger, parent: str) -> None:
    from mlflow import MlflowClient

    first = promote([log("popularity", 0.20)], CFG, PRIMARY, parent_run_id=parent)
    assert first.promoted and first.champion_version_before is None
    assert first.challenger_version == first.champion_version_after == champion_version() == "1"
    assert "first champion" in first.reason

    # best of the batch is the challenger; within the margin (0.205 < 0.20 + 0.01) it does not win
    worse = promote([log("itemknn", 0.15), log("ease", 0.205)], CFG, PRIMARY, parent_run_id=parent)
    assert not worse.promoted
    assert worse.challenger_version == "2" and worse.evidence["challenger"]["model"] == "ease"
    assert worse.champion_version_before == worse.champion_version_after == champion_version() == "1"
    assert alias_version("challenger") == "2"
    assert "does not beat" in worse.reason

    better = promote([log("sasrec", 0.30)], CFG, PRIMARY, parent_run_id=parent)
    assert better.promoted
    assert (better.champion_version_before, better.champion_version_after) == ("1", "3")
    assert champion_version() == alias_version("challenger") == "3"

    client = MlflowClient()
    version = client.get_model_version(CFG.registered_model, "3")
    assert version.tags["data_hash"] == "hash-1"
    assert version.tags["primary_metric"] == PRIMARY and float(version.tags["ndcg_at_10"]) == 0.30
    assert version.tags["run_id"] == better.evidence["challenger"]["run_id"] == version.run_id
    assert version.tags["promotion"] == "promoted"
    assert client.get_model_version(CFG.registered_model, "2").tags["promotion"] == "rejected"
    assert all(
        mv.current_stage in (None, "None")
        for mv in client.search_model_versions(f"name = '{CFG.registered_model}'")
    )

    # the decision is on the parent run: tags + JSON artifact
    run = client.get_run(parent)
    assert run.data.tags["promotion.promoted"] == "true"
    assert run.data.tags["promotion.champion_version"] == "3"
    local = mlflow.artifacts.download_artifacts(run_id=parent, artifact_path="promotion/decision.json")
    saved = json.loads(Path(local).read_text())
    assert saved["promoted"] is True and saved["evidence"]["checks"]["primary"]["passed"] is True


@pytest.mark.parametrize(
    ("coverage", "latency", "guardrail"),
    [(0.1, 5.0, "coverage guardrail"), (0.4, 500.0, "latency guardrail")],
)
def test_guardrails_block_a_better_challenger(
    log: Logger, coverage: float, latency: float, guardrail: str
) -> None:
    promote([log("popularity", 0.20, coverage=0.4)], CFG, PRIMARY)
    decision = promote([log("sasrec", 0.50, coverage=coverage, latency=latency)], CFG, PRIMARY)
    assert not decision.promoted
    assert guardrail in decision.reason
    assert decision.champion_version_after == champion_version() == "1"
    assert alias_version("challenger") == decision.challenger_version == "2"
    assert decision.evidence["checks"]["primary"]["passed"]


def test_failed_or_partial_runs_never_become_champion(log: Logger, parent: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    # 1. logging crashed half way (no bundle): the run is FAILED, untagged, though its metrics were logged
    crashed = CandidateResult(
        "crashed",
        tmp_path / "missing",
        {PRIMARY: 0.99, "coverage@10": 0.5, "latency_p95_ms": 1.0},
        {},
        data_hash="hash-1",
    )
    with pytest.raises(ValueError):
        log_candidate(crashed, parent, EXPERIMENT)
    [crashed_run] = client.search_runs(
        [client.get_run(parent).info.experiment_id], filter_string="tags.model = 'crashed'"
    )
    # 2. complete logging but the run was then marked FAILED (e.g. the flow failed after it)
    failed, failed_id = log("failed", 0.98)
    client.set_terminated(failed_id, "FAILED")
    # 3. a FINISHED run that never got the completion tag
    partial, partial_id = log("partial", 0.97)
    client.delete_tag(partial_id, COMPLETE_TAG)
    # 4. a NaN primary metric
    nan, nan_id = log("nan", float("nan"))

    bad = [(crashed, crashed_run.info.run_id), (failed, failed_id), (partial, partial_id), (nan, nan_id)]
    none = promote(bad, CFG, PRIMARY)
    assert not none.promoted and none.challenger_version is None and champion_version() is None
    assert "No candidate is eligible" in none.reason
    reasons = {e["model"]: e["reason"] for e in none.evidence["eligibility"]}
    assert "FAILED" in reasons["crashed"] and "FAILED" in reasons["failed"]
    assert COMPLETE_TAG in reasons["partial"] and "not finite" in reasons["nan"]

    good = promote([*bad, log("popularity", 0.10)], CFG, PRIMARY)
    assert good.promoted and good.evidence["challenger"]["model"] == "popularity"
    assert client.get_model_version(CFG.registered_model, champion_version()).tags["model"] == "popularity"


def test_champion_is_reevaluated_on_current_data(log: Logger) -> None:
    promote([log("popularity", 0.40)], CFG, PRIMARY)
    seen: list[Path] = []

    def evaluate(bundle: Path) -> dict[str, float]:
        seen.append(bundle)
        assert (bundle / "meta.json").is_file() and (bundle / "model").is_dir()
        return {PRIMARY: 0.10, "coverage@10": 0.4, "latency_p95_ms": 5.0}  # champion got worse on new data

    # logged champion metric (0.40) would win; the re-evaluated one (0.10) loses
    decision = promote([log("itemknn", 0.30)], CFG, PRIMARY, evaluate_champion=evaluate)
    assert seen and decision.promoted
    assert decision.evidence["champion"]["metrics_source"].startswith(
        "re-evaluated models:/reco-test@champion"
    )

    def broken(bundle: Path) -> dict[str, float]:
        raise RuntimeError("vocabulary mismatch")

    # a failing re-evaluation falls back to the logged metrics (0.30 for the new champion) and says so
    kept = promote([log("ease", 0.305)], CFG, PRIMARY, evaluate_champion=broken)
    assert not kept.promoted
    assert "re-evaluation failed: RuntimeError" in kept.evidence["champion"]["metrics_source"]


def test_a_champion_of_another_catalogue_is_never_compared(log: Logger, tmp_path: Path) -> None:
    """A pipeline on another dataset into the same registry: its ids mean other items, so the champion is
    kept with a reason that names both datasets and what to do, and nothing is re-evaluated."""
    promote([log("popularity", 0.10)], CFG, PRIMARY)  # dataset "tiny"
    other = start_pipeline_run(EXPERIMENT, "other-shop", "hash-2", {})
    result = CandidateResult(
        model_name="ease", bundle_dir=make_bundle(tmp_path / "other", "popularity"), params={},
        curves={}, epochs=1, data_hash="hash-2",
        metrics={PRIMARY: 0.9, "hr@10": 0.95, "coverage@10": 0.9, "latency_p95_ms": 1.0},
    )  # fmt: skip
    run_id, _ = log_candidate(result, other, EXPERIMENT)

    def evaluate(bundle: Path) -> dict[str, float]:
        raise AssertionError("another catalogue's champion must not be re-evaluated here")

    decision = promote([(result, run_id)], CFG, PRIMARY, evaluate_champion=evaluate)
    assert not decision.promoted and champion_version() == "1" and alias_version("challenger") == "2"
    assert "it serves tiny" in decision.reason and "trained on other-shop" in decision.reason
    assert "sessionflow promote 2" in decision.reason


def test_challenger_is_selected_on_validation_not_test(log: Logger) -> None:
    # b is better on test, a on validation: the challenger is chosen on validation (test stays unbiased)
    a = log("a", ndcg=0.20, valid=0.30)
    b = log("b", ndcg=0.25, valid=0.10)
    decision = promote([a, b], CFG, PRIMARY)
    assert decision.evidence["challenger"]["model"] == "a"
    assert decision.evidence["selected_by"] == f"valid/{PRIMARY}"


def test_manual_rollback_is_recorded_like_the_gate(log: Logger, parent: str) -> None:
    from mlflow import MlflowClient

    from flows.manual_promotion import promote_version

    promote([log("popularity", 0.20)], CFG, PRIMARY, parent_run_id=parent)
    promote([log("sasrec", 0.30)], CFG, PRIMARY, parent_run_id=parent)
    assert champion_version() == "2"

    back = promote_version(CFG, "1", note="v2 misbehaves in production", primary_metric=PRIMARY)
    assert back.promoted and champion_version() == "1"
    assert (back.champion_version_before, back.champion_version_after) == ("2", "1")
    assert back.reason.startswith("Manual rollback: version 1 (popularity) replaced champion version 2")
    assert "misbehaves" in back.reason and back.evidence["version"]["metrics"][PRIMARY] == 0.20
    client = MlflowClient()
    tags = client.get_model_version(CFG.registered_model, "1").tags
    assert tags["promotion"] == "promoted" and tags["promotion_reason"] == back.reason
    [run] = client.search_runs(
        [client.get_run(parent).info.experiment_id], filter_string="tags.`sessionflow.role` = 'promotion'"
    )
    assert run.data.tags["promotion.champion_version"] == "1" and run.info.status == "FINISHED"
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="promotion/decision.json"
    )
    assert json.loads(Path(local).read_text())["evidence"]["kind"] == "rollback"

    forward = promote_version(CFG, 2, primary_metric=PRIMARY)
    assert (
        forward.promoted
        and forward.reason.startswith("Manual promotion: version 2")
        and champion_version() == "2"
    )
    same = promote_version(CFG, "2")
    assert not same.promoted and "already is the champion" in same.reason


def test_manual_promotion_refuses_unknown_and_unservable_versions(log: Logger, parent: str) -> None:
    from mlflow import MlflowClient

    from flows.manual_promotion import promote_version

    promote([log("popularity", 0.20)], CFG, PRIMARY, parent_run_id=parent)
    with pytest.raises(LookupError, match=r"no version '7'; registered versions: 1"):
        promote_version(CFG, "7")
    _, partial_id = log("partial", 0.5)
    client = MlflowClient()
    client.delete_tag(partial_id, COMPLETE_TAG)
    uri = client.get_run(partial_id).data.tags["sessionflow.model_uri"]
    version = mlflow.register_model(uri, CFG.registered_model).version
    with pytest.raises(ValueError, match="incomplete"):
        promote_version(CFG, version)
    assert champion_version() == "1"
