"""The service keeps answering while it swaps models: clients call /recommend_batch and /recommend (session)
while POST /admin/reload switches the package's in-process service to another model and back; every answer
is a 200 from one whole model, and /metadata follows. The shared service is left as it was found."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from components.release import Release, release_path, write_release
from tests.service import save_bentoml_model
from tests.service.test_model_holder import LABELS, popularity_bundle


def test_no_request_fails_while_the_service_swaps_models(client, tmp_path):
    from bentoml._internal.configuration.containers import BentoMLContainer

    from components.dialogue.packaging import write_index

    before = client.get("/metadata").json()
    original, version = before["bentoml_model_tag"], before["model_version"]
    rel = release_path(BentoMLContainer.bentoml_home.get(), "sessionflow-recommender")
    assert before["reload"]["release_file"] == rel.name  # the record this service follows (no full path)
    bundle = popularity_bundle(tmp_path / "pop")
    write_index(bundle)
    other = save_bentoml_model(bundle, LABELS | {"mlflow_model_version": "8", "model": "popularity"})

    stop = threading.Event()
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def hammer(n: int) -> None:
        # the model path (/recommend_batch directly: /recommend goes through BentoML's self-client, whose
        # session recycling test_service.py counts on) and the conversation path (a session)
        bodies = [
            ("/recommend_batch", {"sessions": [{"items": ["1", "2"], "k": 3}]}),
            ("/recommend", {"items": ["3"], "k": 3, "session_id": f"hot-{n}"}),
        ]
        i = 0
        while not stop.is_set():
            path, body = bodies[i % 2]
            resp = client.post(path, json=body)
            answer = "?"
            if resp.status_code == 200:
                data = resp.json()
                answer = (data[0] if isinstance(data, list) else data).get("model_version", "?")
            with lock:
                seen.append((resp.status_code, answer))
            i += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        for tag, expected in ((other, "8"), (original, version)):
            write_release(rel, Release(model_tag=tag, reason="test"))
            outcome = client.post("/admin/reload", json={}).json()  # the watcher may have been first
            assert outcome["serving"] == tag and "error" not in outcome, outcome
            assert client.get("/metadata").json()["model_version"] == expected
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        write_release(rel, Release(model_tag=original, reason="restore"))
        client.post("/admin/reload", json={})
        Path(rel).unlink()
    meta = client.get("/metadata").json()
    statuses = [s for s, _ in seen]
    assert statuses and set(statuses) == {200}, f"failed requests: {[s for s in statuses if s != 200]}"
    assert {v for _, v in seen} == {"8", version}
    assert meta["bentoml_model_tag"] == original
    assert meta["reload"]["reloads"] - before["reload"]["reloads"] == 2
    assert meta["lineage"]["serving"]["pid"] > 0 and meta["lineage"]["release"]["reason"] in (
        "test",
        "restore",
    )
