"""The options of each ``robustlab`` command, as argparse parent parsers.

A command's options are the list of parents its function here returns: its own, and the
groups it shares with other commands (:func:`shared`: where a sweep runs, --dtype,
--device, --format, --quiet, --force, the store; :func:`mlflow` and :func:`overrides`,
whose help names what the command writes). Defaults and choices come from the library (a
function's signature, a dataclass field, a registry), never a copy: ``--seeds`` shows and
passes :func:`robustlab.measure.measure_at_init`'s own default.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence

from ._cli_args import (
    clip,
    float_list,
    int_list,
    method_list,
    mlflow_uri,
    output_selector,
    positive_float,
    positive_int,
    seed,
    seed_count,
    shape,
)
from ._cli_print import FORMATS

__all__ = [
    "default",
    "export",
    "measure",
    "mlflow",
    "overrides",
    "parent",
    "report",
    "reproduce",
    "shared",
    "sweep",
    "theory",
]

Option = tuple[Sequence[str], dict]  # flags, add_argument keywords
Parents = list[argparse.ArgumentParser]

_MLFLOW_HELP = (
    "log each stored cell to MLflow, one experiment per sweep and one run per cell (needs "
    "pip install 'robustlab[mlflow]'): to the tracking URI given, else to an SQLite "
    "tracking store beside the results, "
)


def default(fn, name: str):
    """The default of ``fn``'s parameter ``name``."""
    return inspect.signature(fn).parameters[name].default


def parent(*options: Option | list[Option]) -> argparse.ArgumentParser:
    """A parent parser (argparse ``parents=``) with ``options`` in order; a list of options
    is a mutually exclusive group."""
    p = argparse.ArgumentParser(add_help=False)
    for option in options:
        group = p.add_mutually_exclusive_group() if isinstance(option, list) else p
        for flags, keywords in option if isinstance(option, list) else [option]:
            group.add_argument(*flags, **keywords)
    return p


def shared() -> dict[str, argparse.ArgumentParser]:
    """The option groups several commands share, one parent parser each; defaults and
    choices are the library's (sweep.run's signature, the executors, the dtypes)."""
    from .data.config import DTYPES
    from .sweep import run
    from .sweep.executors import EXECUTORS

    return {
        "run": parent(
            (["--executor"], dict(choices=list(EXECUTORS), default=default(run, "executor"),
             help="local: worker processes (default); serial: this process; ray: a Ray cluster")),
            (["--address"], dict(default=default(run, "address"),
             help="Ray cluster address (e.g. auto)")),
            (["--workers"], dict(type=positive_int, default=default(run, "workers"),
             help="worker processes or Ray CPUs (default: one per core)")),
        ),
        "dtype": parent((["--dtype"], dict(choices=list(DTYPES), default=default(run, "dtype"),
            help="floating-point precision of the networks and points, in training and "
            "measuring (default %(default)s)"))),
        "device": parent((["--device"], dict(default="auto",
            help="auto (default: cuda if available), cpu, cuda or cuda:N"))),
        "format": parent((["--format"], dict(choices=FORMATS, default=FORMATS[0],
            help="output: aligned table, CSV or JSON, on stdout (default %(default)s)"))),
        "quiet": parent((["--quiet"], dict(action="store_true",
            help="no progress bar (it is shown on stderr only when stderr is a terminal)"))),
        "store": parent((["store"], dict(help="SQLite results file written by 'robustlab sweep'"))),
        "force": parent((["--force"], dict(action="store_true",
            help="replace an existing output file (never an SQLite database or the store)"))),
    }  # fmt: skip


def mlflow(where: str) -> argparse.ArgumentParser:
    """--mlflow [URI], its default tracking store ``where``."""
    return parent((["--mlflow"], dict(nargs="?", const=True, default=False, metavar="URI",
                                      type=mlflow_uri, help=_MLFLOW_HELP + where)))  # fmt: skip


def overrides(what: str) -> argparse.ArgumentParser:
    """The KEY.PATH=VALUE words after the command's own (:mod:`robustlab.sweep.overrides`)."""
    return parent((["overrides"], dict(nargs="*", metavar="KEY.PATH=VALUE", help=what)))


