"""An acknowledged /feedback event survives ``kill -9`` of a real ``bentoml serve`` process.

The service runs from source (SESSIONFLOW_MODEL_TAG) over the tiny bundle, in its own process group, with a
temporary BentoML home and feedback database. Four clients post events concurrently; right after the 40th
HTTP 200 the whole process group gets SIGKILL, with requests still in flight. Reopening the SQLite file
must show every acknowledged event, exactly as acknowledged.
"""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.service import packaged_model, served

ACKS_BEFORE_KILL = 40
EVENTS = ("click", "like", "dislike", "skip", "purchase")


def test_acknowledged_feedback_survives_sigkill(tmp_path):
    home = tmp_path / "bentoml_home"
    tag = packaged_model(home, tmp_path)
    db = tmp_path / "feedback" / "feedback.db"

    acked: list[dict] = []
    lock = threading.Lock()
    enough = threading.Event()

    with served(tag, home, db, tmp_path / "serve.log") as service:
        meta = httpx.get(f"{service.url}/metadata", timeout=10).json()
        assert meta["feedback_log"] == "sqlite:feedback.db"
        assert meta["catalogue"]["index"] == "packaged"

        def post_events(worker: int) -> None:
            with httpx.Client(base_url=service.url, timeout=10) as client:
                n = 0
                while not enough.is_set():
                    n += 1
                    event = {
                        "session_id": f"durable-{worker}",
                        "item_id": str(1 + (worker * 7 + n) % 20),
                        "event": EVENTS[n % len(EVENTS)],
                        "user_id": f"user-{worker}",
                    }
                    try:
                        resp = client.post("/feedback", json=event)
                    except httpx.HTTPError:
                        return  # the server is gone: this one was never acknowledged
                    if resp.status_code != 200:
                        raise AssertionError(resp.text)
                    with lock:
                        acked.append({**event, "id": resp.json()["id"]})
                        if len(acked) >= ACKS_BEFORE_KILL:
                            service.kill()  # SIGKILL the process group right after this ack
                            enough.set()

        with ThreadPoolExecutor(4) as pool:
            for future in [pool.submit(post_events, w) for w in range(4)]:
                future.result()
        assert service.proc.poll() is not None and not service.alive(), "every server process must be dead"

    assert len(acked) >= ACKS_BEFORE_KILL
    with sqlite3.connect(db) as conn:  # recovery replays the WAL on open
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {
            row[0]: row[1:]
            for row in conn.execute("SELECT id, session_id, item_id, event, user_id FROM feedback")
        }
    missing = [a for a in acked if a["id"] not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
    for a in acked:
        session_id, item_id, event, user_id = stored[a["id"]]
        assert (session_id, item_id, event) == (a["session_id"], a["item_id"], a["event"])
        assert user_id.startswith("u_") and a["user_id"] not in user_id  # pseudonymised
