"""Other formats in and out.

``netx`` converts specs to and from networkx graphs; ``graphfiles`` imports
GraphML, GML and CSV graph files as specs; ``feedback`` turns a plain
graph's cycles and weights into delays and weighted long-range edges; ``interop`` maps foreign weights
(torchvision's ResNet) onto compiled specs.  Nothing is imported here, so that
reading a graph file does not import torch.
"""
