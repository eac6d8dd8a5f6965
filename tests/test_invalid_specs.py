"""Every file in tests/invalid/ is refused with the error its first line promises.

The first line of each file reads, for example::

    # expect: ShapeError line=9 edge=stem->pooled message="pool: adaptive"

``line`` is required; ``node``/``edge`` are the node or edge the error must name
(absent: it must name none); ``path`` is the file at fault relative to
tests/invalid/ (default: the file itself); ``cycle`` lists a cycle's nodes;
``message`` is a fragment the message must contain.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

import hrgraph
from hrgraph.cli.main import main

from .conftest import ROOT

INVALID = ROOT / "tests" / "invalid"
CASES = sorted(INVALID.glob("*.yaml"))
ERRORS = {
    name: getattr(hrgraph, name)
    for name in ("SpecError", "GraphError", "CycleError", "UnknownNodeError", "ShapeError")
}


def expectation(path: Path) -> dict[str, str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# expect: "
    if not first.startswith(prefix):
        raise ValueError(f"{path.name}: the first line must start with {prefix!r}")
    kind, *fields = shlex.split(first[len(prefix):])
    expected = dict(field.split("=", 1) for field in fields)
    expected["type"] = kind
    return expected


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_enough_cases():
    assert len(CASES) >= 40
    # Every case states its line, and the expectations parse.
    for path in CASES:
        assert "line" in expectation(path), path.name


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_error_names_type_file_line_and_culprit(path):
    expected = expectation(path)
    with pytest.raises(hrgraph.HrgraphError) as info:
        hrgraph.infer_shapes(hrgraph.load_spec(rel(path)))
    err = info.value
    cls = ERRORS[expected["type"]]
    if cls in (hrgraph.CycleError, hrgraph.UnknownNodeError):
        assert isinstance(err, cls), f"{type(err).__name__}: {err}"
    else:
        assert type(err) is cls, f"{type(err).__name__}: {err}"
    at_fault = INVALID / expected.get("path", path.name)
    assert err.path == rel(at_fault)
    assert err.line == int(expected["line"]), str(err)
    assert err.column is not None and err.column >= 1
    assert err.node == expected.get("node")
    assert err.edge == expected.get("edge")
    if "cycle" in expected:
        cycle = expected["cycle"].split(",")
        start = err.cycle.index(cycle[0])
        assert err.cycle[start:] + err.cycle[:start] == cycle  # same cycle, any starting node
    if "message" in expected:
        assert expected["message"] in err.message
    # The one-line rendering leads with the location, like a compiler.
    assert str(err).startswith(f"{rel(at_fault)}:{err.line}:{err.column}: ")


@pytest.mark.parametrize("command", ["validate", "compile"])
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_cli_reports_one_located_line(path, command):
    expected = expectation(path)
    at_fault = INVALID / expected.get("path", path.name)
    result = CliRunner().invoke(main, [command, rel(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {rel(at_fault)}:{expected['line']}:")
    assert "Traceback" not in result.output + result.stderr
    assert result.stdout == ""


def test_adaptive_pooling_accepts_the_non_integer_ratio():
    # The valid twin of non-integer-ratio.yaml: the same edge asking for adaptive pooling.
    text = (INVALID / "non-integer-ratio.yaml").read_text(encoding="utf-8")
    assert "{from: stem, to: pooled}" in text
    plan = hrgraph.infer_shapes(hrgraph.load_spec(text.replace("to: pooled}", "to: pooled, pool: adaptive}")))
    projection = plan.projections["stem", "pooled"]
    assert projection.pool == "adaptive"
    assert projection.out_shape[1:] == plan.nodes["pooled"].out_shape[1:]
    assert projection.in_shape[1] % projection.out_shape[1] != 0


def test_absurd_width_is_refused_before_any_allocation():
    # The spec needs terabytes of weights; shape inference refuses it without torch.
    import sys

    before = "torch" in sys.modules
    with pytest.raises(hrgraph.ShapeError) as info:
        hrgraph.count_params(hrgraph.load_spec(rel(INVALID / "absurd-params.yaml")))
    assert "parameters" in info.value.message
    assert ("torch" in sys.modules) == before


def test_compile_refuses_absurd_spec_without_building(monkeypatch):
    # compile_model must fail in shape inference: no module constructor may run.
    from hrgraph.build import compiler

    def refuse(*args, **kwargs):
        raise AssertionError("a module was built for a spec that should have been refused")

    monkeypatch.setattr(compiler, "HrNet", refuse)
    with pytest.raises(hrgraph.ShapeError):
        hrgraph.compile_model(rel(INVALID / "absurd-params.yaml"))
