"""Speed of the sentence encoder, PyTorch against ONNX Runtime, on real text (CPU, one thread by default).

Encodes what people typed (INSPIRED dev seeker messages, one at a time, as a /chat turn does) and the item
texts of ml-100k in batches (as featurize and packaging do), with both backends of
``components.text_encoder.SentenceEncoder``, and reports milliseconds per text and the largest difference
between the two backends' vectors.

    SESSIONFLOW_DATA_MIRROR=../shared/datasets OMP_NUM_THREADS=1 python benchmarks/encoder_speed.py

Writes results/encoder_speed.json (git-ignored); quote the numbers in docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _messages(mirror: Path, n: int) -> list[str]:
    from components.dialogue.evaluation import read_inspired

    dialogues = read_inspired(mirror / "inspired" / "dev.tsv")
    texts = [u.text for d in dialogues for u in d.utterances if u.role == "user"]
    if len(texts) < n:
        raise SystemExit(f"INSPIRED dev has {len(texts)} seeker messages, fewer than {n}")
    return texts[:n]


def _item_texts(mirror: Path, n: int) -> list[str]:
    """The catalogue texts of ml-100k as ingest builds them (title and genres), which featurize encodes."""
    from components.datasets import builtin_spec
    from components.ingest import ingest

    return ingest(builtin_spec("ml-100k", mirror)).items["text"].astype(str).tolist()[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--items", type=int, default=1682)
    ap.add_argument("--output", default=str(REPO / "results" / "encoder_speed.json"))
    args = ap.parse_args()

    import torch

    from components.text_encoder import SentenceEncoder

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    mirror = Path(os.environ.get("SESSIONFLOW_DATA_MIRROR", REPO.parent / "shared" / "datasets"))
    messages, items = _messages(mirror, args.messages), _item_texts(mirror, args.items)
    report: dict = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "messages": len(messages),
        "items": len(items),
    }
    vectors = {}
    for backend in ("torch", "onnx"):
        t0 = time.perf_counter()
        enc = SentenceEncoder(device="cpu", backend=backend)
        load_s = time.perf_counter() - t0
        enc.encode(messages[:5])  # warm up
        per_message: list[float] = []
        rows = []
        for m in messages:
            t = time.perf_counter()
            rows.append(enc.encode([m])[0])
            per_message.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        enc.encode(items)
        batch_s = time.perf_counter() - t
        vectors[backend] = (np.stack(rows), enc.encode(items[:200]))
        ms = np.asarray(per_message)
        report[backend] = {
            "load_s": round(load_s, 2),
            "message_ms": {
                "mean": round(float(ms.mean()), 2),
                "p50": round(float(np.percentile(ms, 50)), 2),
                "p95": round(float(np.percentile(ms, 95)), 2),
            },
            "catalogue_ms_per_text": round(batch_s * 1000 / len(items), 2),
        }
        print(backend, report[backend], flush=True)
    report["max_abs_diff"] = float(
        max(np.abs(vectors["torch"][i] - vectors["onnx"][i]).max() for i in range(2))
    )
    print("max |torch - onnx| over all vectors:", report["max_abs_diff"])
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print("wrote", args.output)


if __name__ == "__main__":
    main()
