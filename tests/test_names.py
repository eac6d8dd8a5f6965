"""What validates compiles: node ids, module names and generated code for any valid spec.

The refused cases live in tests/invalid/ (id-reserved-*, id-leading-underscore,
edge-names-collide, classifier-*).
"""

from __future__ import annotations

import itertools
import keyword

import pytest
import torch
from torch import nn

import hrgraph
from hrgraph.spec.kinds import RESERVED_IDS

from .conftest import SPECS, spec_id

INPUT = {"channels": 3, "height": 16, "width": 16}


def chain(*ids, residuals=None, edges=()):
    nodes = [{"id": ids[0], "kind": "conv", "channels": 8}]
    nodes += [{"id": i, "kind": "basic", "channels": 8, "depth": 1} for i in ids[1:-1]]
    nodes.append({"id": ids[-1], "kind": "classifier", "classes": 3})
    spec = {"input": INPUT, "nodes": nodes, "edges": [{"from": a, "to": b} for a, b in edges]}
    if residuals:
        spec["residuals"] = residuals
    return spec


def test_reserved_ids_cover_the_installed_torch():
    # If this fails, torch added a public attribute to nn.ModuleDict: add it to RESERVED_IDS.
    public = {name for name in dir(nn.ModuleDict()) if not name.startswith("_")}
    assert public <= RESERVED_IDS, sorted(public - RESERVED_IDS)


@pytest.mark.parametrize("reserved", sorted(RESERVED_IDS))
def test_every_reserved_id_is_refused_while_validating(reserved):
    with pytest.raises(hrgraph.SpecError, match="cannot be a node id") as info:
        hrgraph.load_spec(chain("stem", reserved, "head"))
    assert info.value.node == reserved


@pytest.mark.parametrize("ids", [("class", "None", "lambda"), ("True", "def", "x"), ("self", "torch", "nodes", "residual", "projections")])
def test_python_keywords_and_generated_names_compile_under_their_own_ids(ids):
    edges = [(ids[0], ids[-1])] + ([(ids[0], ids[-2])] if len(ids) > 3 else [])
    spec = chain(*ids, "head", edges=edges, residuals={"entry": "pre_activation"})
    for edge in spec["edges"]:
        edge["projection"] = "conv"  # a module, so a state_dict key
    model = hrgraph.compile_model(spec)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 3)
    keys = {k.split(".")[1] for k in model.state_dict() if k.startswith("nodes.")}
    assert keys == {*ids, "head"}  # state_dict keys are the ids, unescaped
    assert f"projections.{ids[0]}__{ids[-1]}." in " ".join(model.state_dict())


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_state_dict_keys_of_every_spec_are_ids_and_from__to(path):
    spec = hrgraph.load_spec(path)
    model = hrgraph.compile_model(spec)
    prefixes = {".".join(k.split(".")[:2]) for k in model.state_dict()}
    # A module holds keys only if it has weights: an upsampling- or pooling-only projection has none.
    def has_state(table, name):
        return name in table and any(True for _ in table[name].state_dict())

    expected = {f"nodes.{n.id}" for n in spec.nodes if has_state(model.nodes, n.id)}
    expected |= {f"projections.{e.from_}__{e.to}" for e in spec.edges if has_state(model.projections, e.module_name)}
    expected |= {f"gates.{e.from_}__{e.to}" for e in spec.edges if e.gate != "none"}
    for node_id, merge in model.plan.merges.items():
        expected |= {f"inputs.{p.source}__{node_id}" for p in merge.inputs
                     if not p.identity and has_state(model.inputs, f"{p.source}__{node_id}")}
        expected |= {f"aggregates.{node_id}"} if merge.aggregate == "weighted" else set()
    assert prefixes == expected


