"""A cell's result rows: :class:`Row`, checked against the schema when it is built, and
the facts of a cell that every one of its rows carries (:func:`base_row`, :func:`fit_stats`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, NoReturn

import torch

from ..theory import grad_sq_norm
from ..training.losses import accuracy, loss_value
from .schema import COLUMNS

__all__ = ["Row", "base_row", "fit_stats"]


class Row(dict):
    """One result row, ``{column: value}``, read-only.

    Built from mappings merged left to right (later keys win) and keyword columns; every key
    must be a column of :data:`robustlab.sweep.schema.COLUMNS` and every value fit the
    column's type (None is NULL; numbers for REAL, whole numbers for INTEGER, str for TEXT),
    or the row is not built: a ValueError names the column. ``row.with_(...)`` is a new row
    with more columns.
    """

    __slots__ = ()

    def __init__(self, *parts: Mapping[str, Any], **columns: Any) -> None:
        super().__init__()
        for part in (*parts, columns):
            dict.update(self, part)
        for column, value in self.items():
            _check(column, value)

    def with_(self, *parts: Mapping[str, Any], **columns: Any) -> Row:
        """This row with the columns of ``parts`` and ``columns`` set (a new row)."""
        return Row(self, *parts, columns)

    def __reduce__(self):  # pickled as its items (workers, Ray); built, so checked, again
        return (Row, (dict(self),))

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("a Row is read-only; row.with_(...) builds one with more columns")

    __setitem__ = __delitem__ = __ior__ = _read_only
    update = setdefault = pop = popitem = clear = _read_only


def _check(column: str, value: Any) -> None:
    kind = COLUMNS.get(column)
    if kind is None:
        raise ValueError(
            f"result row: unknown column {column!r} (see robustlab.sweep.schema.COLUMNS)"
        )
    if value is None or (isinstance(value, str) if kind == "TEXT" else _number(kind, value)):
        return
    raise ValueError(f"result row: column {column!r} ({kind}) cannot hold {value!r}")


def _number(kind: str, value: Any) -> bool:
    if isinstance(value, str) or not isinstance(value, numbers.Real):
        return False
    return kind == "REAL" or float(value).is_integer()


def fit_stats(model, ds, loss_name: str) -> dict[str, float]:
    """Loss and accuracy of ``model`` on the training and test points (test: when there are)."""
    out = {}
    with torch.no_grad():
        for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
            if x is None or x.shape[0] == 0:
                continue
            g = model(x).reshape(x.shape[0], -1)  # (n, k)
            out[f"{split}_loss"] = float(loss_value(loss_name, g, y))
            out[f"{split}_acc"] = float(accuracy(g, y))
    return out


def _theory_grad_sq(spec) -> float:
    """Closed-form E||grad_x f||^2 at init where one exists (ReLU MLPs; biases start at 0),
    from the variances the network records (any scheme and parameterization)."""
    if getattr(spec, "family", "mlp") != "mlp":
        return math.nan
    return grad_sq_norm(spec.variances, spec.in_dim, spec.width, spec.depth, spec.out_dim)


def base_row(cell, ds, net) -> Row:
    """The cell's facts, on every one of its rows: its axes, its data and network at init."""
    spec = net.spec
    # (s1, s2, s3) for MLPs; one per layer for CNNs, ResNets and builders' networks (none
    # under init 'own': the builder's own weights)
    v = spec.variances or (math.nan,)
    s1, s2, s3 = v[0], v[1] if len(v) > 2 else math.nan, v[-1]
    with torch.no_grad():
        f0 = net(ds.x_train).reshape(ds.x_train.shape[0], -1)
    y = ds.y_train.to(f0.dtype).reshape(f0.shape[0], -1) if ds.y_train.is_floating_point() else None
    return Row(
        sweep=cell.sweep,
        sweep_hash=cell.config.hash,
        cell=cell.hash,
        seed=cell.seed,
        data_seed=cell.data.draw(cell.seed).seed,
        width=cell.width,
        depth=cell.depth,
        init=cell.init,
        regime=cell.regime,
        alpha=cell.alpha,
        dataset=str(cell.data.name),
        in_dim=spec.in_dim,
        out_dim=spec.out_dim,
        n_train=int(ds.x_train.shape[0]),
        n_params=spec.n_params,
        s1=s1,
        s2=s2,
        s3=s3,
        theory_grad_sq=_theory_grad_sq(spec),
        target_loss=cell.train.target_loss,
        y_f0_ratio=float(torch.linalg.norm(y) / torch.linalg.norm(f0))
        if y is not None
        else math.nan,
        label_scale=float(ds.meta["options"]["label_scale"]),  # c: y_f0_ratio scales with it
        config_json=cell.config_json(),
    )
