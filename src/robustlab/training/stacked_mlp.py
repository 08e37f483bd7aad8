"""E stacked ReLU MLPs, forward, reverse and tangent passes written out: batched products.

For the networks of :func:`robustlab.models.mlp` (``type(model) is MLP``),

    z_l = c_l (h_{l-1} W_l^T + b_l),   h_l = relu(z_l) (l < L),   f = z_L,

with h_0 = x (N, d), W_l (m_l, m_{l-1}), multipliers c_l from ``spec.multipliers``. The E
members of an ensemble are stacked on a leading axis, so every product is one ``torch.bmm``
over (E, N, m) activations (one ``matmul`` when the inputs are shared). Reverse mode is the
chain rule of that recursion (delta_l = dLoss/dz_l):

    dW_l = c_l delta_l^T h_{l-1},   db_l = c_l sum_n delta_l,
    delta_{l-1} = (c_l delta_l W_l) * 1[h_{l-1} > 0],

the ReLU mask read from the kept forward activation (``threshold_backward``), never a second
ReLU. Forward mode (a JVP with tangent v = (V_l, v_l)) is the same recursion on tangents with
the masks of the primal point:

    t_l = c_l (s_{l-1} W_l^T + h_{l-1} V_l^T + v_l),   s_l = t_l * 1[h_l > 0],   s_0 = 0,

which gives the linearized regime's J(w0)(w - w0) (Lee et al., NeurIPS 2019) and, after a
reverse pass, the NTK-vector product K u = J (J^T u) of ``lr="auto"``'s power iteration.

No autograd: :class:`~.batched_mlp.BatchedMLPStep` trains on these passes and equals the
``torch.func`` step (``vmap`` of ``grad_and_value``) up to float rounding, which
``tests/test_batched_mlp.py`` checks in float64. The members run in chunks sized for the
CPU's caches (:func:`chunk_size`).
"""

from __future__ import annotations

import torch

from ..models._mlp import MLP

__all__ = ["CHUNK_BYTES", "StackedMLP", "chunk_size", "ntk_product"]

_threshold_backward = torch.ops.aten.threshold_backward.default  # grad * 1[h > 0]
# hidden activations of one chunk of members: the best of 0.125-8 MiB tried on this 2-core
# machine (1 MiB of L2 per core); a whole (E, N, m) ensemble streams from memory at every
# product and mask, up to 2x slower (widths 16-64, E = 24, N = 794)
CHUNK_BYTES = 2 << 20


