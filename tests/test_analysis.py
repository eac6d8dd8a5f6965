"""hrgraph analyze: contributions against a slow reference, edge cut against structural ablation, memory, bad input."""

from __future__ import annotations

import json
import shutil
import weakref
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import hrgraph
from hrgraph.analysis import analyze, contributions, edge_cut, open_run
from hrgraph.analysis.run import load_run_data, split_batches
from hrgraph.cli.main import main
from hrgraph.errors import TrainingError
from hrgraph.train.loop import train

# stem -> stage2 gets a projection (avg pool + 1x1 conv + BN); stem -> stage1 is an identity (same shape).
SPEC = {
    "name": "tiny",
    "input": {"channels": 3, "height": 16, "width": 16},
    "nodes": [
        {"id": "stem", "kind": "conv", "channels": 8},
        {"id": "stage1", "kind": "basic", "channels": 8, "depth": 1},
        {"id": "stage2", "kind": "basic", "channels": 16, "depth": 1, "stride": 2},
        {"id": "head", "kind": "classifier", "classes": 4},
    ],
    "edges": [{"from": "stem", "to": "stage1"}, {"from": "stem", "to": "stage2"}],
}
RECIPE = {"data": "synthetic:400", "epochs": 1, "batch_size": 16, "val_split": 0.2, "seed": 1,
          "optimizer": {"name": "adam", "lr": 0.01}}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis") / "run"
    train(SPEC, RECIPE, out=out, limit_train=64, limit_val=16, device="cpu")
    # The format `hrgraph train --log-grad-norms` writes (epoch 0: at initialisation), written here so that
    # these tests do not depend on the training loop's logging.
    (out / "grad_norms.csv").write_text("epoch,module,kind,norm\n" + "".join(
        f"{e},{m},{k},{v}\n" for e in (0, 1)
        for m, k, v in (("nodes.stem", "node", 0.5), ("nodes.stage1", "node", 0.2), ("nodes.stage2", "node", 0.3),
                        ("nodes.head", "node", 0.6), ("projections.stem__stage2", "projection", 0.1))))
    return out


def _batches(run_dir: Path, limit: int, batch_size: int = 16):
    loaded = open_run(run_dir)
    return loaded, list(split_batches(load_run_data(loaded), "test", batch_size=batch_size, limit=limit))


def test_contributions_equal_a_slow_reference(run):
    loaded, batches = _batches(run, limit=40)  # 16 + 16 + 8: the last batch partial
    model = loaded.model
    rows = contributions(model, batches)
    assert [(r["node"], r["path"]) for r in rows] == [
        ("stage1", "block"), ("stage1", "stem->stage1"), ("stage2", "block"), ("stage2", "stem->stage2")]

    # Reference: keep every activation, then average.  The identity edge's output is stem's output itself.
    kept: dict[str, list[torch.Tensor]] = {"stage1": [], "stage2": [], "stem->stage2": [], "stem->stage1": []}
    modules = {"stage1": model.nodes["stage1"], "stage2": model.nodes["stage2"],
               "stem->stage2": model.projections["stem__stage2"], "stem->stage1": model.nodes["stem"]}
    handles = [m.register_forward_hook(lambda mod, a, out, k=k: kept[k].append(out.detach().clone()))
               for k, m in modules.items()]
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    for h in handles:
        h.remove()
    reference = {k: torch.cat(v).double().abs().mean().item() for k, v in kept.items()}
    by_key = {(r["path"] if r["kind"] == "projection" else r["node"]): r for r in rows}
    for key, value in reference.items():
        assert by_key[key]["mean_abs"] == pytest.approx(value, abs=1e-5, rel=1e-5), key
    assert by_key["stem->stage2"]["ratio"] == pytest.approx(reference["stem->stage2"] / reference["stage2"], rel=1e-5)
    assert by_key["stage2"]["elements"] == 40 * 16 * 8 * 8


def test_edge_cut_all_off_equals_the_structurally_ablated_model(run):
    loaded, batches = _batches(run, limit=48)
    model = loaded.model
    rows = edge_cut(model, batches)
    assert [r["cut"] for r in rows] == ["none", "stem->stage1", "stem->stage2", "all"]
    assert model.disabled_edges == []  # restored

    ablated = hrgraph.compile_model(hrgraph.ablate(loaded.spec, drop="*:*"))
    weights = {k: v for k, v in loaded.payload["model"].items() if not k.startswith("projections.")}
    missing, unexpected = ablated.load_state_dict(weights, strict=False)
    assert not missing and not unexpected
    ablated.eval()
    with torch.no_grad():
        correct = sum(int((ablated(x).argmax(1) == y).sum()) for x, y in batches)
        intact = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    assert rows[-1]["correct"] == correct and rows[-1]["accuracy"] == correct / 48
    assert rows[0]["correct"] == intact
    assert rows[-1]["change"] == pytest.approx(rows[-1]["accuracy"] - rows[0]["accuracy"])


