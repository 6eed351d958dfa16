"""Latency of a conversation turn (/chat) and of feedback, in process and over HTTP, on CPU.

Plays N scripted multi-turn conversations (genres, decades, negations, "like <title>" references, critiques
such as "more recent" or "another one like the second", likes and dislikes) and reports p50/p95/p99 per call
kind. In process it times ``ConversationEngine.chat`` / ``feedback``; with ``--url`` it also times
``POST {url}/chat`` and ``POST {url}/feedback`` against a running service (client and server on one box).

    python benchmarks/chat_latency.py                        # quick EASE on ML-100k from the data mirror
    python benchmarks/chat_latency.py --bundle artifacts/candidates/<run>/sasrec   # a bundle with its index
    python benchmarks/chat_latency.py --url http://localhost:3000 --conversations 100
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/chat_latency.py   # one BLAS/torch thread

On a small, busy CPU box the thread settings matter more than anything else here (see benchmarks/README.md).

Writes results/chat_latency.json (git-ignored); copy the numbers you quote into docs/results-conversation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # time this checkout's code, not whichever sessionflow is installed
DEFAULT_REFERENCES = ("Toy Story", "Star Wars", "Fargo", "The Godfather", "Alien", "Pulp Fiction")
OPENINGS = (
    "a funny movie from the 90s",
    "something scary",
    "I want a sci-fi movie like {ref}",
    "a romantic comedy from the 80s",
    "no horror, something for kids",
    "an action thriller",
    "like {ref} but darker",
    "a documentary",
    "war movies from the 1960s",
    "I loved {ref}, anything similar?",
    "a crime drama, not too violent",
    "animated family film",
)
FOLLOW_UPS = (
    "more recent",
    "older",
    "no drama",
    "lighter",
    "another one like the second",
    "something else",
    "not like {ref}",
    "from the 70s",
    "more like the first",
    "with more action",
    "no comedy please",
    "something like {ref}",
)
FEEDBACK = ("like", "dislike")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def make_scripts(n: int, references: Sequence[str], seed: int = 0) -> list[list[str]]:
    """``n`` conversations of 3-6 steps; a step is a message or ``@like N`` / ``@dislike N`` (N: 1-based)."""
    rng = np.random.default_rng(seed)
    scripts = []
    for _ in range(n):
        steps = [str(rng.choice(OPENINGS))]
        for _ in range(int(rng.integers(2, 6))):
            if rng.random() < 0.25:
                steps.append(f"@{rng.choice(FEEDBACK)} {int(rng.integers(1, 4))}")
            else:
                steps.append(str(rng.choice(FOLLOW_UPS)))
        scripts.append([s.replace("{ref}", str(rng.choice(list(references)))) for s in steps])
    return scripts


# ------------------------------------------------------------------------------------------------ runners


def play(
    scripts: list[list[str]],
    chat: Callable[[str, str], list[str]],
    feedback: Callable[[str, str, str], list[str]],
    prefix: str,
    before_turn: Callable[[str], None] | None = None,
    think_s: float = 0.0,
) -> dict[str, list[float]]:
    """Play every script; returns milliseconds per call kind (``chat``, ``chat_first_turn``, ``feedback``).
    ``before_turn(session_id)`` runs before each message, outside the timing (the harness's own work);
    ``think_s``: the user's pause before each message or click after the first, outside the timing."""
    times: dict[str, list[float]] = {"chat": [], "chat_first_turn": [], "feedback": []}
    for n, script in enumerate(scripts):
        sid = f"{prefix}-{n}"
        shown: list[str] = []
        for turn, step in enumerate(script):
            if turn and think_s > 0:
                time.sleep(think_s)
            if step.startswith("@"):
                event, pos = step[1:].split()
                if not shown:
                    continue
                item = shown[min(int(pos), len(shown)) - 1]
                start = time.perf_counter()
                shown = feedback(sid, item, event) or shown
                times["feedback"].append((time.perf_counter() - start) * 1000)
            else:
                if before_turn is not None:
                    before_turn(sid)
                start = time.perf_counter()
                shown = chat(sid, step)
                elapsed = (time.perf_counter() - start) * 1000
                times["chat"].append(elapsed)
                if turn == 0:
                    times["chat_first_turn"].append(elapsed)
    return times


def run_in_process(
    engine: Any, warmup: list[list[str]], scripts: list[list[str]], k: int, fresh_queries: str = "no",
    think_s: float = 0.0,
) -> dict[str, list[float]]:  # fmt: skip
    current = {"sid": None}

    def forget(sid: str) -> None:
        # turn: worst case, every text of the turn encoded (and parsed) again, even a reply prepared in the
        # background when it was made; conversation: each message and reply of a conversation encoded once,
        # as in a running service, and nothing kept from other conversations (text vectors, parsed replies,
        # item similarities). Outside the timing: waiting for the last conversation's background work is
        # not part of this turn.
        if fresh_queries == "turn" or (fresh_queries == "conversation" and sid != current["sid"]):
            engine.forget_texts()
        current["sid"] = sid

    def chat(sid: str, message: str) -> list[str]:
        return [i.item_id for i in engine.chat(sid, message, k).items]

    def feedback(sid: str, item: str, event: str) -> list[str]:
        return [i["item_id"] for i in engine.feedback(sid, item, event).get("items", [])]

    play(warmup, chat, feedback, "warmup", forget, think_s)
    return play(scripts, chat, feedback, f"bench-{os.getpid()}", forget, think_s)


def run_http(
    url: str, warmup: list[list[str]], scripts: list[list[str]], k: int, think_s: float = 0.0
) -> dict[str, list[float]]:
    import httpx

    base = url.rstrip("/")
    with httpx.Client(timeout=60.0) as client:

        def post(route: str, payload: dict[str, Any]) -> dict[str, Any]:
            try:
                resp = client.post(f"{base}{route}", json=payload)
            except httpx.TransportError as exc:
                raise SystemExit(f"cannot reach {base}{route}: {exc}; is the service running?") from exc
            if resp.status_code >= 400:
                raise SystemExit(f"{base}{route} answered {resp.status_code}: {resp.text[:300]}")
            return resp.json()

        def chat(sid: str, message: str) -> list[str]:
            body = post("/chat", {"session_id": sid, "message": message, "k": k})
            return [str(i["item_id"]) for i in body.get("items", [])]

        def feedback(sid: str, item: str, event: str) -> list[str]:
            body = post("/feedback", {"session_id": sid, "item_id": item, "event": event})
            return [str(i["item_id"]) for i in body.get("items", [])]

        play(warmup, chat, feedback, f"warmup-http-{os.getpid()}", think_s=think_s)
        return play(scripts, chat, feedback, f"bench-http-{os.getpid()}-{int(time.time())}", think_s=think_s)


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for kind, values in times.items():
        if not values:
            continue
        v = np.asarray(values)
        out[kind] = {
            "n": int(v.size),
            "p50_ms": round(float(np.percentile(v, 50)), 2),
            "p95_ms": round(float(np.percentile(v, 95)), 2),
            "p99_ms": round(float(np.percentile(v, 99)), 2),
            "mean_ms": round(float(v.mean()), 2),
            "max_ms": round(float(v.max()), 2),
        }
    return out


# ------------------------------------------------------------------------------------------------ setup


def default_data() -> Path:
    mirror = os.environ.get("SESSIONFLOW_DATA_MIRROR")
    if mirror:
        return Path(mirror) / "ml-100k"
    return REPO.parent / "shared" / "datasets" / "ml-100k"


def quick_bundle(data_dir: Path, out_dir: Path) -> tuple[Path, Any, float]:
    """Train EASE on all of ML-100k (a latency benchmark needs a realistic model, not a metric): returns
    (bundle dir, canonical items table, fit seconds)."""
    from components.bundle import save_bundle
    from components.datasets import DatasetSpec
    from components.ingest import ingest
    from components.vocab import ItemVocab
    from models import build_model
    from models.base import TrainData

    if not data_dir.exists():
        raise SystemExit(f"no ML-100k at {data_dir}: set SESSIONFLOW_DATA_MIRROR or pass --data / --bundle")
    data = ingest(DatasetSpec(name="ml-100k", format="movielens-100k", path=str(data_dir)))
    inter = data.interactions.sort_values(["user_id", "timestamp"], kind="stable")
    vocab = ItemVocab.fit(inter["item_id"].astype(str))
    seqs = [np.asarray(vocab.encode(list(g.astype(str)))[0]) for _, g in inter.groupby("user_id")["item_id"]]
    model = build_model("ease", len(vocab))
    start = time.perf_counter()
    model.fit(TrainData(seqs, len(vocab)))
    fit_s = time.perf_counter() - start
    from components.datasets import BUILTIN

    catalogue = BUILTIN["ml-100k"].spec.catalogue
    bundle = save_bundle(out_dir / "ease", model, vocab, data.items, {"data_hash": data.data_hash}, catalogue)
    return bundle, data.items, fit_s


def machine(torch_threads: int) -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch_threads,
        "python": platform.python_version(),
        "loadavg_start": list(os.getloadavg()),
        "thread_env": {v: os.environ.get(v) for v in THREAD_ENV if os.environ.get(v)},
    }


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="chat latency (ms)")
    for col in ("mode", "call", "n", "p50", "p95", "p99", "mean", "max"):
        table.add_column(col, justify="left" if col in {"mode", "call"} else "right")
    for mode, kinds in results.items():
        for kind, s in kinds.items():
            table.add_row(
                mode,
                kind,
                str(s["n"]),
                *(f"{s[f'{m}_ms']:.1f}" for m in ("p50", "p95", "p99", "mean", "max")),
            )
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="model bundle (default: quick EASE on ML-100k)")
    ap.add_argument(
        "--data", type=Path, default=None, help="ML-100k folder (default: $SESSIONFLOW_DATA_MIRROR)"
    )
    ap.add_argument("--url", help="also time a running service at this URL")
    ap.add_argument("--http-only", action="store_true", help="with --url: skip the in-process run")
    ap.add_argument("--conversations", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3, help="conversations played first and not timed")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--fresh-queries",
        nargs="?",
        const="turn",
        default="no",
        choices=["no", "turn", "conversation"],
        help="in process: clear the engine's text-vector cache before every turn (turn: worst case, every "
        "text of the turn encoded again) or at the start of every conversation (conversation: each message "
        "and reply encoded once, as in a running service; no reuse across conversations)",
    )
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch default)")
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="the user's pause before each message or click after a conversation's first (not timed; "
        "default 0: back to back, the replies are never prepared while the user reads)",
    )
    ap.add_argument(
        "--config", default="{}", help='JSON overrides of ConversationConfig: {"prepare_reply": false}'
    )
    ap.add_argument("--embedding-cache", type=Path, default=REPO / ".cache" / "embeddings")
    ap.add_argument("--output", type=Path, default=REPO / "results" / "chat_latency.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(torch.get_num_threads()),
        "conversations": args.conversations,
        "k": args.k,
        "fresh_queries": args.fresh_queries,
        "config": json.loads(args.config),
        "think_ms": args.think_ms,
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    references: Sequence[str] = DEFAULT_REFERENCES
    engine = None
    if not args.http_only:
        from components.dialogue.config import ConversationConfig
        from components.dialogue.engine import load_engine
        from components.dialogue.packaging import write_index

        with tempfile.TemporaryDirectory(prefix="sessionflow-chat-bench-") as tmp:
            if args.bundle is not None:
                bundle = args.bundle
            else:
                bundle, _, fit_s = quick_bundle(args.data or default_data(), Path(tmp))
                report["fit_seconds"] = round(fit_s, 2)
                write_index(bundle, args.embedding_cache)  # as packaging does
            start = time.perf_counter()
            overrides = json.loads(args.config)
            config = ConversationConfig(**{"embedding_cache_dir": str(args.embedding_cache), **overrides})
            engine = load_engine(bundle, config)
            report["engine_load_seconds"] = round(time.perf_counter() - start, 2)
        report["model"] = engine.predictor.meta.get("model")
        report["n_items"] = len(engine.index)
        report["index"] = engine.index_source
        references = popular_titles(engine, 12) or DEFAULT_REFERENCES
    scripts = make_scripts(args.conversations, references, args.seed)
    warm = make_scripts(args.warmup, references, args.seed + 1)
    report["turns_per_conversation"] = round(float(np.mean([len(s) for s in scripts])), 2)
    if engine is not None:
        times = run_in_process(engine, warm, scripts, args.k, args.fresh_queries, args.think_ms / 1000)
        results["in-process"] = summarise(times)
    if args.url:
        results["http"] = summarise(run_http(args.url, warm, scripts, args.k, args.think_ms / 1000))
        report["url"] = args.url
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["results"] = results
    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")
    return report


def popular_titles(engine: Any, n: int) -> list[str]:
    """The ``n`` most popular titles as a person types them (references for the scripts)."""
    from components.dialogue.linker import display_title

    ix = engine.index
    top = np.argsort(-np.asarray(ix.prior))[:n]
    return [display_title(ix.titles[int(i)]).split(" (")[0] for i in top]


if __name__ == "__main__":
    main()
