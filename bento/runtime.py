"""Production plumbing of the service that is not request parsing or ranking: the model folder's integrity
check, 503 answers with Retry-After, replay of idempotent /feedback answers, server-issued session ids,
and what /metadata may say about where feedback is stored.

bento/service.py stays thin and calls these; bento/security.py is the ASGI guard in front of it and
bento/batching.py the micro-batcher behind /recommend.
"""

from __future__ import annotations

import collections
import gc
import inspect
import logging
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

from bento.security import RETRY_AFTER_S
from components.feedback_log import redact_url, sqlite_path

logger = logging.getLogger("sessionflow.service")

SESSION_ID_PREFIX = "s_"
ACCESS_LOG_ENV = "SESSIONFLOW_ACCESS_LOG"
# How often (s) a thread holding the GIL is asked to hand it over; Python's default is 5 ms, which makes the
# event loop wait behind any busy thread (dialogue engine, feedback writes) for whole milliseconds.
GIL_SWITCH_INTERVAL_S = 0.001
IDEMPOTENCY_HEADER = "idempotency-key"


def verify_model_folder(model_dir: Path) -> int:
    """sha256 of every packaged file against ``checksums.json`` (components.integrity); raises
    ``BundleIntegrityError`` naming the file and the problem. Returns the number of files checked."""
    from components.integrity import STORE_FILES, verify

    return verify(model_dir, ignore=STORE_FILES)


def access_log_enabled(env: Any = os.environ) -> bool:
    """BentoML's one-line-per-request access log: off unless ``SESSIONFLOW_ACCESS_LOG=1``."""
    return str(env.get(ACCESS_LOG_ENV, "")).strip().lower() in ("1", "true", "yes", "on")


def tune_interpreter() -> None:
    """A shorter GIL switch interval for the HTTP worker (see ``GIL_SWITCH_INTERVAL_S``)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def freeze_startup_heap() -> None:
    """After start-up: move everything loaded so far (model, catalogue, engine) out of the cyclic garbage
    collector's reach (``gc.freeze``), so a full collection under load no longer walks the whole heap and
    stalls the event loop for hundreds of milliseconds."""
    gc.collect()
    gc.freeze()


def cache_api_signatures(service_cls: Any) -> None:
    """BentoML 1.4 calls ``inspect.signature`` on an API function for every request; give each function its
    signature once (``inspect.signature`` returns ``__signature__`` when set)."""
    for api in getattr(service_cls, "apis", {}).values():
        func = getattr(api, "func", None)
        if func is not None and getattr(func, "__signature__", None) is None:
            func.__signature__ = inspect.signature(func)


def unavailable(reason: str, retry_after_s: int = RETRY_AFTER_S) -> JSONResponse:
    """503 with Retry-After: the request was not done, and retrying later is safe."""
    return JSONResponse({"error": reason}, status_code=503, headers={"Retry-After": str(retry_after_s)})


def conflict(reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=409)


def new_session_id() -> str:
    """An unguessable session id (144 random bits, URL-safe)."""
    return SESSION_ID_PREFIX + secrets.token_urlsafe(18)


def feedback_location(url: str) -> str:
    """Where feedback goes, for /metadata and logs: the backend and file name or host, never an absolute
    path or credentials."""
    if url.startswith(("postgresql://", "postgres://")):
        return redact_url(url)
    return f"sqlite:{sqlite_path(url).name}"


class ReplayCache:
    """The answers to the last ``size`` idempotent /feedback requests, by key: a client retry gets the very
    answer it missed. (The log itself never stores an event twice; after a restart a retry re-applies the
    event to the session, whose in-memory state was lost with the restart anyway.)"""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._answers: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
            return answer

    def put(self, key: str, answer: dict[str, Any]) -> None:
        with self._lock:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)


class ReadinessLog:
    """Logs readiness changes once (not on every probe)."""

    def __init__(self) -> None:
        self._last: tuple[bool, str] | None = None

    def update(self, ready: bool, reason: str) -> bool:
        if self._last is None or self._last[0] != ready:
            if ready:
                if self._last is not None:
                    logger.warning("ready again: the feedback store is back")
            else:
                logger.error("not ready: %s", reason)
        self._last = (ready, reason)
        return ready


__all__ = [
    "ACCESS_LOG_ENV",
    "IDEMPOTENCY_HEADER",
    "access_log_enabled",
    "cache_api_signatures",
    "freeze_startup_heap",
    "tune_interpreter",
    "ReadinessLog",
    "ReplayCache",
    "conflict",
    "feedback_location",
    "new_session_id",
    "unavailable",
    "verify_model_folder",
]
