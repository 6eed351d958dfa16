"""Durable feedback log: every acknowledged event is on disk before ``append`` returns.

Backends, chosen by URL:

- ``sqlite:///relative/path/feedback.db`` or ``sqlite:////absolute/path/feedback.db`` (default): stdlib
  sqlite3 in WAL mode with ``synchronous=FULL``; each append is its own committed transaction, so an
  event whose ``append`` returned survives ``kill -9`` of the process (and, with FULL, a power cut).
- ``postgresql://user:pass@host/db``: psycopg 3 (``pip install "psycopg[binary]"``), one committed
  transaction per append.

User ids are pseudonymised before they are written: ``HMAC-SHA256(key, user_id)``. The key comes from the
``key`` argument, else the environment variable ``SESSIONFLOW_FEEDBACK_KEY``; for SQLite, when neither is
set, a random key is generated once and kept next to the database as ``<db file>.key`` (mode 0600) — keep
that file with the database (losing it makes new pseudonyms differ from old ones) and never commit it.
PostgreSQL needs the key from the argument or the environment. Keys can be rotated (components/pseudonyms:
retired keys stay in the ring so ``delete_subject`` still finds older rows of a user).

Faults never turn into a false acknowledgement: the SQLite file is watched for deletion, replacement and
loss of write permission around every transaction (components/feedback_store.py), and a write that fails or
whose file changed raises ``FeedbackStoreUnavailable`` (the service answers 503 and turns not-ready) until
the store is back. ``append_once`` with an idempotency key stores an event at most once: a retry with the
same key and the same event returns the first row id (``replayed``), with another event it is refused.

``read_all`` returns the canonical interactions table (components.schema) for the retraining flow;
``read_feedback`` reads it without touching the key (the export stage of the retraining loop), and
``default_feedback_url`` is the one place that says where the log lives (the service and the export stage
both use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.feedback_store import FeedbackStoreUnavailable, PostgresStore, SqliteStore
from components.pseudonyms import KEY_ENV, Keyring, key_file_for
from components.schema import (
    EVENTS,
    NEGATIVE_EVENTS,
    NEGATIVE_RATING_BELOW,
    coerce_interactions,
    empty_interactions,
)

FEEDBACK_URL_ENV = "SESSIONFLOW_FEEDBACK_URL"
FEEDBACK_DB_ENV = "SESSIONFLOW_FEEDBACK_DB"
FIELDS = ("user_id", "session_id", "item_id", "event", "value", "timestamp")
_COLUMNS = "user_id, session_id, item_id, event, value, timestamp"
MAX_IDEMPOTENCY_KEY_CHARS = 200


class IdempotencyConflict(ValueError):
    """An idempotency key was sent again with a different event."""


@dataclass(frozen=True)
class Appended:
    """A stored event: its row id, and whether an earlier request with the same key had stored it."""

    id: int
    replayed: bool = False


class FeedbackLog:
    """Append-only, durable log of feedback events with pseudonymised user ids."""

    def __init__(self, url: str, key: str | bytes | None = None, *, read_only: bool = False) -> None:
        """``read_only``: for readers (the export stage): no key is needed or created; ``append`` refuses."""
        self.url = url
        self.read_only = read_only
        self._lock = threading.Lock()
        given = _key_bytes(key)
        keys = Keyring([given]) if given is not None else Keyring.from_env()
        self._store: SqliteStore | PostgresStore
        if url.startswith(("postgresql://", "postgres://")):
            self.backend = "postgresql"
            if keys is None and not read_only:
                raise ValueError(f"a PostgreSQL feedback log needs a pseudonymisation key: set {KEY_ENV}")
            self._store = PostgresStore(url)
        else:
            self.backend = "sqlite"
            self.path = sqlite_path(url)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if keys is None and not read_only:  # <db>.key, created once; rotated by `sessionflow keys rotate`
                keys = Keyring.from_file(key_file_for(self.path))
            self._store = SqliteStore(self.path)
        self.keys: Keyring | None = keys
        self._p = self._store.placeholder

    @property
    def _conn(self) -> Any:
        """The open database connection (None while the store is unavailable)."""
        return self._store.current

    # -- writing -------------------------------------------------------------------------------------------
    def append(self, event: dict[str, Any]) -> int:
        """Validate, pseudonymise and durably store one event; returns its row id once committed."""
        return self.append_many([event])[0]

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        """Events in one committed transaction (all or none); returns their row ids once on disk.
        Raises ``FeedbackStoreUnavailable`` when the store is gone, replaced, read-only or failing."""
        if self.read_only:
            raise RuntimeError(f"feedback log {redact_url(self.url)!r} was opened read-only; cannot append")
        rows = [self._row(e) for e in events]  # validate everything before writing anything
        return self._transaction(lambda conn: [self._insert(conn, row) for row in rows])

    def append_once(self, event: dict[str, Any], idempotency_key: str) -> Appended:
        """Store ``event`` unless ``idempotency_key`` already stored one: then return that row id
        (``replayed``). The same key with a different event raises ``IdempotencyConflict``."""
        key = check_idempotency_key(idempotency_key)
        row = self._row(event)
        fingerprint = _event_fingerprint(event)

        def write(conn: Any) -> Appended:
            p = self._p
            found = _fetchone(
                conn, f"SELECT feedback_id, request_sha256 FROM idempotency_keys WHERE key = {p}", (key,)
            )
            if found is not None:
                if found[1] != fingerprint:
                    raise IdempotencyConflict(
                        "this Idempotency-Key was already used for a different event; use a new key per event"
                    )
                return Appended(int(found[0]), replayed=True)
            new_id = self._insert(conn, row)
            conn.execute(
                "INSERT INTO idempotency_keys (key, feedback_id, request_sha256, created_at) "
                f"VALUES ({p}, {p}, {p}, {p})",
                (key, new_id, fingerprint, datetime.now(UTC).isoformat(timespec="microseconds")),
            )
            return Appended(new_id)

        return self._transaction(write)

    def health(self) -> tuple[bool, str]:
        """(ready, reason): whether the next append can be stored (reopens a store that came back)."""
        with self._lock:
            try:
                self._store.connection()
            except FeedbackStoreUnavailable as exc:
                return False, str(exc)
        return True, "ok"

    def _transaction(self, write: Any) -> Any:
        if self.read_only:
            raise RuntimeError(f"feedback log {redact_url(self.url)!r} was opened read-only; cannot append")
        with self._lock:
            conn = self._store.connection()  # raises FeedbackStoreUnavailable
            try:
                result = write(conn)
                conn.commit()  # WAL + synchronous=FULL: fsynced before this returns
            except IdempotencyConflict:
                conn.rollback()
                raise
            except self._store.errors as exc:
                _rollback_quietly(conn, self._store.errors)
                reason = f"writing to the feedback database failed ({type(exc).__name__}: {exc})"
                self._store.fail(reason)
                raise FeedbackStoreUnavailable(reason) from None
            except BaseException:
                _rollback_quietly(conn, self._store.errors)
                raise
            self._store.check_after_write()
        return result

    def _insert(self, conn: Any, row: tuple[Any, ...]) -> int:
        p = self._p
        sql = f"INSERT INTO feedback ({_COLUMNS}, received_at) VALUES ({', '.join([p] * 7)}) RETURNING id"
        found = _fetchone(conn, sql, row)
        assert found is not None
        return int(found[0])

    def pseudonymise(self, user_id: str) -> str:
        """Stable keyed pseudonym of a raw user id under the current key (the raw id is never stored)."""
        if self.keys is None:
            raise RuntimeError(f"feedback log {redact_url(self.url)!r} was opened without a key")
        return self.keys.pseudonymise(user_id)

    def subject_pseudonyms(self, raw_id: str) -> set[str]:
        """Every pseudonym under which events of ``raw_id`` -- a user id, or a session id logged without a
        user -- can be stored, under the current and the retired keys."""
        if self.keys is None:
            raise RuntimeError(f"feedback log {redact_url(self.url)!r} was opened without a key")
        return self.keys.pseudonyms(str(raw_id)) | self.keys.pseudonyms(f"session:{raw_id}")

    def delete_subject(self, raw_id: str) -> int:
        """Delete every event of the user or session ``raw_id``; returns how many rows went."""
        if self.read_only:
            raise RuntimeError(f"feedback log {redact_url(self.url)!r} was opened read-only; cannot delete")
        users = sorted(self.subject_pseudonyms(raw_id))
        p = self._p
        sql = f"DELETE FROM feedback WHERE user_id IN ({', '.join([p] * len(users))}) OR session_id = {p}"
        params = (*users, str(raw_id))
        return int(self._transaction(lambda conn: conn.execute(sql, params).rowcount))

    def _row(self, event: dict[str, Any]) -> tuple[Any, ...]:
        if not isinstance(event, dict):
            raise ValueError(f"a feedback event must be a dict, got {type(event).__name__}")
        unknown = sorted(set(event) - set(FIELDS))
        if unknown:
            raise ValueError(f"feedback event has unknown fields {unknown}; allowed: {list(FIELDS)}")
        name = event.get("event")
        if name not in EVENTS:
            raise ValueError(f"feedback event name {name!r} is not one of {list(EVENTS)}")
        item = event.get("item_id")
        if item is None or str(item).strip() == "":
            raise ValueError("feedback event needs a non-empty 'item_id'")
        user, session = event.get("user_id"), event.get("session_id")
        if (user is None or str(user) == "") and (session is None or str(session) == ""):
            raise ValueError("feedback event needs a 'user_id' or a 'session_id'")
        value = event.get("value")
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"feedback 'value' must be a number, got {value!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"feedback 'value' must be finite, got {value!r}")
        elif name == "rating":
            raise ValueError("a 'rating' event needs a numeric 'value'")
        pseudo = (
            self.pseudonymise(str(user))
            if user not in (None, "")
            else self.pseudonymise(f"session:{session}")
        )
        session_id = str(session) if session not in (None, "") else pseudo
        ts = _timestamp(event.get("timestamp"))
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        return (pseudo, session_id, str(item), name, value, ts, now)

    # -- reading -------------------------------------------------------------------------------------------
    def read_all(self) -> pd.DataFrame:
        """Every event in the canonical interactions shape (user_id pseudonymised, timestamps UTC)."""
        rows = self._query(f"SELECT {_COLUMNS} FROM feedback ORDER BY id")
        if not rows:
            return empty_interactions()
        df = pd.DataFrame(rows, columns=list(_COLUMNS.split(", ")))
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
        return coerce_interactions(df)[["user_id", "session_id", "item_id", "timestamp", "event", "value"]]

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM feedback")[0][0])

    def journal_mode(self) -> str:
        """SQLite journal mode ('wal' when durable writes are set up)."""
        if self.backend != "sqlite":
            return "postgresql"
        return str(self._query("PRAGMA journal_mode")[0][0]).lower()

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._store.connection()
            rows = list(conn.execute(sql).fetchall())
            if self.backend != "sqlite":
                conn.commit()  # end psycopg's implicit transaction
            return rows

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def __enter__(self) -> FeedbackLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def feedback_url_from_env(env: Mapping[str, str] = os.environ) -> str | None:
    """``$SESSIONFLOW_FEEDBACK_URL`` (``sqlite:///...`` or ``postgresql://...``), else
    ``$SESSIONFLOW_FEEDBACK_DB`` (a SQLite file, made absolute), else None."""
    if url := env.get(FEEDBACK_URL_ENV, "").strip():
        return url
    if path := env.get(FEEDBACK_DB_ENV, "").strip():
        return f"sqlite:///{Path(path).expanduser().resolve()}"
    return None


def default_feedback_url(root: Path, env: Mapping[str, str] = os.environ) -> str:
    """Where the feedback log of the project at ``root`` lives: the environment (``feedback_url_from_env``),
    else ``<root>/data/feedback/feedback.db`` -- where ``sessionflow serve`` makes the service write."""
    return (
        feedback_url_from_env(env)
        or f"sqlite:///{Path(root).resolve() / 'data' / 'feedback' / 'feedback.db'}"
    )


def redact_url(url: str) -> str:
    """The URL without credentials (``postgresql://user:pass@host/db`` -> ``postgresql://host/db``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def read_feedback(url: str) -> pd.DataFrame:
    """Every event of the log at ``url`` (canonical interactions); empty when a SQLite log does not exist yet
    (nothing is created then). Needs no pseudonymisation key."""
    if not url.startswith(("postgresql://", "postgres://")) and not sqlite_path(url).is_file():
        return empty_interactions()
    with FeedbackLog(url, read_only=True) as log:
        return log.read_all()


def negative_feedback(events: pd.DataFrame) -> pd.Series:
    """Boolean mask of negative reactions: ``components.schema.event_polarity`` == 'negative', vectorised."""
    event = events["event"].astype("string")
    value = pd.to_numeric(events["value"], errors="coerce")
    low_rating = (event == "rating") & (value < NEGATIVE_RATING_BELOW)
    return (event.isin(sorted(NEGATIVE_EVENTS)) | low_rating).fillna(False).astype(bool)


def feedback_stats(events: pd.DataFrame) -> dict[str, Any]:
    """Counts of a feedback table: events, per event name, negatives, users, sessions, time range."""
    if events.empty:
        return {"n_events": 0, "n_negative": 0, "n_positive_or_neutral": 0, "by_event": {}}
    negative = negative_feedback(events)
    ts = events["timestamp"]
    return {
        "n_events": len(events),
        "n_negative": int(negative.sum()),
        "n_positive_or_neutral": int((~negative).sum()),
        "by_event": {str(k): int(v) for k, v in events["event"].value_counts().sort_index().items()},
        "n_users": int(events["user_id"].nunique()),
        "n_sessions": int(events["session_id"].nunique()),
        "n_items": int(events["item_id"].nunique()),
        "first": ts.min().isoformat() if ts.notna().any() else None,
        "last": ts.max().isoformat() if ts.notna().any() else None,
    }


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel.db`` -> rel.db, ``sqlite:////abs.db`` -> /abs.db; a bare path is taken as is."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if url.startswith("sqlite://"):
        raise ValueError(f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////absolute/path.db")
    if "://" in url:
        raise ValueError(f"unsupported feedback log URL {url!r}: use sqlite:///path.db or postgresql://...")
    return Path(url)


def check_idempotency_key(key: str) -> str:
    """A usable Idempotency-Key: 1..200 visible ASCII characters (e.g. a UUID); else ValueError."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise ValueError(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
    if not all(33 <= ord(c) <= 126 for c in key):
        raise ValueError("Idempotency-Key must be visible ASCII characters without spaces (e.g. a UUID)")
    return key


def _event_fingerprint(event: dict[str, Any]) -> str:
    """sha256 of the event as sent (a retry must send the same event)."""
    text = json.dumps({k: event.get(k) for k in FIELDS}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fetchone(conn: Any, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    rows = conn.execute(sql, params).fetchall()  # sqlite3 and psycopg 3 connections both have execute()
    return tuple(rows[0]) if rows else None


def _rollback_quietly(conn: Any, errors: tuple[type[BaseException], ...]) -> None:
    with contextlib.suppress(*errors):
        conn.rollback()


def _key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None or key == "" or key == b"":
        return None
    return key if isinstance(key, bytes) else key.encode("utf-8")


def _timestamp(value: object) -> str:
    """ISO-8601 UTC string from a datetime, an ISO string, epoch seconds, or now when absent."""
    if value is None:
        return datetime.now(UTC).isoformat(timespec="microseconds")
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ts = pd.Timestamp(float(value), unit="s", tz="UTC")
        else:
            ts = pd.Timestamp(value)  # type: ignore[arg-type]
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError):
        raise ValueError(
            f"feedback 'timestamp' {value!r} is not a datetime, ISO string or epoch seconds"
        ) from None
    if pd.isna(ts):
        raise ValueError(f"feedback 'timestamp' {value!r} is not a valid time")
    return ts.isoformat()
