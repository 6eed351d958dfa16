"""Where dialogue states live between requests: in process (TTL + size cap), in a SQLite file that the
service's worker processes on one host share, or in Redis (several hosts). Stores keep the serialised form
(a JSON dict), never the live object, so a caller mutating a state after ``put`` cannot change what is
stored."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
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


class SqliteSessionStore:
    """States as JSON rows of one SQLite file (WAL), shared by the worker processes of one service: a session
    started on one worker carries on on another. Expiry is by wall clock (``expires_at``); expired rows are
    invisible at once and deleted in passing, like the rows beyond ``max_sessions`` (least recently written
    first). A session is written by one request at a time, so the last write wins.

    Sessions are working state, not acknowledged data: writes are not fsync'ed (``synchronous=NORMAL``: an
    OS crash may lose the last turns, a killed process loses nothing)."""

    PRUNE_EVERY = 200  # writes between deletions of expired and surplus rows

    def __init__(
        self,
        path: str | Path,
        ttl_seconds: float = 3600.0,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.path = Path(path)
        self.ttl_seconds = ttl_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._local = threading.local()
        self._writes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS dialogue_sessions ("
                "session_id TEXT PRIMARY KEY, expires_at REAL NOT NULL, state TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS dialogue_sessions_expiry ON dialogue_sessions (expires_at)"
            )

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared between threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, session_id: str) -> DialogueState | None:
        row = (
            self._conn()
            .execute(
                "SELECT state FROM dialogue_sessions WHERE session_id = ? AND expires_at > ?",
                (session_id, self._clock()),
            )
            .fetchone()
        )
        return None if row is None else DialogueState.from_dict(json.loads(row[0]))

    def put(self, state: DialogueState) -> None:
        now = self._clock()
        conn = self._conn()
        conn.execute(
            "INSERT OR REPLACE INTO dialogue_sessions (session_id, expires_at, state) VALUES (?, ?, ?)",
            (state.session_id, now + self.ttl_seconds, json.dumps(state.to_dict())),
        )
        self._writes += 1
        if self._writes % self.PRUNE_EVERY == 0:
            self.prune(now)

    def prune(self, now: float | None = None) -> int:
        """Delete expired rows and the least recently written beyond ``max_sessions``; how many went."""
        conn = self._conn()
        now = self._clock() if now is None else now
        gone = conn.execute("DELETE FROM dialogue_sessions WHERE expires_at <= ?", (now,)).rowcount
        gone += conn.execute(
            "DELETE FROM dialogue_sessions WHERE session_id IN (SELECT session_id FROM dialogue_sessions "
            "ORDER BY expires_at DESC LIMIT -1 OFFSET ?)",
            (self.max_sessions,),
        ).rowcount
        return gone

    def delete(self, session_id: str) -> None:
        self._conn().execute("DELETE FROM dialogue_sessions WHERE session_id = ?", (session_id,))

    def __len__(self) -> int:
        row = (
            self._conn()
            .execute("SELECT COUNT(*) FROM dialogue_sessions WHERE expires_at > ?", (self._clock(),))
            .fetchone()
        )
        return int(row[0])


def make_session_store(
    redis_url: str | None = None,
    ttl_seconds: float = 3600.0,
    max_sessions: int = 100_000,
    session_db: str | Path | None = None,
) -> SessionStore:
    """Redis when a URL is given, else the SQLite file ``session_db`` when given, else the in-process
    store."""
    if redis_url:
        return RedisSessionStore(redis_url, ttl_seconds)
    if session_db:
        return SqliteSessionStore(session_db, ttl_seconds, max_sessions)
    return InMemorySessionStore(ttl_seconds, max_sessions)
