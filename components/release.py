"""The release record: which exact model every running service should serve now, and where it came from.

Packaging (``sessionflow package``, the pipeline's package step, ``sessionflow promote``) writes it after the
champion is in the BentoML model store; a running service polls it and switches to the model it names
(``bento/model_holder.py``). One small JSON file, replaced atomically (write + rename), so a reader sees the
old record or the new one, never half of one.

Where it lives: ``$SESSIONFLOW_RELEASE_FILE`` when set, else ``<BentoML home>/sessionflow/release-<model
name>.json`` -- next to the model store both the packager and the service already share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RELEASE_FILE_ENV = "SESSIONFLOW_RELEASE_FILE"


class Release(BaseModel):
    """One release: the exact BentoML model tag to serve plus the lineage chain that led to it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_tag: str = Field(description="Exact BentoML model tag name:version (never 'latest').")
    registered_model: str = ""
    mlflow_model_version: str = ""
    mlflow_run_id: str = ""
    bento_tag: str | None = Field(None, description="The bento built for this model, when one was built.")
    released_at: str = Field(default_factory=lambda: now_iso())
    reason: str = Field("", description="Why: promotion decision, rollback, manual package.")
    lineage: dict[str, Any] = Field(default_factory=dict)


def now_iso() -> str:
    """Current UTC time, ISO-8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def release_path(bentoml_home: str | Path, model_name: str, env: Mapping[str, str] = os.environ) -> Path:
    """``$SESSIONFLOW_RELEASE_FILE``, else ``<bentoml_home>/sessionflow/release-<model_name>.json``."""
    if path := env.get(RELEASE_FILE_ENV, "").strip():
        return Path(path).expanduser().resolve()
    return Path(bentoml_home).expanduser().resolve() / "sessionflow" / f"release-{model_name}.json"


def write_release(path: str | Path, release: Release) -> Path:
    """Replace the record at ``path`` atomically (temp file in the same folder, fsync, rename)."""
    name, _, version = release.model_tag.partition(":")
    if not name or not version or version == "latest":
        raise ValueError(f"release model tag {release.model_tag!r} is not exact: give NAME:VERSION")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.write(release.model_dump_json(indent=2))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def read_release(path: str | Path) -> Release | None:
    """The record at ``path``; None when there is none yet. A malformed record is a ValueError naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Release.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"release record {path} is malformed: {exc}") from exc
