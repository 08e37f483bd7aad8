"""The ``robustlab`` command: a thin layer over library calls.

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

__all__ = ["main"]


class UsageError(ValueError):
    """Bad command-line input."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + 2 lines)
        raise UsageError(message)


def int_list(text: str) -> list[int]:
    """'2:12' (inclusive), '2:12:2', '16,32,64' or '8' -> list of ints."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if ":" in part:
            bits = part.split(":")
            if len(bits) not in (2, 3) or not all(b.strip().lstrip("-").isdigit() for b in bits):
                raise argparse.ArgumentTypeError(f"bad range {part!r}; use a:b or a:b:step")
            a, b, *rest = (int(v) for v in bits)
            step = rest[0] if rest else 1
            if step < 1 or b < a:
                raise argparse.ArgumentTypeError(f"bad range {part!r}; need a <= b and step >= 1")
            out.extend(range(a, b + 1, step))
        elif part.lstrip("-").isdigit():
            out.append(int(part))
        else:
            raise argparse.ArgumentTypeError(
                f"expected integers or a range like 2:12, got {part!r}"
            )
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
        raise UsageError(f"--init needs at least one scheme name, got {text!r}")
    return names


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return v


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


# ----------------------------------------------------------------------------- measure
def _unlabelled_points(path: str):
    """Points of an .npz holding only ``x`` (P needs no labels); None for anything else."""
    import numpy as np
    import torch

    if not path.endswith(".npz") or not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if set(z.files) != {"x"}:
                return None
            x = z["x"]
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path!r}: {err}") from None
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path!r}: x must be a numeric array of shape (N, ...), got {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x)).float()


def cmd_measure(a: argparse.Namespace) -> int:
    import torch

    from .metrics import perturbation_stability
    from .metrics.at_init import stability_at_init

    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    rows = []
    if a.model is not None:
        from .data import load as load_data
        from .models import load_model

        if a.data is None:
            raise UsageError("--model needs --data FILE (.npz or .csv) with the points")
        spec = None
        if a.in_dim is not None and a.width is not None and a.depth is not None:
            if len(a.width) != 1 or len(a.depth) != 1:
                raise UsageError("--model takes one --width and one --depth (the saved shape)")
            spec = dict(
                in_dim=a.in_dim,
                width=a.width[0],
                depth=a.depth[0],
                out_dim=a.out_dim,
                init=init_list(a.init)[0],
                bias=a.bias,
            )
        model = load_model(a.model, spec).to(dtype)
        x = _unlabelled_points(a.data)
        if x is None:  # labelled data set: any format rl.data.load reads
            ds = load_data(a.data, seed=0)
            x = {"train": ds.x_train, "test": ds.x_test}.get(a.split)
            if x is None:
                x = torch.cat([ds.x_train, ds.x_test])
        if a.points is not None:
            x = x[: a.points]
        for eps in a.eps:
            r = perturbation_stability(
                model,
                x,
                eps,
                method=a.method,
                region=a.region,
                n_samples=a.samples,
                generator=torch.Generator().manual_seed(0),
            )
            rows.append(
                {
                    "model": a.model,
                    "data": a.data,
                    "eps": eps,
                    "method": r.method,
                    "region": a.region,
                    "points": r.n_points,
                    "p_value": r.value,
                    "p_stderr": r.stderr,
                }
            )
        _emit(rows, a.format, rows[0].keys())
        return 0
    if a.in_dim is None or a.width is None or a.depth is None:
        raise UsageError(
            "measure needs --in-dim, --width and --depth (or --model FILE --data FILE)"
        )
    inits = init_list(a.init)
    combos = [(i, w, L, e) for i in inits for w in a.width for L in a.depth for e in a.eps]
    bar = _progress(len(combos) * a.seeds, "measure", a.quiet)
    for init, width, depth, eps in combos:
        r = stability_at_init(
            init,
            a.in_dim,
            width,
            depth,
            eps,
            seeds=a.seeds,
            points=a.points or 1000,
            method=a.method,
            region=a.region,
            n_samples=a.samples,
            out_dim=a.out_dim,
            dtype=dtype,
            progress=lambda *_: bar.update(1),
        )
        r.pop("runs")
        rows.append(r)
    bar.close()
    cols = [
        "init",
        "width",
        "depth",
        "eps",
        "method",
        "seeds",
        "points",
        "p_mean",
        "p_stderr",
        "p_bound_theory",
        "grad_sq_measured",
        "grad_sq_theory",
    ]
    _emit([{c: r[c] for c in cols} for r in rows], a.format, cols)
    return 0


# ----------------------------------------------------------------------------- theory
def cmd_theory(a: argparse.Namespace) -> int:
    from .init import get_init
    from .theory import expected_grad_sq_norm, init_stability_bound, kappa

    rows = []
    for name in init_list(a.init):
        scheme = get_init(name)
        for width in a.width:
            s1, s2, s3 = scheme.variances(a.in_dim, width, 1)
            for depth in a.depth:
                rows.append(
                    {
                        "init": scheme.name,
                        "in_dim": a.in_dim,
                        "width": width,
                        "depth": depth,
                        "s1": s1,
                        "s2": s2,
                        "s3": s3,
                        "grad_sq": expected_grad_sq_norm(scheme, a.in_dim, width, depth),
                        "kappa_d": kappa(a.in_dim, a.region),
                        "eps": a.eps,
                        "p_bound": init_stability_bound(
                            scheme, a.in_dim, width, depth, a.eps, a.region
                        ),
                    }
                )
    _emit(rows, a.format, rows[0].keys())
    return 0


# ----------------------------------------------------------------------------- sweeps
@contextmanager
def _sweep_progress(quiet: bool):
    """Yield a callback feeding a tqdm bar from the runner's Progress (cells, failures, ETA)."""
    state: dict = {}

    def update(p) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = _progress(p.total, "cells", quiet)
        bar.n = p.done
        bar.set_postfix(failed=p.failed, diverged=p.diverged, refresh=False)
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


