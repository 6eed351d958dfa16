"""Packaging: MLflow champion -> BentoML model -> bento -> release record -> the command that serves it.

``package_champion`` is the one packaging path: ``sessionflow package``, ``sessionflow promote``, the
pipeline's package task and dvc.yaml's ``package`` stage all call it, so every params.yaml section that
shapes the service (``serve``, ``conversation``, the embedding cache) reaches the bento the same way. It ends
by writing the release record (components/release.py), which running services follow (hot reload), and by
tagging the MLflow run and registered version with the bento it became (lineage).

Every step pins an exact identity: the alias is resolved once to an MLflow model version, the bundle is saved
under an exact BentoML model tag, the bento is built with that tag as its ``model_tag`` argument (stored in
the bento), and the bento tag is recorded in ``artifacts/bento.json`` for ``sessionflow serve``. Nothing here
refers to ``latest``.

The BentoML model folder also holds the catalogue's item text embeddings (``item_text.npy``, and
``item_text.json`` with the hash of the texts they encode), so the service starts without encoding the
catalogue; the conversation settings travel in the bento as the ``conversation`` argument.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.config import Settings
from components.release import Release, read_release, write_release
from flows.bento_build import (  # noqa: F401 - re-exported: the packaging interface
    BENTO_RECORD,
    BENTOFILE,
    SERVICE_PACKAGES,
    SOURCE_ROOT,
    _bentoml_home,
    _check_exact,
    build_bento,
    pinned_requirements,
    recorded_bento,
    serve_command,
)
from sessionflow.serving import BENTOML_MODEL_NAME, current_release_path

# Read by bento/model_holder.py (build_engine); the json holds the hash of the texts the rows encode.
ITEM_EMBEDDINGS, ITEM_EMBEDDINGS_META = "item_text.npy", "item_text.json"


@dataclass(frozen=True)
class PackagedModel:
    """A bundle saved in the BentoML model store, with where it came from."""

    tag: str  # exact BentoML model tag, name:version
    registered_model: str
    mlflow_model_version: str
    mlflow_run_id: str
    data_hash: str
    model: str
    reused: bool = False  # True when this MLflow version was already in the store
    lineage: dict[str, Any] = field(default_factory=dict)


def package_champion(settings: Settings, root: str | Path, reason: str = "", force: bool = False) -> Release:
    """The one packaging path: import the champion of ``settings.promote.registered_model`` into the
    BentoML store (item embeddings cached under ``<root>/.cache/embeddings``), build its bento with
    ``settings.serve`` and ``settings.conversation`` (an identical earlier build is reused), then write the
    release record running services follow and tag the MLflow run/version with the result.

    The release record is rewritten only when it names another model (or ``force``): repackaging the same
    champion keeps its original release time.
    """
    root = Path(root).resolve()
    packaged = import_champion(
        settings.promote.registered_model, embedding_cache_dir=root / ".cache" / "embeddings"
    )
    bento_tag = build_bento(packaged.tag, root, settings.serve, settings.conversation)
    path = current_release_path()
    current = read_release(path)
    if current is not None and current.model_tag == packaged.tag and not force:
        if current.bento_tag == bento_tag:
            return current
        release = current.model_copy(update={"bento_tag": bento_tag})
    else:
        release = Release(
            model_tag=packaged.tag,
            registered_model=packaged.registered_model,
            mlflow_model_version=packaged.mlflow_model_version,
            mlflow_run_id=packaged.mlflow_run_id,
            bento_tag=bento_tag,
            reason=reason or f"champion version {packaged.mlflow_model_version} packaged",
            lineage=packaged.lineage,
        )
    write_release(path, release)
    _tag_mlflow(release)
    return release


def _tag_mlflow(release: Release) -> None:
    """The bento and release on the MLflow run and the registered version, plus the whole chain as
    ``lineage/release.json`` on the run."""
    from mlflow import MlflowClient

    client = MlflowClient()
    tags = {
        "sessionflow.bento_model_tag": release.model_tag,
        "sessionflow.bento_tag": release.bento_tag or "",
        "sessionflow.released_at": release.released_at,
    }
    for key, value in tags.items():
        if release.mlflow_run_id:
            client.set_tag(release.mlflow_run_id, key, value)
        client.set_model_version_tag(release.registered_model, release.mlflow_model_version, key, value)
    if release.mlflow_run_id:
        client.log_text(release.mlflow_run_id, release.model_dump_json(indent=2), "lineage/release.json")


def import_champion(
    registered_model: str,
    alias: str = "champion",
    bentoml_model_name: str = BENTOML_MODEL_NAME,
    embedding_cache_dir: str | Path | None = None,
) -> PackagedModel:
    """Save the model version behind ``registered_model@alias`` into the BentoML model store.

    Uses the ambient MLflow tracking/registry URI. Importing the same MLflow version twice returns the
    model already in the store (matched by its labels) instead of a duplicate. The catalogue's item text
    embeddings are computed here (``write_item_embeddings``; ``embedding_cache_dir`` caches them).
    """
    import bentoml
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from flows.mlflow_model import fetch_bundle

    try:
        mv = MlflowClient().get_model_version_by_alias(registered_model, alias)
    except MlflowException as exc:
        raise LookupError(
            f"registered model {registered_model!r} has no alias {alias!r}: promote a model first"
            f" (MLflow said: {exc.message})"
        ) from exc
    labels = {
        "registered_model": registered_model,
        "mlflow_model_version": str(mv.version),
        "mlflow_run_id": mv.run_id or "",
    }
    existing = _find_model(bentoml_model_name, labels)
    if existing is not None:
        return _packaged(existing, reused=True)

    with tempfile.TemporaryDirectory(prefix="sessionflow-fetch-") as tmp:
        bundle = fetch_bundle(f"models:/{registered_model}/{mv.version}", tmp)
        meta = json.loads((bundle / "meta.json").read_text())
        write_item_embeddings(bundle, embedding_cache_dir)
        labels |= {"data_hash": str(meta.get("data_hash", "")), "model": str(meta.get("model", ""))}
        metadata = {
            "alias_at_import": alias,
            "mlflow_model_uri": f"models:/{registered_model}/{mv.version}",
            "mlflow_source": str(mv.source or ""),
            "n_items": int(meta.get("n_items", 0)),
            "metrics": {k: float(v) for k, v in (meta.get("metrics") or {}).items() if _is_number(v)},
            "lineage": _without_none(_lineage(meta, mv)),  # BentoML metadata refuses None
        }
        with bentoml.models.create(bentoml_model_name, labels=labels, metadata=metadata) as bento_model:
            shutil.copytree(bundle, bento_model.path, dirs_exist_ok=True)
    return _packaged(bentoml.models.get(bento_model.tag), reused=False)


def _lineage(meta: dict[str, Any], mv: Any) -> dict[str, Any]:
    """The chain so far: the bundle's data/code lineage, its MLflow run and registered version."""
    from mlflow import MlflowClient

    run_started = None
    if mv.run_id:
        with contextlib.suppress(Exception):  # a run deleted since registration still packages
            run_started = _iso_ms(MlflowClient().get_run(mv.run_id).info.start_time)
    chain = dict(meta.get("lineage") or {"data": {"data_hash": meta.get("data_hash")}})
    chain["bundle"] = {"model": meta.get("model"), "created_at": meta.get("created_at")}
    chain["mlflow"] = {
        "run_id": mv.run_id,
        "run_started_at": run_started,
        "registered_model": mv.name,
        "version": str(mv.version),
        "version_created_at": _iso_ms(mv.creation_timestamp),
    }
    chain["bentoml"] = {"imported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    return chain


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value if v is not None]
    return value


