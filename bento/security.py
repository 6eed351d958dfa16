"""The service's front door: one ASGI middleware that every request passes before BentoML sees it.

It is the outermost layer of the worker's ASGI app (``front_door``, installed by bento/service.py), in
front of BentoML's own middlewares (Prometheus metrics, OpenTelemetry, context): a refusal then costs the
worker about 0.05 ms instead of 0.3 ms, which is what lets one worker refuse thousands of requests a second
while it serves the ones it took (docs/results.md, "Serving under load").

In order, for every HTTP request:

1. **CORS** only when origins are configured (``SESSIONFLOW_CORS_ORIGINS=https://a.example,https://b``);
   otherwise no CORS headers at all, so browsers keep other sites' pages out.
2. **Size**: a body over ``SESSIONFLOW_MAX_REQUEST_BYTES`` (default 1 MiB) is answered 413 -- from the
   Content-Length before reading anything, or while reading a body sent without one.
3. **Content type**: a POST/PUT/PATCH with a body must be ``application/json`` (or ``application/*+json``):
   anything else (``text/plain``, forms, multipart) is 415. This also stops cross-site "simple" requests,
   which cannot send JSON.
4. **API key**: when ``SESSIONFLOW_API_KEY`` is set, mutating and admin routes (``PROTECTED_ROUTES``, and
   anything under ``/admin/``) need ``Authorization: Bearer <key>``, compared in constant time; 401
   otherwise. Unset: open, and a warning is logged at start.
5. **Concurrency**: more than ``SESSIONFLOW_MAX_IN_FLIGHT`` requests in flight (default 64), or more than a
   route's own limit (``ROUTE_LIMITS``), is answered 503 at once -- overload is refused, never queued into
   a timeout. So is every request while the worker's event loop runs behind (``LoopLag``: its timer fired
   more than ``SESSIONFLOW_MAX_LOOP_LAG_MS``, default 30, late throughout the last 100 ms): requests then
   wait in the loop's queue before any handler sees them, so refusing at the door is what keeps both the
   refusals and the accepted answers fast. Admin requests are not shed on lag (a rollback must get through
   an overload), and nothing is while one runs: a catalogue change holds the loop by design, and shedding
   /recommend then failed calls that would have been answered.
   Every 503 and 429 leaving the service carries ``Retry-After``.
6. **Timeout**: a request whose answer has not started within ``REQUEST_TIMEOUT_S`` (30 s) gets 504. This
   replaces BentoML's ``TimeoutMiddleware``, which scheduled a 30 s timer per request and never cancelled
   it: every request's timer, future and context stayed alive for 30 s (15,000 of each at 500 req/s), each
   full garbage collection walked them (20-70 ms every second or two under load, growing with the rate),
   and those pauses were the latency tail and the slow refusals. Ours is cancelled when the answer starts.
7. **Logs**: one line per 4xx answer: method, route, status and the reason (field names and error types
   only -- never ids, values or a traceback). ``quiet_client_error_tracebacks`` stops BentoML from
   logging a traceback for each of them.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from components.serving_settings import (
    API_KEY_ENV,
    CORS_ORIGINS_ENV,
    MAX_REQUEST_BYTES_ENV,
    PROTECTED_ROUTES,
    GuardSettings,
)

logger = logging.getLogger("sessionflow.service")

ADMIN_PREFIX = "/admin/"
UNLIMITED_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
RETRY_AFTER_S = 1
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_LOGGED_BODY_BYTES = 8192

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_protected(path: str) -> bool:
    return path in PROTECTED_ROUTES or path.startswith(ADMIN_PREFIX)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class LoopLag:
    """How far behind the worker's event loop runs, measured the way CoDel measures a queue.

    A timer that should fire every ``interval_s`` records how late it fired. ``behind_s`` is the *smallest*
    lateness over the last ``window_s``: one slow callback or a burst makes one late sample and is ignored;
    a standing queue keeps every sample late. The loop is overloaded while ``behind_s > target_s``. The
    timer runs only while requests come (``ensure_started`` on each one starts it; a second without a
    request stops it), so an idle worker does not wake up a hundred times a second."""

    IDLE_STOP_S = 1.0

    def __init__(
        self,
        target_s: float,
        interval_s: float = 0.01,
        window_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target_s, self.interval_s, self.window_s = target_s, interval_s, window_s
        self._clock = clock
        self._last_request = 0.0
        self._samples: collections.deque[tuple[float, float]] = collections.deque()  # (time, lateness)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def ensure_started(self) -> None:
        """Note a request; start the timer in the running loop unless it runs."""
        self._last_request = self._clock()
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        self._loop, self._samples = loop, collections.deque()
        self._task = loop.create_task(self._run(), name="sessionflow-loop-lag")

    async def _run(self) -> None:
        while self._clock() - self._last_request < self.IDLE_STOP_S:
            expected = self._clock() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = self._clock()
            self.record(now, max(0.0, now - expected))

    def record(self, now: float, lateness_s: float) -> None:
        self._samples.append((now, lateness_s))
        while len(self._samples) > 2 and self._samples[0][0] < now - self.window_s:
            self._samples.popleft()  # the window, and never fewer than the last two ticks

    @property
    def behind_s(self) -> float:
        """The smallest lateness of the window (at least the last two ticks: a single long stall, such as a
        catalogue change that held the loop 250 ms, is one late tick after a prompt one, not a queue); 0
        without two samples or without a recent one (idle or just started)."""
        if len(self._samples) < 2 or self._samples[-1][0] < self._clock() - self.window_s:
            return 0.0  # no recent sample: the timer itself is starved or stopped; judged when it fires
        return min(lateness for _, lateness in self._samples)

    @property
    def overloaded(self) -> bool:
        return self.behind_s > self.target_s

    def forget(self) -> None:
        """Drop the samples so far (lateness with a known cause that has ended)."""
        self._samples.clear()


class ServingGuard:
    """The ASGI middleware of the module docstring; ``Service.add_asgi_middleware(ServingGuard)``."""

    def __init__(self, app: ASGIApp, settings: GuardSettings | None = None) -> None:
        self.settings = settings or GuardSettings.from_env()
        self._inner = app
        self._key = self.settings.api_key.encode("utf-8") if self.settings.api_key else None
        self._in_flight = 0
        # an admin operation (a catalogue change, a reload) holds the loop for a while by design: the lag it
        # causes is not a queue of traffic, so no request is shed on lag while one runs
        self._admin_in_flight = 0
        self._route_in_flight: dict[str, int] = dict.fromkeys(self.settings.route_limits, 0)
        lag_ms = self.settings.max_loop_lag_ms
        self.loop_lag = LoopLag(lag_ms / 1000.0) if lag_ms else None
        self.app: ASGIApp = self._guarded
        if self.settings.cors_origins:
            from starlette.middleware.cors import CORSMiddleware

            self.app = CORSMiddleware(
                self._guarded,
                allow_origins=list(self.settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        headers = _headers(scope)
        if method in _BODY_METHODS:
            length = headers.get("content-length")
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            if length is not None:
                if not length.isdigit():
                    return await _reject(scope, send, 400, "Content-Length is not a number")
                if int(length) > self.settings.max_request_bytes:
                    return await _reject(scope, send, 413, self._too_large())
            has_body = chunked or (length is not None and int(length) > 0)
            if has_body and not is_json(headers.get("content-type", "")):
                given = headers.get("content-type", "").split(";", 1)[0].strip() or "none"
                return await _reject(
                    scope, send, 415, f"send JSON: Content-Type application/json (got {given})"
                )
            if length is None and chunked:
                body = await self._read_limited(receive)
                if body is None:
                    return await _reject(scope, send, 413, self._too_large())
                receive = _replay(body)
        if self._key is not None and is_protected(path):
            problem = self._auth_problem(headers.get("authorization"))
            if problem is not None:
                return await _reject(
                    scope, send, 401, problem, {"www-authenticate": 'Bearer realm="sessionflow"'}
                )
        if path in UNLIMITED_PATHS:
            await self._inner(scope, receive, send)
            return
        admin = path.startswith(ADMIN_PREFIX)
        if self.loop_lag is not None:
            self.loop_lag.ensure_started()
            if not admin and self._admin_in_flight == 0 and self.loop_lag.overloaded:
                behind = self.loop_lag.behind_s * 1000
                return await _reject(
                    scope, send, 503, f"overloaded: running {behind:.0f} ms behind, retry shortly"
                )
        limit = self.settings.route_limits.get(path)
        if self._in_flight >= self.settings.max_in_flight or (
            limit is not None and self._route_in_flight[path] >= limit
        ):
            return await _reject(scope, send, 503, "overloaded: too many requests in flight, retry shortly")
        self._in_flight += 1
        self._admin_in_flight += admin
        if limit is not None:
            self._route_in_flight[path] += 1
        watch = _ResponseWatch(scope, send)
        try:
            async with asyncio.timeout(self.settings.request_timeout_s) as deadline:
                watch.deadline = deadline  # cleared when the answer starts: a stream may take its time
                await self._inner(scope, receive, watch)
        except TimeoutError:
            if watch.status:
                raise  # the answer had started: nothing else can be sent on this request
            await _reject(scope, send, 504, f"not answered within {self.settings.request_timeout_s:g} s")
        finally:
            self._in_flight -= 1
            self._admin_in_flight -= admin
            if admin and self._admin_in_flight == 0 and self.loop_lag is not None:
                self.loop_lag.forget()  # the lateness its work caused is not traffic's
            if limit is not None:
                self._route_in_flight[path] -= 1

    def _too_large(self) -> str:
        limit = self.settings.max_request_bytes
        return f"request body over the limit of {limit} bytes ({MAX_REQUEST_BYTES_ENV})"

    def _auth_problem(self, authorization: str | None) -> str | None:
        assert self._key is not None
        if not authorization:
            return "this route needs Authorization: Bearer <API key>"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8"), self._key):
            return "invalid API key"
        return None

    async def _read_limited(self, receive: Receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_request_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


class _ResponseWatch:
    """Wraps ``send``: adds Retry-After to 503/429 answers and logs one line per 4xx answer."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope, self.send, self.status = scope, send, 0
        self.body = b""
        self.deadline: asyncio.Timeout | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            if self.deadline is not None:
                self.deadline.reschedule(None)
            if self.status in (429, 503):
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"retry-after" for k, _ in headers):
                    headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
                message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and 400 <= self.status < 500:
            if len(self.body) < _LOGGED_BODY_BYTES:
                self.body += message.get("body", b"")[: _LOGGED_BODY_BYTES - len(self.body)]
            if not message.get("more_body", False):
                log_client_error(self.scope, self.status, _reason_from_body(self.body))
        await self.send(message)


