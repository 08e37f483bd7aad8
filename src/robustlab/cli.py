"""robustlab: how width, depth, initialization and training change a network's average robustness.

Exit codes: 0 success, 2 bad input (one line ``robustlab: error: ...``), 1 internal failure.
Set ROBUSTLAB_DEBUG=1 to see the traceback of an internal failure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager

from ._checks import MAX_AXIS, MAX_INT, first_line, range_values, short

__all__ = ["main"]


class UsageError(ValueError):
    """Bad command-line input."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + 2 lines)
        raise UsageError(message)


def _decimal(text: str) -> int | None:
    """The integer ``text`` writes in decimal (a sign allowed), None if it writes none; one
    beyond int64 is an error (and never converted: Python refuses 4300 digits)."""
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    if len(digits) > len(str(MAX_INT)) or abs(int(text)) > MAX_INT:
        raise argparse.ArgumentTypeError(f"{short(text)} is out of range (at most {MAX_INT})")
    return int(text)


def int_list(text: str) -> list[int]:
    """'2:12' (inclusive), '2:12:2', '16,32,64' or '8' -> list of ints (at most MAX_AXIS,
    a range counted before it is expanded)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if ":" in part:
            bits = [_decimal(b) for b in part.split(":")]
            if len(bits) not in (2, 3) or None in bits:
                raise argparse.ArgumentTypeError(f"bad range {short(part)}; use a:b or a:b:step")
            a, b, *rest = bits
            try:
                out.extend(range_values(part, a, b, rest[0] if rest else 1))
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
        elif (value := _decimal(part)) is not None:
            out.append(value)
        else:
            raise argparse.ArgumentTypeError(
                f"expected integers or a range like 2:12, got {short(part)}"
            )
        if len(out) > MAX_AXIS:
            raise argparse.ArgumentTypeError(f"more than {MAX_AXIS} values in {short(text)}")
    return out


def init_list(text: str) -> list[str]:
    """'lecun,he,custom(1,0.5,2)' -> ['lecun', 'he', 'custom(1,0.5,2)']: commas inside
    parentheses belong to a custom scheme, not to the list."""
    names, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth <= 0:
            names.append(current)
            current = ""
        else:
            current += ch
    names = [n.strip() for n in [*names, current] if n.strip()]
    if not names:
        raise UsageError(f"--init needs at least one scheme name, got {short(text)}")
    return names


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {short(text)}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {v:g}")
    return v


def _float_list(text: str) -> list[float]:
    """'0.1,1,3' -> [0.1, 1.0, 3.0] (finite numbers)."""
    try:
        out = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.1,1,3, got {short(text)}"
        ) from None
    if not all(math.isfinite(v) for v in out):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {short(text)}")
    return out


def _int_in(text: str, minimum: int = 1, maximum: int = MAX_INT) -> int:
    """An integer in [minimum, maximum] written in decimal."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    v = _decimal(text)
    if v is None or v < minimum:
        got = short(text) if v is None else v
        raise argparse.ArgumentTypeError(f"expected {kind}, got {got}")
    if v > maximum:
        raise argparse.ArgumentTypeError(f"expected at most {maximum}, got {v}")
    return v


def _positive_int(text: str) -> int:
    return _int_in(text)


def _seed_count(text: str) -> int:
    """--seeds: how many networks, 1..MAX_AXIS."""
    return _int_in(text, 1, MAX_AXIS)


def _seed(text: str) -> int:
    """--seed: 0..2**63 - 1, what a generator and the store hold."""
    return _int_in(text, 0)


def _emit(rows: list[dict], fmt: str, columns: Sequence[str]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(columns))
    if fmt == "json":
        # NaN/inf (e.g. theory columns that do not apply for k > 1) are not JSON: null
        clean = [
            {c: None if isinstance(v, float) and not math.isfinite(v) else v for c, v in r.items()}
            for r in rows
        ]
        print(json.dumps(clean, indent=2, default=float, allow_nan=False))
    elif fmt == "csv":
        print(df.to_csv(index=False), end="")
    else:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.6g}"))


