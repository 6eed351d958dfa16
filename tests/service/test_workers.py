"""Two HTTP worker processes (``SESSIONFLOW_WORKERS=2``) behind one real ``bentoml serve``: a conversation
whose turns reach either worker carries on, because the workers share their sessions (a SQLite file beside
the feedback log), and /recommend answers from both."""

from __future__ import annotations

import httpx
import psutil
import pytest

from tests.service import packaged_model, served

pytestmark = pytest.mark.slow


def test_a_session_carries_on_across_two_workers(tmp_path):
    home = tmp_path / "bentoml_home"
    tag = packaged_model(home, tmp_path)
    db = tmp_path / "feedback" / "feedback.db"
    with served(tag, home, db, tmp_path / "serve.log", {"SESSIONFLOW_WORKERS": "2"}) as service:
        workers = [
            p
            for p in psutil.Process(service.proc.pid).children(recursive=True)
            if "_bentoml_impl.worker.service" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2, [p.cmdline() for p in workers]
        meta = httpx.get(f"{service.url}/metadata", timeout=10).json()
        assert meta["session_store"] == "sqlite:sessions.db"

        first = httpx.post(f"{service.url}/chat", json={"message": "I liked Movie 3"}, timeout=30).json()
        session = first["session_id"]
        assert first["state"]["turn"] == 1 and first["state"]["liked"] == ["3"]
        for turn in range(2, 17):  # a new connection per turn: the kernel spreads them over the workers
            answer = httpx.post(
                f"{service.url}/chat", json={"session_id": session, "message": "something else"}, timeout=30
            ).json()
            assert answer["state"]["turn"] == turn and answer["state"]["liked"] == ["3"], answer["state"]
        for _ in range(8):
            got = httpx.post(f"{service.url}/recommend", json={"items": ["1", "2"], "k": 3}, timeout=30)
            assert got.status_code == 200 and len(got.json()["items"]) == 3
    assert (db.parent / "sessions.db").is_file()
