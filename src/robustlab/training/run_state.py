"""Per-model bookkeeping of the step loop: back-off, divergence, checkpoint, target, plateau,
history.

All per-model state has a leading model axis E and lives on the CPU (no device syncs beyond
one (E,) loss and accuracy per step).
"""

from __future__ import annotations

import math

import torch

from .config import PLATEAU_EVERY, PLATEAU_MIN_STEPS, TrainConfig

__all__ = ["RISE_TOL", "STOP_REASONS", "RunState"]

RISE_TOL = 1e-4  # relative loss rise that counts as "the loss went up" (above float noise)
# why a run stopped, by code: ran all its steps, reached target_loss, met the plateau rule
# (TrainConfig.plateau), diverged
STOP_REASONS = ("budget", "target", "plateau", "diverged")
_BUDGET, _TARGET, _PLATEAU, _DIVERGED = range(len(STOP_REASONS))


def masked(mask: torch.Tensor, new: dict, old: dict) -> dict:
    """Per-model choice between two stacked parameter dicts: ``new`` where ``mask`` (E,)."""
    m = mask.to(next(iter(new.values())).device)
    return {
        k: torch.where(m.reshape((-1,) + (1,) * (v.ndim - 1)), v, old[k]) for k, v in new.items()
    }


class RunState:
    """The state of E runs of one step loop.

    ``lrs`` (E,) are the current steps; ``adapt`` (E,) marks the runs whose step is halved,
    and whose last step is undone, whenever their full-batch loss rises (``lr_backoff``).
    After the loop: ``params`` (stacked), ``steps`` (updates applied), ``reason`` (why a run
    diverged, "" otherwise), ``hist_loss`` / ``hist_acc`` (E, T + 1) at w_0..w_T, ``lrs``,
    ``halvings``, the checkpoint (``ckpt_params``, ``ckpt_step``: -1 if never reached) and
    ``stopped`` (E,): why each run stopped, an index into :data:`STOP_REASONS`.
    """

    def __init__(self, cfg: TrainConfig, lrs: torch.Tensor, adapt: torch.Tensor) -> None:
        E = lrs.shape[0]
        self.cfg, self.lrs, self.adapt = cfg, lrs.clone(), adapt
        self.halvings = torch.zeros(E, dtype=torch.long)
        self.active = torch.ones(E, dtype=torch.bool)
        self.steps = torch.full((E,), cfg.steps, dtype=torch.long)
        self.reason = [""] * E
        self.stopped = torch.full((E,), _BUDGET, dtype=torch.long)
        self.hist_loss = torch.full((E, cfg.steps + 1), math.nan, dtype=torch.float64)
        self.hist_acc = torch.full((E, cfg.steps + 1), math.nan, dtype=torch.float64)
        self.ckpt_params: dict | None = None
        self.ckpt_step = torch.full((E,), -1, dtype=torch.long)
        self.params: dict = {}
        self.buffers: dict = {}  # stacked buffers after the loop (BatchNorm statistics)
        self._loss0 = self._prev = self._prev_acc = self._prev_params = None

    @property
    def any_active(self) -> bool:
        return bool(self.active.any())

    def _back_off(self, params, loss, acc):
        """GD at a stable step lowers the loss; a rise (or a non-finite loss) means the
        curvature has grown past 2/lr (progressive sharpening): undo that step and halve the
        run's step from here on."""
        undo = torch.zeros_like(self.active)
        if self._prev is None or not bool(self.adapt.any()):
            return params, loss, acc, undo
        undo = self.adapt & self.active & ~(loss <= self._prev * (1 + RISE_TOL))
        if bool(undo.any()):
            self.lrs[undo.to(self.lrs.device)] *= 0.5
            self.halvings += undo.long()
            params = masked(undo, self._prev_params, params)
            loss = torch.where(undo, self._prev, loss)
            acc = torch.where(undo, self._prev_acc, acc)
        return params, loss, acc, undo

    def _diverged(self, t: int, loss: torch.Tensor) -> torch.Tensor:
        """Runs whose loss is non-finite or ``blowup`` x its initial value at step t."""
        if self._loss0 is None:
            self._loss0 = loss.clamp_min(1e-12)
        bad = self.active & ~(torch.isfinite(loss) & (loss <= self.cfg.blowup * self._loss0))
        for i in torch.nonzero(bad).flatten().tolist():
            what = "non-finite" if not math.isfinite(loss[i]) else f"{loss[i]:.3g} (blow-up)"
            lr = float(self.lrs[i])
            self.reason[i] = f"training loss became {what} at step {t} with lr {lr:.4g}"
            self.steps[i] = t
            self.stopped[i] = _DIVERGED
        return bad

    def _checkpoint(self, t: int, params, done: torch.Tensor, loss: torch.Tensor) -> None:
        """Keep the weights of the runs whose loss first reached ``checkpoint_loss``."""
        level = self.cfg.checkpoint_loss
        first = done & (self.ckpt_step < 0) & (loss <= level) if level is not None else None
        if first is None or not bool(first.any()):
            return
        held = self.ckpt_params if self.ckpt_params is not None else params
        self.ckpt_params = {k: v.clone() for k, v in masked(first, params, held).items()}
        self.ckpt_step[first] = t

    def _plateaued(self, t: int) -> torch.Tensor:
        """(E,) the plateau rule of :class:`~.config.TrainConfig` at step t: L(s) - L(t) <
        plateau * L(s) with s = floor(4 t / 5), on the recorded losses (the product form is
        the relative decrease below ``plateau`` where L(s) > 0, and defined at L(s) = 0)."""
        before, now = self.hist_loss[:, (4 * t) // 5], self.hist_loss[:, t]
        return before - now < self.cfg.plateau * before

    def stop_reason(self, i: int) -> str:
        """Why run ``i`` stopped: one of :data:`STOP_REASONS`."""
        return STOP_REASONS[int(self.stopped[i])]

    def record(self, t: int, params, loss: torch.Tensor, acc: torch.Tensor):
        """Book the loss and accuracy (E,) of the weights after t updates; returns the
        (possibly restored) params and the runs whose last step was undone."""
        loss, acc = loss.detach().double().cpu(), acc.detach().double().cpu()
        params, loss, acc, undo = self._back_off(params, loss, acc)
        self.hist_loss[:, t], self.hist_acc[:, t] = loss, acc
        done = self.active & ~self._diverged(t, loss)
        self._checkpoint(t, params, done, loss)
        if self.cfg.target_loss is not None:
            hit = done & (loss <= self.cfg.target_loss)
            self.steps[hit] = t  # why it stopped is read off its last loss in finish()
            done = done & ~hit
        if self.cfg.plateau is not None and t >= PLATEAU_MIN_STEPS and t % PLATEAU_EVERY == 0:
            flat = done & self._plateaued(t)
            self.steps[flat], self.stopped[flat] = t, _PLATEAU
            done = done & ~flat
        self.active = done
        self._prev, self._prev_acc = loss, acc
        return params, undo

    def remember(self, params) -> None:
        """Keep the current weights, so a rejected step can be undone."""
        if bool(self.adapt.any()):
            self._prev_params = {k: v.clone() for k, v in params.items()}

    def finish(self, params) -> RunState:
        """Close the loop: the final weights, histories cut after each run's last step."""
        self.params = params
        for i in range(self.steps.shape[0]):
            self.hist_loss[i, int(self.steps[i]) + 1 :] = math.nan
        if self.cfg.target_loss is not None:
            # target_loss is checked first at every step, so a run whose last loss is at or
            # below it stopped for it (at its budget step too)
            last = self.hist_loss.gather(1, self.steps[:, None])[:, 0]  # (E,)
            self.stopped[(last <= self.cfg.target_loss) & (self.stopped != _DIVERGED)] = _TARGET
        self.lrs = self.lrs.double().cpu()
        return self
