"""Collapsed diagrams: one box per group of nodes, so a 1,000-node network draws readably in seconds.

``hrgraph render SPEC --collapse`` draws each *group* as one box with its
totals (nodes, block kinds, output shapes, parameters, MACs, links inside it)
and the links between groups as one aggregated edge each (how many links, the
parameters and MACs of their projections).

**How groups are found.**  A node's group is its id up to the first
underscore: RandWire's ``conv3_n12`` belongs to ``conv3`` (a stage),
CORnet-RT's ``V2_input`` to ``V2`` (an area); an id without an underscore
(``stem``, ``stage2``) is a group of its own.  This is the naming convention
hrgraph's generators and example specs follow, it needs no extra key in the
spec, and a reader can predict it from the ids alone.  (Runs of equal output
shape were the alternative; they merge unrelated stages that happen to share a
shape, and split a stage at its first, strided node.)

**What the numbers add up to.**  A box counts its nodes' blocks and the merges
of their list inputs whose items come from the same group; an aggregated edge
counts the projections of the links it stands for (long-range edges and items
of list inputs from another group).  Boxes and edges together sum exactly to
the spec's parameters and MACs (:func:`~hrgraph.build.cost.count_cost`).
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import graphviz

from ..build.cost import Cost, count_cost
from ..build.shapes import ShapePlan, format_count, format_shape, infer_shapes
from ..spec.models import load_spec
from .render import FEEDBACK, INPUT_ID, KIND_FILL, LONG, MAIN, DASHED, SOLID, THIN, _input_node, _legend, _new_graph, time_line
from .tooltips import tooltip

__all__ = ["group_of", "Group", "GroupLink", "collapse", "collapsed_diagram", "collapsed_dot"]


def group_of(node_id: str) -> str:
    """The group of a node: its id up to the first underscore (the whole id if there is none).

    Examples
    --------
    >>> group_of("conv3_n12"), group_of("V2_input"), group_of("stage2"), group_of("_x")
    ('conv3', 'V2', 'stage2', '_x')
    """
    head = node_id.split("_", 1)[0]
    return head or node_id


@dataclass
class Group:
    """One box: its nodes (in spec order), their kinds and output shapes, and their cost."""

    name: str
    nodes: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    cost: Cost = Cost()
    internal: int = 0  # links between two nodes of the group


@dataclass
class GroupLink:
    """The links from one group to another, drawn as one edge."""

    source: str
    target: str
    count: int = 0
    cost: Cost = Cost()
    main: bool = False  # at least one is a node's first (main) input
    undelayed: bool = False  # at least one has no delay


def collapse(plan: ShapePlan) -> tuple[dict[str, Group], dict[tuple[str, str], GroupLink]]:
    """The groups of ``plan`` (in order of their first node) and the aggregated links between them.

    The network input is the group ``"input"`` (drawn as the input oval); its links cost nothing.

    Examples
    --------
    >>> from hrgraph import load_spec, infer_shapes
    >>> plan = infer_shapes(load_spec("specs/examples/cornet-rt.yaml"))
    >>> groups, links = collapse(plan)
    >>> list(groups), groups["V2"].nodes, groups["V2"].internal
    (['V1', 'V2', 'V4', 'IT', 'decoder'], ['V2_input', 'V2'], 2)
    >>> links["V1", "V2"].count, links["V1", "V2"].undelayed
    (1, False)
    """
    table = count_cost(plan)
    rows = {r.name: r.cost for r in table.rows}
    groups: dict[str, Group] = {}
    for node_id in plan.spec.node_ids:
        node = plan.nodes[node_id]
        group = groups.setdefault(group_of(node_id), Group(group_of(node_id)))
        group.nodes.append(node_id)
        group.kinds[node.kind] += 1
        group.shapes.append(node.out_shape)
        group.cost += rows.get(node_id, Cost())
        if node.merge is not None:
            group.cost += rows.get(f"{node_id} ({node.merge.aggregate})", Cost())
    links: dict[tuple[str, str], GroupLink] = {}

    def add(source: str | None, target: str, cost: Cost, main: bool, delay: int) -> None:
        a, b = ("input" if source is None else group_of(source)), group_of(target)
        if a == b:
            groups[b].internal += 1
            groups[b].cost += cost
            return
        link = links.setdefault((a, b), GroupLink(a, b))
        link.count += 1
        link.cost += cost
        link.main |= main
        link.undelayed |= delay == 0

    for node_id in plan.spec.node_ids:
        node, block = plan.nodes[node_id], plan.spec.nodes[plan.spec.node_index[node_id]]
        delays = dict(zip(block.inputs, block.input_delays))
        if node.merge is None:
            add(node.inputs[0] if node.inputs else None, node_id, Cost(), True, delays.get(node.inputs[0], 0) if node.inputs else 0)
            continue
        for k, p in enumerate(node.merge.inputs):
            add(p.source, node_id, rows.get(f"{p.source}->{node_id} (input)", Cost()), k == 0, p.delay)
    for key, p in plan.projections.items():
        add(key[0], key[1], rows.get(p.name, Cost()), False, p.delay)
    return groups, links


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    distinct = list(dict.fromkeys(shapes))
    if len(distinct) == 1:
        return format_shape(distinct[0])
    return f"{format_shape(shapes[0])} ... {format_shape(shapes[-1])} ({len(distinct)} shapes)"


def _box_label(group: Group) -> str:
    kinds = ", ".join(f"{kind} x{n}" if n > 1 else kind for kind, n in group.kinds.most_common(3))
    kinds += ", ..." if len(group.kinds) > 3 else ""
    count = f"{len(group.nodes)} node{'s' if len(group.nodes) != 1 else ''}"
    lines = [
        f"<b>{html.escape(group.name)}</b>  {count}",
        html.escape(kinds),
        html.escape(_shapes(group.shapes)),
        f"{format_count(group.cost.params)} params, {format_count(group.cost.macs)} MACs",
    ]
    if group.internal:
        lines.append(f"{group.internal} link{'s' if group.internal != 1 else ''} inside")
    return "<" + "<br/>".join(lines) + ">"


def _box_tooltip(group: Group) -> str:
    shown = ", ".join(group.nodes[:24]) + (f", ... ({len(group.nodes) - 24} more)" if len(group.nodes) > 24 else "")
    return tooltip(
        f"{group.name}: {len(group.nodes)} nodes", shown,
        f"params {group.cost.params:,}", f"MACs {group.cost.macs:,}", f"links inside {group.internal}",
    )


def collapsed_diagram(plan: ShapePlan, *, rankdir: str = "TB") -> graphviz.Digraph:
    """The diagram of ``plan`` with each group (:func:`group_of`) drawn as one box.

    Examples
    --------
    >>> from hrgraph import load_spec, infer_shapes
    >>> dot = collapsed_diagram(infer_shapes(load_spec("specs/examples/randwire-ws-small.yaml"))).source
    >>> "conv3 [" in dot and "conv3_n05" not in dot.split("tooltip")[0]
    True
    """
    groups, links = collapse(plan)
    spec = plan.spec
    title = (
        f"{spec.name or 'spec'} (collapsed): {len(spec.nodes)} nodes in {len(groups)} groups, "
        f"{plan.params:,} params ({format_count(plan.params)}), {format_count(plan.macs)} MACs"
    )
    graph = _new_graph(spec.name, title, rankdir, subtitle=time_line(plan))
    _input_node(graph, plan.input_shape)
    order = {name: i for i, name in enumerate(groups)}
    for group in groups.values():
        kind = group.kinds.most_common(1)[0][0]
        graph.node(group.name, _box_label(group), fillcolor=KIND_FILL.get(kind, "white"), tooltip=_box_tooltip(group))
    for (a, b), link in links.items():
        source = INPUT_ID if a == "input" else a
        text = f"{link.count} link{'s' if link.count != 1 else ''}" + (f", {format_count(link.cost.params)} params" if link.cost.params else "")
        text += "" if link.undelayed else ", delayed"
        tip = tooltip(f"{a}->{b}: {link.count} links", f"params {link.cost.params:,}", f"MACs {link.cost.macs:,}")
        attrs = {"label": text, "tooltip": tip, "fontcolor": MAIN if link.main else LONG}
        if not link.undelayed:
            attrs.update(color=FEEDBACK, fontcolor=FEEDBACK, style="dashed", penwidth="1.4")
            if a != "input" and order[a] >= order[b]:
                attrs["constraint"] = "false"  # feedback between groups points back without moving ranks
        elif link.main:
            attrs.update(color=MAIN, penwidth="2.2", weight="100")
        else:
            attrs.update(color=LONG, penwidth="1.4")
        graph.edge(source, b, **attrs)
    entries = [(SOLID, MAIN, "links incl. a main input (count, params of projections)"), (THIN, LONG, "long-range links only")]
    if any(not link.undelayed for link in links.values()):
        entries.append((DASHED, FEEDBACK, "delayed links only"))
    _legend(graph, entries + [("\u25ad", MAIN, "a box: nodes whose ids share the prefix before '_'")])
    return graph


def collapsed_dot(spec: Any, *, rankdir: str = "TB") -> str:
    """The DOT source of ``spec``'s collapsed diagram (``spec``: anything :func:`~hrgraph.spec.load_spec` accepts).

    Raises
    ------
    SpecError, GraphError, ShapeError
        ``spec`` is invalid.
    RenderError
        ``rankdir`` is not ``TB`` or ``LR``.
    """
    return collapsed_diagram(infer_shapes(load_spec(spec)), rankdir=rankdir).source
