"""Headless Chromium for the report tests: a screenshot of a page, and its DOM after load."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed"
)


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


def screenshot(page: Path, tmp: Path, width: int, height: int) -> np.ndarray:
    """RGB (height, width, 3) floats in [0, 1] of ``page`` shown in a window of that size."""
    shot = tmp / "shot.png"
    subprocess.run(
        ["chromium", *_flags(tmp / "profile"), f"--screenshot={shot}",
         f"--window-size={width},{height}", page.as_uri()],
        check=True,
        timeout=120,
        capture_output=True,
    )  # fmt: skip
    return imread(shot)[..., :3]


def dom(page: Path, tmp: Path) -> str:
    """The page's DOM as Chromium serializes it after loading."""
    return subprocess.run(
        ["chromium", *_flags(tmp / "profile"), "--dump-dom", page.as_uri()],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
