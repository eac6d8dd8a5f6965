"""Structural ablation (hrgraph.edit.ablate, sweeps, the CLI) and run-time edge masking (HrNet.set_edges)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import hrgraph
from hrgraph import GraphError, UnknownNodeError, ablate, count_params, load_spec, select_edges, sweep
from hrgraph.edit.ablate import SWEEPS, VARIANTS
from hrgraph.cli.main import main

HIRESNET = "specs/hiresnet18.yaml"


@pytest.fixture(scope="module")
def hires():
    return load_spec(HIRESNET)


def names(spec):
    return {e.name for e in spec.edges}


# -- the Table 2 variants ------------------------------------------------------------


def test_committed_out_variant_has_the_edges_from_residual_blocks_into_stage4():
    # The paper's HiResNet-Out: "residuals from all residual blocks to the last
    # one"; the stem is a convolution, not a residual block.
    spec = load_spec("specs/hiresnet18-out.yaml")
    assert names(spec) == {"stage1->stage4", "stage2->stage4"}
    assert spec.name == "hiresnet18-out"


def test_committed_out_all_variant_has_every_edge_into_stage4():
    spec = load_spec("specs/hiresnet18-out-all.yaml")
    assert names(spec) == {"stem->stage4", "stage1->stage4", "stage2->stage4"}
    assert spec.name == "hiresnet18-out-all"


def test_committed_in_variant_has_exactly_the_edges_leaving_the_stem():
    spec = load_spec("specs/hiresnet18-in.yaml")
    assert names(spec) == {"stem->stage2", "stem->stage3", "stem->stage4"}


def test_committed_single_edge_specs_cover_every_hierarchical_residual(hires):
    kept = [names(load_spec(f"specs/hiresnet18-only-{e.from_}-{e.to}.yaml")) for e in hires.edges]
    assert kept == [{e.name} for e in hires.edges]


def test_variants_are_defined_by_position_not_by_node_ids():
    # The same variants on a spec with other ids: "in" follows the first node,
    # "out" the last node that accepts edges (the classifier does not), from
    # any node but the first; "out-all" from every node.
    spec = load_spec(
        {
            "input": {"channels": 3, "height": 16, "width": 16},
            "nodes": [
                {"id": "a", "kind": "conv", "channels": 8},
                {"id": "b", "kind": "basic", "channels": 8, "depth": 1},
                {"id": "c", "kind": "basic", "channels": 16, "depth": 1, "stride": 2},
                {"id": "d", "kind": "basic", "channels": 16, "depth": 1},
                {"id": "fc", "kind": "classifier", "classes": 3},
            ],
            "edges": [{"from": "a", "to": "c"}, {"from": "a", "to": "d"}, {"from": "b", "to": "d"}],
        }
    )
    assert names(ablate(spec, variant="in")) == {"a->c", "a->d"}
    assert names(ablate(spec, variant="out")) == {"b->d"}
    assert names(ablate(spec, variant="out-all")) == {"a->d", "b->d"}


# -- selectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("stem:stage4", {"stem->stage4"}),
        ("stem->stage4", {"stem->stage4"}),
        (" stem : stage4 ", {"stem->stage4"}),
        ("stem:*", {"stem->stage2", "stem->stage3", "stem->stage4"}),
        ("*:stage4", {"stem->stage4", "stage1->stage4", "stage2->stage4"}),
        ("stage?:stage[34]", {"stage1->stage3", "stage1->stage4", "stage2->stage4"}),
        ("*:*", {"stem->stage2", "stem->stage3", "stem->stage4", "stage1->stage3", "stage1->stage4", "stage2->stage4"}),
        ("*", {"stem->stage2", "stem->stage3", "stem->stage4", "stage1->stage3", "stage1->stage4", "stage2->stage4"}),
    ],
)
def test_selectors(hires, selector, expected):
    assert {e.name for e in select_edges(hires, selector)} == expected


def test_selected_edges_keep_spec_order(hires):
    chosen = select_edges(hires, ["stage2:stage4", "stem:stage2"])
    assert [e.name for e in chosen] == ["stem->stage2", "stage2->stage4"]


def test_dropping_a_missing_edge_names_it_and_lists_the_existing_ones(hires):
    with pytest.raises(GraphError, match=r"no edge stem:stage1 .*did you mean 'stem:stage4'") as info:
        ablate(hires, drop=["stem:stage1"])
    err = info.value
    assert err.edge == "stem->stage1"
    assert err.path == HIRESNET
    assert all(f"{e.from_}:{e.to}" in err.message for e in hires.edges)


def test_unknown_node_in_a_selector_suggests_the_closest_id(hires):
    with pytest.raises(UnknownNodeError, match=r"unknown node 'stage9' \(did you mean 'stage4'\?\)"):
        ablate(hires, drop="stem:stage9")


@pytest.mark.parametrize("selector", ["head:*", "stage4:*"])
def test_a_pattern_matching_nothing_is_an_error(hires, selector):
    with pytest.raises(GraphError, match="matches no edge"):
        select_edges(hires, selector)


@pytest.mark.parametrize("selector", ["stem", "stem:", ":stage4", "all", 3])
def test_malformed_selectors_are_refused(hires, selector):
    with pytest.raises(GraphError, match="not of the form 'from:to'"):
        select_edges(hires, [selector])


def test_exactly_one_of_drop_keep_variant(hires):
    with pytest.raises(ValueError, match="exactly one"):
        ablate(hires, drop=["stem:stage4"], keep=["stem:stage2"])
    with pytest.raises(ValueError, match="exactly one"):
        ablate(hires)


def test_unknown_variant_suggests_a_known_one(hires):
    with pytest.raises(ValueError, match=r"unknown variant 'ot' \(did you mean 'out'\?\)"):
        ablate(hires, variant="ot")


def test_a_variant_with_no_edge_is_refused():
    with pytest.raises(GraphError, match="variant 'in' .* keeps no edge"):
        ablate(load_spec("specs/resnet18.yaml"), variant="in")


# -- derived specs -------------------------------------------------------------------------


def test_drop_and_keep_are_complements(hires):
    dropped = ablate(hires, drop=["*:stage4"])
    kept = ablate(hires, keep=["*:stage4"])
    assert names(dropped) | names(kept) == names(hires)
    assert not names(dropped) & names(kept)
    assert dropped.nodes == hires.nodes


def test_derived_names_and_descriptions(hires):
    one = ablate(hires, drop="stem:stage4")
    assert one.name == "hiresnet18-no-stem-stage4"
    assert "removes stem->stage4" in one.description
    assert ablate(hires, keep="stage2:stage4").name == "hiresnet18-only-stage2-stage4"
    assert ablate(hires, drop="*:*").name == "hiresnet18-no-edges"
    assert ablate(hires, drop=["stem:stage4", "stage1:stage4"]).name == "hiresnet18-no-stem-stage4+stage1-stage4"
    assert ablate(hires, drop="stem:stage4", name="mine").name == "mine"


def test_ablated_spec_round_trips_through_yaml(hires):
    spec = ablate(hires, variant="out")
    again = load_spec(spec.to_yaml())
    assert again.fingerprint == spec.fingerprint


def test_dropping_every_edge_gives_resnet18_exactly(hires):
    ablated = ablate(hires, drop="*:*")
    resnet = load_spec("specs/resnet18.yaml")
    assert not ablated.edges
    assert count_params(ablated) == count_params(resnet)
    assert ablated.nodes == resnet.nodes


def test_removing_an_edge_that_feeds_a_branch_is_refused():
    # "side" reaches the head only through its edge: without it, it is dead.
    spec = load_spec(
        {
            "input": {"channels": 3, "height": 8, "width": 8},
            "nodes": [
                {"id": "stem", "kind": "conv", "channels": 8},
                {"id": "side", "kind": "conv", "channels": 8, "input": "stem"},
                {"id": "main", "kind": "conv", "channels": 8, "input": "stem"},
                {"id": "head", "kind": "classifier", "classes": 2},
            ],
            "edges": [{"from": "side", "to": "main"}],
        }
    )
    with pytest.raises(GraphError, match="leaves an invalid graph"):
        ablate(spec, drop="side:main")


# -- sweeps ---------------------------------------------------------------------------------


def test_single_sweep_keeps_one_edge_each(hires):
    specs = sweep(hires, "single")
    assert [names(s) for s in specs] == [{e.name} for e in hires.edges]


def test_leave_one_out_removes_one_edge_each(hires):
    specs = sweep(hires, "leave-one-out")
    assert [names(hires) - names(s) for s in specs] == [{e.name} for e in hires.edges]
    assert len({s.name for s in specs}) == len(hires.edges)


def test_powerset_gives_every_subset_once(hires):
    specs = sweep(hires, "powerset")
    subsets = {frozenset(names(s)) for s in specs}
    assert len(specs) == len(subsets) == 2 ** len(hires.edges)
    assert len({s.name for s in specs}) == len(specs)


def test_powerset_over_some_edges_keeps_the_others(hires):
    specs = sweep(hires, "powerset", over="*:stage4")
    fixed = names(hires) - {"stem->stage4", "stage1->stage4", "stage2->stage4"}
    assert len(specs) == 8
    assert all(fixed <= names(s) for s in specs)


def test_powerset_is_refused_above_the_limit_which_can_be_raised(hires):
    with pytest.raises(ValueError, match="64 specs, above max_variants=63"):
        sweep(hires, "powerset", max_variants=63)
    assert len(sweep(hires, "powerset", max_variants=64)) == 64


def test_sweeping_a_spec_without_edges_is_an_error():
    with pytest.raises(GraphError, match="no edges to sweep"):
        sweep(load_spec("specs/resnet18.yaml"), "single")


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_choices_are_the_librarys():
    params = {p.name: p for p in main.commands["ablate"].params}
    assert list(params["variant"].type.choices) == list(VARIANTS)
    assert tuple(params["sweep"].type.choices) == SWEEPS


def test_cli_drop_writes_a_loadable_spec_with_a_header(tmp_path):
    out = tmp_path / "no.yaml"
    result = CliRunner().invoke(main, ["ablate", HIRESNET, "--drop", "stem:stage4,stage1:stage4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# Generated by `hrgraph ablate specs/hiresnet18.yaml --drop stem:stage4 --drop stage1:stage4")
    assert names(load_spec(out)) == names(load_spec(HIRESNET)) - {"stem->stage4", "stage1->stage4"}


def test_cli_variant_to_stdout():
    result = CliRunner().invoke(main, ["ablate", HIRESNET, "--variant", "out"])
    assert result.exit_code == 0, result.output
    body = result.stdout.split("\n", 2)[2]  # after the two header lines
    assert names(load_spec(body)) == {"stage1->stage4", "stage2->stage4"}


def test_cli_sweep_writes_one_file_per_variant_and_an_index(tmp_path):
    result = CliRunner().invoke(main, ["ablate", HIRESNET, "--sweep", "leave-one-out", "-o", str(tmp_path / "loo")])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "loo" / "hiresnet18-leave-one-out.index.json").read_text())
    files = sorted(p.name for p in (tmp_path / "loo").glob("*.yaml"))
    assert sorted(v["file"] for v in index["variants"]) == files
    for variant in index["variants"]:
        spec = load_spec(tmp_path / "loo" / variant["file"])
        assert [e.name for e in spec.edges] == variant["kept"]
        assert count_params(spec) == variant["params"]
        assert variant["file"] == f"hiresnet18-no-{variant['removed'][0].replace('->', '-')}.yaml"


def test_cli_missing_edge_exits_1_with_the_list():
    result = CliRunner().invoke(main, ["ablate", HIRESNET, "--drop", "stem:stage1"])
    assert result.exit_code == 1
    assert "no edge stem:stage1" in result.stderr and "stage2:stage4" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--drop", "stem:stage4", "--variant", "in"],
        [],
        ["--sweep", "single"],  # needs -o
        ["--drop", "stem:stage4", "--over", "stem:*"],
    ],
)
def test_cli_misuse_exits_2(args):
    result = CliRunner().invoke(main, ["ablate", HIRESNET, *args])
    assert result.exit_code == 2, result.output


# -- run-time masking vs structural ablation ------------------------------------------------------


@pytest.fixture(scope="module")
def trained_like():
    """HiResNet-18 with random weights and non-trivial BN statistics, in eval mode."""
    torch.manual_seed(0)
    model = hrgraph.compile_model(HIRESNET)
    with torch.no_grad():  # a few training-mode passes give the BNs real running statistics
        model.train()
        for _ in range(2):
            model(torch.randn(8, 3, 32, 32))
    return model.eval()


@pytest.fixture(scope="module")
def batch():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _structural(spec, state_dict):
    model = hrgraph.compile_model(spec).eval()
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    assert not missing, missing
    # Only the removed edges' projections are left over.
    assert all(k.startswith("projections.") for k in unexpected)
    return model


@pytest.mark.parametrize("drop", [["stem:stage4"], ["*:stage4"], ["*:*"]])
def test_disabling_edges_at_run_time_equals_structural_ablation(trained_like, batch, drop):
    model = trained_like
    spec = ablate(model.spec, drop=drop)
    disabled = [e.name for e in model.spec.edges if e not in spec.edges]
    keys = list(model.state_dict())
    with torch.no_grad():
        full = model(batch)
        masked = model.set_edges(disabled=disabled)(batch)
        structural = _structural(spec, model.state_dict())(batch)
        model.set_edges()
        restored = model(batch)
    assert list(model.state_dict()) == keys  # masking changes no parameter or key
    assert not torch.allclose(full, masked, atol=1e-5)  # the edges do contribute
    assert torch.allclose(masked, structural, atol=1e-5)
    assert torch.equal(full, restored)


def test_no_edges_with_hiresnet_weights_is_resnet18(trained_like, batch):
    ablated = ablate(trained_like.spec, drop="*:*")
    resnet = load_spec("specs/resnet18.yaml")
    a = _structural(ablated, trained_like.state_dict())
    b = _structural(resnet, trained_like.state_dict())
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters()) == count_params(resnet)
    with torch.no_grad():
        assert torch.equal(a(batch), b(batch))


def test_set_edges_refuses_unknown_edges(trained_like):
    with pytest.raises(hrgraph.GraphError, match="no edge stem:stage1") as info:
        trained_like.set_edges(disabled=["stem:stage1"])
    assert info.value.edge == "stem->stage1"
    assert trained_like.disabled_edges == []
    with pytest.raises(hrgraph.UnknownNodeError, match="stage9"):
        trained_like.set_edges(disabled=["V1:stage9"])


def test_set_edges_takes_what_select_edges_returns_and_patterns(trained_like):
    """Issue 20.6: the documented way (expand a pattern with select_edges) must be accepted."""
    selected = hrgraph.select_edges(trained_like.spec, "*:stage4")
    assert trained_like.set_edges(disabled=selected).disabled_edges == [e.name for e in selected]
    assert trained_like.set_edges(disabled=["*:stage4"]).disabled_edges == [e.name for e in selected]
    assert trained_like.set_edges(disabled="stem:*").disabled_edges == [
        e.name for e in trained_like.spec.edges if e.from_ == "stem"]
    kept = trained_like.set_edges(enabled=selected[:1]).disabled_edges
    assert kept == [e.name for e in trained_like.spec.edges if e != selected[0]]
    with pytest.raises(hrgraph.GraphError, match="matches no edge"):
        trained_like.set_edges(disabled=["stage4:*"])
    trained_like.set_edges()


def test_set_edges_refuses_concat_edges_naming_them():
    spec = hrgraph.load_spec({
        "input": {"channels": 3, "height": 8, "width": 8},
        "nodes": [{"id": "a", "kind": "conv", "channels": 4}, {"id": "b", "kind": "conv", "channels": 4},
                  {"id": "c", "kind": "conv", "channels": 4}, {"id": "head", "kind": "classifier", "classes": 2}],
        "edges": [{"from": "a", "to": "c", "merge": "concat"}],
    })
    model = hrgraph.compile_model(spec)
    with pytest.raises(hrgraph.GraphError, match="concat") as info:
        model.set_edges(disabled=["a:c"])
    assert info.value.edge == "a->c" and model.disabled_edges == []


CONCAT = """\
name: dense
input: {channels: 3, height: 8, width: 8}
nodes:
  - {id: a, kind: conv, channels: 32}
  - {id: b, kind: conv, channels: 128}
  - {id: c, kind: conv, channels: 64}
  - {id: head, kind: classifier, classes: 10}
edges:
  - {from: a, to: c, merge: concat}
"""


def test_ablate_summary_separates_the_edges_own_params_from_the_knock_on_change(tmp_path):
    """Issue 20.5: dropping a concat edge narrows its target, so the head's weights shrink too."""
    spec = tmp_path / "concat.yaml"
    spec.write_text(CONCAT)
    result = CliRunner().invoke(main, ["ablate", str(spec), "--drop", "a:c"])
    assert result.exit_code == 0, result.output
    # head: avgpool + fc over 96 features before (64 + 32), 64 after: 32 x 10 weights fewer.
    assert "removed a->c: -0 params in their projections, -320 downstream (concat narrowing)" in result.stderr
    summed = CliRunner().invoke(main, ["ablate", "specs/hiresnet18.yaml", "--drop", "stem:stage4"])
    projection = hrgraph.infer_shapes(hrgraph.load_spec("specs/hiresnet18.yaml")).projections[("stem", "stage4")].params
    assert f"removed stem->stage4: -{projection:,} params in their projections;" in summed.stderr
    assert "downstream" not in summed.stderr
