"""Append-only log of served requests (what was asked, what was shown, with which scores) for monitoring.

Built to stay off a request's critical path: ``record`` appends one tuple to an in-memory queue (O(1), no
I/O, no serialisation) and returns; a background thread writes the queue to SQLite in one transaction per
``flush_interval_s`` (WAL, ``synchronous=NORMAL``: a committed batch survives a process crash). When the
writer falls behind, the queue is bounded (``max_queue``): new records are dropped and counted, requests
never wait. ``stats`` reports queued / written / dropped / failed counts (the service shows them in
/metadata, the monitoring report carries ``dropped``).

Rows (table ``requests``): ts (ISO-8601 UTC), endpoint (``recommend``: plain /recommend, raw model scores;
``recommend_session``: /recommend with a session, fused conversation scores; ``chat``), model_tag,
model_version, user_id (pseudonymised
with the feedback log's keyring, never raw), session_id, items (JSON list of the ids asked), unknown (JSON
list of the asked ids the model does not know), shown (JSON list of the ids answered, in rank order),
scores (JSON list), k, latency_ms. Chat messages are not stored.

Where: ``$SESSIONFLOW_REQUEST_LOG_DB``, else ``requests.db`` next to a SQLite feedback log.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

REQUEST_LOG_DB_ENV = "SESSIONFLOW_REQUEST_LOG_DB"
COLUMNS = (
    "ts", "endpoint", "model_tag", "model_version", "user_id", "session_id",
    "items", "unknown", "shown", "scores", "k", "latency_ms",
)  # fmt: skip
LIST_COLUMNS = ("items", "unknown", "shown", "scores")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model_tag TEXT,
    model_version TEXT,
    user_id TEXT,
    session_id TEXT,
    items TEXT NOT NULL,
    unknown TEXT NOT NULL,
    shown TEXT NOT NULL,
    scores TEXT NOT NULL,
    k INTEGER,
    latency_ms REAL
)"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts)",
    "CREATE INDEX IF NOT EXISTS requests_session ON requests (session_id)",
    "CREATE INDEX IF NOT EXISTS requests_user ON requests (user_id)",
)
_INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_MAX_BATCH = 5000

log = logging.getLogger(__name__)


def request_log_path(feedback_url: str, env: Mapping[str, str] = os.environ) -> Path | None:
    """``$SESSIONFLOW_REQUEST_LOG_DB``, else ``requests.db`` next to a SQLite feedback log
    (``sqlite:///.../feedback.db``); None for other feedback backends (set the variable then)."""
    if path := env.get(REQUEST_LOG_DB_ENV, "").strip():
        return Path(path).expanduser().resolve()
    if feedback_url.startswith("sqlite:///"):
        return Path(feedback_url[len("sqlite:///") :]).expanduser().resolve().with_name("requests.db")
    return None


class RequestLog:
    """Batched, append-only writer of served requests (one per service worker)."""

    def __init__(
        self,
        path: str | Path,
        pseudonymise: Callable[[str], str] | None = None,
        flush_interval_s: float = 1.0,
        max_queue: int = 100_000,
        start: bool = True,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = float(flush_interval_s)
        self.max_queue = int(max_queue)
        self._pseudonymise = pseudonymise
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._counts = {"written": 0, "dropped": 0, "failed_flushes": 0}
        self.last_error: str | None = None
        self._conn = connect(self.path)
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="sessionflow-request-log", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    # -- the request path: no I/O ---------------------------------------------------------------------------
    def record(
        self,
        endpoint: str,
        *,
        items: Sequence[str],
        shown: Sequence[str],
        scores: Sequence[float],
        unknown: Sequence[str] = (),
        k: int | None = None,
        model_tag: str | None = None,
        model_version: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Queue one served request; never blocks, never raises for a full queue (counts a drop)."""
        if len(self._queue) >= self.max_queue:
            self._counts["dropped"] += 1
            return
        # tuples of strings and numbers only: the garbage collector stops tracking them within two looks,
        # so rows waiting for the writer (up to a second of traffic) never lengthen a full collection of the
        # HTTP worker, which stalls every request while it runs (lists stay tracked until written)
        self._queue.append(
            (time.time(), endpoint, model_tag, model_version, user_id, session_id,
             tuple(items), tuple(unknown), tuple(shown), tuple(scores), k, latency_ms)
        )  # fmt: skip

    # -- the writer -----------------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything queued so far in one transaction; returns the number of rows written."""
        with self._flush_lock:
            batch: list[tuple[Any, ...]] = []
            while self._queue and len(batch) < _MAX_BATCH:
                batch.append(self._queue.popleft())
            if not batch:
                return 0
            try:
                rows = [self._row(r) for r in batch]
                self._conn.executemany(_INSERT, rows)
                self._conn.commit()
            except Exception as exc:  # noqa: BLE001 - monitoring must never take the service down
                self._conn.rollback()
                self._counts["failed_flushes"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                room = self.max_queue - len(self._queue)
                self._queue.extendleft(reversed(batch[:room]))  # retried next time while there is room
                self._counts["dropped"] += max(0, len(batch) - room)
                log.warning("request log %s: write failed (%s); will retry", self.path, self.last_error)
                return 0
            self._counts["written"] += len(rows)
            return len(rows)

    def stats(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "queued": len(self._queue),
            **self._counts,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        """Stop the writer thread and write what is still queued."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)
        while self.flush():
            pass
        with self._flush_lock:
            self._conn.close()
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            while self.flush() == _MAX_BATCH:
                pass

    def _row(self, rec: tuple[Any, ...]) -> tuple[Any, ...]:
        ts, endpoint, tag, version, user, session, items, unknown, shown, scores, k, latency = rec
        pseudo = None
        if user not in (None, ""):
            pseudo = self._pseudonymise(str(user)) if self._pseudonymise else None
        return (
            datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds"),
            endpoint,
            tag,
            version,
            pseudo,
            session,
            json.dumps([str(i) for i in items]),
            json.dumps([str(i) for i in unknown]),
            json.dumps([str(i) for i in shown]),
            json.dumps([round(float(s), 6) for s in scores]),
            k,
            None if latency is None else round(float(latency), 3),
        )


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"{path}: SQLite refused WAL mode (got {mode!r}); is it on a network filesystem?")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute(_SCHEMA)
    for sql in _INDEXES:
        conn.execute(sql)
    conn.commit()
    return conn


def read_requests(
    path: str | Path, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Logged requests with ``since <= ts < until`` (UTC datetimes), oldest first, list columns parsed;
    an empty table (same columns) when the log does not exist yet."""
    path = Path(path)
    empty = pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    if not path.is_file():
        return empty
    where, params = [], []
    if since is not None:
        where.append("ts >= ?")
        params.append(_iso(since))
    if until is not None:
        where.append("ts < ?")
        params.append(_iso(until))
    sql = f"SELECT {', '.join(COLUMNS)} FROM requests"
    sql += f" WHERE {' AND '.join(where)}" if where else ""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0) as conn:
        rows = conn.execute(sql + " ORDER BY id", params).fetchall()
    if not rows:
        return empty
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in LIST_COLUMNS:
        df[col] = [json.loads(v) for v in df[col]]
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    return df


def delete_subject(path: str | Path, user_pseudonyms: Iterable[str], session_id: str) -> int:
    """Delete the rows of a user (any of ``user_pseudonyms``) or of ``session_id``; returns the count."""
    path = Path(path)
    if not path.is_file():
        return 0
    users = sorted(set(user_pseudonyms))
    sql = f"DELETE FROM requests WHERE user_id IN ({', '.join('?' * len(users))}) OR session_id = ?"
    conn = connect(path)
    try:
        n = conn.execute(sql, (*users, str(session_id))).rowcount
        conn.commit()
    finally:
        conn.close()
    return int(n)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")
