"""Feedback and recurrence unrolled in time (issue 17), and CORnet-Z/RT/S as specs.

The CORnet checks compare the compiled specs with tests/cornet_reference.py (the official
architectures re-implemented with the official key names): parameter counts exactly, MACs
against FlopCounterMode on the reference, and logits after mapping the reference's random
weights and random norm statistics with hrgraph.io.interop.from_cornet.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

import hrgraph
from hrgraph.build.unroll import plan_time
from hrgraph.cli.main import main
from hrgraph.edit.ablate import ablate
from hrgraph.io.interop import from_cornet

from .conftest import ROOT
from .cornet_reference import cornet_rt, cornet_s, cornet_z

EXAMPLES = ROOT / "specs" / "examples"
REFERENCES = {"z": cornet_z, "rt": cornet_rt, "s": cornet_s}

FEEDBACK = """
name: feedback-demo
input: {channels: 3, height: 16, width: 16}
time: {steps: 3}
nodes:
  - {id: stem, kind: conv, channels: 8}
  - {id: s1, kind: basic, channels: 8, depth: 1}
  - {id: s2, kind: basic, channels: 16, depth: 1, stride: 2}
  - {id: s3, kind: basic, channels: 32, depth: 1, stride: 2}
  - {id: head, kind: classifier, classes: 5}
edges:
  - {from: "*", to: "*", min_skip: -1, max_skip: -1, delay: 1}
  - {from: s3, to: s3, delay: 1}
"""


def _load(name: str, shape: tuple[int, int, int] | None = None) -> hrgraph.HrNet:
    return hrgraph.compile_model(EXAMPLES / f"cornet-{name}.yaml", input_shape=shape).eval()


def _macs(module: torch.nn.Module, size: int) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.randn(1, 3, size, size))
    return counter.get_total_flops() // 2


def _randomise(reference: torch.nn.Module, seed: int) -> None:
    """Random weights, biases, norm affine parameters and running statistics (non-zero biases)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            scale = 0.5 if name.endswith("bias") else (2.0 / max(1, p[0].numel())) ** 0.5
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
        for name, b in reference.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)


def _same_logits(name: str, size: int, seed: int = 0) -> None:
    reference = REFERENCES[name]()
    _randomise(reference, seed)
    reference.eval()
    model = _load(name, (3, size, size))
    model.load_state_dict(from_cornet({f"module.{k}": v for k, v in reference.state_dict().items()}))
    image = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        expected, got = reference(image), model(image)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.abs().max() > 0
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item()), (got - expected).abs().max()


# -- CORnet: counts --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["z", "rt", "s"])
def test_cornet_parameter_count_is_the_official_one(name):
    plan = hrgraph.infer_shapes(hrgraph.load_spec(EXAMPLES / f"cornet-{name}.yaml"))
    official = sum(p.numel() for p in REFERENCES[name]().parameters())
    assert plan.params == official
    assert sum(p.numel() for p in _load(name).parameters()) == official


@pytest.mark.parametrize("name", ["z", "rt"])
def test_cornet_macs_match_flop_counter_on_the_reference(name):
    plan = hrgraph.infer_shapes(hrgraph.load_spec(EXAMPLES / f"cornet-{name}.yaml"))
    measured = _macs(REFERENCES[name]().eval(), 224)
    assert abs(plan.macs - measured) <= 0.01 * measured, (plan.macs, measured)


def test_cornet_s_macs_match_at_a_small_input():
    plan = hrgraph.infer_shapes(hrgraph.load_spec(EXAMPLES / "cornet-s.yaml"), input_shape=(3, 64, 64))
    measured = _macs(cornet_s().eval(), 64)
    assert abs(plan.macs - measured) <= 0.01 * measured, (plan.macs, measured)


@pytest.mark.slow
def test_cornet_s_macs_match_at_224():
    plan = hrgraph.infer_shapes(hrgraph.load_spec(EXAMPLES / "cornet-s.yaml"))
    measured = _macs(cornet_s().eval(), 224)
    assert abs(plan.macs - measured) <= 0.01 * measured, (plan.macs, measured)


