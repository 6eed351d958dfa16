"""Train RecBole 1.2.1's SASRec on a prepared split and rank the test cases (runs INSIDE the RecBole venv).

Called by benchmarks/recbole_compare.py with a JSON job file:
    {"data_path": ..., "dataset": ..., "config": {...RecBole settings...}, "histories": [[...]],
     "targets": [...], "output": "result.json", "threads": 2}

Besides RecBole's own test metrics (its protocol: seen items NOT excluded), the test cases are ranked
under sessionflow's protocol -- full catalogue, every history item excluded, pessimistic ties -- from
``full_sort_predict`` scores mapped back to sessionflow's dense item ids, so both libraries are measured
by the same evaluator. Per-epoch training seconds and validation results are recorded.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault(
    "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1"
)  # RecBole 1.2.1 pickles its config in checkpoints

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    torch.set_num_threads(int(job.get("threads", 2)))
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    config = Config(model="SASRec", dataset=job["dataset"], config_dict=job["config"])
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)

    epoch_seconds: list[float] = []
    valid_curve: list[float] = []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*args, **kwargs):
        t0 = time.perf_counter()
        out = train_epoch(*args, **kwargs)
        epoch_seconds.append(round(time.perf_counter() - t0, 3))
        return out

    def recorded_valid(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        valid_curve.append(float(score))
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, recorded_valid
    t0 = time.perf_counter()
    best_valid, best_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - t0
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)

    ours = rank_like_sessionflow(model, dataset, job, config)
    result = {
        "library": "recbole",
        "recbole_version": __import__("recbole").__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fit_seconds": round(fit_seconds, 2),
        "epochs": len(epoch_seconds),
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": round(float(np.mean(epoch_seconds)), 3) if epoch_seconds else None,
        "train_seconds_only": round(float(np.sum(epoch_seconds)), 2),
        "best_epoch": int(np.argmax(valid_curve)) + 1 if valid_curve else None,
        "valid_curve_recbole_protocol": valid_curve,
        "best_valid_recbole_protocol": {k: float(v) for k, v in best_result.items()},
        "test_recbole_protocol": {k: float(v) for k, v in test_result.items()},
        "test": ours,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "n_items_recbole": int(dataset.item_num),
        "n_train_samples": len(train_data.dataset),
    }
    with open(job["output"], "w") as f:
        json.dump(result, f, indent=2)


def rank_like_sessionflow(model, dataset, job, config) -> dict[str, float]:
    """NDCG@10 / HR@10 / NDCG@20 / HR@20 of the test cases under sessionflow's protocol."""
    from recbole.data.interaction import Interaction

    tokens = dataset.field2id_token["item_id"]  # internal id -> token (our dense id as a string)
    token_to_internal = {t: i for i, t in enumerate(tokens)}
    n_ours = int(job["n_items"])
    internal_of_ours = np.array([token_to_internal[str(i)] for i in range(n_ours)], dtype=np.int64)
    max_len = int(config["MAX_ITEM_LIST_LENGTH"])
    model.eval()
    ranks: list[np.ndarray] = []
    histories, targets = job["histories"], np.asarray(job["targets"], dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(histories), 256):
            part = histories[start : start + 256]
            seq = np.zeros((len(part), max_len), dtype=np.int64)
            lengths = np.zeros(len(part), dtype=np.int64)
            for row, h in enumerate(part):
                tail = internal_of_ours[np.asarray(h[-max_len:], dtype=np.int64)] if h else []
                seq[row, : len(tail)] = tail
                lengths[row] = max(len(tail), 1)
            inter = Interaction(
                {"item_id_list": torch.from_numpy(seq), "item_length": torch.from_numpy(lengths)}
            ).to(config["device"])
            scores = model.full_sort_predict(inter).cpu().numpy()  # (B, n_internal)
            ours = scores[:, internal_of_ours].astype(np.float32)  # (B, n_items) in our id order
            for row, h in enumerate(part):
                if h:
                    ours[row, np.asarray(h, dtype=np.int64)] = -np.inf
            t = ours[np.arange(len(part)), targets[start : start + len(part)]][:, None]
            r = (ours > t).sum(1) + (ours == t).sum(1) - 1
            r[~np.isfinite(t[:, 0])] = n_ours
            ranks.append(r)
    all_ranks = np.concatenate(ranks).astype(np.float64)
    out = {}
    for k in (10, 20):
        out[f"ndcg@{k}"] = float(np.where(all_ranks < k, 1.0 / np.log2(all_ranks + 2.0), 0.0).mean())
        out[f"hr@{k}"] = float((all_ranks < k).mean())
    return out


if __name__ == "__main__":
    main(sys.argv[1])