def cmd_sweep(a: argparse.Namespace) -> int:
    from .sweep import run

    with _sweep_progress(a.quiet) as update:
        summary = run(
            a.config,
            a.store,
            executor=a.executor,
            workers=a.workers,
            address=a.address,
            retry_failed=a.retry_failed,
            dtype=a.dtype,
            device=a.device,
            progress=update,
        )
    print(_summary_line(summary))
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .sweep import export

    path = export(a.store, a.output, fmt=a.format)
    print(f"wrote {path}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .report import build

    path = build(a.store, a.output, figures_dir=a.figures)
    print(f"report: {path}")
    return 0


def _claims_table(df) -> str:
    cols = ["claim", "verdict", "slope", "ci_low", "ci_high", "n", "median_rel_weight_change"]
    view = df[cols].rename(columns={"median_rel_weight_change": "rel_dw"})
    return view.to_string(index=False, float_format=lambda v: f"{v:+.3g}")


def cmd_reproduce(a: argparse.Namespace) -> int:
    from .reproduce import reproduce

    with _sweep_progress(a.quiet) as update:
        res = reproduce(
            a.out,
            mode="full" if a.full else "quick",
            executor=a.executor,
            workers=a.workers,
            address=a.address,
            progress=update,
        )
    print(_summary_line(res.summary))
    print()
    print(_claims_table(res.claims))
    for _, row in res.claims.iterrows():
        if isinstance(row["reason"], str) and row["reason"]:
            print(f"  {row['claim']}: {row['reason']}")
    print()
    print(f"claims: {res.claims_csv}")
    print(f"report: {res.report}")
    return 0


def _register_sweeps(sub) -> None:
    s = sub.add_parser("sweep", help="run a sweep config into a SQLite store (resumable)")
    s.add_argument("config", help="sweep YAML file")
    s.add_argument("--store", required=True, help="SQLite results file (created if missing)")
    s.add_argument("--executor", choices=["local", "serial", "ray"], default="local")
    s.add_argument("--address", default=None, help="Ray cluster address (e.g. auto)")
    s.add_argument("--workers", type=_positive_int, default=None, help="default: one per core")
    s.add_argument("--retry-failed", action="store_true", help="re-run cells recorded as failed")
    s.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    s.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_sweep)

    e = sub.add_parser("export", help="export a store's results to Parquet or CSV")
    e.add_argument("store")
    e.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    e.add_argument("-o", "--output", required=True)
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("report", help="self-contained HTML report of a store")
    r.add_argument("store")
    r.add_argument("-o", "--output", default="report.html")
    r.add_argument("--figures", default=None, help="also keep PNG/PDF figures in this folder")
    r.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="test the paper's claims C1..C5 end to end")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="minutes on a laptop (default)")
    mode.add_argument("--full", action="store_true", help="up to ~2 h on 2 cores")
    p.add_argument("--out", default="robustlab-out", help="output folder (default robustlab-out)")
    p.add_argument("--executor", choices=["local", "serial", "ray"], default="local")
    p.add_argument("--address", default=None)
    p.add_argument("--workers", type=_positive_int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reproduce)


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``robustlab`` command."""
    from ._version import __version__

    p = _Parser(prog="robustlab", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"robustlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("measure", help="P of random networks at init, or of a saved model on data")
    m.add_argument("--init", default="lecun", help="scheme(s), comma-separated (default lecun)")
    m.add_argument("--in-dim", type=_positive_int)
    m.add_argument("--width", type=int_list, help="e.g. 256 or 16,64,256 or 16:64:16")
    m.add_argument("--depth", type=int_list, help="e.g. 5 or 2:8")
    m.add_argument("--out-dim", type=_positive_int, default=1)
    m.add_argument("--bias", action="store_true")
    m.add_argument("--eps", type=_positive_float, nargs="+", default=[0.1])
    m.add_argument("--seeds", type=_positive_int, default=10)
    m.add_argument("--points", type=_positive_int, default=None, help="evaluation points (1000)")
    m.add_argument("--method", choices=["auto", "exact", "mc", "finite_difference"], default="auto")
    m.add_argument("--region", choices=["ball", "sphere"], default="ball")
    m.add_argument("--samples", type=_positive_int, default=64, help="perturbations per point (mc)")
    m.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    m.add_argument("--model", help="saved model (robustlab .pt, state dict, or TorchScript)")
    m.add_argument("--data", help="points for --model: .npz (x or x_train/x_test) or .csv")
    m.add_argument("--split", choices=["train", "test", "all"], default="all")
    m.add_argument("--format", choices=["table", "csv", "json"], default="table")
    m.add_argument("--quiet", action="store_true")
    m.set_defaults(func=cmd_measure)

    t = sub.add_parser("theory", help="init-time predictions (closed forms of DESIGN §1)")
    t.add_argument("--init", default="lecun,he,ntk")
    t.add_argument("--in-dim", type=_positive_int, required=True)
    t.add_argument("--width", type=int_list, required=True)
    t.add_argument("--depth", type=int_list, required=True)
    t.add_argument("--eps", type=_positive_float, default=0.1)
    t.add_argument("--region", choices=["ball", "sphere"], default="ball")
    t.add_argument("--format", choices=["table", "csv", "json"], default="table")
    t.set_defaults(func=cmd_theory)

    _register_sweeps(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run one library call, map errors to exit codes."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as stop:  # --help / --version
            return int(stop.code or 0)
        for name in ("width", "depth"):
            for v in getattr(args, name, None) or []:
                if v < 1:
                    raise UsageError(f"--{name} must be positive integers, got {v}")
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, argparse.ArgumentTypeError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"robustlab: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robustlab: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # internal failure: one line unless debugging
        if os.environ.get("ROBUSTLAB_DEBUG"):
            raise
        print(f"robustlab: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
