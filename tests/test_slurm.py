"""hrgraph experiment --slurm: a grid as a job array through submitit (tested with its local executor)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hrgraph.cli.main import main
from hrgraph.errors import TrainingError
from hrgraph.train.slurm import ShardTask, parse_time, submit_grid

from .test_experiment import write_grid

ROOT = Path(__file__).resolve().parent.parent

TINY_GRID = """\
name: tiny
recipe: ../recipes/cpu-fashion-mnist.yaml
overrides: {epochs: 1, batch_size: 20}
data: [synthetic]
seeds: [0, 1]
models:
  - {name: resnet18, spec: ../specs/resnet18.yaml, width: 0.125}
"""


def test_local_job_array_trains_one_shard_per_task(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    # The tasks are new Python processes: they must import this checkout of hrgraph.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    grid = write_grid(tmp_path, TINY_GRID)
    runs = tmp_path / "runs"
    submission = submit_grid(grid, runs, cluster="local", device="cpu", limit_train=20, limit_val=20, time="00:10")
    assert len(submission.jobs) == 2 and submission.job_id
    results = [job.result() for job in submission.jobs]  # raises if a task failed
    assert sorted(r[0]["run"] for r in results) == ["resnet18__synthetic__s0", "resnet18__synthetic__s1"]
    assert all(r[0]["action"] == "trained" for r in results)
    assert all((runs / name / "summary.json").is_file() for name in ("resnet18__synthetic__s0", "resnet18__synthetic__s1"))
    assert submission.log_folder == runs / "slurm" and any((runs / "slurm").iterdir())


def test_preempted_task_resubmits_the_same_shard():
    pytest.importorskip("submitit")
    task = ShardTask("grid.yaml", "runs", 4, "cpu", {"limit_train": 10})
    again = task.checkpoint(3)
    assert again.function is task and again.args == (3,)


def test_time_limits():
    assert parse_time("01:05") == 65
    with pytest.raises(ValueError, match="HH:MM"):
        parse_time("1h")


def test_cli_help_offers_slurm_and_missing_submitit_names_the_extra(tmp_path, monkeypatch):
    help_text = CliRunner().invoke(main, ["experiment", "--help"]).output
    assert "--slurm" in help_text and "--gpus-per-run" in help_text
    monkeypatch.setitem(sys.modules, "submitit", None)
    grid = write_grid(tmp_path, TINY_GRID)
    result = CliRunner().invoke(main, ["experiment", str(grid), "--slurm", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "pip install 'hrgraph[slurm]'" in result.output
    with pytest.raises(TrainingError):
        submit_grid(grid, tmp_path / "runs")


def test_slurm_resources_without_slurm_are_misuse(tmp_path):
    grid = write_grid(tmp_path, TINY_GRID)
    result = CliRunner().invoke(main, ["experiment", str(grid), "--partition", "gpu", "--dry-run"])
    assert result.exit_code == 2 and "--partition only apply with --slurm" in result.output
