"""The network input as a named source, ``input`` (issue 20.4; docs/spec.md, "The network input").

An edge or a list-input item may come from ``input``; it is projected like any
other source, counted, drawn, selected (``input:*``), exported to networkx and
read at every step of a spec with time.  No node may take the id.
"""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from click.testing import CliRunner

import hrgraph
from hrgraph.build.cost import count_cost
from hrgraph.cli.main import main
from hrgraph.draw.render import INPUT_ID, to_dot
from hrgraph.edit.ablate import ablate, variant_edges
from hrgraph.io.netx import convert, from_networkx, to_networkx

BASE = """
input: {channels: 3, height: 16, width: 16}
nodes:
  - {id: a, kind: conv, channels: 8}
  - {id: b, kind: basic, channels: 8, depth: 1}
  - {id: c, kind: basic, channels: 16, stride: 2, depth: 1, input: [b, input]}
  - {id: head, kind: classifier, classes: 4}
edges:
  - {from: input, to: b}
  - {from: a, to: c}
  - {from: input, to: c, gate: scalar}
"""

# The same network with the input passed through an identity stem, the workaround before `input` had a name.
STEM = """
input: {channels: 3, height: 16, width: 16}
nodes:
  - {id: stem, kind: identity}
  - {id: a, kind: conv, channels: 8}
  - {id: b, kind: basic, channels: 8, depth: 1}
  - {id: c, kind: basic, channels: 16, stride: 2, depth: 1, input: [b, stem]}
  - {id: head, kind: classifier, classes: 4}
edges:
  - {from: stem, to: b}
  - {from: a, to: c}
  - {from: stem, to: c, gate: scalar}
"""


def _randomise(model: torch.nn.Module) -> None:
    # Fresh BNs and unit gates would hide a wrongly wired term; random values do not.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)


def test_edges_and_list_inputs_from_input_equal_an_identity_stem():
    model, stem = hrgraph.compile_model(BASE), hrgraph.compile_model(STEM)
    assert model.plan.params == stem.plan.params
    _randomise(model)
    renamed = {k.replace("input__", "stem__"): v for k, v in model.state_dict().items()}
    stem.load_state_dict(renamed)
    model.eval(), stem.eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(model(x), stem(x))
    # The projections are the paper's: a 1x1 conv + BN where channels differ, pooling where sizes do.
    assert model.plan.projections["input", "b"].describe() == "1x1 conv 3->8 + BN, 40 params"
    assert model.plan.projections["input", "c"].describe().startswith("avgpool 2 -> 1x1 conv 3->16 + BN")
    assert model.plan.merges["c"].inputs[1].source == "input"


def test_an_identity_concat_edge_from_input_is_the_input_itself():
    model = hrgraph.compile_model(
        """
        input: {channels: 3, height: 8, width: 8}
        nodes:
          - {id: a, kind: conv, channels: 4}
          - {id: head, kind: classifier, classes: 2}
        edges:
          - {from: input, to: a, merge: concat}
        """
    )
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    a = torch.cat([model.nodes.a(x), x], 1)
    torch.testing.assert_close(model(x), model.nodes.head(a))
    assert model.plan.nodes["a"].out_shape == (7, 8, 8)


def test_a_node_may_take_input_as_its_main_input():
    model = hrgraph.compile_model(
        """
        input: {channels: 3, height: 8, width: 8}
        nodes:
          - {id: a, kind: conv, channels: 4}
          - {id: b, kind: conv, channels: 4, input: input}
          - {id: head, kind: classifier, classes: 2, input: [a, b], aggregate: concat}
        """
    )
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    expected = model.nodes.head(torch.cat([model.nodes.a(x), model.nodes.b(x)], 1))
    torch.testing.assert_close(model(x), expected)


def test_the_input_is_read_at_every_step_of_a_spec_with_time():
    spec = hrgraph.load_spec(
        """
        input: {channels: 3, height: 8, width: 8}
        time: {steps: 3}
        nodes:
          - {id: a, kind: conv, channels: 4}
          - {id: b, kind: conv, channels: 4, input: [a, {from: b, delay: 1}, input]}
          - {id: head, kind: classifier, classes: 2}
        edges:
          - {from: input, to: b}
        """
    )
    plan = hrgraph.infer_shapes(spec)
    runs = [r for r in plan.time.runs if r.node == "b"]
    assert [r.step for r in runs] == [0, 1, 2]
    assert all(r.inputs[2] == (None, 0) for r in runs)
    assert all([v for p, v in r.edges if p.source == "input"] == [(None, 0)] for r in runs)
    assert plan.runs("edge", ("input", "b")) == 3
    model = hrgraph.compile_model(spec)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)


@pytest.mark.parametrize(
    ("edge", "error", "fragment"),
    [
        ("{from: input, to: b, delay: 1}", hrgraph.GraphError, "takes no delay"),
        ("{from: b, to: input}", hrgraph.GraphError, "may start there, not end there"),
        ("{from: inptu, to: b}", hrgraph.UnknownNodeError, "did you mean 'input'"),
        ("{from: x, to: b}", hrgraph.UnknownNodeError, "the network's input is named 'input'"),
        ("{from: input, to: head}", hrgraph.GraphError, "classifier node cannot receive"),
    ],
)
def test_edges_from_or_to_input_that_are_refused(edge, error, fragment):
    text = BASE.split("edges:")[0] + f"time: {{steps: 2}}\nedges:\n  - {edge}\n"
    with pytest.raises(error, match=fragment) as info:
        hrgraph.infer_shapes(hrgraph.load_spec(text))
    assert info.value.line == text.splitlines().index(f"  - {edge}") + 1


