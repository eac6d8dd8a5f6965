"""``step_norm: per_step``: one copy of each norm per step a node runs, the convolutions shared (issue 17).

The copies are counted from the spec (the plan's parameters equal the module's), keyed by the step
in the state_dict, each used at its own step only (its running statistics move only then), and the
unrolled forward still traces, compiles, exports and pickles.
"""

from __future__ import annotations

import pickle
from typing import Literal

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import hrgraph
from hrgraph.build.stepnorm import StepNorm
from hrgraph.cli.main import main
from hrgraph.errors import CompileError
from hrgraph.spec.kinds import Block

from .conftest import ROOT

SPEC = """
name: per-step
input: {channels: 3, height: 16, width: 16}
time: {steps: 3, step_norm: per_step}
nodes:
  - {id: stem, kind: conv, channels: 8}
  - {id: s1, kind: basic, channels: 12, depth: 1, input: [stem, {from: s1, delay: 1}]}
  - {id: s2, kind: basic, channels: 16, depth: 1, stride: 2}
  - {id: head, kind: classifier, classes: 5}
edges:
  - {from: s2, to: s1, delay: 1}
"""


def _model(text: str = SPEC) -> hrgraph.HrNet:
    torch.manual_seed(0)
    return hrgraph.compile_model(text)


def _bn_params(model: nn.Module) -> int:
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters(recurse=False))


def test_parameters_are_the_shared_network_plus_one_norm_copy_per_extra_step():
    per_step, shared = _model(), _model(SPEC.replace(", step_norm: per_step", ""))
    assert sum(p.numel() for p in per_step.parameters()) == per_step.plan.params
    conv = lambda m: sum(p.numel() for n, p in m.named_parameters() if "conv" in n or "fc" in n)  # noqa: E731
    assert conv(per_step) == conv(shared)  # convolutions (and the head) shared by the steps
    # stem, s1, s2 run at steps 0-2: 3 copies; the edge s2->s1 and s1's own state at steps 1-2: 2.
    stem, s1, s2 = (_bn_params(shared.nodes[n]) for n in ("stem", "s1", "s2"))
    edge, state = _bn_params(shared.projections.s2__s1), _bn_params(shared.inputs.s1__s1)
    assert per_step.plan.params - shared.plan.params == 2 * (stem + s1 + s2) + edge + state
    assert per_step.plan.nodes["head"].norm_steps == ()  # runs once: nothing to copy


def test_state_dict_keys_name_the_step():
    keys = _model().state_dict().keys()
    assert {"nodes.stem.bn.0.weight", "nodes.stem.bn.1.weight", "nodes.stem.bn.2.weight"} <= keys
    assert {"projections.s2__s1.bn.1.running_mean", "projections.s2__s1.bn.2.running_mean"} <= keys
    assert "projections.s2__s1.bn.0.weight" not in keys  # no value reaches it at step 0
    assert "nodes.stem.conv.weight" in keys and "nodes.stem.conv.0.weight" not in keys


def test_each_copy_runs_at_its_own_step_only():
    model = _model().train()
    model(torch.randn(4, 3, 16, 16))
    tracked = {k: int(v) for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    assert tracked and all(v == 1 for v in tracked.values())  # every copy normalised exactly one batch
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        model.nodes.stem.bn["1"].running_mean.add_(1.0)  # step 1's statistics only
        assert not torch.allclose(model(x), before)
        model.nodes.stem.bn["1"].running_mean.sub_(1.0)
        assert torch.allclose(model(x), before, atol=1e-6)


def test_a_node_can_keep_shared_norms_under_a_per_step_spec():
    model = _model(SPEC.replace("{id: s2, kind: basic,", "{id: s2, step_norm: shared, kind: basic,"))
    assert not any(isinstance(m, StepNorm) for m in model.nodes.s2.modules())
    assert any(isinstance(m, StepNorm) for m in model.nodes.s1.modules())
    only = _model(SPEC.replace(", step_norm: per_step", "").replace("{id: s2, kind: basic,", "{id: s2, step_norm: per_step, kind: basic,"))
    assert [n for n, s in only.plan.nodes.items() if s.norm_steps] == ["s2"]
    assert sum(p.numel() for p in only.parameters()) == only.plan.params


def test_forward_and_backward_reach_every_copy():
    model = _model()
    model(torch.randn(4, 3, 16, 16)).sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_generated_forward_names_the_step_of_each_node():
    code = _model().code
    assert "at_step(1, nodes.s1, projections.s2__s1, inputs.s1__s1)" in code
    assert "at_step(0, nodes.stem)" in code


def test_traces_compiles_exports_and_pickles_and_the_model_still_steps():
    model = _model().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(torch.fx.symbolic_trace(model)(x), expected)
        assert torch.allclose(torch.compile(model, fullgraph=True, backend="eager")(x), expected)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), expected, atol=1e-6)
        assert torch.allclose(model(x), expected)  # exporting left the model's steps working
        assert torch.allclose(pickle.loads(pickle.dumps(model))(x), expected)


def test_cli_compile_lists_the_copies():
    result = CliRunner().invoke(main, ["compile", str(ROOT / "specs" / "examples" / "ventral-feedback.yaml")])
    assert result.exit_code == 0, result.output
    assert "norms per step (step_norm: per_step): nodes.retina x4" in result.output


class Normed(Block):
    """A user block with a BatchNorm that does not declare norm_params."""

    kind: Literal["normed_test"]
    channels: int = 4

    def out_shape(self, in_shape):
        return (self.channels, in_shape[1], in_shape[2])

    def param_count(self, in_shape):
        return in_shape[0] * self.channels + 2 * self.channels


def test_a_block_that_hides_its_norm_params_is_refused_naming_the_node():
    hrgraph.register_block(
        Normed, lambda b, s: nn.Sequential(nn.Conv2d(s[0], b.channels, 1, bias=False), nn.BatchNorm2d(b.channels)),
        replace=True,
    )
    text = SPEC.replace("{id: s2, kind: basic, channels: 16, depth: 1, stride: 2}", "{id: s2, kind: normed_test, channels: 16}")
    with pytest.raises(CompileError, match="declares 0 norm parameters") as info:
        _model(text)
    assert info.value.node == "s2"
