"""Train and evaluate models on featurized data on a CUDA GPU, with the training core only.

For a session that is lent a GPU machine (none in CI). The GPU box has torch/transformers/numpy/pandas/
pyarrow but not the platform packages, so the data stages run here on the CPU first and their output
folder travels with the run:

    # on the CPU machine: build the features (the same split the CPU benchmarks use)
    SESSIONFLOW_DATA_MIRROR=../shared/datasets .venv/bin/sessionflow featurize \
        --dataset-spec specs/amazon-beauty.yaml --params benchmarks/beauty.yaml
    SESSIONFLOW_DATA_MIRROR=../shared/datasets .venv/bin/sessionflow featurize --dataset ml-latest-small \
        --params benchmarks/ml-latest-small.yaml
    # on the GPU machine (carry data/processed): all-in-one, a few minutes
    bash benchmarks/gpu.sh

Records per model: device name, test NDCG@10/HR@10, epochs, epochs per second (training only), seconds
to the best validation NDCG (training time up to the kept epoch), peak GPU memory (max allocated), the
whole fit wall-clock; also runs the ``gpu`` test marker first (CUDA path: bf16 autocast + compile).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch
    import yaml

    from components.config import EvaluateConfig, TrainConfig
    from components.features import load_features
    from components.train import train_and_evaluate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True, help="a featurized folder (data/processed/<name>/features)")
    ap.add_argument("--params", help="settings file whose train/evaluate sections apply")
    ap.add_argument("--models", default="sasrec")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--output", required=True)
    ap.add_argument("--label", default="", help="a name for this settings variant in the output")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override one model parameter (YAML value), e.g. sasrec.hidden_size=128; repeatable",
    )
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here: this benchmark is for a GPU machine (see the module docstring)")
    raw = yaml.safe_load(Path(args.params).read_text()) if args.params else {}
    train_raw = {**raw.get("train", {}), "device": args.device}
    model_params = {k: dict(v) for k, v in (train_raw.get("model_params") or {}).items()}
    for item in args.set:
        key, _, value = item.partition("=")
        model, _, param = key.partition(".")
        if not (model and param and value):
            sys.exit(f"--set {item!r}: expected MODEL.KEY=VALUE")
        model_params.setdefault(model, {})[param] = yaml.safe_load(value)
    train_cfg = TrainConfig.model_validate({**train_raw, "model_params": model_params})
    eval_cfg = EvaluateConfig.model_validate(raw.get("evaluate", {}))
    fs = load_features(args.features)
    out = {
        "features": args.features,
        "label": args.label,
        "model_params": model_params,
        "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "n_items": len(fs.vocab),
        "n_test_cases": len(fs.test.targets),
        "models": {},
    }
    trained: dict = {}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        # the hybrid fuses members trained earlier in this run (only its weights are fitted then)
        wanted = model_params.get("hybrid", {}).get("members", [])
        members = (
            [trained[m] for m in wanted] if name == "hybrid" and all(m in trained for m in wanted) else None
        )
        cand = train_and_evaluate(name, fs, train_cfg, eval_cfg, members=members or None)
        trained[name] = cand.model
        wall = time.perf_counter() - t0
        seconds = cand.report.info.get("epoch_seconds", [])
        best = cand.report.best_epoch or len(seconds)
        out["models"][name] = {
            "ndcg@10": cand.metrics["ndcg@10"],
            "valid_ndcg@10": cand.valid_metrics.get("ndcg@10"),
            "hr@10": cand.metrics["hr@10"],
            "epochs": cand.report.epochs,
            "best_epoch": cand.report.best_epoch,
            "epochs_per_second": round(len(seconds) / sum(seconds), 3) if seconds else None,
            "seconds_to_best_valid": round(sum(seconds[:best]), 2) if seconds else None,
            "fit_seconds": round(cand.train_seconds, 2),
            "wall_seconds": round(wall, 2),
            "gpu_max_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if torch.cuda.is_available()
            else None,
            "valid_curve": cand.report.curves.get("valid_ndcg@10", []),
            "loss": cand.report.info.get("loss"),
            "device": cand.report.device,
        }
        print(name, json.dumps(out["models"][name]), flush=True)
        output.write_text(json.dumps(out, indent=2))  # after each model: a run cut short keeps what it did


if __name__ == "__main__":
    main()
