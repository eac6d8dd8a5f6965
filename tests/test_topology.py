"""Multi-input nodes (``input: [..]`` + ``aggregate``), the ``sepconv`` and ``identity`` kinds, and edge gates."""

from __future__ import annotations

import copy

import pytest
import torch
from click.testing import CliRunner

import hrgraph
from hrgraph.cli.main import main
from hrgraph.build.cost import count_cost
from hrgraph.draw.render import to_dot

from .conftest import SPECS, spec_id

NET = {
    "name": "merges",
    "input": {"channels": 3, "height": 16, "width": 16},
    "nodes": [
        {"id": "stem", "kind": "conv", "channels": 8},
        {"id": "a", "kind": "sepconv", "channels": 16, "stride": 2},
        {"id": "b", "kind": "sepconv", "channels": 16},
        {"id": "c", "kind": "sepconv", "channels": 16, "input": ["a", "b", "stem"], "aggregate": "weighted"},
        {"id": "d", "kind": "basic", "channels": 16, "depth": 1, "input": ["c", "stem"], "aggregate": "mean"},
        {"id": "cat", "kind": "identity", "input": ["c", "d", "b"], "aggregate": "concat"},
        {"id": "out", "kind": "identity", "input": ["cat", "stem"]},
        {"id": "head", "kind": "classifier", "classes": 5},
    ],
    "edges": [
        {"from": "stem", "to": "c", "gate": "scalar"},
        {"from": "a", "to": "out", "gate": "sigmoid"},
    ],
}


def _with(aggregate: str | None = None, gates: str | None = None) -> dict:
    spec = copy.deepcopy(NET)
    if aggregate is not None:
        spec["nodes"][3]["aggregate"] = aggregate
    if gates is not None:
        for e in spec["edges"]:
            e["gate"] = gates
    return spec


def _model(spec: dict, seed: int = 0) -> hrgraph.HrNet:
    torch.manual_seed(seed)
    return hrgraph.compile_model(spec).eval()


def test_merged_shapes_and_params():
    plan = hrgraph.infer_shapes(hrgraph.load_spec(NET))
    assert plan.nodes["c"].inputs == ("a", "b", "stem")
    assert plan.nodes["c"].in_shape == (16, 8, 8)  # the first input's channels, the smallest size
    assert plan.nodes["cat"].out_shape == (48, 8, 8)  # concat adds the channels up
    merge = plan.merges["c"]
    assert [p.describe() for p in merge.inputs] == ["identity", "identity", "avgpool 2 -> 1x1 conv 8->16 + BN, 160 params"]
    assert merge.params == 160 + 3  # the projection, and one weight per input
    assert plan.merges["d"].params == 160  # a mean has no weights
    assert plan.nodes["a"].params == 9 * 8 + 8 * 16 + 2 * 16  # depthwise, pointwise, BN
    model = _model(NET)
    assert sum(p.numel() for p in model.parameters()) == plan.params


def test_state_dict_names():
    keys = set(_model(NET).state_dict())
    assert {"aggregates.c.weight", "gates.stem__c.weight", "gates.a__out.weight"} <= keys
    assert "inputs.stem__c.conv.weight" in keys and "inputs.stem__out.bn.weight" in keys
    assert not any(k.startswith(("inputs.a__", "inputs.b__")) for k in keys)  # identity inputs have no module
    assert _model(NET).state_dict()["aggregates.c.weight"].shape == (3,)


@pytest.mark.parametrize("path", [p for p in SPECS if p.parent.name == "specs"], ids=spec_id)
def test_existing_specs_keep_their_state_dict_names(path):
    # The paper's specs (those before list inputs and gates existed) have only these two tables.
    keys = hrgraph.compile_model(path).state_dict()
    assert all(k.startswith(("nodes.", "projections.")) for k in keys)


def test_weighted_starts_as_a_sum_and_mean_is_the_sum_halved():
    x = torch.randn(2, 3, 16, 16)
    weighted, summed = _model(_with("weighted")), _model(_with("sum"))
    summed.load_state_dict({k: v for k, v in weighted.state_dict().items() if not k.startswith("aggregates.")})
    assert torch.allclose(weighted(x), summed(x), atol=1e-5)
    # A trained weight changes the output: the aggregation is really applied.
    with torch.no_grad():
        weighted.aggregates.c.weight[1] = -3.0
    assert not torch.allclose(weighted(x), summed(x), atol=1e-3)
    mean = _model(_with("mean"))
    mean.load_state_dict(summed.state_dict())
    seen = {}
    for name, model in (("sum", summed), ("mean", mean)):
        model.nodes.c.register_forward_pre_hook(lambda module, args, name=name: seen.__setitem__(name, args[0].clone()))
        model(x)
    assert torch.allclose(seen["mean"], seen["sum"] / 3, atol=1e-6)


