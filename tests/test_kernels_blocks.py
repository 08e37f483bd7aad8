"""Row-blocked NNGP / NTK (robustlab.theory.kernels): blocks against one pass, memory, float64.

nngp / ntk form the (N1, N2) dot products of the unit vectors in one product and run the
rest (the near-diagonal recomputation and the arc-cosine recursion) in blocks of
``kernels._block_rows`` rows of x1, each overwriting its rows of that product. The blocks
share the product, so a blocked result differs from one pass only where torch evaluates
atan2 in the scalar tail of its loop (glibc) instead of the vector body (SLEEF), and
which entries fall in a tail depends on the block, the thread count and the CPU's vector
width: at most an ulp or two per angle, a few ulp after eight layers (5.5e-16 measured;
more where kappa_0 is small, near rho = -1, which d = 3 data reaches); the comparisons
below allow 1e-13 relative. Memory is measured with torch's profiler (every allocation
and free of the call), not assumed from the code.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from robustlab.theory import kernels, nngp, ntk

F64 = torch.float64
HUGE = 1 << 50  # a budget or block that never splits anything


def inputs(n1: int, n2: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n1, d), y (n2, d) with near pairs: y's first rows are copies of x's, scaled
    copies and 1e-9 perturbations, and one row of y is 0."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n1, d, generator=gen, dtype=F64)
    y = torch.randn(n2, d, generator=gen, dtype=F64)
    y[:3] = x[:3]
    y[3:5] = 2.5 * x[3:5]
    y[5:7] = x[5:7] + 1e-9 * torch.randn(2, d, generator=gen, dtype=F64)
    y[7] = 0.0
    return x, y


def evaluate(x: torch.Tensor, y: torch.Tensor | None) -> list[torch.Tensor]:
    return [nngp(x, y, "he", 8), ntk(x, y, "he", 8, 1024), ntk(x, y, "ntk_param", 3, 64)]


@pytest.mark.parametrize(("n1", "n2", "d"), [(37, 29, 784), (50, 61, 3), (200, 150, 20)])
@pytest.mark.parametrize("same", [False, True])
def test_blocks_match_one_pass(monkeypatch, n1, n2, d, same):
    x, y = inputs(n1, n2, d, seed=n1 + d)
    y = None if same else y
    monkeypatch.setattr(kernels, "_CACHE_PAIRS", HUGE)
    whole = evaluate(x, y)
    for rows in (1, 3, 16):
        monkeypatch.setattr(kernels, "_CACHE_PAIRS", rows * (n1 if same else n2))
        assert kernels._block_rows(n1, n1 if same else n2) == rows
        for got, want in zip(evaluate(x, y), whole, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-13, atol=0.0)
    if not same:  # zero row -> zero column, exactly
        assert float(whole[1][:, 7].abs().max()) == 0.0


def test_blocked_path_keeps_autograd_and_transforms(monkeypatch):
    # blocks of 2 rows: concatenated under autograd, written in place under jacfwd / vmap
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(5, 4, generator=gen, dtype=F64)
    y = torch.randn(3, 4, generator=gen, dtype=F64)
    monkeypatch.setattr(kernels, "_CACHE_PAIRS", HUGE)
    want_fwd = torch.func.jacrev(lambda a: ntk(a, y, "ntk_param", 3, 64))(x)
    want_k = nngp(x, y, "he", 3)
    monkeypatch.setattr(kernels, "_CACHE_PAIRS", 6)
    assert kernels._block_rows(5, 3) == 2
    a, b = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, q: ntk(p, q, "he", 3, 50), (a, b))
    assert torch.autograd.gradgradcheck(lambda p, q: nngp(p, q, "he", 3), (a, b))
    with warnings.catch_warnings():  # torch's forward-mode set-up warns about torch.jit
        warnings.simplefilter("ignore", DeprecationWarning)
        fwd = torch.func.jacfwd(lambda p: ntk(p, y, "ntk_param", 3, 64))(x)
    torch.testing.assert_close(fwd, want_fwd, rtol=1e-12, atol=1e-12)
    batched = torch.func.vmap(lambda p: nngp(p, y, "he", 3))(torch.stack([x, 2.0 * x]))
    torch.testing.assert_close(batched[0], want_k, rtol=1e-13, atol=0.0)
    torch.testing.assert_close(batched[1], 2.0 * want_k, rtol=1e-13, atol=0.0)


def peak_bytes(fn) -> tuple[int, torch.Tensor]:
    """Largest number of bytes allocated at once while ``fn`` runs (torch's profiler
    records each allocation in the op that made it and each free), and fn's result."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    now = peak = 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        now += e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        peak = max(peak, now)
    return peak, out


@pytest.mark.parametrize("d", [5, 784])
def test_block_temporaries_stay_within_the_budget(monkeypatch, d):
    # the output and the (N, d) unit vectors are allocated whole; everything else a block
    # allocates must fit in _BLOCK_BYTES (here 256 KiB, so the split is exercised)
    n1, n2, budget = 300, 200, 1 << 18
    x, y = inputs(n1, n2, d, seed=d)
    whole_size = (n1 * n2 + (n1 + n2) * (d + 1)) * 8  # output, unit vectors, norms
    monkeypatch.setattr(kernels, "_CACHE_PAIRS", HUGE)
    monkeypatch.setattr(kernels, "_BLOCK_BYTES", budget)
    rows = kernels._block_rows(n1, n2)
    assert 1 < rows < n1
    for fn in (lambda: ntk(x, y, "he", 8, 1024), lambda: nngp(x, y, "he", 8)):
        peak, out = peak_bytes(fn)
        assert peak - whole_size <= budget, (peak - whole_size) / budget
    # the recursion alone (no near pairs): within _BLOCK_ARRAYS arrays of (rows, n2)
    far = torch.randn(n2, d, generator=torch.Generator().manual_seed(1), dtype=F64)
    peak, _ = peak_bytes(lambda: ntk(x, far, "he", 8, 1024))
    assert peak - whole_size <= kernels._BLOCK_ARRAYS * rows * n2 * 8
    # and without the blocks the same call needs far more (the premise of the test)
    monkeypatch.setattr(kernels, "_BLOCK_BYTES", HUGE)
    peak, _ = peak_bytes(lambda: ntk(x, far, "he", 8, 1024))
    assert peak - whole_size > 5 * budget


def test_block_size_for_ten_thousand_points():
    # N = 10,000 against itself at d = 784: the output is 800 MB; each block's recursion
    # temporaries and its near-diagonal chunks fit in the 128 MiB budget
    n, d = 10_000, 784
    rows = kernels._block_rows(n, n)
    assert 1 <= rows < n
    assert kernels._BLOCK_ARRAYS * rows * n * 8 <= kernels._BLOCK_BYTES
    assert rows * n <= kernels._CACHE_PAIRS
    chunk = kernels._near_chunk(d)
    assert chunk >= 1 and kernels._NEAR_ARRAYS * chunk * d * 8 <= kernels._BLOCK_BYTES
