"""An acknowledged catalogue change survives ``kill -9`` of a real ``bentoml serve`` process: the service
started again over the same BentoML home and overlay serves the added item at once (found by /chat) and
never returns the retired one (slow: two service starts, about a minute)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.service import packaged_model, served
from tests.service.test_catalogue_churn import LLAMAS

pytestmark = pytest.mark.slow


def test_acknowledged_catalogue_changes_survive_sigkill(tmp_path):
    home = tmp_path / "bentoml_home"
    tag = packaged_model(home, tmp_path)
    db = (
        tmp_path / "feedback" / "feedback.db"
    )  # the overlay lives next to it: feedback/catalogue/overlay.json

    with served(tag, home, db, tmp_path / "serve-1.log") as service:
        added = httpx.post(f"{service.url}/admin/items", json={"items": [LLAMAS]}, timeout=60)
        assert added.status_code == 200 and added.json()["added"] == ["llama-1"], added.text
        retired = httpx.post(f"{service.url}/admin/items/retire", json={"item_ids": ["3"]}, timeout=60)
        assert retired.status_code == 200 and retired.json()["retired"] == ["3"], retired.text
        service.kill()  # SIGKILL right after the acknowledgement
        assert not service.alive()
    stored = json.loads((tmp_path / "feedback" / "catalogue" / "overlay.json").read_text())
    assert "llama-1" in stored["items"] and "3" in stored["retired"]

    with (
        served(tag, home, db, tmp_path / "serve-2.log") as service,
        httpx.Client(base_url=service.url, timeout=60) as client,
    ):
        chat = client.post("/chat", json={"message": "an animated documentary about llamas", "k": 5}).json()
        assert chat["items"][0]["item_id"] == "llama-1", chat
        plain = client.post("/recommend", json={"items": ["1", "2"], "k": 50}).json()
        assert "3" not in [i["item_id"] for i in plain["items"]] and len(plain["items"]) == 18
        chat = client.post("/chat", json={"message": "a drama", "k": 50}).json()
        assert "3" not in [i["item_id"] for i in chat["items"]]
        meta = client.get("/metadata").json()
        assert meta["catalogue"]["changes"]["added"] == 1 and meta["catalogue"]["n_items"] == 20
