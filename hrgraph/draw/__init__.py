"""Graphviz diagrams of specs (``render``) and the gallery of every spec in a folder (``gallery``).  No torch."""
