"""Analysis of trained runs: what each long-range edge contributes, how much the model relies on it, gradient reach.

:func:`contributions` (the HiResNet paper's Fig. 2), :func:`edge_cut`
(accuracy with edges switched off at run time) and :func:`analyze` (both, plus
the gradient-norm log, written into a folder with ``analysis.md``); every
contribution is set beside the same measure on the run's network at
initialisation (:mod:`hrgraph.analysis.baseline`).  The cost
of every node and edge (parameters, MACs) is :mod:`hrgraph.build.cost`.
"""

from __future__ import annotations

from .contributions import contributions
from .edgecut import edge_cut
from .report import analyze
from .run import Run, open_run

__all__ = ["contributions", "edge_cut", "analyze", "open_run", "Run"]