def test_gates_start_at_one_and_scale_their_edge():
    x = torch.randn(2, 3, 16, 16)
    gated, plain = _model(_with(gates="sigmoid")), _model(_with(gates="none"))
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gates.")})
    assert torch.allclose(gated(x), plain(x), atol=1e-5)
    scalar = _model(_with(gates="scalar"))
    scalar.load_state_dict({**plain.state_dict(), **{k: v for k, v in scalar.state_dict().items() if k.startswith("gates.")}})
    assert torch.allclose(scalar(x), plain(x), atol=1e-5)
    with torch.no_grad():
        scalar.gates.a__out.weight.zero_()
    # A zero gate is the edge disabled at run time.
    plain.set_edges(disabled=["a:out"])
    assert torch.allclose(scalar(x), plain(x), atol=1e-5)


def test_sepconv_does_not_change_its_input():
    model = _model(NET)
    x = torch.randn(2, 16, 8, 8)
    before = x.clone()
    model.nodes.b(x)
    assert torch.equal(x, before)  # its ReLU is not in place: other nodes read the same tensor


def test_generated_forward_merges_before_the_block():
    code = _model(NET).code
    assert "c = aggregates.c(a, b, inputs.stem__c(stem))\n    c = nodes.c(c)" in code
    assert "cat = torch.cat([c, d, b], 1)" in code
    assert "gates.a__out(projections.a__out(a))" in code


def test_trains_and_traces():
    model = _model(NET).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert model.aggregates.c.weight.grad is not None and model.gates.stem__c.weight.grad is not None
    assert model.inputs.stem__c.conv.weight.grad is not None
    traced = torch.fx.symbolic_trace(model.eval())
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(traced(x), model(x), atol=1e-5)


def test_rows_of_the_cost_table_sum_to_the_plan():
    plan = hrgraph.infer_shapes(hrgraph.load_spec(NET))
    table = count_cost(plan)
    assert table.total.params == plan.params and table.total.macs == plan.macs
    row = {r.name: r for r in table.rows}
    assert row["c (weighted)"].cost.params == 3
    assert row["stem->c (input)"].cost.params == 160 and row["stem->c (input)"].cost.add == 0
    assert row["c (weighted)"].cost.add == 2 * 16 * 8 * 8  # three inputs, two adds per element
    assert row["stem->c"].cost.params == 161  # the edge's projection and its gate


def test_table_and_diagram_show_merges_and_gates(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(hrgraph.load_spec(NET).to_yaml())
    run = CliRunner().invoke(main, ["compile", str(path)])
    assert run.exit_code == 0, run.output
    result = run.output
    assert "weighted: a, b, stem" in result and "merges (list inputs" in result and "scalar gate" in result
    dot = to_dot(NET)
    assert "weighted of 3 inputs" in dot
    assert "avgpool 2 -&gt; 1x1 conv 8-&gt;16 + BN" in dot or "avgpool 2 -> 1x1 conv 8->16 + BN" in dot
    assert "sigmoid gate" in dot


def test_a_single_listed_input_is_that_input():
    spec = copy.deepcopy(NET)
    spec["nodes"][2]["input"] = ["a"]
    a = hrgraph.infer_shapes(hrgraph.load_spec(spec))
    b = hrgraph.infer_shapes(hrgraph.load_spec(NET))
    assert a.nodes["b"].in_shape == b.nodes["b"].in_shape and a.params == b.params


def test_match_resizes_a_spec_with_merges():
    spec = hrgraph.load_spec(NET)
    goal = int(hrgraph.count_params(spec) * 1.3)
    resized = hrgraph.match_params(spec, goal)
    assert abs(hrgraph.count_params(resized) - goal) <= 0.005 * goal
    assert resized.node("c").input == ["a", "b", "stem"]


def test_analyze_contributions_measure_a_gated_edge_after_its_gate():
    from hrgraph.analysis.contributions import contributions

    model = _model(NET)
    with torch.no_grad():
        model.gates.stem__c.weight.fill_(0.5)  # a scalar gate: the edge's term is halved
    x = torch.randn(3, 3, 16, 16)
    rows = {(r["node"], r["path"]): r for r in contributions(model, [(x, torch.zeros(3))])}
    gated = rows[("c", "stem->c")]
    assert gated["gate"] == pytest.approx(0.5)
    seen = {}
    model.projections.stem__c.register_forward_hook(lambda m, a, out: seen.__setitem__("p", out.abs().mean().item()))
    with torch.no_grad():
        model(x)
    assert gated["mean_abs"] == pytest.approx(0.5 * seen["p"], rel=1e-5)
    assert rows[("out", "a->out")]["gate"] == pytest.approx(1.0)  # a sigmoid gate starts at 1
