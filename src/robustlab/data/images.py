"""Local copies of MNIST (idx files) and CIFAR-10 (python batches). Nothing downloads."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .raw import Raw, Request, missing_file

MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (or the mirror https://ossci-datasets.s3.amazonaws.com/mnist/)"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract the archive)"
TEN_CLASSES = list(range(10))
# idx type byte -> big-endian numpy dtype (LeCun's idx format description).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _directory(target: str, kind: str) -> Path:
    if not target:
        raise ValueError(f"{kind} needs a directory: use '{kind.lower()}:DIR'")
    path = Path(target).expanduser()
    if not path.is_dir():
        raise ValueError(f"{kind} directory {target} not found; create it and put the files there")
    return path


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzip-compressed, by the ``.gz`` suffix) into an array.

    Layout: two zero bytes, a type byte, a byte with the number of dimensions n, n
    big-endian uint32 sizes, then the data in C order.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        blob = f.read()
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {blob[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[blob[2]]), blob[3]
    shape = tuple(int(s) for s in np.frombuffer(blob, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(blob) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path} is truncated or corrupt: header says shape {shape}")
    return np.frombuffer(blob, dtype, offset=offset).reshape(shape)


def _find_mnist(directory: Path, name: str) -> Path:
    # Accept the file, its .gz, and torchvision's layout DIR/MNIST/raw.
    for folder in (directory, directory / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise missing_file("MNIST", f"{name} (or {name}.gz)", str(directory), MNIST_URL)


def load_mnist(req: Request) -> Raw:
    """MNIST from the four standard idx files in ``DIR`` (``mnist:DIR``); ``.gz`` accepted.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``. Images (N, 28, 28) uint8 are
    divided by 255 into [0, 1]; x_shape (1, 28, 28), flattened d = 784; 10 classes.
    """
    directory = _directory(req.target, "MNIST")
    arrays = []
    for split in ("train", "t10k"):
        images = read_idx(_find_mnist(directory, f"{split}-images-idx3-ubyte"))
        labels = read_idx(_find_mnist(directory, f"{split}-labels-idx1-ubyte"))
        arrays += [images[:, None] / 255.0, labels.astype(np.int64)]  # (N, 1, 28, 28)
    return Raw(*arrays, source=str(directory.resolve()), classes=TEN_CLASSES)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np.ndarray.__reduce__(np.zeros(1))[0]
        if name == "_frombuffer" and module in ("numpy.core.numeric", "numpy._core.numeric"):
            return lambda buf, dtype, shape, order: np.frombuffer(buf, dtype).reshape(
                shape, order=order
            )
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 stores bytes
            return _latin1_encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing to decode bytes with codec {encoding!r}")
    return text.encode(encoding)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {err}") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch: expected a dict with b'data', b'labels'")
    return np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"], np.int64)


def load_cifar10(req: Request) -> Raw:
    """CIFAR-10 python batches from ``DIR`` (``cifar10:DIR``).

    ``DIR`` is ``cifar-10-batches-py`` itself or its parent; it holds ``data_batch_1`` ..
    ``data_batch_5`` and ``test_batch``, pickled dicts with ``b"data"`` (N, 3072) uint8
    in channel-major (3, 32, 32) order and ``b"labels"``. Inputs are divided by 255 into
    [0, 1] keeping that order: x_shape (3, 32, 32), d = 3072; 10 classes. Unpickling
    accepts numpy arrays and plain containers only, so a tampered file cannot run code.
    """
    directory = _directory(req.target, "CIFAR-10")
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    arrays = []
    for names in ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]):
        parts = []
        for name in names:
            if not (directory / name).is_file():
                raise missing_file("CIFAR-10", name, str(directory), CIFAR_URL)
            parts.append(_read_batch(directory / name))
        arrays += [
            np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32) / 255.0,
            np.concatenate([p[1] for p in parts]),
        ]
    return Raw(*arrays, source=str(directory.resolve()), classes=TEN_CLASSES)
