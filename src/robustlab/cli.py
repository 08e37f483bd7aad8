"""robustlab: how width, depth, initialization and training change a network's average robustness.

Exit codes: 0 success, 2 bad input (one line ``robustlab: error: ...``), 1 internal failure.
Set ROBUSTLAB_DEBUG=1 to see the traceback of an internal failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import _cli_options as options
from . import _cli_print as show
from ._checks import first_line
from ._cli_args import UsageError, init_list
from ._cli_print import FORMATS
from ._errors import flagged

__all__ = ["COMMANDS", "FORMATS", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + 2 lines)
        raise UsageError(message)


def _cwd_on_path() -> None:
    """Put the current folder first on sys.path, as ``python -m`` does, so that a user's
    ``package.module:name`` (a model class, a sweep's model builder) is found from here."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _quiet_mlflow(mlflow: bool | str) -> None:
    """With --mlflow, MLflow logs at WARNING and above (not its INFO lines, such as the
    creation of its tables, among the bar and robustlab's own lines), unless the user set
    MLFLOW_LOGGING_LEVEL, MLflow's own setting, read when it is first imported."""
    if mlflow:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _run_options(a: argparse.Namespace) -> dict:
    """The options of sweep.run that sweep and reproduce share: where the cells run and
    where they are logged (MLflow's INFO lines silenced first)."""
    _quiet_mlflow(a.mlflow)
    return dict(executor=a.executor, workers=a.workers, address=a.address, mlflow=a.mlflow)


# ----------------------------------------------------------------------------- commands
def cmd_measure(a: argparse.Namespace) -> int:
    import torch

    from ._device import check_device

    common = dict(region=a.region, n_samples=a.samples, dtype=getattr(torch, a.dtype),
                  device=torch.device(check_device(a.device)))  # fmt: skip
    rows = _measure_random(a, common) if a.model is None else _measure_saved(a, common)
    show.emit(rows, a.format)
    return 0


def _measure_saved(a: argparse.Namespace, common: dict) -> list[dict]:
    """P of a saved model (any format models.load_model reads) on the points of --data."""
    from .measure import measure_saved

    if a.data is None:
        raise UsageError("--model needs --data FILE (.npz, .npy, .pt or .csv) with the points")
    spec = None
    if a.in_dim is not None and a.width is not None and a.depth is not None:
        if len(a.width) != 1 or len(a.depth) != 1:
            raise UsageError("--model takes one --width and one --depth (the saved shape)")
        init = None if a.init is None else init_list(a.init)[0]
        spec = dict(in_dim=a.in_dim, width=a.width[0], depth=a.depth[0], out_dim=a.out_dim,
                    init=init, bias=a.bias, mean_field=a.mean_field)  # fmt: skip
    if a.model_class is not None:
        _cwd_on_path()
    with show.progress_bar(len(a.eps), "points", a.quiet) as bar:
        return measure_saved(
            a.model, a.data, a.eps, method=a.methods or [a.method], output=a.output,
            split=a.split, input_shape=a.input_shape, points=a.points, clip=a.clip, spec=spec,
            model_class=a.model_class, model_kwargs=a.model_kwargs,
            progress=lambda done, total: show.advance(bar, done, total), **common,
        )  # fmt: skip


def _measure_random(a: argparse.Namespace, common: dict) -> list[dict]:
    """P and/or its worst case of random MLPs at init (rl.measure.measure_at_init)."""
    from .measure import measure_at_init
    from .metrics.at_init import DEFAULT_POINTS
    from .models import mlp

    if a.in_dim is None or a.width is None or a.depth is None:
        raise UsageError(
            "measure needs --in-dim, --width and --depth (or --model FILE --data FILE)"
        )
    for flag in ("model_class", "model_kwargs", "output", "input_shape", "clip", "mean_field"):
        if getattr(a, flag) is not None and getattr(a, flag) is not False:  # --output 0 counts
            raise UsageError(f"--{flag.replace('_', '-')} applies to --model FILE")
    inits, methods = init_list(a.init or options.default(mlp, "init")), a.methods or [a.method]
    total = len(inits) * len(a.width) * len(a.depth) * len(a.eps) * a.seeds * len(methods)
    with show.progress_bar(total, "measure", a.quiet) as bar:
        return measure_at_init(
            inits, a.in_dim, a.width, a.depth, a.eps, methods=methods, seeds=a.seeds,
            points=a.points or DEFAULT_POINTS, out_dim=a.out_dim,
            progress=lambda: bar.update(1), **common,
        )  # fmt: skip


def cmd_theory(a: argparse.Namespace) -> int:
    from .theory import after_training_table, init_table

    if a.after_training:  # one step per (init, depth, width, model)
        with show.progress_bar(None, "lazy limit", a.quiet) as bar:
            rows = after_training_table(
                data=a.data, n_train=a.n_train, n_test=a.n_test, in_dim=a.in_dim, seed=a.seed,
                data_options=None if a.teacher is None else {"teacher": a.teacher},
                inits=init_list(a.init), depths=a.depth, eps=a.eps, label_scales=a.label_scale,
                steps=a.steps, lr=a.lr, widths=a.width or [None], models=a.model.split(","),
                region=a.region, progress=lambda done, total: show.advance(bar, done, total),
            )  # fmt: skip
    elif a.in_dim is None or a.width is None:
        raise UsageError("theory needs --in-dim and --width (or --after-training)")
    else:
        rows = init_table(init_list(a.init), a.in_dim, a.width, a.depth, a.eps, a.region)
    show.emit(rows, a.format)
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    from .sweep import load_config, run

    _cwd_on_path()  # model.family: package.module:name relative to here
    config = load_config(a.config, a.overrides)  # a bad override: exit 2, nothing written
    with show.sweep_progress(a.quiet) as update:
        summary = run(config, a.store, retry_failed=a.retry_failed, dtype=a.dtype,
                      device=a.device, progress=update, **_run_options(a))  # fmt: skip
    print(show.summary_line(summary))
    return show.tracking_status(summary)


def cmd_export(a: argparse.Namespace) -> int:
    from .sweep import export

    print(f"wrote {export(a.store, a.output, fmt=a.format, overwrite=a.force)}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .report import build

    with show.status("report", a.quiet) as say:
        path = build(a.store, a.output, figures_dir=a.figures, overwrite=a.force,
                     claims=a.claims, progress=say)  # fmt: skip
    print(f"report: {path}")
    return 0


def cmd_reproduce(a: argparse.Namespace) -> int:
    from .claims import Protocol
    from .reproduce import reproduce

    given = {"lazy_threshold": a.lazy_threshold, "nonlazy_threshold": a.nonlazy_threshold}
    protocol = Protocol(**{k: v for k, v in given.items() if v is not None})
    with show.sweep_progress(a.quiet) as update:
        res = reproduce(a.out, mode="full" if a.full else "quick", progress=update,
                        protocol=protocol, overrides=a.overrides, presets=a.protocol,
                        **_run_options(a))  # fmt: skip
    show.reproduce_lines(res)
    return show.tracking_status(res.summary)


# ----------------------------------------------------------------------------- parser
# name, one line of help, an example: the top-level help lists these without loading the
# library (it needs no torch); then the function returning the command's options as parent
# parsers (robustlab._cli_options), and the command
COMMANDS = (
    ("measure", "P of random networks at init, or of a saved model on data",
     "robustlab measure --init he --in-dim 20 --width 256 --depth 5 --eps 0.1",
     options.measure, cmd_measure),
    ("theory", "closed-form P at init, or of the infinite-width lazy limit after training",
     "robustlab theory --after-training --init lecun,he --depth 2:8 --label-scale 0.1,1",
     options.theory, cmd_theory),
    ("sweep", "run a sweep config into a SQLite store (resumable)",
     "robustlab sweep sweep.yaml --store results.db", options.sweep, cmd_sweep),
    ("export", "export a store's results to Parquet or CSV",
     "robustlab export results.db --format csv -o results.csv", options.export, cmd_export),
    ("report", "self-contained HTML report of a store",
     "robustlab report results.db -o report.html", options.report, cmd_report),
    ("reproduce", "test the paper's claims C1..C5 end to end",
     "robustlab reproduce --quick --out robustlab-out", options.reproduce, cmd_reproduce),
)  # fmt: skip


def build_parser(*, light: bool = False) -> argparse.ArgumentParser:
    """The argument parser of the ``robustlab`` command; ``light``: the commands without
    their options (for the top-level help and --version, which load nothing else)."""
    from ._version import __version__

    examples = "\n".join(f"  {example}" for _, _, example, *_ in COMMANDS)
    p = _Parser(
        prog="robustlab",
        description=__doc__.splitlines()[0],
        epilog=f"examples:\n{examples}\n\n'robustlab COMMAND --help' lists a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"robustlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    groups = None if light else options.shared()
    for name, help_text, example, parents, command in COMMANDS:
        s = sub.add_parser(name, help=help_text, description=f"{help_text}.",
                           epilog=f"example:\n  {example}",
                           parents=[] if light else parents(groups),
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        s.set_defaults(func=command)
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
        shown = flagged(err, words, {"out_dir": "out", "overwrite": "force"})  # as flags
        print(f"robustlab: error: {first_line(shown, _MESSAGE_CHARS)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM; a sweep kept what had finished
        import signal

        summary = getattr(stop, "summary", None)  # a SweepInterrupted's
        if summary is not None:
            print(show.summary_line(summary))
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
