"""The BentoML service in process: a real bundle in a temporary model store, an ASGI test client."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.service import DATA_HASH, METRICS, N_ITEMS, title


def test_recommend_ranks_known_items_and_reports_unknown_ones(client):
    resp = client.post("/recommend", json={"items": ["1", "2", 99, "zzz"], "k": 3})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["k"] == 3
    assert body["model_version"] == "7"
    assert body["unknown_items"] == ["99", "zzz"]
    ids = [r["item_id"] for r in body["items"]]
    assert len(ids) == 3
    assert not {"1", "2"} & set(ids), "items of the session must not be recommended back"
    assert ids[0] == "3"  # co-occurs with both 1 and 2 in training
    assert all(r["title"] == title(r["item_id"]) for r in body["items"])
    scores = [r["score"] for r in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_int_ids_and_exclude(client):
    resp = client.post("/recommend", json={"items": [1, 2], "k": 5, "exclude": ["3", 4], "user_id": 12})
    assert resp.status_code == 200, resp.text
    ids = {r["item_id"] for r in resp.json()["items"]}
    assert len(ids) == 5
    assert not {"1", "2", "3", "4"} & ids


def test_empty_session_gets_default_k(client):
    resp = client.post("/recommend", json={"items": []})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["k"] == 10 and len(body["items"]) == 10 and body["unknown_items"] == []


def test_k_larger_than_catalogue_returns_what_there_is(client):
    resp = client.post("/recommend", json={"items": ["1"], "k": 1000})
    assert resp.status_code == 200, resp.text
    ids = [r["item_id"] for r in resp.json()["items"]]
    assert len(ids) == N_ITEMS - 1 and "1" not in ids


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 3}, "items"),
        ({"items": "1"}, "items"),
        ({"items": [1.5]}, "items"),
        ({"items": [None]}, "items"),
        ({"items": [["1"]]}, "items"),
        ({"items": ["1"], "k": 0}, "k"),
        ({"items": ["1"], "k": -3}, "k"),
        ({"items": ["1"], "k": 1001}, "k"),
        ({"items": ["1"], "k": "3"}, "k"),
        ({"items": ["1"], "k": True}, "k"),
        ({"items": ["1"], "k": 2.5}, "k"),
        ({"items": ["1"], "exclude": "2"}, "exclude"),
        ({"items": ["1"], "user_id": [1]}, "user_id"),
        ({"items": ["1"], "kk": 2}, "kk"),
    ],
)
def test_malformed_request_is_a_400_naming_the_field(client, body, field):
    resp = client.post("/recommend", json=body)
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert any(err["loc"] and err["loc"][0] == field for err in detail), detail
    assert all(err["msg"] for err in detail)


@pytest.mark.parametrize(("content", "message"), [(b"{junk", "Invalid JSON"), (b"[1, 2]", "object")])
def test_junk_body_is_a_400(client, content, message):
    resp = client.post("/recommend", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["detail"][0]["msg"]


def test_recommend_batch_endpoint_keeps_each_k(client):
    sessions = [{"items": ["1"], "k": 2}, {"items": ["8", "nope"], "k": 4}]
    resp = client.post("/recommend_batch", json={"sessions": sessions})
    assert resp.status_code == 200, resp.text
    first, second = resp.json()
    assert (first["k"], len(first["items"])) == (2, 2)
    assert (second["k"], len(second["items"])) == (4, 4)
    assert second["unknown_items"] == ["nope"]
    assert "8" not in {r["item_id"] for r in second["items"]}


def test_metadata_reports_lineage(client, service):
    resp = client.get("/metadata")
    assert resp.status_code == 200, resp.text
    meta = resp.json()
    assert meta["bentoml_model_tag"] == service.MODEL_TAG
    assert meta["registered_model"] == "sessionflow-recommender"
    assert meta["mlflow_model_version"] == "7"
    assert meta["mlflow_run_id"] == "run-abc"
    assert meta["data_hash"] == DATA_HASH
    assert meta["model"] == "itemknn"
    assert meta["n_items"] == N_ITEMS
    assert meta["metrics"] == METRICS
    assert meta["bento_tag"] is None  # served from source, not from a built bento


@pytest.mark.parametrize("path", ["/readyz", "/livez", "/healthz"])
def test_health_endpoints(client, path):
    assert client.get(path).status_code == 200


def test_concurrent_recommends_are_batched(client):
    before = client.get("/metadata").json()["batching"]
    with ThreadPoolExecutor(16) as pool:
        responses = list(
            pool.map(lambda i: client.post("/recommend", json={"items": [str(1 + i % 9)], "k": 2}), range(64))
        )
    assert [r.status_code for r in responses] == [200] * 64
    for i, r in enumerate(responses):  # each caller gets its own answer
        body = r.json()
        assert body["k"] == 2 and str(1 + i % 9) not in {x["item_id"] for x in body["items"]}
    after = client.get("/metadata").json()["batching"]
    assert after["requests"] - before["requests"] == 64
    assert after["batches"] - before["batches"] < 64, f"no request was batched: {before} -> {after}"
    assert after["largest_batch"] > 1


def test_recommend_answer_matches_the_model_in_process(client, service):
    """The scoring process answers exactly what the bundle's Predictor computes here."""
    import bentoml

    from components.bundle import Predictor

    predictor = Predictor.load(bentoml.models.get(service.MODEL_TAG).path)
    expected = predictor.recommend(["1", "2"], k=4, exclude=["5"])
    body = client.post("/recommend", json={"items": ["1", "2"], "k": 4, "exclude": ["5"]}).json()
    assert [i["item_id"] for i in body["items"]] == [r.item_id for r in expected.items]
    assert [i["score"] for i in body["items"]] == pytest.approx([r.score for r in expected.items])
    assert body["items"][0]["reason"] is None and body["model_version"] == "7"


def test_resolve_model_tag(service):
    env = {service.MODEL_TAG_ENV: "m:v2"}
    assert service.resolve_model_tag(None, env) == "m:v2"
    assert service.resolve_model_tag("m:v1", env) == "m:v1"
    with pytest.raises(RuntimeError, match=service.MODEL_TAG_ENV):
        service.resolve_model_tag(None, {})
    for floating in ("m", "m:latest", ":v1"):
        with pytest.raises(RuntimeError, match="not exact"):
            service.resolve_model_tag(floating, {})
