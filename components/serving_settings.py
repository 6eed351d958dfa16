"""Deployment settings of the HTTP service, read from the environment (where secrets and per-deployment
values belong): the API key, the request-size limit, CORS origins, the concurrency limits.

Read by the service's ASGI guard (bento/security.py) and checked by ``sessionflow serve`` before it starts
the server, so a bad value is one line at start, not a worker that fails over and over.

==================================  =========================================================================
``SESSIONFLOW_API_KEY``             Bearer key for mutating/admin routes (``PROTECTED_ROUTES``, ``/admin/*``);
                                    at least 16 characters. Unset: those routes are open (a warning at start).
``SESSIONFLOW_MAX_REQUEST_BYTES``   largest request body (default 1 MiB); larger ones get 413.
``SESSIONFLOW_CORS_ORIGINS``        comma-separated origins allowed cross-site (default none: CORS off).
``SESSIONFLOW_MAX_IN_FLIGHT``       requests in flight before new ones get 503 (default 64), per worker.
``SESSIONFLOW_MAX_LOOP_LAG_MS``     refuse new requests (503) while the worker's event loop has run this far
                                    behind for 100 ms (default 30; 0 turns it off), per worker.
``SESSIONFLOW_WORKERS``             HTTP worker processes (default 1); sessions are shared between them.
``SESSIONFLOW_THREADS``             threads per worker for the synchronous routes (/chat, /feedback, /reset;
                                   default 2).
==================================  =========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

API_KEY_ENV = "SESSIONFLOW_API_KEY"
MAX_REQUEST_BYTES_ENV = "SESSIONFLOW_MAX_REQUEST_BYTES"
CORS_ORIGINS_ENV = "SESSIONFLOW_CORS_ORIGINS"
MAX_IN_FLIGHT_ENV = "SESSIONFLOW_MAX_IN_FLIGHT"
MAX_LOOP_LAG_ENV = "SESSIONFLOW_MAX_LOOP_LAG_MS"
DEFAULT_MAX_REQUEST_BYTES = 1 << 20  # 1 MiB
DEFAULT_MAX_IN_FLIGHT = 64
# A request not answered (no response started) within this many seconds gets 504 (the guard's timeout; it
# replaces BentoML's TimeoutMiddleware, whose timer outlived every request: bento/security.py).
REQUEST_TIMEOUT_S = 30.0
DEFAULT_MAX_LOOP_LAG_MS = 30
MIN_API_KEY_CHARS = 16
# Mutating or admin routes: need the API key when one is configured (and so does anything under /admin/).
PROTECTED_ROUTES = frozenset({"/feedback", "/reset", "/reload", "/promote", "/rollback"})
# Routes served one at a time in the worker's thread: a short queue, then 503 (the batched /recommend
# sheds by its own queue delay, bento/batching.py).
ROUTE_LIMITS: Mapping[str, int] = {"/chat": 32, "/feedback": 64, "/reset": 64}


SERVICE_NAME = "sessionflow"  # the BentoML service (and bento) name
WORKERS_ENV = "SESSIONFLOW_WORKERS"
THREADS_ENV = "SESSIONFLOW_THREADS"
# Routes left out of BentoML's OpenTelemetry tracing (``tracing_config``).
UNTRACED_ROUTES = ("recommend", "recommend_batch", "chat", "feedback", "reset", "metadata", "readyz", "livez")


def tracing_config() -> dict[str, list[str]]:
    """The service's ``tracing`` setting: its routes are left out. Without an exporter BentoML still builds
    an OpenTelemetry span per request and sends it nowhere; on the 2-core box that cost about 40% of
    /recommend's throughput (docs/results.md, "Serving under load"). It is service configuration, so the
    workers get it too (a top-level ``tracing`` option in ``BENTOML_CONFIG_OPTIONS`` is overwritten by each
    service's own section when a worker loads the service). A deployment that wants traces configures
    ``services.sessionflow.tracing`` (exporter and ``excluded_urls``) in its BentoML configuration."""
    return {"excluded_urls": list(UNTRACED_ROUTES)}


def service_workers(env: Mapping[str, str] = os.environ) -> int:
    """HTTP worker processes of the service (``SESSIONFLOW_WORKERS``, default 1). Each worker has its own
    event loop and /recommend scoring process; with more than one, conversation sessions move to a store
    the workers share (components/dialogue/stores.py). ValueError (one line) for a malformed value."""
    return _positive_int(env, WORKERS_ENV, 1)


def service_threads(env: Mapping[str, str] = os.environ) -> int:
    """Threads per worker that run the synchronous routes (/chat, /feedback, /reset: BentoML's ``threads``;
    ``SESSIONFLOW_THREADS``, default 2). A /chat turn spends about half its time in the sentence encoder,
    which runs without the GIL: with two threads one turn encodes while another plans, and a worker's turns
    stop queueing behind each other. Real INSPIRED messages at 100 req/s on 2 cores, two workers: p99 141 ms
    with one thread, 73 ms with two, 111 ms with four (docs/results.md). The engine, the feedback log and
    the idempotency cache lock what they share. ValueError (one line) for a malformed value."""
    return _positive_int(env, THREADS_ENV, 2)


@dataclass(frozen=True)
class GuardSettings:
    """What the guard enforces; ``from_env`` reads the environment (the deployment's settings)."""

    api_key: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    cors_origins: tuple[str, ...] = ()
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    request_timeout_s: float = REQUEST_TIMEOUT_S
    max_loop_lag_ms: int = DEFAULT_MAX_LOOP_LAG_MS  # 0: off
    route_limits: Mapping[str, int] = field(default_factory=lambda: dict(ROUTE_LIMITS))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GuardSettings:
        """The settings from ``env``; ValueError (one line) for a malformed value."""
        key = env.get(API_KEY_ENV, "").strip() or None
        if key is not None and len(key) < MIN_API_KEY_CHARS:
            raise ValueError(
                f"{API_KEY_ENV} is too short ({len(key)} characters): "
                f"use at least {MIN_API_KEY_CHARS} random ones"
            )
        origins = tuple(o.strip().rstrip("/") for o in env.get(CORS_ORIGINS_ENV, "").split(",") if o.strip())
        if "*" in origins and key is not None:
            raise ValueError(f"{CORS_ORIGINS_ENV}='*' together with an API key: list the allowed origins")
        return cls(
            api_key=key,
            max_request_bytes=_positive_int(env, MAX_REQUEST_BYTES_ENV, DEFAULT_MAX_REQUEST_BYTES),
            cors_origins=origins,
            max_in_flight=_positive_int(env, MAX_IN_FLIGHT_ENV, DEFAULT_MAX_IN_FLIGHT),
            max_loop_lag_ms=_positive_int(env, MAX_LOOP_LAG_ENV, DEFAULT_MAX_LOOP_LAG_MS, allow_zero=True),
        )

    def describe(self) -> str:
        """One line for the start-up log (never the key itself)."""
        auth = "API key required on " + ", ".join(sorted(PROTECTED_ROUTES)) if self.api_key else "no API key"
        cors = f"CORS for {list(self.cors_origins)}" if self.cors_origins else "CORS off"
        limit, flight = self.max_request_bytes, self.max_in_flight
        lag = f"{self.max_loop_lag_ms} ms" if self.max_loop_lag_ms else "off"
        return (
            f"{auth}; body limit {limit} bytes; {cors}; at most {flight} requests in flight; "
            f"shedding on event-loop lag: {lag}"
        )


def _positive_int(env: Mapping[str, str], name: str, default: int, allow_zero: bool = False) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be at least {0 if allow_zero else 1}, got {value}")
    return value


__all__ = [
    "API_KEY_ENV",
    "CORS_ORIGINS_ENV",
    "MAX_IN_FLIGHT_ENV",
    "MAX_LOOP_LAG_ENV",
    "MAX_REQUEST_BYTES_ENV",
    "PROTECTED_ROUTES",
    "REQUEST_TIMEOUT_S",
    "ROUTE_LIMITS",
    "SERVICE_NAME",
    "UNTRACED_ROUTES",
    "WORKERS_ENV",
    "GuardSettings",
    "service_threads",
    "service_workers",
    "tracing_config",
]
