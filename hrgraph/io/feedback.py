"""Plain graphs' cycles and weights, for :func:`hrgraph.io.netx.convert`: feedback and weighted edges.

A plain graph (a connectome) may have cycles and edge weights, which a spec
expresses as delayed links (``delay``) and as long-range edges carrying a
``weight`` (and a gate starting from it).  These functions change the graph in
place before :func:`~hrgraph.io.netx.convert` turns it into a spec; ``docs/import.md``
(Cycles, Weights) gives the rules.  No torch here.
"""

from __future__ import annotations

import logging
from typing import Any

import networkx as nx

from ..errors import CycleError, SpecError

__all__ = ["delayed", "undelayed", "break_cycles", "route_weighted", "weights_to_gates"]

log = logging.getLogger(__name__)


def undelayed(graph: nx.DiGraph) -> nx.DiGraph:
    """The view of ``graph`` without its delayed edges (they read an earlier step, so close no cycle)."""
    return nx.subgraph_view(graph, filter_edge=lambda u, v: not delayed(graph.edges[u, v]))


def delayed(attrs: dict[str, Any]) -> bool:
    """Whether an edge reads an earlier step only: an ``input+edge`` pair is delayed if both its links are."""
    if attrs.get("role") == "input+edge":
        return bool(attrs.get("delay")) and bool(attrs.get("input_delay"))
    return bool(attrs.get("delay"))


def _backward_edges(graph: nx.DiGraph) -> list[tuple[Any, Any]]:
    """The edges inside a cycle (a strongly connected component) that go backwards in node order.

    Only an edge inside a strongly connected component can lie on a cycle; ordering
    each component by node order leaves every edge between them, and the edges that
    remain inside a component all go forwards, so what remains is acyclic.
    """
    position = {node: i for i, node in enumerate(graph)}
    component = {node: k for k, nodes in enumerate(nx.strongly_connected_components(graph)) for node in nodes}
    return [(u, v) for u, v in graph.edges() if component[u] == component[v] and position[u] >= position[v]]


def break_cycles(graph: nx.DiGraph, how: str | None) -> list[tuple[Any, Any]]:
    """Drop (``how="order"``) or delay (``how="feedback"``) the edges that close cycles, or refuse the graph.

    Returns the edges dropped or delayed.  Edges the graph already delays close no cycle.
    """
    view = undelayed(graph)
    if nx.is_directed_acyclic_graph(view):
        return []
    if how is None:
        cycle = [u for u, _ in nx.find_cycle(view, source=list(graph))]
        text = " -> ".join(str(n) for n in cycle + [cycle[0]])
        raise CycleError(
            f"the graph has a cycle: {text} (break_cycles='order', on the command line --break-cycles order, "
            "drops the edges that go backwards in node order; cycles='feedback', --cycles feedback, delays them)",
            cycle=[str(n) for n in cycle],
            node=str(cycle[0]),
        )
    if how not in ("order", "feedback"):
        raise ValueError(f"break_cycles must be 'order', 'feedback' or None, not {how!r}")
    chosen = _backward_edges(nx.DiGraph(view))
    if how == "order":
        graph.remove_edges_from(chosen)
    for u, v in chosen:
        if how == "feedback":
            graph.edges[u, v]["delay"] = 1
        log.info("%s edge %s -> %s to break a cycle", "dropped" if how == "order" else "delayed", u, v)
    return chosen


def route_weighted(graph: nx.DiGraph, order: list[Any]) -> None:
    """Give the graph's plain edges roles when they carry a ``weight``: weights live on long-range edges.

    Each node's strongest non-delayed predecessor (ties: the earliest in ``order``) is its
    main input; every other weighted edge becomes a long-range edge keeping its weight and
    delay.  A graph without weights, or whose edges have roles, is left as it is.
    """
    plain = [(u, v) for u, v, attrs in graph.edges(data=True) if "role" not in attrs]
    if not any("weight" in graph.edges[e] for e in plain):
        return
    position = {node: i for i, node in enumerate(order)}
    main: dict[Any, tuple[Any, Any]] = {}
    for u, v in plain:
        attrs = graph.edges[u, v]
        if attrs.get("delay"):
            continue
        best = main.get(v)
        strength = (attrs.get("weight") or 0.0, -position[u])
        if best is None or strength > (graph.edges[best].get("weight") or 0.0, -position[best[0]]):
            main[v] = (u, v)
    chosen = set(main.values())
    for u, v in plain:
        if (u, v) in chosen:
            # Left without a role, it stays a plain input (implicit where it comes from the
            # previous node); an input has no weight (docs/import.md).
            graph.edges[u, v].pop("weight", None)
        else:
            graph.edges[u, v]["role"] = "edge"


def weights_to_gates(graph: nx.DiGraph, largest: float) -> None:
    """A scalar gate on every weighted long-range edge, starting at its weight over ``largest``."""
    if not any(attrs.get("weight") is not None for *_, attrs in graph.edges(data=True)):
        raise SpecError("weights='gate' (--weights gate) needs edges with a weight attribute; the graph has none")
    if not largest:
        raise SpecError("weights='gate' (--weights gate) needs a nonzero weight to normalise by")
    for *_, attrs in graph.edges(data=True):
        if attrs.get("weight") is not None and attrs.get("role") in ("edge", "input+edge"):
            attrs["gate"] = attrs.get("gate", "scalar")
            attrs["gate_init"] = attrs["weight"] / largest
