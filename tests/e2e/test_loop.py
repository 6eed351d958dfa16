"""The loop that keeps itself current, end to end, driven through the `sessionflow` command as a user would:

serve the champion -> add an item and retire another (at once, through the admin routes) -> post feedback ->
retrain (the pipeline flow: the feedback and the catalogue changes are part of the new data version) -> a new
champion is promoted (or refused, with the reason) -> the running service answers with the new version, with
zero failed requests while clients keep calling it through the switch, and the retired item never comes
back -> `sessionflow promote` rolls back (the service follows, the item stays retired) ->
`sessionflow monitor` renders a report with the numbers of that traffic -> `sessionflow forget` removes a
session and the next snapshot no longer holds it.

Real everything: a temporary Prefect server, SQLite MLflow store, BentoML store and bentos, `bentoml serve` of
the built bento on a localhost port of 3900-3999, the feedback and request logs. Tiny generated catalogue
(users walk forward through it, so item-kNN clearly beats popularity). About 5-10 minutes on 2 busy cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.flows.prefect_server import free_port, prefect_server, stop_process_group

pytestmark = pytest.mark.e2e

N_ITEMS, N_USERS = 40, 60
GENRES = ("Comedy", "Drama", "Sci-Fi", "Horror")
SWITCH_LIMIT_S = 60.0
SLOW_MS = 3000.0  # a request this slow counts as slow (the machine is shared by several jobs)


def write_project(root: Path, port: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(N_USERS):
        start = int(rng.integers(0, N_ITEMS))
        for t in range(8):
            rows.append((f"u{u}", f"i{(start + t) % N_ITEMS}", 1_600_000_000 + u * 10_000 + t * 60, "click"))
    pd.DataFrame(rows, columns=["visitor", "sku", "ts", "kind"]).to_csv(root / "log.csv", index=False)
    pd.DataFrame(
        {
            "sku": [f"i{i}" for i in range(N_ITEMS)],
            "name": [f"Film {i}" for i in range(N_ITEMS)],
            "cats": [GENRES[i % 4] for i in range(N_ITEMS)],
        }
    ).to_csv(root / "items.csv", index=False)
    spec = {
        "name": "e2e-shop",
        "format": "interactions-csv",
        "path": "log.csv",
        "timestamp_unit": "s",
        "columns": {"user_id": "visitor", "item_id": "sku", "timestamp": "ts", "event": "kind"},
        "items": {"path": "items.csv", "columns": {"item_id": "sku", "title": "name", "categories": "cats"}},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    params = {
        "data": {"dataset_spec": str(root / "spec.yaml"), "session_gap_minutes": 600},
        "features": {"sequence_key": "user", "text_embeddings": False},
        "train": {"models": ["popularity"]},
        "promote": {"registered_model": "e2e-recommender", "max_latency_ms": 10_000},
        # a generous batching deadline: this test is about the switch, not load shedding on a shared box
        "serve": {"port": port, "default_k": 5, "reload_interval_s": 1, "max_latency_ms": 20_000},
        "monitor": {"window_hours": 2, "min_requests": 10},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def cli(env: dict[str, str], root: Path, *args: str, timeout: int = 900) -> dict:
    """Run `sessionflow ARGS --root ROOT`; returns the JSON it prints last."""
    exe = str(Path(sys.executable).with_name("sessionflow"))
    proc = subprocess.run(
        [exe, *args, "--root", str(root)], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"sessionflow {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    out = proc.stdout
    start = out.rfind("\n{") + 1 if not out.startswith("{") else 0
    return json.loads(out[start:])


class Load:
    """Clients calling /recommend (with known and unknown ids) until stopped; every answer is recorded."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url, self.stop = url, threading.Event()
        self.results: list[tuple[float, int, str, float]] = []  # (time, status, version, ms)
        self.unknown = 0  # ids the answers reported unknown (a retrain drops retired items)
        self.shown: set[str] = set()  # every id any answer recommended
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                body = {"items": [f"i{(n + i) % N_ITEMS}", "no-such-item"], "k": 5}
                t0 = time.perf_counter()
                try:
                    resp = client.post(f"{self.url}/recommend", json=body)
                    status = resp.status_code
                    answer = resp.json() if status == 200 else {}
                    version = answer.get("model_version", "?")
                except httpx.HTTPError:
                    status, version, answer = -1, "?", {}
                with self.lock:
                    self.unknown += len(answer.get("unknown_items", []))
                    self.shown.update(i["item_id"] for i in answer.get("items", []))
                    self.results.append((time.time(), status, version, (time.perf_counter() - t0) * 1000))
                i += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def versions_since(self, t: float) -> set[str]:
        with self.lock:
            return {v for ts, s, v, _ in self.results if ts >= t and s == 200}


