"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for the suite's tiny tensors: faster than two, and immune to OpenMP
    oversubscription when other processes load the machine. Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
