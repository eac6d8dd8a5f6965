"""Spec -> spec: derive new specs from old ones (no torch).

``ablate`` removes long-range edges (the paper's Table 2 variants and sweeps);
``match`` scales widths and matches parameter counts (the Adjusted baselines);
``diff`` says what one spec adds, removes and changes relative to another;
``zoo`` tabulates a folder of specs.
"""
