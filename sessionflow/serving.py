"""Where the platform and a running service meet: the BentoML home (model store), the release record in it,
and the request log. Shared by packaging (flows/package.py), monitoring and forgetting; the service computes
the same locations itself (bento/service.py), from the same components."""

from __future__ import annotations

from pathlib import Path

from components.release import Release, read_release, release_path
from components.request_log import request_log_path

BENTOML_MODEL_NAME = "sessionflow-recommender"


def bentoml_home() -> Path:
    """The BentoML home in use ($BENTOML_HOME, else BentoML's default)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get())


def current_release_path(model_name: str = BENTOML_MODEL_NAME) -> Path:
    return release_path(bentoml_home(), model_name)


def current_release(model_name: str = BENTOML_MODEL_NAME) -> Release | None:
    """The release record services follow; None when nothing was released (or it is unreadable)."""
    try:
        return read_release(current_release_path(model_name))
    except ValueError:
        return None


def request_log_location(feedback_url: str) -> Path:
    """Where services log requests: ``$SESSIONFLOW_REQUEST_LOG_DB``, ``requests.db`` next to a SQLite feedback
    log, else ``<BentoML home>/sessionflow/requests.db`` (as bento/service.py decides)."""
    return request_log_path(feedback_url) or bentoml_home() / "sessionflow" / "requests.db"
