"""``key.path=value`` overrides of a sweep config (rl.sweep.apply_overrides), on the command
line of ``robustlab sweep`` and ``robustlab reproduce``, and the README's sweep example run
as written (shortened only by overrides)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

import robustlab.reproduce
from _sweeps import standard_sweep
from robustlab.cli import main
from robustlab.sweep import apply_overrides, load, load_cells, load_config, load_configs
from robustlab.sweep.overrides import parse_override

README = Path(__file__).resolve().parents[1] / "README.md"


def one_error_line(capsys, argv: list[str]) -> str:
    """Exit 2, nothing on stdout, one line ``robustlab: error: ...`` on stderr."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), (argv, code, err)
    (line,) = err.splitlines()
    assert line.startswith("robustlab: error: ")
    return line.removeprefix("robustlab: error: ")


# ----------------------------------------------------------------------------- the library
def test_values_are_yaml_and_later_overrides_win():
    config = {"name": "s", "train": {"steps": 60, "lr": "auto"}, "grid": {"width": [64]}}
    out = apply_overrides(
        config,
        ["train.steps=5", "grid.width=[4, 8]", "grid.depth=2:4", "train.lr=1e-3",
         "model.norm=null", "train.steps=7", "measure.eps=[0.1]", "train.batch_size="],
    )  # fmt: skip
    assert out == {
        "name": "s",
        "train": {"steps": 7, "lr": 0.001, "batch_size": None},
        "grid": {"width": [4, 8], "depth": "2:4"},  # YAML 1.2: a range stays a string
        "model": {"norm": None},  # a missing section is created
        "measure": {"eps": [0.1]},
    }
    assert config == {"name": "s", "train": {"steps": 60, "lr": "auto"}, "grid": {"width": [64]}}
    assert parse_override("data.label_column=a=b") == (("data", "label_column"), "a=b")


def test_an_override_is_read_like_the_files_own_key():
    config = standard_sweep("s", [2])
    changed = load_config(config, ["train.steps=5", "grid.width=[4,8]", "seeds=[3]"])
    assert (changed.train.steps, changed.grid.width, changed.seeds) == (5, (4, 8), (3,))
    assert load_config(load_config(config), ["train.steps=5"]) == load_config(
        {**config, "train": {"steps": 5}}
    )
    with pytest.raises(ValueError, match=r"^grid\.width\[1\]: expected a positive integer"):
        load_config(config, ["grid.width=[4,-8]"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps", r"^override 'train.steps': expected KEY\.PATH=VALUE"),
        ("=3", r"^override '=3': expected keys joined by dots"),
        ("train..steps=3", r"^override 'train\.\.steps=3': expected keys joined by dots"),
        ("seeds.n=3", r"^seeds\.n: cannot set a key inside seeds, which holds 1, not a mapping"),
        ("train.steps.x=3", r"^train\.steps\.x: cannot set a key inside train\.steps, which hold"),
        ("grid.width[0]=4", r"^grid\.width\[0\]: an override sets a whole list"),
        ("grid.width=[4,", r"^grid\.width: value '\[4,' is not valid YAML: .* line 1, column 4"),
        ("train.steps=!!python/name:os.system", r"^train\.steps: value .* is not valid YAML"),
        ("train.steps=" + "[" * 40, r"^train\.steps: value .* is refused: nesting deeper"),
    ],
)
def test_bad_overrides_name_their_path(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(standard_sweep("s", [2]), [override])


# ----------------------------------------------------------------------------- robustlab sweep
@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(standard_sweep("overridden", [2])))
    return path