@pytest.mark.parametrize("name", ["z", "rt", pytest.param("s", marks=pytest.mark.slow)])
def test_cli_compile_prints_the_official_counts(name):
    result = CliRunner().invoke(main, ["compile", str(EXAMPLES / f"cornet-{name}.yaml"), "--input", "3x224x224", "--json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    assert data["params"] == sum(p.numel() for p in REFERENCES[name]().parameters())
    assert data["macs"] == hrgraph.infer_shapes(hrgraph.load_spec(EXAMPLES / f"cornet-{name}.yaml")).macs


# -- CORnet: the official weights give the official logits ---------------------------------------


def test_cornet_z_logits_match_the_reference():
    _same_logits("z", 64)


def test_cornet_rt_logits_match_the_reference():
    # The reference hard-codes RT's 224x224 step-0 zero maps, so RT runs at 224 only.
    _same_logits("rt", 224)


def test_cornet_s_logits_match_the_reference_at_a_small_input():
    _same_logits("s", 64)


@pytest.mark.slow
def test_cornet_s_logits_match_the_reference_at_224():
    _same_logits("s", 224, seed=3)


def test_cornet_rt_step_zero_is_not_silent_above_v1():
    # With a positive norm1.bias, V2..IT's step-0 output is relu(bias): the logits of times=4
    # depend on it.  idle: silent on those nodes would lose it, and the logits would differ.
    plan = hrgraph.infer_shapes(hrgraph.load_spec(EXAMPLES / "cornet-rt.yaml"))
    first = {r.node for r in plan.time.runs if r.step == 0}
    assert first == {"V1_input", "V1", "V2", "V4", "IT"}
    zero_runs = {r.node for r in plan.time.runs if r.zeros}
    assert zero_runs == {"V2", "V4", "IT"}


def test_from_cornet_refuses_unknown_keys():
    with pytest.raises(KeyError, match="no mapping"):
        from_cornet({"V1.conv.weight": 0, "V3.conv.weight": 0})


# -- the generic mechanism -------------------------------------------------------------------


def test_feedback_spec_runs_forward_and_backward_with_a_gradient_everywhere():
    model = hrgraph.compile_model(FEEDBACK)
    # Every feedback edge is top-down here: an upsampling projection.
    ups = [p for p in model.plan.projections.values() if p.upsample]
    assert {p.name for p in ups} == {"s2->s1", "s3->s2"}
    assert all(p.delay == 1 for p in model.plan.projections.values())
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 5)
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []
    assert sum(p.numel() for p in model.parameters()) == model.plan.params


def test_feedback_macs_count_every_step_that_runs():
    plan = hrgraph.infer_shapes(hrgraph.load_spec(FEEDBACK))
    static = {n: plan.nodes[n].macs for n in plan.order}
    edges = sum(p.macs for p in plan.projections.values())
    # 3 steps of the four areas, the head once (readout: last), each feedback edge at steps 1 and 2.
    expected = 3 * sum(static[n] for n in ("stem", "s1", "s2", "s3")) + static["head"] + 2 * edges
    assert plan.macs == expected
    assert sum(plan.step_macs().values()) == plan.macs
    table = hrgraph.build.cost.count_cost(plan)
    assert table.total.macs == plan.macs and table.total.params == plan.params


def test_delayed_input_is_zero_before_its_first_value():
    # b's list input reads b itself at delay 1: at step 0 only a feeds it.
    spec = """
input: {channels: 2, height: 4, width: 4}
time: {steps: 2}
nodes:
  - {id: a, kind: identity}
  - {id: b, kind: identity, input: [a, {from: b, delay: 1}]}
"""
    model = hrgraph.compile_model(spec)
    x = torch.randn(1, 2, 4, 4)
    assert torch.equal(model(x), 2 * x)  # step 0: b = a; step 1: b = a + b(0)


@pytest.mark.parametrize("idle, runs_at_0", [("silent", False), ("zeros", True)])
def test_idle_silent_skips_and_zeros_runs_on_a_zero_input(idle, runs_at_0):
    spec = f"""
input: {{channels: 3, height: 8, width: 8}}
time: {{steps: 2, idle: {idle}}}
nodes:
  - {{id: a, kind: conv, channels: 4}}
  - {{id: b, kind: convlayer, channels: 4, bias: true, norm: none, input: {{from: a, delay: 1}}}}
  - {{id: head, kind: classifier, classes: 2}}
"""
    plan = hrgraph.infer_shapes(hrgraph.load_spec(spec))
    assert (("b", 0) in {(r.node, r.step) for r in plan.time.runs}) is runs_at_0
    assert plan.runs("node", "b") == (2 if runs_at_0 else 1)
    model = hrgraph.compile_model(spec)
    assert ("x.new_zeros" in model.code) is runs_at_0
    model(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("readout, shape", [("last", (2, 5)), ("mean", (2, 5)), ("all", (2, 3, 5))])
def test_readout(readout, shape):
    model = hrgraph.compile_model(FEEDBACK.replace("time: {steps: 3}", f"time: {{steps: 3, readout: {readout}}}")).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
    assert out.shape == shape
    if readout == "all":
        last = hrgraph.compile_model(FEEDBACK).eval()
        last.load_state_dict(model.state_dict())
        with torch.no_grad():
            assert torch.allclose(out[:, -1], last(x), atol=1e-5)
            mean = hrgraph.compile_model(FEEDBACK.replace("steps: 3}", "steps: 3, readout: mean}")).eval()
            mean.load_state_dict(model.state_dict())
            assert torch.allclose(mean(x), out.mean(1), atol=1e-5)


def test_sequential_scheme_runs_each_node_to_completion():
    spec = """
input: {channels: 2, height: 4, width: 4}
time: {scheme: sequential}
nodes:
  - {id: a, kind: identity}
  - {id: b, kind: identity, steps: 3, input: [a, {from: b, delay: 1}]}
  - {id: c, kind: identity}
"""
    plan = hrgraph.infer_shapes(hrgraph.load_spec(spec))
    assert [(r.node, r.step) for r in plan.time.runs] == [("a", 0), ("b", 0), ("b", 1), ("b", 2), ("c", 0)]
    x = torch.randn(1, 2, 4, 4)
    assert torch.allclose(hrgraph.compile_model(spec)(x), 3 * x)  # b = a, 2a, 3a


def test_set_edges_cuts_feedback_at_run_time_and_ablate_drops_it():
    model = hrgraph.compile_model(FEEDBACK).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        full = model(x)
        model.set_edges(disabled=["s3->s2", "s3->s3"])
        assert "projections.s3__s2" not in model.code and "+ s3__0" not in model.code
        cut = model(x)
    assert not torch.allclose(full, cut)
    ablated = ablate(hrgraph.load_spec(FEEDBACK), ["s3:s2", "s3:s3"])
    assert {e.name for e in ablated.edges} == {"s1->stem", "s2->s1"}
    reference = hrgraph.compile_model(ablated).eval()
    reference.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.allclose(reference(x), cut, atol=1e-6)


def test_unrolled_model_traces_compiles_and_exports():
    model = hrgraph.compile_model(FEEDBACK).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        graph = torch.fx.symbolic_trace(model)
        assert torch.allclose(graph(x), expected)
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        assert torch.allclose(compiled(x), expected)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), expected, atol=1e-6)


