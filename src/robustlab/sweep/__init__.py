"""Sweeps: declarative grids (YAML), batched cells, executors, the SQLite store."""

from .config import Cell, SweepConfig, load_config
from .overrides import apply_overrides
from .runner import Progress, SweepInterrupted, SweepSummary, check_device, run
from .store import Store, export, load, load_cells, load_configs

__all__ = [
    "Cell",
    "Progress",
    "Store",
    "SweepConfig",
    "SweepInterrupted",
    "SweepSummary",
    "apply_overrides",
    "check_device",
    "export",
    "load",
    "load_cells",
    "load_configs",
    "load_config",
    "run",
]