def test_edge_module_names_are_injective():
    # Ids start with a letter and hold no "__": the last "__" of a name splits it.
    ids = ["a", "a_", "a_b", "b", "b_", "x1_", "a_b_"]
    names = {}
    for src, dst in itertools.permutations(ids, 2):
        edge = hrgraph.spec.Edge.model_validate({"from": src, "to": dst})
        assert edge.module_name not in names, (edge.key, names[edge.module_name])
        names[edge.module_name] = edge.key
        head, _, tail = edge.module_name.rpartition("__")
        assert (head, tail) == (src, dst)


def test_trailing_underscore_ids_compile_with_distinct_projections():
    spec = chain("a", "a_", "b", "head", edges=[("a_", "b"), ("a", "b")])
    spec["nodes"][2]["stride"] = 2  # both edges need a projection module
    model = hrgraph.compile_model(spec)
    assert set(model.projections) == {"a___b", "a__b"}
    from hrgraph.draw.render import to_dot

    dot = to_dot(hrgraph.load_spec(spec))
    assert dot.count("<b>a_-&gt;b</b>") == 1 and dot.count("<b>a-&gt;b</b>") == 1


def test_pre_activation_into_a_max_pooled_conv_compiles_and_matches_the_plan():
    spec = {
        "input": {"channels": 3, "height": 32, "width": 32},
        "residuals": {"entry": "pre_activation"},
        "nodes": [
            {"id": "stem", "kind": "conv", "channels": 8},
            {"id": "pooled", "kind": "conv", "channels": 16, "maxpool": True},
            {"id": "head", "kind": "classifier", "classes": 3},
        ],
        "edges": [{"from": "stem", "to": "pooled"}],
    }
    model = hrgraph.compile_model(spec).eval()
    plan = model.plan
    seen = {}
    model.nodes["pooled"].register_forward_hook(lambda m, args, out: seen.update(out=out.shape))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert tuple(seen["out"][1:]) == plan.nodes["pooled"].out_shape == (16, 16, 16)
    assert plan.projections["stem", "pooled"].out_shape == (16, 16, 16)


def test_max_pool_before_relu_gives_what_relu_before_max_pool_gives():
    torch.manual_seed(0)
    stem = hrgraph.compile_model(chain("stem", "head")).nodes["stem"]
    stem.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    x = torch.randn(2, 3, 16, 16)
    expected = stem.maxpool(stem.relu(stem.bn(stem.conv(x))))
    assert torch.equal(stem(x), expected)


def test_thousands_of_pre_activation_sums_into_one_node_compile():
    n = 3000
    nodes = [{"id": "stem", "kind": "conv", "channels": 2}]
    nodes += [{"id": f"n{i}", "kind": "pool", "kernel": 1} for i in range(n)]
    nodes.append({"id": "last", "kind": "basic", "channels": 2, "depth": 1})
    spec = {
        "input": {"channels": 2, "height": 4, "width": 4},
        "residuals": {"entry": "pre_activation"},
        "nodes": nodes,
        "edges": [{"from": f"n{i}", "to": "last"} for i in range(n)],
    }
    model = hrgraph.compile_model(spec)
    assert "residual += n2999" in model.code
    x = torch.randn(1, 2, 4, 4)
    assert model(x).shape == (1, 2, 4, 4)


def test_a_sum_of_several_terms_equals_the_blocks_own_arithmetic():
    spec = chain("stem", "s1", "s2", "s3", "head", edges=[("stem", "s3"), ("s1", "s3")], residuals={"entry": "pre_activation"})
    model = hrgraph.compile_model(spec).eval()
    assert "residual = stem + s1" in model.code and "del residual" in model.code
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        stem = model.nodes.stem(x)
        s1 = model.nodes.s1(stem)
        s2 = model.nodes.s2(s1)
        s3 = model.nodes.s3(s2, stem + s1)
        assert torch.allclose(model(x), model.nodes.head(s3))


def test_keywords_are_still_keywords():
    # The cases above rely on these being keywords in this Python.
    assert all(keyword.iskeyword(k) for k in ("class", "None", "lambda", "True", "def"))
