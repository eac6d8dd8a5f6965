"""Export a compiled model for deployment: ONNX, ``torch.export`` (``.pt2``) and TorchScript.

The format follows the output's suffix:

=========================  =====================================================
``.onnx``                  ``torch.onnx.export(dynamo=True)``; runs in onnxruntime
                           (needs ``onnx`` and ``onnxscript``)
``.pt2``                   ``torch.export.export``; load with ``torch.export.load``
``.ts``, ``.torchscript.pt``  ``torch.jit.trace``; load with ``torch.jit.load``
=========================  =====================================================

The model is exported in eval mode (BatchNorm uses its running statistics)
with the edges it has disabled left out (the generated forward skips them).
The file is written through :func:`hrgraph.files.atomic_open`: an exporter
that fails leaves no file, or the previous one, behind.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import ExportError
from ..files import atomic_open

__all__ = ["FORMATS", "export_format", "export_model"]

#: Suffix -> format name.  ``.torchscript.pt`` is matched before any shorter suffix.
FORMATS = {".onnx": "onnx", ".pt2": "pt2", ".torchscript.pt": "torchscript", ".ts": "torchscript"}


def export_format(path: str | os.PathLike[str]) -> str:
    """The format of an output path, from its suffix.

    Raises
    ------
    ExportError
        The suffix is none of :data:`FORMATS`.

    Examples
    --------
    >>> export_format("model.torchscript.pt"), export_format("m.onnx")
    ('torchscript', 'onnx')
    """
    name = Path(path).name.lower()
    for suffix, fmt in FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise ExportError(f"unknown export format: give a file ending in {', '.join(FORMATS)}", path=str(path))


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:300]}" if lines else type(err).__name__


def _onnx_bytes(model: nn.Module, x: torch.Tensor, dynamic_batch: bool) -> bytes:
    try:
        import onnxscript  # noqa: F401  torch.onnx's dynamo exporter needs it; say so before it fails deep inside
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxscript: pip install onnx onnxscript") from None
    dynamic = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about opset conversions it handles itself
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False, dynamic_shapes=dynamic,
                                    input_names=["input"], output_names=["logits"])
    return program.model_proto.SerializeToString()


def _pt2_bytes(model: nn.Module, x: torch.Tensor, dynamic_batch: bool) -> bytes:
    dynamic = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    program = torch.export.export(model, (x,), dynamic_shapes=dynamic)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _torchscript_bytes(model: nn.Module, x: torch.Tensor, dynamic_batch: bool) -> bytes:
    # Tracing records the operations, none of which depends on the batch size
    # in a compiled network: a traced module takes any batch.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, still supported
        traced = torch.jit.trace(model, (x,), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    return buf.getvalue()


_EXPORTERS = {"onnx": _onnx_bytes, "pt2": _pt2_bytes, "torchscript": _torchscript_bytes}


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_shape: tuple[int, int, int] | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
) -> str:
    """Export ``model`` to ``path`` in the format its suffix names; returns the format.

    Parameters
    ----------
    model : nn.Module
        A compiled model (its ``plan.input_shape`` is the default input).
    path : path
        ``.onnx``, ``.pt2``, ``.ts`` or ``.torchscript.pt``.
    input_shape : (int, int, int), optional
        ``(C, H, W)`` of the example input (default: the model's).
    batch : int
        Batch size of the example input (with ``dynamic_batch`` the file takes any).
    dynamic_batch : bool
        Leave the batch dimension free (ONNX and ``.pt2``; TorchScript traces
        always take any batch).

    Returns
    -------
    str
        ``"onnx"``, ``"pt2"`` or ``"torchscript"``.

    Raises
    ------
    ExportError
        Unknown suffix, a missing exporter dependency, or a model the exporter
        cannot capture (the exporter's first line is quoted); nothing is written.

    Examples
    --------
    >>> import tempfile, torch, hrgraph
    >>> model = hrgraph.compile_model("specs/hiresnet18.yaml")
    >>> path = tempfile.mkdtemp() + "/hiresnet18.pt2"
    >>> export_model(model, path, dynamic_batch=True)
    'pt2'
    >>> program = torch.export.load(path)
    >>> program.module()(torch.zeros(3, 3, 32, 32)).shape
    torch.Size([3, 10])
    """
    fmt = export_format(path)
    if input_shape is None:
        plan = getattr(model, "plan", None)
        if plan is None:
            raise ExportError("give input_shape: the model has no plan to take it from", path=str(path))
        input_shape = tuple(plan.input_shape)
    # Batch 1 would let torch.export specialise the batch dimension to a constant.
    n = max(batch, 2) if dynamic_batch else batch
    x = torch.randn(n, *input_shape, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            data = _EXPORTERS[fmt](model, x, dynamic_batch)
    except ExportError as err:
        err.path = err.path or str(path)
        raise
    except Exception as err:  # each exporter raises its own family of errors (Unsupported, UserError, ...)
        raise ExportError(f"{fmt} export failed: {_first_line(err)}", path=str(path)) from err
    finally:
        model.train(was_training)
    with atomic_open(path) as fh:
        fh.write(data)
    return fmt
