"""Where the feedback log's rows live, and whether that storage is still the one that was opened.

An open SQLite connection keeps writing into its file even after the file was deleted or replaced (the
rows land in an unlinked inode and vanish at the next restart), and root's writes ignore a read-only mode.
So ``SqliteStore`` checks the database file around every transaction: it must still exist, be the same
file (device and inode) as the one opened, and be writable (the owner's write bit on the file and on its
folder). Otherwise the connection is dropped -- never written to again -- and ``FeedbackStoreUnavailable``
is raised: the caller answers "try later", never "stored".

Recovery is automatic: each ``connection()`` call retries to open the path, and succeeds once it holds a
writable feedback database again (restored from a backup, permissions given back). A missing file is not
re-created here (that would hide the loss of the old rows): restore it, or restart the service to start an
empty log. When the file was deleted or replaced, the old file's write-ahead log (``-wal``, ``-shm``) left at
the path is moved aside (``<name>-wal.stale-<time>``) before reopening: SQLite would otherwise replay the
old file's log onto the new one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

FEEDBACK_TABLE_SQLITE = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    value REAL,
    timestamp TEXT NOT NULL,
    received_at TEXT NOT NULL
)"""
FEEDBACK_TABLE_PG = """
CREATE TABLE IF NOT EXISTS feedback (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    value DOUBLE PRECISION,
    timestamp TEXT NOT NULL,
    received_at TEXT NOT NULL
)"""
# Idempotency-Key -> the event it stored, written in the same transaction as the event.
IDEMPOTENCY_TABLE = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    feedback_id BIGINT NOT NULL,
    request_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL
)"""


class FeedbackStoreUnavailable(RuntimeError):
    """The log's storage is gone, replaced, read-only or failing; nothing was acknowledged. Retry later."""


