"""Cost per node and per edge (hrgraph.build.cost, ``hrgraph summary``): exact sums, torch's flop counter, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import hrgraph
from hrgraph.cli.main import main
from hrgraph.build.cost import BYTES_PER_ELEMENT, count_cost
from hrgraph.generate import random_dag_spec

from .conftest import ROOT, SPECS, spec_id
from .test_topology import NET

# Every kind and every projection the compiler can insert, in one small net:
# a strided bottleneck (its first 1x1 runs at the input's resolution), grouped
# convolutions, a pool block, a stem max-pool, max and adaptive pooling on
# edges, an identity edge, and concat edges with and without a convolution.
KINDS = {
    "name": "every-kind",
    "input": {"channels": 3, "height": 40, "width": 40},
    "nodes": [
        {"id": "stem", "kind": "conv", "channels": 16, "kernel": 5, "stride": 1, "maxpool": True},
        {"id": "a", "kind": "plain", "channels": 16, "depth": 1},
        {"id": "b", "kind": "bottleneck", "channels": 8, "depth": 2, "stride": 2},
        {"id": "p", "kind": "pool", "op": "max", "kernel": 3, "stride": 1, "padding": 1},
        {"id": "c", "kind": "resnext", "channels": 32, "cardinality": 4, "depth": 1, "stride": 3},
        {"id": "head", "kind": "classifier", "classes": 7},
    ],
    "edges": [
        {"from": "stem", "to": "a"},
        {"from": "stem", "to": "b", "pool": "max"},
        {"from": "a", "to": "c", "pool": "adaptive"},
        {"from": "b", "to": "c", "pool": "adaptive", "projection": "conv"},
        {"from": "stem", "to": "p", "merge": "concat"},
        {"from": "a", "to": "p", "merge": "concat", "projection": "conv", "channels": 8},
    ],
}
# List inputs with every aggregate, sepconv and identity nodes, gated edges.
MERGES = NET
EXTRA = {
    "every-kind": KINDS,
    "merges": MERGES,
    "random-concat": random_dag_spec(12, seed=2, merge_concat=0.5, kinds=("basic", "plain", "resnext")),
}
CASES = [pytest.param(path, id=spec_id(path)) for path in SPECS] + [pytest.param(s, id=k) for k, s in EXTRA.items()]


def _plan(source):
    return hrgraph.infer_shapes(hrgraph.load_spec(source))


# -- exact sums, no torch ----------------------------------------------------------


@pytest.mark.parametrize("source", CASES)
def test_rows_sum_to_the_plan_totals(source):
    plan = _plan(source)
    table = count_cost(plan)
    assert sum(r.cost.params for r in table.rows) == table.total.params == plan.params
    assert sum(r.cost.macs for r in table.rows) == table.total.macs == plan.macs
    assert [r.name for r in table.nodes] == list(plan.order)
    assert [r.name for r in table.projections] == [p.name for p in plan.projections.values()]
    assert len(table.merges) == sum(len(m.inputs) + 1 for m in plan.merges.values())
    for what in ("params", "macs", "activations"):
        assert sum(table.share(r, what) for r in table.rows) == pytest.approx(1.0)


def test_hiresnet18_edge_rows_by_hand():
    table = count_cost(_plan("specs/hiresnet18.yaml"))
    row = {r.name: r for r in table.rows}
    edge = row["stem->stage4"].cost  # avgpool 8x8 of 64x32x32, then 1x1 64->512 + BN at 4x4
    assert (edge.params, edge.macs) == (64 * 512 + 2 * 512, 64 * 512 * 4 * 4)
    assert (edge.pool, edge.bn, edge.add) == (64 * 32 * 32, 512 * 4 * 4, 512 * 4 * 4)
    assert (edge.activations, edge.activation_bytes) == (512 * 4 * 4, 512 * 4 * 4 * BYTES_PER_ELEMENT)
    stage1 = row["stage1"].cost  # two BasicBlocks at 64x32x32: 4 BNs, 2 shortcut adds, no pooling
    assert (stage1.pool, stage1.bn, stage1.add) == (0, 4 * 64 * 32 * 32, 2 * 64 * 32 * 32)
    head = row["head"].cost  # global average pooling reads 512x4x4 once; fc 512->10
    assert (head.macs, head.pool, head.activations) == (512 * 10, 512 * 4 * 4, 10)


def test_every_kind_op_counts_by_hand():
    plan = _plan(KINDS)
    row = {r.name: r.cost for r in count_cost(plan).rows}
    assert [plan.nodes[n].out_shape for n in ("a", "b", "c")] == [(16, 20, 20), (32, 10, 10), (32, 4, 4)]
    # torch's adaptive windows along 20 -> 4 are [0,5) [5,10) [10,15) [15,20): every element read once;
    # along 10 -> 4 they are [0,3) [2,5) [5,8) [7,10) and overlap: 12 reads per row.
    assert row["a->c"].pool == 16 * 20 * 20
    assert row["b->c"].pool == 32 * 12 * 12 and row["b->c"].bn == 32 * 4 * 4
    assert row["stem->p"].activations == 16 * 10 * 10 and row["stem->p"].add == 0  # concat: no add
    assert row["a->p"].bn == 8 * 10 * 10 and row["a->p"].add == 0
    assert row["p"].pool == 32 * 10 * 10 * 9  # 3x3 window per output element
    assert row["stem"].pool == 16 * 20 * 20 * 9 and row["stem"].bn == 16 * 40 * 40
    assert row["a"].add == 0  # plain: no shortcut
    # a strided bottleneck: conv1 at 20x20, the rest at 10x10; two units, one downsample
    assert row["b"].bn == 8 * 20 * 20 + 8 * 10 * 10 + 32 * 10 * 10 + 32 * 10 * 10 + (8 + 8 + 32) * 10 * 10


@pytest.mark.parametrize(("size", "out"), [(5, 3), (7, 2), (10, 4), (20, 4), (9, 9), (10, 1)])
def test_adaptive_reads_are_torch_windows(size, out):
    torch = pytest.importorskip("torch")
    from hrgraph.build.cost import _adaptive_reads

    reads = 0
    for i in range(out):  # the inputs that output i depends on: where its gradient is nonzero
        x = torch.ones(1, 1, size, 1, requires_grad=True)
        torch.nn.functional.adaptive_avg_pool2d(x, (out, 1))[0, 0, i, 0].backward()
        reads += int((x.grad != 0).sum())
    assert _adaptive_reads(size, out) == reads


# -- against torch: the built model and its flop counter -------------------------------


def _built(source):
    """The compiled model and the FLOPs torch's flop counter records per module on one zero sample."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = hrgraph.compile_model(hrgraph.load_spec(source)).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, *model.plan.input_shape))
    return model, {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}


