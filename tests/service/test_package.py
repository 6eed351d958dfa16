"""Packaging: a real MLflow registry (sqlite, temporary) -> BentoML model -> bento."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from components.dialogue.config import ConversationConfig
from flows import package
from tests.service import DATA_HASH, isolated_bentoml_home, make_bundle

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REGISTERED = "sessionflow-test"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A temporary MLflow tracking/registry store with one bundle registered and aliased 'champion'."""
    import mlflow
    from mlflow import MlflowClient

    from flows.mlflow_model import log_bundle_model

    tmp = tmp_path_factory.mktemp("mlflow")
    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    try:
        with isolated_bentoml_home(tmp_path_factory.mktemp("bentoml_home")):
            artifacts = (tmp / "artifacts").as_uri()
            experiment = mlflow.create_experiment("package-test", artifact_location=artifacts)
            with mlflow.start_run(experiment_id=experiment) as run:
                info = log_bundle_model(make_bundle(tmp / "bundle"))
            version = mlflow.register_model(info.model_uri, REGISTERED).version
            MlflowClient().set_registered_model_alias(REGISTERED, "champion", version)
            yield {"run_id": run.info.run_id, "version": str(version), "model_uri": info.model_uri}
    finally:
        mlflow.set_tracking_uri(None)
        if saved_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


@pytest.fixture(scope="module")
def champion(registry) -> package.PackagedModel:
    return package.import_champion(REGISTERED)


def test_import_champion_saves_the_exact_version(champion, registry):
    import bentoml

    name, _, version = champion.tag.partition(":")
    assert name == package.BENTOML_MODEL_NAME and version and version != "latest"
    assert champion.registered_model == REGISTERED
    assert champion.mlflow_model_version == registry["version"]
    assert champion.mlflow_run_id == registry["run_id"]
    assert champion.data_hash == DATA_HASH
    assert champion.model == "itemknn"
    stored = bentoml.models.get(champion.tag)
    assert stored.info.labels["mlflow_model_version"] == registry["version"]
    assert stored.info.metadata["mlflow_model_uri"] == f"models:/{REGISTERED}/{registry['version']}"
    assert stored.info.metadata["metrics"]["ndcg@10"] == pytest.approx(0.42)
    for name in ("meta.json", "vocab.json", "items.parquet", "model", "conversation/index.json",
                 "conversation/embeddings.npy", "conversation/bm25"):  # fmt: skip
        assert (Path(stored.path) / name).exists(), name


def test_packaged_index_is_what_load_engine_uses(champion):
    """The packaged conversation index: the catalogue texts' encodings (one row per vocabulary item), the
    facets, and it is what ``load_engine`` (the service's one engine builder) loads."""
    import bentoml
    import numpy as np

    from components.dialogue.engine import load_engine
    from components.dialogue.index import CatalogueIndex
    from components.text_encoder import EMBEDDING_DIM, get_encoder

    path = Path(bentoml.models.get(champion.tag).path)
    index = CatalogueIndex.load(path)
    assert index.embeddings.shape == (len(index), EMBEDDING_DIM) and index.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-4)
    assert index.texts[0] == "Movie 1. Sci-Fi"  # title + categories of the bundle's items table
    assert np.allclose(index.embeddings[0], get_encoder().encode([index.texts[0]])[0], atol=1e-4)
    engine = load_engine(path)
    assert engine.index.item_ids == index.item_ids and np.array_equal(
        engine.index.embeddings, index.embeddings
    )


def test_import_champion_twice_reuses_the_stored_model(champion):
    again = package.import_champion(REGISTERED)
    assert again.tag == champion.tag and again.reused


def test_moving_the_alias_imports_the_new_version(champion, registry):
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    new_version = mlflow.register_model(registry["model_uri"], REGISTERED).version
    client.set_registered_model_alias(REGISTERED, "challenger", new_version)
    packaged = package.import_champion(REGISTERED, alias="challenger")
    assert packaged.mlflow_model_version == str(new_version)
    assert packaged.tag != champion.tag and not packaged.reused


def test_missing_alias_is_a_clear_error(registry):
    with pytest.raises(LookupError, match="no alias 'nope'"):
        package.import_champion(REGISTERED, alias="nope")


def test_build_bento_refuses_floating_or_unknown_models(registry, tmp_path):
    with pytest.raises(ValueError, match="not exact"):
        package.build_bento(f"{package.BENTOML_MODEL_NAME}:latest", tmp_path)
    with pytest.raises(LookupError, match="import_champion"):
        package.build_bento(f"{package.BENTOML_MODEL_NAME}:doesnotexist", tmp_path)