def measure(groups: dict) -> Parents:
    """measure: the networks at init (shape, radii, seeds, method), then a saved model's
    options (--model, --data, ...); defaults from measure_at_init / measure_saved."""
    from .data.points import SPLITS
    from .measure import MEASURE_METHODS, measure_at_init, measure_saved
    from .metrics import REGIONS
    from .metrics.at_init import DEFAULT_POINTS
    from .metrics.stability import DEFAULT_SAMPLES
    from .models import mlp
    from .sweep.config import MeasureSpec

    methods_of: dict[int, list[str]] = {}  # 64: [mc, finite_difference], 1024: [jacobian]
    for method, n in DEFAULT_SAMPLES.items():
        methods_of.setdefault(n, []).append(method)
    samples = ", ".join(f"{' and '.join(names)} {n}" for n, names in methods_of.items())
    networks = parent(
        (["--init"], dict(help=f"scheme(s), comma-separated (default {default(mlp, 'init')})")),
        (["--in-dim"], dict(type=positive_int, help="input dimension d (points uniform on the "
         "unit sphere S^(d-1)); with --model, a bare state dict's MLP shape")),
        (["--width"], dict(type=int_list, help="hidden width(s), e.g. 256, 16,64,256 or 16:64:16")),
        (["--depth"], dict(type=int_list, help="weight layers L, e.g. 5 or 2:8")),
        (["--out-dim"], dict(type=positive_int, default=default(measure_at_init, "out_dim"),
         help="network outputs k (default %(default)s)")),
        (["--bias"], dict(action="store_true",
         help="with --model: a bare state dict's MLP has biases (random networks have none)")),
        (["--eps"], dict(type=positive_float, nargs="+", default=list(MeasureSpec.eps),
         help=f"perturbation radius, one or more (default {' '.join(map(str, MeasureSpec.eps))});"
         " one row per value")),
        (["--seeds"], dict(type=seed_count, default=default(measure_at_init, "seeds"),
         help="random networks per setting, seeds 0..N-1, P averaged (default %(default)s)")),
        (["--points"], dict(type=positive_int, help=f"evaluation points (default "
         f"{DEFAULT_POINTS}; with --model, the first N of --data, default all)")),
        [(["--method"], dict(choices=list(MEASURE_METHODS),
          default=default(measure_saved, "method"), help="how P is computed (default "
          "%(default)s: exact for one output on ball/sphere, else jacobian or mc), or pgd: "
          "the worst case over the same region instead of P "
          "(projected gradient ascent, 20 steps, 3 restarts)")),
         (["--methods"], dict(type=method_list, metavar="M1,M2",
          help="several methods instead of --method, e.g. exact,pgd: a row per average method, "
          "with pgd's worst case (worst_mean or worst_value, worst_stderr) and worst_over_p = "
          "worst / P beside its P"))],
        (["--region"], dict(choices=list(REGIONS), default=default(measure_at_init, "region"),
         help="where x' is drawn around x: L2 ball, L2 sphere or L-inf cube of radius eps "
         "(default %(default)s)")),
        (["--samples"], dict(type=positive_int,
         help=f"perturbations per point (default: {samples})")),
    )  # fmt: skip
    saved = parent(
        (["--model"], dict(help="saved model: robustlab .pt, state dict, TorchScript or "
         "torch.export .pt2")),
        (["--model-class"], dict(help="package.module:Class for a state dict of your network")),
        (["--model-kwargs"], dict(help="JSON object of Class arguments, e.g. '{\"width\": 64}'")),
        (["--mean-field"], dict(action="store_true", help="a bare state dict's MLP is mean-field")),
        (["--output"], dict(type=output_selector,
         help="what to measure: index, key, margin, label")),
        (["--input-shape"], dict(type=shape, help="one input's shape, e.g. 1,28,28")),
        (["--clip"], dict(type=clip, help="input box LO,HI (finite_difference), e.g. 0,1")),
        (["--data"], dict(help="points for --model: .npz, .npy, .pt, .csv or a data set")),
        (["--split"], dict(choices=list(SPLITS), default=default(measure_saved, "split"),
         help="with --model: which rows of a labelled data set to use (default %(default)s)")),
    )  # fmt: skip
    return [networks, groups["dtype"], groups["device"], saved, groups["format"], groups["quiet"]]


def theory(groups: dict) -> Parents:
    """theory: the closed form at init (init_table), then --after-training's options, with
    after_training_table's defaults."""
    from .data.synthetic import TEACHERS
    from .theory import REGIONS, after_training_table, init_table
    from .theory.after_training import SPHERE_DEFAULTS

    def after(name: str):
        return default(after_training_table, name)

    scales = ",".join(f"{v:g}" for v in after("label_scales"))
    at_init = parent(
        (["--init"], dict(default=",".join(after("inits")),
         help="scheme(s), comma-separated (default %(default)s)")),
        (["--in-dim"], dict(type=positive_int, help="required at init; data dim after")),
        (["--width"], dict(type=int_list, help="required at init; default inf after")),
        (["--depth"], dict(type=int_list, required=True,
         help="weight layers L (required), e.g. 5 or 2:8; one row per depth")),
        (["--eps"], dict(type=positive_float, default=default(init_table, "eps"),
         help="perturbation radius (default %(default)s)")),
        (["--region"], dict(choices=list(REGIONS), default=default(init_table, "region"),
         help="x' uniform in the L2 ball or on the L2 sphere of radius eps (default %(default)s)")),
    )  # fmt: skip
    after_training = parent(
        (["--after-training"], dict(action="store_true",
         help="P of the infinite-width lazy limit")),
        (["--data"], dict(default=after("data"),
         help="--after-training data (default %(default)s)")),
        (["--teacher"], dict(choices=list(TEACHERS),
         help=f"sphere teacher (default {SPHERE_DEFAULTS['teacher']})")),
        (["--n-train"], dict(type=positive_int, default=after("n_train"),
         help="--after-training training points (default %(default)s)")),
        (["--n-test"], dict(type=positive_int, default=after("n_test"),
         help="--after-training points P is measured on (default %(default)s)")),
        (["--seed"], dict(type=seed, default=after("seed"),
         help="seed of the data and of the Monte Carlo directions (default %(default)s)")),
        (["--label-scale"], dict(type=float_list, default=list(after("label_scales")),
         help=f"factor(s) on the training labels, e.g. 0.1,1,3 (default {scales})")),
        (["--steps"], dict(type=positive_int, default=after("steps"),
         help="gradient-descent steps (default: trained to convergence)")),
        (["--lr"], dict(type=positive_float, default=after("lr"), help="gradient-descent step "
         "size with --steps (default auto: N / largest NTK eigenvalue)")),
        (["--model"], dict(default=",".join(after("models")),
         help="network and/or linearized (Taylor)")),
    )  # fmt: skip
    return [at_init, groups["format"], after_training, groups["quiet"]]