def front_door(app: Any, settings: GuardSettings | None = None) -> ServingGuard:
    """The worker's ASGI app (BentoML's Starlette app for the service) behind the guard, with BentoML's
    ``TimeoutMiddleware`` taken out of it (the guard times requests out instead; see the module docstring).
    Starlette builds its middleware stack on the first request, so the list can still be edited here."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    stack = getattr(app, "user_middleware", None)
    if stack is None:
        raise TypeError(f"expected BentoML's Starlette app, got {type(app).__name__}")
    app.user_middleware = [m for m in stack if m.cls is not TimeoutMiddleware]
    return ServingGuard(app, settings)


def log_client_error(scope: Scope, status: int, reason: str) -> None:
    logger.warning("%s %s -> %d: %s", scope.get("method", "?"), scope.get("path", "?"), status, reason)


def _reason_from_body(body: bytes) -> str:
    """Field names and error types of a 4xx answer (pydantic-shaped or {"error": ...}), never values."""
    try:
        data = json.loads(body)
    except ValueError:
        return "client error"
    if isinstance(data, dict) and isinstance(data.get("detail"), list):
        parts = []
        for err in data["detail"][:5]:
            if isinstance(err, dict):
                loc = ".".join(str(p) for p in err.get("loc") or []) or "body"
                parts.append(f"{loc}: {err.get('type', 'invalid')}")
        return "invalid request (" + "; ".join(parts) + ")" if parts else "invalid request"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"].split(":", 1)[0][:120]  # the kind of error, not what follows it (may hold ids)
    return "client error"


async def _reject(
    scope: Scope, send: Send, status: int, reason: str, extra_headers: Mapping[str, str] | None = None
) -> None:
    body = json.dumps({"error": reason}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (429, 503):
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    headers += [(k.encode(), v.encode()) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    if status < 500:
        log_client_error(scope, status, reason)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


class _QuietClientErrors(logging.Filter):
    """Drops BentoML's per-request traceback for client errors (the guard logs one line instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            return False
        code = getattr(getattr(exc, "error_code", None), "value", None)
        return not (isinstance(code, int) and code < 500)


def quiet_client_error_tracebacks() -> None:
    """Install the filter on BentoML's HTTP app logger (idempotent)."""
    target = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, _QuietClientErrors) for f in target.filters):
        target.addFilter(_QuietClientErrors())


__all__ = [
    "API_KEY_ENV",
    "CORS_ORIGINS_ENV",
    "MAX_REQUEST_BYTES_ENV",
    "PROTECTED_ROUTES",
    "GuardSettings",
    "LoopLag",
    "ServingGuard",
    "is_json",
    "is_protected",
    "quiet_client_error_tracebacks",
]
