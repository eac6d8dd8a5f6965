"""Messages that say what is wrong: extends stays in its folder, numbers are numbers, long lists are capped."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from click.testing import CliRunner

import hrgraph
from hrgraph.cli.main import main
from hrgraph.spec.diagnostics import MAX_ERRORS

from .conftest import ROOT

SPEC = "input: {channels: 3, height: 8, width: 8}\nnodes:\n  - {id: stem, kind: conv, channels: 4}\n"


def test_extends_outside_the_folder_is_refused_without_reading_it(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (tmp_path / "inner").mkdir()
    child = tmp_path / "inner" / "child.yaml"
    child.write_text("extends: ../secret.yaml\n", encoding="utf-8")
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(child)
    assert "outside the spec's folder" in info.value.message and info.value.line == 1
    assert "root:x" not in str(info.value)
    result = CliRunner().invoke(main, ["validate", str(child)])
    assert result.exit_code == 1 and "--allow-outside" in result.stderr


def test_allow_outside_reads_it_and_never_echoes_foreign_content(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (tmp_path / "inner").mkdir()
    child = tmp_path / "inner" / "child.yaml"
    child.write_text("extends: ../secret.yaml\n", encoding="utf-8")
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(child, allow_outside=True)
    assert "single value" in info.value.message and "root:x" not in str(info.value)
    result = CliRunner().invoke(main, ["validate", "--allow-outside", str(child)])
    assert result.exit_code == 1 and "root:x" not in result.output + result.stderr


def test_allow_outside_extends_a_real_parent(tmp_path):
    (tmp_path / "parent.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "inner").mkdir()
    child = tmp_path / "inner" / "child.yaml"
    child.write_text("extends: ../parent.yaml\nname: child\n", encoding="utf-8")
    assert hrgraph.load_spec(child, allow_outside=True).name == "child"
    result = CliRunner().invoke(main, ["validate", "--allow-outside", str(child)])
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_symlink_out_of_the_folder_is_outside(tmp_path):
    (tmp_path / "parent.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "inner").mkdir()
    os.symlink(tmp_path / "parent.yaml", tmp_path / "inner" / "link.yaml")
    child = tmp_path / "inner" / "child.yaml"
    child.write_text("extends: link.yaml\n", encoding="utf-8")
    with pytest.raises(hrgraph.SpecError, match="outside the spec's folder"):
        hrgraph.load_spec(child)


def test_parents_may_extend_anywhere_under_the_first_specs_folder(tmp_path):
    (tmp_path / "base.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "family").mkdir()
    (tmp_path / "family" / "mid.yaml").write_text("extends: ../base.yaml\nname: mid\n", encoding="utf-8")
    (tmp_path / "top.yaml").write_text("extends: family/mid.yaml\nname: top\n", encoding="utf-8")
    assert hrgraph.load_spec(tmp_path / "top.yaml").name == "top"


@pytest.mark.parametrize("name", ["x.YAML", "nets/missing.Yml", "specs/no-such-spec"])
def test_a_missing_file_is_a_missing_file(name):
    with pytest.raises(hrgraph.SpecError, match="no such spec file"):
        hrgraph.load_spec(name)


def test_a_single_value_is_not_echoed():
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec("'root:x:0:0'\n")
    assert "single value" in info.value.message and "root" not in info.value.message


def test_encoding_errors_give_line_and_column(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: ok\ndescription: caf\xe9\n".encode("latin-1"))
    with pytest.raises(hrgraph.SpecError, match="not UTF-8") as info:
        hrgraph.load_spec(path)
    assert (info.value.line, info.value.column) == (2, 17)


def test_errors_of_one_bad_list_are_capped_with_a_count():
    nodes = "\n".join(f"  - {{id: n{i}, kind: conv, channels: -1}}" for i in range(20_001))
    with pytest.raises(hrgraph.SpecError) as info:
        hrgraph.load_spec(f"input: {{channels: 3, height: 8, width: 8}}\nnodes:\n{nodes}\n")
    err = info.value
    assert len(err.others) == MAX_ERRORS - 1
    assert err.omitted == 20_001 - MAX_ERRORS


def test_the_cli_prints_the_cap_and_the_count(tmp_path):
    nodes = "\n".join(f"  - {{id: n{i}, kind: conv, channels: -1}}" for i in range(500))
    path = tmp_path / "many.yaml"
    path.write_text(f"input: {{channels: 3, height: 8, width: 8}}\nnodes:\n{nodes}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert sum(line.startswith("error: ") for line in lines) == MAX_ERRORS + 1
    assert f"... and {500 - MAX_ERRORS:,} more errors" in result.stderr


@pytest.mark.parametrize("target", ["1e7", "1.1e7"])
def test_match_takes_a_count_in_exponent_notation(target):
    result = CliRunner().invoke(main, ["match", "specs/plain18.yaml", "--to", target])
    assert result.exit_code == 0, result.output
    assert f"target {round(float(target)):,}" in result.stderr


@pytest.mark.parametrize("target", ["-5", "0", "0.5", "-1e9"])
def test_match_refuses_a_number_that_is_not_a_count(target):
    result = CliRunner().invoke(main, ["match", "specs/plain18.yaml", "--to", target])
    assert result.exit_code == 2, result.output
    assert "not a positive parameter count" in result.output
    assert "no such spec file" not in result.output


def test_zoo_keeps_two_specs_with_the_same_stem_apart(tmp_path):
    for folder, source in (("a", "resnet18.yaml"), ("b", "plain18.yaml")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "net.yaml").write_text((ROOT / "specs" / source).read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(main, ["zoo", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "/net |" in line]
    assert len(rows) == 2 and rows[0].split("|")[1] != rows[1].split("|")[1]
    assert all(row.strip().endswith("| original |") for row in rows)


def test_zoo_lists_a_file_given_twice_once():
    result = CliRunner().invoke(main, ["zoo", "specs", "specs/resnet18.yaml"])
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("| resnet18 |") for line in result.output.splitlines()) == 1


def test_trace_and_export_are_the_supported_paths_with_disabled_edges():
    # torch.jit.script cannot compile a generated forward (docs/spec.md,
    # "Compiled modules"); tracing and torch.export take any edge mask.
    model = hrgraph.compile_model("specs/hiresnet18.yaml").eval()
    model.set_edges(disabled=["stem:stage4"])
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected = model(x)
        torch.testing.assert_close(torch.jit.trace(model, x)(x), expected)
        torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), expected)
    assert "torch.jit.script" in (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
