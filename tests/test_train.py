"""The training loop: run folders, resume, interrupts, checkpoints that cannot run code, torchrun."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hrgraph.cli.main import main
from hrgraph.errors import HrgraphError, TrainingError, TrainingInterrupted
from hrgraph.train.checkpoint import read_checkpoint, write_checkpoint
from hrgraph.train.loop import METRICS_COLUMNS, train
from hrgraph.train.progress import Reporter

ROOT = Path(__file__).resolve().parents[1]

# A small HiResNet-like net: stem, two stages and one long-range edge (a projection with pooling).
SPEC = {
    "name": "tiny",
    "input": {"channels": 3, "height": 16, "width": 16},
    "nodes": [
        {"id": "stem", "kind": "conv", "channels": 8},
        {"id": "stage1", "kind": "basic", "channels": 8, "depth": 1},
        {"id": "stage2", "kind": "basic", "channels": 16, "depth": 1, "stride": 2},
        {"id": "head", "kind": "classifier", "classes": 4},
    ],
    "edges": [{"from": "stem", "to": "stage2"}],
}
RECIPE = {"data": "synthetic", "epochs": 2, "batch_size": 16, "val_split": 0.2, "seed": 3,
          "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "step", "every": 1, "factor": 0.5}}
LIMITS = {"limit_train": 96, "limit_val": 48, "device": "cpu"}


def _run(tmp_path: Path, name: str = "run", **kw):
    args = {**LIMITS, **kw}
    return train(args.pop("spec", SPEC), args.pop("recipe", RECIPE), out=tmp_path / name, **args)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "checkpoints" / "last.pt")["model"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_has_every_file(tmp_path):
    summary = _run(tmp_path)
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "summary.json", "curves.png", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == METRICS_COLUMNS
    # The step schedule halves the learning rate every epoch here.
    assert [float(r["lr"]) for r in rows] == [0.01, 0.005]
    assert json.loads((run / "summary.json").read_text()) == summary
    assert summary["finished"] and summary["epochs_done"] == 2
    assert summary["params"] == sum(p.numel() for p in _weights(run).values() if p.dtype.is_floating_point) - sum(
        p.numel() for k, p in _weights(run).items() if "running_" in k)
    assert 1 <= summary["best_epoch"] <= 2 and 0 <= summary["test_acc1"] <= summary["test_acc5"] <= 1
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_weights_and_resume_is_bit_identical(tmp_path):
    _run(tmp_path, "a")
    _run(tmp_path, "b")
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    # One epoch, then resume to two: the same weights, bit for bit, and the same metrics.
    _run(tmp_path, "c", overrides={"epochs": 1})
    assert read_checkpoint(tmp_path / "c" / "checkpoints" / "last.pt")["epoch"] == 1
    _run(tmp_path, "c", resume=True)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))
    assert (tmp_path / "a" / "metrics.csv").read_text().split("\n")[1].split(",")[:6] == \
        (tmp_path / "c" / "metrics.csv").read_text().split("\n")[1].split(",")[:6]


class _SignalAt(Reporter):
    """Sends ``signum`` to this process after ``at`` training steps."""

    def __init__(self, at: int, signum: int = signal.SIGINT) -> None:
        self.at, self.signum, self.steps = at, signum, 0

    def step(self, images, loss):
        self.steps += 1
        if self.steps == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_epoch_saves_and_resume_finishes_identically(tmp_path, signum):
    # What Ctrl-C did before the run: Python's handler, or SIG_IGN in a job started in the background.
    before = signal.getsignal(signal.SIGINT)
    _run(tmp_path, "whole")
    with pytest.raises(TrainingInterrupted, match="--resume") as info:
        _run(tmp_path, "cut", reporter=_SignalAt(4, signum))  # 6 steps per epoch: stops inside epoch 1
    assert "--out" in info.value.resume
    state = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"]) == (0, 4)
    assert not (tmp_path / "cut" / "summary.json").exists()
    # The handlers are restored: Ctrl-C outside a run does what it did before.
    assert signal.getsignal(signal.SIGINT) is before
    _run(tmp_path, "cut", resume=True)
    assert _same(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    assert (tmp_path / "whole" / "metrics.csv").read_text().split("\n")[1].split(",")[:5] == \
        (tmp_path / "cut" / "metrics.csv").read_text().split("\n")[1].split(",")[:5]


def test_finished_run_resumed_returns_its_summary_and_extends(tmp_path):
    first = _run(tmp_path)
    assert _run(tmp_path, resume=True) == first
    extended = _run(tmp_path, resume=True, overrides={"epochs": 3})
    assert extended["epochs_done"] == 3
    assert len((tmp_path / "run" / "metrics.csv").read_text().strip().split("\n")) == 4


def test_existing_run_needs_resume(tmp_path):
    _run(tmp_path, overrides={"epochs": 1})
    with pytest.raises(TrainingError, match="already holds a run"):
        _run(tmp_path, overrides={"epochs": 1})


def test_resume_refuses_a_changed_spec_or_recipe(tmp_path):
    _run(tmp_path, overrides={"epochs": 1})
    wider = {**SPEC, "nodes": [{**SPEC["nodes"][0], "channels": 12}, *SPEC["nodes"][1:]]}
    with pytest.raises(TrainingError, match="spec changed"):
        _run(tmp_path, spec=wider, resume=True)
    with pytest.raises(TrainingError, match="recipe changed .*batch_size"):
        _run(tmp_path, resume=True, overrides={"batch_size": 8})


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"format": "hrgraph-run-1", "model": exploit}, run / "checkpoints" / "last.pt")
    with pytest.raises(TrainingError, match="refused without running"):
        _run(tmp_path, resume=True)
    assert not marker.exists()
    # The same file opened with plain pickle would have run the command: the test is real.
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(exploit))
    pickle.loads((tmp_path / "plain.pkl").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"epoch: 3\nmodel: x\n", None])
def test_non_checkpoints_give_a_clear_error(tmp_path, content):
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(TrainingError, match="checkpoint"):
        read_checkpoint(path)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    write_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def full(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(TrainingError, match="No space left.*previous one is kept"):
        write_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_width_mult_and_tags(tmp_path):
    summary = _run(tmp_path, spec=str(ROOT / "specs" / "resnet18.yaml"), width_mult=0.125,
                   recipe={**RECIPE, "epochs": 1}, tags={"model": "r18", "family": "resnet"}, limit_train=32)
    assert summary["name"] == "r18" and summary["tags"]["family"] == "resnet"
    assert summary["spec_name"] == "resnet18-w0.125"
    from hrgraph import count_params
    from hrgraph.edit.match import scale_widths

    assert summary["params"] == count_params(scale_widths(ROOT / "specs" / "resnet18.yaml", 0.125))


def test_amp_needs_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(TrainingError, match="CUDA"):
        _run(tmp_path, amp=True)


# -- the command line -------------------------------------------------------------


def _spec_file(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return path


def _recipe_file(tmp_path: Path, **changes) -> Path:
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, **changes}, sort_keys=False))
    return path


def test_cli_train_and_overrides(tmp_path):
    args = ["train", str(_spec_file(tmp_path)), "--recipe", str(_recipe_file(tmp_path)), "--epochs", "1",
            "--lr", "0.002", "--device", "cpu", "--limit-train", "32", "--limit-val", "16", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 epochs" in result.output and "top-1" in result.output
    config = (tmp_path / "r" / "config.yaml").read_text()
    assert "lr: 0.002" in config and "'--lr'" not in config  # recorded as the resolved recipe and the command
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "--resume" in result.output and "Traceback" not in result.output


def test_cli_bad_recipe_key_is_located(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("data: synthetic\nepochz: 3\n")
    result = CliRunner().invoke(main, ["train", str(_spec_file(tmp_path)), "--recipe", str(recipe), "-o", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert f"{recipe}:2:1" in result.output and "epochs" in result.output
    assert not (tmp_path / "r").exists()


def test_cli_sigint_exits_130_and_resume_finishes(tmp_path):
    spec, recipe = _spec_file(tmp_path), _recipe_file(tmp_path, epochs=50)
    run = tmp_path / "r"
    cmd = [sys.executable, "-m", "hrgraph", "train", str(spec), "--recipe", str(recipe), "--device", "cpu",
           "--limit-train", "64", "--limit-val", "16", "-o", str(run)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the first epoch is done, then interrupt.
    for line in proc.stderr:
        if line.startswith("epoch 1/50"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    state = read_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] >= 1
    done = subprocess.run(cmd[:-2] + ["--epochs", str(state["epoch"] + 1), "-o", str(run), "--resume"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "summary.json").read_text())["epochs_done"] == state["epoch"] + 1


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    spec, recipe = _spec_file(tmp_path), _recipe_file(tmp_path, epochs=1)
    # 97 images in global batches of 16: the last one has a single image, so one rank's slice is empty.
    common = ["train", str(spec), "--recipe", str(recipe), "--device", "cpu", "--limit-train", "97", "--limit-val", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                          "-m", "hrgraph", *common, "-o", str(tmp_path / "two")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "hrgraph", *common, "-o", str(tmp_path / "one")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    # One set of files, written once; the same number of optimizer steps as one process.
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["best.pt", "last.pt"]

    def steps(run):
        state = read_checkpoint(run / "checkpoints" / "last.pt")["optimizer"]["state"]
        return {int(s["step"]) for s in state.values()}

    assert steps(tmp_path / "two") == steps(tmp_path / "one") == {7}
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["finished"] and summary["test_acc1"] is not None
    weights = read_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.dtype.is_floating_point)


def test_errors_are_hrgraph_errors():
    assert issubclass(TrainingInterrupted, TrainingError) and issubclass(TrainingError, HrgraphError)


def test_grad_norms_logged_per_node_and_projection_and_resumed(tmp_path):
    _run(tmp_path, "a", log_grad_norms=True)
    rows = list(csv.DictReader((tmp_path / "a" / "grad_norms.csv").open()))
    modules = {r["module"]: r["kind"] for r in rows}
    assert modules == {"nodes.stem": "node", "nodes.stage1": "node", "nodes.stage2": "node", "nodes.head": "node",
                       "projections.stem__stage2": "projection"}
    assert sorted({int(r["epoch"]) for r in rows}) == [0, 1, 2]
    assert all(float(r["norm"]) > 0 for r in rows)
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, "b", log_grad_norms=True, reporter=_SignalAt(9))  # inside epoch 2
    _run(tmp_path, "b", log_grad_norms=True, resume=True)
    assert (tmp_path / "a" / "grad_norms.csv").read_text() == (tmp_path / "b" / "grad_norms.csv").read_text()


def test_resume_restarts_a_run_stopped_before_its_first_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("spec: {}\n")
    assert _run(tmp_path, resume=True, overrides={"epochs": 1})["epochs_done"] == 1


def test_config_records_where_the_run_ran_and_threads_pin(tmp_path):
    import yaml

    from hrgraph.train.machine import cpu_model

    before = torch.get_num_threads()
    try:
        args = ["train", str(_spec_file(tmp_path)), "--recipe", str(_recipe_file(tmp_path)), "--epochs", "1",
                "--threads", "1", "--device", "cpu", "--limit-train", "32", "--limit-val", "16",
                "--out", str(tmp_path / "r")]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
        assert config["limits"] == {"train": 32, "val": 16}  # the report marks such smoke runs
        machine = config["machine"]
        assert machine["threads"] == 1 and torch.get_num_threads() == 1
        assert machine["cpu"] == cpu_model() and machine["gpu"] is None
        assert machine["torch"] == str(torch.__version__) and machine["deterministic"] is False
    finally:
        torch.set_num_threads(before)


# -- safety: divergence, folders that are not runs, resume from the run's own record, locks -----------------------

DIVERGING = {"data": "synthetic:60", "epochs": 3, "batch_size": 10, "val_split": 0.2,
             "optimizer": {"name": "sgd", "lr": 1.0e10, "momentum": 0.9}}


def test_divergence_stops_at_the_first_non_finite_loss_and_keeps_finite_files(tmp_path):
    from hrgraph.errors import DivergedError

    with pytest.raises(DivergedError, match=r"not finite at epoch \d+, step \d+") as info:
        train(SPEC, DIVERGING, out=tmp_path / "run", device="cpu")
    run = tmp_path / "run"
    text = (run / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    summary = json.loads(text)
    assert summary["diverged"] is True and summary["finished"] is False
    assert (summary["diverged_epoch"], summary["diverged_step"]) == (info.value.epoch, info.value.step)
    for name in ("last.pt", "best.pt"):
        path = run / "checkpoints" / name
        if path.exists():  # only an epoch that ended finite was saved
            weights = read_checkpoint(path)["model"]
            assert all(torch.isfinite(w).all() for w in weights.values() if w.dtype.is_floating_point)
    # A diverged run is not resumed: it would diverge again at the same step.
    with pytest.raises(TrainingError, match="diverged"):
        train(SPEC, DIVERGING, out=run, device="cpu", resume=True)


def test_cli_divergence_is_an_error_line_with_exit_1(tmp_path):
    recipe = tmp_path / "diverge.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(DIVERGING))
    result = CliRunner().invoke(main, ["train", str(_spec_file(tmp_path)), "--recipe", str(recipe), "--device", "cpu",
                                       "-o", str(tmp_path / "r")])
    assert result.exit_code == 1 and "diverged" in result.output and "Traceback" not in result.output


def test_a_folder_that_is_not_a_run_is_never_overwritten(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_text('{"mine": 1}')
    with pytest.raises(TrainingError, match="not empty and is not a run folder.*summary.json"):
        _run(tmp_path)
    assert (folder / "summary.json").read_text() == '{"mine": 1}'
    assert sorted(p.name for p in folder.iterdir()) == ["summary.json"]


def test_resume_without_last_pt_but_with_results_is_refused(tmp_path):
    _run(tmp_path, overrides={"epochs": 1})
    run = tmp_path / "run"
    (run / "checkpoints" / "last.pt").unlink()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(TrainingError, match="last.pt is missing.*checkpoints/best.pt.*summary.json"):
        _run(tmp_path, resume=True)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_bad_recipe_value_leaves_no_folder(tmp_path):
    from hrgraph.errors import HrgraphError as Any_

    with pytest.raises(Any_):
        _run(tmp_path, recipe={**RECIPE, "data": "synthetc"})
    assert not (tmp_path / "run").exists()


def test_resume_uses_the_runs_own_spec_recipe_and_options(tmp_path):
    spec, recipe = _spec_file(tmp_path), _recipe_file(tmp_path)
    run = tmp_path / "r"
    common = ["--device", "cpu", "--limit-train", "32", "--limit-val", "16", "--width-mult", "0.5", "--threads", "1"]
    before = torch.get_num_threads()
    try:
        first = CliRunner().invoke(main, ["train", str(spec), "--recipe", str(recipe), "--epochs", "1", *common, "-o", str(run)])
        assert first.exit_code == 0, first.output
        # Nothing but the folder: the run's spec (scaled), recipe, limits and threads.
        again = CliRunner().invoke(main, ["train", "-o", str(run), "--resume"])
        assert again.exit_code == 0 and "finished (1 epochs); nothing to do" in again.output, again.output
        longer = CliRunner().invoke(main, ["train", "-o", str(run), "--resume", "--epochs", "2"])
        assert longer.exit_code == 0, longer.output
        summary = json.loads((run / "summary.json").read_text())
        assert summary["epochs_done"] == 2 and summary["epochs"] == 2
        import yaml

        assert yaml.safe_load((run / "config.yaml").read_text())["limits"] == {"train": 32, "val": 16}
        # The spec without --width-mult is fine (the run's width applies); a contradicting option is named.
        same = CliRunner().invoke(main, ["train", str(spec), "-o", str(run), "--resume"])
        assert same.exit_code == 0 and "nothing to do" in same.output, same.output
        for option, value, run_value in (("--width-mult", "0.25", "0.5"), ("--limit-train", "64", "32"),
                                         ("--lr", "0.5", "0.01")):
            bad = CliRunner().invoke(main, ["train", "-o", str(run), "--resume", option, value])
            assert bad.exit_code == 1 and f"{option} {value} contradicts the run, which has" in bad.output, bad.output
            assert run_value in bad.output
    finally:
        torch.set_num_threads(before)


def test_the_interrupt_hint_is_a_command_that_works(tmp_path):
    spec, recipe = _spec_file(tmp_path), _recipe_file(tmp_path)
    with pytest.raises(TrainingInterrupted) as info:
        train(str(spec), str(recipe), out=tmp_path / "cut", reporter=_SignalAt(4), **LIMITS)
    args = shlex.split(info.value.resume)
    assert args[:2] == ["hrgraph", "train"] and str(spec) not in args
    result = CliRunner().invoke(main, args[1:] + ["--device", "cpu"])
    assert result.exit_code == 0, result.output
    _run(tmp_path, "whole")
    assert _same(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))


def test_spec_is_required_without_resume_and_width_nan_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["train", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "SPEC" in result.output
    result = CliRunner().invoke(main, ["train", str(_spec_file(tmp_path)), "--width-mult", "nan", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not a finite number" in result.output
    assert not (tmp_path / "r").exists()


def test_a_run_held_by_another_process_is_refused(tmp_path):
    from hrgraph.errors import RunLockedError
    from hrgraph.train.runfolder import is_held, run_lock

    with run_lock(tmp_path / "run"):
        assert is_held(tmp_path / "run")
        with pytest.raises(RunLockedError, match="is training this run now"):
            _run(tmp_path, resume=True)
    assert not is_held(tmp_path / "run")  # released with the descriptor: a killed process leaves none
    assert _run(tmp_path, resume=True, overrides={"epochs": 1})["finished"]


class _Messages(Reporter):
    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)


def test_scaling_a_matched_spec_warns(tmp_path):
    from hrgraph.build.shapes import count_params
    from hrgraph.edit.match import match_params

    from hrgraph.spec.models import load_spec

    target = count_params(load_spec(SPEC)) * 2
    matched = match_params(load_spec(SPEC), target)
    messages = _Messages()
    _run(tmp_path, spec=matched, width_mult=0.5, reporter=messages, overrides={"epochs": 1})
    assert any("parameter-matched" in line and "scale first, then match" in line for line in messages.lines)
    quiet = _Messages()
    _run(tmp_path, "plain", width_mult=0.5, reporter=quiet, overrides={"epochs": 1})
    assert not any("parameter-matched" in line for line in quiet.lines)
