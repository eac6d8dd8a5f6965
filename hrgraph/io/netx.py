"""Specs as networkx graphs and back: :func:`to_networkx` and :func:`from_networkx`.

:func:`to_networkx` gives a ``DiGraph`` whose nodes are the spec's node ids and
whose attributes are scalars only, so that ``nx.write_graphml`` and
``nx.write_gml`` can store it:

* graph attributes: the spec's top-level fields, nested ones flattened with
  ``_`` (``input_channels``, ``residuals_entry``, ...), lists joined with ``,``;
* node attributes: the block's fields (``kind``, ``channels``, ``stride``, ...)
  and ``index``, the node's position in ``nodes``;
* a node ``input`` with ``kind: input`` where the spec's edges or list inputs
  name the network input (and only then);
* edge attributes: ``role``, which is ``input`` (the target's main input, or one
  of its listed inputs; ``order`` is its place in an ``input: [...]`` list,
  ``implicit`` marks an input the spec leaves to "the previous node"), ``edge``
  (a long-range edge, with its options and ``index``, its place in ``edges``)
  or ``input+edge`` (both at once).

:func:`from_networkx` reads such a graph back (``load_spec(s) ==
from_networkx(to_networkx(s))``) and also builds a spec from any plain graph (a
connectome, a random graph); ``docs/import.md`` gives the rules, and
:mod:`hrgraph.io.feedback` handles a plain graph's cycles and weights.  No torch here.

Why one module past 500 lines: the two directions of one conversion, whose attribute
mapping must stay symmetric; much of the length is the documented keyword arguments.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, get_args

import networkx as nx
from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import HrgraphError, SpecError, did_you_mean
from ..build.graph import check_graph
from ..spec.kinds import KINDS, NETWORK_INPUT, RESERVED_IDS, Block
from ..spec.models import Edge, Spec, load_spec
from .feedback import break_cycles as _cycles, route_weighted, undelayed, weights_to_gates

__all__ = ["to_networkx", "from_networkx", "node_ids", "Imported", "convert", "EDGE_ATTRIBUTES"]


ROLES = ("input", "edge", "input+edge")
#: Node attributes that are not block fields.
NODE_ATTRIBUTES = ("index",)
#: Edge attributes that are not edge options.
EDGE_ATTRIBUTES = ("role", "order", "index", "implicit", "input_delay")
#: Graph attributes networkx's own readers add (GraphML's defaults).
_READER_ATTRIBUTES = frozenset({"node_default", "edge_default"})
_MAX_ID = 64

# -- spec -> graph --------------------------------------------------------------


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested field (``Residuals``; ``Time`` of ``Time | None``), else None."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _flat_fields() -> dict[str, tuple[str, str | None]]:
    """Flat graph attribute name -> (Spec field, sub-field or None)."""
    flat: dict[str, tuple[str, str | None]] = {}
    for name, info in Spec.model_fields.items():
        if name in ("nodes", "edges"):
            continue
        model = _submodel(info.annotation)
        if model is not None:
            flat.update({f"{name}_{sub}": (name, sub) for sub in model.model_fields})
        else:
            flat[name] = (name, None)
    return flat


def _inputs_of(spec: Spec, position: int) -> list[tuple[str, dict[str, Any]]]:
    """(source, edge attributes) of each main input of ``spec.nodes[position]``."""
    node = spec.nodes[position]
    if node.input is None:
        return [(spec.nodes[position - 1].id, {"implicit": True})] if position else []
    delays = [{"delay": d} if d else {} for d in node.input_delays]
    if not isinstance(node.input, list):
        return [(node.inputs[0], delays[0])]
    return [(source, {"order": k, **delays[k]}) for k, source in enumerate(node.inputs)]


def to_networkx(spec: "Spec | str | Mapping[str, Any]") -> nx.DiGraph:
    """The spec as a ``DiGraph`` with scalar attributes (see the module docstring).

    Parameters
    ----------
    spec : Spec, path, YAML text or dict
        Anything :func:`~hrgraph.load_spec` takes; it is checked like ``validate`` does.

    Returns
    -------
    networkx.DiGraph

    Raises
    ------
    SpecError, GraphError
        The spec is not valid.

    Examples
    --------
    >>> g = to_networkx("specs/hiresnet18.yaml")
    >>> g.graph["input_channels"], g.nodes["stage2"]["channels"], g.nodes["stage2"]["index"]
    (3, 128, 2)
    >>> g.edges["stage1", "stage2"]["role"], g.edges["stem", "stage4"]["role"]
    ('input', 'edge')
    >>> from_networkx(g) == load_spec("specs/hiresnet18.yaml")
    True
    """
    spec = load_spec(spec)
    check_graph(spec)
    graph = nx.DiGraph()
    for flat, (name, sub) in _flat_fields().items():
        value = getattr(spec, name)
        value = getattr(value, sub) if sub and value is not None else value
        if isinstance(value, list):
            if not value:
                continue
            value = ",".join(value)
        if value is not None:
            graph.graph[flat] = value
    for i, node in enumerate(spec.nodes):
        attrs = node.model_dump(mode="json", exclude={"id", "input"}, exclude_none=True)
        graph.add_node(node.id, **attrs, index=i)
    if any(e.from_ == NETWORK_INPUT for e in spec.edges) or any(NETWORK_INPUT in n.inputs for n in spec.nodes):
        # Only a spec that names its input gets this node (other specs keep their graphs):
        # kind "input" marks it as the network's input for from_networkx.
        graph.add_node(NETWORK_INPUT, kind=NETWORK_INPUT)
    for i, node in enumerate(spec.nodes):
        for source, attrs in _inputs_of(spec, i):
            graph.add_edge(source, node.id, role="input", **attrs)
    for j, edge in enumerate(spec.edges):
        options = edge.model_dump(mode="json", exclude={"from_", "to"}, exclude_none=True)
        role = "input+edge" if graph.has_edge(edge.from_, edge.to) else "edge"
        if role == "input+edge" and "delay" in graph.edges[edge.from_, edge.to]:
            # The pair's "delay" is the long-range edge's; the input's moves aside.
            graph.edges[edge.from_, edge.to]["input_delay"] = graph.edges[edge.from_, edge.to].pop("delay")
        graph.add_edge(edge.from_, edge.to, **options, index=j)
        graph.edges[edge.from_, edge.to]["role"] = role
    return graph


# -- node ids -------------------------------------------------------------------


def _clean(name: Hashable) -> str:
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", text)).strip("_")
    if not text or not text[0].isalpha():
        text = "n" + text
    text = text[:_MAX_ID]
    return text + "_node" if text in RESERVED_IDS or text == NETWORK_INPUT else text


def _unique(base: str, taken: set[str]) -> str:
    k = 2
    candidate = base
    while candidate in taken:
        suffix = f"_{k}"
        candidate = base[: _MAX_ID - len(suffix)] + suffix
        k += 1
    taken.add(candidate)
    return candidate


def node_ids(graph: nx.Graph) -> dict[Hashable, str]:
    """The spec id of every node of ``graph``: its name if that is a valid id, else a cleaned one.

    Cleaning keeps ASCII letters, digits and single ``_`` (accents are dropped,
    anything else becomes ``_``), puts ``n`` before a name that does not start
    with a letter, and appends ``_node`` to a name torch reserves.  Names that
    are valid ids keep them; the others, in the graph's node order, take the
    cleaned name or, where that is taken, the first free of ``name_2``, ``name_3``, ...

    Examples
    --------
    >>> node_ids(nx.path_graph(3))
    {0: 'n0', 1: 'n1', 2: 'n2'}
    >>> node_ids(nx.DiGraph([("V1", "V2/V3"), ("V2_V3", "a b"), ("a b", "forward")]))
    {'V1': 'V1', 'V2/V3': 'V2_V3_2', 'V2_V3': 'V2_V3', 'a b': 'a_b', 'forward': 'forward_node'}
    """
    ids: dict[Hashable, str] = {}
    taken: set[str] = set()
    for node in graph:
        if isinstance(node, str) and _clean(node) == node:
            ids[node] = node
            taken.add(node)
    return {node: ids[node] if node in ids else _unique(_clean(node), taken) for node in graph}


# -- graph -> spec ---------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    """What :func:`convert` made of a graph: the spec and what it had to change to get there."""

    spec: Spec
    #: Original node name (as text) -> spec id, for the nodes whose name was not a valid id.
    renamed: dict[str, str] = field(default_factory=dict)
    #: Edges dropped to break cycles, as (source, target) original names.
    dropped: list[tuple[str, str]] = field(default_factory=list)
    #: Edges made delay-1 feedback to break cycles (``break_cycles="feedback"``), as (source, target) original names.
    delayed: list[tuple[str, str]] = field(default_factory=list)
    #: Ids of the nodes hrgraph added (a stem, an output node, a classifier head).
    added: list[str] = field(default_factory=list)


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    return TypeAdapter(model.model_fields[name].rebuild_annotation())


def _coerce(model: type[BaseModel], name: str, value: Any) -> Any:
    """``value`` converted to ``model``'s field type the lax way ("16" -> 16, 1 -> True), or as is."""
    if name not in model.model_fields:
        return value
    try:
        return _adapter(model, name).validate_python(value, strict=False)
    except ValidationError as err:
        if all(e["type"] in _RANGE_ERRORS for e in err.errors()):
            # Of the right type once converted, but out of range: pass the converted value on, so that
            # validating the spec says the range ("greater than 0"), not "expected an integer, got -5.0".
            return _as_number(value)
        return value  # validating the spec reports it, naming the node


