"""Hybrid: a weighted fusion of member models (a sequence model with item-kNN / EASE), weights fitted on
validation.

Each member's scores are standardised per history over the catalogue (z-scores), then summed with
weights ``w`` on the simplex; ``w`` is the grid point (step ``1 / grid_steps``) with the best validation
NDCG@10 (seen items excluded, as in the protocol). Members are trained by ``fit`` itself or handed in
already trained (``Hybrid.from_members``: the pipeline reuses its candidates instead of training them
twice; members it is not handed are still trained by ``fit``). A member is a registered model name or an
alias of one, ``name#tag`` ("sasrec#2"): the same model trained again with its own overrides in
``member_params`` (another seed makes a seed ensemble). A saved hybrid holds its members' directories and
the weights.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
from pydantic import Field

from models.base import EpochCallback, EvalData, FitReport, History, ModelConfig, Recommender, TrainData
from models.inputs import as_histories
from models.validation import VALID_K, VALID_METRIC, check_pairs, exclude_seen

WEIGHTS_FILE = "fusion.json"


class HybridConfig(ModelConfig):
    members: list[str] = Field(
        default_factory=lambda: ["sasrec", "itemknn"],
        min_length=2,
        max_length=4,
        description="Registered model names to fuse (2-4, no hybrid); 'name#tag' trains 'name' again with "
        "the overrides member_params['name#tag'] (e.g. another seed).",
    )
    member_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Config overrides per member name (as train.model_params)."
    )
    grid_steps: int = Field(
        10, ge=1, le=50, description="Weight grid resolution: weights are multiples of 1/steps."
    )
    max_fit_cases: int = Field(
        5000, ge=1, description="Validation cases used to fit the weights (a seeded sample when more)."
    )


def member_model(member: str) -> str:
    """The registered model a member names: itself, or the part before '#' of an alias ("sasrec#2")."""
    return member.split("#", 1)[0]


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the catalogue. (B, n_items) -> (B, n_items) float32."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return ((scores - mean) / np.maximum(std, 1e-12)).astype(np.float32)


def simplex_grid(n_members: int, steps: int) -> np.ndarray:
    """All weight vectors with entries in {0, 1/steps, ..., 1} summing to 1. -> (G, n_members)."""
    points = [c for c in itertools.product(range(steps + 1), repeat=n_members) if sum(c) == steps]
    return np.asarray(points, dtype=np.float64) / steps


class Hybrid(Recommender):
    name: ClassVar[str] = "hybrid"
    config_cls: ClassVar[type[ModelConfig]] = HybridConfig
    config: HybridConfig

    def __init__(self, config: ModelConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        if any(member_model(m) == self.name for m in self.config.members):
            raise ValueError("hybrid: a hybrid cannot be its own member")
        if len(set(self.config.members)) != len(self.config.members):
            raise ValueError(
                f"hybrid: members repeat {self.config.members}; name a second one 'name#tag' with its own "
                "member_params"
            )
        self.members: list[Recommender] = []
        self.weights = np.full(len(self.config.members), 1.0 / len(self.config.members))
        self._given: dict[str, Recommender] = {}  # already trained members, by member name
        self._prefitted = False

    @classmethod
    def from_members(
        cls, members: Sequence[Recommender] | Mapping[str, Recommender], config: HybridConfig | None = None
    ) -> Hybrid:
        """A hybrid over already trained members: a list (the members are exactly these, named by their
        model) or a mapping member name -> model, which may hold only some of ``config.members`` (``fit``
        trains the others). ``fit`` only fits the weights when every member is given."""
        if isinstance(members, Mapping):
            given = dict(members)
            cfg = config or HybridConfig(members=list(given))
            unknown = sorted(set(given) - set(cfg.members))
            if unknown:
                raise ValueError(f"hybrid: given members {unknown} are not among {cfg.members}")
        else:
            given = {m.name: m for m in members}
            if len(given) != len(members):
                raise ValueError("hybrid: two members of one model need a mapping with 'name#tag' names")
            cfg = (config or HybridConfig(members=list(given))).model_copy(update={"members": list(given)})
        sizes = {m.n_items for m in given.values()}
        if len(sizes) != 1:
            raise ValueError(f"hybrid: members disagree on the catalogue size: {sorted(sizes)}")
        model = cls(cfg, sizes.pop())
        model._given = given
        model._prefitted = len(given) == len(cfg.members)
        if model._prefitted:
            model.members = [given[m] for m in cfg.members]
        return model

    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        report = FitReport(epochs=1, device="cpu")
        if not self._prefitted:
            from models import build_model  # the registry imports this module

            self.members = []
            for name in self.config.members:
                member = self._given.get(name)
                if member is None:
                    params = self.config.member_params.get(name, {})
                    member = build_model(member_model(name), self.n_items, params)
                    member_report = member.fit(train, valid)  # validation: members' early stopping
                    report.info[f"{name}_epochs"] = member_report.epochs
                self.members.append(member)
        metrics: dict[str, float] = {}
        if valid is not None and len(valid.targets):
            check_pairs(valid)
            best, curve = self._fit_weights(valid)
            metrics[VALID_METRIC] = best
            report.curves[VALID_METRIC] = [best]
            report.best_epoch = 1
            report.info["weight_grid_ndcg"] = curve
        else:  # nothing to fit on: equal weights, and the report says so
            self.weights = np.full(len(self.members), 1.0 / len(self.members))
        report.info["weights_fitted_on_validation"] = VALID_METRIC in metrics
        report.info["weights"] = dict(zip(self.config.members, self.weights.round(4).tolist(), strict=True))
        if on_epoch is not None:
            on_epoch(1, metrics)
        return report

    def _fit_weights(self, valid: EvalData) -> tuple[float, list[float]]:
        n = len(valid.targets)
        rows = np.arange(n)
        if n > self.config.max_fit_cases:
            rows = np.sort(
                np.random.default_rng(self.config.seed).choice(n, self.config.max_fit_cases, False)
            )
        grid = simplex_grid(len(self.members), self.config.grid_steps)  # (G, M)
        gains = np.zeros(len(grid))
        for start in range(0, len(rows), 256):
            idx = rows[start : start + 256]
            histories = [valid.histories[i] for i in idx]
            targets = np.asarray(valid.targets)[idx]
            z = self._member_scores(histories)  # (M, B, n_items)
            for g, w in enumerate(grid):
                fused = exclude_seen(np.tensordot(w, z, axes=1), histories)  # (B, n_items)
                t = fused[np.arange(len(idx)), targets][:, None]
                ranks = (fused > t).sum(1) + (fused == t).sum(1) - 1
                ranks[~np.isfinite(t[:, 0])] = self.n_items
                gains[g] += np.where(ranks < VALID_K, 1.0 / np.log2(ranks + 2.0), 0.0).sum()
        ndcg = gains / len(rows)
        self.weights = grid[int(np.argmax(ndcg))]
        return float(ndcg.max()), ndcg.round(5).tolist()

    def _member_scores(self, histories: Sequence[History], which: Sequence[int] | None = None) -> np.ndarray:
        """Standardised scores of the members ``which`` (all by default). -> (M, B, n_items)."""
        members = self.members if which is None else [self.members[i] for i in which]
        return np.stack(
            [
                standardise(np.asarray(m.score(cast(Sequence[Sequence[int]], histories)), np.float32))
                for m in members
            ]
        )

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        hist = as_histories(histories, self.n_items)
        if not self.members:
            return np.zeros((len(hist), self.n_items), dtype=np.float32)
        used = np.flatnonzero(self.weights)  # a member fitted to weight 0 is not scored at all
        z = self._member_scores(hist, used)  # (M', B, n_items)
        return np.tensordot(self.weights[used], z, axes=1).astype(np.float32)  # (B, n_items)

    def _save_state(self, directory: Path) -> None:
        for i, member in enumerate(self.members):
            member.save(directory / f"member_{i}_{member.name}")
        state = {"weights": self.weights.tolist(), "members": [m.name for m in self.members]}
        (directory / WEIGHTS_FILE).write_text(json.dumps(state))

    def _load_state(self, directory: Path) -> None:
        from models import load_model

        state = json.loads((directory / WEIGHTS_FILE).read_text())
        self.members = [load_model(directory / f"member_{i}_{n}") for i, n in enumerate(state["members"])]
        self.weights = np.asarray(state["weights"], dtype=np.float64)
        self._prefitted = True
