"""What every node and every long-range edge costs: parameters, MACs, activations, other work.

Read from the shape plan alone (no torch), so the numbers for a spec come in
milliseconds and sum exactly to :attr:`ShapePlan.params` and
:attr:`ShapePlan.macs`, the totals ``hrgraph compile`` prints.  What each
number counts, per sample of one forward pass:

* ``params``: learnable parameters (convolution and linear weights and biases,
  batch-norm weight and bias; running statistics are buffers, not counted).
* ``macs``: multiply-accumulates of convolutions and linear layers, and
  nothing else (torch's ``FlopCounterMode`` reports twice this number).
* ``activations``: elements of the tensor the row hands on: a node's output
  after its merges, a projection's output (pooled, convolved, normalised);
  an identity edge makes no tensor and counts 0.  Tensors inside a block or a
  projection (which training also keeps for backward) are not counted.
  ``activation_bytes`` is four bytes (float32) per element.
* ``pool``, ``bn``, ``add``: the work that is not a multiply-accumulate, in
  elements (:class:`~hrgraph.spec.kinds.OpCounts`): pooling windows read, batch-norm
  outputs, residual-sum additions (a block's shortcuts; an edge with
  ``merge: sum`` adds its projection into the target).  ReLUs and the copies of
  ``merge: concat`` are not counted.

A node with a list ``input`` adds one ``input`` row per listed node (its
projection onto the merge; a concat or identity input costs nothing) and one
``merge`` row for the merge itself: the adds of ``sum``, ``mean`` and
``weighted`` (whose scaling and division are not counted, like ReLUs) and the
weights of ``weighted``.  An edge's ``gate`` weight is in its projection row.

A spec with a ``time`` section runs a row's work once per step it runs at
(:mod:`hrgraph.build.unroll`): every count but ``params`` is multiplied by
that number of runs (0 for a node that is silent at every step), so the
rows still sum to the plan's totals.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from math import prod
from typing import Any

from ..spec.kinds import OpCounts
from .shapes import Projection, ShapePlan

__all__ = ["Cost", "CostRow", "CostTable", "count_cost", "BYTES_PER_ELEMENT"]

#: Bytes of one float32 element.
BYTES_PER_ELEMENT = 4


@dataclass(frozen=True)
class Cost:
    """Cost of one row (or a sum of rows) for one sample; see the module docstring."""

    params: int = 0
    macs: int = 0
    activations: int = 0
    pool: int = 0
    bn: int = 0
    add: int = 0

    @property
    def activation_bytes(self) -> int:
        return self.activations * BYTES_PER_ELEMENT

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class CostRow:
    """One node (``kind="node"``), one long-range edge's projection (``kind="projection"``),
    one input of a list ``input`` (``kind="input"``) or a node's merge of its inputs (``kind="merge"``)."""

    kind: str
    name: str
    label: str
    out_shape: tuple[int, int, int]
    cost: Cost


