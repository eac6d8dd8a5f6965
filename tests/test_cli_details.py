"""Small CLI behaviours (issues 19.19, 20.8, 20.9): validate recurses, zoo shows spec names, diff's text
comes before a Graphviz error, grid names that differ by case are refused, a closed pipe ends quietly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hrgraph.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def resolved(name: str) -> str:
    """A shipped spec as one self-contained file (hiresnet18 extends resnet18)."""
    import hrgraph

    return hrgraph.load_spec(ROOT / "specs" / name).to_yaml()


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_a_folder_recurses_into_subfolders(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(ROOT / "specs" / "resnet18.yaml", tmp_path / "a.yaml")
    (tmp_path / "sub" / "deeper" / "b.yml").write_text(resolved("hiresnet18.yaml"))
    (tmp_path / "sub" / "broken.yaml").write_text("nodes: []\n")
    result = run("validate", str(tmp_path))
    assert result.exit_code == 1
    assert f"ok {tmp_path / 'a.yaml'}" in result.stdout
    assert f"ok {tmp_path / 'sub' / 'deeper' / 'b.yml'}" in result.stdout
    assert str(tmp_path / "sub" / "broken.yaml") in result.stderr and "1 of 3 specs invalid" in result.stderr


def test_validate_an_empty_folder_is_a_usage_error(tmp_path):
    result = run("validate", str(tmp_path))
    assert result.exit_code == 2 and "no *.yaml spec" in result.output


def test_zoo_shows_spec_names(tmp_path):
    spec = yaml.safe_load((ROOT / "specs" / "resnet18.yaml").read_text())
    spec["name"] = "my-resnet"
    (tmp_path / "file-stem.yaml").write_text(yaml.safe_dump(spec))
    result = run("zoo", str(tmp_path))
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "my-resnet" in line)
    assert row.startswith("| my-resnet | file-stem |")


def test_diff_prints_the_text_before_a_missing_dot_error(tmp_path, monkeypatch):
    wider = yaml.safe_load(resolved("hiresnet18.yaml"))
    wider["edges"] = wider["edges"][1:]
    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump(wider))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run("diff", str(ROOT / "specs" / "hiresnet18.yaml"), str(b), "-o", str(tmp_path / "d.svg"))
    assert result.exit_code == 1
    assert result.stdout.lstrip().startswith("-")  # the removed edge, on stdout
    assert result.stderr.startswith("error:") and "dot" in result.stderr
    assert not (tmp_path / "d.svg").exists()


def test_grid_names_differing_only_by_case_are_refused(tmp_path):
    from hrgraph.errors import GridError
    from hrgraph.train.experiment import load_grid

    shutil.copy(ROOT / "specs" / "resnet18.yaml", tmp_path / "r.yaml")
    (tmp_path / "recipe.yaml").write_text("data: synthetic\nepochs: 1\n")
    grid = {"name": "g", "recipe": "recipe.yaml", "data": ["synthetic"], "seeds": [0],
            "models": [{"name": "HiRes", "spec": "r.yaml"}, {"name": "hires", "spec": "r.yaml"}]}
    with pytest.raises(GridError, match="case") as info:
        load_grid(grid, base_dir=tmp_path)
    assert "hires" in str(info.value)


def test_a_closed_pipe_ends_quietly(tmp_path):
    # `hrgraph zoo specs | head -1`: the reader goes away; no "internal error", no traceback.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "hrgraph", "zoo", str(ROOT / "specs")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # before the command has written everything
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    assert proc.returncode in (0, 141)


def test_broken_pipe_in_a_command_exits_141():
    import click

    from hrgraph.cli.common import EXIT_BROKEN_PIPE, handle_errors

    @click.command()
    @handle_errors
    def cmd() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    result = CliRunner().invoke(cmd, [])
    assert result.exit_code == EXIT_BROKEN_PIPE == 141
    assert "internal error" not in result.output