def test_edge_cut_refuses_unknown_edges(run):
    loaded, batches = _batches(run, limit=16)
    with pytest.raises(hrgraph.GraphError, match="did you mean 'stem:stage2'"):
        edge_cut(loaded.model, batches, edges=["stem:head"])


def _live_tracker(model):
    """Hooks that count the bytes of module outputs still alive (weakrefs); returns (state, handles)."""
    state = {"live": 0, "peak": 0}

    def hook(module, args, out):
        n = out.numel() * out.element_size()
        state["live"] += n
        state["peak"] = max(state["peak"], state["live"])
        weakref.finalize(out, lambda: state.__setitem__("live", state["live"] - n))

    modules = [*model.nodes.values(), *model.projections.values()]
    return state, [m.register_forward_hook(hook) for m in modules]


def test_contributions_keep_no_activation_beyond_its_batch(run):
    loaded, batches = _batches(run, limit=100, batch_size=50)
    assert len(batches) == 2
    model = loaded.model
    with torch.no_grad():  # bytes of every module output of one 50-image batch
        per_batch = 0
        sizes = []
        handles = [m.register_forward_hook(lambda mod, a, out: sizes.append(out.numel() * out.element_size()))
                   for m in [*model.nodes.values(), *model.projections.values()]]
        model(batches[0][0])
        for h in handles:
            h.remove()
        per_batch = sum(sizes)

    state, handles = _live_tracker(model)
    contributions(model, iter(batches))
    assert 0 < state["peak"] <= per_batch
    assert state["live"] == 0

    # The measure sees a leak: an analysis that kept the outputs would exceed one batch.
    state["peak"] = 0
    leak = [m.register_forward_hook(lambda mod, a, out, keep=[]: keep.append(out))
            for m in [*model.nodes.values(), *model.projections.values()]]
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    for h in handles + leak:
        h.remove()
    assert state["peak"] > per_batch


