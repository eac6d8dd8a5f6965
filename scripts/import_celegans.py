"""Import the whole C. elegans chemical-synapse connectome with ``--cycles feedback`` and measure it.

Reads ``herm_full_edgelist.csv`` (the hermaphrodite edge list OpenWorm used, based on
Cook et al. 2019, as bundled by the ``cect`` package: ``pip install cect``; columns
``Source,Target,Weight,Type``, neurons plus muscles and end organs; cect marks it a
legacy data set kept for reference, and it is the one plain CSV edge list it ships),
keeps the chemical synapses (``Type == chemical``), writes them as an hrgraph edge
list (``source,target,weight``), imports it the way ``hrgraph import --cycles
feedback`` does, and prints nodes, edges, delayed edges, parameters, and the time
``compile_model`` took (the numbers quoted in docs/import.md).  ``--tests-subgraph``
writes instead the small subgraph tests/data/celegans-chemical-subgraph.csv is.

    python scripts/import_celegans.py [--out celegans.yaml] [--channels 8] [--steps 3]
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import networkx as nx

import hrgraph
from hrgraph.io.graphfiles import import_graph

SOURCE = "herm_full_edgelist.csv"


def cect_file() -> Path:
    """The path of cect's hermaphrodite edge list; SystemExit with advice if cect is not installed."""
    try:
        import cect
    except ImportError:
        raise SystemExit("needs the cect package: pip install cect") from None
    return Path(cect.__file__).parent / "data" / SOURCE


def chemical_rows(path: Path) -> list[list[str]]:
    """``[source, target, weight, type]`` of each chemical synapse, names stripped of the file's padding."""
    with path.open(newline="") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f)]
    return [row for row in rows[1:] if row and row[3] == "chemical"]


def subgraph(rows: list[list[str]], size: int) -> list[list[str]]:
    """The rows between the ``size`` nodes of the largest strongly connected component with most synapses.

    The nodes are taken in decreasing order of their total synapse count within
    that component, so the subgraph is dense and keeps many of its cycles.
    """
    graph = nx.DiGraph()
    for u, v, w, _ in rows:
        graph.add_edge(u, v, weight=float(w))
    core = graph.subgraph(max(nx.strongly_connected_components(graph), key=len))
    strength = {n: core.in_degree(n, weight="weight") + core.out_degree(n, weight="weight") for n in core}
    keep = set(sorted(strength, key=lambda n: (-strength[n], n))[:size])
    return [row for row in rows if row[0] in keep and row[1] in keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="Write the imported spec here.")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--weights", choices=["keep", "gate"], default="keep")
    parser.add_argument("--tests-subgraph", type=int, metavar="N", help="Write the N-node test subgraph to stdout instead.")
    args = parser.parse_args()
    path = cect_file()
    rows = chemical_rows(path)
    if args.tests_subgraph:
        print(f"# {args.tests_subgraph} neurons of the C. elegans hermaphrodite chemical connectome (OpenWorm's edge list based on Cook et al. 2019),")
        print(f"# from cect's data/{SOURCE} (pip install cect): chemical rows only, the neurons of the largest")
        print("# strongly connected component with the most synapses in it, and every synapse between them.")
        print(f"# Made by: python scripts/import_celegans.py --tests-subgraph {args.tests_subgraph}")
        print("Source,Target,Weight,Type")
        for row in subgraph(rows, args.tests_subgraph):
            print(",".join(row))
        return
    with tempfile.TemporaryDirectory() as tmp:
        edges = Path(tmp) / "celegans_chemical.csv"
        edges.write_text("source,target,weight\n" + "".join(f"{u},{v},{w}\n" for u, v, w, _ in rows))
        start = time.perf_counter()
        result = import_graph(edges, break_cycles="feedback", steps=args.steps, weights=args.weights,
                              default_kind="sepconv", default_channels=args.channels, classes=10)
        imported = time.perf_counter() - start
    spec = result.spec
    if args.out:
        args.out.write_text(spec.to_yaml())
    neurons = len({u for u, *_ in rows} | {v for _, v, *_ in rows})
    print(f"source: cect data/{SOURCE}, chemical synapses: {neurons} cells (neurons, muscles, end organs), {len(rows)} edges")
    print(f"spec: {len(spec.nodes)} nodes ({', '.join(result.added)} added), {len(spec.edges)} long-range edges, "
          f"{len(result.delayed)} edges delayed, time steps {spec.time.steps}; import took {imported:.1f} s")
    start = time.perf_counter()
    model = hrgraph.compile_model(spec)
    compiled = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    print(f"compile_model: {compiled:.1f} s, {params:,} parameters")
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}, "
          f"torch {__import__('torch').__version__}; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
