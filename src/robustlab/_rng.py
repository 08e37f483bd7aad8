"""torch's global RNG seeded for one block and put back after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded_rng"]


@contextmanager
def seeded_rng(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block with torch's global RNG seeded with ``seed``: the CPU's, and ``device``'s
    when it is a CUDA device. Every state is put back on exit, so code that draws from the
    global RNG (a user's own layer init, dropout) gives the same numbers on every run and
    leaves the caller's stream as it was (``torch.random.fork_rng``)."""
    dev = torch.device("cpu" if device is None else device)
    cuda = []
    if dev.type == "cuda":
        cuda = [dev.index if dev.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield
