"""Graphviz diagrams of a spec, drawn before any module is built.

The diagram shows what hand-drawn HiResNet figures show: the main path as a
straight column from the input to the head, the long-range edges beside it in
their own colour, and every node's block, output shape and parameters.  Each
long-range edge is labelled with its ends and the projection the compiler
inserts (``avgpool 4 -> 1x1 conv 64->512 + BN, 33.8k params``); the label sits
just above the target, where the projection joins, so it is read next to the
node it feeds rather than halfway along a long curve.  Everything comes from
:func:`~hrgraph.build.shapes.infer_shapes`: no torch is imported here.

A spec with a ``time`` section says its scheme, steps and readout under the
title; a delayed link (``delay >= 1``: feedback, a self-loop, a delayed item of
a list ``input``) is dashed pink and labelled with its delay and projection
(``delay 1, nearest upsample 2 -> 1x1 conv 32->16 + BN``); one from a node
computed later points back up the column without moving any rank
(``constraint=false``).  Every node and edge carries a hover tooltip with its
parameters and MACs (:mod:`hrgraph.draw.tooltips`); ``color_by`` colours edges
by an analysis (:mod:`hrgraph.draw.overlay`).  Collapsed diagrams (one box per
group) are :mod:`hrgraph.draw.collapse`.

The DOT source is plain text and always available (:func:`to_dot`); turning it
into SVG, PNG or PDF needs Graphviz's ``dot`` program (:func:`render`).

Why one module: the plain diagram, the diff diagram and the time drawing share
the node labels, the edge styles and the label placement of long-range edges;
split apart they would need a module of private helpers imported by all three.
Hover text, colouring by an analysis and collapsing are separate modules because
they stand on their own.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import graphviz
import networkx as nx

from ..edit.diff import SpecDiff, diff_specs, edge_text
from ..errors import GraphError, RenderError, did_you_mean
from ..files import write_atomic
from ..build.shapes import NodeShape, Projection, ShapePlan, format_count, format_shape, infer_shapes
from ..spec.models import Spec, load_spec, parse_edge_ref
from .overlay import UNMEASURED, EdgeOverlay, load_overlay
from .tooltips import Tooltips

__all__ = ["FORMATS", "INSTALL_HINT", "to_dot", "render", "diff_dot", "render_diff", "write_diagram", "plan_diagram"]

#: Output formats, chosen by the output file's suffix.
FORMATS = ("svg", "png", "pdf", "dot")
INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: 'sudo apt-get install graphviz'; macOS: 'brew install graphviz'; "
    "conda: 'conda install -c conda-forge graphviz'), or write the DOT source instead with '-o OUT.dot'"
)

# Colours: readable on white and told apart with the common colour blindnesses
# by style as well (main path thick, long-range thin, removed/ablated dashed).
MAIN = "#374151"  # main path: dark grey, thick
LONG = "#2563eb"  # long-range edge with a projection: blue
IDENTITY = "#7c3aed"  # long-range identity edge: violet
ABLATED = "#9ca3af"  # edge of the base spec missing here: light grey, dashed
FEEDBACK = "#db2777"  # delayed link (feedback, recurrence): pink, dashed
UNCHANGED, MUTED = "#93c5fd", "#6b7280"  # in a diff, long-range edges both specs share: pale blue, grey text
ADDED, REMOVED, CHANGED = "#16a34a", "#dc2626", "#ea580c"  # diffs: green, red, orange
STATUS_FILL = {"added": "#dcfce7", "removed": "#fee2e2", "changed": "#ffedd5"}
#: Node fill by block kind; kinds not listed (e.g. registered by users) stay white.
KIND_FILL = {
    "conv": "#fef3c7",
    "plain": "#e0f2fe",
    "basic": "#dbeafe",
    "resnext": "#e0e7ff",
    "bottleneck": "#ede9fe",
    "pool": "#f3f4f6",
    "sepconv": "#ecfccb",
    "identity": "#f9fafb",
    "classifier": "#e5e7eb",
}
#: Above this many nodes, node labels take two lines instead of four, so a
#: 100-node spec stays about as tall as it must be.
COMPACT_NODES = 30
# Node ids may not contain "__", so these names never collide with a node.
INPUT_ID = "__input"
LEGEND_ID = "__legend"
#: Legend samples: line characters drawn in the style's colour.
SOLID, THIN, DASHED = "\u2501\u2501\u2501\u2501", "\u2500\u2500\u2500\u2500", "\u254c\u254c\u254c\u254c"


def _node_label(node: NodeShape, *, compact: bool = False, extra: Iterable[str] = ()) -> str:
    """An HTML-like label: bold id, block, output shape (C x H x W) and parameters."""
    shape = format_shape(node.out_shape)
    if node.block_shape != node.out_shape:  # concat edges widen the output
        shape = f"{format_shape(node.block_shape)} + concat = {shape}"
    params = f"{format_count(node.params)} params"
    if compact:
        lines = [f"<b>{html.escape(node.id)}</b>  {html.escape(node.label)}", f"{shape}, {params}"]
    else:
        lines = [f"<b>{html.escape(node.id)}</b>", html.escape(node.label), shape, params]
    if node.merge is not None:
        merge = f"{node.merge.aggregate} of {len(node.inputs)} inputs"
        lines.insert(1, f"<i>{html.escape(merge)}</i>") if not compact else lines.append(html.escape(merge))
    lines += [html.escape(text) for text in extra]
    return "<" + "<br/>".join(lines) + ">"


def _main_edges(plan: ShapePlan) -> list[tuple[str, str]]:
    """Every input link ``(source, node)``: the main path and each item of a list ``input``."""
    return [(source or INPUT_ID, i) for i in plan.spec.node_ids for source in plan.nodes[i].inputs]


def _draw_main(graph: graphviz.Digraph, plan: ShapePlan, source: str, target: str, **attrs: str) -> None:
    """An input link; one of a list ``input`` after the first is lighter, and labelled when it is projected."""
    node = plan.nodes[target]
    delay = _link_delay(plan, source, target)
    if delay:
        _delayed_link(graph, plan, source, target, delay, **attrs)
        return
    if node.merge is None or source == node.inputs[0]:
        _main_edge(graph, source, target, **attrs)
        return
    projection = next(p for p in node.merge.inputs if p.source == source)
    label = {} if projection.identity else {"label": html.escape(projection.describe()), "fontcolor": MUTED}
    _main_edge(graph, source, target, **{"penwidth": "1.4", "weight": "10", **label, **attrs})


# -- time: delayed links and the time section ----------------------------------


def _link_delay(plan: ShapePlan, source: str, target: str) -> int:
    """Steps of delay of the input link ``source -> target`` (0 for the network input and undelayed items)."""
    block = plan.spec.nodes[plan.spec.node_index[target]]
    return next((d for s, d in zip(block.inputs, block.input_delays) if s == source), 0)


def _points_back(plan: ShapePlan, source: str, target: str) -> bool:
    """Whether a link goes from a node computed at or after its target (feedback or a self-loop)."""
    # Asked only of delayed links, so a linear search of the order is cheap enough.
    return source in plan.nodes and plan.order.index(source) >= plan.order.index(target)


def _back_attrs(plan: ShapePlan, source: str, target: str) -> dict[str, str]:
    # constraint=false: a feedback link is drawn pointing back up the column without
    # pulling its source above its target, so the rank order stays the computation order.
    return {"constraint": "false"} if _points_back(plan, source, target) else {}


def _delayed_link(graph: graphviz.Digraph, plan: ShapePlan, source: str, target: str, delay: int, **attrs: str) -> None:
    """An input link read from an earlier step: dashed, labelled with its delay and its projection.

    A self-loop is drawn as a loop; a link from a later node points back without
    moving ranks; a forward one (``V1 -> V2_input``) keeps its place in the column.
    """
    node = plan.nodes[target]
    projection = None if node.merge is None else next(p for p in node.merge.inputs if p.source == source)
    text = f"delay {delay}" + ("" if projection is None or projection.identity else f", {projection.describe()}")
    first = not node.inputs or source == node.inputs[0]
    style = {
        "color": FEEDBACK, "style": "dashed", "penwidth": "1.6" if first else "1.4", "weight": "100" if first else "10",
        "label": html.escape(text), "fontcolor": FEEDBACK, **_back_attrs(plan, source, target),
    }
    graph.edge(source, target, **{**style, **attrs})


def _feedback_edge(graph: graphviz.Digraph, plan: ShapePlan, projection: Projection, depth: dict[str, int], prefix: str, **attrs: str) -> None:
    """A long-range edge with a delay: dashed, its label saying the delay then the projection (upsampling included)."""
    key = projection.edge.key
    label = _edge_html(key, f"delay {projection.delay}, {edge_text(projection)}", prefix=prefix)
    style = {"color": FEEDBACK, "fontcolor": FEEDBACK, "style": "dashed", "penwidth": "1.4", **attrs}
    back = _back_attrs(plan, *key)
    if back:
        graph.edge(*key, label=label, **back, **style)
    else:
        _long_edge(graph, key, label, depth, **style)


def time_line(plan: ShapePlan) -> str | None:
    """The title's second line for a spec with ``time``: scheme, steps, readout (``None`` without time).

    Examples
    --------
    >>> time_line(infer_shapes(load_spec("specs/examples/cornet-rt.yaml")))
    'time: biological, 5 steps, readout last; 7 delayed links (dashed)'
    """
    time = plan.spec.time
    if time is None:
        return None
    if time.scheme == "sequential":
        own = [f"{b.id} {b.steps}" for b in plan.spec.nodes if (getattr(b, "steps", None) or 1) > 1]
        steps = f"node after node, steps: {', '.join(own)}" if own else "node after node"
        text = f"time: sequential ({steps})"
    else:
        text = f"time: biological, {time.steps} step{'s' if time.steps != 1 else ''}, readout {time.readout}"
    if time.idle != "silent":
        text += f", idle {time.idle}"
    delayed = sum(1 for p in plan.projections.values() if p.delay) + sum(
        1 for b in plan.spec.nodes for d in b.input_delays if d
    )
    return text + (f"; {delayed} delayed link{'s' if delayed != 1 else ''} (dashed)" if delayed else "")


def _edge_html(key: tuple[str, str], *lines: str, prefix: str = "") -> str:
    """Label of a long-range edge: its ends in bold, then what it inserts (each text one line)."""
    ends = html.escape(f"{prefix}{key[0]}->{key[1]}")
    return f"<<b>{ends}</b><br/>" + "<br/>".join(html.escape(text) for text in lines) + ">"


def _new_graph(name: str, title: str, rankdir: str, *, subtitle: str | None = None) -> graphviz.Digraph:
    if rankdir not in ("TB", "LR"):
        raise RenderError(f"rankdir must be 'TB' or 'LR', not {rankdir!r}")
    # A second title line (the time section) is left-aligned like the first: DOT's \l ends each line.
    label = graphviz.escape(title) if subtitle is None else graphviz.escape(title) + "\\l" + graphviz.escape(subtitle) + "\\l"
    # graphviz.escape: a spec name is free text; a trailing backslash, '\\N' or
    # '<...>' must stay text in the DOT source, not become an escape or an HTML label.
    return graphviz.Digraph(
        name=graphviz.escape(name or "spec"),
        graph_attr={
            "rankdir": rankdir,
            "label": label,
            "labelloc": "t",
            "labeljust": "l",
            "fontname": "Helvetica",
            "fontsize": "14",
            "nodesep": "0.3",
            "ranksep": "0.45",
            "newrank": "true",
            # Keep each node's out-edges in the order written (main path first):
            # long-range edges then leave on one side instead of crossing the column.
            "ordering": "out",
        },
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "11", "margin": "0.12,0.04"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.7"},
    )


def _main_edge(graph: graphviz.Digraph, source: str | None, target: str, **attrs: str) -> None:
    # A heavy weight keeps the main path a straight column; long-range edges go around it.
    graph.edge(source or INPUT_ID, target, **{"color": MAIN, "penwidth": "2.2", "weight": "100", **attrs})


def _depths(edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Rank of each node along the main path: the longest chain of main edges above it."""
    graph = nx.DiGraph(list(edges))
    try:
        order = list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:  # only a diff of two specs that order nodes differently
        return {}
    depth: dict[str, int] = {}
    for node in order:
        depth[node] = max((depth[p] + 1 for p in graph.predecessors(node)), default=0)
    return depth


