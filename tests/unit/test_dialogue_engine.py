"""ConversationEngine API: chat, stateless replay, feedback, /recommend, reset, cold start, LLM fallback."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from components.dialogue import ConversationConfig
from components.dialogue.engine import ChatItem, ChatResult
from components.dialogue.state import InMemorySessionStore
from tests.unit.dialogue_fixtures import make_engine

TURNS = [
    "a funny sci-fi film from the 90s, nothing like Alien",
    "no horror",
    "more recent",
    "another one like the second",
    "not the first one",
    "something lighter",
]


@pytest.fixture(scope="module")
def engine():
    return make_engine()


def ids(res: ChatResult) -> list[str]:
    return [i.item_id for i in res.items]


def test_chat_result_shape(engine) -> None:
    res = engine.chat("shape", TURNS[0], k=7)
    assert isinstance(res.reply, str) and res.reply
    assert len(res.items) == 7 and all(isinstance(i, ChatItem) for i in res.items)
    item_id, title, score, reason = res.items[0]
    assert isinstance(item_id, str) and title and np.isfinite(score) and reason
    json.dumps(res.to_dict())  # JSON-able, state included
    assert res.state["accepted_categories"] == ["Comedy", "Sci-Fi"]
    assert res.state["negative_refs"] == ["183"]
    assert "Comedy and Sci-Fi" in res.reply and "1990s" in res.reply and "Alien (1979)" in res.reply
    assert res.understood["years"] == "the 1990s"
    assert res.reply_source == "rules"


def test_stateless_equals_stateful(engine) -> None:
    engine.reset("sf")
    stateful = [engine.chat("sf", t, k=6) for t in TURNS][-1]
    msgs = []
    for t in TURNS:
        msgs += [{"role": "user", "content": t}, {"role": "assistant", "content": "(ignored)"}]
    stateless = engine.chat_stateless(msgs, k=6)
    assert ids(stateless) == ids(stateful)
    assert stateless.reply == stateful.reply
    a, b = dict(stateless.state), dict(stateful.state)
    a.pop("session_id"), b.pop("session_id")
    assert a == b
    with pytest.raises(ValueError, match="no turn with role 'user'"):
        engine.chat_stateless([{"role": "assistant", "content": "hi"}])
    with pytest.raises(ValueError, match=r"messages\[0\]"):
        engine.chat_stateless([{"text": "hi"}])


def test_cold_start_answers_from_the_message_alone() -> None:
    engine = make_engine()
    hello = engine.chat("cold", "hi", k=10)
    assert len(hello.items) == 10 and "popular" in hello.reply
    western = engine.chat("cold2", "a western", k=5)
    cat = engine.catalogue
    assert all("Western" in cat.categories[cat.index(i)] for i in ids(western))


def test_feedback_like_and_dislike_change_the_list_immediately() -> None:
    engine = make_engine()
    first = engine.chat("fb", "a comedy", k=10)
    disliked = first.items[0].item_id
    out = engine.feedback("fb", disliked, "dislike")
    assert out["polarity"] == "negative" and disliked not in [i["item_id"] for i in out["items"]]
    again = engine.chat("fb", "a comedy", k=10)
    assert disliked not in ids(again)
    before = engine.recommend("fb", None, k=10)
    out = engine.feedback("fb", "1", "like")  # Toy Story
    assert out["polarity"] == "positive" and "1" in out["state"]["liked"] and out["state"]["history"] == ["1"]
    after = engine.recommend("fb", None, k=10)
    assert [r.item_id for r in after] != [r.item_id for r in before] and "1" not in [r.item_id for r in after]
    assert any("Toy Story (1995), which you liked" in r.reason for r in after)
    rated = engine.feedback("fb", "50", "rating", 5)
    assert rated["polarity"] == "positive" and "50" in rated["state"]["liked"]
    low = engine.feedback("fb", "50", "rating", 1.0)
    assert (
        low["polarity"] == "negative"
        and "50" in low["state"]["disliked"]
        and "50" not in low["state"]["liked"]
    )
    assert engine.feedback("fb", "2", "click")["state"]["history"][-1] == "2"


def test_feedback_errors_are_clear(engine) -> None:
    with pytest.raises(ValueError, match="unknown item id 'no-such-item'"):
        engine.feedback("e", "no-such-item", "like")
    with pytest.raises(ValueError, match="unknown event 'love'"):
        engine.feedback("e", "1", "love")
    with pytest.raises(ValueError, match="needs a numeric value"):
        engine.feedback("e", "1", "rating")
    with pytest.raises(ValueError, match="k must be at least 1"):
        engine.chat("e", "hi", k=0)


def test_recommend_folds_in_session_items_and_exclusions(engine) -> None:
    engine.reset("rec")
    recs = engine.recommend("rec", ["1", "95", "unknown-id"], k=10, exclude=["71"])
    got = [r.item_id for r in recs]
    assert len(got) == 10 and not {"1", "95", "71"} & set(got)
    assert engine.split_known(["1", "unknown-id"]) == (["1"], ["unknown-id"])
    assert engine.store.get("rec") is None  # /recommend never creates a session
    engine.chat("rec", "no animation", k=5)
    cat = engine.catalogue
    recs = engine.recommend("rec", ["1", "95"], k=10)
    assert all("Animation" not in cat.categories[cat.index(r.item_id)] for r in recs)
    anonymous = engine.recommend(None, ["1"], k=5)
    assert len(anonymous) == 5


def test_reset_forgets_the_session(engine) -> None:
    engine.chat("rs", "no comedy", k=3)
    engine.reset("rs")
    assert engine.store.get("rs") is None
    res = engine.chat("rs", "start over, a western", k=3)
    assert res.state["rejected_categories"] == [] and res.state["accepted_categories"] == ["Western"]
    assert res.reply.startswith("Starting over.")


def test_sessions_expire_with_the_store_ttl() -> None:
    now = [0.0]
    engine = make_engine(store=InMemorySessionStore(ttl_seconds=30, clock=lambda: now[0]))
    engine.chat("ttl", "no horror", k=3)
    now[0] = 29.0
    assert engine.chat("ttl", "a comedy", k=3).state["rejected_categories"] == ["Horror"]
    now[0] = 60.0
    assert engine.chat("ttl", "a comedy", k=3).state["rejected_categories"] == []


def test_unresolved_title_is_said(engine) -> None:
    res = engine.chat("u", "something similar to Blorptastic Zorg", k=3)
    assert "couldn't find 'blorptastic zorg'" in res.reply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_llm_unreachable_falls_back_to_rules() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    engine = make_engine(ConversationConfig(llm_url=url, llm_timeout_s=0.5))
    start = time.perf_counter()
    res = engine.chat("llm", "a funny movie", k=3)
    assert res.reply_source == "rules" and res.reply.startswith("Here are 3")
    assert time.perf_counter() - start < 5


class _FakeLLM(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions" and body["messages"][0]["role"] == "system"
        payload = json.dumps(
            {"choices": [{"message": {"content": "  Three funny picks for you.  "}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_llm_reply_used_when_the_endpoint_answers() -> None:
    server = HTTPServer(("127.0.0.1", 0), _FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        engine = make_engine(ConversationConfig(llm_url=f"http://127.0.0.1:{server.server_port}/v1"))
        res = engine.chat("llm2", "a funny movie", k=3)
        assert res.reply_source == "llm" and res.reply == "Three funny picks for you."
    finally:
        server.shutdown()
        server.server_close()


def test_concurrent_feedback_on_one_session_loses_nothing(engine) -> None:
    engine.reset("conc")
    items = [engine.catalogue.item_ids[i] for i in range(40)]
    cfg_refresh = engine.config.refresh_on_feedback
    engine.config.refresh_on_feedback = False
    try:
        threads = [
            threading.Thread(target=lambda part=part: [engine.feedback("conc", i, "click") for i in part])
            for part in (items[:20], items[20:])
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        engine.config.refresh_on_feedback = cfg_refresh
    assert sorted(engine.store.get("conc").history) == sorted(items)


def test_chat_latency_is_interactive(engine) -> None:
    engine.chat("lat", "a comedy", k=10)  # warm the query cache and the encoder
    times = []
    for t in ["no horror", "more recent", "another one like the second", "older", "lighter"] * 4:
        start = time.perf_counter()
        engine.chat("lat", t, k=10)
        times.append(time.perf_counter() - start)
    assert float(np.median(times)) < 0.5  # generous: shared CI CPUs