def _iso_ms(epoch_ms: int | None) -> str | None:
    return (
        None
        if epoch_ms is None
        else datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds")
    )


def write_item_embeddings(bundle_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Encode the bundle's catalogue texts exactly as the service's conversation engine builds them and
    save them next to the bundle (``item_text.npy``, one row per vocabulary item, + ``item_text.json``)."""
    import numpy as np
    import pandas as pd

    from components.bundle import ITEMS_FILE, Predictor
    from components.dialogue.catalogue import Catalogue
    from components.text_encoder import EMBEDDING_DIM, texts_hash

    bundle_dir = Path(bundle_dir)
    predictor = Predictor.load(bundle_dir)
    items_path = bundle_dir / ITEMS_FILE
    items = (
        pd.read_parquet(items_path)
        if items_path.is_file()
        else pd.DataFrame({"item_id": list(predictor.titles), "title": list(predictor.titles.values())})
    )
    catalogue = Catalogue.build(predictor, items, None, str(cache_dir) if cache_dir else None)
    np.save(bundle_dir / ITEM_EMBEDDINGS, catalogue.embeddings.astype(np.float32))
    info = {"texts_hash": texts_hash(catalogue.texts), "n_items": len(catalogue), "dim": EMBEDDING_DIM}
    (bundle_dir / ITEM_EMBEDDINGS_META).write_text(json.dumps(info, indent=2))
    return bundle_dir / ITEM_EMBEDDINGS


def _find_model(name: str, labels: dict[str, str]):  # -> bentoml Model | None
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name)
    except NotFound:  # no model of that name yet
        return None
    for model in models:
        have = model.info.labels
        if all(have.get(k) == v for k, v in labels.items()):
            return model
    return None


def _packaged(model, reused: bool) -> PackagedModel:
    labels = model.info.labels
    return PackagedModel(
        tag=str(model.tag),
        registered_model=labels.get("registered_model", ""),
        mlflow_model_version=labels.get("mlflow_model_version", ""),
        mlflow_run_id=labels.get("mlflow_run_id", ""),
        data_hash=labels.get("data_hash", ""),
        model=labels.get("model", ""),
        reused=reused,
        lineage=dict((model.info.metadata or {}).get("lineage") or {}),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


__all__ = [
    "BENTOML_MODEL_NAME",
    "PackagedModel",
    "build_bento",
    "import_champion",
    "package_champion",
    "pinned_requirements",
    "recorded_bento",
    "serve_command",
    "write_item_embeddings",
]
