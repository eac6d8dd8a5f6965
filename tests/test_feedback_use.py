"""Using feedback specs: the ventral-feedback example trains and resumes, analyze measures each step."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import hrgraph
from hrgraph.analysis import analyze, contributions
from hrgraph.analysis.contributions import COLUMNS, columns_for, over_steps
from hrgraph.cli.main import main
from hrgraph.train.checkpoint import read_checkpoint
from hrgraph.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "specs" / "examples" / "ventral-feedback.yaml"
RECIPE = {"data": "synthetic:64", "epochs": 2, "batch_size": 16, "val_split": 0.25, "seed": 5,
          "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "step", "every": 1, "factor": 0.5}}
LIMITS = {"limit_train": 32, "limit_val": 16, "device": "cpu"}


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as the Fashion-MNIST site publishes it: magic 0 0 8 ndim, big-endian dims, bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "checkpoints" / "last.pt")["model"]


def test_the_example_is_feedforward_plus_recurrence_plus_upsampled_feedback():
    model = hrgraph.compile_model(EXAMPLE)
    spec = model.spec
    assert spec.time.steps == 4 and spec.time.scheme == "biological"
    feedback = {p.edge.key: p for p in model.plan.projections.values()}
    assert set(feedback) == {("V2", "V1"), ("V4", "V2"), ("IT", "V4")}
    assert all(p.edge.delay == 1 and p.edge.upsample == "nearest" for p in feedback.values())
    for area in ("V1", "V2", "V4", "IT"):  # each area reads its own previous output
        assert (area, 1) in zip(spec.node_inputs(spec.node_index[area]), spec.node(area).input_delays)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    # Every area runs at every step; the feedback edges from step 1 on.
    assert model.plan.time.node_runs["V1"] == 4 and model.plan.time.edge_runs[("IT", "V4")] == 3


@pytest.mark.slow  # trains the 4-step example (several seconds on a shared CPU)
def test_cli_trains_the_example_on_a_tiny_fashion_mnist(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "fm"
    data.mkdir()
    _write_idx(data / "train-images-idx3-ubyte", rng.integers(0, 256, (40, 28, 28)))
    _write_idx(data / "train-labels-idx1-ubyte", np.arange(40) % 10)
    _write_idx(data / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28)))
    _write_idx(data / "t10k-labels-idx1-ubyte", np.arange(10) % 10)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", str(EXAMPLE), "--recipe", str(ROOT / "recipes" / "cpu-fashion-mnist.yaml"), "--data", "fashion-mnist",
        "--data-dir", str(data), "--epochs", "1", "--limit-train", "20", "--limit-val", "8", "--threads", "1",
        "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["epochs_done"] == 1
    assert summary["params"] == sum(p.numel() for p in hrgraph.compile_model(EXAMPLE).parameters())


@pytest.mark.slow  # trains the 4-step example (several seconds on a shared CPU)
def test_training_the_example_resumes_bit_identically(tmp_path):
    train(EXAMPLE, RECIPE, out=tmp_path / "a", **LIMITS)
    train(EXAMPLE, RECIPE, out=tmp_path / "b", overrides={"epochs": 1}, **LIMITS)
    train(EXAMPLE, RECIPE, out=tmp_path / "b", resume=True, **LIMITS)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "metrics.csv").read_text().split("\n")[1].split(",")[:6] == \
        (tmp_path / "b" / "metrics.csv").read_text().split("\n")[1].split(",")[:6]


# -- contributions per step ---------------------------------------------------------------------------------------

def _mean_abs(t: torch.Tensor) -> float:
    return float(t.abs().double().mean())


def test_contributions_per_step_equal_the_unrolled_computation_by_hand():
    torch.manual_seed(0)
    model = hrgraph.compile_model(EXAMPLE).eval()
    x = torch.randn(3, 1, 32, 32)
    rows = contributions(model, [(x, torch.zeros(3))])
    at = {(r["node"], r["path"], r["step"]): r for r in rows}
    # Rows: each receiving node at each of its steps, each edge from the step its source has a value.
    assert [(r["path"], r["step"]) for r in rows if r["node"] == "V1"] == [
        ("block", 0), ("block", 1), ("V2->V1", 1), ("block", 2), ("V2->V1", 2), ("block", 3), ("V2->V1", 3)]
    n, p = model.nodes, model.projections
    with torch.no_grad():
        # Step 0 has no feedback and no recurrence: plain feed-forward.
        v1_0 = n.V1(n.retina(x))
        v2_0 = n.V2(v1_0)
        v4_0 = n.V4(v2_0)
        it_0 = n.IT(v4_0)
        # Step 1: each area adds its own step-0 output before its block, and the area above's after it.
        v1_1 = n.V1(n.retina(x) + v1_0)
        fb_21 = p.V2__V1(v2_0)
        v1_1_out = v1_1 + fb_21
        v2_1 = n.V2(v1_1_out + model.inputs.V2__V2(v2_0))
        fb_42 = p.V4__V2(v4_0)
        fb_it4 = p.IT__V4(it_0)
    assert at[("V1", "block", 0)]["mean_abs"] == pytest.approx(_mean_abs(v1_0), rel=1e-6)
    assert at[("V4", "block", 0)]["mean_abs"] == pytest.approx(_mean_abs(v4_0), rel=1e-6)
    assert at[("V1", "block", 1)]["mean_abs"] == pytest.approx(_mean_abs(v1_1), rel=1e-6)
    assert at[("V1", "V2->V1", 1)]["mean_abs"] == pytest.approx(_mean_abs(fb_21), rel=1e-6)
    assert at[("V1", "V2->V1", 1)]["ratio"] == pytest.approx(_mean_abs(fb_21) / _mean_abs(v1_1), rel=1e-6)
    assert at[("V2", "block", 1)]["mean_abs"] == pytest.approx(_mean_abs(v2_1), rel=1e-6)
    assert at[("V2", "V4->V2", 1)]["mean_abs"] == pytest.approx(_mean_abs(fb_42), rel=1e-6)
    assert at[("V4", "IT->V4", 1)]["mean_abs"] == pytest.approx(_mean_abs(fb_it4), rel=1e-6)
    assert at[("V1", "block", 0)]["elements"] == 3 * 16 * 32 * 32
    # A second batch adds to the same (node, path, step) sums: the call counts restart at every forward.
    twice = contributions(model, [(x, torch.zeros(3)), (x, torch.zeros(3))])
    assert [(r["node"], r["path"], r["step"]) for r in twice] == [(r["node"], r["path"], r["step"]) for r in rows]
    for r, s in zip(rows, twice):
        assert s["mean_abs"] == pytest.approx(r["mean_abs"], rel=1e-9) and s["elements"] == 2 * r["elements"]


def test_an_identity_feedback_edge_reads_its_source_at_the_delayed_step():
    spec = hrgraph.load_spec("""
