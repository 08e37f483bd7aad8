"""Small real datasets available offline: MNIST-1D (generated) and scikit-learn digits."""

from __future__ import annotations

import functools
import random

import numpy as np

from .raw import Raw, Request, split

MNIST1D_OPTIONS = {"num_samples": 5000, "generator_seed": 42}
DIGITS_OPTIONS = {"test_fraction": 0.2}
TEN_CLASSES = list(range(10))


@functools.lru_cache(maxsize=4)
def _generate_mnist1d(num_samples: int, generator_seed: int) -> tuple[np.ndarray, ...]:
    # Import here: mnist1d pulls in matplotlib.pyplot and requests at import time.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, generator_seed
    # make_dataset reseeds numpy's and python's global RNGs; leave them as we found them.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (data["x"], data["y"], data["x_test"], data["y_test"])
    for a in arrays:
        a.setflags(write=False)  # cached: callers must copy, never mutate
    return arrays


def load_mnist1d(req: Request) -> Raw:
    """MNIST-1D (Greydanus 2020), generated offline by the ``mnist1d`` package.

    Calls ``mnist1d.data.make_dataset`` with the package's default arguments (the
    canonical dataset: 5000 samples, generator seed 42, 80/20 train/test split), except
    for the ``num_samples`` and ``generator_seed`` options. d = 40, 10 classes; inputs
    are already centred and scaled to unit std over the whole dataset by the package.
    Generation takes a few seconds, so results are cached in-process per argument pair.
    Nothing is downloaded.
    """
    n, gseed = req.options["num_samples"], req.options["generator_seed"]
    x_train, y_train, x_test, y_test = _generate_mnist1d(n, gseed)
    return Raw(
        x_train,
        y_train,
        x_test,
        y_test,
        source="mnist1d.data.make_dataset",
        classes=TEN_CLASSES,
        meta={"num_samples": n, "generator_seed": gseed},
    )


def load_digits(req: Request) -> Raw:
    """scikit-learn's 8x8 handwritten digits (1797 images, ships with sklearn).

    x_shape (1, 8, 8), d = 64, 10 classes; pixel intensities 0..16 are divided by 16 into
    [0, 1]. There is no official split: a seeded random ``test_fraction`` (default 0.2) is
    held out.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = np.asarray(bunch.images, dtype=np.float64)[:, None] / 16.0  # (N, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, y_train, x_test, y_test = split(x, y, req.options["test_fraction"], req.seed)
    return Raw(
        x_train,
        y_train,
        x_test,
        y_test,
        source="sklearn.datasets.load_digits",
        classes=TEN_CLASSES,
    )
