"""Simulated conversations on the test split of a tiny real ML-100k bundle, logged to a temp MLflow store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flows import use_tracking
from tests.unit.dialogue_fixtures import EMBEDDING_CACHE, fixture

mlflow = pytest.importorskip("mlflow")

N_USERS = 8
MAX_TURNS = 3


@pytest.fixture()
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from use_tracking(tmp_path / "mlruns-root", monkeypatch)


@pytest.fixture(scope="module")
def features():
    """Leave-one-out features over the fixture's interactions: a vocabulary of its own (train part only)."""
    from components.config import FeaturesConfig
    from components.features import build_features

    return build_features(fixture().interactions, FeaturesConfig(text_embeddings=False))


@pytest.fixture(scope="module")
def sim_metrics(features) -> dict[str, float]:
    from components.dialogue import ConversationConfig
    from flows.simulation import simulate_champion

    fx = fixture()
    return simulate_champion(
        fx.bundle_dir,
        features,
        ConversationConfig(),
        n_users=N_USERS,
        k=10,
        max_turns=MAX_TURNS,
        seed=0,
        embedding_cache=EMBEDDING_CACHE,
    )


def test_cases_map_the_test_split_by_raw_id(features) -> None:
    from flows.simulation import cases_from_test_split

    fx = fixture()
    last = fx.interactions.sort_values(["user_id", "timestamp"], kind="stable").groupby("user_id")["item_id"]
    raw_targets = {str(t) for t in last.last()}
    bundle_vocab = fx.predictor.vocab
    cases, skipped = cases_from_test_split(features, set(bundle_vocab.item_ids), None)
    assert cases and skipped + len(cases) == len(features.test.targets)
    for case in cases[:50]:
        assert case.target in raw_targets and case.target in bundle_vocab
        assert case.target not in case.history
    # a bundle that knows only part of the catalogue: unknown targets are left out, not mis-mapped
    half = set(bundle_vocab.item_ids[: len(bundle_vocab) // 2])
    some, skipped_more = cases_from_test_split(features, half, None)
    assert all(c.target in half for c in some) and skipped_more > skipped
    sampled, _ = cases_from_test_split(features, set(bundle_vocab.item_ids), 5, seed=1)
    again, _ = cases_from_test_split(features, set(bundle_vocab.item_ids), 5, seed=1)
    assert len(sampled) == 5 and sampled == again


def test_simulate_champion_metrics_are_well_formed(sim_metrics: dict[str, float]) -> None:
    m = sim_metrics
    assert m["sim/n_users"] == N_USERS and m["sim/max_turns"] == MAX_TURNS
    for key in ("sim/success_at_10", "sim/cold/success_at_10", "sim/model_only_hit_at_10"):
        assert 0.0 <= m[key] <= 1.0, key
    for prefix in ("sim", "sim/cold"):
        per_turn = [m[f"{prefix}/success_at_10/turn_{t}"] for t in range(1, MAX_TURNS + 1)]
        assert per_turn == sorted(per_turn) and per_turn[-1] == m[f"{prefix}/success_at_10"]
        turns = m[f"{prefix}/mean_turns_to_success"]
        assert math.isnan(turns) if per_turn[-1] == 0 else 1.0 <= turns <= MAX_TURNS
    assert all("@" not in key for key in m)


def test_log_simulation_to_an_existing_run(tracking: str, sim_metrics: dict[str, float]) -> None:
    from mlflow import MlflowClient

    from flows.simulation import log_simulation
    from flows.tracking import get_or_create_experiment

    client = MlflowClient()
    run_id = client.create_run(get_or_create_experiment("sessionflow-sim-test", client)).info.run_id
    log_simulation({**sim_metrics, "sim/extra@5": 0.5}, run_id)
    logged = client.get_run(run_id).data.metrics
    assert logged["sim/extra_at_5"] == 0.5
    for key, value in sim_metrics.items():
        assert key in logged, key
        assert (math.isnan(logged[key]) and math.isnan(value)) or logged[key] == pytest.approx(value)
    assert "own tags" in client.get_run(run_id).data.tags["sessionflow.simulation"]
    with pytest.raises(ValueError, match="must be numbers"):
        log_simulation({"sim/bad": "x"}, run_id)  # type: ignore[dict-item]


def test_challenger_of_picks_the_registered_run() -> None:
    from types import SimpleNamespace

    from flows.simulation import challenger_of

    results = [(SimpleNamespace(model_name="ease"), "r1"), (SimpleNamespace(model_name="sasrec"), "r2")]
    decision = SimpleNamespace(evidence={"challenger": {"run_id": "r2", "model": "sasrec"}})
    assert challenger_of(results, decision) == results[1]  # type: ignore[arg-type]
    assert challenger_of(results, SimpleNamespace(evidence={})) is None  # type: ignore[arg-type]


def test_pipeline_step_logs_to_candidate_and_parent_runs(
    tracking: str, features, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """simulate_challenger as the flow calls it: features and clean items from the project folders."""
    import json
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from components.config import Settings
    from components.features import save_features
    from flows.simulation import simulate_challenger
    from flows.tracking import get_or_create_experiment
    from sessionflow import stages

    fx = fixture()
    settings = Settings()
    root = tmp_path / "project"
    paths = stages.paths_for(settings, root)
    save_features(features, paths.features)
    paths.clean.mkdir(parents=True)
    fx.items.to_parquet(paths.clean / "items.parquet", index=False)
    paths.interim.mkdir(parents=True)
    (paths.interim / "ingest.json").write_text(json.dumps({"data_hash": "test"}))
    paths.cache.mkdir(parents=True)
    (paths.cache / "embeddings").symlink_to(EMBEDDING_CACHE)  # the fixture's item embeddings: no re-encoding
    client = MlflowClient()
    experiment = get_or_create_experiment("sessionflow-sim-step", client)
    parent = client.create_run(experiment).info.run_id
    child = client.create_run(experiment).info.run_id
    client.set_terminated(child, "FINISHED")  # candidate runs are closed by the time promotion decides
    result = SimpleNamespace(model_name="ease", bundle_dir=fx.bundle_dir)
    decision = SimpleNamespace(evidence={"challenger": {"run_id": child}})
    args = ([(result, child)], decision, settings, root, parent)
    metrics = simulate_challenger(*args, n_users=4, max_turns=2)  # type: ignore[arg-type]
    assert metrics is not None and metrics["sim/n_users"] == 4
    for run_id in (parent, child):
        assert client.get_run(run_id).data.metrics["sim/success_at_10"] == metrics["sim/success_at_10"]
    assert client.get_run(parent).data.tags["sessionflow.simulation.model"] == "ease"
    # a broken step is a warning, never an exception
    broken = ([(SimpleNamespace(model_name="x", bundle_dir=tmp_path / "none"), child)], decision)
    with caplog.at_level("WARNING"):
        assert simulate_challenger(*broken, settings, root, parent) is None  # type: ignore[arg-type]
    assert "failed and is skipped" in caplog.text
