"""What shape inference produces: the plan of every node's shape, every edge's projection and every merge.

:class:`ShapePlan` (with :class:`NodeShape`, :class:`Projection`, :class:`Merge`)
is the one description of a network that the compiler, the cost tables, the
diagrams and the CLI read; :mod:`hrgraph.build.shapes` computes it.  No torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..spec.kinds import Shape
from ..spec.models import Edge, Spec
from .graph import delayed_links
from .unroll import TimePlan

def format_count(n: int) -> str:
    """Compact count: ``33.8k``, ``11.7M``.

    Examples
    --------
    >>> format_count(33792), format_count(11689512), format_count(512)
    ('33.8k', '11.7M', '512')
    """
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def format_shape(shape: tuple[int, ...]) -> str:
    """``64x32x32`` for ``(64, 32, 32)``.

    Examples
    --------
    >>> format_shape((512, 4, 4))
    '512x4x4'
    """
    return "x".join(str(v) for v in shape)


@dataclass(frozen=True)
class Projection:
    """What the compiler inserts on one long-range edge.

    ``pool`` is ``None``, ``"avg"``, ``"max"`` (kernel = stride = ``pool_kernel``)
    or ``"adaptive"`` (adaptive average pooling to the target's size); ``conv``
    is ``None`` or ``(in_channels, out_channels)`` of the 1x1 conv + BN.
    """

    edge: Edge
    in_shape: Shape
    out_shape: Shape
    pool: str | None
    pool_kernel: tuple[int, int] | None
    conv: tuple[int, int] | None
    params: int
    macs: int
    #: ``"edge"``: a long-range edge (``model.projections``); ``"input"``: one
    #: input of a node's list ``input``, projected onto the merge's shape (``model.inputs``).
    role: str = "edge"
    #: ``"nearest"`` or ``"bilinear"`` where a coarser source is upsampled onto a finer target, else ``None``.
    upsample: str | None = None
    #: The integer upsampling factors ``(fh, fw)``.
    upsample_factor: tuple[int, int] | None = None
    #: Steps of delay (0: the same step).
    delay: int = 0
    #: Under ``step_norm: per_step``: the steps it runs at, one copy of its BN each (empty: one BN).
    norm_steps: tuple[int, ...] = ()

    @property
    def source(self) -> str:
        return self.edge.from_

    @property
    def target(self) -> str:
        return self.edge.to

    @property
    def name(self) -> str:
        return self.edge.name

    @property
    def module_name(self) -> str:
        return self.edge.module_name

    @property
    def merge(self) -> str:
        return self.edge.merge

    @property
    def identity(self) -> bool:
        return self.pool is None and self.conv is None and self.upsample is None

    @property
    def gate(self) -> str:
        """``none``, ``scalar`` or ``sigmoid`` (the edge's learnable weight; its one parameter is in ``params``)."""
        return self.edge.gate

    def describe(self) -> str:
        """One line, e.g. ``avgpool 4 -> 1x1 conv 64->512 + BN, 33.8k params``."""
        gate = "" if self.gate == "none" else f", {self.gate} gate"
        if self.identity:
            return f"identity{gate}"
        parts = []
        if self.upsample is not None:
            fh, fw = self.upsample_factor
            parts.append(f"{self.upsample} upsample {fh}" if fh == fw else f"{self.upsample} upsample {fh}x{fw}")
        if self.pool == "adaptive":
            parts.append(f"adaptive avgpool {self.out_shape[1]}x{self.out_shape[2]}")
        elif self.pool is not None:
            kh, kw = self.pool_kernel
            parts.append(f"{self.pool}pool {kh}" if kh == kw else f"{self.pool}pool {kh}x{kw}")
        if self.conv is not None:
            parts.append(f"1x1 conv {self.conv[0]}->{self.conv[1]} + BN")
        text = " -> ".join(parts) + gate
        return f"{text}, {format_count(self.params)} params" if self.conv else text


@dataclass(frozen=True)
class Merge:
    """How a node's list ``input`` is merged before its block.

    ``inputs`` holds one projection per listed node, onto ``out_shape`` (for
    ``concat``, onto its own channels and the common spatial size).  ``params``
    counts the projections and, for ``weighted``, one weight per input.
    """

    node: str
    aggregate: str
    inputs: tuple[Projection, ...]
    out_shape: Shape

    @property
    def params(self) -> int:
        # (An input is None only while infer_shapes waits for a delayed source's shape.)
        return sum(p.params for p in self.inputs if p is not None) + (len(self.inputs) if self.aggregate == "weighted" else 0)

    @property
    def macs(self) -> int:
        return sum(p.macs for p in self.inputs)

    def describe(self) -> str:
        """One line, e.g. ``weighted of 3 inputs, 3 params``."""
        text = f"{self.aggregate} of {len(self.inputs)} inputs"
        return f"{text}, {format_count(self.params)} params" if self.params else text


@dataclass(frozen=True)
class NodeShape:
    """Shapes of one node: its input, its block's output, and its output after merges."""

    id: str
    kind: str
    label: str
    input: str | None
    in_shape: Shape
    block_shape: Shape
    out_shape: Shape
    params: int
    macs: int
    #: Every node feeding this one, in order (``input`` is the first); ``None`` is the network input.
    inputs: tuple[str | None, ...] = ()
    #: The merge of a list ``input``, or ``None``.
    merge: Merge | None = None
    #: Under ``step_norm: per_step``: the steps it runs at, one copy of its norms each (empty: one set).
    norm_steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class ShapePlan:
    """Everything the compiler and the renderer need, computed from the spec alone."""

    spec: Spec
    graph: nx.DiGraph = field(repr=False)
    input_shape: Shape
    order: tuple[str, ...]
    nodes: dict[str, NodeShape]
    projections: dict[tuple[str, str], Projection]
    incoming: dict[str, tuple[Projection, ...]]
    #: The merges of nodes with a list ``input``, by node id, in topological order.
    merges: dict[str, Merge] = field(default_factory=dict)
    #: The schedule over time of a spec with a ``time`` section (:mod:`hrgraph.build.unroll`), else ``None``.
    time: TimePlan | None = None

    def runs(self, what: str, key: Any) -> int:
        """How many times a node (``what="node"``), an edge's projection (``"edge"``, key ``(from, to)``)
        or an item of a list input (``"input"``, key ``(node, k)``) runs in one forward (1 without time).
        """
        if self.time is None:
            return 1
        table = {"node": self.time.node_runs, "edge": self.time.edge_runs, "input": self.time.input_runs}[what]
        return table.get(key, 0)

    def step_macs(self) -> dict[int, int]:
        """Multiply-accumulates by step (the node's own step under ``scheme: sequential``); ``{0: macs}`` without time."""
        if self.time is None:
            return {0: self.macs}
        out: dict[int, int] = {}
        for run in self.time.runs:
            n = self.nodes[run.node]
            macs = n.macs + sum(p.macs for p, _ in run.edges)
            if n.merge is not None:
                macs += sum(p.macs for p, v in zip(n.merge.inputs, run.inputs) if v is not None)
            out[run.step] = out.get(run.step, 0) + macs
        return out

    @property
    def params(self) -> int:
        """Learnable parameters of the whole network."""
        return (
            sum(n.params for n in self.nodes.values())
            + sum(p.params for p in self.projections.values())
            + sum(m.params for m in self.merges.values())
        )

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass of one sample (convolutions and linear layers), over all steps."""
        return (
            sum(n.macs * self.runs("node", n.id) for n in self.nodes.values())
            + sum(p.macs * self.runs("edge", k) for k, p in self.projections.items())
            + sum(
                p.macs * self.runs("input", (m.node, k)) for m in self.merges.values() for k, p in enumerate(m.inputs)
            )
        )

    @property
    def output_shape(self) -> Shape:
        return self.nodes[self.spec.nodes[-1].id].out_shape

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``hrgraph compile --json`` prints)."""
        return {
            "name": self.spec.name,
            "fingerprint": self.spec.fingerprint,
            "input": list(self.input_shape),
            "output": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            **self._time_dict(),
            "nodes": [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "block": n.label,
                    "input": n.input,
                    **({"inputs": list(n.inputs), "aggregate": n.merge.aggregate} if n.merge else {}),
                    **({"delays": list(d)} if any(d := self.spec.node(n.id).input_delays) else {}),
                    "in_shape": list(n.in_shape),
                    "out_shape": list(n.out_shape),
                    "params": n.params,
                }
                for n in (self.nodes[i] for i in self.order)
            ],
            "projections": [
                {
                    "edge": p.name,
                    "from": p.source,
                    "to": p.target,
                    "merge": p.merge,
                    "pool": p.pool,
                    "pool_kernel": list(p.pool_kernel) if p.pool_kernel else None,
                    "conv": list(p.conv) if p.conv else None,
                    "in_shape": list(p.in_shape),
                    "out_shape": list(p.out_shape),
                    "params": p.params,
                    **({"gate": p.gate} if p.gate != "none" else {}),
                    **({"delay": p.delay} if p.delay else {}),
                    "description": p.describe(),
                }
                for p in self.projections.values()
            ],
            **({"merges": [_merge_dict(m) for m in self.merges.values()]} if self.merges else {}),
        }


    def _step_norm_dict(self) -> dict[str, Any]:
        # step_norm: per_step only: which modules keep a copy of their norms per step, and for which steps.
        norms = {f"nodes.{n.id}": list(n.norm_steps) for n in self.nodes.values() if n.norm_steps}
        norms.update({f"projections.{p.module_name}": list(p.norm_steps) for p in self.projections.values() if p.norm_steps})
        norms.update({f"inputs.{p.module_name}": list(p.norm_steps) for m in self.merges.values() for p in m.inputs if p.norm_steps})
        return {"step_norms": norms} if norms else {}

    def _time_dict(self) -> dict[str, Any]:
        # Only specs with time get these keys: the JSON of every other spec is unchanged.
        if self.time is None:
            return {}
        t = self.time
        return {
            "time": {
                "scheme": t.scheme,
                "steps": t.steps,
                "readout": t.readout,
                "node_steps": dict(t.node_steps),
                "node_runs": {n: t.node_runs.get(n, 0) for n in self.order},
                "step_macs": {str(k): v for k, v in sorted(self.step_macs().items())},
                **self._step_norm_dict(),
                "delayed": [
                    {"from": source, "to": target, "delay": delay, "role": what}
                    for what, source, target, _, delay in delayed_links(self.graph)
                ],
            }
        }


def _merge_dict(m: Merge) -> dict[str, Any]:
    return {
        "node": m.node,
        "aggregate": m.aggregate,
        "inputs": [p.source for p in m.inputs],
        "out_shape": list(m.out_shape),
        "params": m.params,
        "projections": [p.describe() for p in m.inputs],
    }
