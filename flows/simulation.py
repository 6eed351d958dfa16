"""Conversation-level evaluation of a model bundle: simulated users on the held-out test split, in MLflow.

Each test case (history, target) becomes one simulated user (``components.simulator``) who wants the target
and describes it in the target's own words (its tags or description), with vague or wrong attributes. Warm
users bring their history into the session; cold-start users
bring nothing. Reported (flat, MLflow-safe names)::

    sim/success_at_10              share of warm users who saw their target in the top k within max_turns
    sim/mean_turns_to_success      mean turn of success among those who succeeded (NaN if none did)
    sim/success_at_10/turn_1..T    cumulative share found by the end of each turn
    sim/cold/...                   the same for cold-start users
    sim/model_only_hit_at_10       the model alone on the same cases, from the history, no conversation
    sim/n_users, sim/n_skipped     users simulated; test cases left out (target unknown to the bundle,
                                   or already in the history, where the engine would never show it again)
    sim/max_turns, sim/seconds     the turn budget; wall time of the warm + cold simulation

The simulator does not speak the planner's vocabulary, but its users still describe their target from its
own text, which real users rarely can: read it as a regression signal next to the INSPIRED dialogue recall.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

SIMULATION_NOTE = (
    "components.simulator on the test split: users describe the target with its own tags/text, vague or "
    "wrong attributes and careless titles"
)

if TYPE_CHECKING:
    from components.config import Settings
    from components.dialogue.config import ConversationConfig
    from components.features import FeatureSet
    from components.simulator import SimCase, SimulationReport
    from flows.tracking import CandidateResult


def cases_from_test_split(
    fs: FeatureSet, known: set[str] | frozenset[str], n_users: int | None, seed: int = 0
) -> tuple[list[SimCase], int]:
    """Simulation cases from ``fs.test`` in raw ids, restricted to targets in ``known`` (the bundle's
    vocabulary); returns (``n_users`` cases sampled with ``seed``, number of test cases left out)."""
    from components.simulator import SimCase

    cases: list[SimCase] = []
    skipped = 0
    for n, (history, target) in enumerate(zip(fs.test.histories, fs.test.targets, strict=True)):
        target_id = fs.vocab.item_ids[int(target)]
        raw_history = tuple(fs.vocab.decode(history))
        if target_id not in known or target_id in raw_history:
            skipped += 1
            continue
        cases.append(SimCase(f"test-{n}", raw_history, target_id))
    if n_users is not None and n_users < len(cases):
        rng = np.random.default_rng(seed)
        pick = sorted(rng.choice(len(cases), size=n_users, replace=False).tolist())
        cases = [cases[i] for i in pick]
    return cases, skipped


def report_metrics(report: SimulationReport, prefix: str) -> dict[str, float]:
    """Flat MLflow-safe metrics of one simulation report under ``prefix`` (``sim`` or ``sim/cold``)."""
    k = report.k
    out = {
        f"{prefix}/success_at_{k}": float(report.success_at_k),
        f"{prefix}/mean_turns_to_success": float(report.mean_turns_to_success),
    }
    for turn, share in enumerate(report.per_turn_success, start=1):
        out[f"{prefix}/success_at_{k}/turn_{turn}"] = float(share)
    return out


@contextlib.contextmanager
def limited_threads(n: int | None) -> Iterator[None]:
    """Run the block with at most ``n`` BLAS/OpenMP threads and ``n`` torch threads (restored afterwards).

    A conversation turn is a handful of matrix-vector products and one short sentence encoding: on a small
    or busy CPU, multi-threaded BLAS/torch spin on each other and a turn takes 10-30x longer than on one
    thread (measured, docs/results-conversation.md). ``None`` leaves the settings alone.
    """
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (mlflow)
            pass
        else:
            stack.enter_context(threadpool_limits(limits=n))
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def simulate_champion(
    bundle_dir: Path,
    fs: FeatureSet,
    cfg: ConversationConfig,
    n_users: int = 200,
    k: int = 10,
    max_turns: int = 5,
    seed: int = 0,
    embedding_cache: Path | None = None,
    threads: int | None = 1,
) -> dict[str, float]:
    """Simulate ``n_users`` warm and cold-start users against the bundle's conversation engine.

    ``fs`` gives the test split, mapped onto the bundle's vocabulary by raw item id (the bundle may be an
    older champion with another vocabulary).
    Sessions live in memory and LLM phrasing is off, whatever ``cfg`` says. ``embedding_cache`` (or
    ``cfg.embedding_cache_dir``) caches the item text embeddings. The simulation runs on ``threads`` BLAS and
    torch threads (see ``limited_threads``; results do not depend on it).
    """
    from components.dialogue.engine import load_engine
    from components.simulator import simulate

    if n_users < 1 or k < 1 or max_turns < 1:
        raise ValueError(f"n_users, k and max_turns must be positive, got {n_users}, {k}, {max_turns}")
    update: dict[str, Any] = {
        "llm_url": None, "redis_url": None, "session_db": None, "planner": "builtin", "llm_reply": False,
    }  # fmt: skip
    if embedding_cache is not None and not cfg.embedding_cache_dir:
        update["embedding_cache_dir"] = str(embedding_cache)
    engine = load_engine(Path(bundle_dir), cfg.model_copy(update=update))
    cases, skipped = cases_from_test_split(fs, set(engine.index.item_ids), n_users, seed)
    if not cases:
        raise ValueError(
            f"no test case of the features can be simulated on {bundle_dir}: every target is unknown to "
            "the bundle's vocabulary or already in its history"
        )
    start = time.perf_counter()
    with limited_threads(threads):
        warm = simulate(engine, cases, k, max_turns, cold_start=False, seed=seed)
        cold = simulate(engine, cases, k, max_turns, cold_start=True, seed=seed)
    seconds = time.perf_counter() - start
    results = engine.predictor.recommend_batch([list(c.history) for c in cases], k=k)
    hits = [c.target in {r.item_id for r in res.items} for c, res in zip(cases, results, strict=True)]
    return {
        **report_metrics(warm, "sim"),
        **report_metrics(cold, "sim/cold"),
        f"sim/model_only_hit_at_{k}": float(np.mean(hits)),
        "sim/n_users": float(warm.n_users),
        "sim/n_skipped": float(skipped + warm.skipped),
        "sim/max_turns": float(max_turns),
        "sim/seconds": round(seconds, 2),
    }


def log_simulation(
    metrics: dict[str, float], run_id: str, tag: str = "sessionflow.simulation", note: str = SIMULATION_NOTE
) -> None:
    """Log ``metrics`` to an existing MLflow run (step 0; names made MLflow-safe with ``metric_key``).

    Also tags the run (``tag``) with what the numbers mean (``note``).
    Non-numeric values are errors; NaN (no user succeeded) is logged as NaN.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from flows.tracking import metric_key

    bad = {k: v for k, v in metrics.items() if not isinstance(v, numbers.Real) or isinstance(v, bool)}
    if bad:
        raise ValueError(f"simulation metrics must be numbers; got {bad}")
    now = int(time.time() * 1000)
    entries = [Metric(metric_key(name), float(value), now, 0) for name, value in metrics.items()]
    client = MlflowClient()
    client.log_batch(run_id, metrics=entries)
    client.set_tag(run_id, tag, note)


