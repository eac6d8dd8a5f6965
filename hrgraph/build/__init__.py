"""Spec -> torch module: the second stage of the pipeline.

``graph`` checks the spec as a networkx graph (cycles, references); ``shapes``
infers every node's shape and plans the projections the compiler inserts (no
torch); ``cost`` counts parameters, MACs and activations from those shapes (no
torch); ``blocks`` builds each block kind's module (the registry of block
classes); ``compiler`` wires the modules into one :class:`~hrgraph.build.compiler.HrNet`
and generates its forward.

Nothing is imported here, so that ``hrgraph.build.shapes`` stays free of torch.
"""
