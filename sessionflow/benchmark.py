"""Benchmark and plain training runs (no tracking server, no orchestration): data stages then candidates.

Needs only the training core plus Great Expectations for the validation stage.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from components.config import Settings
from sessionflow import stages


def prepare_data(settings: Settings, root: Path) -> dict[str, Any]:
    """pull -> ingest -> validate -> featurize; returns ingest and feature stats."""
    stages.run_pull(settings, root)
    info = stages.run_ingest(settings, root)
    stages.run_validate(settings, root)
    info["features"] = stages.run_featurize(settings, root)
    return info


def run_candidates(
    settings: Settings, root: Path, bundles_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Train + evaluate each model of settings.train.models on the featurized data."""
    from components.train import train_and_evaluate, write_bundle

    fs, items, data_hash = stages.load_stage_features(settings, root)
    results: dict[str, dict[str, Any]] = {}
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

            cand = train_and_evaluate(name, fs, settings.train, settings.evaluate, on_epoch=on_epoch)
            if bundles_dir is not None:
                write_bundle(
                    cand, fs, items, bundles_dir / name, data_hash, settings.evaluate, settings.features.split
                )
            results[name] = {
                **{k: v for k, v in cand.metrics.items()},
                "train_seconds": round(cand.train_seconds, 3),
                "epochs": cand.report.epochs,
                "device": cand.report.device,
                "n_users": int(fs.stats.get("n_sequences", 0)),
                "n_items": len(fs.vocab),
                "n_test_cases": len(fs.test.targets),
            }
            progress.advance(overall)
    return results


def benchmark(settings: Settings, root: Path) -> dict[str, Any]:
    info = prepare_data(settings, root)
    results = run_candidates(settings, root)
    return {
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
