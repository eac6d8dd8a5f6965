"""Shape inference: the (C, H, W) of every node and the projection of every edge.

Runs on the spec alone, without torch, so that a spec is validated, counted
and drawn in milliseconds.  The projection rule is the HiResNet paper's: an
edge whose source and target shapes differ gets average pooling (kernel =
stride = the integer spatial ratio) where the spatial sizes differ, then a 1x1
convolution without bias and a batch norm; an edge whose shapes match is the
identity unless it asks for a convolution.

The plan it returns (:class:`ShapePlan` and its parts) is defined in
:mod:`hrgraph.build.plan`, and re-exported here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from ..errors import ShapeError
from .graph import check_graph, topological_order
from .plan import format_count, format_shape, Projection, Merge, NodeShape, ShapePlan  # noqa: F401 (re-exported)
from .unroll import plan_time
from ..spec.kinds import NETWORK_INPUT, Shape, bn_params, conv_params
from ..spec.models import Edge, InputShape, Spec

__all__ = ["Projection", "Merge", "NodeShape", "ShapePlan", "plan_merge", "infer_shapes", "count_params", "format_count", "format_shape"]

#: Refuse specs above this many parameters (8 GB of float32 weights) unless
#: the caller raises the limit: a typo should fail here, not in an allocator.
MAX_PARAMS = 2_000_000_000
#: Refuse the input or any node's output above this many elements for one
#: sample (1 GiB of float32; a 64x2048x2048 feature map) unless the caller
#: raises the limit: shapes are checked before torch allocates anything.
MAX_ACTIVATION = 1 << 28


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
        # A delayed input from a node computed later has no shape yet: refused below unless a merge can wait for it.
        in_shape = shape_in if source in (None, NETWORK_INPUT) else nodes[source].out_shape if source in nodes else None
        where = _node_where(spec, position)
        merge = None
        if isinstance(block.input, list):
            known = [shape_in if s == NETWORK_INPUT else nodes[s].out_shape if s in nodes else None for s in sources]
            merge = plan_merge(spec, node_id, known, max_activation)
            merges[node_id] = merge
            in_shape = merge.out_shape
            total += merge.params
        elif source not in (None, NETWORK_INPUT) and source not in nodes:
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
            src = shape_in if edge.from_ == NETWORK_INPUT else nodes[edge.from_].out_shape
            projection = plan_projection(spec, edge, src, block_shape)
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
    plan = ShapePlan(
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
    if plan.time is None or not any(_per_step(spec, n) for n in order):
        return plan
    plan = _per_step_norms(plan)
    if plan.params > max_params:
        raise ShapeError(
            f"the network would have {format_count(plan.params)} parameters with one set of norms per step, above "
            f"the limit of {format_count(max_params)}; raise max_params if this is intended",
            **_time_where(spec),
        )
    return plan


def _per_step(spec: Spec, node_id: str) -> bool:
    """Whether a node keeps one copy of its norms per step (``step_norm``, the node's or the spec's)."""
    block = spec.node(node_id)
    chosen = block.step_norm or (spec.time.step_norm if spec.time is not None else None)
    return chosen == "per_step" and not block.owns_steps


def _per_step_norms(plan: ShapePlan) -> ShapePlan:
    """The plan with a copy of the norms per step for every ``per_step`` node and the projections into it.

    A node's norms are copied for the steps it runs at in the full schedule
    (edges cut at run time only remove runs); a projection's for the steps it
    carries a value at.  A node or projection that runs once keeps its one set.
    """
    spec, time = plan.spec, plan.time
    node_steps: dict[str, set[int]] = {}
    edge_steps: dict[tuple[str, str], set[int]] = {}
    input_steps: dict[tuple[str, int], set[int]] = {}
    for run in time.runs:
        node_steps.setdefault(run.node, set()).add(run.step)
        for p, _ in run.edges:
            edge_steps.setdefault(p.edge.key, set()).add(run.step)
        for k, v in enumerate(run.inputs):
            if v is not None:
                input_steps.setdefault((run.node, k), set()).add(run.step)

    def copied(p: Projection, steps: set[int] | None) -> Projection:
        if p.conv is None or not steps or len(steps) < 2:
            return p
        return replace(p, params=p.params + (len(steps) - 1) * bn_params(p.conv[1]), norm_steps=tuple(sorted(steps)))

    nodes, projections, merges = dict(plan.nodes), dict(plan.projections), dict(plan.merges)
    for node_id in plan.order:
        if not _per_step(spec, node_id):
            continue
        steps = node_steps.get(node_id, set())
        n = nodes[node_id]
        if len(steps) >= 2:
            extra = (len(steps) - 1) * spec.node(node_id).norm_params(n.in_shape)
            nodes[node_id] = replace(n, params=n.params + extra, norm_steps=tuple(sorted(steps)))
        for p in plan.incoming[node_id]:
            projections[p.edge.key] = copied(p, edge_steps.get(p.edge.key))
        if node_id in merges:
            m = merges[node_id]
            merges[node_id] = replace(m, inputs=tuple(copied(p, input_steps.get((node_id, k))) for k, p in enumerate(m.inputs)))
            nodes[node_id] = replace(nodes[node_id], merge=merges[node_id])
    incoming = {k: tuple(projections[p.edge.key] for p in v) for k, v in plan.incoming.items()}
    return replace(
        plan, nodes=nodes, projections=projections, merges=merges, incoming=incoming,
        time=plan_time(spec, plan.order, incoming),
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


def _time_where(spec: Spec) -> dict[str, Any]:
    mark = spec.locate("time")
    return {"path": spec.path} if mark is None else {"path": mark.path, "line": mark.line, "column": mark.column}


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