def _long_edge(graph: graphviz.Digraph, key: tuple[str, str], label: str, depth: dict[str, int], **attrs: str) -> None:
    """A long-range edge whose label sits one rank above its target.

    The label is a small text node on the edge; a heavier weight on its lower
    half pulls it down to the rank just above the target.  An edge with no rank
    in between gets an ordinary edge label.
    """
    src, dst = key
    if depth.get(dst, 0) - depth.get(src, 0) < 2:
        graph.edge(src, dst, label=label, **attrs)
        return
    mid = f"__edge__{src}__{dst}"
    fontcolor = attrs.pop("fontcolor", attrs.get("color", LONG))
    tip = {"tooltip": attrs["tooltip"]} if "tooltip" in attrs else {}
    graph.node(mid, label, shape="plaintext", style="", fontsize="9", fontcolor=fontcolor, height="0.2", margin="0.03,0.01", **tip)
    graph.edge(src, mid, arrowhead="none", **attrs)
    graph.edge(mid, dst, weight="5", **attrs)


def _legend(graph: graphviz.Digraph, entries: list[tuple[str, str, str]]) -> None:
    """One boxed table: a line sample in each style's colour and what it means."""
    rows = "".join(
        f'<tr><td align="left">{_sample(sample, colour)}</td><td align="left">{html.escape(text)}</td></tr>'
        for sample, colour, text in entries
    )
    table = (
        '<<table border="0" cellborder="0" cellspacing="1" cellpadding="1">'
        f'<tr><td colspan="2" align="left"><b>legend</b></td></tr>{rows}</table>>'
    )
    graph.node(LEGEND_ID, table, shape="box", style="rounded", color="#d1d5db", fontsize="9")


