"""``lr="auto"``'s NTK eigenvalue, computed once per distinct (network, weights, probe points).

Members of a sweep group can share their initial weights and data exactly: runs of one
init and seed that differ only in alpha (the alpha-scaled regime leaves the Gauss-Newton
matrix unchanged), and a ``linearized`` run with its ``standard`` twin (the Taylor model's
NTK is that of w0). Their power iterations are the same computation, so an
:class:`EigenCache` runs it once and hands the value to the others. A value is reused only
when the forward function is the same and every tensor is equal (``torch.equal`` on the
weights and the probe points, after a cheap fingerprint narrows the candidates): models
that differ in weights by a single entry never share a value.
"""

from __future__ import annotations

import torch

__all__ = ["EigenCache"]


def _forward_key(model) -> tuple:
    """What fixes the function of the weights: the class and its whole spec (architecture,
    multipliers; the init fields only repeat what equal weights already say); a model
    without a spec is only ever equal to itself."""
    spec = getattr(model, "spec", None)
    return (type(model).__qualname__, repr(spec) if spec is not None else id(model))


class EigenCache:
    """lambda_max of the empirical NTK per (network, weights, probe points, iterations).

    Use one per sweep group (it holds references to the tensors it has seen) and pass it to
    every ``train_ensemble`` call of the group (``lr_cache=``).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, list[tuple[list[torch.Tensor], float]]] = {}
        self.computed = 0  # power iterations run (members), for tests and benchmarks
        self.reused = 0  # members answered from the cache

    def eigenvalues(self, compute, model, stacked: dict, x, which, per_model: bool, tag):
        """(E,) lambda_max for the members where ``which`` is True (0 elsewhere).

        ``compute(idx)`` runs the power iteration on members ``idx`` (a list of ints) and
        returns their values; ``tag`` holds whatever else the value depends on (iterations,
        tolerance). Members equal to one seen before (here or in an earlier call) reuse it.
        """
        E = len(which)
        names = sorted(stacked)
        # cheap per-member fingerprint: the sum of every tensor, one (E,) reduction each
        sums = [stacked[k].reshape(E, -1).sum(1).tolist() for k in names]
        xs = x.reshape(E, -1).sum(1).tolist() if per_model else [float(x.sum())] * E
        base = (_forward_key(model), tuple(x.shape[1:] if per_model else x.shape), tag)
        values = [0.0] * E
        owners: list[tuple[int, tuple, list[torch.Tensor]]] = []  # distinct members to run
        owner_of: dict[int, int] = {}  # member -> the owner it equals
        for i in range(E):
            if not which[i]:
                continue
            key = (*base, xs[i], *(s[i] for s in sums))
            tensors = [stacked[k][i] for k in names] + [x[i] if per_model else x]
            hit = self._find(key, tensors)
            if hit is not None:
                values[i], self.reused = hit, self.reused + 1
                continue
            j = next((j for j, kj, tj in owners if kj == key and _equal(tj, tensors)), None)
            if j is None:
                owners.append((i, key, tensors))
                j = i
            else:
                self.reused += 1
            owner_of[i] = j
        if owners:
            fresh = compute([i for i, _, _ in owners])
            self.computed += len(owners)
            got = {}
            for (i, key, tensors), value in zip(owners, fresh, strict=True):
                # references, not copies: train_ensemble never writes to its stacked w0
                self._entries.setdefault(key, []).append((tensors, value))
                got[i] = value
            for i, j in owner_of.items():
                values[i] = got[j]
        return torch.tensor(values, dtype=torch.float64)

    def _find(self, key: tuple, tensors: list[torch.Tensor]) -> float | None:
        for stored, value in self._entries.get(key, []):
            if _equal(stored, tensors):
                return value
        return None


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(u is v or torch.equal(u, v) for u, v in zip(a, b, strict=True))
