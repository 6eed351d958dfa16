"""The LLM planner's contract and its fallbacks, against a local OpenAI-compatible stub on 127.0.0.1 (the real
small model behind llama.cpp's server is tests/e2e/test_llm_planner.py): schema-valid answers are resolved
against the catalogue, anything else falls back to the built-in planner; LLM replies are kept only when
grounded in the shown items' facts."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.dialogue.config import ConversationConfig
from components.dialogue.engine import ChatItem
from components.dialogue.llm import LLMPlanner, QueryDraft, check_grounded, draft_schema
from components.dialogue.planner import BuiltinPlanner
from tests.unit.dialogue_fixtures import fixture


@contextmanager
def stub(answer: str | None, delay: float = 0.0):
    """An OpenAI-compatible /v1/chat/completions that answers ``answer`` as the message content."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            time.sleep(delay)
            payload = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": answer}}]}
            ).encode()
            self.send_response(200 if answer is not None else 500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def planner_for(url: str, **kw) -> LLMPlanner:
    ix = fixture().index
    cfg = ConversationConfig(planner="llm", llm_url=url, llm_timeout_s=kw.pop("timeout", 5.0), **kw)
    return LLMPlanner(cfg, BuiltinPlanner(ix), ix)


def test_a_schema_valid_answer_is_resolved_against_the_catalogue() -> None:
    draft = {
        "intent": "recommend",
        "constraints": [{"facet": "genre", "op": "is", "value": "comedies"},
                        {"facet": "year", "op": "between", "low": 1999, "high": 1990},
                        {"facet": "colour", "op": "is", "value": "blue"}],
        "soft": "quirky", "refs": [{"title": "Twelve Monkeys", "stance": "liked"},
                                   {"title": "A Film Nobody Made", "stance": "liked"}],
    }  # fmt: skip
    with stub(json.dumps(draft)) as (url, seen):
        q = planner_for(url).plan("a funny 90s film like Twelve Monkeys")
    assert q.planner == "llm"
    assert [(c.facet, c.op, c.value, c.low, c.high) for c in q.constraints] == [
        ("genre", "is", "Comedy", None, None), ("year", "between", None, 1990.0, 1999.0),
    ]  # fmt: skip
    assert [(r.title, r.stance) for r in q.refs] == [("Twelve Monkeys (1995)", "liked")]
    assert q.unresolved_titles == ["A Film Nobody Made"]
    fmt = seen[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == draft_schema()


def test_llama_cpp_style_json_mode() -> None:
    with stub(json.dumps({"intent": "chit_chat"})) as (url, seen):
        q = planner_for(url, llm_json_mode="json_object_schema").plan("hello")
    assert q.intent == "chit_chat" and seen[0]["response_format"]["type"] == "json_object"
    assert "schema" in seen[0]["response_format"]


@pytest.mark.parametrize(
    ("answer", "delay", "why"),
    [
        ("not json at all", 0.0, "ValueError"),
        (json.dumps({"intent": "recommend", "constraints": "comedy"}), 0.0, "ValidationError"),
        (None, 0.0, "HTTPStatusError"),
        (json.dumps({"intent": "recommend"}), 2.0, "Timeout"),
    ],
)
def test_failures_fall_back_to_the_builtin_planner(answer, delay, why) -> None:
    with stub(answer, delay) as (url, _):
        q = planner_for(url, timeout=0.5).plan("a comedy from the 90s")
    assert q.planner.startswith("builtin (llm failed: ") and why in q.planner
    assert [c.value for c in q.constraints if c.facet == "genre"] == ["Comedy"]


def test_an_unreachable_endpoint_falls_back() -> None:
    q = planner_for("http://127.0.0.1:9/v1", timeout=0.5).plan("a comedy")
    assert q.planner.startswith("builtin (llm failed")


def test_replies_are_checked_against_the_facts() -> None:
    ix = fixture().index
    items = [ChatItem("100", "Fargo (1996)", 1.0, "x"), ChatItem("127", "The Godfather (1972)", 0.9, "y")]
    facts = [
        "Fargo (1996); genre: Crime, Drama, Thriller.",
        "The Godfather (1972); genre: Action, Crime, Drama.",
    ]
    assert check_grounded("Try Fargo (1996), a crime drama, or The Godfather.", items, facts, ix)[0]
    ok, why = check_grounded("Fargo came out in 1994.", items, facts, ix)
    assert not ok and "1994" in why
    ok, why = check_grounded("You will also love Braveheart.", items, facts, ix)
    assert not ok and "Braveheart" in why


def test_the_draft_schema_is_the_query_contract() -> None:
    schema = draft_schema()
    assert set(schema["properties"]) == set(QueryDraft.model_fields)
    assert "other_language" in json.dumps(schema)
