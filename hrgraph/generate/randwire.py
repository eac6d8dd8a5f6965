"""RandWire networks (Xie et al. 2019, arXiv:1904.01569) as hrgraph specs.

A RandWire network is a stem of plain convolutions, then a few *random
stages*, then a classifier head.  Each random stage is one random undirected
graph from a classical generator (Watts-Strogatz ``ws``, Erdos-Renyi ``er``,
Barabasi-Albert ``ba``, all from networkx), made a DAG by orienting every edge
from the lower to the higher node index.  Every graph node becomes a
``sepconv`` node (ReLU, 3x3 depthwise-separable conv, BN) that merges its
inputs with ``aggregate: weighted``; the nodes without predecessors read the
stage's input (the previous stage's output) with stride 2, and the nodes
without successors are averaged by the stage's output node (``kind: identity,
aggregate: mean``).  Widths, node counts, stems and heads follow the paper's
Table 1 (:data:`REGIMES`); ``docs/generate.md`` says which choices are the
paper's and which are hrgraph's.

The same arguments always give the same spec: each stage's graph is drawn with
its own seed, derived from ``seed`` and the stage's id by SHA-256
(:func:`stage_seed`), never from Python's salted ``hash``.  No torch here.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from ..errors import did_you_mean
from ..spec.source import MAX_YAML_NODES

__all__ = ["GRAPHS", "REGIMES", "Regime", "RandWireError", "random_graph", "orient", "stage_seed", "expected_edges",
           "randwire", "ws", "er", "ba"]

#: The random graph models, by their short names in the paper.
GRAPHS = ("ws", "er", "ba")

#: Each model's parameters and the paper's best-performing values (its Fig. 3 / Table 2 settings).
DEFAULTS: dict[str, dict[str, float | int]] = {"ws": {"k": 4, "p": 0.75}, "er": {"p": 0.2}, "ba": {"m": 5}}

#: Width of the head's 1x1 convolution (Table 1: "1x1 conv, 1280-d").
HEAD_CHANNELS = 1280


class RandWireError(ValueError):
    """A generator argument that cannot give a network (an odd ``k``, ``m >= nodes``, an unknown graph)."""


@dataclass(frozen=True)
class Regime:
    """One column of the paper's Table 1.

    ``stem``: how many 3x3 stride-2 convolutions precede the random stages
    (conv1 with C/2 channels, then conv2 with C).  ``stages``: how many random
    stages follow; stage ``i`` has ``C * 2**i`` channels.  ``half_first``:
    whether the first random stage has N/2 nodes instead of N.  ``channels``:
    the paper's C for this regime.
    """

    stem: int
    stages: int
    half_first: bool
    channels: int

    def first_stage(self) -> int:
        """The number in the first random stage's id (``conv3`` in the small regime)."""
        return self.stem + 1


