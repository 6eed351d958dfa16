"""Fit the conversation's fusion weights on a DEVELOPMENT dialogue set (INSPIRED dev), never on test.

Each dev case (the history before a recommender turn that names a new catalogue item) is replayed once through
the engine exactly as /chat does; the final state's ranking signals are computed once (all of them), and
Optuna's TPE sampler searches the weights that maximise Recall@10 (+ a quarter of Recall@50, for a smoother
objective) with the production fusion, filters and MMR. A 5-fold cross-validation over dialogues estimates
how much of the in-sample gain is real. Writes the weights and both numbers as JSON; put the weights in
params.yaml's ``conversation`` section (or ConversationConfig's defaults) and then measure the test split
once with ``sessionflow evaluate-chat``.

    python benchmarks/tune_conversation.py --bundle artifacts/dev/mls-ease --trials 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TUNED = (
    "w_prior", "w_recency", "w_model", "w_cf", "w_content", "w_mention", "w_dense", "w_lexical",
    "w_assistant", "w_similar",
    "w_facet", "w_title", "shown_penalty",
)  # fmt: skip


def _signal(field: str) -> str:
    return "shown" if field == "shown_penalty" else field[2:]


def _field(signal: str) -> str:
    return "shown_penalty" if signal == "shown" else f"w_{signal}"


def prepare(bundle: Path, dialogues: Path, overrides: dict) -> tuple[list, object]:
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import load_engine
    from components.dialogue.evaluation import TitleMatcher, build_cases, read_inspired
    from components.dialogue.ranker import FOUND, filter_mask, signals

    cfg = ConversationConfig(**overrides)
    engine = load_engine(bundle, cfg.model_copy(update=dict.fromkeys(TUNED, 1.0)))
    ix = engine.index
    build = build_cases(read_inspired(dialogues), TitleMatcher(ix.item_ids, ix.titles, ix.years))
    cases = []
    for case in build.cases:
        state, _, _ = engine.replay(list(case.history))
        req = engine.request(state)
        banned = np.zeros(len(ix), bool)
        banned[list(req.banned)] = True
        ok = filter_mask(ix, req.constraints, cfg.category_filter) & ~banned
        if not ok.any():
            ok = ~banned
        sig = {n: v.astype(np.float32) for n, v in signals(ix, engine.predictor.model, req, engine.config, ok,
                                                            every=True).items() if n != FOUND}  # fmt: skip
        targets = [ix.index(t) for t in case.targets]
        cases.append((case.dialogue_id, sig, ok, targets))
    return cases, engine


def recall(cases: list, w: dict[str, float], cfg, emb: np.ndarray, ks=(10, 50)) -> dict[int, float]:  # noqa: ANN001
    from components.dialogue.ranker import mmr, weights

    signs = weights(cfg)
    hits = {k: 0 for k in ks}
    n = 0
    for _, sig, ok, targets in cases:
        total = np.zeros(len(ok))
        for name, v in sig.items():
            total += (np.sign(signs[name]) * w[name] if name in w else signs[name]) * v
        total[~ok] = -np.inf
        allowed = np.flatnonzero(ok)
        order = allowed[np.argsort(-total[allowed], kind="stable")[: max(max(ks), cfg.mmr_pool)]]
        top10 = [
            order[p]
            for p in mmr(order[: cfg.mmr_pool], total[order[: cfg.mmr_pool]], emb, 10, cfg.mmr_lambda)
        ]
        for t in targets:
            n += 1
            if t is None:
                continue
            hits[10] += int(t in top10)
            hits[50] += int(t in set(order[:50].tolist()))
    return {k: hits[k] / max(1, n) for k in ks}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    mirror = Path(os.environ.get("SESSIONFLOW_DATA_MIRROR", "../shared/datasets"))
    p.add_argument("--dialogues", type=Path, default=mirror / "inspired" / "dev.tsv")
    p.add_argument("--trials", type=int, default=300)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--config", type=str, default="{}", help="JSON overrides of ConversationConfig")
    p.add_argument("--seed", type=int, default=0, help="Seed of the TPE sampler and of the fold split")
    p.add_argument("--output", type=Path, default=Path("results/tune_conversation.json"))
    args = p.parse_args()
    if "test" in args.dialogues.name:
        sys.exit("refusing to tune on a test split: pass the development dialogues")
    import optuna

    t0 = time.perf_counter()
    cases, engine = prepare(args.bundle, args.dialogues, json.loads(args.config))
    cfg, emb = engine.config, engine.index.embeddings
    prep_s = time.perf_counter() - t0

    def search(train: list, trials: int) -> dict[str, float]:
        def objective(trial: optuna.Trial) -> float:
            w = {_signal(name): trial.suggest_float(name, 0.0, 1.0) for name in TUNED}
            r = recall(train, w, cfg, emb)
            return r[10] + 0.25 * r[50]

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed))
        study.optimize(objective, n_trials=trials)
        return {_signal(name): round(v, 3) for name, v in study.best_params.items()}

    default = {_signal(name): cfg.__class__.model_fields[name].default for name in TUNED}
    dialogues = sorted({c[0] for c in cases})
    rng = np.random.default_rng(args.seed)
    rng.shuffle(dialogues)
    folds = [set(dialogues[i :: args.folds]) for i in range(args.folds)]
    cv = []
    for held in folds:
        w = search([c for c in cases if c[0] not in held], args.trials)
        cv.append(recall([c for c in cases if c[0] in held], w, cfg, emb))
    best = search(cases, args.trials)
    report = {
        "bundle": str(args.bundle), "dialogues": str(args.dialogues), "n_cases": len(cases),
        "n_targets": sum(len(c[3]) for c in cases), "trials": args.trials, "seed": args.seed,
        "default_weights": default, "default_recall": recall(cases, default, cfg, emb),
        "best_weights": {_field(k): v for k, v in best.items()},
        "in_sample_recall": recall(cases, best, cfg, emb),
        "cv_recall_at_10": float(np.mean([r[10] for r in cv])),
        "cv_recall_at_50": float(np.mean([r[50] for r in cv])),
        "prepare_seconds": round(prep_s, 1), "seconds": round(time.perf_counter() - t0, 1),
        "loadavg": os.getloadavg(),
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
