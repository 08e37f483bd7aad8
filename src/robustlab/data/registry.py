"""Dataset sources: one `Source` object per kind of data, found by name, prefix or suffix."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from .._checks import short
from . import files, images, real, synthetic
from .raw import Raw, Request

# Options every source accepts, with their defaults.
COMMON_OPTIONS: Mapping[str, Any] = {
    "standardize": False,
    "dtype": "float32",
    "subset": "random",
    "task": "auto",
    "label_scale": 1.0,  # real-valued targets times c, after everything else (pipeline.build)
    "pca": None,  # k: project on the top-k principal directions of the training inputs
    "label_flip": 0.0,  # q: flip each binary training label with probability q
}
TASK_CHOICES = ("auto", "binary", "multiclass", "regression")
SUBSET_CHOICES = ("random", "first")


@dataclasses.dataclass(frozen=True)
class Source:
    """A kind of dataset: its loader and the options (with defaults) it accepts."""

    name: str
    loader: Callable[[Request], Raw]
    options: Mapping[str, Any]
    description: str

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``given``; an unknown key raises ValueError naming the
        allowed ones (values are checked by :class:`~.config.DataConfig`)."""
        allowed = {**COMMON_OPTIONS, **self.options}
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown option {short(unknown[0])} for dataset {self.name!r}; "
                f"allowed options: {', '.join(sorted(allowed))}"
            )
        return {**allowed, **given}


BUILTINS: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "sphere",
            synthetic.load_sphere,
            synthetic.SPHERE_OPTIONS,
            "uniform points on S^{d-1} labelled by a random linear or ReLU teacher",
        ),
        Source(
            "mnist1d",
            real.load_mnist1d,
            real.MNIST1D_OPTIONS,
            "MNIST-1D generated offline by the mnist1d package (d=40, 10 classes)",
        ),
        Source(
            "digits",
            real.load_digits,
            real.DIGITS_OPTIONS,
            "scikit-learn 8x8 digits (d=64, 10 classes)",
        ),
    )
}
PREFIXES: dict[str, Source] = {
    "mnist": Source("mnist", images.load_mnist, {}, "MNIST idx files in a local directory"),
    "cifar10": Source("cifar10", images.load_cifar10, {}, "CIFAR-10 python batches on disk"),
}
SUFFIXES: dict[str, Source] = {
    ".npz": Source("npz", files.load_npz, files.NPZ_OPTIONS, "a .npz archive"),
    ".csv": Source("csv", files.load_csv, files.CSV_OPTIONS, "a .csv table"),
    ".pt": Source("pt", files.load_pt, files.PT_OPTIONS, "a .pt file of tensors (weights_only)"),
    ".npy": Source("npy", files.load_npy, {}, "a .npy array (inputs only: see load_points)"),
}


def datasets() -> list[str]:
    """Names of the built-in datasets (files and ``mnist:DIR``/``cifar10:DIR`` aside).

    Every dataset takes the common options ``standardize``, ``dtype``, ``subset``, ``task``,
    ``label_scale`` (the real-valued targets times c, last of all; refused for multiclass
    targets), ``pca`` (the inputs on their top-k principal directions) and ``label_flip``
    (binary training labels flipped with probability q) besides its own
    (:func:`robustlab.data.config.option_names`; see :func:`robustlab.data.load`).
    """
    return sorted(BUILTINS)


def resolve(name: str | os.PathLike[str]) -> tuple[Source, str]:
    """The source for a dataset ``name`` and its target path ("" for built-ins).

    ``name`` is a built-in name, ``mnist:DIR`` / ``cifar10:DIR``, or a ``.npz``/``.csv``
    path. Anything else raises ValueError listing the choices.
    """
    text = os.fspath(name)
    if not isinstance(text, str):
        raise ValueError(f"dataset name must be a string or path; got {short(name)}")
    if text in BUILTINS:
        return BUILTINS[text], ""
    prefix, sep, rest = text.partition(":")
    if sep and prefix in PREFIXES:
        return PREFIXES[prefix], rest
    suffix = os.path.splitext(text)[1].lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix], text
    choices = [*datasets(), *(f"{p}:DIR" for p in PREFIXES), "a path to a .npz, .pt or .csv file"]
    raise ValueError(f"unknown dataset {short(text)}; choose one of: {', '.join(choices)}")