def test_analyze_writes_every_file(run, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["analyze", str(run), "--limit", "40", "--device", "cpu", "-o", str(out),
                                       "--edges", "stem:stage2"])
    assert result.exit_code == 0, result.output
    for name in ("contributions.csv", "contributions.json", "contributions.png", "contributions.svg", "edgecut.csv",
                 "edgecut.png", "gradients.png", "analysis.json", "analysis.md"):
        assert (out / name).is_file(), name
    assert (out / "contributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "analysis.md").read_text()
    for figure in ("contributions.png", "edgecut.png", "gradients.png"):
        assert f"]({figure})" in md
    assert "not structural ablation" in md
    data = json.loads((out / "analysis.json").read_text())
    assert data["images"] == 40 and [r["cut"] for r in data["edge_cut"]] == ["none", "stem->stage2", "all"]
    assert (out / "edgecut.csv").read_text().splitlines()[0] == "cut,disabled,n,correct,accuracy,change,loss"


def test_analyze_a_checkpoint_outside_its_run(run, tmp_path):
    ckpt = tmp_path / "model.pt"
    shutil.copy(run / "checkpoints" / "best.pt", ckpt)
    result = analyze(ckpt, limit=16, split="val")
    assert result["out"] == str(tmp_path / "model-analysis") and result["gradients"] is None
    md = (tmp_path / "model-analysis" / "analysis.md").read_text()
    assert "--log-grad-norms" in md


def _write_image_folder(root: Path, classes: int) -> None:
    from PIL import Image

    for c in range(classes):
        folder = root / "train" / f"c{c}"
        folder.mkdir(parents=True)
        Image.new("RGB", (16, 16), (40 * c, 0, 0)).save(folder / "a.png")


def _fails(*args: str) -> str:
    result = CliRunner().invoke(main, ["analyze", *args, "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_bad_input_is_one_line_and_exit_1(run, tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    assert "not an hrgraph run checkpoint" in _fails(str(foreign))
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    assert "not a readable checkpoint" in _fails(str(text))

    folder = tmp_path / "two-classes"
    _write_image_folder(folder, 2)
    assert "has 2 classes but the spec's classifier has 4 outputs" in _fails(str(run), "--data", f"imagefolder:{folder}")

    assert "did you mean 'stage2'" in _fails(str(run), "--edges", "stem:stag2")
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert "no checkpoint in this folder" in _fails(str(empty))
    assert "no such run folder or checkpoint file" in _fails(str(tmp_path / "missing"))


# -- the network at initialisation, the block path's definition, concat edges, diverged runs -----------------

# stem -> stage1 summed (identity), stem -> stage2 concatenated (projected): one edge of each merge.
CONCAT_SPEC = {**SPEC, "name": "tiny-concat",
               "edges": [{"from": "stem", "to": "stage1"}, {"from": "stem", "to": "stage2", "merge": "concat"}]}


@pytest.fixture(scope="module")
def concat_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis-concat") / "run"
    train(CONCAT_SPEC, RECIPE, out=out, limit_train=64, limit_val=16, device="cpu")
    return out


@pytest.mark.parametrize("which, options", [
    ("run", []), ("run", ["--block-output", "pre-relu"]), ("run", ["--bn-batches", "0"]), ("concat_run", []),
])
def test_every_contributions_csv_has_the_init_columns(which, options, request, tmp_path):
    from hrgraph.analysis.contributions import COLUMNS

    run_dir = request.getfixturevalue(which)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["analyze", str(run_dir), "--limit", "32", "--device", "cpu", "-o", str(out),
                                       *options])
    assert result.exit_code == 0, result.output
    lines = (out / "contributions.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header == COLUMNS and header[-3:] == ["mean_abs_init", "ratio_init", "ratio_change"]
    rows = json.loads((out / "contributions.json").read_text())
    assert len(rows) == len(lines) - 1 == 4
    for r in rows:
        assert r["mean_abs_init"] > 0 and r["ratio_change"] == pytest.approx(r["ratio"] - r["ratio_init"])
    md = (out / "analysis.md").read_text()
    assert "ratio at init" in md and "says nothing was learned" in md
    data = json.loads((out / "analysis.json").read_text())
    assert data["init"] == {"seed": RECIPE["seed"], "bn_batches": 0 if "0" in options else 20}  # 320 training images
    assert data["block_output"] == ("pre-relu" if "pre-relu" in options else "post-relu")


def test_the_init_baseline_is_the_network_the_run_started_from(tmp_path):
    from hrgraph.analysis.baseline import initial_model

    # A learning rate of 1e-12 leaves the weights where training found them: at initialisation.
    still = {**RECIPE, "optimizer": {"name": "sgd", "lr": 1e-12, "momentum": 0}}
    train(SPEC, still, out=tmp_path / "still", limit_train=32, limit_val=16, device="cpu")
    trained = open_run(tmp_path / "still").payload["model"]

    def largest_difference(seed: int) -> float:
        state = initial_model(hrgraph.load_spec(SPEC), seed).state_dict()
        return max(float((trained[k] - v).abs().max()) for k, v in state.items()
                   if v.is_floating_point() and "running" not in k)

    before = torch.random.get_rng_state()
    assert largest_difference(RECIPE["seed"]) < 1e-9
    assert largest_difference(RECIPE["seed"] + 1) > 0.1  # the measure tells seeds apart
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random state is untouched


def test_reestimated_bn_statistics_are_the_average_over_the_batches():
    from hrgraph.analysis.baseline import reestimate_bn

    model = hrgraph.compile_model(SPEC)
    batches = [(torch.randn(8, 3, 16, 16) * s + s, None) for s in (1.0, 2.0, 3.0)]
    conv_out = []
    handle = model.nodes["stem"].conv.register_forward_hook(lambda m, a, out: conv_out.append(out.detach()))
    assert reestimate_bn(model, batches) == 3
    handle.remove()
    bn = model.nodes["stem"].bn
    means = torch.stack([o.mean((0, 2, 3)) for o in conv_out])
    variances = torch.stack([o.var((0, 2, 3), unbiased=True) for o in conv_out])
    # A cumulative average: every batch counts alike, the first as much as the last.
    assert torch.allclose(bn.running_mean, means.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, variances.mean(0), rtol=1e-4)
    assert bn.momentum == 0.1 and not model.training


def test_pre_relu_block_output_is_the_sum_before_the_final_relu(run):
    loaded, batches = _batches(run, limit=32)
    model = loaded.model
    post = {r["path"] if r["kind"] == "projection" else r["node"]: r for r in contributions(model, batches)}
    pre = {r["path"] if r["kind"] == "projection" else r["node"]: r
           for r in contributions(model, batches, block_output="pre-relu")}

    # Reference, written out from the unit's layers: bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x).
    kept: dict[str, list[torch.Tensor]] = {"stage1": [], "stage2": []}
    units = {n: model.nodes[n][0] for n in kept}
    handles = [u.register_forward_pre_hook(lambda m, a, n=n: kept[n].append(a[0].clone())) for n, u in units.items()]
    with torch.no_grad():
        for x, _ in batches:
            model(x)
        for h in handles:
            h.remove()
        for node, unit in units.items():
            x = torch.cat(kept[node])
            z = unit.bn2(unit.conv2(torch.relu(unit.bn1(unit.conv1(x)))))
            z = z + (x if unit.downsample is None else unit.downsample(x))
            assert pre[node]["mean_abs"] == pytest.approx(z.double().abs().mean().item(), rel=1e-5)
            assert post[node]["mean_abs"] == pytest.approx(torch.relu(z).double().abs().mean().item(), rel=1e-5)
            # |z| >= relu(z), strictly where z < 0: the two definitions differ on a trained model.
            assert pre[node]["mean_abs"] > post[node]["mean_abs"] > 0
    for edge in ("stem->stage1", "stem->stage2"):
        assert pre[edge]["mean_abs"] == post[edge]["mean_abs"]  # the projections are the same either way
        assert pre[edge]["ratio"] < post[edge]["ratio"]
    assert model.nodes["stage1"][0].relu._forward_pre_hooks == {}  # no hook left behind


def test_concat_edges_are_not_compared_with_the_papers_ratio(concat_run, tmp_path):
    result = analyze(concat_run, limit=16, out=tmp_path / "report", device="cpu")
    by_path = {r["path"]: r for r in result["contributions"]}
    assert by_path["stem->stage2"]["merge"] == "concat"
    md = (tmp_path / "report" / "analysis.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| stage2 | stem->stage2 |"))
    assert row.endswith("| not comparable: concat |")
    assert "over 1 edges" in md  # the summary against 0.5 counts the sum edge only
    assert "Not comparable with the paper's 0.5 (concat edges" in md and md.count("stem->stage2") >= 2
    printed = CliRunner().invoke(main, ["analyze", str(concat_run), "--limit", "16", "--device", "cpu",
                                        "-o", str(tmp_path / "cli")]).output
    assert "not comparable with the paper's 0.5: concat" in printed


def test_a_long_title_stays_inside_the_figure(run):
    from hrgraph.analysis.contributions import draw_contributions
    from hrgraph.analysis.figures import figure_bytes

    loaded, batches = _batches(run, limit=16)
    rows = contributions(loaded.model, batches)
    title = "hiresnet18-only-stem-stage2-with-a-long-experiment-name-seed-2: mean |activation| per connection " * 2
    fig = draw_contributions(rows, title)
    figure_bytes(fig)  # lays the figure out
    box = fig._suptitle.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    assert fig._suptitle.get_text().count("\n") >= 2


def test_a_diverged_run_is_refused(run, tmp_path):
    said = tmp_path / "said-so"
    shutil.copytree(run, said)
    summary = json.loads((said / "summary.json").read_text())
    (said / "summary.json").write_text(json.dumps({**summary, "diverged": True}))
    message = _fails(str(said))
    assert "diverged" in message and str(said) in message

    from hrgraph.train.checkpoint import read_checkpoint, write_checkpoint

    nan = tmp_path / "nan-weights"
    shutil.copytree(run, nan)
    for name in ("best.pt", "last.pt"):
        payload = read_checkpoint(nan / "checkpoints" / name)
        payload["model"]["nodes.stage2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
        payload.pop("format", None)
        write_checkpoint(nan / "checkpoints" / name, payload)
    message = _fails(str(nan))
    assert "non-finite" in message and "nodes.stage2.0.conv1.weight" in message and str(nan) in message
    with pytest.raises(TrainingError, match="non-finite"):
        analyze(nan / "checkpoints" / "best.pt", limit=16)


def test_analyze_feeds_images_as_training_did_without_normalisation(tmp_path):
    # A run trained with normalize: false saw x / 255; analyze must too, or every number it gives is of
    # inputs the model never saw.  With the same preparation, the intact model's accuracy on the test split
    # is the summary's test accuracy (the same best checkpoint on the same images).
    import json

    from hrgraph.analysis.report import analyze

    out = tmp_path / "raw"
    train(SPEC, {**RECIPE, "normalize": False}, out=out, limit_train=64, limit_val=16, device="cpu")
    summary = json.loads((out / "summary.json").read_text())
    result = analyze(out, limit=16, out=tmp_path / "analysis", bn_batches=0)
    intact = next(r for r in result["edge_cut"] if r["cut"] == "none")
    assert intact["accuracy"] == pytest.approx(summary["test_acc1"])
