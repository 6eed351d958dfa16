"""Terminal chat: scripted conversations in process on a tiny real bundle, and over HTTP against a mock."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from rich.console import Console

from sessionflow.chat import ChatError, EngineBackend, HttpBackend, chat_loop, run_chat
from tests.unit.dialogue_fixtures import EMBEDDING_CACHE, fixture, make_engine


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=False, color_system=None), out


def script(*lines: str) -> Callable[[str], str]:
    """A read_line that plays ``lines`` then signals end of input."""
    it: Iterator[str] = iter(lines)

    def read(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read


def test_in_process_conversation_on_a_bundle() -> None:
    fx = fixture()
    con, out = console()
    code = run_chat(
        bundle_dir=fx.bundle_dir,
        session_id="cli-test",
        k=5,
        embedding_cache=EMBEDDING_CACHE,
        console=con,
        read_line=script(
            "a funny movie from the 90s",
            ":like 1",
            ":dislike 2",
            ":like 99",
            ":like",
            ":frobnicate",
            "more like Toy Story",
            ":reset",
            "something scary",
            ":quit",
            "never read",
        ),
    )
    text = out.getvalue()
    assert code == 0
    assert "session cli-test" in text and "ease bundle" in text
    assert "recommender:" in text and "why" in text  # reply + table header
    assert text.count("│ 1 │") >= 3 and "│ 5 │" in text  # numbered rows, k=5
    assert "liked " in text and "disliked " in text
    assert "no item 99 in the last list (1..5)" in text
    assert "give the item's number" in text
    assert "unknown command :frobnicate" in text
    assert "new conversation" in text
    assert "never read" not in text


def test_feedback_commands_change_the_session() -> None:
    engine = make_engine()
    backend = EngineBackend(engine, "cli-fb", 5)
    con, out = console()
    assert chat_loop(backend, con, script(":like 1")) == 0
    assert "nothing shown yet" in out.getvalue() and engine.store.get("cli-fb") is None
    backend.chat("an action movie")
    assert chat_loop(backend, con, script(":like 1", ":dislike 2")) == 0  # the loop's own list is empty
    assert engine.store.get("cli-fb").liked == []
    con, out = console()
    assert chat_loop(backend, con, script("an action movie", ":like 1", ":dislike 2")) == 0
    state = engine.store.get("cli-fb")
    assert len(state.liked) == 1 and len(state.disliked) == 1 and state.liked != state.disliked
    assert set(state.liked) | set(state.disliked) <= set(state.shown_before)
    assert chat_loop(backend, con, script(":reset")) == 0 and engine.store.get("cli-fb") is None


def test_stdin_is_read_when_no_reader_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    fx = fixture()
    monkeypatch.setattr("sys.stdin", io.StringIO("I want a romantic comedy\n:quit\n"))
    con, out = console()
    code = run_chat(bundle_dir=fx.bundle_dir, k=3, embedding_cache=EMBEDDING_CACHE, console=con)
    assert code == 0 and "recommender:" in out.getvalue() and "│ 3 │" in out.getvalue()


def test_http_backend_talks_json_to_chat_and_feedback() -> None:
    calls: list[tuple[str, dict]] = []
    items = [
        {"item_id": str(i), "title": f"Movie {i}", "score": 1.0 / i, "reason": "popular"} for i in (1, 2)
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(200, text="ok")
        body = json.loads(request.content)
        calls.append((request.url.path, body))
        if request.url.path == "/chat":
            if body["message"] == "boom":
                return httpx.Response(400, json={"error": "message too odd"})
            return httpx.Response(200, json={"reply": "Here you go.", "items": items, "state": {}})
        if request.url.path == "/feedback":
            return httpx.Response(200, json={"item_id": body["item_id"], "items": items[:1]})  # 2 is gone
        return httpx.Response(404)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    backend = HttpBackend("http://svc:3000/", "s-1", 2, client=client)
    backend.check()
    con, out = console()
    code = chat_loop(backend, con, script("funny", ":dislike 2", "boom", ":reset", "again", ":quit"))
    assert code == 0
    assert calls[0] == ("/chat", {"session_id": "s-1", "message": "funny", "k": 2})
    assert calls[1] == ("/feedback", {"session_id": "s-1", "item_id": "2", "event": "dislike"})
    assert calls[-1][0] == "/chat" and calls[-1][1]["session_id"] != "s-1"  # reset = fresh session
    text = out.getvalue()
    assert "Here you go." in text and "disliked Movie 2" in text and "message too odd" in text


def test_unreachable_service_and_bad_arguments() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    con, out = console()
    assert run_chat(url=f"http://127.0.0.1:{port}", console=con, read_line=script("hi")) == 1
    assert "cannot reach the sessionflow service" in out.getvalue()
    con, out = console()
    assert run_chat(console=con, read_line=script()) == 1
    assert "give either --url" in out.getvalue()
    con, out = console()
    assert run_chat(bundle_dir=fixture().bundle_dir.parent / "nope", console=con, read_line=script()) == 1
    assert "not a sessionflow model bundle" in out.getvalue()


def test_http_backend_reports_a_service_without_chat() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(404)))
    with pytest.raises(ChatError, match="does not exist"):
        HttpBackend("http://svc", "s", 3, client=client).chat("hello")


def test_what_is_known_words_a_preference_without_a_value() -> None:
    """A shop's "a popular multimeter" is a preference on the popularity range: it printed "None"."""
    from sessionflow.chat import known_so_far

    popular = {"facet": "popularity", "op": "prefer", "low": 90.0, "said": "popular"}
    funny = {"facet": "genre", "op": "prefer", "value": "Comedy", "said": "funny"}
    state = {"constraints": [popular, funny]}
    assert known_so_far(state) == "popular, Comedy"
