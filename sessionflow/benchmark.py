"""Benchmark and plain training runs (no tracking server, no orchestration): data stages then candidates.

Needs only the training core plus Great Expectations for the validation stage.
"""

from __future__ import annotations

import json
import platform
import threading
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from components.config import Settings
from sessionflow import stages


def prepare_data(settings: Settings, root: Path) -> dict[str, Any]:
    """pull -> ingest -> validate -> featurize; returns ingest and feature stats (plain JSON values)."""
    stages.run_pull(settings, root)
    info = stages.run_ingest(settings, root).model_dump(mode="json")
    stages.run_validate(settings, root)
    info["features"] = stages.run_featurize(settings, root).model_dump(mode="json")
    return info


class PeakMemory:
    """Peak resident memory of this process while the block runs (a sampling thread, every 20 ms), and
    the peak allocated GPU memory on CUDA. ``peak_rss_mb`` is the process peak; ``delta_rss_mb`` the peak
    above the RSS at the start of the block (what the model's training added)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        import psutil
        import torch

        proc = psutil.Process()
        self.start = self.peak = proc.memory_info().rss
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, proc.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, psutil.Process().memory_info().rss)

    def report(self) -> dict[str, float]:
        import torch

        out = {
            "peak_rss_mb": round(self.peak / 2**20, 1),
            "delta_rss_mb": round((self.peak - self.start) / 2**20, 1),
        }
        if torch.cuda.is_available():
            out["gpu_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out


REPEAT_IGNORED = ("latency_p50_ms", "latency_p95_ms")  # wall-clock, not a model output


def run_candidates(
    settings: Settings, root: Path, bundles_dir: Path | None = None, repeat: int = 1
) -> dict[str, dict[str, Any]]:
    """Train + evaluate each model of settings.train.models on the featurized data, one after another.

    With ``repeat`` > 1 each model is trained that many times with the same seed and the result says
    whether every metric came out identical (``repeat_identical``).
    """
    from components.train import model_params, train_and_evaluate, write_bundle

    fs, items, data_hash = stages.load_stage_features(settings, root)
    results: dict[str, dict[str, Any]] = {}
    trained: dict[str, Any] = {}  # models trained so far: a hybrid reuses its members
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ) as progress:
        overall = progress.add_task("models", total=len(settings.train.models))
        for name in settings.train.models:
            epochs = progress.add_task(f"  {name} epochs", total=None)

            def on_epoch(epoch: int, values: dict[str, float], _task=epochs, _name=name) -> None:
                progress.update(
                    _task,
                    completed=epoch,
                    description=f"  {_name} " + " ".join(f"{k}={v:.4f}" for k, v in values.items()),
                )

            members = None
            if name == "hybrid":
                wanted = model_params(name, settings.train)["members"]
                members = {m: trained[m] for m in wanted if m in trained} or None
            runs = []
            for _ in range(repeat):
                with PeakMemory() as memory:
                    cand = train_and_evaluate(
                        name, fs, settings.train, settings.evaluate, on_epoch=on_epoch, members=members
                    )
                runs.append((cand, memory.report()))
            cand, mem = runs[0]
            trained[name] = cand.model
            if bundles_dir is not None:
                catalogue = stages.dataset_spec(settings, root).catalogue
                write_bundle(
                    cand, fs, items, bundles_dir / name, data_hash, settings.evaluate,
                    settings.features.split, catalogue, stages.trending_prior(settings, root),
                    audience=stages.item_audience(settings, root),
                )  # fmt: skip
            epoch_seconds = cand.report.info.get("epoch_seconds") or []
            results[name] = {
                **{k: v for k, v in cand.metrics.items()},
                **{f"valid/{k}": v for k, v in cand.valid_metrics.items() if "latency" not in k},
                "train_seconds": round(cand.train_seconds, 3),
                "epochs": cand.report.epochs,
                "best_epoch": cand.report.best_epoch,
                "seconds_per_epoch": round(sum(epoch_seconds) / len(epoch_seconds), 3)
                if epoch_seconds
                else None,
                "valid_curve": cand.report.curves.get("valid_ndcg@10", []),
                "fit_info": {k: v for k, v in cand.report.info.items() if k != "epoch_seconds"},
                "device": cand.report.device,
                **mem,
                "n_users": int(fs.stats.get("n_sequences", 0)),
                "n_items": len(fs.vocab),
                "n_test_cases": len(fs.test.targets),
                "params": cand.params,
            }
            if repeat > 1:
                first = {k: v for k, v in runs[0][0].metrics.items() if k not in REPEAT_IGNORED}
                results[name]["repeat_identical"] = all(
                    {k: v for k, v in c.metrics.items() if k not in REPEAT_IGNORED} == first
                    for c, _ in runs[1:]
                )
            progress.advance(overall)
    return results


def benchmark(settings: Settings, root: Path, repeat: int = 1) -> dict[str, Any]:
    import os

    load_before = os.getloadavg()
    info = prepare_data(settings, root)
    results = run_candidates(settings, root, repeat=repeat)
    return {
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "dataset": info["dataset"],
        "data_hash": info["data_hash"],
        "protocol": {
            "split": settings.features.split,
            "ranking": "full",
            "ks": settings.evaluate.ks,
            "exclude_seen": settings.evaluate.exclude_seen,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            **_torch_info(),
        },
        "settings": json.loads(json.dumps(settings.model_dump(mode="json", by_alias=True))),
        "models": results,
    }


def _torch_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
