"""Fuzz the loader: whatever the input, the result is a spec or a located HrgraphError.

(a) arbitrary text goes in as YAML; (b) valid specs (the repo's and random DAGs)
are mutated structurally, dumped as YAML text (so every key has a position) and
loaded and shape-checked.  Neither may raise anything but ``HrgraphError``, and
every error must carry a line.  No torch here: nothing is compiled.
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import hrgraph
from hrgraph.generate import random_dag_spec

from .conftest import SPECS

# The number of examples and whether they are drawn anew come from the Hypothesis profile that
# tests/conftest.py loads ("suite": a fixed set; `make fuzz`: "explore", new draws).

#: What YAML counts as a line break (so what its line numbers count).
YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def load_and_check(text: str) -> None:
    """Load YAML text and infer shapes; an error must be an HrgraphError with a position."""
    try:
        hrgraph.infer_shapes(hrgraph.load_spec(text))
    except hrgraph.HrgraphError as err:
        assert err.line is not None and err.line >= 1, f"no line: {err!r}"
        assert err.column is not None and err.column >= 1, f"no column: {err!r}"
        lines = len(YAML_LINE_BREAK.split(text))
        assert err.line <= lines, f"line beyond the text: {err!r}"


# -- (a) arbitrary text ----------------------------------------------------------

YAML_TOKENS = st.sampled_from(
    ["input:", "nodes:", "edges:", "- ", "{", "}", "[", "]", ":", ",", "\n", "  ", "&a ", "*a", "<<: ", "!!", "? ",
     "id: stem", "kind: conv", "channels: 16", "from: stem", "to: head", "'", '"', "#", "---", "|", ">", "\t"]
)


@given(st.text(max_size=300))
def test_arbitrary_text(text):
    # The trailing newline keeps load_spec from taking a one-line text for a file name.
    load_and_check(text + "\n")


@given(st.lists(YAML_TOKENS | st.text(max_size=5), max_size=60).map("".join))
def test_yaml_like_text(text):
    load_and_check(text + "\n")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 3000 + "]" * 3000,  # nesting past Python's recursion limit
        "- " * 3000,
        "&a [*a]",  # an alias that contains itself
        "a: &a {b: *a}",
        "a: \x00",  # characters YAML forbids
        "3",
        "input: !!python/object/apply:os.system [true]",
        "---\na: 1\n---\nb: 2",
    ],
    ids=["deep-flow", "deep-block", "self-alias", "self-alias-map", "nul", "scalar", "python-tag", "two-documents"],
)
def test_pathological_text(text):
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(text + "\n")
    assert info.value.line is not None


# -- (b) structured mutations of valid specs ---------------------------------------


def valid_dicts() -> list[dict]:
    bases = [hrgraph.load_spec(path).to_dict() for path in SPECS]
    bases += [random_dag_spec(n, seed=n, fan_in=2, window=4) for n in (4, 7, 12)]
    bases.append(random_dag_spec(6, seed=1, kinds=("basic", "plain", "resnext"), merge_concat=0.5))
    return bases


BASES = valid_dicts()

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([0, -1, 1, 3, 7, 2**16, 2**16 + 1, 10**9, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["stem", "stage1", "stage4", "head", "basic", "conv", "pool", "avg", "concat", "adaptive",
                     "identity", "a__b", "9x", "stem:stage4"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def containers(data, path=()):
    """Every (path, container) in ``data``, the root included."""
    yield path, data
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if isinstance(value, (dict, list)):
            yield from containers(value, path + (key,))


def node_ids(spec: dict) -> list[str]:
    nodes = spec.get("nodes")
    ids = [n.get("id") for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []
    return [i for i in ids if isinstance(i, str)] or ["stem"]


def mutate(spec: dict, draw) -> None:
    action = draw(st.sampled_from(["delete", "set", "rename", "add_edge", "swap", "duplicate", "reinput", "extends"]))
    places = [c for _, c in containers(spec) if c]
    ids = node_ids(spec)
    nodes = spec.get("nodes") if isinstance(spec.get("nodes"), list) else None
    if action in ("delete", "set") and places:
        target = draw(st.sampled_from(places))
        key = draw(st.sampled_from(list(target) if isinstance(target, dict) else list(range(len(target)))))
        if action == "delete":
            del target[key]
        else:
            target[key] = draw(VALUES)
    elif action == "rename" and nodes:
        node = draw(st.sampled_from(nodes))
        if isinstance(node, dict):
            node["id"] = draw(st.sampled_from([*ids, "input"]) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True))
    elif action == "add_edge":
        edge = {"from": draw(st.sampled_from(ids + ["nowhere", "input"])), "to": draw(st.sampled_from(ids + ["nowhere", "input"]))}
        if draw(st.booleans()):
            edge[draw(st.sampled_from(["merge", "pool", "projection", "channels"]))] = draw(SCALARS)
        if not isinstance(spec.get("edges"), list):
            spec["edges"] = []
        spec["edges"].append(edge)
    elif action == "swap" and nodes and len(nodes) > 1:
        i, j = draw(st.integers(0, len(nodes) - 1)), draw(st.integers(0, len(nodes) - 1))
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif action == "duplicate" and nodes:
        i = draw(st.integers(0, len(nodes) - 1))
        nodes.insert(draw(st.integers(0, len(nodes))), copy.deepcopy(nodes[i]))
    elif action == "extends":
        spec["extends"] = draw(st.sampled_from(["specs/resnet18.yaml", "specs/hiresnet18.yaml", "no-such.yaml", 3]))
        if draw(st.booleans()):
            spec["remove_edges"] = draw(st.lists(st.sampled_from(["stem:stage4", "stem:stage2", "stem", "a->b"]), max_size=2))
    elif action == "reinput" and nodes:
        node = draw(st.sampled_from(nodes))
        if isinstance(node, dict):
            node["input"] = draw(st.sampled_from(ids + ["nowhere", "input"]))


@given(st.sampled_from(range(len(BASES))), st.integers(1, 4), st.data())
def test_mutated_specs(base, rounds, data):
    spec = copy.deepcopy(BASES[base])
    for _ in range(rounds):
        mutate(spec, data.draw)
    load_and_check(yaml.safe_dump(spec, sort_keys=False))
    # The same data as a dict: no positions to report, but still only HrgraphError.
    try:
        hrgraph.infer_shapes(hrgraph.load_spec(copy.deepcopy(spec)))
    except hrgraph.HrgraphError:
        pass


@pytest.mark.parametrize("base", range(len(BASES)))
def test_unmutated_bases_are_valid(base):
    # The fuzz starts from valid specs; otherwise it would only test one error.
    text = yaml.safe_dump(BASES[base], sort_keys=False)
    plan = hrgraph.infer_shapes(hrgraph.load_spec(text))
    assert plan.params > 0
