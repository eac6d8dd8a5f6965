"""The spec as a networkx DAG, and the checks that run before anything is built.

Nodes of the graph are node ids; an edge ``u -> v`` exists where ``v`` takes
``u``'s output as an input (its main path or one of a list ``input``:
attribute ``main=True``) or through a
long-range edge (attribute ``residual``: the :class:`~hrgraph.spec.Edge`), or
both.  Every check is linear in nodes plus edges.  No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

import networkx as nx

from ..errors import CycleError, GraphError, UnknownNodeError, did_you_mean
from ..spec.kinds import NETWORK_INPUT
from ..spec.models import Edge, Spec, parse_edge_ref

__all__ = ["check_graph", "topological_order", "delayed_links", "select_edges"]


def _where(spec: Spec, *loc: Any) -> dict[str, Any]:
    mark = spec.locate(*loc)
    if mark is None:
        return {"path": spec.path}
    return {"path": mark.path or spec.path, "line": mark.line, "column": mark.column}


def check_graph(spec: Spec) -> nx.DiGraph:
    """Build the graph of ``spec`` and check it.

    Checks, in order: duplicate node ids; ``input`` references; edge ends
    (unknown nodes, self-loops, duplicates, kinds that take or give no edges);
    a block that returns ``(batch, features)`` (a classifier) anywhere but last;
    cycles; nodes whose output never reaches the last node (every node is
    reachable from the first: each has a main input).

    The network input, named ``input`` in edges and list inputs, is no node of
    the graph: links from it order nothing and close no cycle.

    Parameters
    ----------
    spec : Spec

    Returns
    -------
    networkx.DiGraph

    Raises
    ------
    UnknownNodeError
        An edge or ``input`` names a node that does not exist.
    CycleError
        The graph has a cycle (``err.cycle`` lists it).
    GraphError
        Any other structural problem.

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> g = check_graph(load_spec("specs/hiresnet18.yaml"))
    >>> g.number_of_nodes(), g.number_of_edges()
    (6, 11)
    >>> g.edges["stem", "stage4"]["residual"].name
    'stem->stage4'
    """
    graph = nx.DiGraph()
    for i, node in enumerate(spec.nodes):
        if node.id in graph:
            first = spec.node_index[node.id]
            raise GraphError(
                f"duplicate node id '{node.id}' (first defined as node {first + 1})",
                node=node.id,
                **_where(spec, "nodes", i, "id"),
            )
        graph.add_node(node.id, index=i, block=node)

    ids = list(graph)
    for i, node in enumerate(spec.nodes):
        if node.input is None:
            continue
        if i == 0:
            raise GraphError(
                "the first node takes the network input; it cannot name another input",
                node=node.id,
                **_where(spec, "nodes", i, "input"),
            )
        listed = isinstance(node.input, list)
        seen: set[str] = set()
        for k, source in enumerate(node.inputs):
            at = ("nodes", i, "input", k) if listed else ("nodes", i, "input")
            if source == NETWORK_INPUT and node.input_delays[k]:
                raise GraphError(_INPUT_DELAY, node=node.id, **_where(spec, *at))
            if source not in graph and source != NETWORK_INPUT:
                raise UnknownNodeError(
                    f"input names unknown node '{source}'{did_you_mean(source, [NETWORK_INPUT, *ids])}"
                    f"{_input_hint(source, 'from')}",
                    node=node.id,
                    **_where(spec, *at),
                )
            if source in seen:
                raise GraphError(f"input lists '{source}' twice", node=node.id, **_where(spec, *at))
            seen.add(source)
    # Delayed links (an ``input`` item or an edge with ``delay`` >= 1) read an earlier step, so
    # they may close a cycle (feedback, a node's own recurrence): they stay out of the DAG and
    # are kept aside, as ("input", source, target, k, delay) and ("edge", source, target, j, delay).
    delayed: list[tuple[str, str, str, int, int]] = []
    for i in range(1, len(spec.nodes)):
        delays = spec.nodes[i].input_delays or (0,)
        for k, (source, delay) in enumerate(zip(spec.node_inputs(i), delays)):
            if delay:
                delayed.append(("input", source, spec.nodes[i].id, k, delay))
            elif source == NETWORK_INPUT:
                # The network input is no node of the graph: it is there before every node
                # (and at every step), so it orders nothing and closes no cycle.
                continue
            else:
                graph.add_edge(source, spec.nodes[i].id, main=True, residual=None)

    delayed_edges: dict[tuple[str, str], int] = {}
    input_edges: dict[tuple[str, str], int] = {}
    for j, edge in enumerate(spec.edges):
        if edge.to == NETWORK_INPUT:
            raise GraphError(
                f"'{NETWORK_INPUT}' is the network's input: an edge may start there, not end there",
                edge=edge.name,
                **_where(spec, "edges", j, "to"),
            )
        for end, field in ((edge.from_, "from"), (edge.to, "to")):
            if end not in graph and not (field == "from" and end == NETWORK_INPUT):
                known = [NETWORK_INPUT, *ids] if field == "from" else ids
                raise UnknownNodeError(
                    f"unknown node '{end}'{did_you_mean(end, known)}{_input_hint(end, field)}",
                    edge=edge.name,
                    **_where(spec, "edges", j, field),
                )
        if edge.from_ == NETWORK_INPUT:
            if edge.delay:
                raise GraphError(_INPUT_DELAY, edge=edge.name, **_where(spec, "edges", j, "delay"))
            if not spec.node(edge.to).accepts_edges:
                raise GraphError(
                    f"a {spec.node(edge.to).kind} node cannot receive a long-range edge",
                    edge=edge.name,
                    **_where(spec, "edges", j, "to"),
                )
            if edge.key in input_edges:
                raise GraphError(
                    f"duplicate edge {edge.name} (first given as edge {input_edges[edge.key] + 1})",
                    edge=edge.name,
                    **_where(spec, "edges", j),
                )
            input_edges[edge.key] = j
            continue
        if edge.from_ == edge.to and not edge.delay:
            raise CycleError(
                "an edge from a node to itself is a cycle",
                cycle=[edge.from_],
                edge=edge.name,
                **_where(spec, "edges", j),
            )
        source, target = spec.node(edge.from_), spec.node(edge.to)
        if not source.emits_edges:
            raise GraphError(
                f"a {source.kind} node cannot be the source of a long-range edge",
                edge=edge.name,
                **_where(spec, "edges", j, "from"),
            )
        if not target.accepts_edges:
            raise GraphError(
                f"a {target.kind} node cannot receive a long-range edge",
                edge=edge.name,
                **_where(spec, "edges", j, "to"),
            )
        if edge.delay:
            first = delayed_edges.get(edge.key)
            data = graph.get_edge_data(edge.from_, edge.to)
            if first is None and data is not None and data.get("residual") is not None:
                first = data["edge_index"]
            if first is not None:
                raise GraphError(
                    f"duplicate edge {edge.name} (first given as edge {first + 1}); an edge's delay does not make "
                    "it another edge",
                    edge=edge.name,
                    **_where(spec, "edges", j),
                )
            delayed_edges[edge.key] = j
            delayed.append(("edge", edge.from_, edge.to, j, edge.delay))
            continue
        data = graph.get_edge_data(edge.from_, edge.to)
        if data is None and edge.key in delayed_edges:
            data = {"residual": True, "edge_index": delayed_edges[edge.key]}
        if data is not None and data.get("residual") is not None:
            raise GraphError(
                f"duplicate edge {edge.name} (first given as edge {data['edge_index'] + 1})",
                edge=edge.name,
                **_where(spec, "edges", j),
            )
        if data is None:
            graph.add_edge(edge.from_, edge.to, main=False)
        graph.edges[edge.from_, edge.to].update(residual=edge, edge_index=j)

    for i, node in enumerate(spec.nodes[:-1]):
        if node.terminal:
            raise GraphError(
                f"a {node.kind} node returns (batch, features), not a feature map, so it must be the last node "
                f"(the network's output is '{spec.nodes[-1].id}')",
                node=node.id,
                **_where(spec, "nodes", i),
            )
    graph.graph["delayed"] = tuple(delayed)
    _check_time(spec, delayed)
    _check_acyclic(spec, graph)
    _check_reachability(spec, graph, delayed)
    return graph


_INPUT_DELAY = (
    f"'{NETWORK_INPUT}' (the network's input) is the same at every step, so a link from it takes no delay; "
    "drop 'delay'"
)


def _input_hint(name: str, field: str) -> str:
    # The input had no name before issue 20.4; whoever guesses one ('x', 'image', 'in') gets told it.
    if field == "from" and name.lower() in ("x", "in", "inputs", "image", "images", "data", "stimulus", "retina"):
        return f"; the network's input is named '{NETWORK_INPUT}'"
    return ""


def delayed_links(graph: nx.DiGraph) -> tuple[tuple[str, str, str, int, int], ...]:
    """The delayed links :func:`check_graph` kept out of the DAG: ``(what, source, target, index, delay)``.

    ``what`` is ``"input"`` (``index``: the item of the target's ``input``) or ``"edge"``
    (``index``: the position in ``spec.edges``).
    """
    return graph.graph.get("delayed", ())


def _check_time(spec: Spec, delayed: list[tuple[str, str, str, int, int]]) -> None:
    """What needs a ``time`` section, and what the sequential scheme cannot unroll."""
    time = spec.time
    for what, source, target, index, delay in delayed:
        at = ("edges", index, "delay") if what == "edge" else ("nodes", spec.node_index[target], "input")
        who = {"edge": f"{source}->{target}"} if what == "edge" else {"node": target}
        if time is None:
            raise GraphError(
                f"delay: {delay} needs the network to run in time: add 'time: {{steps: N}}' to the spec",
                **who,
                **_where(spec, *at),
            )
        if time.scheme == "sequential" and source != target:
            raise GraphError(
                f"scheme: sequential runs each node's steps to completion before the next node starts, so a "
                f"delayed link must be a node's own recurrence (a self-loop), not {source}->{target}; "
                "use scheme: biological for feedback between nodes",
                **who,
                **_where(spec, *at),
            )
        if source == target and what == "input" and spec.node(target).owns_steps:
            raise GraphError(f"a {spec.node(target).kind} block runs its own steps; it takes no self-loop", **who, **_where(spec, *at))
    for i, node in enumerate(spec.nodes):
        if node.steps is not None and not node.owns_steps and (time is None or time.scheme != "sequential"):
            raise GraphError(
                "steps on a node applies under time: {scheme: sequential} (in the biological scheme every node "
                "runs time.steps steps)",
                node=node.id,
                **_where(spec, "nodes", i, "steps"),
            )
        if node.idle is not None and time is None:
            raise GraphError("idle applies to a spec with a time section", node=node.id, **_where(spec, "nodes", i, "idle"))
        if node.step_norm is not None and time is None:
            raise GraphError("step_norm applies to a spec with a time section", node=node.id, **_where(spec, "nodes", i, "step_norm"))
        if node.step_norm is not None and node.owns_steps:
            raise GraphError(
                f"a {node.kind} block runs its own steps and chooses its own norms (one set per step); "
                "leave out step_norm",
                node=node.id,
                **_where(spec, "nodes", i, "step_norm"),
            )
    if time is not None and time.scheme == "sequential" and time.readout != "last":
        raise GraphError(
            f"readout: {time.readout} reads every step of the network, which scheme: sequential has not "
            "(each node has its own); use scheme: biological",
            **_where(spec, "time", "readout"),
        )


def _check_acyclic(spec: Spec, graph: nx.DiGraph) -> None:
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    names = [u for u, _ in cycle]
    # Point at a long-range edge of the cycle where there is one: it is the
    # likelier mistake than the main path.
    at = next((graph.edges[u, v] for u, v in cycle if graph.edges[u, v].get("residual") is not None), None)
    text = " -> ".join(names + [names[0]])
    if at is not None:
        edge = at["residual"]
        raise CycleError(f"cycle {text}", cycle=names, edge=edge.name, **_where(spec, "edges", at["edge_index"]))
    # A cycle of main-path links only is closed by some node's explicit input:.
    node = next((v for _, v in cycle if spec.node(v).input is not None), names[0])
    raise CycleError(f"cycle {text}", cycle=names, node=node, **_where(spec, "nodes", spec.node_index[node], "input"))


def _check_reachability(spec: Spec, graph: nx.DiGraph, delayed: list[tuple[str, str, str, int, int]] = ()) -> None:
    # Every node but the first has a main input, so in an acyclic spec every
    # node is reachable from the first one by construction; what can go wrong
    # is a branch whose output is never used.  A delayed link uses its source
    # too (at a later step).
    last = spec.nodes[-1].id
    if delayed:
        graph = graph.copy()
        graph.add_edges_from((source, target) for _, source, target, _, _ in delayed if source != target)
    feeding = nx.ancestors(graph, last) | {last}
    for i, node in enumerate(spec.nodes):
        if node.id not in feeding:
            raise GraphError(
                f"the output of '{node.id}' never reaches the output node '{last}' (dead end)",
                node=node.id,
                **_where(spec, "nodes", i),
            )


def topological_order(spec: Spec, graph: nx.DiGraph) -> list[str]:
    """Node ids in an order that computes every input before its consumer.

    Ties are broken by position in ``spec.nodes``, so a spec already written in
    order keeps its order.
    """
    index = {node.id: i for i, node in enumerate(spec.nodes)}
    return list(nx.lexicographical_topological_sort(graph, key=index.__getitem__))


# -- edge selectors (ablate, set_edges, analyze --edges) ----------------------------


_PATTERN_CHARS = set("*?[")


def _ref(edge: Edge) -> str:
    return f"{edge.from_}:{edge.to}"


def _listing(spec: Spec) -> str:
    return ", ".join(_ref(e) for e in spec.edges) or "none"


def _split(selector: object, spec: Spec) -> tuple[str, str]:
    if isinstance(selector, str) and selector.strip() == "*":
        return "*", "*"
    try:
        return parse_edge_ref(selector) if isinstance(selector, str) else parse_edge_ref("")
    except ValueError:
        raise GraphError(
            f"edge selector {selector!r} is not of the form 'from:to' (patterns: 'stem:*', '*:stage4', '*:*')",
            path=spec.path,
        ) from None


def _matches(edge: Edge, src: str, dst: str) -> bool:
    return fnmatchcase(edge.from_, src) and fnmatchcase(edge.to, dst)


def _resolve(spec: Spec, selector: str) -> list[Edge]:
    src, dst = _split(selector, spec)
    ids = spec.node_ids
    for side, known in ((src, [NETWORK_INPUT, *ids]), (dst, ids)):
        if not (_PATTERN_CHARS & set(side)) and side not in known:
            raise UnknownNodeError(
                f"edge selector '{selector}': unknown node '{side}'{did_you_mean(side, known)}; "
                f"the spec's edges: {_listing(spec)}",
                path=spec.path,
            )
    matched = [e for e in spec.edges if _matches(e, src, dst)]
    if matched:
        return matched
    if not (_PATTERN_CHARS & set(src + dst)):
        raise GraphError(
            f"no edge {src}:{dst} in {spec.name or 'the spec'}"
            f"{did_you_mean(f'{src}:{dst}', [_ref(e) for e in spec.edges])}; its edges: {_listing(spec)}",
            path=spec.path,
            edge=f"{src}->{dst}",
        )
    raise GraphError(f"edge selector '{selector}' matches no edge; the spec's edges: {_listing(spec)}", path=spec.path)


def select_edges(spec: Spec, selectors: Iterable[str | Edge] | str | Edge) -> list[Edge]:
    """The edges of ``spec`` that any of ``selectors`` matches, in spec order.

    What :meth:`HrNet.set_edges <hrgraph.build.compiler.HrNet.set_edges>` and
    :func:`hrgraph.edit.ablate` take, so a selection made here can be passed
    on to either as it is.

    Parameters
    ----------
    spec : Spec
    selectors : str, Edge or iterable of them
        ``"from:to"`` or ``"from->to"``; each side a node id or a pattern
        (``*``, ``?``, ``[...]``); ``"*"`` alone is every edge.  An
        :class:`~hrgraph.Edge` (e.g. from an earlier ``select_edges``) selects
        that edge of ``spec``.

    Returns
    -------
    list of Edge

    Raises
    ------
    UnknownNodeError
        A side names no node of the spec (with a "did you mean").
    GraphError
        A selector is malformed, names an edge that does not exist, or a
        pattern matches no edge; the message lists the spec's edges.

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> spec = load_spec("specs/hiresnet18.yaml")
    >>> [e.name for e in select_edges(spec, "*:stage4")]
    ['stem->stage4', 'stage1->stage4', 'stage2->stage4']
    >>> select_edges(spec, "stem:stage1")
    Traceback (most recent call last):
    ...
    hrgraph.errors.GraphError: specs/hiresnet18.yaml: edge stem->stage1: no edge stem:stage1 in hiresnet18 (did you mean 'stem:stage4'?); its edges: stem:stage2, ...
    """
    if isinstance(selectors, (str, Edge)):
        selectors = [selectors]
    chosen: set[tuple[str, str]] = set()
    for selector in selectors:
        if isinstance(selector, Edge):
            selector = f"{selector.from_}:{selector.to}"
        chosen.update(e.key for e in _resolve(spec, selector))
    return [e for e in spec.edges if e.key in chosen]
