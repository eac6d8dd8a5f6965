"""hrgraph.train.experiment and `hrgraph experiment`: grid validation, derived models, shards, resume."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hrgraph.cli.main import main
from hrgraph.errors import GridError, TrainingInterrupted
from hrgraph.build.shapes import count_params
from hrgraph.train.experiment import (
    derive_spec,
    dry_run,
    load_grid,
    parse_shard,
    plan_runs,
    run_grid,
    run_status,
    select_shard,
)

ROOT = Path(__file__).resolve().parent.parent

GRID = """\
name: demo
recipe: ../recipes/cpu-fashion-mnist.yaml
overrides: {epochs: 2}
data: [synthetic]
seeds: [0, 1, 2]
models:
  - {name: resnext18, spec: ../specs/resnext18.yaml, width: 0.3, family: ResNeXt, version: original}
  - {name: resnext18-adjusted, spec: ../specs/resnext18.yaml, width: 0.3, match: hiresnext18,
     family: ResNeXt, version: adjusted, baseline: resnext18}
  - {name: hiresnext18, spec: ../specs/hiresnext18.yaml, width: 0.3, family: ResNeXt, version: hiresnet,
     baseline: resnext18-adjusted}
"""


def write_grid(tmp_path: Path, text: str = GRID, name: str = "grid.yaml") -> Path:
    # The grid sits one folder below a copy-free view of the repo: its paths start with ../
    folder = tmp_path / "experiments"
    folder.mkdir(exist_ok=True)
    for sub in ("specs", "recipes"):
        link = tmp_path / sub
        if not link.exists():
            link.symlink_to(ROOT / sub)
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("width: 0.3, match", "widht: 0.3, match", 8, "models[resnext18-adjusted]: unknown key 'widht' (did you mean 'width'?)"),
        ("match: hiresnext18", "match: hiresnxt18", 8, "models[resnext18-adjusted].match: no model 'hiresnxt18' in the grid (did you mean 'hiresnext18'?)"),
        ("baseline: resnext18}", "baseline: resnet18}", 9, "models[resnext18-adjusted].baseline: no model 'resnet18' in the grid (did you mean 'resnext18'?)"),
        ("seeds: [0, 1, 2]", "sedes: [0, 1, 2]", 5, "unknown key 'sedes' (did you mean 'seeds'?)"),
        ("seeds: [0, 1, 2]", "seeds: [0, 1, 1]", 5, "seeds[2]: duplicate seed 1"),
        ("version: original}", "version: original, seeds: [3, 3]}", 7, "models[resnext18].seeds[1]: duplicate seed 3"),
        ("version: original}", "version: original, seeds: []}", 7, "models[resnext18].seeds: List should have at least 1 item"),
        ("data: [synthetic]", "data: [{nme: synthetic}]", 4, "data[0]: unknown key 'nme' (did you mean 'name'?)"),
        ("width: 0.3, family: ResNeXt, version: original", "width: -1, family: ResNeXt, version: original", 7,
         "models[resnext18].width: Input should be greater than 0"),
        ("width: 0.3, family: ResNeXt, version: original", "width: '0.3', family: ResNeXt, version: original", 7,
         "models[resnext18].width: Input should be a valid number"),
        ("spec: ../specs/resnext18.yaml, width: 0.3, family", "spec: ../specs/resnex18.yaml, width: 0.3, family", 7,
         "models[resnext18].spec: no such spec file '../specs/resnex18.yaml'"),
        ("recipe: ../recipes/cpu-fashion-mnist.yaml", "recipe: {cifar10: ../recipes/paper-cifar10.yaml}", 2,
         "recipe.cifar10: recipe for 'cifar10', which is not a data set of the grid"),
        ("name: hiresnext18, spec", "name: resnext18, spec", 10, "models[resnext18].name: duplicate model name 'resnext18'"),
    ],
)
def test_grid_errors_are_located(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    assert old in GRID
    path = write_grid(tmp_path, GRID.replace(old, new, 1))
    with pytest.raises(GridError) as info:
        load_grid(path)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert info.value.message.startswith(message)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("overrides: {epochs: 2}", "overrides: {optimizer.lrr: 2}", "overrides.optimizer.lrr: unknown recipe key (did you mean 'optimizer.lr'?)"),
        ("data: [synthetic]", "data: [synthetc]", "data[synthetc]: unknown data set 'synthetc' (did you mean 'synthetic'?)"),
        ("baseline: resnext18}", "baseline: resnext18, ablate: {keep: ['stem:stage9']}}", "models[resnext18-adjusted].ablate: edge selector 'stem:stage9': unknown node 'stage9' (did you mean 'stage4'?)"),
    ],
)
def test_dry_run_validates_recipes_and_derivations(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write_grid(tmp_path, GRID.replace(old, new, 1))
    with pytest.raises(GridError) as info:
        dry_run(load_grid(path), tmp_path / "runs")
    assert info.value.path == str(path) and info.value.line is not None
    assert info.value.message.startswith(message)


def test_match_cycle_is_refused(tmp_path: Path) -> None:
    text = GRID.replace("version: original}", "version: original, match: resnext18-adjusted}")
    with pytest.raises(GridError, match="match forms a cycle: resnext18 -> resnext18-adjusted -> hiresnext18"):
        load_grid(write_grid(tmp_path, text.replace("version: hiresnet,", "version: hiresnet, match: resnext18,")))


def test_width_scaling_keeps_cardinality_and_match_lands_within_tolerance(tmp_path: Path) -> None:
    grid = load_grid(write_grid(tmp_path))
    cache: dict = {}
    for model in ("resnext18", "resnext18-adjusted", "hiresnext18"):
        spec = derive_spec(grid, model, "synthetic", cache=cache)
        assert spec.name == model
        for node in spec.nodes:
            if getattr(node, "cardinality", None):
                assert node.channels % node.cardinality == 0
    original = derive_spec(grid, "resnext18", "synthetic", cache=cache)
    assert [n.channels for n in original.nodes[1:5]] == [20, 40, 76, 152]  # 64/128/256/512 x 0.3, multiples of 4
    adjusted = count_params(cache[("resnext18-adjusted", "synthetic")])
    target = count_params(cache[("hiresnext18", "synthetic")])
    assert abs(adjusted / target - 1) <= 0.005
    assert adjusted != count_params(original)


def test_data_entry_adapts_classes_and_input(tmp_path: Path) -> None:
    text = GRID.replace("data: [synthetic]", "data: [{name: synthetic, classes: 7, input: {channels: 1, height: 64, width: 64}}]")
    spec = derive_spec(load_grid(write_grid(tmp_path, text)), "hiresnext18", "synthetic")
    assert spec.nodes[-1].classes == 7 and spec.input.shape == (1, 64, 64)


def test_a_model_with_its_own_seeds_runs_at_those_only(tmp_path: Path) -> None:
    text = GRID.replace("version: original}", "version: original, seeds: [1, 5]}")
    runs = plan_runs(load_grid(write_grid(tmp_path, text)), tmp_path / "runs")
    by_model: dict[str, list[int]] = {}
    for run in runs:
        by_model.setdefault(run.model, []).append(run.seed)
    assert by_model == {"resnext18": [1, 5], "resnext18-adjusted": [0, 1, 2], "hiresnext18": [0, 1, 2]}
    assert [r.seed for r in runs] == sorted(r.seed for r in runs)  # still seeds outermost
    assert len({r.path for r in runs}) == len(runs) == 8


def test_shards_partition_the_grid(tmp_path: Path) -> None:
    runs = plan_runs(load_grid(write_grid(tmp_path)), tmp_path / "runs")
    assert len(runs) == 9 and len({r.path for r in runs}) == 9
    for n in (1, 2, 4, 9, 12):
        shards = [select_shard(runs, i, n) for i in range(1, n + 1)]
        flat = [r for shard in shards for r in shard]
        assert sorted(r.index for r in flat) == list(range(9))
    assert [r.seed for r in runs[:3]] == [0, 0, 0]  # seeds outermost: every model gets seed 0 first
    assert parse_shard("3/4") == (3, 4)
    for bad in ("0/4", "5/4", "1-4", "a/b"):
        with pytest.raises(ValueError):
            parse_shard(bad)


class FakeTrain:
    """Writes the run folder's summary like train() does; can stop after some runs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.stop_after = stop_after

    def __call__(self, spec, recipe, *, out, overrides, resume, device, tags, command, **options):
        self.calls.append({"name": Path(out).name, "resume": resume, "tags": tags, "overrides": overrides, "spec": spec})
        out = Path(out)
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "checkpoints" / "last.pt").write_bytes(b"")
        finished = self.stop_after is None or len(self.calls) <= self.stop_after
        summary = {"data": overrides["data"], "seed": overrides["seed"], "tags": tags, "epochs": overrides["epochs"],
                   "epochs_done": overrides["epochs"] if finished else 1, "finished": finished,
                   "params": count_params(spec), "test_acc1": 0.5}
        (out / "summary.json").write_text(json.dumps(summary))
        if not finished:
            raise TrainingInterrupted("interrupted by SIGINT")
        return summary