def _sample(sample: str, colour: str) -> str:
    # An empty <font> is a Graphviz syntax error: a row without a sample (a heading) gets no tag.
    return f'<font color="{colour}">{sample}</font>' if sample and colour else sample


def _input_node(graph: graphviz.Digraph, shape: tuple[int, ...]) -> None:
    graph.node(INPUT_ID, f"<<b>input</b><br/>{format_shape(shape)}>", shape="oval", style="filled", fillcolor="white")


def plan_diagram(
    plan: ShapePlan,
    *,
    rankdir: str = "TB",
    ablated: Iterable[Projection] = (),
    disabled: Iterable[tuple[str, str]] = (),
    overlay: EdgeOverlay | None = None,
) -> graphviz.Digraph:
    """The diagram of ``plan`` as a :class:`graphviz.Digraph`.

    ``ablated`` are projections of edges that a base spec has and ``plan``'s spec
    lacks (drawn dashed grey); ``disabled`` are keys of ``plan``'s own edges
    skipped at run time (drawn dashed in their usual colour); ``overlay``
    colours links by a measurement (:func:`~hrgraph.draw.overlay.load_overlay`).
    Every node and edge carries a hover tooltip (:class:`~hrgraph.draw.tooltips.Tooltips`).
    """
    spec = plan.spec
    edge_params = sum(p.params for p in plan.projections.values())
    title = (
        f"{spec.name or 'spec'}: {len(spec.nodes)} nodes, {plan.params:,} params ({format_count(plan.params)}); "
        f"{len(plan.projections)} long-range edges, {format_count(edge_params)} params in projections"
    )
    timing = time_line(plan)
    graph = _new_graph(spec.name, title, rankdir, subtitle=timing)
    tips = Tooltips(plan)
    _input_node(graph, plan.input_shape)
    compact = len(spec.nodes) > COMPACT_NODES
    for node_id in spec.node_ids:
        node = plan.nodes[node_id]
        graph.node(node_id, _node_label(node, compact=compact), fillcolor=KIND_FILL.get(node.kind, "white"), tooltip=tips.node(node_id))
    main = _main_edges(plan)
    for source, target in main:
        _draw_main(graph, plan, source, target, tooltip=tips.link(source, target), **_overlaid(overlay, (source, target)))
    depth = _depths(main)
    off = set(disabled)
    ablated = list(ablated)
    for key, projection in plan.projections.items():
        style = {"style": "dashed"} if key in off else {}
        prefix = "(disabled) " if key in off else ""
        colouring = _overlaid(overlay, key, UNMEASURED)
        if projection.delay:
            _feedback_edge(graph, plan, projection, depth, prefix, tooltip=tips.edge(key), **colouring, **style)
            continue
        label = _edge_html(key, edge_text(projection), *_overlay_text(overlay, key), prefix=prefix)
        colour = colouring.get("color", IDENTITY if projection.identity else LONG)
        # Under an overlay the palette's light colours would make light labels: labels stay dark.
        text = {"fontcolor": MAIN} if overlay is not None else {}
        width = colouring.get("penwidth", "1.4")
        _long_edge(graph, key, label, depth, color=colour, penwidth=width, tooltip=tips.edge(key), **text, **style)
    for projection in ablated:
        key = projection.edge.key
        _long_edge(graph, key, _edge_html(key, edge_text(projection), prefix="(ablated) "), depth, color=ABLATED, style="dashed")
    entries = [(SOLID, MAIN, "main path")]
    if plan.merges:
        entries.append((THIN, MAIN, "further input of a merge (labelled where projected)"))
    if overlay is None and any(not p.identity for p in plan.projections.values()):
        entries.append((THIN, LONG, "long-range edge: projection"))
    if any(p.identity for p in plan.projections.values()):
        entries.append((THIN, IDENTITY, "long-range edge: identity"))
    if timing is not None and "delayed link" in timing:
        entries.append((DASHED, FEEDBACK, "delayed link (feedback, recurrence), labelled with its delay"))
    if off:
        entries.append((DASHED, LONG, "disabled at run time"))
    if ablated:
        entries.append((DASHED, ABLATED, "ablated (in the base spec only)"))
    if overlay is not None:
        entries += [(SOLID if colour else "", colour, text) for colour, text in overlay.legend()]
    _legend(graph, entries)
    return graph


