"""Shape inference: the (C, H, W) of every node and the projection of every edge.

Runs on the spec alone, without torch, so that a spec is validated, counted
and drawn in milliseconds.  The projection rule is the HiResNet paper's: an
edge whose source and target shapes differ gets average pooling (kernel =
stride = the integer spatial ratio) where the spatial sizes differ, then a 1x1
convolution without bias and a batch norm; an edge whose shapes match is the
identity unless it asks for a convolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
from pydantic import ValidationError

from ..errors import ShapeError
from .graph import check_graph, delayed_links, topological_order
from .unroll import TimePlan, plan_time
from ..spec.kinds import Shape, bn_params, conv_params
from ..spec.models import Edge, InputShape, Spec

__all__ = ["Projection", "Merge", "NodeShape", "ShapePlan", "plan_merge", "infer_shapes", "count_params", "format_count", "format_shape"]

#: Refuse specs above this many parameters (8 GB of float32 weights) unless
#: the caller raises the limit: a typo should fail here, not in an allocator.
MAX_PARAMS = 2_000_000_000
#: Refuse the input or any node's output above this many elements for one
#: sample (1 GiB of float32; a 64x2048x2048 feature map) unless the caller
#: raises the limit: shapes are checked before torch allocates anything.
MAX_ACTIVATION = 1 << 28


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


def _edge_error(spec: Spec, edge: Edge, message: str) -> ShapeError:
    index = next((i for i, e in enumerate(spec.edges) if e.key == edge.key), None)
    if index is None:  # one item of a list input (its caller locates it)
        return ShapeError(message, path=spec.path)
    mark = spec.locate("edges", index)
    where = {"path": spec.path} if mark is None else {"path": mark.path, "line": mark.line, "column": mark.column}
    return ShapeError(message, edge=edge.name, **where)


def _input_where(spec: Spec, node_id: str, k: int) -> dict[str, Any]:
    position = spec.node_index[node_id]
    listed = isinstance(spec.nodes[position].input, list)
    mark = spec.locate("nodes", position, "input", k) if listed else spec.locate("nodes", position, "input")
    return {"path": spec.path} if mark is None else {"path": mark.path, "line": mark.line, "column": mark.column}


def plan_merge(spec: Spec, node_id: str, shapes: list[Shape], max_activation: int = MAX_ACTIVATION) -> Merge:
    """The merge of ``node_id``'s list ``input``, whose nodes have ``shapes``.

    ``sum``, ``mean`` and ``weighted`` keep the first input's channels and the
    smallest spatial size; every input gets the edge rule onto that shape
    (average pooling by the integer ratio, a 1x1 conv + BN where channels
    differ).  ``concat`` needs one spatial size and adds up the channels.

    Raises
    ------
    ShapeError
        Spatial sizes that do not divide (sum, mean, weighted) or differ
        (concat), located at the offending item of ``input``.

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> spec = load_spec('''
    ... input: {channels: 3, height: 32, width: 32}
    ... nodes:
    ...   - {id: a, kind: conv, channels: 16}
    ...   - {id: b, kind: conv, channels: 32, stride: 2}
    ...   - {id: c, kind: identity, input: [b, a], aggregate: weighted}
    ...   - {id: head, kind: classifier, classes: 10}
    ... ''')
    >>> merge = plan_merge(spec, "c", [(32, 16, 16), (16, 32, 32)])
    >>> merge.out_shape, [p.describe() for p in merge.inputs], merge.params
    ((32, 16, 16), ['identity', 'avgpool 2 -> 1x1 conv 16->32 + BN, 576 params'], 578)
    """
    block = spec.node(node_id)
    sources = block.inputs
    delays = block.input_delays
    # A delayed input from a node computed later (or from the node itself) has no shape yet
    # (None): the merge's shape comes from the others, and infer_shapes projects it afterwards.
    known = [k for k, shape in enumerate(shapes) if shape is not None]
    if len(known) < len(shapes):
        later = sources[next(k for k, shape in enumerate(shapes) if shape is None)]
        if not known or block.aggregate == "concat":
            why = "every input is" if not known else "with aggregate: concat, an input's channels widen the node, so no input can be"
            raise ShapeError(
                f"{why} delayed from a node computed later or from the node itself ('{later}'), whose shape is "
                "not known before this node's; list an input from an earlier node",
                node=node_id,
                **_input_where(spec, node_id, known[0] if known else 0),
            )
    if block.aggregate == "concat":
        size = shapes[0][1:]
        for k, shape in enumerate(shapes):
            if shape[1:] != size:
                raise ShapeError(
                    f"aggregate: concat joins inputs of one spatial size, but '{sources[0]}' is "
                    f"{size[0]}x{size[1]} and '{sources[k]}' is {shape[1]}x{shape[2]}; use aggregate: sum, mean "
                    "or weighted (which pool to the smallest size), or pool the larger input first",
                    node=node_id,
                    **_input_where(spec, node_id, k),
                )
        out: Shape = (sum(s[0] for s in shapes), size[0], size[1])
        targets = list(shapes)
    else:
        h, w = min(shapes[k][1] for k in known), min(shapes[k][2] for k in known)
        for k in known:
            _, sh, sw = shapes[k]
            if sh % h or sw % w:
                raise ShapeError(
                    f"input '{sources[k]}' is {sh}x{sw}, not an integer multiple of the merge's {h}x{w} "
                    "(its smallest input), so it cannot be average-pooled onto it",
                    node=node_id,
                    **_input_where(spec, node_id, k),
                )
        out = (shapes[known[0]][0], h, w)
        targets = [out] * len(shapes)
    if _elements(out) > max_activation:
        raise ShapeError(
            f"merged input {_too_large(out, max_activation)}", node=node_id, **_node_where(spec, spec.node_index[node_id])
        )
    inputs = tuple(
        None
        if shape is None
        else replace(plan_projection(spec, Edge(**{"from": source, "to": node_id, "delay": delay}), shape, target), role="input")
        for source, delay, shape, target in zip(sources, delays, shapes, targets)
    )
    return Merge(node=node_id, aggregate=block.aggregate, inputs=inputs, out_shape=out)


def plan_projection(spec: Spec, edge: Edge, src: Shape, dst: Shape) -> Projection:
    """The projection of ``edge`` from shape ``src`` to the target block's shape ``dst``.

    For a concat edge only the spatial size of ``dst`` matters.

    A coarser source is upsampled (``edge.upsample``) by the integer factor, then
    gets the 1x1 conv + BN where channels differ.

    Raises
    ------
    ShapeError
        Upsampling by a non-integer factor, the spatial ratio is not an integer
        (and the edge does not ask for adaptive pooling), or an ``identity``
        edge joins different shapes.
    """
    c, h, w = src
    tc, th, tw = dst
    pool = kernel = upsample = factor = None
    if th > h or tw > w:
        # A top-down edge (feedback, an FPN/U-Net path): upsample by an integer factor, the
        # mirror of the average pooling below; the 1x1 conv + BN then runs at the finer size.
        if th < h or tw < w or th % h or tw % w:
            raise _edge_error(
                spec,
                edge,
                f"source is {h}x{w} but target is {th}x{tw}: upsampling needs an integer factor on both axes "
                "(and pooling an integer ratio), so this pair of sizes cannot be joined",
            )
        if edge.projection == "identity":
            raise _edge_error(spec, edge, f"projection: identity, but the spatial sizes differ ({h}x{w} vs {th}x{tw})")
        upsample, factor = edge.upsample, (th // h, tw // w)
    elif (h, w) != (th, tw):
        if edge.projection == "identity":
            raise _edge_error(spec, edge, f"projection: identity, but the spatial sizes differ ({h}x{w} vs {th}x{tw})")
        if edge.pool == "adaptive":
            pool = "adaptive"
        elif h % th or w % tw:
            raise _edge_error(
                spec,
                edge,
                f"spatial ratio {h}x{w} -> {th}x{tw} is not an integer; set 'pool: adaptive' on the edge "
                "to use adaptive average pooling",
            )
        else:
            pool, kernel = edge.pool, (h // th, w // tw)
    if edge.merge == "sum":
        out_c = tc
        if edge.projection == "identity" and c != tc:
            raise _edge_error(spec, edge, f"projection: identity, but the channels differ ({c} vs {tc})")
        needs_conv = edge.projection == "conv" or c != tc
    else:  # concat: keep the source's channels unless a conv is asked for
        needs_conv = edge.projection == "conv"
        out_c = (edge.channels or c) if needs_conv else c
    conv = (c, out_c) if needs_conv else None
    params = conv_params(c, out_c, 1) + bn_params(out_c) if conv else 0
    params += 0 if edge.gate == "none" else 1
    return Projection(
        edge=edge,
        in_shape=src,
        out_shape=(out_c, th, tw),
        pool=pool,
        pool_kernel=kernel,
        conv=conv,
        params=params,
        macs=c * out_c * th * tw if conv else 0,
        upsample=upsample,
        upsample_factor=factor,
        delay=edge.delay,
    )


def infer_shapes(
    spec: Spec,
    *,
    input_shape: Shape | None = None,
    max_params: int = MAX_PARAMS,
    max_activation: int = MAX_ACTIVATION,
) -> ShapePlan:
    """Check ``spec``'s graph and infer every shape and projection.

    Parameters
    ----------
    spec : Spec
    input_shape : (int, int, int), optional
        Override the spec's input ``(C, H, W)``; it must keep within the
        limits of the spec's ``input`` (docs/spec.md, Limits).
    max_params : int
        Refuse networks with more parameters than this.
    max_activation : int
        Refuse an input or a node output with more elements per sample than this.

    Returns
    -------
    ShapePlan

    Raises
    ------
    GraphError
        From :func:`~hrgraph.build.graph.check_graph`.
    ShapeError
        A block or an edge does not fit its input, or the network is too large.

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> plan = infer_shapes(load_spec("specs/hiresnet18.yaml"))
    >>> plan.nodes["stage4"].out_shape
    (512, 4, 4)
    >>> plan.projections["stem", "stage4"].describe()
    'avgpool 8 -> 1x1 conv 64->512 + BN, 33.8k params'
    """
    graph = check_graph(spec)
    order = topological_order(spec, graph)
    shape_in = _checked_input(spec, input_shape, max_activation)
    nodes: dict[str, NodeShape] = {}
    projections: dict[tuple[str, str], Projection] = {}
    incoming: dict[str, list[Projection]] = {node_id: [] for node_id in order}
    by_target: dict[str, list[Edge]] = {node_id: [] for node_id in order}
    for edge in spec.edges:
        by_target[edge.to].append(edge)
    merges: dict[str, Merge] = {}
    total = 0
    for node_id in order:
        position = spec.node_index[node_id]
        block = spec.nodes[position]
        sources = spec.node_inputs(position)
        source = sources[0]
        in_shape = shape_in if source is None else nodes[source].out_shape
        where = _node_where(spec, position)
        merge = None
        if isinstance(block.input, list):
            known = [nodes[s].out_shape if s in nodes else None for s in sources]
            merge = plan_merge(spec, node_id, known, max_activation)
            merges[node_id] = merge
            in_shape = merge.out_shape
            total += merge.params
        elif source is not None and source not in nodes:
            raise ShapeError(
                f"input '{source}' is delayed from a node computed later or from this node itself, so its shape "
                "is not known before this node's; give a list input whose first item comes from an earlier node",
                node=node_id,
                **_input_where(spec, node_id, 0),
            )
        try:
            block_shape = tuple(block.out_shape(in_shape))
            params = block.param_count(in_shape)
            macs = block.macs(in_shape)
        except ShapeError as err:
            raise ShapeError(err.message, node=node_id, **where) from None
        out_c = block_shape[0]
        for edge in by_target[node_id]:
            if edge.delay:  # planned once every node has its shape (below)
                continue
            projection = plan_projection(spec, edge, nodes[edge.from_].out_shape, block_shape)
            projections[edge.key] = projection
            incoming[node_id].append(projection)
            if edge.merge == "concat":
                out_c += projection.out_shape[0]
            total += projection.params
        out_shape = (out_c, block_shape[1], block_shape[2])
        total += params
        if total > max_params:
            raise ShapeError(
                f"the network would have over {format_count(total)} parameters ({total * 4 / 2**30:.1f} GiB of "
                f"float32 weights) by this node, above the limit of {format_count(max_params)}; "
                "raise max_params if this is intended",
                node=node_id,
                **where,
            )
        if _elements(out_shape) > max_activation:
            raise ShapeError(f"output {_too_large(out_shape, max_activation)}", node=node_id, **where)
        nodes[node_id] = NodeShape(
            id=node_id,
            kind=block.kind,
            label=block.label(),
            input=source,
            in_shape=in_shape,
            block_shape=block_shape,
            out_shape=out_shape,
            params=params,
            macs=macs,
            inputs=sources,
            merge=merge,
        )
    # Delayed links may come from nodes computed later (feedback) or from the node itself.
    for edge in spec.edges:
        if not edge.delay:
            continue
        if edge.merge == "concat":
            raise _edge_error(spec, edge, "a delayed edge cannot be merge: concat (it has no value at the first steps, and would widen its target)")
        projection = plan_projection(spec, edge, nodes[edge.from_].out_shape, nodes[edge.to].block_shape)
        projections[edge.key] = projection
        incoming[edge.to].append(projection)
        total += projection.params
    for node_id, merge in list(merges.items()):
        if None in merge.inputs:
            merges[node_id] = _complete_merge(spec, merge, nodes)
            nodes[node_id] = replace(nodes[node_id], merge=merges[node_id])
            total += merges[node_id].params - merge.params
    # Order projections as the spec lists its edges.
    projections = {e.key: projections[e.key] for e in spec.edges}
    rank = {e.key: i for i, e in enumerate(spec.edges)}
    incoming = {k: sorted(v, key=lambda p: rank[p.edge.key]) for k, v in incoming.items()}
    incoming = {k: tuple(v) for k, v in incoming.items()}
    return ShapePlan(
        spec=spec,
        graph=graph,
        input_shape=shape_in,
        order=tuple(order),
        nodes=nodes,
        projections=projections,
        incoming=incoming,
        merges=merges,
        time=plan_time(spec, order, incoming) if spec.time is not None else None,
    )


def _complete_merge(spec: Spec, merge: Merge, nodes: dict[str, NodeShape]) -> Merge:
    """Project the delayed inputs that :func:`plan_merge` left as ``None`` onto the merge's shape."""
    block = spec.node(merge.node)
    inputs = list(merge.inputs)
    for k, (source, delay) in enumerate(zip(block.inputs, block.input_delays)):
        if inputs[k] is not None:
            continue
        edge = Edge(**{"from": source, "to": merge.node, "delay": delay})
        try:
            inputs[k] = replace(plan_projection(spec, edge, nodes[source].out_shape, merge.out_shape), role="input")
        except ShapeError as err:
            message = err.message.split(": ", 1)[-1] if err.message.startswith(edge.name) else err.message
            raise ShapeError(f"input '{source}': {message}", node=merge.node, **_input_where(spec, merge.node, k)) from None
    return replace(merge, inputs=tuple(inputs))


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for v in shape:
        n *= v
    return n