def sweep(groups: dict) -> Parents:
    """sweep: the config, its overrides and the store, then where the cells run."""
    own = parent(
        (["config"], dict(help="sweep YAML file")),
        (["--store"], dict(required=True, help="SQLite results file (created if missing)")),
    )  # fmt: skip
    retry = parent(
        (["--retry-failed"], dict(action="store_true", help="re-run cells recorded as failed"))
    )
    keys = overrides(
        "set a key of the config before it is read, e.g. train.steps=500 grid.width=[16,32]: "
        "the value is YAML, checked like the file's own keys, and part of the stored config; "
        "a missing section is created"
    )
    logged = mlflow("STORE-mlflow/mlflow.db (results.db: results-mlflow/)")
    return [
        own,
        keys,
        groups["run"],
        retry,
        *(groups[k] for k in ("dtype", "device", "quiet")),
        logged,
    ]


def export(groups: dict) -> Parents:
    """export: the store, the output file and its format (the store's EXPORT_FORMATS)."""
    from .sweep.store import EXPORT_FORMATS

    own = parent(
        (["--format"], dict(choices=list(EXPORT_FORMATS), help="file format (default: from "
         "the output's suffix, .parquet or .csv; Parquet needs pyarrow: pip install "
         "'robustlab[parquet]')")),
        (["-o", "--output"], dict(required=True, help="file to write (required)")),
    )  # fmt: skip
    return [groups["store"], own, groups["force"]]


def report(groups: dict) -> Parents:
    """report: the store, the HTML file, its figures folder and the claims section."""
    own = parent(
        (["-o", "--output"], dict(default="report.html",
         help="HTML file to write (default %(default)s)")),
        (["--figures"], dict(help="also keep PNG/PDF figures in this folder")),
    )  # fmt: skip
    claims = parent(
        (["--claims"], dict(action=argparse.BooleanOptionalAction, help="add (or, --no-claims, "
         "leave out) the section judging the paper's claims C1..C5 (default: when a stored "
         "sweep config lists claims, as the presets do)")),
    )  # fmt: skip
    return [groups["store"], own, groups["force"], claims, groups["quiet"]]


def reproduce(groups: dict) -> Parents:
    """reproduce: the mode and output folder, where the cells run, the claims protocol's
    thresholds (defaults: Protocol's fields), overrides of every preset sweep."""
    from .claims import Protocol

    mode = parent(
        [(["--quick"], dict(action="store_true", help="about 4 min on 2 CPU cores "
          "(measured: 3 min 56 s with pip install); the default")),
         (["--full"], dict(action="store_true",
          help="about 16 min on 2 CPU cores (measured: 15 min 53 s)"))],
        (["--out"], dict(default="robustlab-out", help="output folder (default %(default)s)")),
        (["--protocol"], dict(type=int, choices=[1, 2], default=2, help="2 (default): the "
         "paper's questions as they are (docs/claims.md, Protocol 2; Protocol 1's verdicts "
         "beside them as a control); 1: Protocol 1's presets and table")),
    )  # fmt: skip
    thresholds = parent(
        (["--lazy-threshold"], dict(type=positive_float, help="C3/C4 on standard runs: max "
         f"weight and NTK change of a lazy run (default {Protocol.lazy_threshold:g})")),
        (["--nonlazy-threshold"], dict(type=positive_float, help="C5: min weight change of "
         f"every mean-field run (default {Protocol.nonlazy_threshold:g})")),
    )  # fmt: skip
    keys = overrides(
        "set a key of every preset sweep, e.g. train.steps=500 (as for 'robustlab sweep'); "
        "the store keeps one config per sweep, so other overrides need another --out"
    )
    logged = mlflow(
        "OUT/results-mlflow/mlflow.db; the report, claims.csv and sensitivity.csv in a run "
        "of experiment robustlab-reproduce-MODE"
    )
    return [mode, groups["run"], thresholds, keys, groups["quiet"], logged]
