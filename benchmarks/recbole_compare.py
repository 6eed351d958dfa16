"""sessionflow SASRec next to RecBole 1.2.1's SASRec on the identical leave-one-out split, in one run.

    .venv/bin/python benchmarks/recbole_compare.py --dataset ml-100k --output results/recbole-ml100k.json
    .venv/bin/python benchmarks/recbole_compare.py --dataset-spec specs/amazon-beauty.yaml \
        --params benchmarks/beauty.yaml --epochs 10 --output results/recbole-beauty.json

1. installs RecBole 1.2.1 into its own virtual environment (``.venv-recbole``, from
   benchmarks/recbole-requirements.txt: numpy<2, pandas<2.3, setuptools<70) unless it is there;
2. prepares the data with sessionflow's own stages (ingest, validation, leave-one-out split, vocabulary);
3. trains sessionflow's SASRec (settings from ``--params``) and times it;
4. writes the SAME split as RecBole atomic benchmark files -- every prefix of every training sequence as
   a training row (RecBole's usual augmentation; it predicts the last item of each row), the validation
   and test cases as they are, item tokens = sessionflow's dense ids, histories cut to ``max_len`` -- and
   trains RecBole's SASRec with the same architecture and optimiser settings (layers, heads, width,
   feed-forward width, dropout, max_len, learning rate, full-softmax CE) in the RecBole venv;
5. ranks both models' test cases with the same evaluator (full catalogue, seen items excluded,
   pessimistic ties) and reports NDCG@10/HR@10, wall-clock fit time, seconds per epoch, epochs, the
   validation curve and peak RSS, plus RecBole's own numbers under its own protocol.

Without ``--epochs`` both train to early stopping on validation NDCG@10 under one rule, RecBole's default:
a validation point every epoch, stop after 10 without gain, keep the best. With ``--epochs N`` both run
exactly N epochs with a validation point every epoch. ``--reuse-recbole`` takes RecBole's result from an
earlier run whose job (split files, config, test cases) is identical. Run timing runs under an exclusive
lock on a shared machine: ``flock -x /tmp/sf-cpu.lock ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import load_settings  # noqa: E402
from sessionflow import stages  # noqa: E402
from sessionflow.benchmark import PeakMemory, prepare_data  # noqa: E402

REQUIREMENTS = ROOT / "benchmarks" / "recbole-requirements.txt"
RECBOLE_STOPPING_STEP = 10  # RecBole's default; sessionflow's SASRec gets the same rule in this comparison
RUNNER = ROOT / "benchmarks" / "recbole_runner.py"
TORCH = "torch==2.13.0"  # the project's torch (a CPU wheel here; pip picks the build for the machine)
RECBOLE_NO_DEPS = ["recbole==1.2.1", "thop==0.1.1.post2209072238"]  # their deps: recbole-requirements.txt
TORCH_DEPS = ["filelock", "typing-extensions>=4.10.0", "sympy>=1.13.3", "networkx>=2.5.1", "jinja2", "fsspec"]


def ensure_recbole(venv: Path) -> Path:
    """The RecBole venv's python, creating and installing it first when needed."""
    python = venv / "bin" / "python"
    probe = [
        str(python),
        "-c",
        "import recbole, sys, torch; sys.exit(recbole.__version__ != '1.2.1' or "
        f"torch.__version__.split('+')[0] != '{TORCH.split('==')[1]}')",
    ]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing RecBole 1.2.1 into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", TORCH], check=True)  # see recbole-requirements.txt
    subprocess.run([*pip, *TORCH_DEPS], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([*pip, "--no-deps", *RECBOLE_NO_DEPS], check=True)
    subprocess.run(probe, check=True)
    return python


def write_atomic(fs: Any, folder: Path, name: str, max_len: int) -> dict[str, int]:
    """The split as RecBole benchmark files <name>.{train,valid,test}.inter (tokens = dense ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def row(user: int, history: Any, target: int) -> str:
        return f"{user}\t{' '.join(str(int(i)) for i in history[-max_len:])}\t{int(target)}\n"

    counts = {}
    with open(folder / f"{name}.train.inter", "w") as f:
        f.write(header)
        n = 0
        for user, seq in enumerate(fs.train.sequences):
            for i in range(1, len(seq)):
                f.write(row(user, seq[:i], seq[i]))
                n += 1
        counts["train_rows"] = n
    for split in ("valid", "test"):
        data = getattr(fs, split)
        with open(folder / f"{name}.{split}.inter", "w") as f:
            f.write(header)
            kept = 0
            for user, (history, target) in enumerate(zip(data.histories, data.targets, strict=True)):
                if len(history):  # RecBole cannot take an empty history
                    f.write(row(user, history, target))
                    kept += 1
        counts[f"{split}_rows"] = kept
    return counts


def recbole_config(params: dict[str, Any], folder: Path, name: str, epochs: int | None, batch: int) -> dict:
    fixed_budget = epochs is not None
    return {
        "data_path": str(folder.parent),
        "dataset": name,
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": params["max_len"],
        "n_layers": params["num_layers"],
        "n_heads": params["num_heads"],
        "hidden_size": params["hidden_size"],
        "inner_size": params["ffn_mult"] * params["hidden_size"],
        "hidden_dropout_prob": params["dropout"],
        "attn_dropout_prob": 0.0,  # sessionflow has no attention-probability dropout
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "learning_rate": params["lr"],
        "weight_decay": params["weight_decay"],
        "train_batch_size": batch,
        "eval_batch_size": 1024,
        "epochs": epochs or 200,
        "stopping_step": (epochs + 1) if fixed_budget else RECBOLE_STOPPING_STEP,
        "eval_step": 1,
        "metrics": ["Hit", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
        "eval_args": {"order": "TO", "mode": "full", "group_by": "user"},
        "device": "cpu",
        "use_gpu": False,
        "seed": params["seed"],
        "reproducibility": True,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "checkpoint_dir": str(folder / "saved"),
        "log_wandb": False,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", help="built-in dataset (ml-100k, amazon-beauty, ...)")
    ap.add_argument("--dataset-spec", help="a dataset spec file instead")
    ap.add_argument("--params", default="params.yaml", help="settings file (train.model_params.sasrec)")
    ap.add_argument("--epochs", type=int, help="fixed epoch budget for both (default: early stopping)")
    ap.add_argument("--recbole-batch", type=int, default=2048, help="RecBole train_batch_size (its default)")
    ap.add_argument("--recbole-venv", default=str(ROOT / ".venv-recbole"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads for both")
    ap.add_argument("--skip-sessionflow", action="store_true", help="only run RecBole (debugging)")
    ap.add_argument(
        "--reuse-recbole",
        action="store_true",
        help="take RecBole's result from an earlier run when its job (split files, config, test cases) is "
        "identical to this run's, instead of training it again (an hour on ML-100K on one thread)",
    )
    ap.add_argument("--output", default="results/recbole.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import torch

    torch.set_num_threads(args.threads)
    python = ensure_recbole(Path(args.recbole_venv))
    overrides: dict[str, Any] = {"train.models": ["sasrec"], "features.text_embeddings": False}
    if args.dataset:
        overrides.update({"data.dataset": args.dataset, "data.dataset_spec": None})
    if args.dataset_spec:
        overrides["data.dataset_spec"] = str(Path(args.dataset_spec).resolve())
    settings = load_settings(
        ROOT / args.params if not Path(args.params).is_absolute() else args.params, overrides
    )
    sasrec = dict(settings.train.model_params.get("sasrec", {}))
    if args.epochs:
        sasrec.update(epochs=args.epochs, eval_every=1, patience=args.epochs + 1)
    else:  # RecBole's stopping rule (recbole_config): validation every epoch, stop after 10 without gain
        sasrec.update(eval_every=1, patience=RECBOLE_STOPPING_STEP)
    settings.train.model_params["sasrec"] = sasrec
    load_before = os.getloadavg()
    info = prepare_data(settings, ROOT)
    fs, _, _ = stages.load_stage_features(settings, ROOT)
    from components.train import model_params, train_and_evaluate
    from models import build_model

    params = build_model("sasrec", len(fs.vocab), model_params("sasrec", settings.train)).config.model_dump()
    out: dict[str, Any] = {
        "dataset": info["dataset"],
        "n_items": len(fs.vocab),
        "n_test_cases": len(fs.test.targets),
        "protocol": "leave-one-out, full ranking, seen items excluded, pessimistic ties (both libraries)",
        "budget": f"{args.epochs} epochs" if args.epochs else "early stopping on validation NDCG@10",
        "sasrec_params": params,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads},
    }
    if not args.skip_sessionflow:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            cand = train_and_evaluate("sasrec", fs, settings.train, settings.evaluate)
            wall = time.perf_counter() - t0
        seconds = cand.report.info.get("epoch_seconds", [])
        out["sessionflow"] = {
            "fit_seconds": round(cand.train_seconds, 2),
            "wall_seconds_with_test_eval": round(wall, 2),
            "epochs": cand.report.epochs,
            "best_epoch": cand.report.best_epoch,
            "seconds_per_epoch": round(float(np.mean(seconds)), 3) if seconds else None,
            "train_seconds_only": round(float(np.sum(seconds)), 2),
            "epoch_seconds": seconds,
            "valid_curve": cand.report.curves.get("valid_ndcg@10", []),
            "loss": cand.report.info.get("loss"),
            "test": {k: cand.metrics[k] for k in ("ndcg@10", "hr@10", "ndcg@20", "hr@20")},
            **mem.report(),
        }
        print(json.dumps({"sessionflow": out["sessionflow"]["test"]}), flush=True)
    folder = ROOT / "results" / "recbole" / f"sf_{info['dataset'].replace('-', '_')}"
    name = folder.name
    out["recbole_files"] = write_atomic(fs, folder, name, params["max_len"])
    cases = [(h.tolist(), int(t)) for h, t in zip(fs.test.histories, fs.test.targets, strict=True) if len(h)]
    job = {
        "dataset": name,
        "config": recbole_config(params, folder, name, args.epochs, args.recbole_batch),
        "histories": [h for h, _ in cases],
        "targets": [t for _, t in cases],
        "n_items": len(fs.vocab),
        "threads": args.threads,
        "output": str(folder / "result.json"),
    }
    job_file, result_file = folder / "job.json", folder / "result.json"
    reuse = (
        args.reuse_recbole
        and result_file.is_file()
        and job_file.is_file()
        and json.loads(job_file.read_text()) == job
        and result_file.stat().st_mtime > job_file.stat().st_mtime
    )
    if reuse:
        out["recbole"] = json.loads(result_file.read_text())
        out["recbole"]["reused_from_run_finished"] = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(result_file.stat().st_mtime)
        )
        print(f"RecBole: the identical job ran before; its result is reused ({result_file})", flush=True)
    else:
        if args.reuse_recbole:
            print("RecBole: no identical earlier job; training it now", flush=True)
        job_file.write_text(json.dumps(job))
        t0 = time.perf_counter()
        subprocess.run([str(python), str(RUNNER), str(job_file)], check=True, cwd=folder)
        out["recbole"] = json.loads(result_file.read_text())
        out["recbole"]["process_seconds"] = round(time.perf_counter() - t0, 2)
    out["load_average"] = {"before": load_before, "after": os.getloadavg()}
    if "sessionflow" in out:
        sf, rb = out["sessionflow"], out["recbole"]
        out["time_ratio_fit"] = round(sf["fit_seconds"] / rb["fit_seconds"], 4)
        if sf["seconds_per_epoch"] and rb["seconds_per_epoch"]:
            out["time_ratio_per_epoch"] = round(sf["seconds_per_epoch"] / rb["seconds_per_epoch"], 4)
        out["ndcg_at_10_diff"] = round(sf["test"]["ndcg@10"] - rb["test"]["ndcg@10"], 5)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print_table(out)


def print_table(out: dict[str, Any]) -> None:
    print(f"\n{out['dataset']} ({out['budget']}; {out['protocol']})")
    print("| library | NDCG@10 | HR@10 | fit s | s/epoch | epochs | best epoch | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for lib in ("sessionflow", "recbole"):
        if lib in out:
            r = out[lib]
            test = r["test"]
            print(
                f"| {lib} SASRec | {test['ndcg@10']:.4f} | {test['hr@10']:.4f} | {r['fit_seconds']:.1f} "
                f"| {r['seconds_per_epoch']} | {r['epochs']} | {r['best_epoch']} | {r['peak_rss_mb']} |"
            )
    if "time_ratio_fit" in out:
        ratio = out.get("time_ratio_per_epoch")
        print(f"time ratio (sessionflow / RecBole): fit {out['time_ratio_fit']}, per epoch {ratio}")


if __name__ == "__main__":
    main()
