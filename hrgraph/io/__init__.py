"""Other formats in and out.

``netx`` converts specs to and from networkx graphs; ``graphfiles`` imports
GraphML, GML and CSV graph files as specs; ``interop`` maps foreign weights
(torchvision's ResNet) onto compiled specs.  Nothing is imported here, so that
reading a graph file does not import torch.
"""
