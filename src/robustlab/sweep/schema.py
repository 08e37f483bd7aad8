"""The tidy result row: one row per measurement (cell x moment x eps x method x model).

This is the contract between the sweep runner (writes), the store (persists), the claims
(judge) and the report (draws). Every row carries the cell's full config and versions, so
a row can be reproduced alone (docs/definitions.md).
"""

from __future__ import annotations

# column name -> SQLite type; order is the table's column order
COLUMNS: dict[str, str] = {
    # identity
    "sweep": "TEXT",  # sweep name from the config
    "cell": "TEXT",  # hash of the cell's full config (config_json); primary identity of a cell
    "seed": "INTEGER",
    # axes
    "width": "INTEGER",
    "depth": "INTEGER",
    "init": "TEXT",  # scheme name
    "regime": "TEXT",  # standard | linearized | lazy | mean_field
    "alpha": "REAL",  # alpha-scaling factor (1.0 unless regime lazy)
    # data / model facts
    "dataset": "TEXT",
    "in_dim": "INTEGER",
    "out_dim": "INTEGER",
    "n_train": "INTEGER",  # N
    "n_params": "INTEGER",  # p
    "s1": "REAL",  # effective init variances of the scheme for (d, m, k)
    "s2": "REAL",
    "s3": "REAL",
    # outcome of the cell
    "status": "TEXT",  # ok | diverged | failed
    "message": "TEXT",  # reason for diverged/failed, '' when ok
    # the measurement
    "stage": "TEXT",  # init | checkpoint (looser loss level) | final (was "at" in older stores)
    "eps": "REAL",
    "method": "TEXT",  # exact | jacobian | mc | finite_difference | pgd (worst case)
    "region": "TEXT",  # ball | sphere
    "model": "TEXT",  # network f(x; w) | centred alpha (f - f0) | linearized (Taylor model)
    "p_value": "REAL",  # perturbation stability P (NULL on worst-case rows)
    "p_stderr": "REAL",
    "grad_norm": "REAL",  # mean ||grad_x f|| (or ||J||_F) over the evaluation points
    "theory_grad_sq": "REAL",  # closed-form E||grad_x f||^2 at init (docs/definitions.md)
    # training outcome (cell level, repeated on each of its rows; NULL at 'init' where unknown)
    "train_loss": "REAL",
    "test_loss": "REAL",
    "train_acc": "REAL",
    "test_acc": "REAL",
    "rel_weight_change": "REAL",  # ||W_T - W_0||_F / ||W_0||_F, whole network
    "ntk_change": "REAL",  # relative empirical-NTK change on a probe batch
    "pattern_flip": "REAL",  # fraction of ReLU activation patterns flipped
    "lr": "REAL",
    "steps": "INTEGER",
    "time_s": "REAL",  # wall time of the cell (train + measure)
    # provenance
    "config_json": "TEXT",  # the cell's full config as canonical JSON
    "robustlab_version": "TEXT",
    "torch_version": "TEXT",
    "created_at": "TEXT",  # ISO-8601 UTC
    # appended later (older stores gain them as NULL columns)
    "sweep_hash": "TEXT",  # hash of the whole sweep config: claims/figures group by it
    "points": "TEXT",  # test | train: the points P was measured on
    "target_loss": "REAL",  # the training-loss target of the run (NULL: none)
    "reached_target": "INTEGER",  # 1 when the final training loss is <= target_loss
    "lr_final": "REAL",  # step size after the back-offs
    "lr_halvings": "INTEGER",  # how often lr="auto" halved the step (loss rose)
    "grad_lin_dev": "REAL",  # ||g_T - g_lin,T|| / ||g_T - g_0|| from the linearized twin
    "y_f0_ratio": "REAL",  # ||y_train|| / ||f(X_train; w0)||: label scale against f_0
    "data_seed": "INTEGER",  # seed of the data draw (the run seed)
    "p_lazy_limit": "REAL",  # P of the infinite-width lazy limit on the same data (converged)
    "worst_value": "REAL",  # method pgd: mean_x max ||f(x') - f(x)|| over the region (else NULL)
    "worst_stderr": "REAL",
    "label_scale": "REAL",  # c: the targets were multiplied by c (data option label_scale; 1.0)
    "stop_reason": "TEXT",  # why training stopped: target | plateau | budget | diverged
}

# columns renamed since a store was written: old name -> current name. The store renames them
# in the file when it opens it for writing and in the frame when it reads it (sweep.store).
RENAMED: dict[str, str] = {"at": "stage"}
# methods whose value is a worst case: in worst_value/worst_stderr (p_value in older stores)
WORST_METHODS = ("pgd",)

STATUSES = ("ok", "diverged", "failed")

# keys of a sweep config that say how its results are reported, not what is run: they are
# left out of the sweep's identity (SweepConfig.hash, the rows' sweep_hash) and a store
# takes a config that differs from the one it holds only in them as the same sweep
PRESENTATION_KEYS = ("claims",)


def identity(config: dict) -> dict:
    """A sweep config (``SweepConfig.to_dict()``) less its :data:`PRESENTATION_KEYS`: what
    the sweep's hash is of, and what a store compares."""
    return {k: v for k, v in config.items() if k not in PRESENTATION_KEYS}
