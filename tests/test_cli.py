"""The command line, driven in-process with click's CliRunner: output, files and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hrgraph
from hrgraph.cli.main import main

from .conftest import SPECS

HIRESNET = "specs/hiresnet18.yaml"
INVALID = "tests/invalid/edge-unknown-to.yaml"

TINY = """\
name: tiny
input: {channels: 3, height: 16, width: 16}
nodes:
  - {id: stem, kind: conv, channels: 8}
  - {id: stage1, kind: basic, channels: 8, depth: 1}
  - {id: stage2, kind: basic, channels: 16, depth: 1, stride: 2}
  - {id: head, kind: classifier, classes: 4}
edges:
  - {from: stem, to: stage2}
"""


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hiresnet_json() -> dict:
    result = CliRunner().invoke(main, ["compile", HIRESNET, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- compile ----------------------------------------------------------------------


def test_compile_table_lists_nodes_projections_and_totals():
    result = run("compile", HIRESNET)
    assert result.exit_code == 0, result.output
    spec = hrgraph.load_spec(HIRESNET)
    plan = hrgraph.infer_shapes(spec)
    out = result.stdout
    for node_id in spec.node_ids:
        assert node_id in out
    for edge in spec.edges:
        assert edge.name in out
    # The table reports the shapes and parameter counts that shape inference predicts.
    assert "512x4x4" in out
    assert f"{plan.projections['stem', 'stage4'].params:,}" in out
    total = next(line for line in out.splitlines() if line.startswith("total params"))
    assert f"{plan.params:,} (" in total
    assert f"in {len(spec.edges)} projections" in total
    assert result.stderr == ""


def test_compile_without_edges_says_so(tiny, tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text(TINY.split("edges:")[0], encoding="utf-8")
    result = run("compile", str(plain))
    assert result.exit_code == 0, result.output
    assert "projections: none" in result.stdout


def test_compile_json_matches_shape_inference(hiresnet_json):
    spec = hrgraph.load_spec(HIRESNET)
    assert {"params", "nodes", "projections"} <= set(hiresnet_json)
    assert hiresnet_json["params"] == hrgraph.count_params(spec)
    assert hiresnet_json["built_params"] == hiresnet_json["params"]
    assert [n["id"] for n in hiresnet_json["nodes"]] == spec.node_ids
    assert [p["edge"] for p in hiresnet_json["projections"]] == [e.name for e in spec.edges]
    assert hiresnet_json["fingerprint"] == spec.fingerprint
    assert hiresnet_json["forward_output"] == [1, 10]


def test_compile_input_override_changes_shapes(hiresnet_json):
    result = run("compile", HIRESNET, "--json", "--input", "3x64x64")
    assert result.exit_code == 0, result.output
    bigger = json.loads(result.stdout)
    assert bigger["input"] == [3, 64, 64]
    shapes = {n["id"]: n["out_shape"] for n in bigger["nodes"]}
    default = {n["id"]: n["out_shape"] for n in hiresnet_json["nodes"]}
    # Every feature map doubles in height and width; the logits do not change.
    assert shapes["stage4"] == [default["stage4"][0], 2 * default["stage4"][1], 2 * default["stage4"][2]]
    assert shapes["head"] == default["head"]
    assert bigger["params"] == hiresnet_json["params"]


def test_compile_out_writes_a_checkpoint_that_loads_back(tiny, tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "model.pt"
    result = run("compile", str(tiny), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"saved {out}" in result.stdout.replace("\n", "")
    model, payload = hrgraph.load_checkpoint(out)
    spec = hrgraph.load_spec(tiny)
    assert model.fingerprint == payload["fingerprint"] == spec.fingerprint
    assert payload["spec"] == spec.to_dict(minimal=False)
    loaded = model.state_dict()
    assert loaded.keys() == payload["state_dict"].keys()
    assert "projections.stem__stage2.conv.weight" in loaded
    for key, value in payload["state_dict"].items():
        assert torch.equal(loaded[key], value), key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "tiny.yaml"]  # no temporary left over


def test_failed_compile_writes_no_output(tmp_path):
    out = tmp_path / "model.pt"
    result = run("compile", INVALID, "--out", str(out))
    assert result.exit_code == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_compile_keeps_an_existing_output(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"previous checkpoint")
    result = run("compile", INVALID, "--out", str(out))
    assert result.exit_code == 1
    assert out.read_bytes() == b"previous checkpoint"


def test_interrupted_save_leaves_no_partial_file(tiny, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")

    def disk_full(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    out = tmp_path / "model.pt"
    result = run("compile", str(tiny), "--out", str(out))
    assert result.exit_code == 1  # the machine's trouble, not hrgraph's: not an internal error
    assert result.stderr == f"error: {out}: cannot write: no space left on device\n"
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_compile_over_max_params_is_a_spec_error():
    result = run("compile", HIRESNET, "--max-params", "1000")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: specs/")
    assert "above the limit" in result.stderr


# -- validate -------------------------------------------------------------------


def test_validate_many_specs():
    paths = [str(p.relative_to(Path.cwd())) for p in SPECS]
    result = run("validate", *paths)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(paths)
    for path, line in zip(paths, lines):
        assert line.startswith(f"ok {path}: ")
        assert f"{hrgraph.count_params(hrgraph.load_spec(path)):,} params" in line


def test_validate_mixed_reports_both_and_fails():
    result = run("validate", HIRESNET, INVALID, "specs/resnet18.yaml")
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [f"ok {HIRESNET}", "ok specs/resnet18.yaml"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"error: {INVALID}:9:")
    assert "unknown node 'stage9'" in errors[0]
    assert errors[-1] == "1 of 3 specs invalid"


def test_validate_missing_file_is_a_spec_error(tmp_path):
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'nope.yaml'}: no such spec file")


def test_validate_honours_allow_imports(tmp_path, monkeypatch):
    (tmp_path / "harmless_module.py").write_text("LOADED = True\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "imp.yaml"
    spec.write_text("imports: [harmless_module]\n" + TINY, encoding="utf-8")
    refused = run("validate", str(spec))
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: {spec}:1:")
    allowed = run("validate", "--allow-imports", str(spec))
    assert allowed.exit_code == 0, allowed.output


# -- schema -----------------------------------------------------------------------


def test_schema_is_json_with_every_block_kind():
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    mapping = schema["$defs"]["Node"]["discriminator"]["mapping"]
    assert set(mapping) == set(hrgraph.KINDS)
    for ref in mapping.values():
        assert ref.removeprefix("#/$defs/") in schema["$defs"]


def test_schema_out_writes_the_same_text(tmp_path):
    out = tmp_path / "schema.json"
    assert run("schema", "--out", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == run("schema").stdout


def test_repo_specs_match_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from hrgraph.spec.source import read_yaml, strip

    schema = json.loads(run("schema").stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for path in SPECS:
        assert list(validator.iter_errors(strip(read_yaml(path)))) == [], path.name
    # The schema is not vacuous: a misspelt key and a bad value are caught.
    bad = strip(read_yaml("specs/resnet18.yaml"))
    bad["nodes"][0]["chanels"] = 3
    assert list(validator.iter_errors(bad))
    bad = hrgraph.load_spec("specs/resnet18.yaml").to_dict()
    bad["nodes"][1]["channels"] = 0
    assert list(validator.iter_errors(bad))


# -- misuse and version -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["compile", HIRESNET, "--input", "3x32"],
        ["compile", HIRESNET, "--input", "3x0x32"],
        ["compile"],
        ["validate"],
        ["compile", HIRESNET, "--no-such-option"],
        ["no-such-command"],
        ["compile", HIRESNET, "--max-params", "0"],
    ],
    ids=["input-2d", "input-zero", "compile-no-file", "validate-no-file", "unknown-option", "unknown-command", "max-params-0"],
)
def test_misuse_exits_2(args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    assert "Usage:" in result.stderr


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert hrgraph.__version__ in result.stdout


# -- output files: never the input, through devices, plain messages for mistakes ---------------------


@pytest.mark.parametrize(
    "command",
    [
        ["compile", "{spec}", "-o", "{spec}"],
        ["match", "{spec}", "--to", "1000", "-o", "{spec}"],
        ["match", HIRESNET, "--to", "{spec}", "-o", "{spec}"],
        ["ablate", "{spec}", "--drop", "stem:stage2", "-o", "{spec}"],
        ["render", "{spec}", "-o", "{link}"],  # the same file under another name
    ],
)
def test_output_onto_an_input_spec_is_refused(tiny, command):
    link = tiny.with_suffix(".dot")
    link.symlink_to(tiny)
    before = tiny.read_bytes()
    result = run(*(arg.format(spec=tiny, link=link) for arg in command))
    assert result.exit_code == 2, result.output
    assert "is the input file" in result.stderr
    assert tiny.read_bytes() == before


def test_output_to_dev_stdout_writes_through(tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "hrgraph", "ablate", HIRESNET, "--drop", "stem:stage4", "-o", "/dev/stdout"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Generated by `hrgraph ablate")  # the spec, then the "wrote" line
    body, _, last = done.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("wrote /dev/stdout")
    assert {e.name for e in hrgraph.load_spec(body).edges} == {e.name for e in hrgraph.load_spec(HIRESNET).edges} - {"stem->stage4"}
    assert Path("/dev/stdout").is_symlink() or Path("/dev/stdout").is_char_device()


def test_output_to_a_full_device_is_a_plain_error(tiny, tmp_path):
    import os
    import stat

    full = tmp_path / "full"
    try:
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except OSError as err:
        pytest.skip(f"cannot create a device node here: {err}")
    result = run("compile", str(tiny), "-o", str(full))
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {full}: cannot write: no space left on device\n"
    assert stat.S_ISCHR(full.stat().st_mode)


def test_output_into_a_missing_folder_names_the_folder(tiny, tmp_path):
    out = tmp_path / "missing" / "model.pt"
    result = run("compile", str(tiny), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {out}: folder '{out.parent}' does not exist\n"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--drop", "stem:stage4", "-o", "{dir}"], 1, "is a folder; give a file name"),
        (["--sweep", "single", "-o", "{file}"], 1, "is a file, not a folder"),
        (["--drop", ""], 2, "Invalid value for '--drop'"),
        (["--drop", " , "], 2, "Invalid value for '--drop'"),
        (["--keep", ""], 2, "Invalid value for '--keep'"),
        (["--sweep", "powerset", "--max-variants", "10", "-o", "{dir}/s"], 2, "64 specs, above max_variants=10"),
    ],
)
def test_ablate_mistakes_are_plain_errors(tmp_path, args, code, message):
    (tmp_path / "file.yaml").write_text("x")
    args = [a.format(dir=tmp_path, file=tmp_path / "file.yaml") for a in args]
    result = run("ablate", HIRESNET, *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and "internal error" not in result.stderr
    assert (tmp_path / "file.yaml").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.yaml"]


# -- spec names as file names --------------------------------------------------------------------


def _named(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "named.yaml"
    path.write_text(TINY.replace("name: tiny", f"name: {json.dumps(name)}"), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["../escaped", "/tmp/hrgraph-absolute", "sub/dir", ".hidden"])
def test_sweep_keeps_every_file_inside_the_output_folder(tmp_path, name):
    spec = _named(tmp_path, name)
    out = tmp_path / "out"
    result = run("ablate", str(spec), "--sweep", "powerset", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["named.yaml", "out"]
    assert not Path("/tmp/hrgraph-absolute-no-edges.yaml").exists()
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 3 and not any(f.startswith(".") for f in files)  # 2 variants + the index
    index = json.loads(next(out.glob("*.index.json")).read_text())
    for variant in index["variants"]:
        assert hrgraph.load_spec(out / variant["file"]).name == variant["name"]  # the full name is kept inside


def test_sweep_with_names_over_255_bytes_writes_everything(tmp_path):
    spec = _named(tmp_path, "n" * 300)
    out = tmp_path / "out"
    result = run("ablate", str(spec), "--sweep", "powerset", "-o", str(out))
    assert result.exit_code == 0, result.output
    index = json.loads(next(out.glob("*.index.json")).read_text())
    assert len(index["variants"]) == 2 and len({v["file"] for v in index["variants"]}) == 2
    assert all(len(p.name.encode()) <= 255 for p in out.iterdir())
    assert len(list(out.iterdir())) == 3


def test_failed_sweep_writes_nothing(tmp_path, monkeypatch):
    import hrgraph.cli.edit as cli

    calls = []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        cli_write(path, data)

    cli_write = cli.write_atomic
    monkeypatch.setattr(cli, "write_atomic", failing)
    result = run("ablate", HIRESNET, "--sweep", "single", "-o", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert list(tmp_path.iterdir()) == []  # not 3 of 6 files without an index


def test_name_with_a_newline_stays_inside_the_header_comment(tiny, tmp_path):
    out = tmp_path / "m.yaml"
    result = run("ablate", str(tiny), "--drop", "stem:stage2", "--name", "x\nedges: [oops]", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    header = text.split("\n")[:2]
    assert all(line.startswith("# ") for line in header)
    assert "--name $'x\\nedges: [oops]'" in header[0]
    spec = hrgraph.load_spec(out)
    assert spec.name == "x\nedges: [oops]" and len(spec.edges) == 0


# -- checkpoints ---------------------------------------------------------------------------------


class _Marker:
    """Unpickling this would create a file: the proof that a checkpoint ran code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_malicious_checkpoint_runs_nothing(tmp_path, how):
    torch = pytest.importorskip("torch")
    import pickle

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    payload = {"format": "hrgraph-checkpoint-1", "state_dict": _Marker(str(marker))}
    if how == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload))
    with pytest.raises(hrgraph.HrgraphError, match="not an hrgraph checkpoint") as info:
        hrgraph.load_checkpoint(evil)
    assert not marker.exists()
    assert info.value.path == str(evil)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04 not really a zip"])
