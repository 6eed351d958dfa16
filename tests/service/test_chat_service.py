"""/chat, /feedback, /reset, session-aware /recommend and the chat page, in process over the tiny bundle.

Tiny catalogue (tests/service): items "1".."20", item i has genre GENRES[i % 4] and year 1980 + i; the service
fixture passes ``conversation={"default_k": 5}`` as a bento argument.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.service import GENRES

COMEDIES = {str(i) for i in range(1, 21) if GENRES[i % 4] == "Comedy"}


def rows(db: Path, session_id: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT id, item_id, event, value FROM feedback WHERE session_id = ? ORDER BY id", (session_id,)
        ).fetchall()


def ids(items: list[dict]) -> list[str]:
    return [i["item_id"] for i in items]


def wanted(state: dict) -> list[str]:
    return [c["value"] for c in state["constraints"] if c["op"] in ("is", "prefer")]


def year_range(state: dict) -> tuple | None:
    found = [(c.get("low"), c.get("high")) for c in state["constraints"] if c["facet"] == "year"]
    return found[-1] if found else None


def assert_400(resp, field: str, text: str = "") -> dict:
    assert resp.status_code == 400, resp.text
    assert "Traceback" not in resp.text
    body = resp.json()
    detail = body["detail"]
    assert any(err["loc"] and err["loc"][0] == field for err in detail), detail
    assert all(err["msg"] for err in detail)
    if text:
        assert any(text in err["msg"] for err in detail), detail
    return body


# -- /chat --
def test_chat_stateful_keeps_the_conversation(client):
    first = client.post("/chat", json={"session_id": "chat-1", "message": "a comedy", "k": 3})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["session_id"] == "chat-1"
    assert isinstance(body["reply"], str) and body["reply"]
    assert len(body["items"]) == 3
    assert set(ids(body["items"])) <= COMEDIES, body["items"]
    for item in body["items"]:
        assert set(item) == {"item_id", "title", "score", "reason"}
        assert item["title"].startswith("Movie ") and item["reason"]
    assert wanted(body["state"]) == ["Comedy"]
    assert body["understood"]["intent"] == "recommend"

    second = client.post("/chat", json={"session_id": "chat-1", "message": "from the 80s"})
    assert second.status_code == 200, second.text
    state = second.json()["state"]
    assert wanted(state) == ["Comedy"], "the first turn's constraint must be kept"
    assert year_range(state) == (1980, 1989)
    assert sorted(ids(second.json()["items"])) == ["4", "8"]  # the 80s comedies
    assert "Only 2" in second.json()["reply"]
    third = client.post("/chat", json={"session_id": "chat-1", "message": "start over"}).json()
    assert len(third["items"]) == 5  # conversation.default_k from the bento arguments


def test_chat_stateless_replays_the_messages(client):
    first = client.post("/chat", json={"session_id": "chat-2", "message": "a comedy", "k": 4}).json()
    shown = first["reply"] + " " + "; ".join(i["title"] for i in first["items"])
    stateful = client.post("/chat", json={"session_id": "chat-2", "message": "from the 80s", "k": 4}).json()
    messages = [
        {"role": "user", "content": "a comedy"},
        {"role": "assistant", "content": shown},  # what the user saw
        {"role": "user", "content": "from the 80s"},
    ]
    stateless = client.post("/chat", json={"messages": messages, "k": 4})
    assert stateless.status_code == 200, stateless.text
    body = stateless.json()
    assert body["session_id"] is None
    assert wanted(body["state"]) == ["Comedy"]
    assert ids(body["items"]) == ids(stateful["items"])
    # nothing was kept: a stateful session of the same id space is unaffected
    again = client.post("/chat", json={"messages": messages[:1], "k": 4}).json()
    assert year_range(again["state"]) is None


def test_a_history_of_assistant_turns_only_is_answered(client):
    body = {"messages": [{"role": "assistant", "content": "Hello! Have you seen Movie 3 (1983)?"}], "k": 5}
    resp = client.post("/chat", json=body)
    assert resp.status_code == 200, resp.text
    assert "3" not in ids(resp.json()["items"])  # what the assistant already suggested is not repeated


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        (
            {"session_id": "x", "message": "hi", "messages": [{"role": "user", "content": "hi"}]},
            "messages",
            "not both",
        ),
        ({}, "message", "'message' is required"),
        ({"k": 3}, "message", "stateless"),
        ({"session_id": "x"}, "message", "'message' is required"),
        ({"messages": []}, "messages", ""),
        ({"messages": [{"role": "system", "content": "hi"}]}, "messages", ""),
        ({"messages": [{"role": "user"}]}, "messages", ""),
        ({"messages": "a comedy"}, "messages", ""),
        ({"session_id": "x", "message": 42}, "message", ""),
        ({"session_id": "", "message": "hi"}, "session_id", ""),
        ({"session_id": ["x"], "message": "hi"}, "session_id", ""),
        ({"session_id": "x", "message": "hi", "k": 0}, "k", ""),
        ({"session_id": "x", "message": "hi", "k": "3"}, "k", ""),
        ({"session_id": "x", "message": "hi", "k": 201}, "k", ""),
        ({"session_id": "x", "message": "x" * 4001}, "message", ""),
        ({"session_id": "x", "text": "hi"}, "text", ""),
    ],
)
def test_bad_chat_requests_are_400s_naming_the_field(client, body, field, text):
    assert_400(client.post("/chat", json=body), field, text)


@pytest.mark.parametrize("route", ["/chat", "/feedback", "/reset"])
@pytest.mark.parametrize(("content", "message"), [(b"{junk", "Invalid JSON"), (b"[1, 2]", "object")])
def test_junk_bodies_are_400s(client, route, content, message):
    resp = client.post(route, content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["detail"][0]["msg"] and "Traceback" not in resp.text


# -- /feedback and session-aware /recommend --
def test_feedback_changes_the_next_recommend_for_that_session(client, feedback_db):
    request = {"session_id": "fb-1", "items": ["1", "nope"], "k": 5}
    before = client.post("/recommend", json=request)
    assert before.status_code == 200, before.text
    first = before.json()
    assert first["unknown_items"] == ["nope"] and first["k"] == 5 and first["model_version"] == "7"
    listed = ids(first["items"])
    assert len(listed) == 5 and "1" not in listed
    assert all(i["reason"] for i in first["items"])

    disliked = listed[0]
    fb = client.post("/feedback", json={"session_id": "fb-1", "item_id": disliked, "event": "dislike"})
    assert fb.status_code == 200, fb.text
    answer = fb.json()
    assert answer["ok"] is True and isinstance(answer["id"], int) and answer["polarity"] == "negative"
    assert disliked not in ids(answer["items"]) and answer["items"]
    assert answer["state"]["disliked"] == [disliked]
    assert rows(feedback_db, "fb-1") == [(answer["id"], disliked, "dislike", None)]

    after = client.post("/recommend", json=request).json()
    assert disliked not in ids(after["items"]) and len(after["items"]) == 5

    liked = ids(after["items"])[0]
    fb2 = client.post("/feedback", json={"session_id": "fb-1", "item_id": int(liked), "event": "like"}).json()
    assert fb2["polarity"] == "positive" and fb2["state"]["liked"] == [liked]
    again = client.post("/recommend", json=request).json()
    assert liked not in ids(again["items"]), "a liked item is part of the session now"
    assert ids(again["items"]) != ids(after["items"])
    assert [r[1:3] for r in rows(feedback_db, "fb-1")] == [(disliked, "dislike"), (liked, "like")]

    # other sessions, and requests without a session, are untouched
    other = client.post("/recommend", json={**request, "session_id": "fb-other"}).json()
    assert ids(other["items"]) == listed
    plain = client.post("/recommend", json={"items": ["1"], "k": 5}).json()
    assert plain["items"] and all(i["reason"] is None for i in plain["items"])


def test_feedback_after_chat_reranks_the_shown_list(client, feedback_db):
    shown = client.post("/chat", json={"session_id": "fb-2", "message": "a comedy", "k": 4}).json()
    target = ids(shown["items"])[1]
    resp = client.post(
        "/feedback",
        json={"session_id": "fb-2", "item_id": target, "event": "rating", "value": 5, "user_id": "alice"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["polarity"] == "positive" and len(body["items"]) == 4 and target not in ids(body["items"])
    with sqlite3.connect(feedback_db) as conn:
        (user, value) = conn.execute(
            "SELECT user_id, value FROM feedback WHERE id = ?", (body["id"],)
        ).fetchone()
    assert value == 5.0 and user.startswith("u_") and "alice" not in user  # pseudonymised


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"item_id": "99999", "event": "like"}, "item_id", "unknown item id '99999'"),
        ({"item_id": 0, "event": "like"}, "item_id", "unknown item id"),
        ({"item_id": "3", "event": "love"}, "event", ""),
        ({"item_id": "3", "event": "rating"}, "value", "needs a numeric 'value'"),
        ({"item_id": "3", "event": "rating", "value": "5"}, "value", ""),
        ({"item_id": "3", "event": "rating", "value": True}, "value", ""),
        ({"item_id": None, "event": "like"}, "item_id", ""),
        ({"item_id": 2.5, "event": "like"}, "item_id", ""),
        ({"event": "like"}, "item_id", ""),
        ({"item_id": "3"}, "event", ""),
        ({"item_id": "3", "event": "like", "user_id": {"a": 1}}, "user_id", ""),
        ({"item_id": "3", "event": "like", "when": "now"}, "when", ""),
    ],
)
def test_bad_feedback_is_a_400_and_nothing_is_logged(client, feedback_db, body, field, text):
    resp = client.post("/feedback", json={"session_id": "fb-bad", **body})
    assert_400(resp, field, text)
    assert rows(feedback_db, "fb-bad") == []


@pytest.mark.parametrize("session", [None, "", 7])
def test_feedback_needs_a_session_id(client, session):
    body = {"item_id": "3", "event": "like"} | ({} if session is None else {"session_id": session})
    assert_400(client.post("/feedback", json=body), "session_id")


def test_reset_forgets_the_session(client):
    client.post("/chat", json={"session_id": "rs-1", "message": "a comedy"})
    client.post("/feedback", json={"session_id": "rs-1", "item_id": "4", "event": "dislike"})
    resp = client.post("/reset", json={"session_id": "rs-1"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ok": True, "session_id": "rs-1"}
    state = client.post("/chat", json={"session_id": "rs-1", "message": "hello"}).json()["state"]
    assert state["constraints"] == [] and state["disliked"] == [] and state["turn"] == 1
    assert_400(client.post("/reset", json={}), "session_id")


# -- page and metadata --
def test_root_serves_the_chat_page(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for marker in ('id="chat-form"', 'id="message"', 'id="send"', 'id="results"', 'id="start-over"'):
        assert marker in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/missing.js").status_code == 404


def test_metadata_and_catalogue_describe_what_can_be_asked(client, feedback_db):
    meta = client.get("/metadata").json()
    assert meta["feedback_log"] == f"sqlite:{feedback_db.name}"  # the file name, never an absolute path
    assert str(feedback_db.parent) not in client.get("/metadata").text
    assert meta["catalogue"]["index"] == "built at start"  # the tiny bundle has no packaged index
    assert meta["session_store"] == "memory"
    cat = client.get("/catalogue").json()
    assert cat["item_noun"] == ["item", "items"] and cat["n_items"] == 20 and cat["planner"] == "builtin"
    facets = {f["name"]: f for f in cat["facets"]}
    assert facets["category"]["values"] == sorted(set(GENRES)) and facets["year"]["kind"] == "year"
    full = client.get("/catalogue", params={"items": "true"}).json()
    assert len(full["item_ids"]) == len(full["titles"]) == len(full["years"]) == 20


def test_feedback_log_location(service, tmp_path):
    url = service.feedback_log_url
    assert url({"SESSIONFLOW_FEEDBACK_URL": "postgresql://u:p@db/fb", "SESSIONFLOW_FEEDBACK_DB": "x.db"}) == (
        "postgresql://u:p@db/fb"
    )
    assert url({"SESSIONFLOW_FEEDBACK_DB": str(tmp_path / "f.db")}) == f"sqlite:///{tmp_path / 'f.db'}"
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    assert url({}, project) == f"sqlite:///{project / 'data' / 'feedback' / 'feedback.db'}"
    bento_src = tmp_path / "bento-src"  # a built bento: no pyproject.toml; never write inside the bento
    bento_src.mkdir()
    assert url({}, bento_src).endswith("/feedback/feedback.db") and str(bento_src) not in url({}, bento_src)


def test_conversation_argument_accepts_json_or_a_mapping(service):
    args = service.BentoArgs(conversation='{"w_dense": 0.25}')
    assert args.conversation.w_dense == 0.25
    assert service.BentoArgs(conversation={"default_k": 7}).conversation.default_k == 7
    with pytest.raises(ValueError, match="w_txet"):
        service.BentoArgs(conversation={"w_txet": 1})