@pytest.mark.parametrize("source", CASES)
def test_agrees_with_the_built_model_and_torch_flop_counter(source):
    """Parameters of every module; FLOPs/2 (convolutions and linear layers) = MACs within 1%, in total and per row."""
    pytest.importorskip("torch")
    model, flops = _built(source)
    table = count_cost(model.plan)
    row = {r.name: r.cost for r in table.rows}
    assert table.total.params == sum(q.numel() for q in model.parameters())
    assert table.total.macs == pytest.approx(flops["Global"] / 2, rel=0.01)
    for node_id in model.plan.order:
        module = model.nodes[node_id]
        assert row[node_id].params == sum(q.numel() for q in module.parameters()), node_id
        assert row[node_id].macs == pytest.approx(flops.get(f"HrNet.nodes.{node_id}", 0) / 2, rel=0.01), node_id
    def params(table, name):
        return sum(q.numel() for q in table[name].parameters()) if name in table else 0

    for p in model.plan.projections.values():
        assert row[p.name].params == params(model.projections, p.module_name) + params(model.gates, p.module_name), p.name
        measured = flops.get(f"HrNet.projections.{p.module_name}", 0) / 2
        assert row[p.name].macs == pytest.approx(measured, rel=0.01), p.name
    for merge in model.plan.merges.values():
        assert row[f"{merge.node} ({merge.aggregate})"].params == params(model.aggregates, merge.node)
        for p in merge.inputs:
            name = f"{p.source}->{merge.node} (input)"
            assert row[name].params == params(model.inputs, p.module_name), name
            assert row[name].macs == pytest.approx(flops.get(f"HrNet.inputs.{p.module_name}", 0) / 2, rel=0.01), name