def _overlaid(overlay: EdgeOverlay | None, key: tuple[str, str], default: str | None = None) -> dict[str, str]:
    """The colour attributes of link ``key`` under ``overlay`` (none without one or without a value and a default)."""
    if overlay is None:
        return {}
    colour = overlay.colour(key) or default
    return {} if colour is None else {"color": colour, "penwidth": "2.6" if overlay.colour(key) else "1.4"}


def _overlay_text(overlay: EdgeOverlay | None, key: tuple[str, str]) -> list[str]:
    text = overlay.text(key) if overlay is not None else None
    return [] if text is None else [text]


def _edge_keys(spec: Spec, refs: Iterable[str | tuple[str, str]]) -> set[tuple[str, str]]:
    known = {e.key for e in spec.edges}
    keys = set()
    for ref in [refs] if isinstance(refs, str) else refs:
        try:
            key = tuple(ref) if isinstance(ref, tuple) else parse_edge_ref(ref)
        except ValueError as err:
            raise GraphError(str(err), path=spec.path) from None
        if key not in known:
            hint = did_you_mean(f"{key[0]}:{key[1]}", [f"{a}:{b}" for a, b in known])
            raise GraphError(f"no edge {key[0]}:{key[1]} in this spec{hint}", path=spec.path, edge=f"{key[0]}->{key[1]}")
        keys.add(key)
    return keys


