"""Catalogue churn through the in-process service: POST /admin/items makes an item recommendable at once
(found by /chat from its text and facets, known to /recommend, listed by /catalogue); POST
/admin/items/retire masks an item from every answer, across a hot reload to another model and a restart of
the holder; bad rows are refused with the row, field and reason.

Tiny catalogue (tests/service): items "1".."20", item i has genre GENRES[i % 4] and year 1980 + i; the
sessions 1-2-3-4, 2-3-5, 1-3-6-7 make "3" (a Drama) item-kNN's favourite after 1 and 2. The package's
service is shared: each test's overlay is removed afterwards and POST /admin/reload serves the catalogue as
trained again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.catalogue_overlay import OverlayStore
from components.release import Release, release_path, write_release
from tests.service import save_bentoml_model
from tests.service.test_model_holder import LABELS, popularity_bundle

LLAMAS = {
    "item_id": "llama-1",
    "title": "Zorblax and the Quantum Llamas",
    "text": "An animated documentary about llamas who discover quantum physics high in the Andes.",
    "categories": ["Documentary", "Animation"],
    "year": 2024,
}


def ids(items: list[dict]) -> list[str]:
    return [i["item_id"] for i in items]


def every_answer(client, session: str) -> dict[str, list[str]]:
    """What every recommending route returns for sessions of 1 and 2 (whose item-kNN favourite is 3)."""
    plain = client.post("/recommend", json={"items": ["1", "2"], "k": 50}).json()
    batch = client.post("/recommend_batch", json={"sessions": [{"items": ["1", "2"], "k": 50}]}).json()
    keyed = client.post("/recommend", json={"items": ["1", "2"], "k": 50, "session_id": session}).json()
    chat = client.post("/chat", json={"session_id": session, "message": "a drama", "k": 50}).json()
    like = client.post(
        "/chat", json={"messages": [{"role": "user", "content": "films like Movie 7"}], "k": 50}
    )
    return {
        "recommend": ids(plain["items"]),
        "recommend_batch": ids(batch[0]["items"]),
        "recommend_session": ids(keyed["items"]),
        "chat": ids(chat["items"]),
        "chat_like": ids(like.json()["items"]),
    }


@pytest.fixture
def overlay(service, client):
    """The shared service's overlay; afterwards the file is removed and POST /admin/reload makes the service
    serve the catalogue as trained again."""
    path = Path(service.catalogue_overlay_path())
    yield OverlayStore(path)
    path.unlink(missing_ok=True)
    client.post("/admin/reload", json={})
    catalogue = client.get("/catalogue", params={"items": "true"}).json()
    assert catalogue["n_items"] == 20 and sorted(catalogue["item_ids"], key=int) == [
        str(i) for i in range(1, 21)
    ]


def test_added_items_are_recommendable_at_once_and_retired_ones_never_come_back(service, client, overlay):
    before = every_answer(client, "churn-before")
    assert all("3" in found for found in before.values()), before  # 3 is in every answer to begin with

    # -- add: at once, found from its text and facets
    added = client.post("/admin/items", json={"items": [LLAMAS]})
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["added"] == ["llama-1"] and body["rejected"] == [] and body["n_items"] == 21
    assert body["revision"] >= 1 and body["seconds"] < 30
    chat = client.post("/chat", json={"message": "an animated documentary about llamas", "k": 5}).json()
    assert ids(chat["items"])[0] == "llama-1", chat
    assert "Documentary" in json.dumps(chat["state"])  # a facet value only the new item has
    catalogue = client.get("/catalogue", params={"items": "true"}).json()
    assert "llama-1" in catalogue["item_ids"] and catalogue["n_items"] == 21
    assert "Documentary" in next(f for f in catalogue["facets"] if f["name"] == "category")["values"]
    plain = client.post("/recommend", json={"items": ["llama-1"], "k": 5}).json()
    assert plain["unknown_items"] == [] and len(plain["items"]) == 5  # a session of the new item works
    assert "llama-1" in ids(client.post("/recommend", json={"items": ["1"], "k": 50}).json()["items"])
    feedback = client.post(
        "/feedback", json={"session_id": "churn-fb", "item_id": "llama-1", "event": "like"}
    )
    assert feedback.status_code == 200, feedback.text

    # -- retire: never again, from any route, even with k over the catalogue
    retired = client.post("/admin/items/retire", json={"item_ids": ["3", "3", "nope"]})
    assert retired.status_code == 200, retired.text
    body = retired.json()
    assert body["retired"] == ["3"] and body["n_items"] == 20
    assert [(r["item_id"], r["field"]) for r in body["rejected"]] == [("nope", "item_ids")]
    after = every_answer(client, "churn-after")
    assert not any("3" in found for found in after.values()), after
    assert "3" not in client.get("/catalogue", params={"items": "true"}).json()["item_ids"]
    again = client.post("/admin/items/retire", json={"item_ids": ["3"]}).json()
    assert again["already_retired"] == ["3"] and again["retired"] == []

    # -- a hot reload to another model (and back) keeps the changes
    from bentoml._internal.configuration.containers import BentoMLContainer

    from components.dialogue.packaging import write_index

    meta = client.get("/metadata").json()
    original = meta["bentoml_model_tag"]
    assert meta["catalogue"]["changes"]["added"] == 1 and meta["catalogue"]["changes"]["retired"] == 1
    rel = release_path(BentoMLContainer.bentoml_home.get(), "sessionflow-recommender")
    bundle = popularity_bundle(overlay.path.parent / "pop")
    write_index(bundle)
    other = save_bentoml_model(bundle, LABELS | {"mlflow_model_version": "8", "model": "popularity"})
    try:
        write_release(rel, Release(model_tag=other, reason="churn test"))
        assert client.post("/admin/reload", json={}).json()["serving"] == other
        popular = every_answer(client, "churn-reloaded")
        assert not any("3" in found for found in popular.values()), popular
        assert "llama-1" in popular["recommend"]  # scored by the popularity model through its neighbours
        chat = client.post("/chat", json={"message": "an animated documentary about llamas", "k": 5}).json()
        assert ids(chat["items"])[0] == "llama-1"
    finally:
        write_release(rel, Release(model_tag=original, reason="restore"))
        client.post("/admin/reload", json={})
        rel.unlink()
    assert client.get("/metadata").json()["bentoml_model_tag"] == original

    # -- adding a retired item back restores it
    restored = client.post(
        "/admin/items", json={"items": [{"item_id": "3", "title": "Movie 3", "year": 1983}]}
    )
    assert restored.json()["restored"] == ["3"]
    assert "3" in ids(client.post("/recommend", json={"items": ["1", "2"], "k": 5}).json()["items"])


def test_a_restarted_holder_serves_the_stored_changes(service, client, overlay):
    """What a restart does: a new holder over the same model and overlay file (a real process killed and
    started again: tests/service/test_catalogue_durability.py, slow)."""
    from bento.model_holder import ModelHolder
    from components.dialogue.config import ConversationConfig

    assert client.post("/admin/items", json={"items": [LLAMAS]}).status_code == 200
    assert client.post("/admin/items/retire", json={"item_ids": ["3"]}).status_code == 200
    tag = client.get("/metadata").json()["bentoml_model_tag"]
    fresh = ModelHolder(tag, ConversationConfig(default_k=5), None, 0, overlay=overlay)
    engine = fresh.current.engine
    assert engine.index.index("llama-1") is not None and engine.n_active == 20
    answer = engine.chat("restart", "an animated documentary about llamas", 5)
    assert answer.items[0].item_id == "llama-1"
    assert "3" not in [i.item_id for i in engine.recommend(None, ["1", "2"], 50)]
    assert "3" not in [r.item_id for r in fresh.current.predictor.recommend(["1", "2"], 50).items]


@pytest.mark.parametrize(
    ("rows", "where", "text"),
    [
        ([{"item_id": "x1", "title": "X", "year": "soon"}], ["items", 0, "year"], "'soon' is not a year"),
        ([{"item_id": "x1", "title": "X", "colour": "red"}], ["items", 0, "colour"], "unknown field"),
        ([{"item_id": "x1"}], ["items", 0, "title"], "is required"),
        ([{"title": "no id"}], ["items", 0, "item_id"], "is required"),
        (["just a string"], ["items", 0], "must be a JSON object"),
        ([{"item_id": "x1", "title": "X", "categories": 3}], ["items", 0, "categories"], "list of strings"),
    ],
)
def test_a_request_whose_rows_are_all_bad_is_400_naming_row_and_field(client, overlay, rows, where, text):
    resp = client.post("/admin/items", json={"items": rows})
    assert resp.status_code == 400, resp.text
    assert "Traceback" not in resp.text
    detail = resp.json()["detail"]
    assert detail[0]["loc"] == where and text in detail[0]["msg"], detail
    kept = [json.loads(line) for line in overlay.rejected_path.read_text().splitlines()]
    assert kept[-1]["row"] == 0 and text in kept[-1]["reason"]  # refused rows are kept with the reason
    assert client.get("/catalogue").json()["n_items"] == 20  # nothing changed


def test_good_rows_are_stored_and_bad_ones_reported(client, overlay):
    rows = [
        {"item_id": "ok-1", "title": "A fine new film", "categories": "Comedy|Drama", "year": "2025"},
        {"item_id": "bad-1", "title": "", "year": 2020},
        {"item_id": "ok-1", "title": "The same id again"},
    ]
    resp = client.post("/admin/items", json={"items": rows})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["added"] == ["ok-1"]
    assert [(r["row"], r["item_id"], r["field"]) for r in body["rejected"]] == [
        (1, "bad-1", "title"),
        (2, "ok-1", "item_id"),
    ]
    assert "repeats row 0" in body["rejected"][1]["reason"]
    stored = overlay.read().items["ok-1"]
    assert stored["categories"] == ["Comedy", "Drama"] and stored["year"] == 2025
    client.post("/admin/items", json={"items": [{"item_id": "ok-2", "title": "Another new film"}]})
    listed = client.get("/admin/items", params={"offset": 1, "limit": 1}).json()
    assert listed["n_added"] == 2 and [r["item_id"] for r in listed["items"]] == ["ok-2"]
    assert listed["served"]["added"] == 2 and listed["n_items"] == 22
    assert client.get("/admin/items", params={"limit": 0}).status_code == 400


def test_request_limits(client, overlay):
    too_many = client.post(
        "/admin/items", json={"items": [{"item_id": str(i), "title": "t"} for i in range(1001)]}
    )
    assert too_many.status_code == 400 and "items" in too_many.text
    assert client.post("/admin/items", json={"items": []}).status_code == 400
    assert client.post("/admin/items", json={"rows": [LLAMAS]}).status_code == 400
    unknown = client.post("/admin/items/retire", json={"item_ids": ["nope"]})
    assert unknown.status_code == 400 and unknown.json()["detail"][0]["loc"] == ["item_ids", 0]


def test_item_routes_need_the_key(client):
    from starlette.testclient import TestClient

    from bento.security import ServingGuard
    from components.serving_settings import GuardSettings

    keyed = TestClient(ServingGuard(client.app, GuardSettings(api_key="k" * 24)))
    for method, path, body in (
        ("post", "/admin/items", {"items": [LLAMAS]}),
        ("post", "/admin/items/retire", {"item_ids": ["3"]}),
        ("get", "/admin/items", None),
    ):
        resp = getattr(keyed, method)(path, **({"json": body} if body else {}))
        assert resp.status_code == 401, (path, resp.text)


def test_the_cli_sends_a_file_in_chunks_and_reports_rows_of_the_file(client, overlay, tmp_path, monkeypatch):
    """`sessionflow items add FILE` / `retire` against the in-process service (httpx routed to it)."""
    import httpx
    from typer.testing import CliRunner

    from cli.main import app
    from sessionflow import items as cli_items

    def routed(method):  # http://127.0.0.1:1/<path> -> the in-process service (TestClient takes no timeout)
        return lambda url, timeout=None, **kw: getattr(client, method)(url.split("127.0.0.1:1", 1)[1], **kw)

    monkeypatch.setattr(httpx, "post", routed("post"))
    monkeypatch.setattr(httpx, "get", routed("get"))
    csv = tmp_path / "new.csv"
    csv.write_text(
        "item_id,title,categories,year,attributes.studio\n"
        "c1,Cli film one,Documentary|Animation,2024,Pixel\n"
        "c2,Cli film two,,not a year,\n"
        "c3,,Comedy,2020,\n"
        "c4,Cli film four,Comedy,2021,\n"
    )
    rows = cli_items.read_items_file(csv)
    assert rows[0] == {
        "item_id": "c1", "title": "Cli film one", "categories": "Documentary|Animation", "year": "2024",
        "attributes": {"studio": "Pixel"},
    }  # fmt: skip
    totals = cli_items.send_items("http://127.0.0.1:1", rows, max_rows=2)  # chunks [c1, c2], [c3, c4]
    assert totals.added == ["c1", "c4"]
    assert [(r["row"], r["item_id"], r["field"]) for r in totals.rejected] == [
        (1, "c2", "year"),
        (2, "c3", "title"),
    ]
    bad_only = cli_items.send_items("http://127.0.0.1:1", rows[1:3], max_rows=5)  # a chunk of bad rows: a 400
    assert [(r["row"], r["field"]) for r in bad_only.rejected] == [(0, "year"), (1, "title")]

    runner = CliRunner()
    result = runner.invoke(app, ["items", "retire", "c1", "nope", "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 1, result.output
    assert '"retired": 1' in result.output and "nope" in result.output
    listed = runner.invoke(app, ["items", "list", "--url", "http://127.0.0.1:1"])
    assert listed.exit_code == 0 and '"c4"' in listed.output and '"c1"' in listed.output  # c1: retired
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    refused = runner.invoke(app, ["items", "add", str(empty), "--url", "http://127.0.0.1:1"])
    assert refused.exit_code == 1 and "no items in it" in refused.output


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    bad = tmp_path / "bad.json"
    bad.write_text('{"items": [1,')
    runner = CliRunner()
    result = runner.invoke(app, ["items", "add", str(bad), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "bad.json, line 1: not JSON" in result.output
    good = tmp_path / "good.jsonl"
    good.write_text('{"item_id": "x", "title": "X"}\n')
    down = runner.invoke(app, ["items", "add", str(good), "--url", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach the service at http://127.0.0.1:9" in down.output
    assert "Traceback" not in result.output + down.output
