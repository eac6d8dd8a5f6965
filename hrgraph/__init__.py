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
from .graph import check_graph
from .kinds import KINDS, Block
from .shapes import ShapePlan, count_params, infer_shapes
from .schema import spec_json_schema
from .spec import Edge, Spec, load_spec
# The functions shadow their modules' names as attributes of the package; import
# the modules' other names with "from hrgraph.ablate import ...".
from .ablate import ablate, select_edges, sweep
from .match import match_params
from .render import render

__version__ = "0.1.0"

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
    "compile_model": "compiler",
    "save_checkpoint": "compiler",
    "load_checkpoint": "compiler",
    "HrNet": "compiler",
    "register_block": "blocks",
    # No torch, but only the users of graph import/export need them loaded.
    "to_networkx": "netx",
    "from_networkx": "netx",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hrgraph' has no attribute '{name}'")
