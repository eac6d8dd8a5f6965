"""Random DAG specs, for tests and benchmarks of large topologies.

The main path is a chain of small ``basic`` stages that halves the spatial size
a few times; every node also receives up to ``fan_in`` long-range edges from
earlier nodes within a window, so the generated spec has O(nodes) edges and
every edge is valid (ratios are powers of two).  No torch here.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["random_dag_spec"]


def random_dag_spec(
    nodes: int,
    *,
    fan_in: int = 2,
    window: int = 8,
    seed: int = 0,
    channels: tuple[int, ...] = (8, 16),
    downsamples: int = 3,
    size: int = 16,
    classes: int = 10,
    kinds: tuple[str, ...] = ("basic",),
    merge_concat: float = 0.0,
) -> dict[str, Any]:
    """A valid spec dict with ``nodes`` nodes (stem and head included).

    Parameters
    ----------
    nodes : int
        Total number of nodes, at least 3.
    fan_in : int
        Maximum long-range edges into each node.
    window : int
        Sources are drawn from the ``window`` nodes before the target's main input.
    seed : int
        Random seed; the same arguments give the same spec.
    channels : tuple of int
        Widths drawn for each stage.
    downsamples : int
        How many stages halve the spatial size (evenly spaced).
    size : int
        Input height and width.
    kinds : tuple of str
        Block kinds drawn for the stages (``basic``, ``plain`` or ``resnext``).
    merge_concat : float
        Probability that an edge concatenates instead of summing.

    Examples
    --------
    >>> from hrgraph import load_spec
    >>> spec = load_spec(random_dag_spec(20, seed=1))
    >>> len(spec.nodes), len(spec.edges) > 0
    (20, True)
    """
    if nodes < 3:
        raise ValueError("a generated spec needs at least 3 nodes (stem, one stage, head)")
    rng = random.Random(seed)
    stages = nodes - 2
    strided = {round((i + 1) * stages / (downsamples + 1)) for i in range(downsamples)} if stages > downsamples else set()
    node_list: list[dict[str, Any]] = [{"id": "stem", "kind": "conv", "channels": channels[0]}]
    for i in range(1, stages + 1):
        kind = rng.choice(kinds)
        node: dict[str, Any] = {"id": f"n{i}", "kind": kind, "channels": rng.choice(channels), "depth": 1}
        if i in strided:
            node["stride"] = 2
        node_list.append(node)
    node_list.append({"id": "head", "kind": "classifier", "classes": classes})

    edges = []
    ids = [n["id"] for n in node_list]
    for t in range(2, len(node_list) - 1):
        lo = max(0, t - 1 - window)
        candidates = ids[lo : t - 1]  # skip the main input, t - 1
        for source in rng.sample(candidates, min(fan_in, len(candidates))):
            edge = {"from": source, "to": ids[t]}
            if merge_concat and rng.random() < merge_concat:
                edge["merge"] = "concat"
            edges.append(edge)
    return {
        "version": 1,
        "name": f"random-{nodes}-s{seed}",
        "input": {"channels": 3, "height": size, "width": size},
        "nodes": node_list,
        "edges": edges,
    }