def test_upsampling_edge_in_a_plain_dag():
    # A top-down (FPN-like) edge without any time: nearest and bilinear upsampling.
    for mode in ("nearest", "bilinear"):
        spec = f"""
input: {{channels: 3, height: 16, width: 16}}
nodes:
  - {{id: stem, kind: conv, channels: 8}}
  - {{id: down, kind: basic, channels: 16, depth: 1, stride: 2}}
  - {{id: up, kind: basic, channels: 8, depth: 1, input: stem}}
  - {{id: head, kind: classifier, classes: 3}}
edges:
  - {{from: down, to: up, upsample: {mode}}}
"""
        model = hrgraph.compile_model(spec)
        projection = model.plan.projections["down", "up"]
        assert projection.upsample == mode and projection.upsample_factor == (2, 2)
        assert projection.macs == 16 * 8 * 16 * 16
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 3)


def test_delay_needs_a_time_section():
    spec = FEEDBACK.replace("time: {steps: 3}\n", "")
    with pytest.raises(hrgraph.GraphError, match="needs the network to run in time") as info:
        hrgraph.infer_shapes(hrgraph.load_spec(spec))
    assert info.value.line is not None


def test_a_lone_input_delayed_from_a_later_node_is_a_located_error():
    """Found by tests/test_fuzz.py: CORnet-RT with V1 listed after V2_input, whose one input is V1 at t-1."""
    text = (EXAMPLES / "cornet-rt.yaml").read_text()
    data = hrgraph.load_spec(EXAMPLES / "cornet-rt.yaml")
    ids = [n.id for n in data.nodes]
    assert ids[1:3] == ["V1", "V2_input"]
    lines = text.splitlines(keepends=True)
    start = [i for i, line in enumerate(lines) if line.lstrip().startswith("- {id: ")]
    assert len(start) == len(ids), "one flow-style line per node"
    lines[start[1]], lines[start[2]] = lines[start[2]], lines[start[1]]
    with pytest.raises(hrgraph.ShapeError, match="delayed from a node computed later") as info:
        hrgraph.infer_shapes(hrgraph.load_spec("".join(lines)))
    assert info.value.node == "V2_input" and info.value.line == start[1] + 1


def test_cli_validate_refuses_a_delay_zero_cycle():
    result = CliRunner().invoke(main, ["validate", "tests/invalid/delay-zero-cycle.yaml"])
    assert result.exit_code == 1
    assert "cycle s2 -> s3 -> s2" in result.stderr or "cycle s3 -> s2 -> s3" in result.stderr


def test_plan_time_is_recomputed_without_disabled_edges():
    plan = hrgraph.infer_shapes(hrgraph.load_spec(FEEDBACK))
    cut = plan_time(plan.spec, plan.order, plan.incoming, {("s3", "s2")})
    assert cut.edge_runs.get(("s3", "s2"), 0) == 0 and plan.time.edge_runs[("s3", "s2")] == 2
