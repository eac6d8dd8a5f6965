"""Gradient reach: the gradient norm of every node along depth, at initialisation and along training.

The HiResNet paper explains the gain of hierarchical residuals by the loss
reaching early layers through them.  ``hrgraph train --log-grad-norms`` writes
``grad_norms.csv`` into the run (``epoch,module,kind,norm``: epoch 0 is the
gradient at initialisation on the first batch, epoch ``e`` the mean over that
epoch's steps of the per-step L2 norm of the module's parameter gradients);
this module reads it and draws the norm per node against depth, one line per
logged epoch.  No torch here.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..errors import TrainingError
from .figures import figure_bytes, new_figure

__all__ = ["read_grad_norms", "gradient_figure", "FILENAME"]

FILENAME = "grad_norms.csv"
_COLUMNS = ("epoch", "module", "kind", "norm")


def read_grad_norms(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``grad_norms.csv``: ``epoch`` (int), ``module`` (``nodes.X`` or ``projections.Y``), ``kind``, ``norm``.

    Raises
    ------
    TrainingError
        The file lacks a column or holds a value that is not a number.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / FILENAME
    >>> _ = path.write_text("epoch,module,kind,norm\\n0,nodes.stem,node,0.5\\n")
    >>> read_grad_norms(path)
    [{'epoch': 0, 'module': 'nodes.stem', 'kind': 'node', 'norm': 0.5}]
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TrainingError(f"not a gradient-norm log: no column {', '.join(missing)}", path=str(path))
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({"epoch": int(row["epoch"]), "module": row["module"], "kind": row["kind"],
                             "norm": float(row["norm"])})
            except (TypeError, ValueError):
                raise TrainingError(f"row {line}: epoch or norm is not a number", path=str(path)) from None
    return rows


def _short(module: str) -> str:
    return module.split(".", 1)[1] if "." in module else module


def gradient_figure(
    rows: list[dict[str, Any]], order: list[str], *, edge_names: dict[str, str] | None = None, title: str = "",
    fmt: str = "png",
) -> bytes:
    """Norm per node against depth (``order``: node ids in network order), one line per epoch, log scale.

    Projections, when logged, get a second panel: their norm against epoch,
    labelled ``edge_names[module_name]`` (``"from->to"``) where given.
    """
    edge_names = edge_names or {}
    epochs = sorted({r["epoch"] for r in rows})
    projections = sorted({r["module"] for r in rows if r["kind"] == "projection"})
    fig = new_figure(11.0 if projections else 6.8, 4.0)
    axes = fig.subplots(1, 2 if projections else 1, squeeze=False)[0]
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    depth = {node: i for i, node in enumerate(order)}
    nodes = [n for n in order if any(r["kind"] == "node" and _short(r["module"]) == n for r in rows)]
    # At most ten labelled lines; every epoch is still drawn.
    labelled = set(epochs[:: max(1, len(epochs) // 9)]) | {epochs[-1]} if epochs else set()
    for k, epoch in enumerate(epochs):
        points = sorted((depth[_short(r["module"])], r["norm"]) for r in rows
                        if r["epoch"] == epoch and r["kind"] == "node" and _short(r["module"]) in depth)
        if points:
            xs, ys = zip(*points)
            label = ("initialisation" if epoch == 0 else f"epoch {epoch}") if epoch in labelled else None
            axes[0].plot(xs, ys, marker=".", color=cmap(k / max(1, len(epochs) - 1)), label=label)
    axes[0].set_xticks([depth[n] for n in nodes], nodes, rotation=45, ha="right")
    axes[0].set(xlabel="node (input to output)", ylabel="gradient L2 norm", yscale="log",
                title=title or "gradient reach: norm per node")
    for module in projections:
        points = sorted((r["epoch"], r["norm"]) for r in rows if r["module"] == module)
        xs, ys = zip(*points)
        axes[1].plot(xs, ys, marker=".", label=edge_names.get(_short(module), _short(module)))
    if projections:
        from matplotlib.ticker import MaxNLocator

        axes[1].set(xlabel="epoch (0: initialisation)", ylabel="gradient L2 norm", yscale="log", title="projections")
        axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return figure_bytes(fig, fmt)
