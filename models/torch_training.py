"""Shared torch machinery of the sequence models: device, padding, training loop, scoring, persistence.

``TorchRecommender`` owns everything SASRec and BERT4Rec have in common, so a model file only says how
its training windows look, what its batch loss is and how a padded history becomes catalogue logits.

Conventions: item ids are shifted by +1 inside the networks (``0`` = padding); sequences are
left-padded to a fixed length so the most recent item always sits at the last position. On CUDA the
forward passes run under bf16 autocast; the final catalogue projection of ``score`` runs in float32.
"""

from __future__ import annotations

import contextlib
import math
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from models.base import EpochCallback, EvalData, FitReport, ModelConfig, Recommender, TrainData, set_seed
from models.inputs import as_histories, check_train_data
from models.popularity import item_counts
from models.validation import VALID_METRIC, valid_ndcg

WEIGHTS_FILE = "weights.pt"
PAD = 0  # padding id inside the networks; real items are shifted to 1 .. n_items


class TorchTrainingConfig(ModelConfig):
    """Training fields shared by the torch models; each model's config adds its architecture."""

    max_len: int = Field(50, ge=2, description="Most recent items a history is cut to (sequence length).")
    lr: float = Field(3e-3, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW decoupled weight decay.")
    batch_size: int = Field(128, ge=1, description="Training windows per optimisation step.")
    epochs: int = Field(200, ge=1, description="Maximum passes over the training windows.")
    eval_every: int = Field(
        2, ge=1, description="Evaluate validation NDCG@10 every this many epochs (and after the last)."
    )
    patience: int = Field(
        3,
        ge=1,
        description="Stop after this many validation evaluations without a better NDCG@10; "
        "the best weights are kept.",
    )
    exclude_seen_in_valid: bool = Field(
        True, description="Rank validation targets among items not in the history (full-ranking protocol)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA when available, else CPU. CUDA runs bf16 autocast."
    )
    score_batch_size: int = Field(512, ge=1, description="Histories per forward pass in score().")


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's ``device`` field."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def pad_left(sequences: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Last ``length`` items of each sequence, shifted by +1 and left-padded with 0. -> (N, length) int64."""
    out = np.full((len(sequences), length), PAD, dtype=np.int64)  # (N, T)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq, dtype=np.int64)[-length:] if length else seq[:0]
        if len(tail):
            out[row, length - len(tail) :] = tail + 1
    return out


def chunks_from_end(sequence: np.ndarray, size: int, stride: int) -> list[np.ndarray]:
    """Windows of at most ``size`` items ending at the sequence end, then every ``stride`` items earlier."""
    return [sequence[max(0, end - size) : end] for end in range(len(sequence), 0, -stride)]


class TorchRecommender(Recommender):
    """A Recommender backed by an ``nn.Module`` trained with AdamW and validation early stopping."""

    config: TorchTrainingConfig

    def __init__(self, config: ModelConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        set_seed(self.config.seed)
        self.device = resolve_device(self.config.device)
        self.net = self._build_net().to(self.device)
        # Training item counts: the scores of an empty history. Part of the state dict, so saved.
        self.net.register_buffer("item_counts", torch.zeros(n_items, device=self.device))
        self.net.eval()

    # ---- what a model file provides -------------------------------------------------------------
    @abstractmethod
    def _build_net(self) -> nn.Module:
        """The network, freshly initialised from ``self.config`` and ``self.n_items``."""

    @abstractmethod
    def _training_windows(self, sequences: list[np.ndarray]) -> np.ndarray:
        """All training windows as one padded, id-shifted array (N, W) int64."""

    @abstractmethod
    def _batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Mean loss of one batch of windows (B, W) on the device; called in train mode under autocast."""

    @abstractmethod
    def _history_logits(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Catalogue logits (B, n_items) of non-empty histories; called in eval mode, inference mode."""

    # ---- shared behaviour -----------------------------------------------------------------------
    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        cfg = self.config
        sequences = check_train_data(self, train)
        set_seed(cfg.seed)
        self.net.get_buffer("item_counts").copy_(torch.from_numpy(item_counts(sequences, self.n_items)))
        windows = torch.from_numpy(self._training_windows(sequences)).to(self.device)  # (N, W)
        if len(windows) == 0:
            raise ValueError(f"{self.name}: no training sequence is long enough to learn from")
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        report = FitReport(device=str(self.device), curves={"loss": []})
        best, best_state, stale = -math.inf, None, 0
        for epoch in range(1, cfg.epochs + 1):
            metrics = {"loss": self._train_epoch(windows, optimizer, epoch)}
            if valid is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                metrics[VALID_METRIC] = valid_ndcg(
                    self.score, valid, exclude_history=cfg.exclude_seen_in_valid
                )
                report.curves.setdefault(VALID_METRIC, []).append(metrics[VALID_METRIC])
                if metrics[VALID_METRIC] > best:
                    best, stale = metrics[VALID_METRIC], 0
                    best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                else:
                    stale += 1
            report.curves["loss"].append(metrics["loss"])
            report.epochs = epoch
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if stale >= cfg.patience:
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        return report

    def _train_epoch(self, windows: torch.Tensor, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        self.net.train()
        order = torch.randperm(len(windows)).to(self.device)  # (N,)
        total = torch.zeros((), device=self.device)
        for start in range(0, len(windows), self.config.batch_size):
            batch = windows[order[start : start + self.config.batch_size]]  # (B, W)
            with autocast_for(self.device):
                loss = self._batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().float() * len(batch)
        mean = float(total) / len(windows)
        if not math.isfinite(mean):
            raise FloatingPointError(
                f"{self.name}: training loss became {mean} in epoch {epoch}; lower lr or check the data"
            )
        return mean

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        hist = as_histories(histories, self.n_items)
        counts = self.net.get_buffer("item_counts").float().cpu().numpy()  # (n_items,)
        out = np.tile(counts, (len(hist), 1))  # (B, n_items): empty histories keep the popularity scores
        nonempty = [row for row, h in enumerate(hist) if len(h)]
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(nonempty), self.config.score_batch_size):
                rows = nonempty[start : start + self.config.score_batch_size]
                logits = self._history_logits([hist[r] for r in rows])  # (b, n_items)
                out[rows] = logits.float().cpu().numpy()
        return out

    def _save_state(self, directory: Path) -> None:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        torch.save(state, directory / WEIGHTS_FILE)

    def _load_state(self, directory: Path) -> None:
        state = torch.load(directory / WEIGHTS_FILE, map_location=self.device, weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()


def catalogue_logits(hidden: torch.Tensor, item_embeddings: torch.Tensor, n_items: int) -> torch.Tensor:
    """Tied-weight logits over the real items: hidden (N, D) @ E[1:n_items+1].T -> (N, n_items)."""
    return hidden @ item_embeddings[1 : n_items + 1].T