NEW_ITEM = {
    "item_id": "i40",
    "title": "Film 40",
    "text": "Film 40: a comedy about llamas who learn quantum physics",
    "categories": ["Comedy"],
}
RETIRED = "i39"


def recommend_all(client: httpx.Client, url: str) -> list[str]:
    """Every item /recommend returns for a one-item session (k over the catalogue size)."""
    resp = client.post(f"{url}/recommend", json={"items": ["i38"], "k": 100})
    assert resp.status_code == 200, resp.text
    return [i["item_id"] for i in resp.json()["items"]]


def wait_for_version(url: str, version: str, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/metadata", timeout=10).json()["model_version"] == version:
                return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"service still not on version {version} after {timeout_s} s")


@contextlib.contextmanager
def serving(env: dict[str, str], root: Path, port: int):
    exe = str(Path(sys.executable).with_name("sessionflow"))
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        [exe, "serve", "--root", str(root), "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (root / "serve.log").read_text()[-4000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "service not ready in 300 s"
            time.sleep(0.5)
        yield url
    finally:
        stop_process_group(proc)
        log.close()


def test_the_loop_keeps_itself_current(tmp_path_factory):
    keep = os.environ.get("SESSIONFLOW_E2E_DIR")  # keep the project (logs, reports) for a look afterwards
    root = Path(keep) if keep else tmp_path_factory.mktemp("loop")
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}
    with prefect_server(tmp_path_factory.mktemp("prefect")) as api:
        port = free_port()  # after the server took its own
        write_project(root, port)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONFLOW_", "MLFLOW_"))}
        env |= {
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(root / ".prefect"),
            "BENTOML_HOME": str(root / ".bentoml"),
            "HF_HUB_OFFLINE": "1",
        }
        # 1. the first champion, packaged and released
        first = cli(env, root, "pipeline", "--models", "popularity")
        assert first["promotion"]["promoted"] and first["promotion"]["champion_version"] == "1"
        assert first["release"]["bento_tag"]

        with serving(env, root, port) as url:
            meta = httpx.get(f"{url}/metadata", timeout=10).json()
            assert meta["model_version"] == "1" and meta["created_at"]
            chain = meta["lineage"]
            assert chain["data"]["data_hash"] == first["data_hash"] and chain["data"]["raw_data_hash"]
            assert chain["mlflow"]["run_id"] and chain["mlflow"]["version_created_at"]
            assert chain["release"]["bento_tag"] == first["release"]["bento_tag"]
            assert chain["serving"]["pid"] and chain["serving"]["bento_tag"] == first["release"]["bento_tag"]

            # 2. traffic and feedback on the first champion
            sent = {"recommend": 0, "chat": 0, "asked": 0, "unknown": 0}
            with httpx.Client(timeout=60) as client:
                # catalogue churn: an item added is recommendable at once, an item retired is gone at once
                added = client.post(f"{url}/admin/items", json={"items": [NEW_ITEM]})
                assert added.status_code == 200 and added.json()["added"] == ["i40"], added.text
                retired = client.post(f"{url}/admin/items/retire", json={"item_ids": [RETIRED]})
                assert retired.status_code == 200 and retired.json()["retired"] == [RETIRED], retired.text
                chat = client.post(f"{url}/chat", json={"message": "the film about quantum llamas"}).json()
                assert chat["items"][0]["item_id"] == "i40", chat
                everything = recommend_all(client, url)
                assert "i40" in everything and RETIRED not in everything
                sent["chat"] += 1
                sent["recommend"] += 1
                sent["asked"] += 1
                for n in range(20):
                    items = [f"i{n % N_ITEMS}"] + (["unknown-x"] if n % 4 == 0 else [])
                    assert client.post(f"{url}/recommend", json={"items": items, "k": 5}).status_code == 200
                    sent["recommend"] += 1
                    sent["asked"] += len(items)
                    sent["unknown"] += len(items) - 1
                for session in ("e2e-alice", "e2e-bob"):
                    turn = {"session_id": session, "message": "a comedy"}
                    assert client.post(f"{url}/chat", json=turn).status_code == 200
                    sent["chat"] += 1
                feedback = [
                    *(
                        ("e2e-alice", item, event)
                        for item, event in (("i3", "click"), ("i4", "like"), ("i5", "click"))
                    ),
                    *(
                        ("e2e-bob", item, event)
                        for item, event in (
                            (
                                "i40",
                                "click",
                            ),  # first: the leave-one-out split keeps it in bob's training part
                            ("i10", "click"),
                            ("i11", "dislike"),
                            ("i12", "like"),
                        )
                    ),
                ]
                for session, item, event in feedback:
                    body = {"session_id": session, "item_id": item, "event": event}
                    if session == "e2e-alice":
                        body["user_id"] = "alice"
                    assert client.post(f"{url}/feedback", json=body).status_code == 200

            # 3. retrain with the feedback while clients keep calling; 4. the service switches by itself
            with Load(url) as load:
                time.sleep(2)
                second = cli(env, root, "pipeline", "--models", "itemknn")
                assert second["feedback"]["n_events"] == len(feedback)
                assert second["ingest"]["n_feedback_events"] == len(feedback)
                # the catalogue changes are in the new data version: i40 joined, i39 left with its clicks
                assert (second["catalogue"]["n_added"], second["catalogue"]["n_retired"]) == (1, 1)
                ingested = second["ingest"]
                assert (ingested["n_catalogue_added"], ingested["n_catalogue_retired"]) == (1, 1)
                assert ingested["n_retired_interactions_dropped"] > 0 and ingested["n_items"] == N_ITEMS
                assert second["lineage"]["data"]["catalogue_hash"] == second["catalogue"]["catalogue_hash"]
                results["promotion"] = second["promotion"]
                released = time.monotonic()
                if second["promotion"]["promoted"]:
                    new = second["promotion"]["champion_version"]
                    switch_s = wait_for_version(url, new, SWITCH_LIMIT_S)
                    t_switched = time.time()
                    time.sleep(5)
                    assert load.versions_since(t_switched + 1) == {new}
                else:  # refused: the reason is given and the old champion keeps serving
                    assert second["promotion"]["reason"]
                    new, switch_s, t_switched = "1", time.monotonic() - released, time.time()
                results["switch_seconds"] = round(switch_s, 2)
            statuses = [s for _, s, _, _ in load.results]
            latencies = sorted(ms for _, _, _, ms in load.results)
            near = sorted(
                ms for ts, _, _, ms in load.results if abs(ts - t_switched) < 5
            )  # +-5 s of the swap
            results["load"] = {
                "requests": len(statuses),
                "failed": sum(1 for s in statuses if s != 200),
                "p50_ms": round(latencies[len(latencies) // 2], 1),
                "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1),
                "max_ms": round(latencies[-1], 1),
                "around_switch": {"requests": len(near), "max_ms": round(near[-1], 1) if near else None},
                "versions": sorted({v for _, _, v, _ in load.results}),
                "failures_s_from_switch": [
                    round(ts - t_switched, 1) for ts, st, _, _ in load.results if st != 200
                ],
            }
            assert statuses and set(statuses) == {200}, results["load"]
            assert latencies[-1] < SLOW_MS, results["load"]
            assert second["promotion"]["promoted"], (
                f"expected item-kNN to win: {second['promotion']['reason']}"
            )
            assert RETIRED not in load.shown, "a retired item was recommended"
            with httpx.Client(timeout=60) as client:  # the new champion was trained with i40, without i39
                everything = recommend_all(client, url)
                assert "i40" in everything and RETIRED not in everything
                changes = httpx.get(f"{url}/metadata", timeout=10).json()["catalogue"]["changes"]
                assert changes["added"] == 0 and changes["described"] == 1  # i40 is a trained item now
            sent["recommend"] += 1
            sent["asked"] += 1

            # 5. roll back with `sessionflow promote`; the service follows
            back = cli(env, root, "promote", "1", "--note", "e2e rollback")
            assert back["promoted"] and back["reason"].startswith("Manual rollback: version 1")
            results["rollback_seconds"] = round(wait_for_version(url, "1", SWITCH_LIMIT_S), 2)
            with httpx.Client(timeout=60) as client:  # version 1 knows i39: still retired after the rollback
                everything = recommend_all(client, url)
                assert "i40" in everything and RETIRED not in everything
            sent["recommend"] += 1
            sent["asked"] += 1
            meta = httpx.get(f"{url}/metadata", timeout=10).json()
            assert meta["reload"]["reloads"] == 2 and meta["reload"]["failures"] == 0

            # every served request is in the request log before the report is made
            served_total = sent["recommend"] + sent["chat"] + len(statuses)
            deadline = time.monotonic() + 30
            while meta["request_log"]["written"] < served_total and time.monotonic() < deadline:
                time.sleep(0.5)
                meta = httpx.get(f"{url}/metadata", timeout=10).json()
            log_stats = meta["request_log"] | {"expected": served_total}
            assert meta["request_log"]["written"] == served_total, log_stats
            assert meta["request_log"]["dropped"] == 0, log_stats

            # 6. the monitoring report, with the numbers of that traffic
            report = cli(env, root, "monitor", "--window-hours", "1")
            m = report["metrics"]
            assert m["requests"] == served_total and m["requests/chat"] == sent["chat"]
            asked = sent["asked"] + 2 * len(statuses)  # each load request asks 2 ids, 1 unknown (and i39
            # once the retrained model serves: it left the catalogue)
            assert m["asked_ids"] == asked and m["unknown_id_share"] == pytest.approx(
                (sent["unknown"] + load.unknown) / asked
            )
            assert m["feedback_events"] == len(feedback) and m["like_rate"] > 0 and m["dislike_rate"] > 0
            assert m["coverage"] > 0 and 0 <= m["gini"] <= 1 and m["score_psi"] is not None
            assert (
                report["status"] == "red" and "unknown_id_share" in report["broken"]
            )  # half the ids unknown
            html = Path(report["html"]).read_text()
            assert f"<b>{served_total}</b> requests" in html and "data:image/png;base64," in html
            results["monitor"] = {
                k: m[k] for k in ("requests", "unknown_id_share", "coverage", "gini", "score_psi")
            }

            # 7. forget a session: gone from the logs, and the next snapshot no longer holds it
            gone = cli(env, root, "forget", "e2e-alice", "--service-url", url)
            assert (
                gone["feedback_rows"] == 3 and gone["request_rows"] >= 1 and gone["service_reset"] == "reset"
            )
            assert gone["snapshot_rows"] == {"e2e-shop": 3}
            snapshot = cli(env, root, "feedback", "export")
            assert snapshot["n_events"] == len(feedback) - 3 and snapshot["forget_requests"] == 1
            snap = pd.read_parquet(snapshot["snapshot"])
            assert "e2e-alice" not in set(snap["session_id"]) and len(snap) == len(feedback) - 3
            assert "e2e-alice" not in (root / "data" / "feedback" / "forget-log.jsonl").read_text()
    out = Path(os.environ.get("SESSIONFLOW_E2E_RESULTS", root / "loop-results.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
