"""A compiled model goes through torch's tracers, compilers and exporters like a hand-written one."""

from __future__ import annotations

import warnings

import pytest
import torch

import hrgraph
from hrgraph.generate import random_dag_spec


@pytest.fixture(scope="module")
def tiny():
    """A few nodes with sum, concat and post-ReLU merges, at 8x8: every construct of the generated code."""
    data = random_dag_spec(6, seed=2, merge_concat=0.5, size=8, channels=(4, 8))
    data["residuals"] = {"activation": "relu"}
    torch.manual_seed(0)
    model = hrgraph.compile_model(data).eval()
    assert "+=" in model.code and "torch.cat" in model.code and "relu_" in model.code
    return model


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_fx_symbolic_trace(tiny, x):
    gm = torch.fx.symbolic_trace(tiny)
    # Module paths survive: the traced graph calls the same submodules.
    targets = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    assert "nodes.stem.conv" in targets
    assert any(t.startswith("projections.") for t in targets)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), tiny(x))


def test_jit_trace(tiny, x):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated, still supported
        traced = torch.jit.trace(tiny, x)
        torch.testing.assert_close(traced(x), tiny(x))


def test_torch_compile_captures_one_graph(tiny, x):
    """fullgraph=True fails on any graph break; the eager backend checks capture without inductor's C++ build."""
    torch._dynamo.reset()
    compiled = torch.compile(tiny, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), tiny(x))


@pytest.mark.slow
def test_torch_compile_inductor(tiny, x):
    torch._dynamo.reset()
    compiled = torch.compile(tiny, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), tiny(x), rtol=1e-4, atol=1e-5)


def test_torch_export(tiny, x):
    program = torch.export.export(tiny, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), tiny(x))


def test_onnx_export(tiny, x, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")  # torch.onnx's exporter needs it
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(tiny, (x,), str(path), dynamo=True, verbose=False)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), tiny(x), rtol=1e-4, atol=1e-5)


# -- hrgraph export (hrgraph/io/export.py, hrgraph/cli/io.py) ---------------------

from click.testing import CliRunner  # noqa: E402

from hrgraph.cli.main import main  # noqa: E402
from hrgraph.edit.match import scale_widths  # noqa: E402
from hrgraph.errors import ExportError  # noqa: E402
from hrgraph.io.export import export_model  # noqa: E402


@pytest.fixture(scope="module")
def small_hiresnet(tmp_path_factory):
    """specs/hiresnet18.yaml at 1/8 width: the same graph and projections, exported in a second."""
    import yaml

    path = tmp_path_factory.mktemp("spec") / "hiresnet18-small.yaml"
    spec = scale_widths(hrgraph.load_spec("specs/hiresnet18.yaml"), 0.125)
    path.write_text(yaml.safe_dump(spec.to_dict()))
    return path


def _cli(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def test_cli_export_onnx_runs_in_onnxruntime(small_hiresnet, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "m.onnx"
    result = _cli(small_hiresnet, "-o", out, "--dynamic-batch")
    assert result.exit_code == 0, result.output
    assert "onnx; input any batch x 3x32x32" in result.output
    torch.manual_seed(0)  # the command compiles a spec with seed 0
    model = hrgraph.compile_model(small_hiresnet).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-4)


def test_cli_export_pt2_of_a_checkpoint_at_another_input_size(tiny, tmp_path):
    ckpt = tmp_path / "tiny.pt"
    hrgraph.save_checkpoint(tiny, ckpt)
    out = tmp_path / "tiny.pt2"
    result = _cli(ckpt, "-o", out, "--input", "3x16x16", "--dynamic-batch")
    assert result.exit_code == 0, result.output
    program = torch.export.load(str(out))
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), tiny(x))


def test_cli_export_torchscript_of_a_run_folder_uses_its_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    trained = CliRunner().invoke(main, ["train", "specs/resnet18.yaml", "--data", "synthetic", "--epochs", "1",
                                        "--batch-size", "20", "--width-mult", "0.125", "--limit-train", "20",
                                        "--limit-val", "20", "--device", "cpu", "-o", str(run)])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "model.torchscript.pt"
    result = _cli(run, "-o", out)
    assert result.exit_code == 0, result.output
    assert "best.pt" in result.output
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    model = hrgraph.compile_model(best["spec"]).eval()
    model.load_state_dict(best["model"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still supported
        scripted = torch.jit.load(str(out))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


class _DataDependent(torch.nn.Module):
    def forward(self, x):
        return x * 2 if x.sum().item() > 0 else x  # branch on a value: torch.export cannot capture it


def test_what_cannot_be_exported_is_an_error_and_leaves_no_file(tmp_path):
    out = tmp_path / "bad.pt2"
    with pytest.raises(ExportError, match="pt2 export failed"):
        export_model(_DataDependent(), out, input_shape=(1, 2, 2))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_export_refuses_unknown_suffix_and_missing_onnxscript(small_hiresnet, tmp_path, monkeypatch):
    result = _cli(small_hiresnet, "-o", tmp_path / "m.bin")
    assert result.exit_code == 1 and "unknown export format" in result.output
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # import onnxscript -> ImportError
    result = _cli(small_hiresnet, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1 and "pip install onnx onnxscript" in result.output
    assert list(tmp_path.iterdir()) == []