# -- the command ---------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_summary_json_schema():
    result = run("summary", "specs/hiresnet18.yaml", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    plan = _plan("specs/hiresnet18.yaml")
    assert set(data) == {"name", "fingerprint", "input", "output", "total", "nodes", "projections"}
    counts = {"params", "macs", "activations", "activation_bytes", "pool", "bn", "add"}
    assert set(data["total"]) == counts
    assert (data["total"]["params"], data["total"]["macs"]) == (plan.params, plan.macs)
    assert data["input"] == [3, 32, 32] and data["output"] == [10, 1, 1]
    assert [n["name"] for n in data["nodes"]] == list(plan.order)
    assert [p["name"] for p in data["projections"]] == [p.name for p in plan.projections.values()]
    shares = {"params_share", "macs_share", "activations_share"}
    for row in data["nodes"] + data["projections"]:
        assert set(row) == {"name", "kind", "label", "out_shape"} | counts | shares
        assert all(isinstance(row[k], int) for k in counts) and all(0 <= row[k] <= 1 for k in shares)
        assert row["activation_bytes"] == 4 * row["activations"]
    for k in counts:
        assert sum(r[k] for r in data["nodes"] + data["projections"]) == data["total"][k]


def test_summary_table_and_sort():
    result = run("summary", "specs/hiresnet18.yaml")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("stem->stage4", "avg 8x8 + 1x1 64->512 + BN", "11,350,346", "561,714,176", "not MACs", "pooling"):
        assert text in out
    # Default order: each node followed by the edges into it.
    assert out.index("stage3 ") < out.index("stem->stage3") < out.index("stage4 ")
    by_macs = run("summary", "specs/hiresnet18.yaml", "--sort", "params").stdout
    first_rows = [line.split("│")[1].strip() for line in by_macs.splitlines() if line.startswith("│")][:2]
    assert first_rows == ["stage4", "stage3"]


def test_summary_input_override():
    data = json.loads(run("summary", "specs/resnet18.yaml", "--json", "--input", "3x64x64").stdout)
    small = json.loads(run("summary", "specs/resnet18.yaml", "--json").stdout)
    assert data["input"] == [3, 64, 64]
    assert data["total"]["params"] == small["total"]["params"]
    assert data["total"]["macs"] == pytest.approx(4 * small["total"]["macs"], rel=0.01)


def test_summary_bad_spec_exits_1_with_the_place():
    result = run("summary", "tests/invalid/edge-unknown-to.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: tests/invalid/edge-unknown-to.yaml:9:")
    assert "stage9" in result.stderr and "Traceback" not in result.output


def test_summary_misuse_exits_2():
    assert run("summary", "specs/hiresnet18.yaml", "--sort", "time").exit_code == 2
    assert run("summary", "specs/hiresnet18.yaml", "--input", "3x32").exit_code == 2


def test_summary_imports_no_torch():
    code = (
        "import sys; from click.testing import CliRunner; from hrgraph.cli.main import main; "
        "r = CliRunner().invoke(main, ['summary', 'specs/hiresnet18.yaml']); "
        "assert r.exit_code == 0, r.output; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, timeout=60)


def test_summary_of_a_dense_spec_is_linear(tmp_path):
    """Issue 19.10: 60 nodes under one all-pairs pattern (1,711 edges) once took minutes; share() re-summed the table per row."""
    import time

    from click.testing import CliRunner

    from hrgraph.cli.main import main

    nodes = "\n".join(f"  - {{id: n{i}, kind: conv, channels: 4}}" for i in range(59))
    path = tmp_path / "dense.yaml"
    path.write_text(
        "input: {channels: 3, height: 8, width: 8}\nnodes:\n" + nodes
        + "\n  - {id: head, kind: classifier, classes: 10}\nedges:\n  - {from: 'n*', to: 'n*'}\n"
    )
    start = time.perf_counter()
    validated = CliRunner().invoke(main, ["validate", str(path)])
    validate_s = time.perf_counter() - start
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["summary", str(path)])
    summary_s = time.perf_counter() - start
    assert validated.exit_code == 0 and result.exit_code == 0, result.output
    assert "n57->n58" in result.output and "total" in result.output
    # Linear: a few validates' worth (quadratic was ~100x here); generous for a loaded machine.
    assert summary_s < 10 * validate_s + 1.0, (summary_s, validate_s)


def test_cost_total_is_computed_once():
    plan = hrgraph.infer_shapes(hrgraph.load_spec("specs/hiresnet18.yaml"))
    table = count_cost(plan)
    assert table.total is table.total
