"""Spec generators: random DAGs for tests and benchmarks, and RandWire networks.

:func:`random_dag_spec` (:mod:`hrgraph.generate.dag`) builds a chain of stages
with random long-range edges; :func:`randwire` (:mod:`hrgraph.generate.randwire`)
builds the randomly wired networks of Xie et al. (2019) from networkx's
random graphs.  Each returns a spec dict for :func:`hrgraph.load_spec`; no torch here.
"""

from __future__ import annotations

from .dag import random_dag_spec
from .randwire import GRAPHS, REGIMES, ba, er, random_graph, randwire, stage_seed, ws

__all__ = ["random_dag_spec", "randwire", "ws", "er", "ba", "random_graph", "stage_seed", "GRAPHS", "REGIMES"]
