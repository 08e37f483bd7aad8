"""Local copies of MNIST (idx files) and CIFAR-10 (python batches). Nothing downloads."""

from __future__ import annotations

import gzip
import math
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_memory, first_line
from .raw import Raw, Request, missing_file

MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (or the mirror https://ossci-datasets.s3.amazonaws.com/mnist/)"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract the archive)"
TEN_CLASSES = list(range(10))
# idx type byte -> big-endian numpy dtype (LeCun's idx format description).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_BATCH_BYTES = 64 << 20  # a CIFAR-10 batch file is 31 MB (10000 x 3072 bytes, pickled)


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
    big-endian uint32 sizes, then the data in C order. The header's size is checked
    against this machine's memory before the data are read, and no more than it is read
    (a gzip bomb stops there); a corrupt file or stream is a ValueError naming the file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                raise ValueError(f"{path} is not an idx file (bad magic number {head.hex()})")
            dtype, ndim = np.dtype(_IDX_DTYPES[head[2]]), head[3]
            dims = f.read(4 * ndim)
            shape = tuple(int(s) for s in np.frombuffer(dims, ">u4", count=len(dims) // 4))
            size = math.prod(shape) * dtype.itemsize
            check_memory(str(path), f"an idx array of shape {shape}", size, "is it corrupt?")
            blob = f.read(size + 1)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"cannot read {path} as an idx file: {err}") from None
    if len(shape) != ndim or len(blob) != size:
        raise ValueError(f"{path} is truncated or corrupt: header says shape {shape}")
    return np.frombuffer(blob, dtype).reshape(shape)


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
    """(data (N, 3072) uint8, labels (N,)) of one batch file, at most _MAX_BATCH_BYTES."""
    if path.stat().st_size > _MAX_BATCH_BYTES:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: {path.stat().st_size} bytes, more than "
            f"the {_MAX_BATCH_BYTES >> 20} MiB a batch of 10000 images can take"
        )
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise ValueError("expected a dict with b'data', b'labels'")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], np.int64)
    except Exception as err:  # whatever a malformed pickle raises: the file is not a batch
        reason = first_line(err, 200)
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {reason}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: data of shape {data.shape} and labels of "
            f"shape {labels.shape}, expected (N, 3072) and (N,)"
        )
    return data, labels


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
