"""SASRec (Kang & McAuley 2018): a causal Transformer over the item sequence predicts the next item.

The encoder is a Hugging Face ``GPT2Model`` (pre-LayerNorm blocks, causal self-attention, learned
positions) fed through ``inputs_embeds`` from our own item embedding table. Training uses full-softmax
cross-entropy over the whole catalogue at every non-padding position, with the output projection tied
to the item embeddings. Long training sequences are cut into ``max_len``-transition windows from the end
so every transition is used, not only the most recent ``max_len``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from transformers import GPT2Config, GPT2Model

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


class SASRecConfig(TorchTrainingConfig):
    hidden_size: int = Field(64, ge=8, description="Item embedding and Transformer width D.")
    num_layers: int = Field(1, ge=1, description="Transformer blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads per block; must divide hidden_size.")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="Dropout on embeddings, attention and residuals.")


class SASRecNet(nn.Module):
    def __init__(self, cfg: SASRecConfig, n_items: int) -> None:
        super().__init__()
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(
                f"sasrec: hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}"
            )
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items + 1, cfg.hidden_size, padding_idx=PAD)  # 0 = padding
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()
        encoder_config = GPT2Config(
            vocab_size=1,  # token embeddings unused: we pass inputs_embeds
            n_positions=cfg.max_len,
            n_embd=cfg.hidden_size,
            n_layer=cfg.num_layers,
            n_head=cfg.num_heads,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            activation_function="gelu",  # torch-native GELU; gpt2's "gelu_new" tanh formula is slower
            use_cache=False,
            bos_token_id=None,
            eos_token_id=None,
        )
        self.encoder = GPT2Model(encoder_config)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Shifted, left-padded item ids (B, T) -> hidden states (B, T, D); position t sees items <= t."""
        embeddings = self.item_embedding(items)  # (B, T, D)
        attention_mask = (items != PAD).long()  # (B, T)
        return self.encoder(inputs_embeds=embeddings, attention_mask=attention_mask).last_hidden_state


class SASRec(TorchRecommender):
    name: ClassVar[str] = "sasrec"
    config_cls: ClassVar[type[ModelConfig]] = SASRecConfig
    config: SASRecConfig
    net: SASRecNet

    def _build_net(self) -> nn.Module:
        return SASRecNet(self.config, self.n_items)

    def _training_windows(self, sequences: list[np.ndarray]) -> np.ndarray:
        size = self.config.max_len + 1  # max_len inputs and their max_len next-item targets
        windows = [w for s in sequences if len(s) >= 2 for w in chunks_from_end(s, size, self.config.max_len)]
        return pad_left([w for w in windows if len(w) >= 2], size)  # (N, max_len + 1)

    def _batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        inputs, targets = batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)
        hidden = self.net(inputs)  # (B, T, D)
        keep = (inputs != PAD) & (targets != PAD)  # (B, T) positions with context and a target
        logits = catalogue_logits(hidden[keep], self.net.item_embedding.weight, self.n_items)  # (N, n_items)
        return F.cross_entropy(logits.float(), targets[keep] - 1)

    def _history_logits(self, histories: list[np.ndarray]) -> torch.Tensor:
        items = torch.from_numpy(pad_left(histories, self.config.max_len)).to(self.device)  # (B, T)
        with autocast_for(self.device):
            last = self.net(items)[:, -1]  # (B, D) state after the most recent item
        weight = self.net.item_embedding.weight.float()  # (n_items + 1, D)
        return catalogue_logits(last.float(), weight, self.n_items)  # (B, n_items) float32
