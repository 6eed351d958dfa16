"""Pseudonymisation keys: rotation keeps older pseudonyms findable; a running log picks up a new key."""

from __future__ import annotations

import os

import pytest

from components.feedback_log import FeedbackLog
from components.pseudonyms import KEY_ENV, RETIRED_KEYS_ENV, Keyring, key_file_for, pseudonym, rotate_key_file


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(RETIRED_KEYS_ENV, raising=False)


def test_rotation_starts_a_new_key_and_keeps_the_old_one(tmp_path):
    db = tmp_path / "fb.db"
    with FeedbackLog(f"sqlite:///{db}") as log:
        before = log.pseudonymise("alice")
        log.append({"user_id": "alice", "session_id": "s1", "item_id": "1", "event": "click"})
        key_file = key_file_for(db)
        old_key = key_file.read_text().strip()
        stat = key_file.stat()
        counts = rotate_key_file(key_file)
        os.utime(key_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks
        assert counts == {"keys": 2, "retired": 1, "dropped": 0}
        after = log.pseudonymise("alice")  # the open log noticed the rotated file
        assert after != before and before == pseudonym(old_key.encode(), "alice")
        assert log.subject_pseudonyms("alice") >= {before, after}
        log.append({"user_id": "alice", "session_id": "s2", "item_id": "2", "event": "like"})
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert log.delete_subject("alice") == 2  # rows under both keys
        assert len(log) == 0


def test_dropping_retired_keys_makes_old_pseudonyms_unlinkable(tmp_path):
    path = tmp_path / "k.key"
    rotate_key_file(path)
    old = Keyring.from_file(path).pseudonymise("bob")
    assert rotate_key_file(path, drop_retired=True) == {"keys": 1, "retired": 0, "dropped": 1}
    assert old not in Keyring.from_file(path).pseudonyms("bob")


def test_keys_from_the_environment(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "new")
    monkeypatch.setenv(RETIRED_KEYS_ENV, "old1, old2")
    ring = Keyring.from_env()
    assert ring is not None and ring.pseudonymise("x") == pseudonym(b"new", "x")
    assert ring.pseudonyms("x") == {pseudonym(k, "x") for k in (b"new", b"old1", b"old2")}
    monkeypatch.delenv(KEY_ENV)
    assert Keyring.from_env() is None


def test_an_emptied_key_file_is_a_clear_error(tmp_path):
    path = tmp_path / "k.key"
    path.write_text("\n")
    with pytest.raises(RuntimeError, match="is empty"):
        Keyring.from_file(path)
