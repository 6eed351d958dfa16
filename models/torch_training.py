"""Shared torch machinery of the sequence models: device, padding, the training loop, ranking, persistence.

``TorchRecommender`` owns everything SASRec, BERT4Rec and TextSASRec have in common, so a model file only
says how its training windows look, which hidden states predict which targets, and how a padded history
becomes a catalogue query vector.

The loop:
- its own ``torch.Generator`` per model (weights, shuffling, dropout, masking, negatives): a seeded run
  repeats to the last digit on CPU, also while other models train in other threads;
- AdamW (fused where the build supports it), linear warm-up then cosine decay, gradient clipping;
- the catalogue loss picked by ``loss`` (``auto``: exact chunked full-softmax CE up to
  ``full_softmax_max_items`` items, sampled softmax above; see models/losses.py);
- on CUDA: bf16 autocast and ``torch.compile`` of the network; validation ranking and top-K stay on the
  device (only ranks and top-K ids come back to the host).

Conventions: item ids are shifted by +1 inside the networks (``0`` = padding); sequences are
right-padded, so causal attention never needs a padding mask.
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from models.base import EpochCallback, EvalData, FitReport, History, ModelConfig, Recommender, TrainData
from models.inputs import as_histories, check_train_data
from models.losses import chunked_cross_entropy, gbce_loss, sampled_softmax_loss
from models.popularity import item_counts
from models.transformer import init_weights, set_dropout_generator
from models.validation import VALID_K, VALID_METRIC, ndcg_from_ranks

WEIGHTS_FILE = "weights.pt"
PAD = 0  # padding id inside the networks; real items are shifted to 1 .. n_items
LossName = Literal["auto", "full", "sampled", "gbce"]


class TorchTrainingConfig(ModelConfig):
    """Training fields shared by the torch models; each model's config adds its architecture."""

    max_len: int = Field(50, ge=2, description="Most recent items a history is cut to (sequence length).")
    window_stride: int | None = Field(
        None,
        ge=1,
        description="Training windows start every this many items from the sequence end (None = max_len: "
        "no overlap). A smaller stride repeats long sequences in shifted windows (more training examples "
        "where there are few users with long histories).",
    )
    lr: float = Field(2e-3, gt=0.0, description="Peak AdamW learning rate (after warm-up).")
    weight_decay: float = Field(
        0.0, ge=0.0, description="AdamW decoupled weight decay on matrices (not biases/LayerNorms)."
    )
    batch_size: int = Field(128, ge=1, description="Training windows per optimisation step.")
    epochs: int = Field(200, ge=1, description="Maximum passes over the training windows.")
    max_train_seconds: float | None = Field(
        None,
        gt=0.0,
        description="Wall-clock budget for fit(): after the first epoch the epoch count is cut to what fits "
        "(the LR schedule is re-planned to end there) and training stops once the budget is spent. The "
        "number of epochs then depends on the machine's speed: seeded runs repeat exactly only without it.",
    )
    warmup_fraction: float = Field(
        0.02, ge=0.0, lt=1.0, description="Share of the maximum steps spent warming the LR up linearly."
    )
    min_lr_ratio: float = Field(
        0.05, ge=0.0, le=1.0, description="Cosine decay ends at this fraction of the peak LR."
    )
    grad_clip: float = Field(1.0, ge=0.0, description="Clip the global gradient norm to this (0 = off).")
    loss: LossName = Field(
        "auto",
        description="full: exact full-softmax CE, chunked so (positions x catalogue) logits never exist "
        "whole; sampled: softmax over the positive + num_negatives shared uniform negatives; gbce: gSASRec's "
        "generalised BCE; auto: full up to full_softmax_max_items items, sampled above.",
    )
    full_softmax_max_items: int = Field(
        4096, ge=1, description="loss=auto: largest catalogue trained with exact full softmax on the CPU."
    )
    full_softmax_max_items_cuda: int = Field(
        262_144,
        ge=1,
        description="loss=auto on CUDA: largest catalogue trained with exact full softmax (the chunked "
        "logits are cheap there, and full softmax is the most accurate loss).",
    )
    num_negatives: int = Field(
        512, ge=1, description="Negatives per batch for the sampled-softmax and gBCE losses."
    )
    gbce_t: float = Field(0.75, ge=0.0, le=1.0, description="gBCE calibration t (1 = full-softmax-like).")
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
    compile: bool = Field(True, description="torch.compile the network when training on CUDA (never on CPU).")
    amp: bool = Field(True, description="bf16 autocast when training and scoring on CUDA (never on CPU).")
    score_batch_size: int = Field(512, ge=1, description="Histories per forward pass in score()/ranking.")


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's ``device`` field."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_loss(cfg: TorchTrainingConfig, n_items: int, device: str = "cpu") -> str:
    """The loss ``auto`` stands for at this catalogue size on this device type ("cpu"/"cuda")."""
    if cfg.loss != "auto":
        return cfg.loss
    limit = cfg.full_softmax_max_items_cuda if device == "cuda" else cfg.full_softmax_max_items
    return "full" if n_items <= limit else "sampled"


