"""Edge patterns (hrgraph.spec.patterns): expansion, overrides, extends, located errors, validate --expand."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import hrgraph
from hrgraph.spec import patterns
from hrgraph.cli.main import main
from hrgraph.spec.patterns import recording

from .conftest import ROOT

HEAD = """\
input: {channels: 3, height: 32, width: 32}
nodes:
  - {id: stem, kind: conv, channels: 16}
  - {id: stage1, kind: basic, channels: 16}
  - {id: stage2, kind: basic, channels: 32, stride: 2}
  - {id: stage3, kind: basic, channels: 64, stride: 2}
  - {id: head, kind: classifier, classes: 10}
edges:
"""


def load(edges: str) -> hrgraph.Spec:
    return hrgraph.load_spec(HEAD + edges)


def names(spec: hrgraph.Spec) -> list[str]:
    return [e.name for e in spec.edges]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- HiResNet-18 in one line ---------------------------------------------------------


@pytest.fixture(scope="module")
def hiresnet_pattern(tmp_path_factory):
    # Next to resnet18.yaml, since a spec may extend only files under its own folder.
    folder = tmp_path_factory.mktemp("specs")
    (folder / "resnet18.yaml").write_text((ROOT / "specs" / "resnet18.yaml").read_text(encoding="utf-8"))
    text = 'extends: resnet18.yaml\nedges:\n  - {from: "*", to: "*", min_skip: 2}\n'
    path = write(folder, "hiresnet18-pattern.yaml", text)
    return hrgraph.load_spec(path)


def test_min_skip_2_gives_hiresnet18s_six_edges_by_target_then_source(hiresnet_pattern):
    explicit = hrgraph.load_spec("specs/hiresnet18.yaml")
    assert sorted(names(hiresnet_pattern)) == sorted(names(explicit))
    assert names(hiresnet_pattern) == [
        "stem->stage2", "stem->stage3", "stage1->stage3", "stem->stage4", "stage1->stage4", "stage2->stage4"
    ]


def test_hiresnet18_pattern_plans_the_same_projections_and_params(hiresnet_pattern):
    explicit = hrgraph.infer_shapes(hrgraph.load_spec("specs/hiresnet18.yaml"))
    plan = hrgraph.infer_shapes(hiresnet_pattern)
    assert plan.params == explicit.params
    assert set(plan.projections) == set(explicit.projections)
    for key, projection in explicit.projections.items():
        assert plan.projections[key].describe() == projection.describe()


def test_hiresnet18_pattern_compiles_to_the_same_state_dict(hiresnet_pattern):
    a = hrgraph.compile_model("specs/hiresnet18.yaml").state_dict()
    b = hrgraph.compile_model(hiresnet_pattern).state_dict()
    assert {k: tuple(v.shape) for k, v in a.items()} == {k: tuple(v.shape) for k, v in b.items()}
    assert sum(v.numel() for v in a.values()) == sum(v.numel() for v in b.values())


def test_resolved_pattern_spec_round_trips_as_plain_edges(hiresnet_pattern):
    again = hrgraph.load_spec(hiresnet_pattern.to_yaml())
    assert again == hiresnet_pattern
    assert "min_skip" not in hiresnet_pattern.to_yaml()


# -- semantics ---------------------------------------------------------------------------


def test_default_min_skip_is_one_forward_pairs_only():
    spec = load('  - {from: [stem, stage1], to: "stage*"}\n')
    # stage1 -> stage1 is a self pair and is skipped; nothing goes backwards.
    assert names(spec) == ["stem->stage1", "stem->stage2", "stage1->stage2", "stem->stage3", "stage1->stage3"]


def test_max_skip_bounds_the_distance():
    spec = load('  - {from: "*", to: "*", min_skip: 2, max_skip: 2}\n')
    assert names(spec) == ["stem->stage2", "stage1->stage3"]


def test_glob_characters_and_lists_on_both_ends():
    spec = load('  - {from: "st?ge[12]", to: [stage3, "stage2"]}\n')
    assert names(spec) == ["stage1->stage2", "stage1->stage3", "stage2->stage3"]


def test_a_glob_skips_the_classifier_silently():
    spec = load('  - {from: stage1, to: "*", min_skip: 2}\n')
    assert names(spec) == ["stage1->stage3"]  # stage1 -> head left out: a classifier takes no edges


def test_a_plainly_named_classifier_is_refused_at_the_pattern():
    with pytest.raises(hrgraph.GraphError) as info:
        hrgraph.infer_shapes(load('  - {from: [stage1], to: head, max_skip: 9}\n'))
    assert info.value.line == 9 and info.value.edge == "stage1->head"
    assert "cannot receive" in info.value.message


def test_options_are_copied_onto_every_edge():
    spec = load('  - {from: "*", to: stage3, min_skip: 2, pool: max, projection: conv, gate: scalar}\n')
    assert names(spec) == ["stem->stage3", "stage1->stage3"]
    assert {(e.pool, e.projection, e.gate) for e in spec.edges} == {("max", "conv", "scalar")}


def test_explicit_edge_overrides_the_pattern_before_or_after_it():
    for edges in (
        '  - {from: stem, to: stage2, pool: max}\n  - {from: "*", to: stage2}\n',
        '  - {from: "*", to: stage2}\n  - {from: stem, to: stage2, pool: max}\n',
    ):
        spec = load(edges)
        assert sorted(names(spec)) == ["stage1->stage2", "stem->stage2"]
        assert {e.name: e.pool for e in spec.edges}["stem->stage2"] == "max"


def test_later_pattern_wins_where_patterns_overlap():
    spec = load('  - {from: "*", to: "*", min_skip: 2, pool: max}\n  - {from: stem, to: "stage*", min_skip: 2}\n')
    pools = {e.name: e.pool for e in spec.edges}
    assert pools == {"stem->stage2": "avg", "stem->stage3": "avg", "stage1->stage3": "max"}
    # The pattern's edges stand where the pattern does: the overlap moved to the second one.
    assert names(spec) == ["stage1->stage3", "stem->stage2", "stem->stage3"]


def test_duplicate_explicit_edges_stay_an_error_next_to_a_pattern():
    with pytest.raises(hrgraph.GraphError, match="duplicate edge stem->stage2"):
        hrgraph.check_graph(
            load('  - {from: stem, to: stage2}\n  - {from: "*", to: stage2}\n  - {from: stem, to: stage2}\n')
        )


def test_expanded_edges_point_at_the_pattern():
    spec = load('  - {from: stem, to: stage1}\n  - from: "*"\n    to: "*"\n    min_skip: 2\n')
    lines = {e.name: spec.locate("edges", j).line for j, e in enumerate(spec.edges)}
    assert lines == {"stem->stage1": 9, "stem->stage2": 10, "stem->stage3": 10, "stage1->stage3": 10}
    assert spec.locate("edges", 1, "to").line == 11


def test_a_spec_without_patterns_is_the_same_object_data():
    # Nothing to expand: the raw data is used as read (golden files and fingerprints unchanged).
    text = (ROOT / "specs" / "hiresnet18.yaml").read_text(encoding="utf-8")
    assert hrgraph.load_spec("specs/hiresnet18.yaml").fingerprint == hrgraph.load_spec(
        text, base_dir=ROOT / "specs"
    ).fingerprint


def test_patterns_work_in_dicts():
    data = hrgraph.load_spec(HEAD + "  []\n").to_dict()
    data["edges"] = [{"from": "*", "to": "stage3", "min_skip": 3}]
    assert names(hrgraph.load_spec(data)) == ["stem->stage3"]


def test_too_many_edges_are_refused_before_they_are_built(monkeypatch):
    # The limit scaled down: the same check as for a "*" -> "*" over thousands of nodes.
    monkeypatch.setattr(patterns, "MAX_EXPANDED_EDGES", 3)
    assert len(load('  - {from: "*", to: "*", min_skip: 2}\n').edges) == 3
    with pytest.raises(hrgraph.GraphError, match="more than 3 edges") as info:
        load('  - {from: "*", to: "*"}\n')
    assert info.value.line == 9


@pytest.mark.parametrize(
    ("edges", "error", "fragment"),
    [
        ('  - {from: "*", to: "*", min_skip: 2, max_skip: true}\n', hrgraph.SpecError, "max_skip: expected an integer"),
        ('  - {from: [], to: "*"}\n', hrgraph.SpecError, "non-empty list"),
        ('  - {from: "*", min_skip: 2}\n', hrgraph.SpecError, "missing required key 'to'"),
        ('  - {from: "*", to: "*", pol: max}\n', hrgraph.SpecError, "did you mean 'pool'"),
        ('  - {from: [stem, "zz*"], to: stage3}\n', hrgraph.GraphError, "'zz*' matches no node"),
    ],
)
def test_bad_patterns_are_located(edges, error, fragment):
    with pytest.raises(error) as info:
        load(edges)
    assert type(info.value) is error
    assert fragment in info.value.message
    assert info.value.line == 9


def test_empty_expansion_says_what_each_end_matched():
    with pytest.raises(hrgraph.GraphError) as info:
        load('  - {from: stage3, to: "*"}\n')
    message = info.value.message
    assert "from matched stage3 (3)" in message
    assert "to matched stem (0)" in message
    assert "left out: targets that accept no edges (classifier: head (4))" in message


# -- extends -----------------------------------------------------------------------------

PARENT = HEAD + '  - {from: "*", to: "*", min_skip: 2}\n'


def test_remove_edges_names_an_edge_of_a_parents_pattern(tmp_path):
    write(tmp_path, "parent.yaml", PARENT)
    child = write(tmp_path, "child.yaml", 'extends: parent.yaml\nremove_edges: ["stem:stage3"]\n')
    assert names(hrgraph.load_spec(child)) == ["stem->stage2", "stage1->stage3"]


def test_parent_patterns_expand_against_the_parents_nodes(tmp_path):
    write(tmp_path, "parent.yaml", PARENT)
    # A node inserted by the child gets no edge from the parent's pattern.
    nodes = (
        "nodes:\n  - {id: stage3, kind: basic, channels: 64, stride: 2}\n"
        "  - {id: extra, kind: basic, channels: 64}\n"
    )
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\n" + nodes)
    spec = hrgraph.load_spec(child)
    assert spec.node_ids[-2:] == ["extra", "head"]
    assert names(spec) == ["stem->stage2", "stem->stage3", "stage1->stage3"]


def test_child_pattern_replaces_parent_edges_and_yields_to_child_explicit_edges(tmp_path):
    write(tmp_path, "parent.yaml", HEAD + "  - {from: stem, to: stage2, pool: max}\n  - {from: stem, to: stage3}\n")
    child = write(
        tmp_path,
        "child.yaml",
        'extends: parent.yaml\nedges:\n  - {from: "*", to: "*", min_skip: 2, projection: conv}\n'
        "  - {from: stem, to: stage3, pool: max}\n",
    )
    spec = hrgraph.load_spec(child)
    edges = {e.name: (e.pool, e.projection) for e in spec.edges}
    assert edges == {
        "stem->stage2": ("avg", "conv"),  # the child's pattern replaced the parent's edge
        "stem->stage3": ("max", "auto"),  # the child's explicit edge beat the child's pattern
        "stage1->stage3": ("avg", "conv"),
    }


# -- validate --expand -------------------------------------------------------------------


def test_validate_expand_shows_each_pattern_its_edges_and_overrides(tmp_path):
    edges = '  - {from: "*", to: "*", min_skip: 2}\n  - {from: stem, to: stage3, pool: max}\n'
    spec = write(tmp_path, "net.yaml", HEAD + edges)
    result = CliRunner().invoke(main, ["validate", "--expand", "--yaml", str(spec)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ok {spec}: 5 nodes, 3 edges")
    assert lines[1] == f"{spec}:9:5: pattern {{from: '*', to: '*', min_skip: 2}}: 3 edges, 1 overridden"
    assert lines[2:5] == ["  stem->stage2", f"  stem->stage3  overridden by {spec}:10:5", "  stage1->stage3"]
    assert lines[5:] == [
        "edges:",
        "- {from: stem, to: stage2}",
        "- {from: stage1, to: stage3}",
        "- {from: stem, to: stage3, pool: max}",
    ]


def test_validate_expand_names_removed_edges_and_specs_without_patterns(tmp_path):
    write(tmp_path, "parent.yaml", PARENT)
    child = write(tmp_path, "child.yaml", 'extends: parent.yaml\nremove_edges: ["stem:stage3"]\n')
    result = CliRunner().invoke(main, ["validate", "--expand", str(child), "specs/resnet18.yaml"])
    assert result.exit_code == 0, result.output
    assert "  stem->stage3  removed" in result.stdout
    assert "3 edges, 1 removed" in result.stdout
    assert result.stdout.splitlines()[-1] == "no edge patterns"


def test_recording_collects_parent_and_child_patterns(tmp_path):
    write(tmp_path, "parent.yaml", PARENT)
    child = write(tmp_path, "child.yaml", 'extends: parent.yaml\nedges:\n  - {from: [stem], to: stage1, pool: max}\n')
    with recording() as expansions:
        hrgraph.load_spec(child)
    assert [(Path(e.mark.path).name, e.mark.line) for e in expansions] == [("parent.yaml", 9), ("child.yaml", 3)]
    assert expansions[1].edges == (("stem", "stage1"),)
