"""The shared torch helpers: padding, windows, device choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.torch_training import chunks_from_end, pad_right, resolve_device


def test_pad_right_keeps_the_most_recent_items_shifted_by_one() -> None:
    padded = pad_right([np.array([1, 2, 3]), np.array([], dtype=np.int64), np.array([4])], 2)
    np.testing.assert_array_equal(padded, [[3, 4], [0, 0], [5, 0]])
    assert padded.dtype == np.int64


def test_chunks_from_end_cover_every_transition() -> None:
    chunks = chunks_from_end(np.arange(10), size=4, stride=3)
    assert [c.tolist() for c in chunks] == [[6, 7, 8, 9], [3, 4, 5, 6], [0, 1, 2, 3], [0]]
    transitions = {(int(a), int(b)) for c in chunks for a, b in zip(c[:-1], c[1:], strict=True)}
    assert transitions == {(i, i + 1) for i in range(9)}


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