def simulate_and_log(
    bundle_dir: Path,
    fs: FeatureSet,
    cfg: ConversationConfig,
    run_ids: list[str],
    n_users: int = 200,
    k: int = 10,
    max_turns: int = 5,
    seed: int = 0,
    embedding_cache: Path | None = None,
    threads: int | None = 1,
) -> dict[str, float]:
    """``simulate_champion`` then ``log_simulation`` to every run in ``run_ids`` (e.g. candidate + parent)."""
    metrics = simulate_champion(bundle_dir, fs, cfg, n_users, k, max_turns, seed, embedding_cache, threads)
    for run_id in dict.fromkeys(run_ids):
        log_simulation(metrics, run_id)
    return metrics


def challenger_of(
    results: Sequence[tuple[CandidateResult, str]], decision: Any
) -> tuple[CandidateResult, str] | None:
    """The candidate promotion registered this run (``decision.evidence["challenger"]["run_id"]``), if any."""
    run_id = (getattr(decision, "evidence", None) or {}).get("challenger", {}).get("run_id")
    return next(((r, rid) for r, rid in results if rid == run_id), None)


def simulate_challenger(
    results: Sequence[tuple[CandidateResult, str]],
    decision: Any,
    settings: Settings,
    root: Path,
    parent_run_id: str,
    n_users: int = 200,
    max_turns: int = 5,
    logger: Any = None,
) -> dict[str, float] | None:
    """Pipeline step after promotion: simulate this run's registered challenger (the new champion when it
    was promoted) and log the metrics to its candidate run and to the parent run.

    Never fails the pipeline: a problem is logged as a warning and None returned.
    """
    from sessionflow import stages

    log = logger or logging.getLogger(__name__)
    picked = challenger_of(results, decision)
    if picked is None:
        log.info("conversation simulation skipped: no candidate was registered this run")
        return None
    result, run_id = picked
    primary = settings.evaluate.primary_metric
    k = int(primary.split("@")[1]) if "@" in primary else 10
    try:
        fs, _, _ = stages.load_stage_features(settings, root)
        cache = stages.paths_for(settings, root).cache / "embeddings"
        metrics = simulate_and_log(
            result.bundle_dir, fs, settings.conversation, [run_id, parent_run_id], n_users, k,
            max_turns, embedding_cache=cache,
        )  # fmt: skip
        from mlflow import MlflowClient

        MlflowClient().set_tag(parent_run_id, "sessionflow.simulation.model", result.model_name)
        metrics |= evaluate_dialogues(result.bundle_dir, settings, [run_id, parent_run_id], log, cache)
    except Exception as exc:  # noqa: BLE001 - an evaluation extra must not sink a finished pipeline
        log.warning("conversation simulation of %s failed and is skipped: %r", result.model_name, exc)
        return None
    log.info("%s: %s", result.model_name, summary(metrics, k))
    return metrics