def _progress(total: int, desc: str, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=quiet or not sys.stderr.isatty(), file=sys.stderr)


@contextmanager
def _status(prefix: str, quiet: bool):
    """Yield a callback that shows each step of long work (``"figure 3/9: p_by_width"``) on
    one line of stderr with the time so far, cleared at the end; like the progress bars, only
    on a terminal and not with --quiet, so stdout and redirected output stay clean."""
    import time

    show, start = not quiet and sys.stderr.isatty(), time.monotonic()

    def say(text: str) -> None:
        if show:
            sys.stderr.write(f"\r\033[K{prefix}: {text} ({time.monotonic() - start:.0f} s)")
            sys.stderr.flush()

    try:
        yield say
    finally:
        if show:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ----------------------------------------------------------------------------- measure
def _device(text: str):
    """--device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N."""
    import torch

    from ._device import check_device

    return torch.device(check_device(text))


def _output_selector(text: str):
    """--output: 'margin', 'label', a dict key, an index, or several joined by commas."""
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(
            f"expected e.g. 0, logits, margin or logits,margin: {short(text)}"
        )
    steps = tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)
    return steps[0] if len(steps) == 1 else steps


def _shape(text: str) -> tuple[int, ...]:
    """--input-shape '1,28,28' -> (1, 28, 28)."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 1,28,28, got {short(text)}") from None
    if not all(v >= 1 for v in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {short(text)}")
    return shape


def _clip(text: str) -> tuple[float, float]:
    """--clip '0,1' -> (0.0, 1.0)."""
    bits = text.split(",")
    try:
        lo, hi = (float(v) for v in bits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI like 0,1, got {short(text)}") from None
    return lo, hi


def _measure_saved(a: argparse.Namespace, dtype, device) -> list[dict]:
    """P of a saved model (any format models.load_model reads) on the points of --data."""
    from .measure import measure_saved

    if a.data is None:
        raise UsageError("--model needs --data FILE (.npz, .npy, .pt or .csv) with the points")
    spec = None
    if a.in_dim is not None and a.width is not None and a.depth is not None:
        if len(a.width) != 1 or len(a.depth) != 1:
            raise UsageError("--model takes one --width and one --depth (the saved shape)")
        spec = dict(
            in_dim=a.in_dim,
            width=a.width[0],
            depth=a.depth[0],
            out_dim=a.out_dim,
            init=None if a.init is None else init_list(a.init)[0],
            bias=a.bias,
            mean_field=a.mean_field,
        )
    if a.model_class is not None:
        _cwd_on_path()
    with _progress(len(a.eps), "points", a.quiet) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return measure_saved(
            a.model, a.data, a.eps, method=_methods(a), region=a.region, n_samples=a.samples,
            output=a.output, split=a.split, input_shape=a.input_shape, points=a.points,
            clip=a.clip, spec=spec, model_class=a.model_class, model_kwargs=a.model_kwargs,
            dtype=dtype, device=device, progress=update,
        )  # fmt: skip


def cmd_measure(a: argparse.Namespace) -> int:
    import torch

    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    device = _device(a.device)
    if a.model is not None:  # a saved model on given points
        rows = _measure_saved(a, dtype, device)
    else:  # random networks at init
        rows = _measure_random(a, dtype, device)
    _emit(rows, a.format, rows[0].keys())
    return 0


def _methods(a: argparse.Namespace) -> list[str]:
    """--methods, or the one --method (the two are mutually exclusive)."""
    return a.methods or [a.method]


def _method_list(text: str) -> list[str]:
    """--methods 'exact,pgd' -> ['exact', 'pgd'], checked by the library."""
    from .measure import split_methods

    names = [name.strip() for name in text.split(",")]
    try:
        split_methods(names)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return names


def _measure_random(a: argparse.Namespace, dtype, device) -> list[dict]:
    """P and/or its worst case of random MLPs at init (rl.measure.measure_at_init)."""
    from .measure import measure_at_init

    if a.in_dim is None or a.width is None or a.depth is None:
        raise UsageError(
            "measure needs --in-dim, --width and --depth (or --model FILE --data FILE)"
        )
    for flag in ("model_class", "model_kwargs", "output", "input_shape", "clip", "mean_field"):
        value = getattr(a, flag)
        if value is not None and value is not False:
            raise UsageError(f"--{flag.replace('_', '-')} applies to --model FILE")
    inits, methods = init_list(a.init or "lecun"), _methods(a)
    total = len(inits) * len(a.width) * len(a.depth) * len(a.eps) * a.seeds * len(methods)
    with _progress(total, "measure", a.quiet) as bar:
        return measure_at_init(
            inits, a.in_dim, a.width, a.depth, a.eps, methods=methods, seeds=a.seeds,
            points=a.points or 1000, region=a.region, n_samples=a.samples, out_dim=a.out_dim,
            dtype=dtype, device=device, progress=lambda: bar.update(1),
        )  # fmt: skip


# ----------------------------------------------------------------------------- theory
def cmd_theory(a: argparse.Namespace) -> int:
    from .theory import after_training_table, init_table

    if a.after_training:
        bar = _progress(None, "lazy limit", a.quiet)  # one step per (init, depth, width, model)
        rows = after_training_table(
            data=a.data,
            n_train=a.n_train,
            n_test=a.n_test,
            in_dim=a.in_dim,
            seed=a.seed,
            data_options=None if a.teacher is None else {"teacher": a.teacher},
            inits=init_list(a.init),
            depths=a.depth,
            eps=a.eps,
            label_scales=a.label_scale,
            steps=a.steps,
            lr=a.lr,
            widths=a.width or [None],
            models=a.model.split(","),
            region=a.region,
            progress=lambda done, total: _advance(bar, done, total),
        )
        bar.close()
        _emit(rows, a.format, rows[0].keys())
        return 0
    if a.in_dim is None or a.width is None:
        raise UsageError("theory needs --in-dim and --width (or --after-training)")
    rows = init_table(init_list(a.init), a.in_dim, a.width, a.depth, a.eps, a.region)
    _emit(rows, a.format, rows[0].keys())
    return 0


def _advance(bar, done: int, total: int) -> None:
    """Move a tqdm bar to ``done`` of ``total`` (a library's ``progress(done, total)``)."""
    bar.total = total
    bar.update(done - bar.n)


# ----------------------------------------------------------------------------- sweeps
@contextmanager
def _sweep_progress(quiet: bool):
    """Yield a callback feeding a tqdm bar from the runner's Progress: cells done of all,
    the group started last of all groups, failures, ETA; shown from the sweep's start."""
    state: dict = {}

    def update(p) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = _progress(p.total, "cells", quiet)
        bar.n = p.done
        running = f" ({p.running} running)" if p.running > 1 else ""
        bar.set_postfix_str(
            f"group {p.started}/{p.groups}{running}, failed {p.failed}, diverged {p.diverged}",
            refresh=False,
        )
        bar.refresh()

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].close()