def test_package_champion_builds_releases_and_tags(champion, registry, tmp_path):
    """The one packaging path: a real `bentoml build` (~20 s) from a copy of the project's serving code with
    params.yaml's serve + conversation sections, then the release record and the MLflow lineage tags."""
    import time

    import bentoml
    from mlflow import MlflowClient

    from components.config import Settings
    from components.release import read_release, release_path

    skip = shutil.ignore_patterns("__pycache__")
    for folder in ("bento", "components", "models"):
        shutil.copytree(PROJECT_ROOT / folder, tmp_path / folder, ignore=skip)
    conversation = ConversationConfig(default_k=7, w_dense=0.25)
    settings = Settings.model_validate(
        {
            "promote": {"registered_model": REGISTERED},
            "serve": {"default_k": 4, "reload_interval_s": 2.5, "log_requests": False},
            "conversation": conversation.model_dump(),
        }
    )
    release = package.package_champion(settings, tmp_path, reason="first release")
    bento_tag = release.bento_tag
    assert release.model_tag == champion.tag and release.mlflow_model_version == registry["version"]
    assert release.reason == "first release" and release.mlflow_run_id == registry["run_id"]
    assert release.lineage["mlflow"]["version"] == registry["version"]
    assert (
        release.lineage["mlflow"]["version_created_at"] and release.lineage["data"]["data_hash"] == DATA_HASH
    )
    home = Path(os.environ["BENTOML_HOME"])
    assert read_release(release_path(home, package.BENTOML_MODEL_NAME)) == release

    client = MlflowClient()
    assert client.get_run(registry["run_id"]).data.tags["sessionflow.bento_tag"] == bento_tag
    version_tags = client.get_model_version(REGISTERED, registry["version"]).tags
    assert version_tags["sessionflow.bento_model_tag"] == champion.tag

    t0 = time.perf_counter()  # packaging the same champion again: same bento, same release
    assert package.package_champion(settings, tmp_path, reason="again") == release
    assert time.perf_counter() - t0 < 15

    name, _, version = bento_tag.partition(":")
    assert name == "sessionflow" and version and version != "latest"
    bento = bentoml.get(bento_tag)
    assert bento.info.args["model_tag"] == champion.tag
    assert bento.info.args["default_k"] == 4 and bento.info.args["reload_interval_s"] == 2.5
    assert bento.info.args["log_requests"] is False
    assert ConversationConfig.model_validate(bento.info.args["conversation"]) == conversation
    assert bento.info.labels["mlflow_model_version"] == champion.mlflow_model_version
    assert bento.info.labels["data_hash"] == DATA_HASH
    assert [str(m.tag) for m in bento.info.all_models] == [champion.tag]
    src = Path(bento.path) / "src"
    for rel in (
        "bento/service.py",
        "bento/schemas.py",
        "bento/model_holder.py",
        "bento/static/index.html",
        "bento/static/app.js",
        "bento/static/style.css",
        "components/bundle.py",
        "components/vocab.py",
        "components/vocabularies/movies.yaml",
        "models/__init__.py",
    ):
        assert (src / rel).is_file(), rel
    assert not list(src.rglob("__pycache__"))

    record = json.loads((tmp_path / "artifacts" / "bento.json").read_text())
    assert record["bento_tag"] == bento_tag and record["model_tag"] == champion.tag
    assert package.recorded_bento(tmp_path)["bento_tag"] == bento_tag
    assert package.serve_command(bento_tag, 3001)[-5:] == [bento_tag, "--host", "127.0.0.1", "--port", "3001"]


def test_serve_command():
    cmd = package.serve_command("sessionflow:abc123", 3000)
    assert cmd[:4] == [sys.executable, "-m", "bentoml", "serve"]
    assert cmd[4:] == ["sessionflow:abc123", "--host", "127.0.0.1", "--port", "3000"]
    for bad in ("sessionflow", "sessionflow:latest"):
        with pytest.raises(ValueError, match="not exact"):
            package.serve_command(bad, 3000)
    with pytest.raises(ValueError, match="port"):
        package.serve_command("sessionflow:abc123", 0)


def test_recorded_bento_missing_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="sessionflow package"):
        package.recorded_bento(tmp_path)


def test_bentofile_pins_the_running_environment():
    bentofile = yaml.safe_load((PROJECT_ROOT / package.BENTOFILE).read_text())
    assert bentofile["service"] == "bento.service:SessionRecommender"
    assert bentofile["python"]["lock_packages"] is False  # locking needs the network
    assert sorted(bentofile["python"]["packages"]) == sorted(package.pinned_requirements())
    for pattern in ("bento/service.py", "bento/schemas.py", "bento/static/**", "components/**/*.py"):
        assert pattern in bentofile["include"]
