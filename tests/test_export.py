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
