"""Feedback log: durable appends (WAL, survives SIGKILL), pseudonymised users, canonical read-back."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from components.feedback_log import KEY_ENV, FeedbackLog, sqlite_path
from components.schema import INTERACTION_COLUMNS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_append_and_read_all_in_canonical_shape(tmp_path) -> None:
    with FeedbackLog(f"sqlite:///{tmp_path}/fb.db") as log:
        a = log.append({"user_id": "alice", "session_id": "s1", "item_id": "1", "event": "click"})
        b = log.append(
            {
                "user_id": "alice",
                "session_id": "s1",
                "item_id": "2",
                "event": "rating",
                "value": 4,
                "timestamp": "2024-05-01T10:00:00+02:00",
            }
        )
        c = log.append(
            {"session_id": "anon-7", "item_id": "3", "event": "dislike", "timestamp": 1_700_000_000}
        )
        assert (a, b, c) == (1, 2, 3) and len(log) == 3
        df = log.read_all()
    assert tuple(df.columns) == INTERACTION_COLUMNS
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["item_id"].tolist() == ["1", "2", "3"]
    assert df["event"].tolist() == ["click", "rating", "dislike"]
    assert df.loc[1, "timestamp"] == pd.Timestamp("2024-05-01T08:00:00Z")
    assert df.loc[2, "timestamp"] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert pd.isna(df.loc[0, "value"]) and df.loc[1, "value"] == 4.0
    assert df.loc[2, "session_id"] == "anon-7" and df.loc[2, "user_id"].startswith("u_")


def test_wal_mode_and_full_sync(tmp_path) -> None:
    log = FeedbackLog(f"sqlite:///{tmp_path}/fb.db")
    assert log.journal_mode() == "wal"
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    log.close()


def test_user_ids_are_pseudonymised_and_stable(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/fb.db"
    with FeedbackLog(url) as log:
        log.append({"user_id": "alice@example.com", "session_id": "s", "item_id": "1", "event": "view"})
        first = log.read_all()["user_id"][0]
    raw = (
        sqlite3.connect(tmp_path / "fb.db")
        .execute("SELECT group_concat(user_id) FROM feedback")
        .fetchone()[0]
    )
    assert "alice" not in raw and "alice" not in first and first.startswith("u_")
    assert (tmp_path / "fb.db.key").is_file()
    assert oct((tmp_path / "fb.db.key").stat().st_mode & 0o777) == "0o600"
    with FeedbackLog(url) as again:  # the persisted key gives the same pseudonym after a restart
        assert again.pseudonymise("alice@example.com") == first
        assert again.pseudonymise("bob") != first
    other = FeedbackLog(f"sqlite:///{tmp_path}/other.db", key="another key")
    assert other.pseudonymise("alice@example.com") != first  # keyed: a different key, different pseudonym
    other.close()


def test_key_from_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "k1")
    a = FeedbackLog(f"sqlite:///{tmp_path}/a.db")
    b = FeedbackLog(f"sqlite:///{tmp_path}/b.db")
    assert a.pseudonymise("x") == b.pseudonymise("x")
    assert not (tmp_path / "a.db.key").exists()
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ({"user_id": "u", "item_id": "1", "event": "love"}, "'love' is not one of"),
        ({"user_id": "u", "item_id": "", "event": "click"}, "non-empty 'item_id'"),
        ({"item_id": "1", "event": "click"}, "'user_id' or a 'session_id'"),
        ({"user_id": "u", "item_id": "1", "event": "rating"}, "needs a numeric 'value'"),
        ({"user_id": "u", "item_id": "1", "event": "rating", "value": "five"}, "must be a number"),
        ({"user_id": "u", "item_id": "1", "event": "click", "value": float("nan")}, "must be finite"),
        ({"user_id": "u", "item_id": "1", "event": "click", "timestamp": "yesterday-ish"}, "not a datetime"),
        ({"user_id": "u", "item_id": "1", "event": "click", "colour": "red"}, "unknown fields"),
    ],
)
def test_bad_events_are_rejected_clearly(tmp_path, event, match) -> None:
    with FeedbackLog(f"sqlite:///{tmp_path}/fb.db") as log:
        with pytest.raises(ValueError, match=match):
            log.append(event)
        assert len(log) == 0


def test_append_many_is_all_or_nothing(tmp_path) -> None:
    with FeedbackLog(f"sqlite:///{tmp_path}/fb.db") as log:
        assert log.append_many([{"user_id": "u", "item_id": str(i), "event": "view"} for i in range(3)]) == [
            1,
            2,
            3,
        ]
        with pytest.raises(ValueError):
            log.append_many(
                [{"user_id": "u", "item_id": "9", "event": "view"}, {"item_id": "x", "event": "bad"}]
            )
        assert len(log) == 3


def test_urls() -> None:
    assert sqlite_path("sqlite:///data/feedback/fb.db") == Path("data/feedback/fb.db")
    assert sqlite_path("sqlite:////abs/fb.db") == Path("/abs/fb.db")
    with pytest.raises(ValueError, match="unsupported feedback log URL"):
        sqlite_path("mysql://x")


def test_postgres_without_driver_says_what_to_install(monkeypatch) -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        monkeypatch.setenv(KEY_ENV, "k")
        with pytest.raises(RuntimeError, match=r"pip install 'psycopg\[binary\]'"):
            FeedbackLog("postgresql://user:secret@localhost:1/db")
    else:  # pragma: no cover - only where psycopg is installed
        pytest.skip("psycopg is installed; this checks the message shown without it")


CHILD = textwrap.dedent(
    """
    import sys
    from components.feedback_log import FeedbackLog
    log = FeedbackLog(sys.argv[1])
    n = 0
    while True:
        n += 1
        row = log.append({"user_id": "u%d" % (n % 5), "session_id": "s", "item_id": str(n), "event": "click"})
        print("ACK", row, flush=True)
    """
)


def test_acknowledged_events_survive_sigkill(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/fb.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    acked: list[int] = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("ACK "):
                acked.append(int(line.split()[1]))
            if len(acked) >= 40:
                proc.send_signal(signal.SIGKILL)  # immediately after reading an ACK, mid-stream
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert len(acked) == 40
    with FeedbackLog(url) as log:
        stored = set(pd.to_numeric(log.read_all()["item_id"]).astype(int))
    assert set(acked) <= stored  # every acknowledged event is there (one more may be, committed unacked)