def test_a_list_input_guessing_the_input_name_is_told_it():
    text = BASE.replace("input: [b, input]", "input: [b, image]")
    with pytest.raises(hrgraph.UnknownNodeError, match="the network's input is named 'input'") as info:
        hrgraph.infer_shapes(hrgraph.load_spec(text))
    assert info.value.node == "c"


def test_a_star_pattern_leaves_input_out_and_a_named_input_is_one_position_before_the_first_node():
    spec = hrgraph.load_spec(
        """
        input: {channels: 3, height: 16, width: 16}
        nodes:
          - {id: a, kind: conv, channels: 8}
          - {id: b, kind: basic, channels: 8, depth: 1}
          - {id: c, kind: basic, channels: 16, stride: 2, depth: 1}
          - {id: head, kind: classifier, classes: 4}
        edges:
          - {from: "*", to: "*", min_skip: 2}
          - {from: [input, a], to: c, max_skip: 3}
          - {from: input, to: "*", min_skip: 2, max_skip: 2}
        """
    )
    # input -> c skips 3 positions (input is at -1, c at 2), input -> b skips 2; the second
    # pattern's a -> c overrides the first's, and a pattern's edges are ordered by target, then source.
    assert [e.name for e in spec.edges] == ["input->c", "a->c", "input->b"]
    only_stars = hrgraph.load_spec(spec.to_yaml().split("edges:")[0] + 'edges:\n  - {from: "*", to: "*", min_skip: 1}\n')
    assert [e.name for e in only_stars.edges] == ["a->b", "a->c", "b->c"]


def test_selectors_and_the_named_variants():
    spec = hrgraph.load_spec(BASE)
    assert [e.name for e in hrgraph.select_edges(spec, "input:*")] == ["input->b", "input->c"]
    assert [e.name for e in hrgraph.select_edges(spec, "*:c")] == ["a->c", "input->c"]
    assert [e.name for e in ablate(spec, drop="input:*").edges] == ["a->c"]
    with pytest.raises(hrgraph.UnknownNodeError, match="did you mean 'input'"):
        hrgraph.select_edges(spec, "inpt:b")
    # "in" is the paper's "from the first convolution to every block": not from the raw input.
    assert [e.name for e in variant_edges(spec, "in")] == ["a->c"]
    # "out" is from the residual blocks: neither the first node (a) nor the raw input is one.
    with pytest.raises(hrgraph.GraphError, match=r"keeps no edge"):
        variant_edges(spec, "out")
    assert [e.name for e in variant_edges(spec, "out-all")] == ["a->c", "input->c"]


def test_cost_and_compile_table_count_the_input_edges():
    spec = hrgraph.load_spec(BASE)
    plan = hrgraph.infer_shapes(spec)
    table = count_cost(plan)
    names = [row.name for row in table.rows]
    assert "input->b" in names and "input->c" in names and "input->c (input)" in names
    assert table.total.params == plan.params
    model = hrgraph.compile_model(spec)
    assert sum(p.numel() for p in model.parameters()) == plan.params
    assert "input__b" in model.projections and "input__c" in model.inputs


def test_compile_prints_the_input_edge(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(BASE)
    result = CliRunner().invoke(main, ["compile", str(path)])
    assert result.exit_code == 0, result.output
    assert "input->b" in result.output


def test_diagram_draws_input_edges_from_the_input_oval():
    dot = to_dot(BASE)
    assert f"{INPUT_ID} -> c " in dot  # the list input
    assert f"{INPUT_ID} -> __edge__{INPUT_ID}__b" in dot  # the long-range edge, labelled above b
    assert "<b>input-&gt;b</b>" in dot


def test_networkx_round_trip(tmp_path):
    spec = hrgraph.load_spec(BASE)
    graph = to_networkx(spec)
    assert graph.nodes["input"] == {"kind": "input"}
    assert from_networkx(graph) == spec
    nx.write_graphml(graph, tmp_path / "g.graphml")
    assert convert(nx.read_graphml(tmp_path / "g.graphml"), lax=True).spec == spec
    # Specs that do not name their input keep their graphs; a plain graph's "input" is an ordinary node.
    assert "input" not in to_networkx("specs/hiresnet18.yaml")
    assert convert(nx.DiGraph([("input", "x"), ("x", "y")])).spec.node_ids == ["input_node", "x", "y"]


def test_analyze_measures_an_identity_edge_from_input_as_the_input_itself():
    from hrgraph.analysis.contributions import contributions

    model = hrgraph.compile_model(
        """
        input: {channels: 3, height: 8, width: 8}
        nodes:
          - {id: a, kind: conv, channels: 3}
          - {id: b, kind: basic, channels: 3, depth: 1}
          - {id: head, kind: classifier, classes: 2}
        edges:
          - {from: input, to: b, projection: identity}
        """
    )
    x = torch.randn(4, 3, 8, 8)
    row = next(r for r in contributions(model, [(x, None)]) if r["path"] == "input->b")
    assert row["source"] == "input"
    assert row["mean_abs"] == pytest.approx(x.abs().mean().item(), rel=1e-5)


@pytest.mark.parametrize("target", [100_000, 400_000])
def test_parameter_matching_follows_widths_past_an_edge_and_a_main_input_from_input(target):
    spec = hrgraph.load_spec(
        """
        input: {channels: 3, height: 16, width: 16}
        nodes:
          - {id: a, kind: conv, channels: 8}
          - {id: b, kind: basic, channels: 8, depth: 1}
          - {id: d, kind: basic, channels: 8, depth: 1, input: input}
          - {id: head, kind: classifier, classes: 4}
        edges:
          - {from: input, to: b}
          - {from: b, to: d}
        """
    )
    matched = hrgraph.match_params(spec, target)
    assert abs(hrgraph.count_params(matched) - target) <= 0.005 * target
    assert [e.name for e in matched.edges] == ["input->b", "b->d"]