def _ablated(plan: ShapePlan, base: Any) -> list[Projection]:
    """Projections of ``base``'s edges that ``plan``'s spec lacks, between nodes it still has."""
    base_plan = infer_shapes(load_spec(base))
    return [
        p
        for key, p in base_plan.projections.items()
        if key not in plan.projections and key[0] in plan.nodes and key[1] in plan.nodes
    ]


def to_dot(
    spec: Any,
    *,
    rankdir: str = "TB",
    show_ablated: Any = None,
    disabled: Iterable[str | tuple[str, str]] = (),
    color_by: tuple[str, str | os.PathLike[str]] | None = None,
) -> str:
    """The DOT source of ``spec``'s diagram (deterministic: same spec, same text).

    Parameters
    ----------
    spec : Spec, path, YAML text or dict
        Anything :func:`~hrgraph.spec.load_spec` accepts.
    rankdir : {"TB", "LR"}
        Main path top to bottom or left to right.
    show_ablated : Spec, path or dict, optional
        The spec this one was derived from: its edges missing here are drawn
        dashed grey, labelled ``(ablated)``.
    disabled : iterable of str
        Edges of ``spec`` skipped at run time (``"from:to"``, e.g. a compiled
        model's ``disabled_edges``): drawn dashed, labelled ``(disabled)``.
    color_by : (str, path), optional
        ``("contribution", DIR)`` or ``("edgecut", DIR)``: colour edges by the
        ``contributions.csv`` or ``edgecut.csv`` that ``hrgraph analyze`` wrote
        to ``DIR`` (:mod:`hrgraph.draw.overlay`), with a legend.

    Returns
    -------
    str

    Raises
    ------
    SpecError, GraphError, ShapeError
        ``spec`` (or the base) is invalid, or ``disabled`` names an edge ``spec`` lacks.
    RenderError
        ``rankdir`` is not ``TB`` or ``LR``; ``color_by``'s file is missing or
        was written for another spec.

    Examples
    --------
    >>> dot = to_dot("specs/hiresnet18.yaml")
    >>> "avgpool 8 -&gt; 1x1 conv 64-&gt;512 + BN, 33.8k params" in dot  # HTML-escaped in the label
    True
    """
    plan = infer_shapes(load_spec(spec))
    overlay = load_overlay(color_by[0], color_by[1], plan) if color_by is not None else None
    ablated = _ablated(plan, show_ablated) if show_ablated is not None else []
    return plan_diagram(plan, rankdir=rankdir, ablated=ablated, disabled=_edge_keys(plan.spec, disabled), overlay=overlay).source