def _summary_line(s) -> str:
    return (
        f"{s.name}: {s.total} cells, {s.skipped} already stored, ran {s.ok} ok, "
        f"{s.diverged} diverged, {s.failed} failed in {s.time_s:.1f} s -> {s.store}"
    )


def _cwd_on_path() -> None:
    """Put the current folder first on sys.path, as ``python -m`` does, so that a user's
    ``package.module:name`` (a model class, a sweep's model builder) is found from here."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def cmd_sweep(a: argparse.Namespace) -> int:
    from .sweep import load_config, run

    _cwd_on_path()  # model.family: package.module:name relative to here
    config = load_config(a.config, a.overrides)  # a bad override: exit 2, nothing written
    _quiet_mlflow(a.mlflow)
    with _sweep_progress(a.quiet) as update:
        summary = run(
            config,
            a.store,
            executor=a.executor,
            workers=a.workers,
            address=a.address,
            retry_failed=a.retry_failed,
            dtype=a.dtype,
            device=a.device,
            progress=update,
            mlflow=a.mlflow,
        )
    print(_summary_line(summary) + summary.notes)
    return _tracking_status(summary)


def _mlflow_uri(text: str) -> str:
    """--mlflow URI: a tracking URI. A word like ``train.steps=5`` is an override that
    argparse gave to --mlflow (its URI is optional): refused, with how to write both."""
    name = text.split("=", 1)[0]
    if "=" in text and name and all(part.isidentifier() for part in name.split(".")):
        raise argparse.ArgumentTypeError(
            f"{short(text)} is a config override, not a tracking URI: put the overrides "
            "before --mlflow, or write --mlflow=URI"
        )
    return text


def _quiet_mlflow(mlflow: bool | str) -> None:
    """With --mlflow, MLflow logs at WARNING and above (not its INFO lines, such as the
    creation of its tables, among the bar and robustlab's own lines), unless the user set
    MLFLOW_LOGGING_LEVEL, MLflow's own setting, read when it is first imported."""
    if mlflow:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _tracking_status(s) -> int:
    """Print where the cells were logged to MLflow; exit status 1 when the logging stopped
    (every result is in the store all the same)."""
    if s.tracking_note:
        print(s.tracking_note)
    if not s.tracking_error:
        return 0
    print(
        f"robustlab: error: MLflow logging stopped: {s.tracking_error}; every result is in "
        "the store: run the same command again to log the cells MLflow lacks",
        file=sys.stderr,
    )
    return 1


def cmd_export(a: argparse.Namespace) -> int:
    from .sweep import export

    path = export(a.store, a.output, fmt=a.format, overwrite=a.force)
    print(f"wrote {path}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .report import build

    with _status("report", a.quiet) as say:
        path = build(a.store, a.output, figures_dir=a.figures, overwrite=a.force,
                     claims=a.claims, progress=say)  # fmt: skip
    print(f"report: {path}")
    return 0


def _claims_table(df) -> str:
    cols = ["claim", "verdict", "slope", "ci_low", "ci_high", "effect", "monotone", "n_runs",
            "n_excluded", "train_loss_max", "robust_share"]  # fmt: skip
    view = df[cols].rename(
        columns={"n_excluded": "excl", "train_loss_max": "loss_max", "robust_share": "robust"}
    )
    return view.to_string(index=False, float_format=lambda v: f"{v:+.3g}")


def _protocol(a: argparse.Namespace):
    """The claims protocol with the thresholds given on the command line."""
    from .claims import Protocol

    given = {"lazy_threshold": a.lazy_threshold, "nonlazy_threshold": a.nonlazy_threshold}
    return Protocol(**{k: v for k, v in given.items() if v is not None})


def cmd_reproduce(a: argparse.Namespace) -> int:
    from .reproduce import reproduce

    _quiet_mlflow(a.mlflow)
    with _sweep_progress(a.quiet) as update:
        res = reproduce(
            a.out,
            mode="full" if a.full else "quick",
            executor=a.executor,
            workers=a.workers,
            address=a.address,
            progress=update,
            protocol=_protocol(a),
            overrides=a.overrides,
            mlflow=a.mlflow,
        )
    print(_summary_line(res.summary) + res.summary.notes)
    print()
    print(_claims_table(res.claims))
    for _, row in res.claims.iterrows():
        if isinstance(row["reason"], str) and row["reason"]:
            print(f"  {row['claim']}: {row['reason']}")
    print()
    print(f"claims: {res.claims_csv}")
    print(f"sensitivity: {res.sensitivity_csv}")
    print(f"report: {res.report}")
    return _tracking_status(res.summary)


FORMATS = ["table", "csv", "json"]  # what _emit prints
_FORMAT_HELP = "output: aligned table, CSV or JSON, on stdout (default %(default)s)"
_QUIET_HELP = "no progress bar (it is shown on stderr only when stderr is a terminal)"
_EXECUTOR_HELP = "local: worker processes (default); serial: this process; ray: a Ray cluster"
_MLFLOW_HELP = (
    "log each stored cell to MLflow, one experiment per sweep and one run per cell (needs "
    "pip install 'robustlab[mlflow]'): to the tracking URI given, else to an SQLite "
    "tracking store beside the results, {where}"
)
_OVERRIDES_HELP = (
    "set a key of the config before it is read, e.g. train.steps=500 grid.width=[16,32]: "
    "the value is YAML, checked like the file's own keys, and part of the stored config; "
    "a missing section is created"
)


def _add_measure(m) -> None:
    from .data.config import DTYPES
    from .data.points import SPLITS
    from .measure import MEASURE_METHODS
    from .metrics import REGIONS

    m.add_argument("--init", default=None, help="scheme(s), comma-separated (default lecun)")
    m.add_argument(
        "--in-dim", type=_positive_int,
        help="input dimension d (points uniform on the unit sphere S^(d-1)); with --model, "
        "a bare state dict's MLP shape",
    )  # fmt: skip
    m.add_argument(
        "--width", type=int_list, help="hidden width(s), e.g. 256, 16,64,256 or 16:64:16"
    )
    m.add_argument("--depth", type=int_list, help="weight layers L, e.g. 5 or 2:8")
    m.add_argument(
        "--out-dim", type=_positive_int, default=1, help="network outputs k (default %(default)s)"
    )
    m.add_argument(
        "--bias", action="store_true",
        help="with --model: a bare state dict's MLP has biases (random networks have none)",
    )  # fmt: skip
    m.add_argument(
        "--eps", type=_positive_float, nargs="+", default=[0.1],
        help="perturbation radius, one or more (default 0.1); one row per value",
    )  # fmt: skip
    m.add_argument(
        "--seeds", type=_seed_count, default=10,
        help="random networks per setting, seeds 0..N-1, P averaged (default %(default)s)",
    )  # fmt: skip
    m.add_argument(
        "--points", type=_positive_int, default=None,
        help="evaluation points (default 1000; with --model, the first N of --data, default all)",
    )  # fmt: skip
    how = m.add_mutually_exclusive_group()
    how.add_argument(
        "--method", choices=list(MEASURE_METHODS), default="auto",
        help="how P is computed (default %(default)s: exact for one output on ball/sphere, "
        "else jacobian or mc), or pgd: the worst case over the same region instead of P "
        "(projected gradient ascent, 20 steps, 3 restarts)",
    )  # fmt: skip
    how.add_argument(
        "--methods", type=_method_list, metavar="M1,M2",
        help="several methods instead of --method, e.g. exact,pgd: a row per average "
        "method, with pgd's worst case (worst_mean or worst_value, worst_stderr) and "
        "worst_over_p = worst / P beside its P",
    )  # fmt: skip
    m.add_argument(
        "--region", choices=list(REGIONS), default="ball",
        help="where x' is drawn around x: L2 ball, L2 sphere or L-inf cube of radius eps "
        "(default %(default)s)",
    )  # fmt: skip
    m.add_argument(
        "--samples", type=_positive_int, default=None,
        help="perturbations per point (default: mc and finite_difference 64, jacobian 1024)",
    )  # fmt: skip
    m.add_argument(
        "--dtype", choices=list(DTYPES), default="float32",
        help="floating-point precision of the networks and points (default %(default)s)",
    )  # fmt: skip
    m.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda")
    m.add_argument(
        "--model", help="saved model: robustlab .pt, state dict, TorchScript or torch.export .pt2"
    )
    m.add_argument("--model-class", help="package.module:Class for a state dict of your network")
    m.add_argument("--model-kwargs", help="JSON object of Class arguments, e.g. '{\"width\": 64}'")
    m.add_argument(
        "--mean-field", action="store_true", help="a bare state dict's MLP is mean-field"
    )
    m.add_argument(
        "--output", type=_output_selector, help="what to measure: index, key, margin, label"
    )
    m.add_argument("--input-shape", type=_shape, help="one input's shape, e.g. 1,28,28")
    m.add_argument("--clip", type=_clip, help="input box LO,HI (finite_difference), e.g. 0,1")
    m.add_argument("--data", help="points for --model: .npz, .npy, .pt, .csv or a data set")
    m.add_argument(
        "--split", choices=list(SPLITS), default="all",
        help="with --model: which rows of a labelled data set to use (default %(default)s)",
    )  # fmt: skip
    m.add_argument("--format", choices=FORMATS, default="table", help=_FORMAT_HELP)
    m.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    m.set_defaults(func=cmd_measure)


def _add_theory(t) -> None:
    from .data.synthetic import TEACHERS
    from .theory import REGIONS as THEORY_REGIONS

    t.add_argument(
        "--init", default="lecun,he,ntk", help="scheme(s), comma-separated (default %(default)s)"
    )
    t.add_argument("--in-dim", type=_positive_int, help="required at init; data dim after")
    t.add_argument("--width", type=int_list, help="required at init; default inf after")
    t.add_argument(
        "--depth", type=int_list, required=True,
        help="weight layers L (required), e.g. 5 or 2:8; one row per depth",
    )  # fmt: skip
    t.add_argument(
        "--eps", type=_positive_float, default=0.1,
        help="perturbation radius (default %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--region", choices=list(THEORY_REGIONS), default="ball",
        help="x' uniform in the L2 ball or on the L2 sphere of radius eps (default %(default)s)",
    )  # fmt: skip
    t.add_argument("--format", choices=FORMATS, default="table", help=_FORMAT_HELP)
    t.add_argument(
        "--after-training", action="store_true", help="P of the infinite-width lazy limit"
    )
    t.add_argument("--data", default="sphere", help="--after-training data (default sphere)")
    t.add_argument(
        "--teacher", choices=list(TEACHERS), default=None, help="sphere teacher (default relu)"
    )
    t.add_argument(
        "--n-train", type=_positive_int, default=100,
        help="--after-training training points (default %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--n-test", type=_positive_int, default=500,
        help="--after-training points P is measured on (default %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--seed", type=_seed, default=0,
        help="seed of the data and of the Monte Carlo directions (default %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--label-scale", type=_float_list, default=[1.0],
        help="factor(s) on the training labels, e.g. 0.1,1,3 (default 1)",
    )  # fmt: skip
    t.add_argument(
        "--steps", type=_positive_int, default=None,
        help="gradient-descent steps (default: trained to convergence)",
    )  # fmt: skip
    t.add_argument(
        "--lr", type=_positive_float, default=None,
        help="gradient-descent step size with --steps (default auto: N / largest NTK eigenvalue)",
    )  # fmt: skip
    t.add_argument("--model", default="network", help="network and/or linearized (Taylor)")
    t.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    t.set_defaults(func=cmd_theory)


def _add_sweep(s) -> None:
    from .data.config import DTYPES
    from .sweep.executors import EXECUTORS

    s.add_argument("config", help="sweep YAML file")
    s.add_argument("overrides", nargs="*", metavar="KEY.PATH=VALUE", help=_OVERRIDES_HELP)
    s.add_argument("--store", required=True, help="SQLite results file (created if missing)")
    s.add_argument("--executor", choices=list(EXECUTORS), default="local", help=_EXECUTOR_HELP)
    s.add_argument("--address", default=None, help="Ray cluster address (e.g. auto)")
    s.add_argument(
        "--workers", type=_positive_int, default=None,
        help="worker processes or Ray CPUs (default: one per core)",
    )  # fmt: skip
    s.add_argument("--retry-failed", action="store_true", help="re-run cells recorded as failed")
    s.add_argument(
        "--dtype", choices=list(DTYPES), default="float32",
        help="floating-point precision of training and measuring (default %(default)s)",
    )  # fmt: skip
    s.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    s.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    s.add_argument(
        "--mlflow", nargs="?", const=True, default=False, metavar="URI", type=_mlflow_uri,
        help=_MLFLOW_HELP.format(where="STORE-mlflow/mlflow.db (results.db: results-mlflow/)"),
    )  # fmt: skip
    s.set_defaults(func=cmd_sweep)


_FORCE_HELP = "replace an existing output file (never an SQLite database or the store)"


def _add_export(e) -> None:
    from .sweep.store import EXPORT_FORMATS

    e.add_argument("store", help="SQLite results file written by 'robustlab sweep'")
    e.add_argument(
        "--format", choices=list(EXPORT_FORMATS), default=None,
        help="file format (default: from the output's suffix, .parquet or .csv; Parquet "
        "needs pyarrow: pip install 'robustlab[parquet]')",
    )  # fmt: skip
    e.add_argument("-o", "--output", required=True, help="file to write (required)")
    e.add_argument("--force", action="store_true", help=_FORCE_HELP)
    e.set_defaults(func=cmd_export)


def _add_report(r) -> None:
    r.add_argument("store", help="SQLite results file written by 'robustlab sweep'")
    r.add_argument(
        "-o", "--output", default="report.html", help="HTML file to write (default %(default)s)"
    )
    r.add_argument("--figures", default=None, help="also keep PNG/PDF figures in this folder")
    r.add_argument("--force", action="store_true", help=_FORCE_HELP)
    r.add_argument(
        "--claims", action=argparse.BooleanOptionalAction, default=None,
        help="add (or, --no-claims, leave out) the section judging the paper's claims "
        "C1..C5 (default: when a stored sweep config lists claims, as the presets do)",
    )  # fmt: skip
    r.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    r.set_defaults(func=cmd_report)


def _add_reproduce(p) -> None:
    from .claims import Protocol
    from .sweep.executors import EXECUTORS

    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true",
        help="about 1.5 min on 2 CPU cores (measured: 1 min 35 s with pip install); the default",
    )  # fmt: skip
    mode.add_argument(
        "--full", action="store_true", help="about 6 min on 2 CPU cores (measured: 5 min 43 s)"
    )
    p.add_argument("--out", default="robustlab-out", help="output folder (default robustlab-out)")
    p.add_argument("--executor", choices=list(EXECUTORS), default="local", help=_EXECUTOR_HELP)
    p.add_argument("--address", default=None, help="Ray cluster address (e.g. auto)")
    p.add_argument(
        "--workers", type=_positive_int, default=None,
        help="worker processes or Ray CPUs (default: one per core)",
    )  # fmt: skip
    p.add_argument(
        "--lazy-threshold", type=_positive_float, default=None,
        help="C3/C4 on standard runs: max weight and NTK change of a lazy run "
        f"(default {Protocol.lazy_threshold:g})",
    )  # fmt: skip
    p.add_argument(
        "--nonlazy-threshold", type=_positive_float, default=None,
        help=f"C5: min weight change of every mean-field run (default "
        f"{Protocol.nonlazy_threshold:g})",
    )  # fmt: skip
    p.add_argument(
        "overrides", nargs="*", metavar="KEY.PATH=VALUE",
        help="set a key of every preset sweep, e.g. train.steps=500 (as for 'robustlab "
        "sweep'); the store keeps one config per sweep, so other overrides need another --out",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    p.add_argument(
        "--mlflow", nargs="?", const=True, default=False, metavar="URI", type=_mlflow_uri,
        help=_MLFLOW_HELP.format(where="OUT/results-mlflow/mlflow.db")
        + "; the report, claims.csv and sensitivity.csv in a run of experiment "
        "robustlab-reproduce-MODE",
    )  # fmt: skip
    p.set_defaults(func=cmd_reproduce)


# ----------------------------------------------------------------------------- parser
# name, one line of help, an example: the top-level help lists these without loading the
# library (it needs no torch); each command's own options come from its _add_* function
COMMANDS = (
    ("measure", "P of random networks at init, or of a saved model on data",
     "robustlab measure --init he --in-dim 20 --width 256 --depth 5 --eps 0.1", _add_measure),
    ("theory", "closed-form P at init, or of the infinite-width lazy limit after training",
     "robustlab theory --after-training --init lecun,he --depth 2:8 --label-scale 0.1,1",
     _add_theory),
    ("sweep", "run a sweep config into a SQLite store (resumable)",
     "robustlab sweep sweep.yaml --store results.db", _add_sweep),
    ("export", "export a store's results to Parquet or CSV",
     "robustlab export results.db --format csv -o results.csv", _add_export),
    ("report", "self-contained HTML report of a store",
     "robustlab report results.db -o report.html", _add_report),
    ("reproduce", "test the paper's claims C1..C5 end to end",
     "robustlab reproduce --quick --out robustlab-out", _add_reproduce),
)  # fmt: skip


def build_parser(*, light: bool = False) -> argparse.ArgumentParser:
    """The argument parser of the ``robustlab`` command; ``light``: the commands without
    their options (for the top-level help and --version, which load nothing else)."""
    from ._version import __version__

    examples = "\n".join(f"  {example}" for _, _, example, _ in COMMANDS)
    p = _Parser(
        prog="robustlab",
        description=__doc__.splitlines()[0],
        epilog=f"examples:\n{examples}\n\n'robustlab COMMAND --help' lists a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"robustlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text, example, add in COMMANDS:
        s = sub.add_parser(name, help=help_text, description=f"{help_text}.",
                           epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        if not light:
            add(s)
    return p


_LIGHT = ([], ["-h"], ["--help"], ["--version"])


def _take_overrides(args: argparse.Namespace, extra: list[str]) -> None:
    """Add the KEY.PATH=VALUE words argparse left over to the command's overrides.

    argparse fills a positional list only from the words before the first option, so in
    ``sweep c.yaml --store s.db train.steps=5`` the override comes back unrecognised; any
    other leftover word is an error, as parse_args would say.
    """
    takes = hasattr(args, "overrides")
    wrong = [w for w in extra if not takes or w.startswith("-")]
    if wrong:
        raise UsageError(f"unrecognized arguments: {' '.join(wrong)}")
    if extra:
        args.overrides = [*args.overrides, *extra]


_MESSAGE_CHARS = 400  # a longer message is cut (the values it shows are cut already)
_ASK_LESS = "ask for less: fewer points, seeds or cells, a narrower or shallower network"


def _out_of_memory(err: Exception) -> bool:
    """A MemoryError, or torch's failed allocation (a RuntimeError on CPU, OutOfMemoryError
    on CUDA)."""
    torch = sys.modules.get("torch")
    return (
        isinstance(err, MemoryError)
        or (torch is not None and isinstance(err, torch.cuda.OutOfMemoryError))
        or (isinstance(err, RuntimeError) and "can't allocate memory" in str(err)[:500])
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run one library call, map errors to exit codes."""
    try:
        try:
            words = list(sys.argv[1:] if argv is None else argv)
            args, extra = build_parser(light=words in _LIGHT).parse_known_args(words)
        except SystemExit as stop:  # --help / --version
            return int(stop.code or 0)
        _take_overrides(args, extra)
        for name in ("width", "depth"):
            for v in getattr(args, name, None) or []:
                if v < 1:
                    raise UsageError(f"--{name} must be positive integers, got {v}")
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, argparse.ArgumentTypeError) as err:
        print(f"robustlab: error: {first_line(err, _MESSAGE_CHARS)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM; a sweep kept what had finished
        import signal

        summary = getattr(stop, "summary", None)  # a SweepInterrupted's
        if summary is not None:
            print(_summary_line(summary) + summary.notes)
            if summary.tracking_note:
                print(summary.tracking_note)
        signum = getattr(stop, "signal", signal.SIGINT)
        if not getattr(stop, "announced", False):
            what = "interrupted" if signum == signal.SIGINT else "terminated"
            print(f"robustlab: {what}", file=sys.stderr)
        return 128 + signum  # 130 for SIGINT, 143 for SIGTERM
    except Exception as err:  # internal failure: one line unless debugging
        if os.environ.get("ROBUSTLAB_DEBUG"):
            raise
        if _out_of_memory(err):  # sizes the checks could not foresee: the input's, still
            print(
                f"robustlab: error: out of memory: {first_line(err, _MESSAGE_CHARS)}; {_ASK_LESS}",
                file=sys.stderr,
            )
            return 2
        print(
            f"robustlab: internal error: {type(err).__name__}: {first_line(err, _MESSAGE_CHARS)}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
