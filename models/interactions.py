"""Binary sequence-item matrix and item co-occurrence counts, the input of the neighbourhood models.

Built on torch sparse tensors (torch is a core dependency, scipy is not), in row blocks so a large
catalogue never needs a dense ``n_items x n_items`` matrix unless the model itself is dense (EASE).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch


def interaction_matrix(sequences: Sequence[np.ndarray], n_items: int) -> torch.Tensor:
    """Sparse binary ``(n_sequences, n_items)`` float32 matrix; repeats within a sequence count once."""
    empty = np.zeros(0, dtype=np.int64)
    rows = np.concatenate([empty] + [np.full(len(s), i, dtype=np.int64) for i, s in enumerate(sequences)])
    cols = np.concatenate([empty] + [np.asarray(s, dtype=np.int64) for s in sequences])
    indices = torch.from_numpy(np.stack([rows, cols]))  # (2, nnz)
    values = torch.ones(indices.shape[1], dtype=torch.float32)
    x = torch.sparse_coo_tensor(indices, values, (len(sequences), n_items), check_invariants=True).coalesce()
    ones = torch.ones_like(x.values())
    return torch.sparse_coo_tensor(x.indices(), ones, x.shape, check_invariants=True).coalesce()  # binary


def cooccurrence_block(x: torch.Tensor, x_t: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of ``x.T @ x``: how many sequences hold both items. -> (stop-start, n_items) dense.

    ``x`` is the (coalesced) interaction matrix and ``x_t`` its coalesced transpose, passed in so callers
    looping over blocks transpose once.
    """
    idx = x_t.indices()  # (2, nnz): item, sequence
    keep = (idx[0] >= start) & (idx[0] < stop)
    block_idx = idx[:, keep] - torch.tensor([[start], [0]])
    shape = (stop - start, x_t.shape[1])
    block = torch.sparse_coo_tensor(block_idx, x_t.values()[keep], shape, check_invariants=True)
    with warnings.catch_warnings():  # torch calls its internal CSR path "beta"; tests check the result
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse.mm(block, x).to_dense()  # (stop-start, n_items)


def item_item_cooccurrence(x: torch.Tensor) -> torch.Tensor:
    """The full dense ``(n_items, n_items)`` float32 Gram matrix ``x.T @ x``."""
    x_t = x.t().coalesce()
    return cooccurrence_block(x, x_t, 0, x.shape[1])
