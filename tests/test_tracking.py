"""--log tensorboard: event files beside metrics.csv, readable by TensorBoard; a clear error without the package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hrgraph.cli.main import main
from hrgraph.errors import TrainingError
from hrgraph.train.loop import train

# One gated edge, so the gate's value is logged too.
SPEC = {"extends": "specs/resnet18.yaml", "edges": [{"from": "stem", "to": "stage3", "gate": "scalar"}]}
TINY = dict(width_mult=0.125, limit_train=40, limit_val=40, device="cpu")
RECIPE = {"data": "synthetic", "epochs": 2, "batch_size": 20}


def test_tensorboard_scalars_readable_by_event_accumulator(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(SPEC, RECIPE, out=out, log=["tensorboard"], **TINY)
    assert (out / "metrics.csv").is_file()
    events = EventAccumulator(str(out))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "images_per_s", "gates/stem->stage3"} <= tags
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2]
    csv_losses = [float(line.split(",")[1]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert [e.value for e in losses] == pytest.approx(csv_losses, rel=1e-4)


def test_missing_tensorboard_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"pip install 'hrgraph\[tensorboard\]'"):
        train(SPEC, RECIPE, out=out, log=["tensorboard"], **TINY)
    assert not out.exists()  # refused before the run folder is made
    result = CliRunner().invoke(main, ["train", "specs/resnet18.yaml", "--data", "synthetic", "--log", "tensorboard",
                                       "--width-mult", "0.125", "--limit-train", "10", "-o", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "hrgraph[tensorboard]" in result.output


def test_grid_log_key_is_passed_to_every_run(tmp_path):
    from hrgraph.train.experiment import load_grid, run_grid

    from .test_experiment import GRID, write_grid

    seen = []

    def fake_train(spec, recipe, *, out, overrides, resume, device, tags, command, **options):
        seen.append(options.get("log"))
        raise_stop = len(seen) >= 1
        if raise_stop:
            raise KeyboardInterrupt  # one run is enough to see what it was given

    grid = load_grid(write_grid(tmp_path, GRID + "log: [tensorboard]\n"))
    assert grid.log == ["tensorboard"]
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, tmp_path / "runs", train_fn=fake_train)
    assert seen == [["tensorboard"]]
