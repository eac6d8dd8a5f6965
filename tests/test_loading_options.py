"""Every command that loads a spec takes the loading options its messages recommend (issues 19.17, 20.2, 20.3).

Loading errors say "--allow-imports" and "--allow-outside"; each command that
prints them must have them, pass them down to where the spec is loaded
(training, grids, analysis), and a module beside the spec is found by its
``imports`` without any PYTHONPATH.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hrgraph.cli.main import main

#: The commands that load a spec (from a file, a grid or a run's checkpoint).
LOADING = ["validate", "compile", "summary", "render", "diff", "gallery", "zoo", "match", "ablate", "scale",
           "train", "experiment", "analyze", "export"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def _options(command: str) -> set[str]:
    return {opt for param in main.commands[command].params for opt in getattr(param, "opts", [])}


@pytest.mark.parametrize("command", LOADING)
def test_every_loading_command_takes_both_options(command):
    assert {"--allow-imports", "--allow-outside"} <= _options(command)
    shown = run(command, "--help").output
    assert "--allow-imports" in shown and "--allow-outside" in shown


def test_import_takes_allow_imports():
    # An imported graph names no 'extends' file, so only --allow-imports can be recommended there.
    assert "--allow-imports" in _options("import")


def test_no_other_command_is_missing_them():
    """A new command that loads specs must join LOADING (or say why not here)."""
    without = {"schema", "generate", "report", "import"}
    assert set(main.commands) - without == set(LOADING)


TINY = """\
input: {channels: 3, height: 16, width: 16}
nodes:
  - {id: stem, kind: conv, channels: 8}
  - {id: stage1, kind: basic, channels: 8, depth: 1}
  - {id: stage2, kind: basic, channels: 16, depth: 1, stride: 2}
  - {id: head, kind: classifier, classes: 4}
edges:
  - {from: stem, to: stage2}
"""


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A spec in ``sub/`` that extends a parent one folder up (outside its own folder)."""
    (tmp_path / "parent.yaml").write_text(TINY, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("extends: ../parent.yaml\nname: child\n", encoding="utf-8")
    return child


@pytest.mark.parametrize("command", ["ablate", "match", "scale", "zoo", "summary"])
def test_the_recommended_option_works_where_it_is_recommended(outside, command):
    extra = {"ablate": ["--drop", "*:*"], "match": ["--to", "20000", "--tolerance", "0.2"], "scale": ["--width", "2"]}.get(command, [])
    refused = run(command, str(outside), *extra)
    assert refused.exit_code == 1, refused.output
    assert "--allow-outside" in refused.stderr
    allowed = run(command, str(outside), *extra, "--allow-outside")
    assert allowed.exit_code == 0, allowed.output


USER_MODULE = '''
from typing import Literal

from torch import nn

import hrgraph


class Halve(hrgraph.Block):
    kind: Literal["test_loading_halve"]


class HalveModule(nn.Module):
    def forward(self, x):
        return x * 0.5


hrgraph.register_block(Halve, lambda block, in_shape: HalveModule(), replace=True)
'''


@pytest.fixture
def user_spec(tmp_path: Path):
    """A spec whose block kind lives in a module beside it (not on sys.path)."""
    module = "hrgraph_test_loading_blocks"
    (tmp_path / f"{module}.py").write_text(USER_MODULE, encoding="utf-8")
    spec = tmp_path / "user.yaml"
    spec.write_text(
        f"imports: [{module}]\n" + TINY.replace("  - {id: head", "  - {id: halve, kind: test_loading_halve}\n  - {id: head"),
        encoding="utf-8",
    )
    yield spec
    sys.modules.pop(module, None)
    # Leave the registries as they were for the rest of the session (as tests/test_spec.py does).
    import hrgraph
    from hrgraph.build.blocks import BUILDERS

    hrgraph.KINDS._kinds.pop("test_loading_halve", None)
    BUILDERS._builders.pop("test_loading_halve", None)


def test_a_module_beside_the_spec_is_found(user_spec):
    assert str(user_spec.parent) not in sys.path
    result = run("validate", "--allow-imports", str(user_spec))
    assert result.exit_code == 0, result.output
    assert str(user_spec.parent) not in sys.path  # on the path only while importing


def test_a_spec_with_imports_trains_from_the_cli(user_spec, tmp_path):
    pytest.importorskip("torch")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data": "synthetic", "epochs": 1, "batch_size": 16, "val_split": 0.2,
                                      "optimizer": {"name": "adam", "lr": 0.01}}), encoding="utf-8")
    args = ["train", str(user_spec), "--recipe", str(recipe), "--device", "cpu", "--limit-train", "32",
            "--limit-val", "16", "-o", str(tmp_path / "run")]
    refused = run(*args)
    assert refused.exit_code == 1 and "--allow-imports" in refused.stderr
    assert not (tmp_path / "run").exists()
    trained = run(*args, "--allow-imports")
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


def test_an_experiment_passes_the_options_to_its_specs(outside, tmp_path):
    grid = tmp_path / "sub" / "grid.yaml"
    recipe = tmp_path / "sub" / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data": "synthetic", "epochs": 1, "batch_size": 16}), encoding="utf-8")
    grid.write_text(yaml.safe_dump({"name": "g", "recipe": "recipe.yaml", "data": ["synthetic"], "seeds": [0],
                                    "models": [{"name": "child", "spec": "child.yaml"}]}), encoding="utf-8")
    refused = run("experiment", str(grid), "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert refused.exit_code == 1 and "--allow-outside" in refused.stderr
    allowed = run("experiment", str(grid), "--dry-run", "--allow-outside", "--runs-dir", str(tmp_path / "runs"))
    assert allowed.exit_code == 0, allowed.output


# -- hrgraph.load_checkpoint takes what `hrgraph train` writes (issue 20.2) ------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from hrgraph.train.loop import train

    out = tmp_path_factory.mktemp("runs") / "run"
    recipe = {"data": "synthetic", "epochs": 2, "batch_size": 16, "val_split": 0.2, "seed": 1,
              "optimizer": {"name": "adam", "lr": 0.01}}
    train(yaml.safe_load(TINY), recipe, out=out, device="cpu", limit_train=32, limit_val=16)
    return out


@pytest.mark.parametrize("where", ["folder", "best.pt", "last.pt"])
def test_load_checkpoint_reads_a_run_as_analyze_does(trained_run, where):
    import torch

    import hrgraph
    from hrgraph.analysis.run import open_run

    path = trained_run if where == "folder" else trained_run / "checkpoints" / where
    model, payload = hrgraph.load_checkpoint(path)
    reference = open_run(path).model
    x = torch.randn(2, 3, 16, 16)
    assert not model.training
    assert torch.equal(model(x), reference(x))
    assert {"spec", "recipe", "model"} <= set(payload)
    expected = torch.load(trained_run / "checkpoints" / ("best.pt" if where == "folder" else where), weights_only=True)
    assert payload["epoch"] == expected["epoch"]


def test_load_checkpoint_which_picks_the_run_folders_checkpoint(trained_run):
    import torch

    import hrgraph

    last = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
    model, payload = hrgraph.load_checkpoint(trained_run, which="last")
    assert all(torch.equal(v, last["model"][k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="'best' or 'last'"):
        hrgraph.load_checkpoint(trained_run, which="first")


def test_load_checkpoint_applies_the_activation_limit(trained_run):
    import hrgraph

    with pytest.raises(hrgraph.ShapeError):
        hrgraph.load_checkpoint(trained_run, max_activation=100)
