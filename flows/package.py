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

The BentoML model folder also holds the conversation's catalogue index (``conversation/``: facets, phrases,
item text embeddings, BM25; components.dialogue.packaging.write_index), so the service starts without
encoding the catalogue; the conversation settings travel in the bento as the ``conversation`` argument.
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
from components.integrity import CHECKSUMS_FILE
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
    index is built here (``write_index``; ``embedding_cache_dir`` caches the text embeddings).
    """
    import bentoml
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from components.dialogue.packaging import write_index
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
    if existing is not None and (Path(existing.path) / CHECKSUMS_FILE).is_file():  # else: import it again
        return _packaged(existing, reused=True)

    with tempfile.TemporaryDirectory(prefix="sessionflow-fetch-") as tmp:
        bundle = fetch_bundle(f"models:/{registered_model}/{mv.version}", tmp)
        meta = json.loads((bundle / "meta.json").read_text())
        write_index(bundle, embedding_cache_dir)  # the conversation's catalogue index, inside the bundle
        seal_bundle(bundle)  # last: refuses NaN/inf weights; checksums of every file, verified at every load
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


def seal_bundle(bundle_dir: str | Path) -> Path:
    """Refuse a bundle whose weights hold NaN or infinity, then write ``checksums.json`` (sha256 of every
    file; components/integrity.py). The service and ``sessionflow serve`` verify it before loading."""
    from components.integrity import seal

    return seal(bundle_dir)


def verify_packaged_model(model_tag: str) -> Path:
    """The folder of a stored BentoML model, after checking every file against its checksums; raises
    ``BundleIntegrityError`` (one line: the file and the problem) or LookupError (no such model)."""
    import bentoml
    from bentoml.exceptions import NotFound

    from components.integrity import STORE_FILES, verify

    try:
        path = Path(bentoml.models.get(model_tag).path)
    except NotFound:
        raise LookupError(f"BentoML model {model_tag} is not in the store at {_bentoml_home()}") from None
    verify(path, ignore=STORE_FILES)
    return path


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
    "seal_bundle",
    "serve_command",
    "verify_packaged_model",
]