def diff_diagram(diff: SpecDiff, *, rankdir: str = "TB") -> graphviz.Digraph:
    """One diagram of both specs: what B adds green, removes red (dashed), changes orange."""
    a, b = diff.a, diff.b
    title = (
        f"{a.spec.name or 'A'} -> {b.spec.name or 'B'}: params {a.params:,} -> {b.params:,} ({b.params - a.params:+,}); "
        f"{len(diff.nodes)} nodes and {len(diff.edges)} long-range edges differ"
    )
    graph = _new_graph(f"diff_{a.spec.name}_{b.spec.name}", title, rankdir)
    _input_node(graph, b.input_shape)
    compact = len(set(a.nodes) | set(b.nodes)) > COMPACT_NODES
    ids = b.spec.node_ids + [i for i in a.spec.node_ids if i not in b.nodes]
    for node_id in ids:
        change = diff.nodes.get(node_id)
        node = b.nodes.get(node_id) or a.nodes[node_id]
        if change is None:
            graph.node(node_id, _node_label(node, compact=compact), fillcolor=KIND_FILL.get(node.kind, "white"))
            continue
        colour = {"added": ADDED, "removed": REMOVED, "changed": CHANGED}[change.status]
        extra = [f"({change.status})"] + (list(change.details) if change.status == "changed" else [])
        style = "rounded,filled,dashed" if change.status == "removed" else "rounded,filled"
        graph.node(
            node_id,
            _node_label(node, compact=compact, extra=extra),
            fillcolor=STATUS_FILL[change.status],
            color=colour,
            penwidth="2",
            style=style,
        )
    main_a = set(_main_edges(a))
    main_b = _main_edges(b)
    removed_main = [(s, t) for s, t in _main_edges(a) if (s, t) not in set(main_b)]
    for source, target in main_b:
        _draw_main(graph, b, source, target, **({} if (source, target) in main_a else {"color": ADDED}))
    for source, target in removed_main:
        _main_edge(graph, source, target, color=REMOVED, style="dashed", weight="1")
    depth = _depths(main_b + removed_main)
    for key, projection in b.projections.items():
        change = diff.edges.get(key)
        if change is None:
            _long_edge(graph, key, _edge_html(key, edge_text(projection)), depth, color=UNCHANGED, fontcolor=MUTED)
        elif change.status == "added":
            _long_edge(graph, key, _edge_html(key, edge_text(projection), prefix="+ "), depth, color=ADDED, penwidth="1.8")
        else:
            label = _edge_html(key, edge_text(projection), f"was: {edge_text(a.projections[key])}", prefix="~ ")
            _long_edge(graph, key, label, depth, color=CHANGED, penwidth="1.8")
    for key, projection in a.projections.items():
        if key not in b.projections:
            label = _edge_html(key, edge_text(projection), prefix="- ")
            _long_edge(graph, key, label, depth, color=REMOVED, style="dashed", penwidth="1.8")
    _legend(
        graph,
        [
            (SOLID, MAIN, "main path (in both)"),
            (THIN, UNCHANGED, "long-range edge in both"),
            (SOLID, ADDED, "added by B"),
            (DASHED, REMOVED, "removed by B (in A only)"),
            (SOLID, CHANGED, "changed"),
        ],
    )
    return graph