def test_a_non_checkpoint_file_is_a_plain_error(tmp_path, content):
    pytest.importorskip("torch")
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(hrgraph.HrgraphError, match="not an hrgraph checkpoint"):
        hrgraph.load_checkpoint(path)
    with pytest.raises(hrgraph.HrgraphError, match="no such checkpoint file"):
        hrgraph.load_checkpoint(tmp_path / "missing.pt")


def test_a_foreign_torch_file_is_not_a_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2)}, path)
    with pytest.raises(hrgraph.HrgraphError, match="not an hrgraph checkpoint"):
        hrgraph.load_checkpoint(path)


def test_large_tables_are_printed_as_plain_columns(tiny, monkeypatch):
    import hrgraph.cli.spec as cli

    monkeypatch.setattr(cli, "RICH_ROWS", 2)  # tiny's 4 nodes now count as a large table
    result = run("compile", str(tiny))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("tiny: nodes")
    assert lines[start + 1].split() == ["node", "block", "input", "output", "params"]
    rows = {line.split()[0]: line for line in lines[start + 3 : start + 7]}
    assert set(rows) == {"stem", "stage1", "stage2", "head"}
    assert rows["stage1"].endswith(f"{hrgraph.infer_shapes(hrgraph.load_spec(tiny)).nodes['stage1'].params:,}")
    assert "stem->stage2" in result.stdout and "total params" in result.stdout
