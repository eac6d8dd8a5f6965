"""Limits before work: absurd inputs, huge files and non-files are refused before anything is allocated."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import hrgraph
from hrgraph.cli.main import main
from hrgraph.build.shapes import MAX_ACTIVATION
from hrgraph.spec.source import MAX_SPEC_BYTES, MAX_YAML_NODES, parse_yaml, read_yaml

from .conftest import ROOT

HUGE_INPUT = "tests/invalid/input-huge.yaml"


def test_huge_input_is_refused_at_the_input_line():
    with pytest.raises(hrgraph.ShapeError) as info:
        hrgraph.infer_shapes(hrgraph.load_spec(HUGE_INPUT))
    err = info.value
    assert (err.line, err.node) == (2, None)
    assert "3x32768x32768" in err.message and "--max-activation" in err.message


def test_the_limit_can_be_raised_on_purpose():
    spec = hrgraph.load_spec(HUGE_INPUT)
    plan = hrgraph.infer_shapes(spec, max_activation=4 * 32768 * 32768)
    assert plan.input_shape == (3, 32768, 32768)
    result = CliRunner().invoke(main, ["validate", HUGE_INPUT, "--max-activation", str(1 << 32)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("1000000x1000x1000", "channels"),
        ("3x40000x8", "height"),
        ("64x8192x8192", "elements per sample"),
    ],
)
def test_input_override_has_the_same_limits(shape, expected):
    result = CliRunner().invoke(main, ["compile", "specs/resnet18.yaml", "--input", shape])
    assert result.exit_code == 1, result.output
    assert expected in result.stderr and "Traceback" not in result.output


def test_input_override_in_the_api_has_the_same_limits():
    spec = hrgraph.load_spec("specs/resnet18.yaml")
    with pytest.raises(hrgraph.ShapeError, match="channels"):
        hrgraph.infer_shapes(spec, input_shape=(1_000_000, 1000, 1000))
    with pytest.raises(hrgraph.ShapeError, match="elements per sample"):
        hrgraph.compile_model(spec, input_shape=(3, 32768, 32768))


@pytest.mark.parametrize("text", ["3_2x32x32", "3x32x 32x", "+3x32x32", "3x32", "0x32x32"])
def test_input_option_takes_plain_digits_only(text):
    result = CliRunner().invoke(main, ["compile", "specs/resnet18.yaml", "--input", text])
    assert result.exit_code == 2, result.output
    assert "CxHxW" in result.output


def test_max_activation_default_is_one_gib_of_float32():
    assert MAX_ACTIVATION * 4 == 2**30


@pytest.mark.parametrize("command", ["validate", "compile"])
def test_refused_absurd_input_allocates_nothing(command):
    # The whole CLI run, in a fresh interpreter, stays far below the 12 GiB the
    # input would take; compile refuses it before importing torch (~500 MB alone).
    probe = textwrap.dedent(
        f"""
        import resource, sys
        from hrgraph.cli.main import main
        try:
            main([{command!r}, {HUGE_INPUT!r}])
        except SystemExit as exit:
            code = exit.code
        try:
            # VmHWM: the peak of this process's own memory.  ru_maxrss would do
            # elsewhere, but on Linux it keeps the forking parent's peak across exec.
            with open("/proc/self/status") as fh:
                peak = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))
        except OSError:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(code, peak, "torch" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    code, peak_kib, torch_imported = done.stdout.split()
    assert code == "1", done.stdout + done.stderr
    assert int(peak_kib) < 300 * 1024
    assert torch_imported == "False"


def test_yaml_nodes_are_counted_while_composing():
    # One item over the limit: refused at that item, before the rest is built.
    items = MAX_YAML_NODES + 10
    text = "a: [" + ",".join(["1"] * items) + "]\n"
    with pytest.raises(hrgraph.SpecError, match="YAML nodes") as info:
        parse_yaml(text, "big.yaml")
    assert info.value.line == 1 and info.value.column < len(text)


def test_spec_files_are_capped_in_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: [" + "1," * (MAX_SPEC_BYTES // 2) + "1]\n", encoding="utf-8")
    with pytest.raises(hrgraph.SpecError, match="larger than 2 MiB"):
        read_yaml(path)
    with pytest.raises(hrgraph.SpecError, match="larger than 2 MiB"):
        hrgraph.load_spec(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_device_files_are_refused(path):
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    result = CliRunner().invoke(main, ["validate", path])
    assert result.exit_code == 1
    assert "not a regular file (a character device)" in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(hrgraph.SpecError, match="not a regular file \\(a FIFO\\)"):
        hrgraph.load_spec(fifo)


def test_extends_naming_a_fifo_is_refused(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs")
    os.mkfifo(tmp_path / "parent.yaml")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\n", encoding="utf-8")
    with pytest.raises(hrgraph.SpecError, match="FIFO"):
        hrgraph.load_spec(tmp_path / "child.yaml")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_scale_width_not_finite_is_a_usage_error(value, tmp_path):
    out = tmp_path / "s.yaml"
    result = CliRunner().invoke(main, ["scale", "specs/resnet18.yaml", "--width", value, "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "not a finite number" in result.stderr
    assert not out.exists()


def _chain(tmp_path):
    """base.yaml (8 conv nodes, 4 edges) <- mid.yaml (4 edges, one replacing base's n0->n5) <- top.yaml (4 edges)."""
    nodes = ", ".join(f"{{id: n{i}, kind: conv, channels: 4}}" for i in range(8))
    (tmp_path / "base.yaml").write_text(
        f"input: {{channels: 3, height: 8, width: 8}}\nnodes: [{nodes}]\nedges:\n"
        '  - {from: "*", to: "*", min_skip: 7}\n  - {from: "*", to: "*", min_skip: 6, max_skip: 6}\n'
        "  - {from: n0, to: n5}\n"
    )
    (tmp_path / "mid.yaml").write_text('extends: base.yaml\nedges:\n  - {from: "*", to: "*", min_skip: 5, max_skip: 5}\n  - {from: n1, to: n4}\n')
    (tmp_path / "top.yaml").write_text('extends: mid.yaml\nedges:\n  - {from: "*", to: "*", min_skip: 4, max_skip: 4}\n')
    return tmp_path / "top.yaml"


def test_edge_budget_applies_to_the_merged_extends_chain(tmp_path, monkeypatch):
    from hrgraph.spec import patterns

    top = _chain(tmp_path)
    # min_skip 7 is one pair, 6 two, ...; mid's n0->n5 replaces base's and counts for mid.
    counts = {"base": 1 + 2, "mid": 3 + 1, "top": 4}
    assert len(hrgraph.load_spec(top).edges) == sum(counts.values())
    # Each file's patterns stay under the scaled-down cap; their sum does not.
    monkeypatch.setattr(patterns, "MAX_EXPANDED_EDGES", 9)
    with pytest.raises(hrgraph.GraphError) as info:
        hrgraph.load_spec(top)
    message = info.value.message
    assert "11 edges, more than the limit of 9 by 2" in message
    for name, count in counts.items():
        assert f"{name}.yaml {count}" in message
    result = CliRunner().invoke(main, ["validate", str(top)])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.output


def test_edge_budget_counts_explicit_and_pattern_edges_of_one_file(monkeypatch):
    from hrgraph.spec import patterns

    nodes = ", ".join(f"{{id: n{i}, kind: conv, channels: 4}}" for i in range(5))
    text = f"input: {{channels: 3, height: 8, width: 8}}\nnodes: [{nodes}]\nedges:\n  - {{from: n0, to: \"*\", min_skip: 2}}\n  - {{from: n1, to: n3}}\n"
    assert len(hrgraph.load_spec(text).edges) == 4
    monkeypatch.setattr(patterns, "MAX_EXPANDED_EDGES", 3)
    with pytest.raises(hrgraph.GraphError, match="4 edges, more than the limit of 3 by 1"):
        hrgraph.load_spec(text)


@pytest.mark.parametrize(
    ("limit", "value", "fragment"),
    [("MAX_SPEC_BYTES", 300, "bytes, more than the 300"), ("MAX_YAML_NODES", 40, "YAML nodes, more than the 40")],
)
@pytest.mark.parametrize("to_file", [True, False])
def test_import_refuses_a_spec_the_loader_would_refuse(limit, value, fragment, to_file, tmp_path, monkeypatch):
    from hrgraph.spec import source

    chain = tmp_path / "chain.csv"
    chain.write_text("source,target\n" + "".join(f"n{i},n{i + 1}\n" for i in range(8)))
    out = tmp_path / "chain.yaml"
    args = ["import", str(chain), "--kind", "conv"] + (["-o", str(out)] if to_file else [])
    assert CliRunner().invoke(main, args).exit_code == 0
    out.unlink(missing_ok=True)
    monkeypatch.setattr(source, limit, value)  # scaled down: a 32,000-node chain is 2.2 MB
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: the spec would ") and fragment in result.stderr
    assert "(by " in result.stderr
    assert result.stdout == "" and not out.exists()


def test_gml_nested_50000_deep_is_a_spec_error(tmp_path):
    deep = tmp_path / "deep.gml"
    deep.write_text('graph [ directed 1\nnode [ id 0 label "a" ' + "x [ " * 50_000 + "]" * 50_000 + " ]\n]\n")
    out = tmp_path / "deep.yaml"
    result = CliRunner().invoke(main, ["import", str(deep), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {deep}:2: not a valid GML file: nested more than 64 levels deep\n"
    assert not out.exists()


def test_gml_recursion_past_the_depth_check_is_still_a_spec_error(tmp_path, monkeypatch):
    from hrgraph.io import graphfiles

    monkeypatch.setattr(graphfiles, "MAX_GML_DEPTH", 10**9)  # as if the check missed a way to nest
    deep = tmp_path / "deep.gml"
    deep.write_text('graph [ directed 1 node [ id 0 label "a" ' + "x [ " * 50_000 + "]" * 50_000 + " ] ]\n")
    with pytest.raises(hrgraph.SpecError, match="nested too deeply") as info:
        graphfiles.import_graph(deep)
    assert info.value.path == str(deep)