def test_sweep_overrides_change_the_run_and_the_stored_config(tmp_path, config_file, capsys):
    store = tmp_path / "results.db"
    # one override before the options and one after them: both are taken, in order
    argv = ["sweep", str(config_file), "train.steps=9", "--store", str(store)]
    argv += ["--executor", "serial", "--quiet", "grid.width=[4,8]", "train.steps=5"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == "" and "overridden: 4 cells" in out  # 2 widths x 2 inits
    rows = load(store)
    assert len(rows) > 0 and set(rows["stage"]) == {"final"}
    assert sorted(set(rows["width"])) == [4, 8] and set(rows["steps"]) == {5}
    (stored,) = load_configs(store)
    assert stored["train"]["steps"] == 5 and stored["grid"]["width"] == [4, 8]
    assert stored == load_config(config_file, ["grid.width=[4,8]", "train.steps=5"]).to_dict()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stepz=3", "train: unknown key 'stepz' (allowed: optimizer, loss, lr, steps"),
        ("stepz=3", "config: unknown key 'stepz' (allowed: name, data, model, grid"),
        ("grid.width=[4,-8]", "grid.width[1]: expected a positive integer, got -8"),
        ("seeds.n=3", "seeds.n: cannot set a key inside seeds"),
        ("grid.width=[4,", "grid.width: value '[4,' is not valid YAML"),
        ("train.steps", "override 'train.steps': expected KEY.PATH=VALUE"),
    ],
)
def test_sweep_bad_override_is_one_line_and_writes_nothing(
    tmp_path, config_file, capsys, override, message
):
    store = tmp_path / "results.db"
    argv = ["sweep", str(config_file), "--store", str(store), override]
    assert one_error_line(capsys, argv).startswith(message)
    assert list(tmp_path.iterdir()) == [config_file]  # no store, no journal


def test_words_that_are_not_overrides_stay_errors(tmp_path, config_file, capsys):
    store = str(tmp_path / "results.db")
    line = one_error_line(capsys, ["sweep", str(config_file), "--store", store, "--stor3", "x=1"])
    assert line == "unrecognized arguments: --stor3"
    line = one_error_line(capsys, ["theory", "--depth", "2", "train.steps=5"])
    assert line == "unrecognized arguments: train.steps=5"  # theory takes no overrides
    assert list(tmp_path.iterdir()) == [config_file]


# ----------------------------------------------------------------------------- reproduce
def test_reproduce_sets_the_overrides_on_every_preset(tmp_path, capsys, monkeypatch):
    seen = []

    def stop(configs, store, **_):  # what reproduce would run: record it, run nothing
        seen.extend(configs)
        raise ValueError("stopped before the sweep")

    monkeypatch.setattr(robustlab.reproduce, "run", stop)
    argv = ["reproduce", "--quick", "train.steps=7", "--out", str(tmp_path / "out"), "seeds=2"]
    assert one_error_line(capsys, argv) == "stopped before the sweep"
    presets = [load_config(p) for p in robustlab.reproduce.preset_paths("quick")]
    assert [c.name for c in seen] == [c.name for c in presets] and len(seen) == 12
    for config, preset in zip(seen, presets, strict=True):
        assert (config.train.steps, config.seeds) == (7, (0, 1))
        assert config.train.target_loss == preset.train.target_loss  # the rest is the preset's
    # one name for every preset is refused before --out is made
    argv = ["reproduce", "--out", str(tmp_path / "named"), "name=mine"]
    assert one_error_line(capsys, argv).startswith("name: reproduce runs 12 preset sweeps")
    assert not (tmp_path / "named").exists()


# ----------------------------------------------------------------------------- README
SHORTER = [  # the README's sweep in seconds: one shape, one init, one seed, 3 steps
    "train.steps=3", "grid.width=[16]", "grid.depth=2", "grid.init=[lecun]", "seeds=1",
    "measure.points=10",
]  # fmt: skip


def readme_sweep() -> tuple[str, str]:
    """The README's sweep config (its YAML block) and the ``robustlab sweep`` line of the
    first bash block after it."""
    text = README.read_text()
    (config,) = re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)
    after = text[text.index(config) + len(config) :]
    block = re.search(r"^```bash\n(.*?)^```", after, re.S | re.M)
    assert block is not None, "no bash block after the README's sweep config"
    (line,) = [w for w in block[1].splitlines() if w.startswith("robustlab sweep ")]
    return config, line


def test_readme_sweep_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config, line = readme_sweep()
    words = shlex.split(line)[1:]  # sweep CONFIG --store STORE ...
    Path(words[1]).write_text(config)
    assert main(words + SHORTER) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert err == "" and ", 0 failed" in out
    store = words[words.index("--store") + 1]
    cells, rows = load_cells(store), load(store)
    assert len(cells) == 2 and set(cells["status"]) == {"ok"}  # linearized and standard
    assert len(rows) > 0 and set(rows["method"]) == {"exact", "pgd"}
    assert set(rows["width"]) == {16} and rows["steps"].max() <= 3
    (stored,) = load_configs(store)
    assert stored == load_config(words[1], SHORTER).to_dict()
