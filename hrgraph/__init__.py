"""hrgraph: compile brain-inspired connectivity specs (blocks + long-range edges) into PyTorch models.

The spec-only parts (loading, validation, shapes, parameter counts, diagrams)
do not import torch; :func:`compile_model` and friends import it on first use.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    CompileError,
    CycleError,
    GraphError,
    HrgraphError,
    OutputError,
    RenderError,
    ShapeError,
    SpecError,
    UnknownNodeError,
)
from .build.graph import check_graph
from .spec.kinds import KINDS, Block
from .build.shapes import ShapePlan, count_params, infer_shapes
from .spec.schema import spec_json_schema
from .spec.models import Edge, Spec, load_spec
# The functions shadow their modules' names as attributes of the package; import
# the modules' other names with "from hrgraph.edit.ablate import ...".
from .edit.ablate import ablate, select_edges, sweep
from .edit.match import match_params
from .draw.render import render

from ._version import __version__

__all__ = [
    "__version__",
    "load_spec",
    "spec_json_schema",
    "check_graph",
    "infer_shapes",
    "count_params",
    "match_params",
    "ablate",
    "sweep",
    "select_edges",
    "compile_model",
    "register_block",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
    "Spec",
    "Edge",
    "Block",
    "KINDS",
    "ShapePlan",
    "HrgraphError",
    "SpecError",
    "GraphError",
    "CycleError",
    "UnknownNodeError",
    "ShapeError",
    "CompileError",
    "RenderError",
    "OutputError",
    "render",
    "to_networkx",
    "from_networkx",
]

# These need torch; import it only when one of them is first used, so that
# validating and rendering a spec stay fast.
_LAZY = {
    "compile_model": "build.compiler",
    "save_checkpoint": "build.compiler",
    # Both kinds of checkpoint (compile's and a training run's): it rebuilds a run as `hrgraph analyze` does.
    "load_checkpoint": "analysis.run",
    "HrNet": "build.compiler",
    "register_block": "build.blocks",
    "load_weights": "io.weights",
    # No torch, but only the users of graph import/export need them loaded.
    "to_networkx": "io.netx",
    "from_networkx": "io.netx",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hrgraph' has no attribute '{name}'")