def test_resume_skips_finished_runs_and_resumes_interrupted_ones(tmp_path: Path) -> None:
    grid = load_grid(write_grid(tmp_path))
    runs = tmp_path / "runs"
    first = FakeTrain(stop_after=3)
    with pytest.raises(TrainingInterrupted):
        run_grid(grid, runs, train_fn=first)
    assert len(first.calls) == 4
    assert [p.status for p in dry_run(grid, runs)][:5] == ["done", "done", "done", "partial", "todo"]
    second = FakeTrain()
    results = run_grid(grid, runs, train_fn=second)
    assert [r.action for r in results] == ["skipped"] * 3 + ["resumed"] + ["trained"] * 5
    assert [c["name"] for c in second.calls] == [r.name for r in plan_runs(grid, runs)[3:]]
    assert all(run_status(r.path, 2) == "done" for r in plan_runs(grid, runs))
    assert run_status(plan_runs(grid, runs)[0].path, 3) == "partial"  # more epochs asked: extend it
    call = second.calls[0]
    assert call["tags"] == {"model": "resnext18", "family": "ResNeXt", "version": "original", "baseline": "", "grid": "demo"}
    assert call["overrides"] == {"epochs": 2, "data": "synthetic", "seed": 1}
    assert (runs / "demo.grid.json").is_file()


