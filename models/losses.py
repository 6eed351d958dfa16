"""Next-item losses over the catalogue, from exact to sampled, for any catalogue size.

- ``chunked_cross_entropy``: exact full-softmax cross-entropy of ``hidden @ weight.T`` whose
  ``(positions x catalogue)`` logits never exist whole: rows are processed in chunks and the gradients
  of ``hidden`` and ``weight`` are accumulated chunk by chunk in the forward pass (the "fused linear
  cross-entropy" trick), so peak memory is one ``(chunk x catalogue)`` block. Same result and gradients
  as ``F.cross_entropy(hidden @ weight.T, targets)``.
- ``sampled_softmax_loss``: softmax over the positive and ``k`` negatives shared by the batch, drawn
  uniformly from the catalogue (accidental hits are masked out). Cost ``O(positions x k)``.
- ``gbce_loss``: gSASRec's generalised binary cross-entropy (Petrov & Macdonald, RecSys 2023) with ``k``
  uniform negatives: ``-beta * log sigmoid(s+) - sum log(1 - sigmoid(s-))`` with
  ``alpha = k / (n - 1)``, ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)``; ``t`` = calibration (1.0 makes
  the model's probabilities match full softmax, 0 is plain BCE).

All take ``hidden (N, D)``, the item table ``weight (n_items, D)`` (no padding row) and ``targets (N,)``
in ``0 .. n_items-1``, and return the mean loss over the N positions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

DEFAULT_CHUNK_ELEMENTS = 1 << 23  # logits per chunk: 8M floats = 32 MB


class _ChunkedLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int
    ) -> torch.Tensor:
        n = hidden.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        h32, w32 = hidden.float(), weight.float()
        grad_h = torch.zeros_like(h32) if need_grad else None  # (N, D)
        grad_w = torch.zeros_like(w32) if need_grad else None  # (V, D)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, n, chunk_rows):
            h = h32[start : start + chunk_rows]  # (c, D)
            t = targets[start : start + chunk_rows]  # (c,)
            logits = h @ w32.T  # (c, V)
            lse = torch.logsumexp(logits, dim=1)  # (c,)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if need_grad:
                assert grad_h is not None and grad_w is not None
                probs = torch.exp(logits.sub_(lse[:, None]))  # softmax, in place (c, V)
                probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits (c, V)
                grad_h[start : start + chunk_rows] = probs @ w32  # (c, D)
                grad_w.addmm_(probs.T, h)  # (V, D)
        ctx.save_for_backward(grad_h if grad_h is not None else h32, grad_w if grad_w is not None else w32)
        ctx.n = n
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total / n

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.n
        gh = (grad_h * scale).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        gw = (grad_w * scale).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return gh, gw, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Mean full-softmax CE of ``hidden (N, D) @ weight (V, D).T`` against ``targets (N,)``, in float32."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0
    chunk_rows = max(1, chunk_elements // max(weight.shape[0], 1))
    return _ChunkedLinearCE.apply(hidden, weight, targets, chunk_rows)


def shared_negatives(
    n_items: int, k: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``k`` item ids drawn uniformly with replacement, shared by a batch. -> (k,) int64 on ``device``."""
    draw = torch.randint(
        0, n_items, (k,), generator=generator, device=generator.device if generator else None
    )
    return draw.to(device)


def sampled_softmax_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    num_negatives: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Mean CE over [positive, k shared uniform negatives]; a negative equal to the target is masked."""
    negatives = shared_negatives(weight.shape[0], num_negatives, generator, hidden.device)  # (k,)
    h = hidden.float()
    positive = (h * weight[targets].float()).sum(-1, keepdim=True)  # (N, 1)
    negative = h @ weight[negatives].float().T  # (N, k)
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive, negative], dim=1)  # (N, 1 + k)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def gbce_beta(n_items: int, num_negatives: int, t: float) -> float:
    """gSASRec's beta for ``k`` negatives out of ``n_items`` at calibration ``t``."""
    alpha = num_negatives / max(n_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    num_negatives: int,
    t: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Mean gBCE over positions with ``k`` shared uniform negatives (accidental hits masked)."""
    negatives = shared_negatives(weight.shape[0], num_negatives, generator, hidden.device)  # (k,)
    h = hidden.float()
    positive = (h * weight[targets].float()).sum(-1)  # (N,)
    negative = h @ weight[negatives].float().T  # (N, k)
    hit = negatives[None, :] == targets[:, None]  # (N, k)
    beta = gbce_beta(weight.shape[0], num_negatives, t)
    pos_term = -beta * F.logsigmoid(positive)  # (N,)
    neg_term = (-F.logsigmoid(-negative)).masked_fill(hit, 0.0).sum(-1)  # (N,)
    return (pos_term + neg_term).mean()
