"""`sessionflow forget`: a user's or session's events leave the logs, the snapshots, derived data and the
DVC cache; the record says what went, never who."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest

from components.feedback_log import FEEDBACK_DB_ENV, FEEDBACK_URL_ENV, FeedbackLog
from components.pseudonyms import KEY_ENV, key_file_for, rotate_key_file
from components.request_log import RequestLog, read_requests
from sessionflow.forget import FORGET_LOG, forget, forget_requests


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for var in (KEY_ENV, FEEDBACK_DB_ENV, FEEDBACK_URL_ENV, "SESSIONFLOW_REQUEST_LOG_DB"):
        monkeypatch.delenv(var, raising=False)


def event(item: str, session: str, user: str | None = None, name: str = "click") -> dict:
    e = {"session_id": session, "item_id": item, "event": name}
    return e | ({"user_id": user} if user else {})


@pytest.fixture()
def project(tmp_path):
    """Feedback and request logs with alice (2 sessions, one before a key rotation), session s-anon without a
    user, and bob; a snapshot, derived data of dataset 'shop', and a DVC cache holding the snapshot."""
    db = tmp_path / "data" / "feedback" / "feedback.db"
    with FeedbackLog(f"sqlite:///{db}") as log:
        log.append_many([event("1", "a1", "alice"), event("2", "s-anon"), event("3", "b1", "bob")])
        rotate_key_file(key_file_for(db))
    with FeedbackLog(f"sqlite:///{db}") as log:  # a new key: alice's next event gets another pseudonym
        log.append(event("4", "a2", "alice", "like"))
        snapshot = log.read_all()
        requests = RequestLog(db.with_name("requests.db"), pseudonymise=log.pseudonymise, start=False)
    for session, user in (("a2", "alice"), ("s-anon", None), ("b1", "bob")):
        requests.record("recommend", items=["1"], shown=["2"], scores=[0.1], session_id=session, user_id=user)
    requests.close()
    snap_path = tmp_path / "data" / "feedback" / "shop" / "events.parquet"
    snap_path.parent.mkdir(parents=True)
    snapshot.to_parquet(snap_path, index=False)
    interim = tmp_path / "data" / "interim" / "shop"
    interim.mkdir(parents=True)
    merged = snapshot.assign(session_id="feedback:" + snapshot["session_id"])
    merged.to_parquet(interim / "interactions.parquet", index=False)
    (tmp_path / "data" / "processed" / "shop" / "features").mkdir(parents=True)
    other = tmp_path / "data" / "interim" / "other"  # a dataset that never saw these people
    other.mkdir(parents=True)
    pd.DataFrame({"user_id": ["u9"], "session_id": ["x"], "item_id": ["1"]}).to_parquet(other / "i.parquet")
    digest = hashlib.md5(snap_path.read_bytes()).hexdigest()
    cached = tmp_path / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    cached.parent.mkdir(parents=True)
    shutil.copy(snap_path, cached)
    cached.chmod(0o444)
    return tmp_path


def test_forget_a_user_everywhere(project):
    record = forget(project, "alice")
    db = project / "data" / "feedback" / "feedback.db"
    with FeedbackLog(f"sqlite:///{db}") as log:
        assert sorted(log.read_all()["item_id"]) == ["2", "3"]  # both of alice's keys were searched
    assert record.feedback_rows == 2 and record.keys_searched == 2
    assert record.request_rows == 1
    assert sorted(read_requests(db.with_name("requests.db"))["session_id"]) == ["b1", "s-anon"]
    assert record.snapshot_rows == {"shop": 2}
    snap = pd.read_parquet(project / "data" / "feedback" / "shop" / "events.parquet")
    assert sorted(snap["session_id"]) == ["b1", "s-anon"]
    assert record.derived_removed == ["data/interim/shop", "data/processed/shop"]
    assert not (project / "data" / "interim" / "shop").exists()
    assert (project / "data" / "interim" / "other").is_dir()
    assert record.dvc_cache_objects_removed == 1
    assert not [p for p in (project / ".dvc" / "cache").rglob("*") if p.is_file()]
    text = (project / FORGET_LOG).read_text()
    assert "alice" not in text and forget_requests(project) == 1


def test_forget_a_session_logged_without_a_user(project):
    record = forget(project, "s-anon")
    assert record.feedback_rows == 1 and record.request_rows == 1 and record.snapshot_rows == {"shop": 1}
    snap = pd.read_parquet(project / "data" / "feedback" / "shop" / "events.parquet")
    assert "s-anon" not in set(snap["session_id"]) and len(snap) == 3
    assert "s-anon" not in (project / FORGET_LOG).read_text()


def test_forgetting_someone_unknown_changes_nothing_but_is_recorded(project):
    record = forget(project, "nobody")
    assert record.feedback_rows == record.request_rows == 0 and record.snapshot_rows == {}
    assert record.derived_removed == [] and record.dvc_cache_objects_removed == 0
    assert forget_requests(project) == 1
    with pytest.raises(ValueError, match="non-empty"):
        forget(project, "  ")