def chunk_size(members: int, points: int, hidden: int, itemsize: int, device="cpu") -> int:
    """Members per chunk: on the CPU as many as keep one chunk's hidden activations,
    ``points`` x ``hidden`` (the sum of the hidden widths) x ``itemsize`` bytes per member,
    within :data:`CHUNK_BYTES`, at least one; elsewhere (a GPU wants big batches) all."""
    per_member = points * hidden * itemsize
    if per_member == 0 or torch.device(device).type != "cpu":
        return members
    return max(1, min(members, CHUNK_BYTES // per_member))


class StackedMLP:
    """The layer structure of E stacked copies of one MLP, and its three passes.

    Args:
        model: the ensemble's base network (``type(model) is MLP``); its spec gives the
            depth, bias and multipliers c_l. Weights always come from the stacked dicts
            ``{name: (E, ...)}`` passed to each method (``layers.{i}.weight``, ``.bias``).
    """

    def __init__(self, model: MLP) -> None:
        spec = model.spec
        self.depth = spec.depth
        self.bias = spec.bias
        self.mult = [float(spec.multipliers[r]) for r in model.layer_roles()]
        self.w = [f"layers.{i}.weight" for i in range(self.depth)]
        self.b = [f"layers.{i}.bias" for i in range(self.depth)]

    def flat(self, x: torch.Tensor, per_model: bool) -> torch.Tensor:
        """Inputs flattened as MLP.forward does: (N, ...) -> (N, d), (E, N, ...) -> (E, N, d)."""
        return x.reshape(*x.shape[: 2 if per_model else 1], -1)

    def _scaled(self, params, i: int) -> torch.Tensor:
        """c_i W_i, (E, out, in): the multiplier on the weight (m^2 entries, not N m)."""
        w, c = params[self.w[i]], self.mult[i]
        return w if c == 1.0 else w * c

    def _affine(self, h, params, i: int) -> torch.Tensor:
        """c_i (h W_i^T + b_i): (N, in) or (E, N, in) -> (E, N, out)."""
        wt = self._scaled(params, i).transpose(1, 2)  # (E, in, out)
        z = torch.matmul(h, wt)  # shared h broadcasts over E
        if self.bias:
            b = params[self.b[i]].unsqueeze(1)  # (E, 1, out)
            z = z.add_(b, alpha=self.mult[i])
        return z

    def forward(self, params, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """f (E, N, k) and the layer inputs [h_0 = x, h_1, ..., h_{L-1}] (post-ReLU, each
        its own mask) that the reverse and tangent passes reuse."""
        hs = [x]
        h = x
        for i in range(self.depth):
            z = self._affine(h, params, i)
            if i < self.depth - 1:
                h = torch.relu_(z)
                hs.append(h)
            else:
                h = z
        return h, hs

    def backward(self, params, hs: list[torch.Tensor], delta: torch.Tensor) -> dict:
        """J^T delta at ``params``: ``{name: (E, ...)}`` for delta = dLoss/df (E, N, k)."""
        grads = {}
        for i in reversed(range(self.depth)):
            h, c = hs[i], self.mult[i]
            # (E, out, N) @ (E or 1, N, in) -> (E, out, in); shared x broadcasts
            gw = torch.matmul(delta.transpose(1, 2), h)
            grads[self.w[i]] = gw.mul_(c) if c != 1.0 else gw
            if self.bias:
                grads[self.b[i]] = delta.sum(1).mul_(c)
            if i > 0:
                w = self._scaled(params, i)  # (E, out, in)
                # one output: the outer product delta w as a broadcast product (a bmm with
                # an inner dimension of 1 runs ~4x slower)
                dh = delta * w if w.shape[1] == 1 else torch.bmm(delta, w)
                delta = _threshold_backward(dh, h, 0)
        return {k: grads[k] for k in params}

    def tangent(self, params, hs: list[torch.Tensor], v: dict) -> torch.Tensor:
        """J v at ``params`` (E, N, k): the forward-mode tangent of f along v = {name: (E, ...)},
        with the ReLU masks of the forward activations ``hs``."""
        s = None
        for i in range(self.depth):
            c = self.mult[i]
            vt = v[self.w[i]].transpose(1, 2)  # (E, in, out)
            t = torch.matmul(hs[i], vt)
            if s is not None:
                t = t.baddbmm_(s, params[self.w[i]].transpose(1, 2))
            if self.bias:
                t = t.add_(v[self.b[i]].unsqueeze(1))
            if c != 1.0:
                t = t.mul_(c)
            s = _threshold_backward(t, hs[i + 1], 0) if i < self.depth - 1 else t
        return s


def ntk_product(model, stacked: dict, x: torch.Tensor, per_model: bool):
    """``kv(u, active=None)``: K u for the empirical NTK K = J J^T of E stacked MLPs on x,
    u of shape (E, n, k). One forward, kept; then per product and chunk of members (as in
    :class:`BatchedMLPStep`) a reverse pass (J^T u) and a tangent pass (J v). Chunks with no
    member in ``active`` (E,) are skipped (their rows of K u are 0): the power iteration
    stops computing for members that have converged."""
    net = StackedMLP(model)
    xf = net.flat(x, per_model)
    E = next(iter(stacked.values())).shape[0]
    spec = model.spec
    e = chunk_size(E, xf.shape[-2], spec.width * (spec.depth - 1), xf.element_size(), xf.device)
    chunks = []
    for sl in (slice(i, i + e) for i in range(0, E, e)):
        p = {k: v[sl] for k, v in stacked.items()}
        chunks.append((sl, p, net.forward(p, xf[sl] if per_model else xf)[1]))

    def kv(u: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.zeros_like(u)
        for sl, p, hs in chunks:
            if active is None or bool(active[sl].any()):
                out[sl] = net.tangent(p, hs, net.backward(p, hs, u[sl]))
        return out

    return kv
