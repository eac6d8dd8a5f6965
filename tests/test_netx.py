"""Graph export and import: to_networkx/from_networkx round trips, GraphML/GML/CSV import, and its errors.

Every file in tests/import_cases/ is refused with the error its ``expect:`` line
promises (in the first lines: a ``#`` comment, or an XML comment in GraphML)::

    # expect: CycleError line=3 node=V1 cycle=V1,V2,V4 message="the graph has a cycle"

``line`` is required (``none``: the format gives no line for it); ``node``,
``edge`` and ``column`` must match where given (``none``: absent); ``cycle``
lists a cycle's nodes; ``message`` is a fragment of the message.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

import hrgraph
from hrgraph.cli.main import main
from hrgraph.io.graphfiles import import_graph
from hrgraph.io.netx import convert, from_networkx, node_ids, to_networkx

from .conftest import ROOT, SPECS

ALL_SPECS = sorted(set(SPECS) | set((ROOT / "specs").rglob("*.yaml")))  # specs/examples/ too
CASES = sorted(p for p in (ROOT / "tests" / "import_cases").iterdir() if p.suffix in (".graphml", ".gml", ".csv"))


# -- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.relative_to(ROOT / "specs").with_suffix("").as_posix())
def test_round_trip_every_spec(path, tmp_path):
    spec = hrgraph.load_spec(path)
    graph = to_networkx(spec)
    assert from_networkx(graph) == spec
    # Through the files too: every attribute is a scalar that GraphML and GML keep.
    nx.write_graphml(graph, tmp_path / "net.graphml")
    nx.write_gml(graph, tmp_path / "net.gml")
    for name in ("net.graphml", "net.gml"):
        assert import_graph(tmp_path / name).spec == spec, name


def test_export_attributes():
    graph = to_networkx("specs/hiresnet18.yaml")
    assert list(graph) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert graph.graph["input_height"] == 32 and graph.graph["name"] == "hiresnet18"
    assert graph.graph["residuals_entry"] == "output"
    assert graph.nodes["stage2"] == {"kind": "basic", "channels": 128, "depth": 2, "stride": 2, "aggregate": "sum", "index": 2}
    assert graph.edges["stem", "stage1"] == {"role": "input", "implicit": True}
    assert graph.edges["stem", "stage3"] == {"role": "edge", "projection": "auto", "merge": "sum", "pool": "avg", "gate": "none", "index": 1}
    assert graph.number_of_edges() == 5 + 6


BRANCHED = """
name: branched
input: {channels: 3, height: 16, width: 16}
zero_init_residual: true
residuals: {entry: pre_activation}
nodes:
  - {id: stem, kind: conv, channels: 8, maxpool: true}
  - {id: left, kind: basic, channels: 8, input: stem}
  - {id: right, kind: basic, channels: 16, stride: 2, input: stem}
  - {id: merge, kind: basic, channels: 16, input: right}
  - {id: pool, kind: pool, op: max}
  - {id: head, kind: classifier, classes: 5, dropout: 0.5}
edges:
  - {from: left, to: merge, merge: concat, projection: conv, channels: 4}
  - {from: right, to: merge}
  - {from: stem, to: pool, pool: max}
"""


def test_round_trip_explicit_inputs_and_an_edge_beside_an_input(tmp_path):
    spec = hrgraph.load_spec(BRANCHED)
    graph = to_networkx(spec)
    # right -> merge is both merge's input and a long-range edge.
    assert graph.edges["right", "merge"]["role"] == "input+edge"
    assert graph.edges["stem", "left"] == {"role": "input"}
    assert from_networkx(graph) == spec
    nx.write_gml(graph, tmp_path / "b.gml")
    nx.write_graphml(graph, tmp_path / "b.graphml")
    assert import_graph(tmp_path / "b.gml").spec == spec
    assert import_graph(tmp_path / "b.graphml").spec == spec


LISTED = """
input: {channels: 3, height: 32, width: 32}
nodes:
  - {id: stem, kind: conv, channels: 16, stride: 2}
  - {id: a, kind: sepconv, channels: 32, stride: 2}
  - {id: b, kind: sepconv, channels: 32, input: a}
  - {id: c, kind: sepconv, channels: 32, input: [a, b], aggregate: weighted}
  - {id: single, kind: sepconv, channels: 32, input: [c]}
  - {id: out, kind: identity, input: [b, single], aggregate: mean}
  - {id: head, kind: classifier, classes: 10}