#: Pydantic's errors for a value of the right type that breaks a bound.
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"}


def _as_number(value: Any) -> Any:
    """``-5.0`` -> -5 and ``"-5"`` -> -5 (how GraphML doubles and GML or CSV text store integers), else as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        for number in (int, float):
            try:
                return number(value.strip())
            except ValueError:
                pass
    return value


_STRUCTURAL = {
    "index": TypeAdapter(int),
    "order": TypeAdapter(int),
    "implicit": TypeAdapter(bool),
    "input_delay": TypeAdapter(int),
}


def _coerce_structural(name: str, value: Any) -> Any:
    """An ``index``, ``order`` or ``implicit`` attribute converted the lax way, or as is."""
    if name not in _STRUCTURAL:
        return value
    try:
        return _STRUCTURAL[name].validate_python(value, strict=False)
    except ValidationError:
        return value


def _unknown(kind: str, name: str, allowed: Iterable[str], hint: str = "") -> str:
    allowed = sorted(allowed)
    return (
        f"unknown {kind} attribute '{name}'{did_you_mean(name, allowed)}{hint}; known: {', '.join(allowed)} "
        f"(skip it with ignore=['{name}'], on the command line --ignore {name})"
    )


def _node_fields(node: str, attrs: Mapping[str, Any], default_kind: str) -> tuple[type[Block], dict[str, Any]]:
    kind = attrs.get("kind", default_kind)
    if kind not in KINDS:
        known = ", ".join(KINDS)
        raise SpecError(f"unknown block kind '{kind}'{did_you_mean(str(kind), KINDS)}; known kinds: {known}", node=node)
    cls = KINDS.get(kind)
    allowed = [f for f in cls.model_fields if f not in ("id", "input")] + list(NODE_ATTRIBUTES)
    for name in attrs:
        if name not in allowed:
            if name in ("id", "input"):
                hint = " (a node's id is its name in the graph; its inputs are its incoming edges)"
            else:
                others = [k for k in KINDS if name in KINDS.get(k).model_fields]
                hint = f" (it belongs to kind {', '.join(others)}, not {kind})" if others else ""
            raise SpecError(_unknown("node", name, allowed, hint), node=node)
    return cls, dict(attrs)


def _check_edge(name: str, attrs: Mapping[str, Any]) -> None:
    allowed = [f for f in Edge.model_fields if f not in ("from_", "to")]
    allowed += list(EDGE_ATTRIBUTES)
    for key in attrs:
        if key not in allowed:
            raise SpecError(_unknown("edge", key, allowed), edge=name)
    role = attrs.get("role", "input")
    if role not in ROLES:
        raise SpecError(f"role must be one of {', '.join(ROLES)}, not {role!r}{did_you_mean(str(role), ROLES)}", edge=name)
    # An input's delay is its own ({from: X, delay: N}); a weight on an edge without a role
    # makes convert() route it (see there).
    inputs_may = {"delay", "weight"} if "role" not in attrs else {"delay"}
    options = sorted(k for k in attrs if k not in EDGE_ATTRIBUTES and k not in inputs_may)
    if role == "input" and options:
        # Silently dropping them would build another network than the file describes.
        raise SpecError(
            f"{', '.join(options)}: options of a long-range edge, but this edge is an input "
            "(give it role 'edge' or 'input+edge', or leave the options out)",
            edge=name,
        )


def _take_input(graph: nx.DiGraph) -> list[tuple[Any, dict[str, Any]]]:
    """Remove the network-input node (``input`` with ``kind: input``, as :func:`to_networkx` writes it)
    from ``graph``; return its out-edges as ``(target, attributes)``.  Any other node named ``input``
    is an ordinary node (renamed ``input_node``: the name is reserved)."""
    if NETWORK_INPUT not in graph or graph.nodes[NETWORK_INPUT].get("kind") != NETWORK_INPUT:
        return []
    if graph.in_degree(NETWORK_INPUT):
        u = next(iter(graph.predecessors(NETWORK_INPUT)))
        raise SpecError(f"the network input ('{NETWORK_INPUT}', kind: input) takes no incoming edge, but {u}->input is one", node=NETWORK_INPUT)
    out = [(v, dict(attrs)) for v, attrs in graph.adj[NETWORK_INPUT].items()]
    graph.remove_node(NETWORK_INPUT)
    return out


def _directed(graph: nx.Graph) -> nx.DiGraph:
    """``graph`` as a DiGraph in the same node order; undirected edges point from the earlier node to the later."""
    if graph.is_multigraph():
        seen: set[tuple[Any, Any]] = set()
        for u, v in graph.edges():
            pair = (u, v) if graph.is_directed() else tuple(sorted((u, v), key=str))
            if pair in seen:
                raise SpecError(f"parallel edges {u} -> {v}: hrgraph takes at most one edge per pair of nodes", edge=f"{u}->{v}")
            seen.add(pair)
    out = nx.DiGraph()
    out.graph.update(graph.graph)
    out.add_nodes_from(graph.nodes(data=True))
    position = {node: i for i, node in enumerate(graph)}
    for u, v, data in graph.edges(data=True):
        if not graph.is_directed() and position[u] > position[v]:
            u, v = v, u
        out.add_edge(u, v, **data)
    return out


def _check_indexes(graph: nx.DiGraph) -> None:
    """Refuse ``index`` attributes that do not give one order of the nodes that every edge follows.

    A node's ``index`` is its place in ``nodes`` (as :func:`to_networkx` writes
    it): two nodes with the same index leave their order to chance, and an edge
    into a node of a lower index than its source cannot be a forward input.
    """
    seen: dict[int, Any] = {}
    for node in graph:
        index = graph.nodes[node]["index"]
        if index in seen:
            raise SpecError(
                f"nodes {seen[index]} and {node} both have index {index}; each node's index must be its own "
                "place in the order of nodes (or leave index out everywhere)",
                node=str(node),
            )
        seen[index] = node
    for u, v in undelayed(graph).edges():  # a delayed link may go back: it reads an earlier step
        if graph.nodes[u]["index"] >= graph.nodes[v]["index"]:
            raise SpecError(
                f"the edge {u} -> {v} goes against the index attributes ({u} has index {graph.nodes[u]['index']}, "
                f"{v} has {graph.nodes[v]['index']}): an edge must go from a lower index to a higher one "
                "(fix the indexes, or leave index out everywhere)",
                node=str(v),
                edge=f"{u}->{v}",
            )


def _order(graph: nx.DiGraph) -> list[Any]:
    position = {node: i for i, node in enumerate(graph)}
    indexes = [graph.nodes[n].get("index") for n in graph]
    if graph and all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
        _check_indexes(graph)
        return sorted(graph, key=lambda n: (graph.nodes[n]["index"], position[n]))
    return list(nx.lexicographical_topological_sort(undelayed(graph), key=position.__getitem__))


def _top_level(graph: nx.DiGraph, lax: bool) -> dict[str, Any]:
    flat = _flat_fields()
    data: dict[str, Any] = {}
    for key, value in graph.graph.items():
        if key in _READER_ATTRIBUTES:
            continue
        if key not in flat:
            allowed = sorted(flat)
            raise SpecError(
                f"unknown graph attribute '{key}'{did_you_mean(key, allowed)}; known: {', '.join(allowed)} "
                f"(skip it with ignore=['{key}'], on the command line --ignore {key})"
            )
        name, sub = flat[key]
        if name == "imports" and isinstance(value, str):
            value = [m.strip() for m in value.split(",") if m.strip()]
        if sub is None:
            data[name] = _coerce(Spec, name, value) if lax else value
        else:
            model = _submodel(Spec.model_fields[name].annotation)
            data.setdefault(name, {})[sub] = _coerce(model, sub, value) if lax else value
    return data


def convert(
    graph: nx.Graph,
    *,
    name: str | None = None,
    input: tuple[int, int, int] | None = None,
    classes: int | None = None,
    default_kind: str = "sepconv",
    default_channels: int = 32,
    aggregate: Literal["sum", "mean", "concat", "weighted"] = "sum",
    break_cycles: Literal["order", "feedback"] | None = None,
    steps: int = 3,
    weights: Literal["keep", "gate"] = "keep",
    ignore: Iterable[str] = (),
    allow_imports: bool = False,
    lax: bool = False,
) -> Imported:
    """:func:`from_networkx`, also returning the renamed nodes, dropped edges and added nodes.

    ``lax`` converts attribute values from text and numbers the way a file
    format needs (``"16"`` -> 16, ``1`` -> true, ``16.0`` -> 16), as
    ``hrgraph import`` does; otherwise values are taken as given.
    """
    ignore = set(ignore)
    if graph.number_of_nodes() == 0:
        raise SpecError("the graph has no nodes")
    graph = _directed(graph)
    for attrs in [graph.graph, *(d for _, d in graph.nodes(data=True)), *(d for *_, d in graph.edges(data=True))]:
        for key in ignore & set(attrs):
            del attrs[key]
    from_input = _take_input(graph)
    ids = node_ids(graph)
    text = {node: str(node) for node in graph}
    blocks: dict[Any, dict[str, Any]] = {}
    for node, attrs in graph.nodes(data=True):
        cls, fields = _node_fields(text[node], attrs, default_kind)
        if lax:
            fields = {k: _coerce_structural(k, v) if k in NODE_ATTRIBUTES else _coerce(cls, k, v) for k, v in fields.items()}
            if "index" in fields:
                graph.nodes[node]["index"] = fields["index"]
        fields.pop("index", None)
        fields["kind"] = fields.get("kind", default_kind)
        for key, value in (("channels", default_channels), ("classes", classes or 10)):
            if key in cls.model_fields and cls.model_fields[key].is_required() and key not in fields:
                fields[key] = value
        blocks[node] = {"id": ids[node], **fields}
    for u, v, attrs in graph.edges(data=True):
        _check_edge(f"{text[u]}->{text[v]}", attrs)
        if lax:
            for key in list(attrs):
                attrs[key] = _coerce_structural(key, attrs[key]) if key in EDGE_ATTRIBUTES else _coerce(Edge, key, attrs[key])
    for v, attrs in from_input:
        _check_edge(f"{NETWORK_INPUT}->{text[v]}", attrs)
        if lax:
            for key in list(attrs):
                attrs[key] = _coerce_structural(key, attrs[key]) if key in EDGE_ATTRIBUTES else _coerce(Edge, key, attrs[key])
    chosen = _cycles(graph, break_cycles)
    order = _order(graph)
    position = {node: i for i, node in enumerate(order)}
    # Normalised by the largest weight of the graph, main inputs' included.
    largest = max((abs(a["weight"]) for *_, a in graph.edges(data=True) if isinstance(a.get("weight"), (int, float))), default=0)
    route_weighted(graph, order)
    if weights == "gate":
        weights_to_gates(graph, largest)

    inputs: dict[Any, list[tuple[Any, dict[str, Any]]]] = {n: [] for n in order}
    edges: list[tuple[tuple[float, int, int], dict[str, Any]]] = []
    for u, v, attrs in [*graph.edges(data=True), *((NETWORK_INPUT, v, a) for v, a in from_input)]:
        role = attrs.get("role", "input")
        if role in ("input", "input+edge"):
            delay = attrs.get("delay" if role == "input" else "input_delay", 0)
            inputs[v].append((u, {**attrs, "delay": delay} if delay else {k: a for k, a in attrs.items() if k != "delay"}))
        if role in ("edge", "input+edge"):
            options = {k: val for k, val in attrs.items() if k not in EDGE_ATTRIBUTES}
            index = attrs.get("index")
            key = (index if isinstance(index, int) else float("inf"), position[v], position.get(u, -1))
            edges.append((key, {"from": ids.get(u, u), "to": ids[v], **options}))

    taken = set(ids.values())
    added: list[str] = []
    nodes = [blocks[n] for n in order]
    sources = [n for n in order if not inputs[n]]
    # The first node takes the network input and can name no other: one that reads only delayed
    # feedback (a cycle's entry, under break_cycles="feedback") needs a stem to feed it.
    fed_back = [order[0]] if inputs[order[0]] and all(a.get("delay") for _, a in inputs[order[0]]) else []
    previous = {n: order[i - 1] if i else None for i, n in enumerate(order)}
    if len(sources) > 1 or fed_back:
        stem = _unique("stem", taken)
        added.append(stem)
        nodes.insert(0, {"id": stem, "kind": "conv", "channels": default_channels})
        previous[order[0]] = stem
        for n in sources + fed_back:
            inputs[n].append((stem, {}))
    for n in order:
        block = blocks[n]
        given = sorted(inputs[n], key=lambda e: (e[1].get("order", float("inf")), position.get(e[0], -1)))
        sources_of = [
            {"from": ids.get(s, s), "delay": attrs["delay"]} if attrs.get("delay") else ids.get(s, s) for s, attrs in given
        ]
        listed = any("order" in attrs for _, attrs in given)
        if listed or len(given) > 1:
            block["input"] = sources_of
            if len(given) > 1 and "aggregate" not in block and aggregate != "sum":
                block["aggregate"] = aggregate
        elif given:
            source, attrs = given[0]
            # An hrgraph edge (with a role) keeps an explicit input explicit; a plain edge from the previous node needs none.
            implicit = attrs.get("implicit", False) if "role" in attrs else not attrs.get("delay")
            if not (implicit and source == previous[n]):
                block["input"] = sources_of[0]
    sinks = [n for n in order if graph.out_degree(n) == 0]
    if len(sinks) > 1:
        output = _unique("output", taken)
        added.append(output)
        nodes.append({"id": output, "kind": "identity", "input": [ids[n] for n in sinks], "aggregate": "mean"})
    if classes is not None and not KINDS.get(nodes[-1]["kind"]).terminal:
        head = _unique("head", taken)
        added.append(head)
        nodes.append({"id": head, "kind": "classifier", "classes": classes})

    data = _top_level(graph, lax)
    if name is not None:
        data["name"] = name
    if input is not None:
        data["input"] = dict(zip(("channels", "height", "width"), input))
    data.setdefault("input", {"channels": 3, "height": 32, "width": 32})
    if "time" not in data and any(attrs.get("delay") or attrs.get("input_delay") for *_, attrs in graph.edges(data=True)):
        data["time"] = {"steps": steps}  # delays need a time section; the biological scheme allows feedback
    data["nodes"] = nodes
    data["edges"] = [e for _, e in sorted(edges, key=lambda item: item[0])]
    back = {ids[n]: text[n] for n in graph}
    try:
        spec = load_spec(data, allow_imports=allow_imports)
        check_graph(spec)
    except HrgraphError as err:
        # Name nodes as the graph does, not by their cleaned ids.
        if err.node in back:
            err.node = back[err.node]
        raise
    renamed = {text[n]: ids[n] for n in graph if text[n] != ids[n]}
    named = [(text[u], text[v]) for u, v in chosen]
    return Imported(
        spec=spec,
        renamed=renamed,
        dropped=named if break_cycles == "order" else [],
        delayed=named if break_cycles == "feedback" else [],
        added=added,
    )


def from_networkx(
    graph: nx.Graph,
    *,
    name: str | None = None,
    input: tuple[int, int, int] | None = None,
    classes: int | None = None,
    default_kind: str = "sepconv",
    default_channels: int = 32,
    aggregate: Literal["sum", "mean", "concat", "weighted"] = "sum",
    break_cycles: Literal["order", "feedback"] | None = None,
    steps: int = 3,
    weights: Literal["keep", "gate"] = "keep",
    ignore: Iterable[str] = (),
    allow_imports: bool = False,
) -> Spec:
    """Build a spec from a networkx graph: an export of :func:`to_networkx`, or any plain graph.

    Nodes become blocks in topological order (ties in the graph's node order),
    or in the order of their ``index`` attributes where every node has one.  A
    node's ``kind`` attribute picks its block kind (default ``default_kind``),
    its other attributes set the block's fields; a required ``channels`` missing
    is ``default_channels``.  Edges without a ``role`` are inputs: a node with
    one predecessor takes it as ``input``, with several an ``input: [...]`` list
    merged by ``aggregate``.  An undirected graph's edges point from the earlier
    node to the later one (RandWire's rule).

    If several nodes have no predecessor, a ``stem`` (a 3x3 ``conv`` of
    ``default_channels``) feeds them all; if several have no successor, an
    ``output`` node (``identity``, ``aggregate: mean``) takes them all; with
    ``classes``, a ``classifier`` head follows unless the last node is one.
    Node names that are not valid ids are cleaned (:func:`node_ids`).

    Parameters
    ----------
    graph : networkx.Graph or DiGraph (multigraphs without parallel edges too)
    name : str, optional
        The spec's name (default: the graph's ``name`` attribute).
    input : (channels, height, width), optional
        Default: the graph's ``input_*`` attributes, else ``(3, 32, 32)``.
    classes : int, optional
        Add a classifier head with this many classes (see above).
    default_kind, default_channels, aggregate
        For nodes that do not say otherwise.
    break_cycles : "order" or "feedback", optional
        ``order`` drops every edge that goes backwards in the graph's node order
        within a cycle (a strongly connected component); ``feedback`` keeps those
        edges as delay-1 feedback (``{from: X, delay: 1}``) and adds a ``time``
        section of ``steps`` steps.  By default a cycle is an error.  Edges with a
        ``delay`` attribute close no cycle.
    steps : int
        Steps of the ``time`` section added when the result has delays and the graph gives no ``time_*``.
    weights : "keep" or "gate"
        Edges with a ``weight`` attribute (a connectome's synapse counts): each node's
        strongest non-delayed predecessor is its main input, every other weighted edge a
        long-range edge keeping its ``weight`` (metadata).  ``gate`` also gives those edges
        a scalar gate starting at ``weight / max(weight)``.
    ignore : iterable of str
        Graph, node and edge attributes to leave out.
    allow_imports : bool
        As for :func:`~hrgraph.load_spec`.

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        An unknown attribute (with a did-you-mean), kind or value.
    CycleError
        The graph has a cycle and ``break_cycles`` is not given; ``err.cycle`` lists it.
    GraphError
        The result is not a valid network graph.

    Examples
    --------
    >>> g = nx.DiGraph([("V1", "V2"), ("V1", "V4"), ("V2", "V4"), ("V4", "IT")])
    >>> g.nodes["V1"].update(kind="conv", channels=16)
    >>> spec = from_networkx(g, default_kind="conv", classes=10)
    >>> [(n.id, n.input) for n in spec.nodes]
    [('V1', None), ('V2', None), ('V4', ['V1', 'V2']), ('IT', None), ('head', None)]
    >>> from_networkx(nx.DiGraph([("a", "b"), ("b", "a")]))
    Traceback (most recent call last):
    ...
    hrgraph.errors.CycleError: node a: the graph has a cycle: a -> b -> a (break_cycles='order', ...
    """
    return convert(
        graph,
        name=name,
        input=input,
        classes=classes,
        default_kind=default_kind,
        default_channels=default_channels,
        aggregate=aggregate,
        break_cycles=break_cycles,
        steps=steps,
        weights=weights,
        ignore=ignore,
        allow_imports=allow_imports,
    ).spec
