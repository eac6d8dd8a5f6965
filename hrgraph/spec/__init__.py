"""Spec files -> validated specs: the first stage of the pipeline.  No torch.

``source`` parses YAML keeping every value's file, line and column;
``extends`` merges a spec with its parents; ``patterns`` expands edge patterns
into plain edges; ``kinds`` holds the block kinds (pydantic models with their
shape rules and parameter counts); ``models`` the spec itself (:class:`Spec`,
:class:`Edge`, :func:`load_spec`); ``schema`` its JSON Schema; ``diagnostics``
turns pydantic errors into located messages.

The spec's models are re-exported here, so ``from hrgraph.spec import load_spec``
reads as it always did.
"""

from .models import Edge, InputShape, Residuals, Spec, load_spec, parse_edge_ref

__all__ = ["Edge", "InputShape", "Residuals", "Spec", "load_spec", "parse_edge_ref"]
