"""What one spec adds, removes or changes relative to another.

Compares two resolved specs node by node and edge by edge, after shape
inference, so a change that only shows downstream (a wider stage widens the
projections into it) is reported too.  No torch; :mod:`hrgraph.draw.render` draws
the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..build.shapes import NodeShape, Projection, ShapePlan, format_count, format_shape, infer_shapes
from ..spec.models import load_spec

__all__ = ["Change", "SpecDiff", "diff_specs", "edge_text"]


def edge_text(projection: Projection) -> str:
    """What an edge inserts, and ``(concat)`` where it concatenates instead of summing.

    Examples
    --------
    >>> plan = infer_shapes(load_spec("specs/hiresnet18.yaml"))
    >>> edge_text(plan.projections["stage2", "stage4"])
    'avgpool 4 -> 1x1 conv 128->512 + BN, 66.6k params'
    """
    text = projection.describe()
    return f"{text} (concat)" if projection.merge == "concat" else text


@dataclass(frozen=True)
class Change:
    """``status`` is ``"added"``, ``"removed"`` or ``"changed"``; ``details`` say what changed."""

    status: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpecDiff:
    """The differences from plan ``a`` to plan ``b``; unchanged nodes and edges are absent."""

    a: ShapePlan
    b: ShapePlan
    settings: tuple[str, ...]
    nodes: dict[str, Change]
    edges: dict[tuple[str, str], Change]

    @property
    def empty(self) -> bool:
        return not (self.settings or self.nodes or self.edges)

    def summary(self) -> list[str]:
        """One line per difference (``+`` added, ``-`` removed, ``~`` changed), then the parameters.

        Examples
        --------
        >>> d = diff_specs("specs/resnet18.yaml", "specs/hiresnet18.yaml")
        >>> print("\\n".join(d.summary()[:2]))
        + edge stem->stage2 (avgpool 2 -> 1x1 conv 64->128 + BN, 8.4k params)
        + edge stem->stage3 (avgpool 4 -> 1x1 conv 64->256 + BN, 16.9k params)
        >>> d.summary()[-1]
        'params: 11,173,962 -> 11,350,346 (+176,384)'
        """
        mark = {"added": "+", "removed": "-", "changed": "~"}
        lines = [f"~ {text}" for text in self.settings]
        for node_id, change in self.nodes.items():
            sep = ": " if change.status == "changed" else " "
            details = "; ".join(change.details)
            if change.status != "changed":
                details = f"({details})"
            lines.append(f"{mark[change.status]} node {node_id}{sep}{details}")
        for (src, dst), change in self.edges.items():
            details = "; ".join(change.details)
            if change.status == "changed":
                lines.append(f"~ edge {src}->{dst}: {details}")
            else:
                lines.append(f"{mark[change.status]} edge {src}->{dst} ({details})")
        if self.empty:
            lines.append("no differences")
        pa, pb = self.a.params, self.b.params
        lines.append(f"params: {pa:,} -> {pb:,} ({pb - pa:+,})")
        return lines


def _node_summary(node: NodeShape) -> str:
    return f"{node.label}, {format_shape(node.out_shape)}, {format_count(node.params)} params"


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = list(old) + [k for k in new if k not in old]
    return [f"{k} {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def _inputs_text(inputs: tuple[str | None, ...]) -> str:
    if len(inputs) == 1:
        return inputs[0] or "(network input)"
    return "[" + ", ".join(i or "(network input)" for i in inputs) + "]"


def _node_change(plan_a: ShapePlan, plan_b: ShapePlan, node_id: str) -> Change | None:
    old, new = plan_a.nodes[node_id], plan_b.nodes[node_id]
    # The main input is compared resolved (below): "input: null" and the previous node are the same.
    skip = {"id", "input"}
    details = _field_changes(
        plan_a.spec.node(node_id).model_dump(mode="json", exclude=skip),
        plan_b.spec.node(node_id).model_dump(mode="json", exclude=skip),
    )
    if old.inputs != new.inputs:
        details.append(f"input {_inputs_text(old.inputs)} -> {_inputs_text(new.inputs)}")
    if old.out_shape != new.out_shape:
        details.append(f"output {format_shape(old.out_shape)} -> {format_shape(new.out_shape)}")
    if old.params != new.params:
        details.append(f"params {format_count(old.params)} -> {format_count(new.params)}")
    return Change("changed", tuple(details)) if details else None


def _edge_change(old: Projection, new: Projection) -> Change | None:
    details = _field_changes(
        old.edge.model_dump(mode="json", exclude={"from_", "to"}),
        new.edge.model_dump(mode="json", exclude={"from_", "to"}),
    )
    if edge_text(old) != edge_text(new):
        details.append(f"{edge_text(old)} => {edge_text(new)}")
    return Change("changed", tuple(details)) if details else None


def _settings(plan_a: ShapePlan, plan_b: ShapePlan) -> list[str]:
    a, b = plan_a.spec, plan_b.spec
    out = []
    if plan_a.input_shape != plan_b.input_shape:
        out.append(f"input {format_shape(plan_a.input_shape)} -> {format_shape(plan_b.input_shape)}")
    out += [f"residuals.{text}" for text in _field_changes(a.residuals.model_dump(), b.residuals.model_dump())]
    if a.zero_init_residual != b.zero_init_residual:
        out.append(f"zero_init_residual {a.zero_init_residual} -> {b.zero_init_residual}")
    return out


def diff_specs(a: Any, b: Any) -> SpecDiff:
    """Compare spec ``b`` with spec ``a`` (anything :func:`~hrgraph.spec.load_spec` accepts).

    Nodes are matched by id and edges by their ends.  A node or edge counts as
    changed when its fields, its output shape, its parameters or (for an edge)
    its inserted projection differ.

    Returns
    -------
    SpecDiff

    Raises
    ------
    SpecError, GraphError, ShapeError
        Either spec is invalid.

    Examples
    --------
    >>> d = diff_specs("specs/hiresnet18.yaml", "specs/resnet18.yaml")
    >>> sorted(c.status for c in d.edges.values())
    ['removed', 'removed', 'removed', 'removed', 'removed', 'removed']
    >>> d.nodes
    {}
    """
    plan_a, plan_b = infer_shapes(load_spec(a)), infer_shapes(load_spec(b))
    nodes: dict[str, Change] = {}
    for node_id in plan_b.spec.node_ids:
        if node_id not in plan_a.nodes:
            nodes[node_id] = Change("added", (_node_summary(plan_b.nodes[node_id]),))
        elif change := _node_change(plan_a, plan_b, node_id):
            nodes[node_id] = change
    for node_id in plan_a.spec.node_ids:
        if node_id not in plan_b.nodes:
            nodes[node_id] = Change("removed", (_node_summary(plan_a.nodes[node_id]),))
    edges: dict[tuple[str, str], Change] = {}
    for key, new in plan_b.projections.items():
        old = plan_a.projections.get(key)
        if old is None:
            edges[key] = Change("added", (edge_text(new),))
        elif change := _edge_change(old, new):
            edges[key] = change
    for key, old in plan_a.projections.items():
        if key not in plan_b.projections:
            edges[key] = Change("removed", (edge_text(old),))
    return SpecDiff(a=plan_a, b=plan_b, settings=tuple(_settings(plan_a, plan_b)), nodes=nodes, edges=edges)
