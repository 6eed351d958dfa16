"""Feedback log faults: a deleted, replaced or read-only database never takes an acknowledged write, and the
log recovers when the store is back; idempotency keys store an event at most once."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat

import pytest

from components.feedback_log import KEY_ENV, FeedbackLog, IdempotencyConflict
from components.feedback_store import FeedbackStoreUnavailable

EVENT = {"session_id": "s1", "item_id": "7", "event": "like"}


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def log(tmp_path):
    with FeedbackLog(f"sqlite:///{tmp_path}/fb.db") as opened:
        yield opened


def rows(path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])


def test_deleted_database_refuses_writes_until_restored(log, tmp_path):
    db = tmp_path / "fb.db"
    assert log.append(EVENT) == 1
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)  # what an operator's backup would hold
    db.unlink()
    for _ in range(3):
        with pytest.raises(FeedbackStoreUnavailable, match="fb.db"):
            log.append(EVENT)
    ready, reason = log.health()
    assert not ready and "missing" in reason and "restore" in reason
    assert not db.exists(), "the log must not silently create a new, empty database"
    shutil.copyfile(backup, db)  # the store is back
    assert log.health() == (True, "ok")
    assert log.append(EVENT) == 2
    assert rows(db) == 2


def test_replaced_database_is_detected(log, tmp_path):
    db = tmp_path / "fb.db"
    log.append(EVENT)
    replacement = tmp_path / "other.db"
    replacement.write_bytes(b"this is not a database")
    os.replace(replacement, db)
    with pytest.raises(FeedbackStoreUnavailable, match="replaced|cannot be used"):
        log.append(EVENT)
    assert not log.health()[0]
    assert list(tmp_path.glob("fb.db-wal.stale-*")), "the old WAL must not be replayed onto the new file"
    db.unlink()
    with FeedbackLog(f"sqlite:///{tmp_path}/fresh.db") as fresh:  # a valid feedback database
        fresh.append(EVENT)
    os.replace(tmp_path / "fresh.db", db)
    assert log.health()[0]
    log.append(EVENT)
    assert rows(db) == 2  # written into the file that is at the path now


def test_read_only_database_refuses_writes_until_writable(log, tmp_path):
    db = tmp_path / "fb.db"
    log.append(EVENT)
    mode = db.stat().st_mode
    db.chmod(stat.S_IRUSR | stat.S_IRGRP)
    try:
        with pytest.raises(FeedbackStoreUnavailable, match="read-only"):
            log.append(EVENT)
        assert not log.health()[0]
        assert rows(db) == 1
    finally:
        db.chmod(mode)
    assert log.health()[0]
    assert log.append(EVENT) == 2


def test_read_only_folder_refuses_writes(log, tmp_path):
    sub = tmp_path / "ro"
    sub.mkdir()
    with FeedbackLog(f"sqlite:///{sub}/fb.db") as inner:
        inner.append(EVENT)
        sub.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(FeedbackStoreUnavailable, match="folder .* read-only"):
                inner.append(EVENT)
        finally:
            sub.chmod(stat.S_IRWXU)
        assert inner.append(EVENT) == 2


def test_a_failing_write_is_unavailable_not_an_error(log, monkeypatch):
    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    conn = log._store.connection()
    monkeypatch.setattr(log, "_insert", lambda c, row: broken())
    with pytest.raises(FeedbackStoreUnavailable, match="disk I/O error"):
        log.append(EVENT)
    monkeypatch.undo()
    assert log._store.current is None and conn is not None  # the old connection was dropped
    assert log.append(EVENT) == 1  # reopened


def test_idempotency_key_stores_once(log, tmp_path):
    first = log.append_once(EVENT, "key-123")
    again = log.append_once(EVENT, "key-123")
    assert (first.id, first.replayed) == (1, False)
    assert (again.id, again.replayed) == (1, True)
    other = log.append_once(EVENT, "key-456")
    assert other.id == 2 and not other.replayed
    assert len(log) == 2
    with pytest.raises(IdempotencyConflict, match="different event"):
        log.append_once({**EVENT, "event": "dislike"}, "key-123")
    assert len(log) == 2


@pytest.mark.parametrize("key", ["", "with space", "x" * 201, "tab\tkey", "é"])
def test_bad_idempotency_keys_are_refused(log, key):
    with pytest.raises(ValueError, match="Idempotency-Key"):
        log.append_once(EVENT, key)
    assert len(log) == 0


def test_idempotency_survives_reopening(tmp_path):
    url = f"sqlite:///{tmp_path}/fb.db"
    with FeedbackLog(url) as log:
        first = log.append_once(EVENT, "retry-me")
    with FeedbackLog(url) as log:
        assert log.append_once(EVENT, "retry-me").id == first.id
        assert len(log) == 1
