"""BERT4Rec (Sun et al. 2019): a bidirectional Transformer trained to fill in masked items (cloze task).

The encoder is a Hugging Face ``BertModel`` (no causal mask; the attention mask hides padding) fed
through ``inputs_embeds`` from our own item embedding table. Ids inside the network: ``0`` = padding,
``1 .. n_items`` = items, ``n_items + 1`` = [MASK]. Training masks each item with ``mask_prob`` (at
least one per window) and takes full-softmax cross-entropy over the catalogue at masked positions; the
output projection is tied to the item embeddings after a dense-GELU-LayerNorm head. Prediction appends
[MASK] to the history and reads the catalogue logits there.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from transformers import BertConfig, BertModel

from models.base import ModelConfig
from models.torch_training import (
    PAD,
    TorchRecommender,
    TorchTrainingConfig,
    autocast_for,
    catalogue_logits,
    chunks_from_end,
    pad_left,
)


class BERT4RecConfig(TorchTrainingConfig):
    hidden_size: int = Field(64, ge=8, description="Item embedding and Transformer width D.")
    num_layers: int = Field(1, ge=1, description="Transformer blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads per block; must divide hidden_size.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout on embeddings, attention and residuals.")
    mask_prob: float = Field(
        0.3, gt=0.0, le=1.0, description="Probability that a training item is replaced by [MASK]."
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
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()
        encoder_config = BertConfig(
            vocab_size=1,  # token embeddings unused: we pass inputs_embeds
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=4 * cfg.hidden_size,
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
            max_position_embeddings=cfg.max_len,
            type_vocab_size=1,
            pad_token_id=0,
        )
        self.encoder = BertModel(encoder_config, add_pooling_layer=False)
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden_size, cfg.hidden_size), nn.GELU(), nn.LayerNorm(cfg.hidden_size)
        )
        self.output_bias = nn.Parameter(torch.zeros(n_items))  # (n_items,)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Left-padded ids with [MASK]s (B, T) -> head outputs (B, T, D); every position sees all items."""
        embeddings = self.item_embedding(items)  # (B, T, D)
        attention_mask = (items != PAD).long()  # (B, T)
        hidden = self.encoder(inputs_embeds=embeddings, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden)  # (B, T, D)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Head outputs (N, D) -> catalogue logits (N, n_items)."""
        weight = self.item_embedding.weight.to(hidden.dtype)  # (n_items + 2, D)
        return catalogue_logits(hidden, weight, self.n_items) + self.output_bias.to(hidden.dtype)


class BERT4Rec(TorchRecommender):
    name: ClassVar[str] = "bert4rec"
    config_cls: ClassVar[type[ModelConfig]] = BERT4RecConfig
    config: BERT4RecConfig
    net: BERT4RecNet

    def _build_net(self) -> nn.Module:
        return BERT4RecNet(self.config, self.n_items)

    def _training_windows(self, sequences: list[np.ndarray]) -> np.ndarray:
        size = self.config.max_len
        windows = [w for s in sequences if len(s) for w in chunks_from_end(s, size, size)]
        return pad_left(windows, size)  # (N, max_len)

    def _batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        real = batch != PAD  # (B, T)
        masked = (torch.rand(batch.shape, device=batch.device) < self.config.mask_prob) & real  # (B, T)
        masked[~masked.any(dim=1), -1] = True  # every window predicts something: its last item at least
        inputs = batch.masked_fill(masked, self.net.mask_id)  # (B, T)
        hidden = self.net(inputs)[masked]  # (N, D)
        return F.cross_entropy(self.net.logits(hidden).float(), batch[masked] - 1)

    def _history_logits(self, histories: list[np.ndarray]) -> torch.Tensor:
        context = pad_left(histories, self.config.max_len - 1)  # (B, T-1)
        mask_column = np.full((len(histories), 1), self.net.mask_id, dtype=np.int64)  # (B, 1)
        items = torch.from_numpy(np.concatenate([context, mask_column], axis=1)).to(self.device)  # (B, T)
        with autocast_for(self.device):
            at_mask = self.net(items)[:, -1]  # (B, D)
        return self.net.logits(at_mask.float())  # (B, n_items) float32