def _too_large(shape: Shape, limit: int) -> str:
    n = _elements(shape)
    return (
        f"{format_shape(shape)} has {n:,} elements per sample ({n * 4 / 2**30:.1f} GiB of float32), above the "
        f"limit of {limit:,}; raise max_activation (--max-activation) if this is intended"
    )


def _checked_input(spec: Spec, input_shape: Shape | None, max_activation: int) -> Shape:
    """The input shape, after the limits a spec's ``input`` has (an override gets the same)."""
    if input_shape is None:
        shape, mark = spec.input.shape, spec.locate("input")
    else:
        values = tuple(input_shape)
        fields = dict(zip(("channels", "height", "width"), values)) if len(values) == 3 else {}
        try:
            shape = InputShape.model_validate(fields).shape
        except ValidationError as err:
            first = err.errors()[0]
            what = ".".join(map(str, first["loc"]))
            raise ShapeError(
                f"input shape {format_shape(values)}: {what}: {first['msg']} (the limits of a spec's input apply)", path=spec.path
            ) from None
        mark = None
    if _elements(shape) > max_activation:
        where = {"path": spec.path} if mark is None else {"path": mark.path, "line": mark.line, "column": mark.column}
        raise ShapeError(f"input {_too_large(shape, max_activation)}", **where)
    return shape


def _node_where(spec: Spec, position: int) -> dict[str, Any]:
    mark = spec.locate("nodes", position)
    return {"path": spec.path} if mark is None else {"path": mark.path, "line": mark.line, "column": mark.column}


def count_params(spec: Spec, *, input_shape: Shape | None = None) -> int:
    """Parameters of the compiled network, from shapes alone (no module is built).

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> count_params(load_spec("specs/resnet18-imagenet.yaml"))
    11689512
    """
    return infer_shapes(spec, input_shape=input_shape).params
