"""Training and evaluating one candidate: the core step both the Prefect flow and the benchmark call.

Pure: torch/transformers/numpy/pandas only (no tracking, no orchestration), so it runs on a GPU box.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.bundle import save_bundle
from components.config import EvaluateConfig, TrainConfig
from components.evaluate import evaluate, protocol
from components.facets import CatalogueSpec
from components.features import FeatureSet
from components.monitoring import REFERENCE_FILE, reference_profile
from models import FitReport, Recommender, build_model, model_class
from models.base import EpochCallback
from models.hybrid import Hybrid, HybridConfig, member_model


@dataclass
class TrainedCandidate:
    name: str
    model: Recommender
    report: FitReport
    train_seconds: float
    metrics: dict[str, float]
    valid_metrics: dict[str, float]
    params: dict[str, Any]


def model_params(name: str, cfg: TrainConfig) -> dict[str, Any]:
    """The model's config overrides from params.yaml, plus the stage-wide device when the model has one
    (for a hybrid: its members' overrides and device too, unless it names its own)."""
    params = dict(cfg.model_params.get(name, {}))
    if "device" in model_class(name).config_cls.model_fields and "device" not in params:
        params["device"] = cfg.device
    if name == Hybrid.name:
        members = params.get("members", HybridConfig().members)
        given = params.get("member_params", {})
        params["member_params"] = {
            m: {**model_params(member_model(m), cfg), **given.get(m, {})}
            if m != member_model(m)  # an alias: its model's overrides, then its own
            else given.get(m, model_params(m, cfg))
            for m in members
            if m != name
        }
    return params


def train_and_evaluate(
    name: str,
    fs: FeatureSet,
    train_cfg: TrainConfig,
    eval_cfg: EvaluateConfig,
    on_epoch: EpochCallback | None = None,
    members: Mapping[str, Recommender] | None = None,
    params: dict[str, Any] | None = None,
) -> TrainedCandidate:
    """Fit ``name`` on the training split (validation drives early stopping), evaluate on test.

    ``params`` replaces the model's overrides from ``train_cfg`` (hyperparameter search). For the hybrid,
    ``members`` are already trained members to fuse, by member name (the hybrid trains the ones missing,
    then fits the weights); without them the hybrid trains all its members itself.
    """
    params = model_params(name, train_cfg) if params is None else params
    if name == Hybrid.name and members is not None:
        model: Recommender = Hybrid.from_members(members, HybridConfig.model_validate(params))
    else:
        model = build_model(name, len(fs.vocab), params)
    t0 = time.perf_counter()
    report = model.fit(fs.train, fs.valid if len(fs.valid.targets) else None, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    metrics = evaluate(model, fs.test, eval_cfg, fs.item_popularity)
    valid_metrics = (
        evaluate(model, fs.valid, eval_cfg, fs.item_popularity, latency_samples=0)
        if len(fs.valid.targets)
        else {}
    )
    return TrainedCandidate(name, model, report, seconds, metrics, valid_metrics, model.config.model_dump())


def write_bundle(
    candidate: TrainedCandidate,
    fs: FeatureSet,
    items: pd.DataFrame,
    directory: str | Path,
    data_hash: str,
    eval_cfg: EvaluateConfig,
    split: str,
    catalogue: CatalogueSpec | None = None,
    prior: np.ndarray | None = None,
    lineage: dict[str, Any] | None = None,
    audience: np.ndarray | None = None,
) -> Path:
    """The candidate's bundle (components/bundle.py) with its lineage and monitoring reference profile."""
    meta = {
        "data_hash": data_hash,
        "lineage": lineage or {"data": {"data_hash": data_hash}},
        "protocol": protocol(eval_cfg, split),
        "metrics": candidate.metrics,
        "train_seconds": candidate.train_seconds,
        "epochs": candidate.report.epochs,
        "best_epoch": candidate.report.best_epoch,
        "fit_info": candidate.report.info,
        "device": candidate.report.device,
        "sequence_key": fs.sequence_key,
        "params": candidate.params,
    }
    bundle = save_bundle(directory, candidate.model, fs.vocab, items, meta, catalogue, prior, audience)
    primary = eval_cfg.primary_metric
    k = int(primary.split("@")[1]) if "@" in primary else 10
    reference = reference_profile(candidate.model, fs.test, fs.item_popularity, k=k)
    (bundle / REFERENCE_FILE).write_text(json.dumps(reference))
    return bundle
