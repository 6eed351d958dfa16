"""A small pre-LayerNorm Transformer encoder for item sequences, shared by SASRec, BERT4Rec and TextSASRec.

- Pre-LN blocks (``x + attn(LN(x))``, ``x + ffn(LN(x))``, final LN): stable at the learning rates these
  small models want, where the post-LN BERT block collapsed BERT4Rec on ml-latest-small.
- Attention is ``F.scaled_dot_product_attention``. Causal models use ``is_causal=True`` with no mask at
  all: sequences are right-padded, so a real position never sees a padding position (the flash path on
  CUDA, the fused CPU kernel elsewhere). Bidirectional models pass a ``(B, 1, 1, T)`` key-padding mask only
  when the batch has padding.
- Dropout draws its masks from the model's own ``torch.Generator`` (``GenDropout``), so two models training
  side by side in threads never share RNG state and each run repeats to the last digit on CPU. There is
  no attention-probability dropout: SDPA's would use the global RNG.
- ``init_weights`` initialises every parameter from a given generator (never the global RNG).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GenDropout(nn.Module):
    """Inverted dropout whose masks come from ``self.generator`` (set by the owning model).

    Without a generator (e.g. compiled CUDA training, where repeatability is not promised) it is
    ``F.dropout``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        # uniform draws compared with p: twice as fast as bernoulli_ with a generator on the CPU (profiled:
        # bernoulli_ was 17% of a SASRec step on ml-latest-small)
        draw = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x * (draw >= self.p) * (1.0 / (1.0 - self.p))


class Block(nn.Module):
    """Pre-LN Transformer block: multi-head self-attention then a GELU feed-forward."""

    def __init__(self, dim: int, heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_size {dim} is not divisible by num_heads {heads}")
        self.heads = heads
        self.ln_attn = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln_ffn = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, ffn_mult * dim)
        self.ffn_out = nn.Linear(ffn_mult * dim, dim)
        self.drop_attn = GenDropout(dropout)
        self.drop_ffn_hidden = GenDropout(dropout)
        self.drop_ffn = GenDropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.ln_attn(x)).view(b, t, 3, self.heads, d // self.heads)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, Dh)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=causal)  # (B, H, T, Dh)
        x = x + self.drop_attn(self.out(attn.transpose(1, 2).reshape(b, t, d)))  # (B, T, D)
        hidden = self.drop_ffn_hidden(F.gelu(self.ffn_in(self.ln_ffn(x))))  # (B, T, ffn_mult * D)
        return x + self.drop_ffn(self.ffn_out(hidden))  # (B, T, D)


class SequenceEncoder(nn.Module):
    """Learned positions + a stack of pre-LN blocks + final LayerNorm over item embeddings (B, T, D)."""

    def __init__(
        self, dim: int, heads: int, layers: int, max_len: int, dropout: float, ffn_mult: int, causal: bool
    ) -> None:
        super().__init__()
        self.causal = causal
        self.positions = nn.Embedding(max_len, dim)
        self.drop_input = GenDropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, ffn_mult, dropout) for _ in range(layers))
        self.ln_final = nn.LayerNorm(dim)

    def forward(self, embeddings: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """embeddings (B, T, D), padding (B, T) bool True at padding (used by bidirectional encoders only)."""
        t = embeddings.shape[1]
        x = self.drop_input(embeddings + self.positions.weight[:t])  # (B, T, D)
        key_mask = None
        if not self.causal and padding is not None and bool(padding.any()):
            key_mask = (~padding)[:, None, None, :]  # (B, 1, 1, T) True = may attend
        for block in self.blocks:
            x = block(x, key_mask, self.causal)
        return self.ln_final(x)


def init_weights(module: nn.Module, generator: torch.Generator, std: float = 0.02) -> None:
    """Initialise every Linear/Embedding/LayerNorm in ``module`` from ``generator`` (never the global RNG).

    Truncated-normal-like N(0, std) weights, zero biases, unit LayerNorm scales; an embedding's
    ``padding_idx`` row is zeroed.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                m.weight.normal_(0.0, std, generator=generator)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
                if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()


def set_dropout_generator(module: nn.Module, generator: torch.Generator | None) -> None:
    """Point every ``GenDropout`` in ``module`` at ``generator``."""
    for m in module.modules():
        if isinstance(m, GenDropout):
            m.generator = generator