#: The small regime (conv1, conv2 plain; conv3-5 random with N, N, N nodes; C=78 in Table 2) and the
#: regular regime (conv1 plain; conv2-5 random with N/2, N, N, N nodes; C=109 or 154 in Table 3).
REGIMES: dict[str, Regime] = {
    "small": Regime(stem=2, stages=3, half_first=False, channels=78),
    "regular": Regime(stem=1, stages=4, half_first=True, channels=109),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _graph_params(graph: str, k: Any, p: Any, m: Any) -> dict[str, Any]:
    """The generator's parameters: given ones checked, missing ones the paper's defaults."""
    if graph not in GRAPHS:
        raise RandWireError(f"unknown random graph model {graph!r}; expected one of {', '.join(GRAPHS)}"
                            + did_you_mean(str(graph), GRAPHS))
    given = {"k": k, "p": p, "m": m}
    for name, value in given.items():
        if value is not None and name not in DEFAULTS[graph]:
            users = [g for g in GRAPHS if name in DEFAULTS[g]]
            raise RandWireError(f"{name} is a parameter of {' and '.join(users)} graphs, not of {graph}")
    params = {name: given[name] if given[name] is not None else default for name, default in DEFAULTS[graph].items()}
    if "p" in params and not (_is_real(params["p"]) and 0 <= params["p"] <= 1):
        raise RandWireError(f"p must be a probability between 0 and 1, not {params['p']!r}")
    if "k" in params and not (_is_int(params["k"]) and params["k"] >= 2 and params["k"] % 2 == 0):
        # Watts-Strogatz joins each node to K/2 neighbours on either side of a ring: K is even.
        raise RandWireError(f"k must be an even integer >= 2 (each node's K/2 ring neighbours on either side), not {params['k']!r}")
    if "m" in params and not (_is_int(params["m"]) and params["m"] >= 1):
        raise RandWireError(f"m must be an integer >= 1 (edges from each new node), not {params['m']!r}")
    return params


def _check_nodes(graph: str, nodes: Any, params: dict[str, Any], where: str = "") -> None:
    if not (_is_int(nodes) and nodes >= 1):
        raise RandWireError(f"{where}the number of nodes must be an integer >= 1, not {nodes!r}")
    if graph == "ws" and params["k"] >= nodes:
        raise RandWireError(f"{where}ws needs k < nodes, got k={params['k']} with {nodes} nodes")
    if graph == "ba" and params["m"] >= nodes:
        raise RandWireError(f"{where}ba needs m < nodes, got m={params['m']} with {nodes} nodes")


def expected_edges(graph: str, nodes: int, params: dict[str, Any]) -> float:
    """The expected number of edges of one graph: WS ``n*k/2``, ER ``p*n*(n-1)/2``, BA ``m*(n-m)``.

    Examples
    --------
    >>> expected_edges("ws", 32, {"k": 4}), expected_edges("er", 10, {"p": 0.2}), expected_edges("ba", 32, {"m": 5})
    (64.0, 9.0, 135)
    """
    if graph == "ws":
        return nodes * params["k"] / 2
    if graph == "er":
        return params["p"] * nodes * (nodes - 1) / 2
    return params["m"] * (nodes - params["m"])


#: YAML nodes of a random stage's spec node at the least: its mapping and the keys and values of id,
#: kind, channels and input (a stride or aggregate, and each input past the first, only add to it).
_YAML_PER_NODE = 1 + 2 * 4


def _check_size(graph: str, counts: Sequence[int], params: dict[str, Any], fixed: int) -> None:
    """Refuse, before any graph is drawn, a network whose spec file the loader would refuse.

    Every input of a node is one YAML node, so ``_YAML_PER_NODE`` per graph
    node plus the expected edges estimates the file's YAML nodes from below
    (the stem, the head and the stages' output nodes left out): a network over
    :data:`~hrgraph.spec.source.MAX_YAML_NODES` by this estimate cannot be
    written as a loadable spec, and drawing it took gigabytes and minutes.
    ``fixed``: the spec nodes outside the random stages.
    """
    nodes = sum(counts) + len(counts) + fixed  # each stage's output node too
    edges = sum(expected_edges(graph, n, params) for n in counts)
    least = _YAML_PER_NODE * sum(counts) + edges
    if least > MAX_YAML_NODES:
        raise RandWireError(
            f"{graph} with {'/'.join(f'{n:,}' for n in counts)} nodes per random stage would make a spec of {nodes:,} "
            f"nodes and about {edges:,.0f} edges (expected, from the graph model): at least {least:,.0f} YAML nodes, "
            f"more than the {MAX_YAML_NODES:,} a spec may have; use fewer nodes"
            + (" or a smaller p" if graph == "er" else " or a smaller k" if graph == "ws" else " or a smaller m")
        )


def random_graph(graph: str, nodes: int, *, seed: int = 0, k: int | None = None, p: float | None = None,
                 m: int | None = None) -> nx.Graph:
    """One undirected random graph from networkx's generator, nodes ``0 .. nodes-1``.

    Parameters
    ----------
    graph : {"ws", "er", "ba"}
        ``ws``: ``watts_strogatz_graph(nodes, k, p)``; ``er``:
        ``erdos_renyi_graph(nodes, p)``; ``ba``: ``barabasi_albert_graph(nodes, m)``.
    nodes : int
        Number of nodes.
    seed : int
        The generator's seed; the same seed gives the same graph (for a given networkx version).
    k, p, m : optional
        The model's parameters; those left out take the paper's values
        (:data:`DEFAULTS`: WS K=4, P=0.75; ER P=0.2; BA M=5).

    Returns
    -------
    networkx.Graph

    Raises
    ------
    RandWireError
        An unknown model, a parameter the model does not take, or values no graph exists for.

    Examples
    --------
    >>> g = random_graph("ws", 8, seed=1)
    >>> g.number_of_nodes(), g.number_of_edges()  # a ring lattice of K=4 rewires edges, never adds any
    (8, 16)
    >>> random_graph("ws", 8, m=3)
    Traceback (most recent call last):
    ...
    hrgraph.generate.randwire.RandWireError: m is a parameter of ba graphs, not of ws
    """
    params = _graph_params(graph, k, p, m)
    _check_nodes(graph, nodes, params)
    if not _is_int(seed):
        raise RandWireError(f"seed must be an integer, not {seed!r}")
    if graph == "ws":
        return nx.watts_strogatz_graph(nodes, params["k"], params["p"], seed=seed)
    if graph == "er":
        return nx.erdos_renyi_graph(nodes, params["p"], seed=seed)
    return nx.barabasi_albert_graph(nodes, params["m"], seed=seed)


def orient(graph: nx.Graph) -> nx.DiGraph:
    """The DAG of ``graph``: every edge from the lower to the higher node index (the paper's rule).

    Examples
    --------
    >>> sorted(orient(nx.Graph([(2, 0), (1, 2)])).edges)
    [(0, 2), (1, 2)]
    """
    dag = nx.DiGraph()
    dag.add_nodes_from(sorted(graph.nodes))
    dag.add_edges_from((min(u, v), max(u, v)) for u, v in graph.edges)
    return dag


def stage_seed(seed: int, stage: str) -> int:
    """The seed of one stage's graph: the first 4 bytes of SHA-256 of ``"randwire:<seed>:<stage>"``.

    Each stage gets its own graph (the paper draws one per stage), and the
    derivation is stable across processes and Python versions, unlike ``hash()``.

    Examples
    --------
    >>> stage_seed(0, "conv3") == stage_seed(0, "conv3") != stage_seed(0, "conv4")
    True
    """
    digest = hashlib.sha256(f"randwire:{seed}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _node_id(stage: str, index: int, width: int) -> str:
    return f"{stage}_n{index:0{width}d}"


def _stage_nodes(stage: str, dag: nx.DiGraph, channels: int, stage_input: str) -> list[dict[str, Any]]:
    """The spec nodes of one random stage: a ``sepconv`` per graph node, then the stage's output node."""
    width = max(2, len(str(dag.number_of_nodes() - 1)))
    ids = {v: _node_id(stage, v, width) for v in dag.nodes}
    nodes: list[dict[str, Any]] = []
    for v in sorted(dag.nodes):
        preds = sorted(dag.predecessors(v))
        node: dict[str, Any] = {"id": ids[v], "kind": "sepconv", "channels": channels}
        if not preds:
            # Fed by the stage's unique input node, at half the previous stage's resolution.
            node.update(input=stage_input, stride=2)
        elif len(preds) == 1:
            node["input"] = ids[preds[0]]
        else:
            node.update(input=[ids[u] for u in preds], aggregate="weighted")
        nodes.append(node)
    sinks = [ids[v] for v in sorted(dag.nodes) if dag.out_degree(v) == 0]
    out: dict[str, Any] = {"id": f"{stage}_out", "kind": "identity"}
    if len(sinks) > 1:
        out.update(input=sinks, aggregate="mean")
    else:  # a non-default aggregate needs two inputs or more
        out["input"] = sinks[0]
    nodes.append(out)
    return nodes


def _check_shape(input: Any) -> tuple[int, int, int]:
    values = tuple(input) if isinstance(input, Sequence) and not isinstance(input, str) else ()
    if len(values) != 3 or not all(_is_int(v) and v >= 1 for v in values):
        raise RandWireError(f"input must be (channels, height, width) with positive integers, not {input!r}")
    return values  # type: ignore[return-value]


def randwire(
    graph: str,
    *,
    nodes: int = 32,
    seed: int = 0,
    k: int | None = None,
    p: float | None = None,
    m: int | None = None,
    regime: str = "small",
    channels: int | None = None,
    classes: int = 1000,
    input: Sequence[int] = (3, 224, 224),
    stages: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A RandWire network as a spec dict (load it with :func:`hrgraph.load_spec`).

    Parameters
    ----------
    graph : {"ws", "er", "ba"}
        The random graph model of every stage (see :func:`random_graph`).
    nodes : int
        N, the nodes of a random stage (the regular regime's first stage has N/2).
    seed : int
        Seed of the whole network; stage ``s`` draws its graph with ``stage_seed(seed, s)``.
    k, p, m : optional
        The model's parameters (WS: K, P; ER: P; BA: M); by default the paper's
        WS(4, 0.75), ER(0.2), BA(5).
    regime : {"small", "regular"}
        The paper's Table 1 column: stem, number of random stages and their node counts.
    channels : int, optional
        C; by default the paper's 78 (small) or 109 (regular).  Widths: conv1
        ceil(C/2), conv2 C (small), random stage ``i`` ``C * 2**i``.
    classes : int
        Outputs of the final linear layer.
    input : (int, int, int)
        Input shape (channels, height, width); the paper's ImageNet 3x224x224 by default.
    stages : sequence of int, optional
        Node counts of the random stages, replacing the regime's (N, N, N) or
        (N/2, N, N, N); their number sets how many random stages there are.

    Returns
    -------
    dict
        A spec: the stem (``conv1``, ``conv2``), the random stages (``conv3_n00``
        ... ``conv3_out``, ...), then ``head_conv`` (1x1 conv to 1280) and ``head``
        (global average pool and a linear layer).

    Raises
    ------
    RandWireError
        Arguments that cannot give a network (checked before any graph is drawn).

    Examples
    --------
    >>> spec = randwire("ws", nodes=8, stages=[8], input=(3, 32, 32), classes=10)
    >>> [n["id"] for n in spec["nodes"]][:4], spec["nodes"][-1]
    (['conv1', 'conv2', 'conv3_n00', 'conv3_n01'], {'id': 'head', 'kind': 'classifier', 'classes': 10})
    >>> randwire("ws", nodes=32, k=3)
    Traceback (most recent call last):
    ...
    hrgraph.generate.randwire.RandWireError: k must be an even integer >= 2 (each node's K/2 ring neighbours on either side), not 3
    """
    params = _graph_params(graph, k, p, m)
    if regime not in REGIMES:
        raise RandWireError(f"unknown regime {regime!r}; expected one of {', '.join(REGIMES)}" + did_you_mean(str(regime), REGIMES))
    shape = REGIMES[regime]
    width = shape.channels if channels is None else channels
    if not (_is_int(width) and width >= 1):
        raise RandWireError(f"channels must be an integer >= 1, not {width!r}")
    if not (_is_int(classes) and classes >= 1):
        raise RandWireError(f"classes must be an integer >= 1, not {classes!r}")
    if not _is_int(seed):
        raise RandWireError(f"seed must be an integer, not {seed!r}")
    in_c, in_h, in_w = _check_shape(input)
    if stages is None:
        _check_nodes(graph, nodes, params)
        counts = [max(1, nodes // 2) if i == 0 and shape.half_first else nodes for i in range(shape.stages)]
    else:
        counts = list(stages) if isinstance(stages, Sequence) and not isinstance(stages, str) else []
        if not counts:
            raise RandWireError(f"stages must list the node count of at least one random stage, not {stages!r}")
    names = [f"conv{shape.first_stage() + i}" for i in range(len(counts))]
    for name, count in zip(names, counts):
        _check_nodes(graph, count, params, where=f"stage {name}: ")
    _check_size(graph, counts, params, fixed=shape.stem + 2)  # the stem's convolutions, head_conv and head

    spec_nodes: list[dict[str, Any]] = [{"id": "conv1", "kind": "conv", "channels": math.ceil(width / 2), "stride": 2}]
    if shape.stem >= 2:
        spec_nodes.append({"id": "conv2", "kind": "conv", "channels": width, "stride": 2})
    previous = spec_nodes[-1]["id"]
    for i, (name, count) in enumerate(zip(names, counts)):
        dag = orient(random_graph(graph, count, seed=stage_seed(seed, name), **params))
        spec_nodes += _stage_nodes(name, dag, width * 2**i, previous)
        previous = f"{name}_out"
    spec_nodes.append({"id": "head_conv", "kind": "conv", "channels": HEAD_CHANNELS, "kernel": 1})
    spec_nodes.append({"id": "head", "kind": "classifier", "classes": classes})

    model = ", ".join(f"{v:g}" for v in params.values())
    tag = "-".join(f"{key}{value:g}" for key, value in params.items())
    sizes = f"N={nodes}" if stages is None else "stages of " + "/".join(map(str, counts)) + " nodes"
    size_tag = f"n{nodes}" if stages is None else "stages" + "x".join(map(str, counts))
    return {
        "version": 1,
        "name": f"randwire-{graph}-{tag}-{regime}-c{width}-{size_tag}-seed{seed}",
        "description": (
            f"RandWire-{graph.upper()}({model}), {regime} regime of Xie et al. 2019 (arXiv:1904.01569): C={width}, "
            f"{sizes}, seed {seed} (each stage's graph seeded by hrgraph.generate.stage_seed)."
        ),
        "input": {"channels": in_c, "height": in_h, "width": in_w},
        "nodes": spec_nodes,
    }


def ws(*, k: int = 4, p: float = 0.75, **kwargs: Any) -> dict[str, Any]:
    """RandWire-WS(K, P): :func:`randwire` with Watts-Strogatz graphs (the paper's best: K=4, P=0.75).

    Examples
    --------
    >>> ws(nodes=8, stages=[8], input=(3, 32, 32))["name"]
    'randwire-ws-k4-p0.75-small-c78-stages8-seed0'
    """
    return randwire("ws", k=k, p=p, **kwargs)


def er(*, p: float = 0.2, **kwargs: Any) -> dict[str, Any]:
    """RandWire-ER(P): :func:`randwire` with Erdos-Renyi graphs (the paper's best: P=0.2).

    Examples
    --------
    >>> er(nodes=8, stages=[8], input=(3, 32, 32))["name"]
    'randwire-er-p0.2-small-c78-stages8-seed0'
    """
    return randwire("er", p=p, **kwargs)


def ba(*, m: int = 5, **kwargs: Any) -> dict[str, Any]:
    """RandWire-BA(M): :func:`randwire` with Barabasi-Albert graphs (the paper's best: M=5).

    Examples
    --------
    >>> ba(nodes=8, stages=[8], input=(3, 32, 32))["name"]
    'randwire-ba-m5-small-c78-stages8-seed0'
    """
    return randwire("ba", m=m, **kwargs)