edges:
  - {from: stem, to: c, gate: scalar}
  - {from: a, to: single, gate: sigmoid}
  - {from: b, to: out}
"""


def test_round_trip_listed_inputs_and_gates(tmp_path):
    spec = hrgraph.load_spec(LISTED)
    graph = to_networkx(spec)
    assert graph.edges["b", "c"] == {"role": "input", "order": 1}
    assert graph.edges["c", "single"] == {"role": "input", "order": 0}  # a list of one stays a list
    assert graph.edges["stem", "c"]["gate"] == "scalar"
    assert graph.edges["b", "out"]["role"] == "input+edge"
    assert graph.nodes["c"]["aggregate"] == "weighted"
    assert from_networkx(graph) == spec
    nx.write_gml(graph, tmp_path / "l.gml")
    assert import_graph(tmp_path / "l.gml").spec == spec


def test_top_level_options_override_graph_attributes():
    graph = to_networkx("specs/resnet18.yaml")
    spec = from_networkx(graph, name="renamed", input=(1, 28, 28))
    assert spec.name == "renamed" and spec.input.shape == (1, 28, 28)


# -- plain graphs ------------------------------------------------------------------


def test_plain_chain_gets_default_blocks_and_a_head():
    spec = from_networkx(nx.path_graph(4, create_using=nx.DiGraph), default_kind="conv", default_channels=8, classes=7)
    assert [(n.id, n.kind, getattr(n, "channels", None), n.input) for n in spec.nodes] == [
        ("n0", "conv", 8, None),
        ("n1", "conv", 8, None),
        ("n2", "conv", 8, None),
        ("n3", "conv", 8, None),
        ("head", "classifier", None, None),
    ]
    assert spec.nodes[-1].classes == 7 and spec.input.shape == (3, 32, 32)
    assert from_networkx(nx.path_graph(2, create_using=nx.DiGraph), default_kind="conv").nodes[-1].kind == "conv"


def test_topological_order_ties_broken_by_insertion_order():
    graph = nx.DiGraph()
    graph.add_nodes_from(["c", "b", "a"])
    graph.add_edges_from([("a", "c"), ("c", "b")])  # a -> c -> b; insertion order says c, b, a
    spec = from_networkx(graph, default_kind="conv")
    assert [n.id for n in spec.nodes] == ["a", "c", "b"]


def test_undirected_edges_point_from_the_earlier_node():
    graph = nx.Graph([(2, 0), (0, 1)])  # node order 2, 0, 1
    spec = from_networkx(graph, default_kind="conv")
    assert [(n.id, n.input) for n in spec.nodes] == [("n2", None), ("n0", None), ("n1", None)]


def test_node_attributes_set_kinds_and_widths():
    graph = nx.DiGraph([("stem", "a"), ("a", "b")])
    graph.nodes["stem"].update(kind="conv", channels=16, stride=2)
    graph.nodes["b"].update(kind="basic", channels=64, depth=1)
    spec = from_networkx(graph, default_kind="conv", default_channels=24)
    assert spec.node("stem").stride == 2 and spec.node("stem").channels == 16
    assert spec.node("a").channels == 24
    assert (spec.node("b").kind, spec.node("b").channels, spec.node("b").depth) == ("basic", 64, 1)


def test_duplicate_ids_after_cleaning():
    graph = nx.DiGraph([("V2/V3", "a b"), ("V2_V3", "a b"), ("a b", "a-b"), ("a-b", "1st"), ("1st", "forward")])
    assert node_ids(graph) == {
        "V2/V3": "V2_V3_2",
        "a b": "a_b",
        "V2_V3": "V2_V3",
        "a-b": "a_b_2",
        "1st": "n1st",
        "forward": "forward_node",
    }
    result = convert(graph, default_kind="conv")
    assert result.renamed == {"V2/V3": "V2_V3_2", "a b": "a_b", "a-b": "a_b_2", "1st": "n1st", "forward": "forward_node"}
    assert result.added == ["stem"]
    assert node_ids(nx.DiGraph([("x" * 70, "y"), ("x" * 64, "z")]))["x" * 70] == "x" * 62 + "_2"


def test_stem_output_and_head_for_several_sources_and_sinks():
    graph = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d"), ("c", "e")])
    spec = from_networkx(graph, default_kind="sepconv", classes=10, aggregate="weighted")
    assert [n.id for n in spec.nodes] == ["stem", "a", "b", "c", "d", "e", "output", "head"]
    assert spec.node("a").input is None and spec.node("b").input == "stem"
    assert spec.node("c").input == ["a", "b"] and spec.node("c").aggregate == "weighted"
    assert spec.node("output").input == ["d", "e"] and spec.node("output").aggregate == "mean"
    hrgraph.infer_shapes(spec)


def test_random_graph_compiles():
    torch = pytest.importorskip("torch")
    graph = nx.watts_strogatz_graph(12, 4, 0.75, seed=1)
    spec = from_networkx(graph, default_channels=8, input=(3, 16, 16), classes=10)
    model = hrgraph.compile_model(spec)
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10)
    assert from_networkx(to_networkx(spec)) == spec


def test_cycle_refused_and_broken_by_order():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "b")])
    with pytest.raises(hrgraph.CycleError, match=r"a -> b -> c -> a") as info:
        from_networkx(graph, default_kind="conv")
    assert info.value.cycle == ["a", "b", "c"]
    result = convert(graph, default_kind="conv", break_cycles="order")
    assert result.dropped == [("c", "a"), ("d", "b")]
    assert [n.id for n in result.spec.nodes] == ["a", "b", "c", "d"]


def test_break_cycles_keeps_backward_edges_outside_cycles():
    graph = nx.DiGraph()
    graph.add_nodes_from(["late", "early", "x"])
    graph.add_edges_from([("early", "late"), ("late", "x"), ("x", "late")])
    result = convert(graph, default_kind="conv", break_cycles="order")
    # early -> late goes backwards in node order but closes no cycle: kept.
    assert result.dropped == [("x", "late")]
    assert [n.id for n in result.spec.nodes] == ["early", "late", "x"]


def test_unknown_attribute_via_the_api():
    graph = nx.DiGraph([("a", "b")])
    graph.nodes["a"]["strid"] = 2
    with pytest.raises(hrgraph.SpecError, match=r"unknown node attribute 'strid' \(did you mean 'stride'\?\)") as info:
        from_networkx(graph, default_kind="conv")
    assert info.value.node == "a" and info.value.path is None
    graph.nodes["a"]["weight"] = 0.3
    assert from_networkx(graph, default_kind="conv", ignore=["strid", "weight"]).node("a").stride == 1


def test_empty_graph_refused(tmp_path):
    with pytest.raises(hrgraph.SpecError, match="the graph has no nodes"):
        from_networkx(nx.DiGraph(), classes=10)
    (tmp_path / "empty.csv").write_text("source,target\n")
    with pytest.raises(hrgraph.SpecError, match="empty.csv: the graph has no nodes"):
        import_graph(tmp_path / "empty.csv")


def test_spec_errors_name_the_graphs_node():
    graph = nx.DiGraph([(0, 1)])
    graph.nodes[1]["channels"] = 0
    with pytest.raises(hrgraph.SpecError, match="greater than 0") as info:
        from_networkx(graph, default_kind="conv")
    assert info.value.node == "1"


# -- files -------------------------------------------------------------------------


def test_graphml_gml_and_csv_import(tmp_path):
    graph = nx.DiGraph()
    graph.add_node("retina", kind="conv", channels=16, stride=2)
    graph.add_node("LGN", kind="conv", channels=16, maxpool=True)
    graph.add_node("V1", kind="basic", channels=32, depth=1)
    graph.add_edges_from([("retina", "LGN"), ("LGN", "V1")])
    nx.write_graphml(graph, tmp_path / "v.graphml")
    nx.write_gml(graph, tmp_path / "v.gml")
    expected = hrgraph.load_spec(
        """
        name: v
        input: {channels: 3, height: 32, width: 32}
        nodes:
          - {id: retina, kind: conv, channels: 16, stride: 2}
          - {id: LGN, kind: conv, channels: 16, maxpool: true}
          - {id: V1, kind: basic, channels: 32, depth: 1}
          - {id: head, kind: classifier, classes: 10}
        """
    )
    for name in ("v.graphml", "v.gml"):
        spec = import_graph(tmp_path / name, classes=10).spec
        assert spec == expected, name
        hrgraph.infer_shapes(spec)
    (tmp_path / "edges.csv").write_text("source,target\nretina,LGN\nLGN,V1\nretina,V1\n")
    (tmp_path / "matrix.csv").write_text(",retina,LGN,V1\nretina,0,0.7,0\nLGN,0,0,1.5\nV1,0,0,0\n")
    (tmp_path / "bare.csv").write_text("retina,LGN,V1\n0,1,0\n0,0,1\n0,0,0\n")
    for name in ("matrix.csv", "bare.csv"):
        spec = import_graph(tmp_path / name, default_kind="conv", default_channels=16, classes=10).spec
        assert [(n.id, n.input) for n in spec.nodes] == [("retina", None), ("LGN", None), ("V1", None), ("head", None)]
        assert spec.name == name[:-4]
    spec = import_graph(tmp_path / "edges.csv", default_channels=16, classes=10).spec
    assert spec.node("V1").input == ["retina", "LGN"] and spec.node("V1").kind == "sepconv"
    assert [(e.name, e.projection) for e in spec.edges] == []
    assert hrgraph.infer_shapes(spec)


def test_gml_without_labels_uses_ids(tmp_path):
    (tmp_path / "ids.gml").write_text("graph [ directed 1 node [ id 3 ] node [ id 7 ] edge [ source 3 target 7 ] ]")
    result = import_graph(tmp_path / "ids.gml", default_kind="conv")
    assert [n.id for n in result.spec.nodes] == ["n3", "n7"]
    assert result.renamed == {"3": "n3", "7": "n7"}


def test_file_values_are_converted(tmp_path):
    # GML has no booleans (networkx writes 1) and a CSV only text.
    (tmp_path / "g.gml").write_text('graph [ directed 1 node [ id 0 label "a" kind "conv" channels 8 maxpool 1 ] ]')
    assert import_graph(tmp_path / "g.gml").spec.node("a").maxpool is True
    (tmp_path / "e.csv").write_text("source,target,role,projection,gate,order\na,b,,,,\na,c,input,,,0\nb,c,edge,conv,scalar,\n")
    spec = import_graph(tmp_path / "e.csv", default_kind="conv").spec
    assert [(e.name, e.projection, e.gate) for e in spec.edges] == [("b->c", "conv", "scalar")]
    assert spec.node("c").input == ["a"]


def expectation(path: Path) -> dict[str, str]:
    for line in path.read_text(encoding="utf-8").splitlines()[:3]:
        if "expect: " in line:
            text = line.split("expect: ", 1)[1].removesuffix("-->").strip()
            kind, *fields = shlex.split(text)
            return {"type": kind, **dict(f.split("=", 1) for f in fields)}
    raise ValueError(f"{path.name}: no 'expect:' line in its first three lines")


def test_enough_cases():
    assert len(CASES) >= 15
    assert {p.suffix for p in CASES} == {".graphml", ".gml", ".csv"}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_import_case(path):
    expected = expectation(path)
    with pytest.raises(hrgraph.HrgraphError) as info:
        import_graph(path, default_kind="conv")
    err = info.value
    assert type(err).__name__ == expected["type"]
    assert err.path == str(path)
    assert str(err.line if err.line is not None else "none") == expected["line"]
    for field in ("node", "edge", "column"):
        if field in expected:
            value = getattr(err, field)
            assert str(value if value is not None else "none") == expected[field], field
    if "cycle" in expected:
        assert err.cycle == expected["cycle"].split(",")
    assert expected["message"] in err.message


@pytest.mark.parametrize("path", [p for p in CASES if p.stem in ("cycle", "unknown-node-attribute")], ids=lambda p: p.name)
def test_cli_error_is_one_line_and_leaves_no_file(path, tmp_path):
    out = tmp_path / "spec.yaml"
    result = CliRunner().invoke(main, ["import", str(path), "--kind", "conv", "-o", str(out)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:")
    assert "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_import_writes_a_spec_and_reports(tmp_path):
    src = tmp_path / "areas.csv"
    src.write_text("source,target\nV 1,V2\nV2,V4\nV4,V 1\n")
    out = tmp_path / "areas.yaml"
    result = CliRunner().invoke(main, ["import", str(src), "--kind", "conv", "--channels", "8", "--break-cycles", "order", "--input", "1x28x28", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "renamed node 'V 1' -> V_1" in result.stderr
    assert "dropped edge V4 -> V 1" in result.stderr
    spec = hrgraph.load_spec(out)
    assert [n.id for n in spec.nodes] == ["V_1", "V2", "V4", "head"]
    assert spec.input.shape == (1, 28, 28) and spec.nodes[0].channels == 8
    assert out.read_text().startswith("# Generated by `hrgraph import")
    # Export, then import the export: the same spec.
    nx.write_graphml(to_networkx(spec), tmp_path / "again.graphml")
    again = CliRunner().invoke(main, ["import", str(tmp_path / "again.graphml"), "-o", str(tmp_path / "again.yaml")])
    assert again.exit_code == 0, again.output
    assert hrgraph.load_spec(tmp_path / "again.yaml") == spec


def test_cli_refuses_an_unknown_suffix(tmp_path):
    (tmp_path / "g.txt").write_text("a b\n")
    result = CliRunner().invoke(main, ["import", str(tmp_path / "g.txt")])
    assert result.exit_code == 1 and "give --format" in result.stderr


def test_docs_python_example_runs():
    text = (ROOT / "docs" / "import.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/import.md", "exec"), {})


# -- time, feedback and weights (issue 17, item 7) ---------------------------------------


def test_time_and_delays_travel_as_attributes():
    graph = to_networkx("specs/examples/cornet-rt.yaml")
    assert graph.graph["time_steps"] == 5 and graph.graph["time_scheme"] == "biological"
    assert graph.edges["V1", "V1"] == {"role": "input", "order": 1, "delay": 1}
    assert graph.edges["V1", "V2_input"] == {"role": "input", "delay": 1}
    assert "time_steps" not in to_networkx("specs/hiresnet18.yaml").graph


def test_an_input_and_edge_pair_keeps_both_delays():
    spec = hrgraph.load_spec({
        "input": {"channels": 3, "height": 8, "width": 8},
        "time": {"steps": 3},
        "nodes": [{"id": "a", "kind": "conv", "channels": 4},
                  {"id": "b", "kind": "conv", "channels": 4, "input": [{"from": "a", "delay": 1}]}],
        "edges": [{"from": "a", "to": "b", "delay": 2}],
    })
    graph = to_networkx(spec)
    assert graph.edges["a", "b"]["delay"] == 2 and graph.edges["a", "b"]["input_delay"] == 1
    assert from_networkx(graph) == spec


def test_feedback_delays_the_backward_edges_of_each_cycle():
    graph = nx.DiGraph([("V1", "V2"), ("V2", "V4"), ("V4", "V2"), ("V4", "IT"), ("IT", "V1")])
    result = convert(graph, break_cycles="feedback", default_kind="conv", classes=3, steps=4)
    # The edges that go backwards in the graph's node order within a cycle: those --break-cycles order drops.
    assert result.delayed == [("V4", "V2"), ("IT", "V1")] and result.dropped == []
    spec = result.spec
    assert spec.time is not None and spec.time.steps == 4
    assert list(zip(spec.node("V2").inputs, spec.node("V2").input_delays)) == [("V1", 0), ("V4", 1)]
    # V1, entered only by feedback, cannot be the first node: a stem feeds it the image.
    assert result.added[0] == "stem" and spec.node("V1").inputs == ("stem", "IT")
    delayed = {(s, n.id, d) for n in spec.nodes for s, d in zip(n.inputs, n.input_delays) if d}
    assert delayed == {("V4", "V2", 1), ("IT", "V1", 1)}
    # Every edge of the graph is still there: 5 edges, plus the stem's and the classifier's.
    assert sum(len(n.inputs) or (i > 0) for i, n in enumerate(spec.nodes)) == 5 + 2


def test_a_self_loop_becomes_a_delayed_self_input():
    spec = from_networkx(nx.DiGraph([("a", "a"), ("a", "b")]), break_cycles="feedback", default_kind="conv")
    # a reads only its own past, so a stem brings it the image (the first node can name no input).
    assert list(zip(spec.node("a").inputs, spec.node("a").input_delays)) == [("stem", 0), ("a", 1)]
    assert spec.nodes[0].id == "stem" and spec.time.steps == 3


def test_edges_with_a_delay_attribute_close_no_cycle():
    graph = nx.DiGraph([("a", "b"), ("b", "a", {"delay": 2})])
    spec = from_networkx(graph, default_kind="conv", steps=5)
    assert spec.time.steps == 5 and list(zip(spec.node("a").inputs, spec.node("a").input_delays)) == [("stem", 0), ("b", 2)]


def test_weights_stay_on_long_range_edges_and_can_start_their_gates():
    graph = nx.DiGraph()
    graph.add_edge("a", "b", weight=2)
    graph.add_edge("a", "c", weight=1)
    graph.add_edge("b", "c", weight=4)
    kept = from_networkx(graph, default_kind="conv")
    # c's strongest input (b, 4 synapses) is its main input; a -> c becomes a long-range edge keeping its weight.
    assert kept.node("c").input is None and kept.node("b").input is None
    assert [(e.from_, e.to, e.weight, e.gate) for e in kept.edges] == [("a", "c", 1.0, "none")]
    gated = from_networkx(graph, default_kind="conv", weights="gate")
    assert [(e.gate, e.gate_init) for e in gated.edges] == [("scalar", 1 / 4)]
    pytest.importorskip("torch")
    assert hrgraph.compile_model(gated).gates["a__c"].scale().item() == pytest.approx(0.25)
    assert len(hrgraph.compile_model(kept).gates) == 0  # a weight alone changes nothing in the network


def test_weights_gate_needs_weights():
    with pytest.raises(hrgraph.SpecError, match="needs edges with a weight"):
        from_networkx(nx.DiGraph([("a", "b")]), default_kind="conv", weights="gate")


CONNECTOME = ROOT / "tests" / "data" / "celegans-chemical-subgraph.csv"


def _connectome_rows() -> list[tuple[str, str, float]]:
    rows = [line.split(",") for line in CONNECTOME.read_text().splitlines() if line and not line.startswith("#")]
    return [(u, v, float(w)) for u, v, w, _ in rows[1:]]


def test_connectome_imports_whole_with_feedback_and_trains(tmp_path):
    torch = pytest.importorskip("torch")
    from hrgraph.train.loop import train

    rows = _connectome_rows()
    assert len(rows) > 100 and len({u for u, *_ in rows}) > 20  # a real slice, cycles and all
    out = tmp_path / "worm.yaml"
    result = CliRunner().invoke(main, [
        "import", str(CONNECTOME), "--cycles", "feedback", "--steps", "2", "--weights", "gate", "--ignore", "Type",
        "--kind", "conv", "--channels", "4", "--input", "1x8x8", "--classes", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    spec = hrgraph.load_spec(out)
    delayed_lines = [line for line in result.stderr.splitlines() if line.startswith("delayed edge")]
    assert delayed_lines and f"{len(delayed_lines)} edges delayed, 2 steps" in result.stdout
    # Every synapse is an edge of the spec: a node's main input, or a long-range edge keeping its count.
    main_inputs = {(s, n.id) for n in spec.nodes for s in n.inputs}
    main_inputs |= {(spec.nodes[i - 1].id, n.id) for i, n in enumerate(spec.nodes) if i and not n.inputs}
    long_range = {(e.from_, e.to): e for e in spec.edges}
    for u, v, w in rows:
        assert (u, v) in main_inputs or long_range[u, v].weight == w, (u, v)
    assert len(long_range) + len({(u, v) for u, v, _ in rows} & main_inputs) == len(rows)
    largest = max(w for *_, w in rows)
    assert all(e.gate == "scalar" and e.gate_init == e.weight / largest for e in spec.edges)
    model = hrgraph.compile_model(spec)
    x = torch.randn(2, 1, 8, 8)
    y = model(x)
    assert y.shape == (2, 3) and torch.isfinite(y).all()
    y.sum().backward()
    summary = train(spec, {"data": "synthetic:16", "epochs": 1, "batch_size": 8, "augment": [], "val_split": 0.25},
                    out=tmp_path / "run", limit_train=8, limit_val=4, device="cpu")
    assert summary["finished"] and summary["epochs_done"] == 1 and summary["params"] == sum(
        p.numel() for p in model.parameters())
    assert summary["test_loss"] == summary["test_loss"]  # not NaN


def test_cli_refuses_both_ways_of_handling_cycles(tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("source,target\na,b\nb,a\n")
    result = CliRunner().invoke(main, ["import", str(src), "--break-cycles", "order", "--cycles", "feedback"])
    assert result.exit_code == 2 and "give one" in result.output


@pytest.mark.parametrize("edge, message", [
    ({"gate_init": 0.5}, "gate_init applies to a gated edge"),
    ({"gate": "sigmoid", "gate_init": 2.0}, "strictly between 0 and 2"),
])
def test_gate_init_is_checked(edge, message):
    spec = {"input": {"channels": 3, "height": 8, "width": 8},
            "nodes": [{"id": "a", "kind": "conv", "channels": 4}, {"id": "b", "kind": "conv", "channels": 4}],
            "edges": [{"from": "a", "to": "b", **edge}]}
    with pytest.raises(hrgraph.SpecError, match=message):
        hrgraph.load_spec(spec)


def test_byte_order_mark_is_dropped(tmp_path):
    # Spreadsheet programs save "CSV UTF-8" with one; it made the header look like a matrix's.
    for name, text in (("edges.csv", "source,target\nV1,V2\nV2,V4\nV1,V4\n"), ("matrix.csv", ",A,B\nA,0,1\nB,0,0\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        (tmp_path / f"bom-{name}").write_text(text, encoding="utf-8-sig")
        plain = import_graph(tmp_path / name, default_kind="conv").spec
        assert import_graph(tmp_path / f"bom-{name}", name=plain.name, default_kind="conv").spec == plain
