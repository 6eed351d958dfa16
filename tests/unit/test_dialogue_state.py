"""Dialogue state transitions, year labels, and the session stores (TTL, isolation, thread safety, Redis)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from components.dialogue.parser import ParsedTurn
from components.dialogue.state import (
    DialogueState,
    InMemorySessionStore,
    RedisSessionStore,
    apply_turn,
    make_session_store,
    record_shown,
    year_label,
)
from tests.unit.dialogue_fixtures import make_engine


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def catalogue():
    return make_engine().catalogue


def test_year_labels() -> None:
    assert year_label(None, None) is None
    assert year_label(1990, 1999) == "the 1990s"
    assert year_label(1997, 1999) == "the late 1990s"
    assert year_label(1995, 1995) == "1995"
    assert year_label(1990, 1995) == "between 1990 and 1995"
    assert year_label(1996, None) == "1996 or later"
    assert year_label(None, 1979) == "1979 or earlier"


def test_apply_turn_accumulates_and_flips(catalogue) -> None:
    s = DialogueState("s")
    apply_turn(
        s, ParsedTurn(categories=["Comedy", "Sci-Fi"], year_set=True, year_min=1990, year_max=1999), catalogue
    )
    apply_turn(s, ParsedTurn(rejected_categories=["Comedy"], text="space"), catalogue)
    assert s.accepted_categories == ["Sci-Fi"] and s.rejected_categories == ["Comedy"]
    apply_turn(s, ParsedTurn(categories=["Comedy"]), catalogue)  # asking again un-rejects
    assert s.rejected_categories == [] and set(s.accepted_categories) == {"Sci-Fi", "Comedy"}
    apply_turn(s, ParsedTurn(categories=["Drama"], replace_categories=True), catalogue)
    assert s.accepted_categories == ["Drama"]
    assert (s.year_min, s.year_max, s.texts, s.turn) == (1990, 1999, ["space"], 4)
    toy = catalogue.index("1")
    apply_turn(s, ParsedTurn(positive_refs=[toy]), catalogue)
    apply_turn(s, ParsedTurn(negative_refs=[toy]), catalogue)  # the later word wins
    assert s.positive_refs == [] and s.negative_refs == ["1"]


def test_year_critiques_move_past_the_shown_mean(catalogue) -> None:
    s = DialogueState("s", year_min=1980, year_max=1999)
    record_shown(s, ["1", "50", "183"])  # 1995, 1977, 1979
    apply_turn(s, ParsedTurn(year_critique="newer"), catalogue)
    assert s.year_min == 1984 and s.year_max == 1999
    s2 = DialogueState("s2", year_min=1990, year_max=1999)
    record_shown(s2, ["1"])
    apply_turn(s2, ParsedTurn(year_critique="older"), catalogue)
    assert s2.year_max == 1994 and s2.year_min == 1990
    s3 = DialogueState("s3", year_min=1996)
    record_shown(s3, ["1"])
    apply_turn(s3, ParsedTurn(year_critique="older"), catalogue)  # an old lower bound is dropped
    assert (s3.year_min, s3.year_max) == (None, 1994)


def test_reset_keeps_what_was_done(catalogue) -> None:
    s = DialogueState("s", liked=["1"], history=["1", "2"], accepted_categories=["Comedy"], year_min=1990)
    apply_turn(s, ParsedTurn(reset=True, categories=["Western"]), catalogue)
    assert s.accepted_categories == ["Western"] and s.year_min is None
    assert s.liked == ["1"] and s.history == ["1", "2"]


def test_state_json_round_trip() -> None:
    s = DialogueState("s", liked=["1"], year_min=1990, tone=-1, texts=["space opera"])
    again = DialogueState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s


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


def test_in_memory_store_is_thread_safe() -> None:
    store = InMemorySessionStore(ttl_seconds=60)
    errors: list[Exception] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                store.put(DialogueState(f"{n}-{i % 7}", turn=i))
                store.get(f"{(n + 1) % 4}-{i % 7}")
        except Exception as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(store) == 28


def test_store_factory_defaults_to_memory() -> None:
    assert isinstance(make_session_store(None, 10), InMemorySessionStore)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary on PATH")
def test_redis_store_round_trip_and_ttl(tmp_path) -> None:
    pytest.importorskip("redis", reason="redis-py is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
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
        s = DialogueState("r", liked=["1"], year_min=1990)
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
    s = DialogueState("r", disliked=["3"], tone=1)
    store.put(s)
    ttl, text = fake.data["sessionflow:dialogue:r"]
    assert ttl == 91 and json.loads(text)["disliked"] == ["3"]
    assert store.get("r") == s
    store.delete("r")
    assert store.get("r") is None
