"""BERT4Rec (Sun et al. 2019): a bidirectional Transformer trained to fill in masked items (cloze task).

Ids inside the network: ``0`` = padding, ``1 .. n_items`` = items, ``n_items + 1`` = [MASK]. The
encoder is models/transformer.py's pre-LN stack without the causal mask (a key-padding mask only when a
batch has padding). What makes it learn on larger catalogues where the post-LN original collapsed:

- pre-LN blocks, warm-up + cosine LR and gradient clipping (the shared loop);
- masking tuned for next-item prediction: each item is masked with ``mask_prob`` (at least one per
  window) and, with ``last_mask_prob``, a window instead masks only its last item -- the exact situation
  of prediction time, when [MASK] follows the history;
- the catalogue loss of the shared loop (exact chunked softmax, or sampled for large catalogues) on a
  dense-GELU-LayerNorm head tied to the item embeddings.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from models.base import ModelConfig
from models.torch_training import (
    PAD,
    TorchRecommender,
    TorchTrainingConfig,
    batch_width,
    chunks_from_end,
    pad_right,
)
from models.transformer import SequenceEncoder


class BERT4RecConfig(TorchTrainingConfig):
    hidden_size: int = Field(64, ge=8, description="Item embedding and Transformer width D.")
    num_layers: int = Field(2, ge=1, description="Transformer blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads per block; must divide hidden_size.")
    ffn_mult: int = Field(2, ge=1, description="Feed-forward width as a multiple of hidden_size.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout on embeddings and residual branches.")
    mask_prob: float = Field(
        0.2, gt=0.0, le=1.0, description="Probability that a training item is replaced by [MASK]."
    )
    last_mask_prob: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of windows that mask only their last item (the prediction-time situation).",
    )


class BERT4RecNet(nn.Module):
    def __init__(self, cfg: BERT4RecConfig, n_items: int) -> None:
        super().__init__()
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(
                f"bert4rec: hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}"
            )
        self.n_items = n_items
        self.mask_id = n_items + 1
        self.item_embedding = nn.Embedding(n_items + 2, cfg.hidden_size, padding_idx=PAD)  # + pad, [MASK]
        self.encoder = SequenceEncoder(
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_layers,
            cfg.max_len,
            cfg.dropout,
            cfg.ffn_mult,
            causal=False,
        )
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden_size, cfg.hidden_size), nn.GELU(), nn.LayerNorm(cfg.hidden_size)
        )

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Right-padded ids with [MASK]s (B, T) -> head outputs (B, T, D); every position sees all items."""
        embeddings = F.embedding(items, self.item_embedding.weight, padding_idx=PAD)  # (B, T, D)
        return self.head(self.encoder(embeddings, padding=items == PAD))  # (B, T, D)


class BERT4Rec(TorchRecommender):
    name: ClassVar[str] = "bert4rec"
    config_cls: ClassVar[type[ModelConfig]] = BERT4RecConfig
    config: BERT4RecConfig
    net: BERT4RecNet

    def _build_net(self) -> nn.Module:
        return BERT4RecNet(self.config, self.n_items)

    def _output_table(self) -> torch.Tensor:
        return self.net.item_embedding.weight[1 : self.n_items + 1]  # (n_items, D)

    def _training_windows(self, sequences: list[np.ndarray]) -> np.ndarray:
        size = self.config.max_len
        stride = self.config.window_stride or size
        windows = [w for s in sequences if len(s) for w in chunks_from_end(s, size, stride)]
        return pad_right(windows, size)  # (N, max_len)

    def _batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        real = batch != PAD  # (B, T)
        rows = torch.arange(len(batch), device=batch.device)
        last = real.sum(1) - 1  # (B,) right padding: index of the last item
        draw = torch.rand(batch.shape, generator=self.generator, device=batch.device)  # (B, T)
        masked = (draw < cfg.mask_prob) & real  # (B, T)
        only_last = torch.rand(len(batch), generator=self.generator, device=batch.device) < cfg.last_mask_prob
        masked[only_last] = False
        force = only_last | ~masked.any(dim=1)  # (B,) every window predicts something: its last item at least
        masked[rows, last] = masked[rows, last] | force
        inputs = batch.masked_fill(masked, self.net.mask_id)  # (B, T)
        hidden = self.net(inputs)[masked]  # (N, D)
        return self.catalogue_loss(hidden, batch[masked] - 1)

    def _history_queries(self, histories: list[np.ndarray]) -> torch.Tensor:
        context = pad_right(histories, batch_width(histories, self.config.max_len - 1))  # (B, T-1)
        lengths = np.array([min(len(h), self.config.max_len - 1) for h in histories], dtype=np.int64)
        items = np.concatenate([context, np.zeros((len(histories), 1), np.int64)], axis=1)  # (B, T)
        items[np.arange(len(histories)), lengths] = self.net.mask_id  # [MASK] right after the history
        hidden = self.net(torch.from_numpy(items).to(self.device))  # (B, T, D)
        return hidden[
            torch.arange(len(histories), device=self.device), torch.from_numpy(lengths).to(self.device)
        ]