def autocast_for(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (when enabled), plain fp32 elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def pad_right(sequences: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Last ``length`` items of each sequence, shifted by +1, right-padded with 0. -> (N, length) int64."""
    out = np.full((len(sequences), length), PAD, dtype=np.int64)  # (N, T)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq, dtype=np.int64)[-length:] if length else np.zeros(0, np.int64)
        out[row, : len(tail)] = tail + 1
    return out


def batch_width(histories: Sequence[np.ndarray], cap: int) -> int:
    """Columns a batch of right-padded histories needs: its longest history, at most ``cap``. Scoring pads
    to this rather than to ``max_len``: with absolute positions from the left and padding never attended to
    (causal attention, or a key mask), the query at the last real item is the same, and a session of a few
    items costs a few positions instead of ``max_len``."""
    return max(1, min(cap, max((len(h) for h in histories), default=1)))


def chunks_from_end(sequence: np.ndarray, size: int, stride: int) -> list[np.ndarray]:
    """Windows of at most ``size`` items ending at the sequence end, then every ``stride`` items earlier."""
    return [sequence[max(0, end - size) : end] for end in range(len(sequence), 0, -stride)]


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``min_ratio`` at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(net: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with decay on matrices only; the fused implementation where this build has it."""
    decay = [p for p in net.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - builds/devices without a fused kernel
        return torch.optim.AdamW(groups, lr=lr, foreach=True)


def ranks_on_device(
    logits: torch.Tensor,
    histories: Sequence[np.ndarray],
    targets: torch.Tensor | None,
    exclude_seen: bool,
    k: int,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Target ranks (pessimistic ties, as components.metrics.target_ranks) and top-k ids, on the device.

    logits (B, n_items) float32 are modified in place (seen items -> -inf when ``exclude_seen``).
    """
    if exclude_seen:
        rows = np.concatenate([np.full(len(h), r, np.int64) for r, h in enumerate(histories)] + [[]])
        cols = np.concatenate([np.asarray(h, np.int64) for h in histories] + [[]])
        if len(rows):
            index = torch.from_numpy(rows.astype(np.int64) * logits.shape[1] + cols.astype(np.int64))
            logits.view(-1)[index.to(logits.device)] = float("-inf")
    top = torch.topk(logits, min(k, logits.shape[1]), dim=1).indices  # (B, k)
    if targets is None:
        return None, top
    t = logits.gather(1, targets[:, None])  # (B, 1)
    ranks = (logits > t).sum(1) + (logits == t).sum(1) - 1  # (B,)
    ranks = torch.where(torch.isfinite(t[:, 0]), ranks, torch.full_like(ranks, logits.shape[1]))
    return ranks, top


class TorchRecommender(Recommender):
    """A Recommender backed by an ``nn.Module`` trained with the shared loop above."""

    config: TorchTrainingConfig

    def __init__(self, config: ModelConfig, n_items: int) -> None:
        super().__init__(config, n_items)
        self.device = resolve_device(self.config.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.config.seed)
        self.net = self._build_net()
        init_weights(self.net, torch.Generator().manual_seed(self.config.seed))
        self._after_init()
        self.net.to(self.device)
        # Training item counts: the scores of an empty history. Part of the state dict, so saved.
        self.net.register_buffer("item_counts", torch.zeros(n_items, device=self.device))
        self.net.eval()

    # ---- what a model file provides -------------------------------------------------------------
    @abstractmethod
    def _build_net(self) -> nn.Module:
        """The network (weights are then initialised by ``init_weights`` from the model's seed)."""

    def _after_init(self) -> None:
        """Hook after the shared initialisation (e.g. to zero a padding row again)."""

    @abstractmethod
    def _training_windows(self, sequences: list[np.ndarray]) -> np.ndarray:
        """All training windows as one padded, id-shifted array (N, W) int64."""

    @abstractmethod
    def _batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Mean loss of one batch of windows (B, W) on the device; called in train mode under autocast."""

    @abstractmethod
    def _history_queries(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Query vectors (B, D) float32 of non-empty histories; called in eval mode, inference mode."""

    @abstractmethod
    def _output_table(self) -> torch.Tensor:
        """The item representations the queries are scored against: (n_items, D), no padding row."""

    def _on_fit_start(self, sequences: list[np.ndarray]) -> None:
        """Hook before the first epoch (e.g. to note which items training never shows)."""

    def _on_fit_end(self) -> None:
        """Hook after the best weights are restored."""

    # ---- shared behaviour -----------------------------------------------------------------------
    def catalogue_loss(
        self, hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of query vectors hidden (N, D) against dense targets (N,) with the configured loss;
        ``table`` (n_items, D) defaults to ``_output_table()``."""
        cfg = self.config
        table = self._output_table() if table is None else table
        kind = resolve_loss(cfg, self.n_items, self.device.type)
        if kind == "full":
            return chunked_cross_entropy(hidden, table, targets)
        k = min(cfg.num_negatives, self.n_items)
        if kind == "sampled":
            return sampled_softmax_loss(hidden, table, targets, k, self.generator)
        return gbce_loss(hidden, table, targets, k, cfg.gbce_t, self.generator)

    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        cfg = self.config
        sequences = check_train_data(self, train)
        self.generator.manual_seed(cfg.seed)
        self.net.get_buffer("item_counts").copy_(torch.from_numpy(item_counts(sequences, self.n_items)))
        self._on_fit_start(sequences)
        windows = torch.from_numpy(self._training_windows(sequences)).to(self.device)  # (N, W)
        if len(windows) == 0:
            raise ValueError(f"{self.name}: no training sequence is long enough to learn from")
        compiled = self.device.type == "cuda" and cfg.compile
        set_dropout_generator(self.net, None if compiled else self.generator)
        if compiled:
            self.net.compile()
        optimizer = make_optimizer(self.net, cfg.lr, cfg.weight_decay)
        steps_per_epoch = math.ceil(len(windows) / cfg.batch_size)
        plan = {"epochs": cfg.epochs}  # re-planned under a time budget after the first epoch

        def factor(step: int) -> float:
            total = steps_per_epoch * plan["epochs"]
            return lr_factor(step, total, int(cfg.warmup_fraction * total), cfg.min_lr_ratio)

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        fit_start = time.perf_counter()
        report = FitReport(
            device=str(self.device),
            curves={"loss": []},
            info={"loss": resolve_loss(cfg, self.n_items, self.device.type), "n_windows": len(windows)},
        )
        best, best_state, stale = -math.inf, None, 0
        epoch_seconds: list[float] = report.info.setdefault("epoch_seconds", [])
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            metrics = {"loss": self._train_epoch(windows, optimizer, schedule, epoch)}
            epoch_seconds.append(round(time.perf_counter() - t0, 4))
            if cfg.max_train_seconds is not None and epoch == 1:
                # one epoch with its share of validation passes: the epochs the budget allows
                per_epoch = epoch_seconds[0] * (1.0 + 0.5 / cfg.eval_every) + 1e-9
                plan["epochs"] = max(1, min(cfg.epochs, int(cfg.max_train_seconds / per_epoch)))
                report.info["time_budget"] = {
                    "seconds": cfg.max_train_seconds,
                    "planned_epochs": plan["epochs"],
                }
            out_of_time = (
                cfg.max_train_seconds is not None and time.perf_counter() - fit_start >= cfg.max_train_seconds
            )
            last = epoch >= plan["epochs"] or out_of_time
            if valid is not None and (epoch % cfg.eval_every == 0 or last):
                metrics[VALID_METRIC] = self.valid_ndcg(valid)
                report.curves.setdefault(VALID_METRIC, []).append(metrics[VALID_METRIC])
                if metrics[VALID_METRIC] > best:
                    best, stale = metrics[VALID_METRIC], 0
                    best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                    report.best_epoch = epoch
                else:
                    stale += 1
            report.curves["loss"].append(metrics["loss"])
            report.epochs = epoch
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if stale >= cfg.patience or last:
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        set_dropout_generator(self.net, None)
        self.net.eval()
        self._on_fit_end()
        return report

    def _train_epoch(
        self,
        windows: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        epoch: int,
    ) -> float:
        cfg = self.config
        self.net.train()
        order = torch.randperm(len(windows), generator=self.generator, device=self.device)  # (N,)
        total = torch.zeros((), device=self.device)
        for start in range(0, len(windows), cfg.batch_size):
            batch = windows[order[start : start + cfg.batch_size]]  # (B, W)
            with autocast_for(self.device, self.config.amp):
                loss = self._batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
            optimizer.step()
            schedule.step()
            total += loss.detach().float() * len(batch)
        mean = float(total) / len(windows)
        if not math.isfinite(mean):
            raise FloatingPointError(
                f"{self.name}: training loss became {mean} in epoch {epoch}; lower lr or check the data"
            )
        return mean

    # ---- scoring and ranking --------------------------------------------------------------------
    def _logits(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Catalogue logits (B, n_items) float32 on the device for non-empty histories."""
        with autocast_for(self.device, self.config.amp):
            queries = self._history_queries(histories)  # (B, D)
        return queries.float() @ self._output_table().float().T  # (B, n_items)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        hist = as_histories(histories, self.n_items)
        counts = self.net.get_buffer("item_counts").float().cpu().numpy()  # (n_items,)
        out = np.tile(counts, (len(hist), 1))  # (B, n_items): empty histories keep the popularity scores
        nonempty = [row for row, h in enumerate(hist) if len(h)]
        if self.net.training:  # eval() walks every submodule: once, not per request
            self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(nonempty), self.config.score_batch_size):
                rows = nonempty[start : start + self.config.score_batch_size]
                out[rows] = self._logits([hist[r] for r in rows]).cpu().numpy()
        return out

    def rank_targets(
        self,
        histories: Sequence[History],
        targets: np.ndarray | None,
        k: int,
        exclude_seen: bool,
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """As ``Recommender.rank_targets``, computed on the model's device in batches."""
        hist = as_histories(histories, self.n_items)
        n = len(hist)
        ranks = np.zeros(n, dtype=np.int64) if targets is not None else None
        top = np.zeros((n, min(k, self.n_items)), dtype=np.int64)
        counts = self.net.get_buffer("item_counts").float()  # (n_items,)
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, n, self.config.score_batch_size):
                part = hist[start : start + self.config.score_batch_size]
                logits = counts.expand(len(part), -1).clone()  # (b, n_items) popularity for empty ones
                rows = [r for r, h in enumerate(part) if len(h)]
                if rows:
                    logits[rows] = self._logits([part[r] for r in rows])
                t = None
                if targets is not None:
                    t = torch.tensor(targets[start : start + len(part)], device=self.device)
                r, tk = ranks_on_device(logits, part, t, exclude_seen, k)
                if ranks is not None and r is not None:
                    ranks[start : start + len(part)] = r.cpu().numpy()
                top[start : start + len(part)] = tk.cpu().numpy()
        return ranks, top

    def valid_ndcg(self, valid: EvalData) -> float:
        """NDCG@10 on ``valid``, ranked on the device."""
        if len(valid.histories) != len(valid.targets):
            raise ValueError(
                f"valid data: {len(valid.histories)} histories but {len(valid.targets)} targets; "
                "they must pair up"
            )
        targets = np.asarray(valid.targets, dtype=np.int64)
        ranks, _ = self.rank_targets(valid.histories, targets, VALID_K, self.config.exclude_seen_in_valid)
        assert ranks is not None
        return ndcg_from_ranks(ranks, VALID_K)

    def _save_state(self, directory: Path) -> None:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        torch.save(state, directory / WEIGHTS_FILE)

    def _load_state(self, directory: Path) -> None:
        state = torch.load(directory / WEIGHTS_FILE, map_location=self.device, weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()


def last_positions(histories: Sequence[np.ndarray], max_len: int, device: torch.device) -> torch.Tensor:
    """Index of each right-padded history's most recent item. -> (B,) int64 on ``device``."""
    lengths = np.array([min(len(h), max_len) for h in histories], dtype=np.int64)
    return torch.from_numpy(np.maximum(lengths, 1) - 1).to(device)