def diff_dot(a: Any, b: Any, *, rankdir: str = "TB") -> str:
    """DOT source of the diagram of what spec ``b`` changes relative to spec ``a``.

    Examples
    --------
    >>> dot = diff_dot("specs/resnet18.yaml", "specs/hiresnet18.yaml")
    >>> "+ stem-&gt;stage4" in dot
    True
    """
    return diff_diagram(diff_specs(a, b), rankdir=rankdir).source


def _format(path: Path, fmt: str | None) -> str:
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    fmt = "dot" if fmt == "gv" else fmt
    if fmt not in FORMATS:
        raise RenderError(
            f"unknown diagram format {fmt!r}: the output file must end in one of "
            f"{', '.join('.' + f for f in FORMATS)}",
            path=str(path),
        )
    return fmt


def write_diagram(source: str, path: str | os.PathLike[str], *, fmt: str | None = None) -> Path:
    """Write DOT ``source`` to ``path`` as DOT, SVG, PNG or PDF (from the suffix, or ``fmt``).

    Nothing is written unless the whole output is ready: a missing ``dot``
    program or a Graphviz failure leaves no file behind.

    Raises
    ------
    RenderError
        Unknown format, missing directory, ``dot`` not installed, or Graphviz failed.
    """
    path = Path(path)
    fmt = _format(path, fmt)
    if not path.parent.is_dir():
        raise RenderError(f"directory {str(path.parent)!r} does not exist", path=str(path))
    if fmt == "dot":
        write_atomic(path, source.encode("utf-8"))
        return path
    if shutil.which("dot") is None:
        raise RenderError(f"Graphviz's 'dot' program is not on PATH, so no {fmt.upper()} can be drawn: {INSTALL_HINT}")
    try:
        data = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RenderError(f"Graphviz's 'dot' program could not be run: {INSTALL_HINT}") from None
    except graphviz.CalledProcessError as err:
        lines = (err.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"Graphviz failed: {lines[-1] if lines else err}", path=str(path)) from None
    write_atomic(path, data)
    return path


def render(
    spec: Any,
    path: str | os.PathLike[str],
    *,
    rankdir: str = "TB",
    show_ablated: Any = None,
    disabled: Iterable[str | tuple[str, str]] = (),
    fmt: str | None = None,
    color_by: tuple[str, str | os.PathLike[str]] | None = None,
) -> Path:
    """Draw ``spec`` to ``path`` (``.svg``, ``.png``, ``.pdf`` or ``.dot``).

    Parameters are those of :func:`to_dot`; ``fmt`` overrides the suffix.  A collapsed
    diagram (one box per group) is :func:`hrgraph.draw.collapse.collapsed_dot`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    RenderError
        Unknown format, or ``dot`` is missing (the message says how to install
        Graphviz) or failed; no file is written then.
    SpecError, GraphError, ShapeError
        As :func:`to_dot`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "hiresnet18.dot"
    >>> render("specs/hiresnet18.yaml", out).read_text().startswith("digraph hiresnet18")
    True
    """
    dot = to_dot(spec, rankdir=rankdir, show_ablated=show_ablated, disabled=disabled, color_by=color_by)
    return write_diagram(dot, path, fmt=fmt)


def render_diff(a: Any, b: Any, path: str | os.PathLike[str], *, rankdir: str = "TB", fmt: str | None = None) -> SpecDiff:
    """Draw what spec ``b`` changes relative to ``a`` to ``path``; return the :class:`~hrgraph.edit.diff.SpecDiff`.

    Raises
    ------
    RenderError, SpecError, GraphError, ShapeError
        As :func:`render`.
    """
    diff = diff_specs(a, b)
    write_diagram(diff_diagram(diff, rankdir=rankdir).source, path, fmt=fmt)
    return diff