@dataclass(frozen=True)
class CostTable:
    """Rows of every node (in topological order) and every projection (in spec order)."""

    name: str | None
    fingerprint: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    nodes: tuple[CostRow, ...]
    projections: tuple[CostRow, ...]
    #: Rows of the merges of list inputs (``input`` and ``merge`` rows), node by node.
    merges: tuple[CostRow, ...] = ()
    #: For a spec with ``time``: scheme, steps, readout, runs per node and MACs per step
    #: (:meth:`ShapePlan.to_dict`'s ``time``); ``None`` otherwise.
    time: dict[str, Any] | None = None

    @property
    def rows(self) -> tuple[CostRow, ...]:
        return self.nodes + self.projections + self.merges

    @cached_property
    def total(self) -> Cost:
        # Cached: share() divides by it for every row, and recomputing it each time
        # made a 4,851-edge summary quadratic (over 120 s).
        return sum((r.cost for r in self.rows), Cost())

    def share(self, row: CostRow, what: str) -> float:
        """Fraction of the total ``what`` (``"params"``, ``"macs"``, ``"activations"``...) that ``row`` has."""
        whole = getattr(self.total, what)
        return getattr(row.cost, what) / whole if whole else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (what ``hrgraph summary --json`` prints)."""
        total = self.total

        def cost(c: Cost) -> dict[str, int]:
            return {
                "params": c.params,
                "macs": c.macs,
                "activations": c.activations,
                "activation_bytes": c.activation_bytes,
                "pool": c.pool,
                "bn": c.bn,
                "add": c.add,
            }

        def row(r: CostRow) -> dict[str, Any]:
            shares = {f"{k}_share": self.share(r, k) for k in ("params", "macs", "activations")}
            return {"name": r.name, "kind": r.kind, "label": r.label, "out_shape": list(r.out_shape), **cost(r.cost), **shares}

        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "input": list(self.input_shape),
            "output": list(self.output_shape),
            "total": cost(total),
            "nodes": [row(r) for r in self.nodes],
            "projections": [row(r) for r in self.projections],
            **({"merges": [row(r) for r in self.merges]} if self.merges else {}),
            **({"time": self.time} if self.time is not None else {}),
        }


def _adaptive_reads(size: int, out: int) -> int:
    # torch's adaptive pooling windows: [floor(i*size/out), ceil((i+1)*size/out)).
    return sum(-(-(i + 1) * size // out) - (i * size // out) for i in range(out))


def _projection_ops(p: Projection) -> OpCounts:
    c, h, w = p.in_shape
    out_c, th, tw = p.out_shape
    if p.pool == "adaptive":
        pool = c * _adaptive_reads(h, th) * _adaptive_reads(w, tw)
    elif p.pool is not None:
        kh, kw = p.pool_kernel
        pool = c * th * tw * kh * kw
    else:
        pool = 0
    bn = out_c * th * tw if p.conv is not None else 0
    # An input of a list input is added by its merge's row, not here.
    add = out_c * th * tw if p.merge == "sum" and p.role == "edge" else 0
    return OpCounts(pool=pool, bn=bn, add=add)


def _projection_label(p: Projection) -> str:
    # Short enough for a table cell, unlike Projection.describe() (which adds the parameters).
    gate = "" if p.gate == "none" else f" + {p.gate} gate"
    if p.identity:
        return "identity" + gate
    parts = []
    if p.upsample is not None:
        parts.append(f"{p.upsample} x{p.upsample_factor[0]}" if p.upsample_factor[0] == p.upsample_factor[1] else f"{p.upsample} {p.upsample_factor[0]}x{p.upsample_factor[1]}")
    if p.pool == "adaptive":
        parts.append(f"adaptive {p.out_shape[1]}x{p.out_shape[2]}")
    elif p.pool is not None:
        parts.append(f"{p.pool} {p.pool_kernel[0]}x{p.pool_kernel[1]}")
    if p.conv is not None:
        parts.append(f"1x1 {p.conv[0]}->{p.conv[1]} + BN")
    return " + ".join(parts) + gate


def _cost(params: int, macs: int, activations: int, ops: OpCounts, runs: int = 1) -> Cost:
    # Weights are shared across steps; the work is done once per run.
    return Cost(params=params, macs=macs * runs, activations=activations * runs, pool=ops.pool * runs, bn=ops.bn * runs, add=ops.add * runs)


def count_cost(plan: ShapePlan) -> CostTable:
    """Cost of every node and every projection of ``plan`` (see the module docstring for what is counted).

    Parameters
    ----------
    plan : ShapePlan
        From :func:`hrgraph.infer_shapes`.

    Returns
    -------
    CostTable
        Its rows sum exactly to ``plan.params`` and ``plan.macs``.

    Examples
    --------
    >>> from hrgraph import load_spec, infer_shapes
    >>> plan = infer_shapes(load_spec("specs/hiresnet18.yaml"))
    >>> table = count_cost(plan)
    >>> (table.total.params, table.total.macs) == (plan.params, plan.macs)
    True
    >>> edge = table.projections[2]
    >>> edge.name, edge.cost.params, edge.cost.macs, edge.cost.pool
    ('stem->stage4', 33792, 524288, 65536)
    >>> f"{table.share(edge, 'macs'):.2%}"
    '0.09%'
    """
    spec = plan.spec
    nodes = []
    for node_id in plan.order:
        n = plan.nodes[node_id]
        block = spec.nodes[spec.node_index[node_id]]
        ops = block.op_counts(n.in_shape)
        runs = plan.runs("node", node_id)
        nodes.append(CostRow("node", node_id, n.label, n.out_shape, _cost(n.params, n.macs, prod(n.out_shape), ops, runs)))
    projections = tuple(_row("projection", p.name, p, plan.runs("edge", key)) for key, p in plan.projections.items())
    merges: list[CostRow] = []
    for merge in plan.merges.values():
        merges.extend(
            _row("input", f"{p.source}->{merge.node} (input)", p, plan.runs("input", (merge.node, k)))
            for k, p in enumerate(merge.inputs)
        )
        n = len(merge.inputs)
        elements = prod(merge.out_shape)
        adds = 0 if merge.aggregate == "concat" else (n - 1) * elements
        own = merge.params - sum(p.params for p in merge.inputs)
        label = f"{merge.aggregate} of {n}"
        runs = plan.runs("node", merge.node)
        merges.append(CostRow("merge", f"{merge.node} ({merge.aggregate})", label, merge.out_shape, _cost(own, 0, elements if n > 1 else 0, OpCounts(add=adds), runs)))
    return CostTable(
        name=spec.name,
        fingerprint=spec.fingerprint,
        input_shape=plan.input_shape,
        output_shape=plan.output_shape,
        nodes=tuple(nodes),
        projections=projections,
        merges=tuple(merges),
        time=plan.to_dict().get("time"),
    )


def _row(kind: str, name: str, p: Projection, runs: int = 1) -> CostRow:
    label = _projection_label(p) + (f" (delay {p.delay})" if p.delay else "")
    return CostRow(kind, name, label, p.out_shape, _cost(p.params, p.macs, 0 if p.identity else prod(p.out_shape), _projection_ops(p), runs))
