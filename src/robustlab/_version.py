"""Package version (single source: pyproject.toml's metadata)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
