"""The spec language: loading from every source, extends, round trips, schema, imports, messages."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import hrgraph
from hrgraph.errors import did_you_mean
from hrgraph.generate import random_dag_spec
from hrgraph.spec import parse_edge_ref

from .conftest import SPECS, spec_id

PARENT = """\
name: parent
description: the parent
input: {channels: 3, height: 32, width: 32}
residuals: {entry: pre_activation}
nodes:
  - {id: stem, kind: conv, channels: 16}
  - {id: stage1, kind: basic, channels: 16}
  - {id: stage2, kind: basic, channels: 32, stride: 2}
  - {id: head, kind: classifier, classes: 10}
edges:
  - {from: stem, to: stage2}
  - {from: stem, to: stage1, projection: conv}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- loading from every source ---------------------------------------------------


def test_load_from_path_text_dict_and_spec(tmp_path):
    path = write(tmp_path, "parent.yaml", PARENT)
    from_str = hrgraph.load_spec(str(path))
    from_path = hrgraph.load_spec(path)
    from_text = hrgraph.load_spec(PARENT)
    from_dict = hrgraph.load_spec(yaml.safe_load(PARENT))
    assert from_str == from_path == from_text == from_dict
    assert from_str.path == str(path) and from_text.path is None and from_dict.path is None
    assert hrgraph.load_spec(from_text) is from_text
    assert from_text.node_ids == ["stem", "stage1", "stage2", "head"]
    assert [e.name for e in from_text.edges] == ["stem->stage2", "stem->stage1"]


def test_positions_are_kept_for_text_and_files(tmp_path):
    path = write(tmp_path, "parent.yaml", PARENT)
    for spec, where in ((hrgraph.load_spec(PARENT), None), (hrgraph.load_spec(path), str(path))):
        mark = spec.locate("edges", 1, "to")
        assert (mark.path, mark.line) == (where, 12)
    assert hrgraph.load_spec(yaml.safe_load(PARENT)).locate("edges", 1) is None


def test_load_rejects_other_types():
    with pytest.raises(TypeError):
        hrgraph.load_spec(42)


def test_text_extends_resolves_against_base_dir(tmp_path):
    write(tmp_path, "parent.yaml", PARENT)
    child = "extends: parent.yaml\nname: child\n"
    assert hrgraph.load_spec(child, base_dir=tmp_path).node_ids == ["stem", "stage1", "stage2", "head"]
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(child, base_dir=tmp_path / "elsewhere")
    assert info.value.line == 1


# -- extends ------------------------------------------------------------------------


@pytest.fixture
def family(tmp_path):
    write(tmp_path, "base/parent.yaml", PARENT)
    child = write(
        tmp_path,
        "child.yaml",
        """\
        extends: base/parent.yaml
        name: child
        input: {channels: 1, height: 32, width: 32}
        nodes:
          - {id: stage1, kind: basic, channels: 24}
          - {id: extra, kind: plain, channels: 24, depth: 1}
        remove_edges: ["stem:stage1"]
        edges:
          - {from: stem, to: stage2, pool: max}
          - {from: stage1, to: stage2}
        """,
    )
    return hrgraph.load_spec(child)


def test_extends_replaces_nodes_by_id_in_place(family):
    assert family.node("stage1").channels == 24
    assert family.node("stage1").kind == "basic"


def test_extends_inserts_new_nodes_after_the_preceding_child_node(family):
    assert family.node_ids == ["stem", "stage1", "extra", "stage2", "head"]
    # So the main path now runs stage1 -> extra -> stage2.
    assert family.main_input(family.node_index["stage2"]) == "extra"


def test_extends_edges_replaced_added_and_removed(family):
    edges = {e.name: e for e in family.edges}
    assert list(edges) == ["stem->stage2", "stage1->stage2"]
    assert edges["stem->stage2"].pool == "max"  # same ends: the child's edge replaces the parent's


def test_extends_other_keys_replace_wholesale(family):
    assert family.name == "child"
    assert family.input.channels == 1
    assert family.description == "the parent"  # not given by the child: inherited
    assert family.residuals.entry == "pre_activation"


def test_extends_chain_resolves_paths_relative_to_each_file(tmp_path):
    write(tmp_path, "a/grand.yaml", PARENT)
    write(tmp_path, "a/b/parent.yaml", "extends: ../grand.yaml\nnodes:\n  - {id: stage2, kind: basic, channels: 48, stride: 2}\n")
    child = write(tmp_path, "child.yaml", "extends: a/b/parent.yaml\nname: grandchild\n")
    spec = hrgraph.load_spec(child)
    assert spec.name == "grandchild"
    assert spec.node("stage2").channels == 48
    assert hrgraph.infer_shapes(spec).nodes["stage2"].out_shape == (48, 16, 16)


def test_new_node_before_any_known_id_goes_first(tmp_path):
    write(tmp_path, "parent.yaml", PARENT)
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nnodes:\n  - {id: pre, kind: conv, channels: 8}\n")
    assert hrgraph.load_spec(child).node_ids[:2] == ["pre", "stem"]


