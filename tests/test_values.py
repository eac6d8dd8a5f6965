"""Strict values: integers are integers and booleans are true/false, from YAML and from Python alike.

The refused YAML cases live in tests/invalid/strict-*.yaml; these are the
accepted forms and the same rules for specs given as dicts.
"""

from __future__ import annotations

import pytest

import hrgraph
from hrgraph.spec.source import parse_yaml

BASE = {
    "input": {"channels": 3, "height": 32, "width": 32},
    "nodes": [{"id": "stem", "kind": "conv", "channels": 16}, {"id": "head", "kind": "classifier", "classes": 10}],
}


def with_stem(**changes):
    nodes = [{**BASE["nodes"][0], **changes}, BASE["nodes"][1]]
    return {**BASE, "nodes": nodes}


def test_plain_scalars_read_as_yaml_1_2():
    data = parse_yaml("a: [yes, no, on, off, y, 010, 1_000, '1:30', 0x10, 1e3, .5, -2, true, False, null, ~]")
    assert data["a"] == ["yes", "no", "on", "off", "y", "010", "1_000", "1:30", "0x10", 1000.0, 0.5, -2, True, False, None, None]


def test_exponent_floats_are_numbers():
    # PyYAML (YAML 1.1) reads 1e-1 as a string; a spec reads it as 0.1.
    spec = hrgraph.load_spec(
        "input: {channels: 3, height: 8, width: 8}\n"
        "nodes: [{id: stem, kind: conv, channels: 4}, {id: head, kind: classifier, classes: 2, dropout: 1e-1}]\n"
    )
    assert spec.nodes[1].dropout == 0.1


def test_an_integer_is_accepted_where_a_number_is_expected():
    spec = hrgraph.load_spec({**BASE, "nodes": [BASE["nodes"][0], {**BASE["nodes"][1], "dropout": 0}]})
    assert spec.nodes[1].dropout == 0.0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"channels": True}, "expected an integer, got true (a boolean)"),
        ({"channels": "16"}, "expected an integer, got the string '16'"),
        ({"channels": 16.0}, "expected an integer, got the number 16.0"),
        ({"maxpool": 1}, "expected true or false, got the integer 1"),
        ({"maxpool": "yes"}, "YAML 1.1 reads yes/no/on/off as booleans"),
        ({"id": 7}, "expected a string, got the integer 7"),
    ],
)
def test_dicts_are_as_strict_as_yaml(changes, expected):
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(with_stem(**changes))
    assert expected in info.value.message


def test_version_true_is_not_version_1():
    with pytest.raises(hrgraph.SpecError, match="version: expected an integer, got true"):
        hrgraph.load_spec({**BASE, "version": True})


def test_messages_never_name_pydantic_classes():
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec({**BASE, "edges": [["stem", "head"]], "residuals": 3, "input": [3, 32, 32]})
    for err in [info.value, *info.value.others]:
        assert "instance of" not in err.message and "Edge" not in err.message, err.message
    assert "expected a mapping" in info.value.message


def test_resolved_specs_round_trip_strictly():
    # to_yaml must quote strings that YAML 1.1 would read otherwise, and load back equal.
    spec = hrgraph.load_spec({**BASE, "name": "yes", "description": "010"})
    again = hrgraph.load_spec(spec.to_yaml())
    assert again == spec and again.name == "yes" and again.description == "010"
