"""Fast start: the top-level import loads torch and nothing heavier."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("matplotlib", "pandas", "scipy", "sklearn", "yaml", "mlflow")


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


def test_public_names_resolve_and_match_all():
    import robustlab as rl

    assert set(rl.__all__) == set(rl._NAMES) | set(rl._SUBMODULES) | {"__version__"}
    for name in rl.__all__:
        assert getattr(rl, name) is not None, name
    assert callable(rl.train) and callable(rl.mlp)


def test_top_level_help_loads_no_torch():
    code = "from robustlab.cli import main\nassert main(['--help']) == 0"
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint('torch' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert "reproduce --quick --out" in out.stdout  # the commands come with an example each


def test_no_public_name_hides_a_module_and_all_lists_public_names():
    import importlib.util

    import robustlab as rl

    for package in rl._SUBMODULES:
        module = importlib.import_module(f"robustlab.{package}")
        for name in module.__all__:
            assert not name.startswith("_"), (package, name)
            assert not isinstance(getattr(module, name), type(rl)), (package, name)
            # ``import robustlab.models.mlp`` would give a module that the attribute hides
            assert importlib.util.find_spec(f"robustlab.{package}.{name}") is None, (package, name)
