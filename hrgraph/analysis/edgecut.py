"""Edge cut: the accuracy of a trained model with long-range edges switched off at run time.

Each edge is cut on its own, then all of them at once, next to the intact
model, all in one pass over the data (every batch goes through each variant
of the forward; :meth:`HrNet.set_edges` only swaps the generated forward).
This measures how much the *trained* model relies on an edge: its other
weights were learned with the edge present.  It is not structural ablation
(the paper's Table 2, :func:`hrgraph.edit.ablate`), where a network is trained
without the edge and may learn to do as well without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..edit.ablate import select_edges
from ..build.compiler import HrNet
from ..errors import GraphError
from .figures import figure_bytes, new_figure

__all__ = ["edge_cut", "cuttable_edges", "edge_cut_figure", "COLUMNS"]

#: Columns of ``edgecut.csv``, in order.
COLUMNS = ["cut", "disabled", "n", "correct", "accuracy", "change", "loss"]


def cuttable_edges(model: HrNet, selectors: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``(cuttable, skipped)`` edge names: those selected (default all) that can be cut at run time, and the concat ones.

    Raises
    ------
    UnknownNodeError, GraphError
        A selector names no edge of the model (with a "did you mean"), or
        names a concat edge explicitly.
    """
    chosen = select_edges(model.spec, selectors) if selectors else list(model.spec.edges)
    concat = [e.name for e in chosen if e.merge == "concat"]
    if concat and selectors:
        raise GraphError(f"cannot cut concat edges at run time ({', '.join(concat)}): it would change the target's "
                         "width; compare structurally ablated runs instead (hrgraph ablate)", path=model.spec.path)
    return [e.name for e in chosen if e.merge != "concat"], concat


def edge_cut(
    model: HrNet, batches: Iterable[tuple[Tensor, Tensor]], edges: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Accuracy and loss of ``model`` intact, with each edge cut, and with all of them cut.

    Parameters
    ----------
    model : HrNet
        A trained model, on the device of the batches.
    batches : iterable of (Tensor, Tensor)
        ``(images, labels)``; read once.
    edges : sequence of str, optional
        Edge selectors (``"stem:stage4"``, ``"*:stage4"``); default: every
        edge merged by sum (concat edges cannot be cut at run time).

    Returns
    -------
    list of dict
        ``cut`` is ``"none"`` (intact), an edge ``"from->to"``, or ``"all"``;
        ``disabled`` the edges cut (``;``-separated); ``accuracy`` top-1 and
        ``change`` its difference from the intact model; ``loss`` the mean
        cross-entropy.  The model's edges and mode are restored afterwards.

    Raises
    ------
    UnknownNodeError, GraphError
        From :func:`cuttable_edges`.

    Examples
    --------
    >>> import torch, hrgraph
    >>> model = hrgraph.compile_model("specs/hiresnet18.yaml")
    >>> rows = edge_cut(model, [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))], edges=["*:stage4"])
    >>> [r["cut"] for r in rows]
    ['none', 'stem->stage4', 'stage1->stage4', 'stage2->stage4', 'all']
    >>> rows[0]["n"], rows[0]["change"]
    (4, 0.0)
    """
    names, _ = cuttable_edges(model, edges)
    variants = [("none", [])] + [(name, [name]) for name in names] + ([("all", names)] if names else [])
    sums = [[0, 0, 0.0] for _ in variants]  # images, correct, loss sum
    previous = model.disabled_edges
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for x, y in batches:
                for (_, off), acc in zip(variants, sums):
                    model.set_edges(disabled=off)
                    logits = model(x)
                    acc[0] += len(y)
                    acc[1] += int((logits.argmax(1) == y).sum())
                    acc[2] += float(F.cross_entropy(logits.float(), y, reduction="sum"))
    finally:
        model.set_edges(disabled=previous)
        model.train(was_training)
    rows = []
    for (cut, off), (n, correct, loss) in zip(variants, sums):
        rows.append({"cut": cut, "disabled": ";".join(off), "n": n, "correct": correct,
                     "accuracy": correct / n if n else float("nan"), "loss": loss / n if n else float("nan")})
    for row in rows:
        row["change"] = row["accuracy"] - rows[0]["accuracy"]
    return [{k: row[k] for k in COLUMNS} for row in rows]


def edge_cut_figure(rows: list[dict[str, Any]], *, chance: float | None = None, title: str = "", fmt: str = "png") -> bytes:
    """Horizontal bars of accuracy per variant: intact on top, then each edge cut, then all cut."""
    fig = new_figure(6.4, 1.2 + 0.32 * len(rows))
    ax = fig.subplots()
    labels = ["intact" if r["cut"] == "none" else ("all edges cut" if r["cut"] == "all" else f"cut {r['cut']}") for r in rows]
    colours = ["#4c4c4c" if r["cut"] == "none" else ("#d62728" if r["cut"] == "all" else "#1f77b4") for r in rows]
    ys = range(len(rows))[::-1]
    ax.barh(list(ys), [100 * r["accuracy"] for r in rows], color=colours)
    for y, r in zip(ys, rows):
        ax.text(100 * r["accuracy"], y, f" {100 * r['accuracy']:.1f}", va="center", fontsize="small")
    ax.set_yticks(list(ys), labels)
    ax.axvline(100 * rows[0]["accuracy"], color="#4c4c4c", ls="--", lw=1)
    if chance is not None:
        ax.axvline(100 * chance, color="#999999", ls=":", lw=1, label="chance")
        ax.legend(fontsize="small", loc="lower right")
    ax.set(xlabel="top-1 accuracy (%)", xlim=(0, 105), title=title or "accuracy with edges cut at run time (trained weights)")
    ax.grid(axis="x", alpha=0.3)
    return figure_bytes(fig, fmt)
