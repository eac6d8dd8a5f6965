"""Matplotlib without a display: a new figure, and its bytes for an atomic write.

Figures are :class:`matplotlib.figure.Figure` objects, never pyplot's global
state, so that analysing several runs in one process leaks nothing.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["new_figure", "figure_bytes", "PALETTE"]

#: Colours of the block path and of projections by source (matplotlib's tab10, block first).
PALETTE = ("#4c4c4c", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def new_figure(width: float, height: float) -> Any:
    """A constrained-layout :class:`~matplotlib.figure.Figure` of ``width`` x ``height`` inches."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def figure_bytes(fig: Any, fmt: str = "png") -> bytes:
    """``fig`` rendered as ``png`` or ``svg`` (without a date, so that equal figures give equal files)."""
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buf, format=fmt, dpi=120, metadata=metadata)
    return buf.getvalue()
