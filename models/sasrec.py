"""SASRec (Kang & McAuley 2018): a causal Transformer over the item sequence predicts the next item.

The encoder is models/transformer.py's pre-LN stack with the causal SDPA path (right-padded windows, no
padding mask). Every non-padding position predicts its next item (all-position training, as in the
"SASRec+" / gSASRec recipes), scored against the item table tied to the input embeddings; the loss over
the catalogue is exact chunked full softmax for small catalogues and sampled softmax (or gBCE) for large
ones (``loss`` in the shared config). Long training sequences are cut into ``max_len``-transition
windows from the end so every transition is used, not only the most recent ``max_len``.
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
    last_positions,
    pad_right,
)
from models.transformer import SequenceEncoder


class SASRecConfig(TorchTrainingConfig):
    hidden_size: int = Field(64, ge=8, description="Item embedding and Transformer width D.")
    num_layers: int = Field(2, ge=1, description="Transformer blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads per block; must divide hidden_size.")
    ffn_mult: int = Field(2, ge=1, description="Feed-forward width as a multiple of hidden_size.")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="Dropout on embeddings and residual branches.")


class SASRecNet(nn.Module):
    def __init__(self, cfg: SASRecConfig, n_items: int) -> None:
        super().__init__()
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(
                f"sasrec: hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}"
            )
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items + 1, cfg.hidden_size, padding_idx=PAD)  # 0 = padding
        self.encoder = SequenceEncoder(
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_layers,
            cfg.max_len,
            cfg.dropout,
            cfg.ffn_mult,
            causal=True,
        )

    def item_table(self) -> torch.Tensor:
        """Representations of padding + items (n_items + 1, D); row 0 is padding."""
        return self.item_embedding.weight

    def forward(self, items: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Shifted, right-padded item ids (B, T) -> hidden states (B, T, D); position t sees items <= t.

        ``table`` is ``item_table()`` when the caller has it already (one computation per step)."""
        table = self.item_table() if table is None else table  # (n_items + 1, D)
        return self.encoder(F.embedding(items, table, padding_idx=PAD))  # (B, T, D)


class SASRec(TorchRecommender):
    name: ClassVar[str] = "sasrec"
    config_cls: ClassVar[type[ModelConfig]] = SASRecConfig
    config: SASRecConfig
    net: SASRecNet

    def _build_net(self) -> nn.Module:
        return SASRecNet(self.config, self.n_items)

    def _output_table(self) -> torch.Tensor:
        return self.net.item_table()[1:]  # (n_items, D)

    def _training_windows(self, sequences: list[np.ndarray]) -> np.ndarray:
        size = self.config.max_len + 1  # max_len inputs and their max_len next-item targets
        windows = [
            w
            for s in sequences
            if len(s) >= 2
            for w in chunks_from_end(s, size, self.config.window_stride or self.config.max_len)
        ]
        return pad_right([w for w in windows if len(w) >= 2], size)  # (N, max_len + 1)

    def _batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        inputs, targets = batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)
        table = self.net.item_table()  # (n_items + 1, D)
        hidden = self.net(inputs, table)  # (B, T, D)
        keep = targets != PAD  # (B, T): right padding, so a real target always has a real input
        return self.catalogue_loss(hidden[keep], targets[keep] - 1, table[1:])

    def _history_queries(self, histories: list[np.ndarray]) -> torch.Tensor:
        width = batch_width(histories, self.config.max_len)
        items = torch.from_numpy(pad_right(histories, width)).to(self.device)  # (B, T <= max_len)
        hidden = self.net(items)  # (B, T, D)
        last = last_positions(histories, self.config.max_len, self.device)  # (B,)
        return hidden[torch.arange(len(histories), device=self.device), last]  # (B, D)
