"""Model tests run tiny networks: one torch thread is faster than several (no thread hand-offs, and no
spinning OpenMP workers on a shared, busy CPU)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