def evaluate_dialogues(
    bundle_dir: Path, settings: Settings, run_ids: list[str], log: Any, embedding_cache: Path | None = None
) -> dict[str, float]:
    """Recall@K of the bundle's conversation on the configured real dialogue corpus (INSPIRED test by
    default), logged to the runs next to the offline metrics; {} when the corpus is not in the mirror.
    ``embedding_cache`` (the simulation's) spares a second encoding of the catalogue's texts."""
    from sessionflow.chat_eval import evaluate_chat

    ev = settings.evaluate
    if ev.chat_corpus is None:
        return {}
    update: dict[str, Any] = {"planner": "builtin", "llm_reply": False, "redis_url": None, "session_db": None}
    if embedding_cache is not None and not settings.conversation.embedding_cache_dir:
        update["embedding_cache_dir"] = str(embedding_cache)
    cfg = settings.conversation.model_copy(update=update)
    try:
        with limited_threads(1):
            report = evaluate_chat(Path(bundle_dir), corpus=ev.chat_corpus, split=ev.chat_split,
            ks=ev.chat_ks,
                                   config=cfg)  # fmt: skip
    except FileNotFoundError as exc:
        log.warning("dialogue evaluation skipped: %s", exc)
        return {}
    metrics = {k: float(v) for k, v in report["metrics"].items()}
    note = (f"Recall@K on {ev.chat_corpus} {ev.chat_split} dialogues (components.dialogue.evaluation); "
            f"mapping rate {report['mapping_rate']:.2f}")  # fmt: skip
    for run_id in dict.fromkeys(run_ids):
        log_simulation(metrics, run_id, "sessionflow.dialogues", note)
    log.info("dialogues %s/%s: recall %s over %d targets (mapping rate %.2f)", ev.chat_corpus, ev.chat_split,
             report["recall"], report["n_targets"], report["mapping_rate"])  # fmt: skip
    return metrics


def summary(metrics: dict[str, float], k: int = 10) -> str:
    """One line for logs: warm / cold success and turns, and the model alone."""

    def fmt(name: str) -> str:
        value = metrics.get(name)
        return "nan" if value is None or not math.isfinite(value) else f"{value:.3f}"

    return (
        f"simulated {int(metrics.get('sim/n_users', 0))} users: "
        f"success@{k} warm {fmt(f'sim/success_at_{k}')} (mean turns {fmt('sim/mean_turns_to_success')}), "
        f"cold {fmt(f'sim/cold/success_at_{k}')} (mean turns {fmt('sim/cold/mean_turns_to_success')}); "
        f"model alone {fmt(f'sim/model_only_hit_at_{k}')}"
    )
