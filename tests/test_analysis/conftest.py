import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run tiny tensors: one intra-op thread is as fast on an idle machine and far
    faster on a busy one (no OpenMP barrier waits); the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