input: {channels: 2, height: 8, width: 8}
time: {steps: 3}
nodes:
  - {id: a, kind: conv, channels: 4}
  - {id: b, kind: conv, channels: 4}
  - {id: head, kind: classifier, classes: 2}
edges:
  - {from: b, to: a, delay: 1}
""")
    model = hrgraph.compile_model(spec).eval()
    assert [p.identity for p in model.plan.projections.values()] == [True]
    x = torch.randn(2, 2, 8, 8)
    rows = contributions(model, [(x, torch.zeros(2))])
    at = {(r["node"], r["path"], r["step"]): r for r in rows}
    with torch.no_grad():
        a0 = model.nodes.a(x)
        b0 = model.nodes.b(a0)
        a1 = model.nodes.a(x)
        b1 = model.nodes.b(a1 + b0)
    assert at[("a", "b->a", 1)]["mean_abs"] == pytest.approx(_mean_abs(b0), rel=1e-6)
    assert at[("a", "b->a", 2)]["mean_abs"] == pytest.approx(_mean_abs(b1), rel=1e-6)
    assert ("a", "b->a", 0) not in at


def test_over_steps_is_the_element_weighted_mean():
    model = hrgraph.compile_model(EXAMPLE).eval()
    rows = contributions(model, [(torch.randn(2, 1, 32, 32), torch.zeros(2))])
    merged = {(r["node"], r["path"]): r for r in over_steps(rows)}
    edge = [r for r in rows if r["path"] == "V2->V1"]
    expected = sum(r["mean_abs"] * r["elements"] for r in edge) / sum(r["elements"] for r in edge)
    assert merged[("V1", "V2->V1")]["mean_abs"] == pytest.approx(expected)
    assert "step" not in merged[("V1", "V2->V1")]


@pytest.mark.slow  # trains the 4-step example (several seconds on a shared CPU)
def test_analyze_writes_a_step_column_for_time_specs_only(tmp_path):
    run = tmp_path / "run"
    train(EXAMPLE, {**RECIPE, "epochs": 1}, out=run, **LIMITS)
    result = analyze(run, limit=16, out=tmp_path / "report", device="cpu", bn_batches=1)
    with (tmp_path / "report" / "contributions.csv").open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == COLUMNS[:2] + ["step"] + COLUMNS[2:]
    assert {(r["node"], r["step"]) for r in table if r["path"] == "IT->V4"} == {("V4", "1"), ("V4", "2"), ("V4", "3")}
    assert all(r["mean_abs_init"] not in ("", "nan") for r in table)
    md = (tmp_path / "report" / "analysis.md").read_text()
    assert "| edge | step 0 | step 1 | step 2 | step 3 |" in md and "| IT->V4 | - |" in md
    assert len(result["contributions"]) == len(table)
    # A DAG spec's rows have no step, and its CSV keeps the columns it always had.
    dag = hrgraph.compile_model(ROOT / "specs" / "hiresnet18.yaml")
    assert columns_for(contributions(dag, [(torch.randn(1, 3, 32, 32), torch.zeros(1))])) == COLUMNS
