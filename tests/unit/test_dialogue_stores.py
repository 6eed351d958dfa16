"""Session stores: in-process TTL store (expiry, isolation, cap, threads), the SQLite file several worker
processes share, and Redis (real server when present)."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import socket
import subprocess
import threading
import time

import pytest

from components.dialogue.state import DialogueState
from components.dialogue.stores import (
    InMemorySessionStore,
    RedisSessionStore,
    SqliteSessionStore,
    make_session_store,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_memory_store_ttl_expiry_and_isolation() -> None:
    clock = FakeClock()
    store = InMemorySessionStore(ttl_seconds=60, clock=clock)
    s = DialogueState("a", liked=["1"])
    store.put(s)
    s.liked.append("2")  # mutating after put does not change what is stored
    assert store.get("a").liked == ["1"]
    clock.now += 59
    assert store.get("a") is not None
    store.put(store.get("a"))  # a write renews the TTL
    clock.now += 59
    assert store.get("a") is not None
    clock.now += 2
    assert store.get("a") is None
    assert store.get("never") is None
    store.put(DialogueState("b"))
    store.delete("b")
    assert store.get("b") is None


def test_in_memory_store_caps_sessions() -> None:
    store = InMemorySessionStore(ttl_seconds=60, max_sessions=3)
    for i in range(5):
        store.put(DialogueState(str(i)))
    assert len(store) == 3 and store.get("0") is None and store.get("4") is not None


def hammer(store, threads: int = 4, writes: int = 200, keys: int = 7) -> None:
    """Writers and readers on several threads at once; no call may fail."""
    errors: list[Exception] = []

    def work(n: int) -> None:
        try:
            for i in range(writes):
                store.put(DialogueState(f"{n}-{i % keys}", turn=i))
                store.get(f"{(n + 1) % threads}-{i % keys}")
        except Exception as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors


def test_in_memory_store_is_thread_safe() -> None:
    store = InMemorySessionStore(ttl_seconds=60)
    hammer(store)
    assert len(store) == 28


def test_store_factory_defaults_to_memory() -> None:
    assert isinstance(make_session_store(None, 10), InMemorySessionStore)


def test_store_factory_picks_the_shared_file(tmp_path) -> None:
    store = make_session_store(None, 10, session_db=tmp_path / "sessions.db")
    assert isinstance(store, SqliteSessionStore) and store.path == tmp_path / "sessions.db"


def test_sqlite_store_ttl_expiry_isolation_and_cap(tmp_path) -> None:
    clock = FakeClock()
    store = SqliteSessionStore(tmp_path / "s.db", ttl_seconds=60, max_sessions=3, clock=clock)
    s = DialogueState("a", liked=["1"], constraints=[{"facet": "year", "op": "at_least", "low": 1990}])
    store.put(s)
    s.liked.append("2")
    assert store.get("a") == DialogueState("a", liked=["1"], constraints=s.constraints)
    clock.now += 59
    store.put(store.get("a"))  # a write renews the TTL
    clock.now += 59
    assert store.get("a") is not None
    clock.now += 2
    assert store.get("a") is None and len(store) == 0
    for i in range(5):
        clock.now += 1
        store.put(DialogueState(str(i)))
    assert store.prune() == 3  # the expired "a" and the two oldest beyond max_sessions
    assert len(store) == 3 and store.get("1") is None and store.get("4") is not None
    store.delete("4")
    assert store.get("4") is None


def _turn_in_another_process(path: str, session_id: str) -> None:
    store = SqliteSessionStore(path)
    state = store.get(session_id)
    state.turn += 1
    state.liked.append("from-the-other-worker")
    store.put(state)


def test_sqlite_store_is_shared_by_processes_and_threads(tmp_path) -> None:
    """A session started by one worker process carries on in another (the reason the store exists)."""
    path = tmp_path / "shared.db"
    store = SqliteSessionStore(path)
    store.put(DialogueState("s1", turn=1, liked=["7"]))
    proc = multiprocessing.get_context("spawn").Process(
        target=_turn_in_another_process, args=(str(path), "s1")
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert store.get("s1").turn == 2 and store.get("s1").liked == ["7", "from-the-other-worker"]
    hammer(store, writes=50, keys=5)
    assert len(store) == 21


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary on PATH")
def test_redis_store_round_trip_and_ttl(tmp_path) -> None:
    pytest.importorskip("redis", reason="redis-py is not installed")
    port = _free_port()
    cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(port)]  # loopback only
    cmd += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        store = RedisSessionStore(f"redis://127.0.0.1:{port}/0", ttl_seconds=1)
        for _ in range(50):
            try:
                store.get("x")
                break
            except Exception:
                time.sleep(0.1)
        s = DialogueState("r", liked=["1"], mood="lighter")
        store.put(s)
        assert store.get("r") == s
        time.sleep(2.1)
        assert store.get("r") is None
        store.put(s)
        store.delete("r")
        assert store.get("r") is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _FakeRedis:
    """The three calls RedisSessionStore makes, over a dict (exercises serialisation without a server)."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[int, str]] = {}

    def get(self, key: str):
        entry = self.data.get(key)
        return None if entry is None else entry[1].encode()

    def setex(self, key: str, ttl: int, value: str) -> None:
        assert isinstance(ttl, int) and ttl >= 1
        self.data[key] = (ttl, value)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def test_redis_store_serialises_states_as_json() -> None:
    pytest.importorskip("redis", reason="redis-py is not installed")
    store = RedisSessionStore("redis://127.0.0.1:1/0", ttl_seconds=90.5)  # no connection until used
    fake = _FakeRedis()
    store._client = fake  # type: ignore[assignment]
    s = DialogueState("r", disliked=["3"], mood="darker")
    store.put(s)
    ttl, text = fake.data["sessionflow:dialogue:r"]
    assert ttl == 91 and json.loads(text)["disliked"] == ["3"]
    assert store.get("r") == s
    store.delete("r")
    assert store.get("r") is None