class SqliteStore:
    """A SQLite feedback database in WAL mode with ``synchronous=FULL``, watched for deletion, replacement
    and loss of write permission."""

    backend = "sqlite"
    placeholder = "?"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = _connect_sqlite(path, create=True)
        self._identity = _identity(path)
        self._sidecars: dict[Path, tuple[int, int]] = {}
        self._remember_sidecars()
        self.last_problem: str | None = None

    def connection(self) -> sqlite3.Connection:
        """The open connection, if its file is still in place and writable; else reopen the path or raise
        ``FeedbackStoreUnavailable``. Call with the log's lock held."""
        if self._conn is not None:
            problem, file_changed = self._problem()
            if problem is None:
                return self._conn
            self.fail(problem, file_changed)
        return self._reopen()

    def check_after_write(self) -> None:
        """After a commit: the file must still be the one written to, else the rows are not on disk."""
        problem, file_changed = self._problem()
        if problem is not None:
            self.fail(problem, file_changed)
            raise FeedbackStoreUnavailable(
                f"{problem}; the event may not be on disk and was not acknowledged"
            )
        self._remember_sidecars()

    def fail(self, reason: str, file_changed: bool = False) -> None:
        """Stop using the current connection; when the database file was deleted or replaced, also move the
        old file's WAL sidecars out of the way."""
        self.last_problem = reason
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if file_changed:
            self._set_aside_sidecars()

    def _remember_sidecars(self) -> None:
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            with contextlib.suppress(OSError):
                self._sidecars[side] = _identity(side)

    def _set_aside_sidecars(self) -> None:
        """Our old ``-wal``/``-shm`` (same inode as when we used them) -> ``<name>.stale-<unix time>``."""
        stamp = int(time.time())
        for side, identity in self._sidecars.items():
            with contextlib.suppress(OSError):
                if _identity(side) == identity:
                    side.rename(side.with_name(f"{side.name}.stale-{stamp}"))
        self._sidecars = {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def current(self) -> sqlite3.Connection | None:
        return self._conn

    def _problem(self) -> tuple[str | None, bool]:
        """(what is wrong or None, whether the file at the path is no longer the one opened)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"feedback database {self.path} was deleted", True
        except OSError as exc:
            return f"feedback database {self.path} cannot be read ({exc.strerror})", False
        if (st.st_dev, st.st_ino) != self._identity:
            return f"feedback database {self.path} was replaced by another file", True
        return _read_only(self.path, st), False

    def _reopen(self) -> sqlite3.Connection:
        where = f"feedback database {self.path}"
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise FeedbackStoreUnavailable(
                f"{where} is missing (deleted?): restore it from a backup, or restart "
                "the service to start an empty log"
            ) from None
        except OSError as exc:
            raise FeedbackStoreUnavailable(f"{where} cannot be read ({exc.strerror})") from None
        problem = _read_only(self.path, st)
        if problem is not None:
            raise FeedbackStoreUnavailable(problem)
        try:
            conn = _connect_sqlite(self.path, create=False)
        except (sqlite3.Error, ValueError) as exc:
            raise FeedbackStoreUnavailable(f"{where} cannot be used: {exc}") from None
        self._conn, self._identity, self.last_problem = conn, _identity(self.path), None
        self._remember_sidecars()
        return conn


class PostgresStore:
    """A PostgreSQL feedback database (psycopg 3); a broken connection is reopened on the next call."""

    backend = "postgresql"
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg  # type: ignore[import-not-found]
        except ImportError as exc:
            raise RuntimeError(
                f"feedback log URL {url.split('@')[-1]!r} needs PostgreSQL support: "
                "pip install 'psycopg[binary]'"
            ) from exc
        self._psycopg = psycopg
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self.url = url
        self._conn: Any = self._connect()
        self.last_problem: str | None = None

    def _connect(self) -> Any:
        conn = self._psycopg.connect(self.url)
        with conn.cursor() as cur:
            cur.execute(FEEDBACK_TABLE_PG)
            cur.execute(IDEMPOTENCY_TABLE)
        conn.commit()
        return conn

    def connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._connect()
            except self.errors as exc:
                raise FeedbackStoreUnavailable(f"feedback database unreachable: {exc}") from None
            self.last_problem = None
        return self._conn

    def check_after_write(self) -> None:
        return None

    def fail(self, reason: str, file_changed: bool = False) -> None:
        self.last_problem = reason
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*self.errors):
                conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def current(self) -> Any:
        return self._conn


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _read_only(path: Path, st: os.stat_result) -> str | None:
    """The owner's write bit, checked by hand: root ignores permissions, so sqlite would keep writing."""
    if not st.st_mode & stat.S_IWUSR or not os.access(path, os.W_OK):
        return f"feedback database {path} was made read-only"
    try:
        parent = os.stat(path.parent)
    except OSError as exc:
        return f"folder of the feedback database {path} cannot be read ({exc.strerror})"
    if not parent.st_mode & stat.S_IWUSR or not os.access(path.parent, os.W_OK):
        return f"folder of the feedback database {path} was made read-only"
    return None


def _connect_sqlite(path: Path, create: bool) -> sqlite3.Connection:
    """Open (``create``: or create) the database; WAL + synchronous=FULL; refuses a file that is not a
    feedback log when ``create`` is False."""
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
    try:
        if not create:
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='feedback'"
            ).fetchone()
            if found is None:
                raise ValueError("it has no 'feedback' table (not a feedback log)")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(
                f"{path}: SQLite refused WAL mode (got {mode!r}); is it on a network filesystem?"
            )
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(FEEDBACK_TABLE_SQLITE)
        conn.execute(IDEMPOTENCY_TABLE)
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


__all__ = [
    "FEEDBACK_TABLE_PG",
    "FEEDBACK_TABLE_SQLITE",
    "IDEMPOTENCY_TABLE",
    "FeedbackStoreUnavailable",
    "PostgresStore",
    "SqliteStore",
]