def test_cli_dry_run_lists_runs(tmp_path: Path) -> None:
    path = write_grid(tmp_path)
    result = CliRunner().invoke(main, ["experiment", str(path), "--runs-dir", str(tmp_path / "runs"), "--dry-run",
                                       "--shard", "2/3"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "__synthetic__" in line]
    assert len(lines) == 3 and all(line.rstrip().endswith("todo") for line in lines)
    assert "resnext18-adjusted__synthetic__s0" in lines[0] and "params" in lines[0]
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_cli_errors(tmp_path: Path) -> None:
    path = write_grid(tmp_path, GRID.replace("seeds:", "sedes:"))
    result = CliRunner().invoke(main, ["experiment", str(path), "--dry-run"])
    assert result.exit_code == 1 and "grid.yaml:5:1: unknown key 'sedes' (did you mean 'seeds'?)" in result.output
    result = CliRunner().invoke(main, ["experiment", str(path), "--shard", "4/3"])
    assert result.exit_code == 2 and "I must be between 1 and N" in result.output


# -- end to end, with the real train() on synthetic data ---------------------------------------------------------

TINY_SPEC = """\
name: tiny
input: {channels: 3, height: 8, width: 8}
nodes:
  - {id: stem, kind: conv, channels: 8}
  - {id: stage1, kind: basic, channels: 8, depth: 1, stride: 2}
  - {id: stage2, kind: basic, channels: 16, depth: 1, stride: 2}
  - {id: head, kind: classifier, classes: 4}
edges:
  - {from: stem, to: stage2}
"""

TINY_GRID = """\
name: tiny
recipe: ../recipes/tiny.yaml
data: ["synthetic:120"]
seeds: [0, 1]
models:
  - {name: plain, spec: ../specs-tiny/tiny.yaml, ablate: {drop: ["*:*"]}, family: T, version: original}
  - {name: hi, spec: ../specs-tiny/tiny.yaml, family: T, version: hiresnet, baseline: plain}
"""

TINY_RECIPE = "data: synthetic\nepochs: 2\nbatch_size: 20\naugment: []\nval_split: 0.25\n"


class InterruptAt:
    """A progress reporter that sends SIGINT to this process at the given training step of the first run."""

    def __init__(self, step: int) -> None:
        self.step_count = 0
        self.at = step

    def message(self, text: str) -> None: ...
    def start_epoch(self, *args: Any) -> None: ...
    def end_epoch(self, *args: Any) -> None: ...
    def close(self) -> None: ...

    def step(self, images: int, loss: Any) -> None:
        self.step_count += 1
        if self.step_count == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def _tiny_grid(root: Path) -> Path:
    (root / "specs-tiny").mkdir(parents=True)
    (root / "specs-tiny" / "tiny.yaml").write_text(TINY_SPEC)
    (root / "recipes").mkdir()
    (root / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    (root / "experiments").mkdir()
    path = root / "experiments" / "tiny.yaml"
    path.write_text(TINY_GRID)
    return path


@pytest.mark.slow
def test_interrupted_grid_resumed_gives_the_same_report(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from hrgraph.train.report import build_report, render_csv

    one = load_grid(_tiny_grid(tmp_path / "one"))
    run_grid(one, tmp_path / "one" / "runs", device="cpu")

    two = load_grid(_tiny_grid(tmp_path / "two"))
    runs = tmp_path / "two" / "runs"
    # 120 images, 25% for val: 90 training images, 5 steps per epoch; stop in the 2nd epoch of the 1st run.
    with pytest.raises(TrainingInterrupted):
        run_grid(two, runs, device="cpu", reporter=InterruptAt(7))
    assert [p.status for p in dry_run(two, runs)] == ["partial", "todo", "todo", "todo"]
    run_grid(two, runs, device="cpu", shard=(2, 2))  # another job of the array meanwhile
    results = run_grid(two, runs, device="cpu")
    assert [r.action for r in results] == ["resumed", "skipped", "trained", "skipped"]

    a, b = build_report(tmp_path / "one" / "runs"), build_report(runs)
    assert render_csv(a) == render_csv(b)
    assert all(g.complete for g in b.groups)
    summary = json.loads((runs / "hi__synthetic-120__s0" / "summary.json").read_text())
    assert summary["tags"]["model"] == "hi" and summary["finished"] and not math.isnan(summary["test_acc1"])


@pytest.mark.parametrize("grid", sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_committed_grid_passes_its_dry_run(grid, tmp_path):
    result = CliRunner().invoke(main, ["experiment", str(grid), "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "to do; every spec, derivation and recipe is valid" in result.output
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


# -- safety: diverged and held runs, limits and recipe keys, grid names ---------------------------------------------


class DivergingTrain(FakeTrain):
    """Diverges on the first run it trains, trains the others."""

    def __call__(self, spec, recipe, *, out, overrides, resume, device, tags, command, **options):
        from hrgraph.errors import DivergedError

        if not self.calls:
            self.calls.append({"name": Path(out).name})
            Path(out).mkdir(parents=True)
            (Path(out) / "summary.json").write_text(json.dumps(
                {"finished": False, "diverged": True, "diverged_epoch": 1, "diverged_step": 2, "epochs_done": 0}))
            raise DivergedError("diverged: the training loss is not finite at epoch 1, step 2", epoch=1, step=2)
        return super().__call__(spec, recipe, out=out, overrides=overrides, resume=resume, device=device, tags=tags,
                                command=command, **options)


def test_a_diverged_run_does_not_stop_the_grid_and_is_not_retried(tmp_path: Path) -> None:
    grid = load_grid(write_grid(tmp_path))
    runs = tmp_path / "runs"
    results = run_grid(grid, runs, train_fn=DivergingTrain())
    assert [r.action for r in results] == ["diverged"] + ["trained"] * 8
    assert run_status(results[0].run.path, 2) == "diverged"
    again = FakeTrain()
    assert [r.action for r in run_grid(grid, runs, train_fn=again)] == ["diverged"] + ["skipped"] * 8
    assert again.calls == []


TINY_RUN_GRID = """\
name: tiny
data: ["synthetic:60"]
seeds: [0]
overrides: {epochs: 1, batch_size: 20, val_split: 0.25, augment: []}
limit_train: 30
limit_val: 10
models:
  - {name: plain, spec: ../specs-tiny/tiny.yaml, ablate: {drop: ["*:*"]}}
  - {name: hi, spec: ../specs-tiny/tiny.yaml}
"""


def test_grid_without_recipe_with_limits_and_a_run_held_by_another_process(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import yaml

    from hrgraph.train.runfolder import run_lock

    path = _tiny_grid(tmp_path)
    path.write_text(TINY_RUN_GRID)
    runs = tmp_path / "runs"
    grid = load_grid(path)
    # Without recipe, a grid takes train's data-aware default: the generic recipe for synthetic data.
    assert grid.recipe is None and grid.recipe_path("synthetic:60").name == "generic.yaml"
    assert grid.recipe_path("cifar10").name == "paper-cifar10.yaml"
    held = plan_runs(grid, runs)[0].path
    with run_lock(held):  # as another `hrgraph experiment` on the same runs folder would
        result = CliRunner().invoke(main, ["experiment", str(path), "--runs-dir", str(runs), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "plain__synthetic-60__s0: held by another process, skipped" in result.output
    assert "hi__synthetic-60__s0: test top-1" in result.output  # a result line as the run finishes
    assert "tiny: 1 runs trained, 0 already done, 1 held by another process" in result.output
    config = yaml.safe_load((runs / "hi__synthetic-60__s0" / "config.yaml").read_text())
    assert config["limits"] == {"train": 30, "val": 10}
    assert not (held / "config.yaml").exists()
    result = CliRunner().invoke(main, ["experiment", str(path), "--runs-dir", str(runs), "--device", "cpu"])
    assert result.exit_code == 0 and "tiny: 1 runs trained, 1 already done" in result.output, result.output


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "a/b", ".hidden"])
def test_grid_names_that_leave_the_runs_folder_are_refused(tmp_path: Path, name: str) -> None:
    path = write_grid(tmp_path, GRID.replace("name: demo", f"name: '{name}'"))
    with pytest.raises(GridError, match="names the grid's folder") as info:
        load_grid(path)
    assert info.value.line == 1


@pytest.mark.slow
def test_reuse_from_copies_identical_runs_of_another_grid_and_trains_the_rest(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from hrgraph.train.reuse import reusable, this_machine

    one = load_grid(_tiny_grid(tmp_path / "one"))
    first = tmp_path / "one" / "runs"
    run_grid(one, first, device="cpu", threads=1, shard=(1, 2))  # plain s0 and s1 only
    # Another grid: the same two models (other baselines) under another name, and a model of its own.
    text = TINY_GRID.replace("name: tiny", "name: other").replace("baseline: plain}", "baseline: wide}")
    text += "  - {name: wide, spec: ../specs-tiny/tiny.yaml, width: 2.0, family: T, version: adjusted}\n"
    path = _tiny_grid(tmp_path / "two")
    path.write_text(text)
    two = load_grid(path)
    runs = tmp_path / "two" / "runs"
    results = run_grid(two, runs, device="cpu", threads=1, shard=(1, 2), reuse_from=[first])
    actions = {r.run.name: r.action for r in results}
    # Shard 1/2 of (plain, hi, wide) x (s0, s1): plain s0 (trained in one), wide s0 and hi s1 (never trained there).
    assert actions == {"plain__synthetic-120__s0": "reused", "wide__synthetic-120__s0": "trained",
                       "hi__synthetic-120__s1": "trained"}
    copied = runs / "plain__synthetic-120__s0"
    record = json.loads((copied / "reused.json").read_text())
    assert record["from"] == str((first / "plain__synthetic-120__s0").resolve()) and record["tags"]["grid"] == "tiny"
    summary = json.loads((copied / "summary.json").read_text())
    source = json.loads((first / "plain__synthetic-120__s0" / "summary.json").read_text())
    assert summary["tags"]["grid"] == "other" and summary["test_acc1"] == source["test_acc1"]
    assert not any(p.name.startswith(".") and p.name != ".lock" for p in runs.iterdir())  # no staging folder left

    # What is compared: another thread count, seed or machine is not the same run.
    run = next(r for r in plan_runs(two, runs) if r.name == "plain__synthetic-120__s1")
    from hrgraph.train.experiment import run_recipe
    recipe = run_recipe(two, run)
    spec = derive_spec(two, run.model, run.data)
    args = dict(spec=spec, recipe=recipe.resolved, overrides=recipe.overrides, epochs=recipe.resolved.epochs,
                limits={}, here=this_machine())
    folder = first / "plain__synthetic-120__s1"
    assert reusable(folder, threads=1, **args) == (True, f"network, recipe, data and seed, image limits, threads 1, cpu "
                                                     f"{args['here']['cpu']}, torch {args['here']['torch']}, "
                                                     f"torchvision {args['here']['torchvision']}")
    assert reusable(folder, threads=2, **args) == (False, "threads differs (1 there, 2 here)")
    assert "no thread count pinned" in reusable(folder, threads=None, **args)[1]
    assert reusable(folder, threads=1, **{**args, "here": {**args["here"], "cpu": "another"}}) == (False, f"cpu differs ({args['here']['cpu']} there, another here)")
    assert reusable(folder, threads=1, **{**args, "overrides": {**recipe.overrides, "seed": 0}})[1].startswith("data and seed differs")
    hi = derive_spec(two, "hi", run.data)
    assert reusable(folder, threads=1, **{**args, "spec": hi}) == (False, "network differs")


@pytest.mark.parametrize("name", ["paper-table2", "fashion-mnist-ablation"])
def test_both_table2_grids_have_the_papers_rows(name: str) -> None:
    """ResNet (adj.) matched to HiResNet-18, the paper's Out and Out-all, and all six single edges."""
    grid = load_grid(Path(__file__).resolve().parents[1] / "experiments" / f"{name}.yaml")
    models = {m.name: m for m in grid.models}
    assert models["resnet18-adjusted"].match == "hiresnet18"
    assert models["resnet18-adjusted"].baseline == "resnet18"
    assert {models[v].ablate.variant for v in ("hiresnet18-in", "hiresnet18-out", "hiresnet18-out-all")} == {
        "in", "out", "out-all"}
    assert len([m for m in models if m.startswith("hiresnet18-only-")]) == 6
