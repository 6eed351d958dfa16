"""Where dialogue states live between requests: in process (TTL + size cap) or in Redis. Stores keep the
serialised form (a JSON dict), never the live object, so a caller mutating a state after ``put`` cannot change
what is stored."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from components.dialogue.state import DialogueState


class SessionStore(Protocol):
    """Where dialogue states live between requests; states expire ``ttl_seconds`` after their last write."""

    def get(self, session_id: str) -> DialogueState | None: ...

    def put(self, state: DialogueState) -> None: ...

    def delete(self, session_id: str) -> None: ...


class InMemorySessionStore:
    """Thread-safe in-process store with TTL expiry and a size cap (least recently written evicted first)."""

    def __init__(
        self,
        ttl_seconds: float = 3600.0,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.ttl_seconds = ttl_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> DialogueState | None:
        with self._lock:
            entry = self._data.get(session_id)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._data[session_id]
                return None
            return DialogueState.from_dict(json.loads(json.dumps(entry[1])))

    def put(self, state: DialogueState) -> None:
        now = self._clock()
        with self._lock:
            self._data[state.session_id] = (now + self.ttl_seconds, json.loads(json.dumps(state.to_dict())))
            self._data.move_to_end(state.session_id)
            while self._data and (
                len(self._data) > self.max_sessions or next(iter(self._data.values()))[0] <= now
            ):
                self._data.popitem(last=False)

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._data.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class RedisSessionStore:
    """States as JSON strings under ``prefix + session_id`` with a Redis TTL (SETEX)."""

    def __init__(self, url: str, ttl_seconds: float = 3600.0, prefix: str = "sessionflow:dialogue:") -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis-py is optional
            raise RuntimeError(
                f"a redis URL ({url}) is configured but redis-py is missing: pip install redis"
            ) from exc
        self.ttl_seconds = max(1, int(math.ceil(ttl_seconds)))
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def get(self, session_id: str) -> DialogueState | None:
        raw = self._client.get(self.prefix + session_id)
        return None if raw is None else DialogueState.from_dict(json.loads(raw))

    def put(self, state: DialogueState) -> None:
        self._client.setex(self.prefix + state.session_id, self.ttl_seconds, json.dumps(state.to_dict()))

    def delete(self, session_id: str) -> None:
        self._client.delete(self.prefix + session_id)


def make_session_store(
    redis_url: str | None = None, ttl_seconds: float = 3600.0, max_sessions: int = 100_000
) -> SessionStore:
    """Redis when a URL is given, else the in-process store."""
    if redis_url:
        return RedisSessionStore(redis_url, ttl_seconds)
    return InMemorySessionStore(ttl_seconds, max_sessions)
