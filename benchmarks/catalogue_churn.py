"""Catalogue churn timings on a real served model: time from POST /admin/items to recommendable, and of
POST /admin/items/retire, for batches of new items; /chat latency before and after the changes.

Starts ``bentoml serve bento.service:SessionRecommender`` (from source) over a model bundle (with its
packaged conversation index: ``components.dialogue.packaging.write_index``) copied into a temporary BentoML
home, on a localhost port, with its feedback log and catalogue overlay in ``--workdir``. Per batch size it
posts that many new items (distinctive made-up titles and texts, a facet value of the catalogue plus a new
one), records the client's wall time until the 200 (the answer comes once the items are stored durably and
served) and the ``seconds`` the service reports, then asks /chat for the first of them by its text and
checks it is shown; then retires the batch and records that time too.

    python benchmarks/catalogue_churn.py --bundle artifacts/dev/mls-itemknn --sizes 1,10,100

Wrap timing runs in ``flock -x /tmp/sf-cpu.lock`` on a shared machine. Writes
``results/catalogue_churn.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import stop_process_group, wait_ready  # noqa: E402  (benchmarks/ beside this script)

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 600.0
WORDS = ("zorblax", "quillion", "marzipane", "thundrel", "vexlore", "plimsoll", "gruntle", "orrery")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def store_model(bundle: Path, home: Path) -> str:
    """The bundle sealed and saved in a BentoML store at ``home``; returns its exact tag."""
    os.environ["BENTOML_HOME"] = str(home)
    import bentoml

    from flows.package import seal_bundle

    copy = home / "bundle"
    shutil.copytree(bundle, copy)
    seal_bundle(copy)
    with bentoml.models.create("sessionflow-recommender", labels={"model": "benchmark"}) as model:
        shutil.copytree(copy, model.path, dirs_exist_ok=True)
    return str(model.tag)


@contextlib.contextmanager
def server(tag: str, home: Path, workdir: Path):
    port = free_port()
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "SESSIONFLOW_MODEL_TAG": tag,
        "SESSIONFLOW_FEEDBACK_DB": str(workdir / "feedback.db"),
        "SESSIONFLOW_CATALOGUE_OVERLAY": str(workdir / "catalogue" / "overlay.json"),
    }
    cmd = [sys.executable, "-m", "bentoml", "serve", "bento.service:SessionRecommender"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, workdir / "serve.log", START_TIMEOUT_S)
        yield url
    finally:
        stop_process_group(proc)
        log.close()


def new_items(n: int, start: int, category: str | None) -> list[dict[str, Any]]:
    items = []
    for i in range(start, start + n):
        a, b = WORDS[i % len(WORDS)], WORDS[(i // len(WORDS)) % len(WORDS)]
        items.append(
            {
                "item_id": f"bench-{i}",
                "title": f"The {a.title()} of {b.title()} {i}",
                "text": f"A story about the {a} guild and a {b} machine, number {i}.",
                "categories": [c for c in (category, "Benchmark") if c],
                "year": 2025,
            }
        )
    return items


class Background:
    """One client calling /recommend in a loop while the catalogue changes: latency and failures."""

    def __init__(self, url: str, item: str) -> None:
        import threading

        self.url, self.item = url, item
        self.stop = threading.Event()
        self.ms: list[float] = []
        self.failed = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                resp = client.post("/recommend", json={"items": [self.item], "k": 10})
                self.ms.append((time.perf_counter() - t0) * 1000)
                self.failed += resp.status_code != 200

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)

    def summary(self) -> dict[str, Any]:
        ms = sorted(self.ms)
        return {
            "requests": len(ms),
            "failed": self.failed,
            "p50_ms": round(ms[len(ms) // 2], 1) if ms else None,
            "max_ms": round(ms[-1], 1) if ms else None,
        }


def chat_latency(client: httpx.Client, n: int = 20, tag: str = "") -> float:
    """Median /chat latency over ``n`` one-turn conversations never asked before (no cached query vector)."""
    times = []
    for i in range(n):
        message = f"something funny {tag} {i} {WORDS[i % len(WORDS)]}"
        t0 = time.perf_counter()
        client.post("/chat", json={"messages": [{"role": "user", "content": message}], "k": 10})
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundle", type=Path, required=True, help="A model bundle with its conversation index."
    )
    parser.add_argument("--sizes", default="1,10,100", help="Batch sizes of new items.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=REPO / "results" / "catalogue_churn.json")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sf-churn-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tag = store_model(args.bundle.resolve(), workdir / "bentoml_home")
    out: dict[str, Any] = {
        "bundle": args.bundle.name,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": os.getloadavg()},
        "batches": [],
    }
    with (
        server(tag, workdir / "bentoml_home", workdir) as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        catalogue = client.get("/catalogue").json()
        out["n_items"] = catalogue["n_items"]
        category = next((f["values"][0] for f in catalogue["facets"] if f.get("values")), None)
        some_item = client.get("/catalogue", params={"items": "true"}).json()["item_ids"][0]
        chat_latency(client, 5, "warm")
        out["chat_p50_ms_before"] = chat_latency(client, tag="before")
        start = 0
        for n in [int(s) for s in args.sizes.split(",")]:
            items = new_items(n, start, category)
            start += n
            with Background(url, some_item) as during:
                t0 = time.perf_counter()
                answer = client.post("/admin/items", json={"items": items})
                post_s = time.perf_counter() - t0
            assert answer.status_code == 200 and len(answer.json()["added"]) == n, answer.text[:500]
            probe = items[0]["text"].replace(", number", "").rstrip(".")
            t1 = time.perf_counter()
            shown = client.post(
                "/chat", json={"messages": [{"role": "user", "content": probe}], "k": 10}
            ).json()
            chat_s = time.perf_counter() - t1
            found = [i["item_id"] for i in shown["items"]]
            t2 = time.perf_counter()
            retired = client.post("/admin/items/retire", json={"item_ids": [i["item_id"] for i in items]})
            retire_s = time.perf_counter() - t2
            assert retired.status_code == 200, retired.text[:500]
            out["batches"].append(
                {
                    "n": n,
                    "post_to_served_s": round(post_s, 3),
                    "service_seconds": answer.json()["seconds"],
                    "first_item_rank_in_chat": found.index(items[0]["item_id"])
                    if items[0]["item_id"] in found
                    else None,
                    "chat_after_ms": round(chat_s * 1000, 1),
                    "retire_s": round(retire_s, 3),
                    "recommend_during_post": during.summary(),
                }
            )
            print(json.dumps(out["batches"][-1]), flush=True)
        keep = new_items(100, 10_000, category)
        assert client.post("/admin/items", json={"items": keep}).status_code == 200
        out["chat_p50_ms_with_100_added"] = chat_latency(client, tag="after")
    out["load_after"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
