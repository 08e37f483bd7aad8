"""Fast start: the top-level import loads torch and nothing heavier."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("matplotlib", "pandas", "scipy", "sklearn", "yaml")


def _loaded_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return set(out.stdout.split())


def test_import_robustlab_leaves_heavy_libraries_unloaded():
    assert _loaded_after("import robustlab") == set()
    assert _loaded_after("import robustlab as rl; rl.mlp(3, 4, 2); rl.theory.kappa(3)") == set()


def test_subpackages_load_on_first_use():
    assert "pandas" in _loaded_after("import robustlab as rl; rl.claims.evaluate")
    assert "matplotlib" in _loaded_after("import robustlab as rl; rl.report.figures")
    code = "import robustlab.sweep, robustlab as rl; assert callable(rl.train), rl.train"
    assert "pandas" in _loaded_after(code)  # and rl.train is still the function