def test_duplicate_edge_in_a_child_replaces_instead_of_failing(tmp_path):
    write(tmp_path, "parent.yaml", PARENT)
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nedges:\n  - {from: stem, to: stage1, projection: auto}\n")
    spec = hrgraph.load_spec(child)
    assert [(e.name, e.projection) for e in spec.edges] == [("stem->stage2", "auto"), ("stem->stage1", "auto")]


def test_errors_point_into_the_file_at_fault(tmp_path):
    parent = write(tmp_path, "parent.yaml", PARENT.replace("classes: 10", "classes: 0"))
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nedges:\n  - {from: stem, to: stage9}\n")
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(child)
    assert (info.value.path, info.value.line, info.value.node) == (str(parent), 9, "head")

    write(tmp_path, "parent.yaml", PARENT)
    with pytest.raises(hrgraph.UnknownNodeError) as info:
        hrgraph.infer_shapes(hrgraph.load_spec(child))
    assert (info.value.path, info.value.line, info.value.edge) == (str(child), 3, "stem->stage9")


def test_real_specs_extend_resnet18():
    plain, hires = hrgraph.load_spec("specs/resnet18.yaml"), hrgraph.load_spec("specs/hiresnet18.yaml")
    assert hires.nodes == plain.nodes
    assert len(hires.edges) == 6 and not plain.edges
    imagenet = hrgraph.load_spec("specs/resnet18-imagenet.yaml")
    assert imagenet.node_ids == plain.node_ids
    assert imagenet.node("stem").kernel == 7


# -- round trips ----------------------------------------------------------------------


ROUND_TRIP = [pytest.param(p, id=spec_id(p)) for p in SPECS] + [
    pytest.param(random_dag_spec(9, seed=3, kinds=("basic", "plain", "resnext"), merge_concat=0.4), id="random-dag")
]


@pytest.mark.parametrize("source", ROUND_TRIP)
def test_to_yaml_round_trips(source):
    spec = hrgraph.load_spec(source)
    again = hrgraph.load_spec(spec.to_yaml())
    assert again == spec
    assert again.fingerprint == spec.fingerprint
    assert "extends" not in spec.to_yaml()
    assert hrgraph.load_spec(spec.to_dict(minimal=False)) == spec


def test_fingerprint_changes_with_content():
    spec = hrgraph.load_spec("specs/hiresnet18.yaml")
    assert spec.replace(edges=spec.edges[:-1]).fingerprint != spec.fingerprint
    assert spec.replace(name="other").fingerprint != spec.fingerprint
    assert spec.replace(edges=list(spec.edges)) == spec


def test_edge_from_alias_and_refs():
    edge = hrgraph.Edge.model_validate({"from": "stem", "to": "stage4"})
    assert (edge.key, edge.name, edge.module_name) == (("stem", "stage4"), "stem->stage4", "stem__stage4")
    assert edge.model_dump(by_alias=True)["from"] == "stem"
    assert parse_edge_ref(" a -> b ") == ("a", "b")
    for bad in ("ab", "a:", ":b", ""):
        with pytest.raises(ValueError):
            parse_edge_ref(bad)


# -- schema -----------------------------------------------------------------------------


def test_json_schema_covers_every_kind_and_field():
    schema = hrgraph.spec_json_schema()
    mapping = schema["$defs"]["Node"]["discriminator"]["mapping"]
    assert set(mapping) == set(hrgraph.KINDS)
    for kind in hrgraph.KINDS:
        cls = hrgraph.KINDS.get(kind)
        props = schema["$defs"][cls.__name__]["properties"]
        assert set(cls.model_fields) <= set(props), kind
        assert props["kind"]["const"] == kind
    assert {"extends", "remove_edges", "nodes", "edges", "input", "residuals"} <= set(schema["properties"])
    assert schema["else"]["required"] == ["input", "nodes"]
    assert schema["$defs"]["Edge"]["additionalProperties"] is False


# -- imports: user blocks -----------------------------------------------------------------

USER_MODULE = '''
from typing import Literal

from torch import nn

import hrgraph


class Scale(hrgraph.Block):
    kind: Literal["test_user_scale"]
    factor: float = 2.0


class ScaleModule(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


hrgraph.register_block(Scale, lambda block, in_shape: ScaleModule(block.factor))
'''

