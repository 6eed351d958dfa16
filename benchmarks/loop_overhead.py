"""What the loop costs a serving process: request logging on the /recommend path, and a hot model swap.

1. ``RequestLog.record`` per call (what a request pays), and the background writer's throughput.
2. Scoring one session (``Predictor.recommend_batch``, the /recommend work) with and without ``record``.
3. A hot swap (``ModelHolder.check``: load + smoke check of a second model in a background thread) while a
   client thread keeps scoring: latency of those calls during the swap vs before it, and the swap time.

Model: EASE fitted on MovieLens-100K (all 1,682 items) from ``$SESSIONFLOW_DATA_MIRROR`` or
../shared/datasets, packaged with item embeddings as flows/package.py does, in a temporary BentoML store.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 flock -x /tmp/sf-cpu.lock python benchmarks/loop_overhead.py

Writes results/loop_overhead.json (git-ignored) with the machine and load average before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99), "max": round(max(values), 3)}


def ease_bundle(data_dir: Path, out: Path, l2: float) -> Path:
    from components.bundle import save_bundle
    from components.datasets import DatasetSpec
    from components.ingest import ingest
    from components.vocab import ItemVocab
    from models import TrainData, build_model

    data = ingest(DatasetSpec(name="ml-100k", format="movielens-100k", path=str(data_dir)))
    vocab = ItemVocab.fit(data.items["item_id"])
    seqs = [
        np.asarray(vocab.encode(list(g.astype(str)))[0])
        for _, g in data.interactions.groupby("user_id")["item_id"]
    ]
    model = build_model("ease", len(vocab), {"l2": l2})
    model.fit(TrainData(seqs, len(vocab)))
    return save_bundle(out, model, vocab, data.items, {"data_hash": f"bench-l2-{l2}"})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mirror = os.environ.get("SESSIONFLOW_DATA_MIRROR") or str(REPO.parent / "shared" / "datasets")
    parser.add_argument("--data", type=Path, default=Path(mirror) / "ml-100k")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=REPO / "results" / "loop_overhead.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    load_before = os.getloadavg()

    from components.request_log import RequestLog

    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="sessionflow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        # 1. record() and the writer
        log = RequestLog(tmp / "requests.db", start=False, max_queue=10**7)
        shown, scores = [str(i) for i in range(10)], [0.5] * 10
        t0 = time.perf_counter()
        for _ in range(100_000):
            log.record("recommend", items=["1", "2", "3"], shown=shown, scores=scores, k=10, model_tag="m:1")
        out["record_us_per_call"] = round((time.perf_counter() - t0) / 100_000 * 1e6, 3)
        t0 = time.perf_counter()
        while log.flush():
            pass
        out["writer_rows_per_s"] = round(100_000 / (time.perf_counter() - t0))
        log.close()

        # 2. scoring with and without record()
        os.environ["BENTOML_HOME"] = str(tmp / "bentoml")
        import bentoml

        from bento.model_holder import ModelHolder
        from components.bundle import Predictor
        from components.dialogue.config import ConversationConfig
        from components.dialogue.packaging import write_index
        from components.release import Release, write_release

        tags = []
        for l2 in (100.0, 300.0):
            bundle = ease_bundle(args.data, tmp / f"ease-{l2}", l2)
            write_index(bundle, REPO / ".cache" / "embeddings")
            with bentoml.models.create(
                "sessionflow-recommender", labels={"mlflow_model_version": str(l2)}
            ) as m:
                shutil.copytree(bundle, m.path, dirs_exist_ok=True)
            tags.append(str(m.tag))
        predictor = Predictor.load(bentoml.models.get(tags[0]).path)
        log = RequestLog(tmp / "requests2.db", flush_interval_s=1.0)
        rng = np.random.default_rng(0)
        ids = predictor.vocab.item_ids
        sessions = [[ids[j] for j in rng.choice(len(ids), 5, replace=False)] for _ in range(args.calls)]
        timings: dict[str, list[float]] = {"without_log": [], "with_log": []}
        for n, session in enumerate(sessions):
            for mode in ("without_log", "with_log") if n % 2 else ("with_log", "without_log"):
                t0 = time.perf_counter()
                [res] = predictor.recommend_batch([session], k=10)
                if mode == "with_log":
                    log.record("recommend", items=session, shown=[r.item_id for r in res.items],
                               scores=[r.score for r in res.items], k=10, model_tag=tags[0])  # fmt: skip
                timings[mode].append((time.perf_counter() - t0) * 1000)
        log.close()
        out["recommend_ms"] = {k: summary(v) for k, v in timings.items()}

        # 3. a hot swap while a client keeps scoring
        release = tmp / "release.json"
        holder = ModelHolder(tags[0], ConversationConfig(), release, interval_s=3600)
        phases: dict[str, list[float]] = {"before": [], "during_swap": [], "after": []}
        phase = ["before"]
        stop = threading.Event()

        def client() -> None:
            i = 0
            while not stop.is_set():
                served = holder.current
                t0 = time.perf_counter()
                served.predictor.recommend_batch([sessions[i % len(sessions)]], k=10)
                phases[phase[0]].append((time.perf_counter() - t0) * 1000)
                i += 1

        thread = threading.Thread(target=client)
        thread.start()
        time.sleep(3)
        write_release(release, Release(model_tag=tags[1]))
        phase[0] = "during_swap"
        t0 = time.perf_counter()
        outcome = holder.check()
        out["swap_seconds"] = round(time.perf_counter() - t0, 3)
        phase[0] = "after"
        time.sleep(3)
        stop.set()
        thread.join()
        assert outcome["changed"], outcome
        out["recommend_ms_around_swap"] = {k: summary(v) for k, v in phases.items() if v}
    out["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    out["threads"] = {
        k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    out["loadavg_before"], out["loadavg_after"] = load_before, os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
