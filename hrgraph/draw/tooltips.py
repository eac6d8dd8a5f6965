"""Hover text of a diagram: each node's and each edge's parameters and MACs.

Graphviz writes a ``tooltip`` attribute into an SVG as the ``xlink:title`` of a
link around the shape, which browsers show on hover; so a drawing of a large
network can keep its labels short and still answer "what does this cost?".
The numbers are :func:`~hrgraph.build.cost.count_cost`'s (no torch): MACs are
per sample of one forward pass, summed over the steps a node runs at.
"""

from __future__ import annotations

from ..build.cost import CostRow, count_cost
from ..build.shapes import ShapePlan, format_count, format_shape

__all__ = ["Tooltips", "tooltip"]


def tooltip(*lines: str) -> str:
    """One tooltip of several lines, as a DOT escString (backslashes kept literal, ``\\n`` between lines).

    Examples
    --------
    >>> tooltip("a->b", "params 1,024")
    'a->b\\\\nparams 1,024'
    """
    return "\\n".join(line.replace("\\", "\\\\") for line in lines)


def _cost_lines(row: CostRow | None, runs: int, timed: bool) -> list[str]:
    if row is None:
        return []
    lines = [f"params {row.cost.params:,} ({format_count(row.cost.params)})", f"MACs {row.cost.macs:,} ({format_count(row.cost.macs)})"]
    if timed:
        lines.append(f"runs {runs} time{'s' if runs != 1 else ''} per forward")
    return lines


class Tooltips:
    """The hover text of every node, long-range edge and input link of ``plan``.

    Examples
    --------
    >>> from hrgraph import load_spec, infer_shapes
    >>> tips = Tooltips(infer_shapes(load_spec("specs/hiresnet18.yaml")))
    >>> tips.edge(("stem", "stage4")).split("\\\\n")[:2]
    ['stem->stage4: avgpool 8 -> 1x1 conv 64->512 + BN, 33.8k params', 'params 33,792 (33.8k)']
    """

    def __init__(self, plan: ShapePlan) -> None:
        self.plan = plan
        table = count_cost(plan)
        self._nodes = {r.name: r for r in table.nodes}
        self._edges = {r.name: r for r in table.projections}
        self._rows = {r.name: r for r in table.merges}
        self._timed = plan.time is not None

    def node(self, node_id: str) -> str:
        """Id and block, output shape, parameters and MACs (and the merge of a list input)."""
        node = self.plan.nodes[node_id]
        shape = format_shape(node.out_shape)
        if node.block_shape != node.out_shape:
            shape = f"{format_shape(node.block_shape)} + concat = {shape}"
        lines = [f"{node_id}: {node.label}", f"output {shape}"]
        lines += _cost_lines(self._nodes.get(node_id), self.plan.runs("node", node_id), self._timed)
        if node.merge is not None:
            merge = self._rows.get(f"{node_id} ({node.merge.aggregate})")
            own = f", {merge.cost.params:,} params of its own" if merge is not None and merge.cost.params else ""
            lines.append(f"input: {node.merge.describe()}{own}")
        return tooltip(*lines)

    def edge(self, key: tuple[str, str]) -> str:
        """A long-range edge: its projection, parameters and MACs (and its delay)."""
        projection = self.plan.projections[key]
        lines = [f"{projection.name}: {projection.describe()}"]
        if projection.delay:
            lines.append(f"delay {projection.delay} step{'s' if projection.delay != 1 else ''}")
        lines += _cost_lines(self._edges.get(projection.name), self.plan.runs("edge", key), self._timed)
        return tooltip(*lines)

    def link(self, source: str, target: str) -> str:
        """An input link: the main path, or an item of a list input with its projection onto the merge."""
        node = self.plan.nodes[target]
        shown = "input" if source not in self.plan.nodes else source
        if node.merge is None:
            block = self.plan.spec.nodes[self.plan.spec.node_index[target]]
            delay = next((d for s, d in zip(block.inputs, block.input_delays) if s == source), 0)
            later = [f"delay {delay} step{'s' if delay != 1 else ''}"] if delay else []
            return tooltip(f"{shown}->{target}: main path, {format_shape(node.in_shape)}", *later)
        k, projection = next((k, p) for k, p in enumerate(node.merge.inputs) if (p.source or "input") == shown)
        lines = [f"{shown}->{target}: input {k + 1} of {len(node.merge.inputs)}, {projection.describe()}"]
        if projection.delay:
            lines.append(f"delay {projection.delay} step{'s' if projection.delay != 1 else ''}")
        row = self._rows.get(f"{projection.source}->{target} (input)")
        return tooltip(*lines, *_cost_lines(row, self.plan.runs("input", (target, k)), self._timed))