USER_SPEC = """\
name: user-block
imports: [{module}]
input: {{channels: 3, height: 16, width: 16}}
nodes:
  - {{id: stem, kind: conv, channels: 8}}
  - {{id: scale, kind: test_user_scale, factor: 0.5}}
  - {{id: head, kind: classifier, classes: 3}}
edges:
  - {{from: stem, to: scale, projection: conv}}
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = "hrgraph_test_user_blocks"
    write(tmp_path, f"{name}.py", USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    # Leave the registries as they were for the rest of the session.
    from hrgraph.build.blocks import BUILDERS

    sys.modules.pop(name, None)
    hrgraph.KINDS._kinds.pop("test_user_scale", None)
    BUILDERS._builders.pop("test_user_scale", None)


def test_imports_refused_without_allow_imports(user_module, tmp_path):
    path = write(tmp_path, "user.yaml", USER_SPEC.format(module=user_module))
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert user_module not in sys.modules  # refused before running any of its code
    assert "test_user_scale" not in hrgraph.KINDS


def test_imports_with_allow_imports_register_a_kind_that_compiles(user_module, tmp_path):
    torch = pytest.importorskip("torch")
    path = write(tmp_path, "user.yaml", USER_SPEC.format(module=user_module))
    spec = hrgraph.load_spec(path, allow_imports=True)
    assert spec.node("scale").factor == 0.5
    model = hrgraph.compile_model(path, allow_imports=True)
    assert type(model.nodes["scale"]).__name__ == "ScaleModule"
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_failing_import_is_a_located_spec_error(tmp_path):
    path = write(tmp_path, "bad.yaml", USER_SPEC.format(module="json, no_such_module_for_hrgraph"))
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(path, allow_imports=True)
    # Points at the list item that failed, not at the first.
    assert (info.value.line, info.value.column) == (2, 17)
    assert "cannot import 'no_such_module_for_hrgraph'" in info.value.message


# -- did you mean ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment, line",
    [
        ("input: {channels: 3, height: 8, width: 8}\nnods: []\n", "unknown key 'nods' (did you mean 'nodes'?)", 2),
        ("input: {channels: 3, hight: 8, width: 8}\nnodes: []\n", "unknown key 'hight' (did you mean 'height'?)", 1),
        ("input: {channels: 3, height: 8, width: 8}\nextend: x.yaml\nnodes: []\n", "(did you mean 'extends'?)", 2),
        ("input: {channels: 3, height: 8, width: 8}\nnodes:\n  - {id: a, kind: cnv, channels: 4}\n",
         "unknown block kind 'cnv' (did you mean 'conv'?)", 3),
        ("input: {channels: 3, height: 8, width: 8}\nnodes:\n  - {id: a, kind: conv, channels: 4, strides: 2}\n",
         "unknown key 'strides' (did you mean 'stride'?)", 3),
        ("input: {channels: 3, height: 8, width: 8}\nresiduals: {entrance: output}\nnodes: []\n",
         "unknown key 'entrance' (did you mean 'entry'?)", 2),
    ],
)
def test_did_you_mean(text, fragment, line):
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(text)
    assert fragment in info.value.message
    assert info.value.line == line


def test_unknown_node_suggestion():
    text = (
        "input: {channels: 3, height: 8, width: 8}\n"
        "nodes:\n  - {id: stem, kind: conv, channels: 4}\n  - {id: stage4, kind: basic, channels: 4}\n"
        "  - {id: head, kind: classifier, classes: 2}\n"
        "edges:\n  - {from: stem, to: stage9}\n"
    )
    with pytest.raises(hrgraph.UnknownNodeError) as info:
        hrgraph.infer_shapes(hrgraph.load_spec(text))
    assert str(info.value) == "<spec>:7:18: edge stem->stage9: unknown node 'stage9' (did you mean 'stage4'?)"


def test_did_you_mean_helper():
    assert did_you_mean("chanels", ["channels", "kernel"]) == " (did you mean 'channels'?)"
    assert did_you_mean("xyz", ["channels"]) == ""


def test_all_errors_are_reported_not_only_the_first():
    text = "input: {channels: 0, height: 8, width: 8}\nnodes:\n  - {id: a, kind: conv, channels: -1}\n"
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(text)
    lines = [info.value.line] + [other.line for other in info.value.others]
    assert sorted(lines) == [1, 3]


# -- YAML features ----------------------------------------------------------------------------


def test_merge_keys_fill_in_and_written_keys_override():
    text = textwrap.dedent(
        """\
        input: {channels: 3, height: 32, width: 32}
        nodes:
          - {id: stem, kind: conv, channels: 16}
          - &unit {id: stage1, kind: basic, channels: 16, depth: 1}
          - {<<: *unit, id: stage2, stride: 2}
          - {id: head, kind: classifier, classes: 10}
        """
    )
    spec = hrgraph.load_spec(text)
    assert spec.node_ids == ["stem", "stage1", "stage2", "head"]
    assert (spec.node("stage2").depth, spec.node("stage2").stride) == (1, 2)
    # A merged value is located where it is written (the anchor), an overriding one where it overrides.
    assert spec.locate("nodes", 2, "depth").line == 4
    assert spec.locate("nodes", 2, "id").line == 5
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(text.replace("stride: 2}", "stride: 2, stride: 1}"))
    assert info.value.line == 5 and "duplicate key 'stride'" in info.value.message


def test_yaml_examples_in_the_reference_load():
    # docs/spec.md shows specs in ```yaml blocks; the complete ones must be valid.
    doc = (Path(__file__).resolve().parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    complete = [b for b in blocks if "input:" in b and "nodes:" in b]
    assert complete
    for block in complete:
        hrgraph.infer_shapes(hrgraph.load_spec(block))
