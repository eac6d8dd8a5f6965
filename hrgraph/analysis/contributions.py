"""What each connection contributes: the mean absolute activation of a block's own path and of each projection.

The HiResNet paper's Fig. 2 compares, at every block that receives
hierarchical residuals, the average absolute activation of the block's own
path ``F_i(y_{i-1})`` with that of each projection ``P_{j->i}(y_j)`` over a
whole test set.  :func:`contributions` measures the same on a compiled model in
one pass: forward hooks on the node and projection modules add each output's
absolute sum into a float64 accumulator and let the tensor go, so no
activation outlives its batch and nothing but the model itself runs.

An identity projection has no module; its output is the source's final value
``y_j``, read by a pre-hook on a module that takes ``y_j`` as its input (the
next node on the main path, or a projection leaving the source).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..build.compiler import HrNet
from .figures import PALETTE, figure_bytes, new_figure

__all__ = ["contributions", "contribution_figure", "COLUMNS"]

#: Columns of ``contributions.csv``, in order.
COLUMNS = ["node", "path", "kind", "source", "merge", "projection", "mean_abs", "ratio", "elements", "gate"]


def _reader(model: HrNet, source: str) -> tuple[Any, str] | None:
    """A module whose first input is ``source``'s final value: ``(module, what)``, or ``None``."""
    spec = model.spec
    for position, node in enumerate(spec.nodes):
        # A node with a list input reads the merge, not its first input.
        if spec.main_input(position) == source and not isinstance(node.input, list):
            return model.nodes[node.id], f"input of {node.id}"
    for p in model.plan.projections.values():
        if p.source == source and not p.identity:
            return model.projections[p.module_name], f"input of the projection {p.name}"
    return None


def contributions(model: HrNet, batches: Iterable[tuple[Tensor, Tensor]]) -> list[dict[str, Any]]:
    """Mean absolute activation of every receiving node's own path and of each projection into it.

    One pass over ``batches`` in eval mode without gradients; the model's
    training mode is restored afterwards.  Edges disabled with
    :meth:`HrNet.set_edges` are left out.

    Parameters
    ----------
    model : HrNet
        A compiled model (:func:`hrgraph.compile_model`), on the device of the batches.
    batches : iterable of (Tensor, Tensor)
        ``(images, labels)``, e.g. from :func:`hrgraph.train.data.iterate_batches`;
        the labels are not used.

    Returns
    -------
    list of dict
        Per receiving node in network order: a ``kind="block"`` row (``path``
        is ``"block"``: the node module's output ``F_i(y_{i-1})``), then one
        ``kind="projection"`` row per incoming edge (``path`` is ``"from->to"``).
        ``mean_abs`` is the mean of ``|a|`` over all elements of all images,
        ``ratio`` the row's ``mean_abs`` over the block's, ``elements`` the
        count it averages.  With ``residuals.entry: pre_activation`` the edges
        enter the node module, whose output then includes them.

    Examples
    --------
    >>> import torch, hrgraph
    >>> model = hrgraph.compile_model("specs/hiresnet18.yaml")
    >>> rows = contributions(model, [(torch.randn(2, 3, 32, 32), torch.zeros(2))])
    >>> [(r["node"], r["path"]) for r in rows][:4]
    [('stage2', 'block'), ('stage2', 'stem->stage2'), ('stage3', 'block'), ('stage3', 'stem->stage3')]
    >>> rows[0]["ratio"], rows[0]["elements"] == 2 * 128 * 16 * 16
    (1.0, True)
    """
    plan = model.plan
    off = {tuple(e.split("->")) for e in model.disabled_edges}
    receivers = [(n, [p for p in plan.incoming[n] if p.edge.key not in off]) for n in plan.order]
    receivers = [(n, ps) for n, ps in receivers if ps]
    sums: dict[tuple[str, str], list] = {}  # (node, path) -> [float64 sum on the device, element count]
    handles = []

    def add(key: tuple[str, str], t: Tensor) -> None:
        acc = sums[key]
        # abs() makes one temporary of this tensor's size, freed at once; the sum is kept in float64.
        s = t.detach().abs().sum(dtype=torch.float64)
        acc[0] = s if acc[0] is None else acc[0] + s
        acc[1] += t.numel()

    def output_hook(key):
        return lambda module, args, out: add(key, out)

    def input_hook(key):
        return lambda module, args: add(key, args[0])

    readers: dict[tuple[str, str], str] = {}
    try:
        for node, projections in receivers:
            sums[(node, "block")] = [None, 0]
            handles.append(model.nodes[node].register_forward_hook(output_hook((node, "block"))))
            for p in projections:
                key = (node, p.name)
                sums[key] = [None, 0]
                if p.gate != "none":  # what is summed is the gated term
                    handles.append(model.gates[p.module_name].register_forward_hook(output_hook(key)))
                    continue
                if not p.identity:
                    handles.append(model.projections[p.module_name].register_forward_hook(output_hook(key)))
                    continue
                reader = _reader(model, p.source)
                if reader is not None:
                    handles.append(reader[0].register_forward_pre_hook(input_hook(key)))
                    readers[key] = reader[1]
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for x, _ in batches:
                    model(x)
        finally:
            model.train(was_training)
    finally:
        for h in handles:
            h.remove()

    def mean(key: tuple[str, str]) -> float:
        total, count = sums[key]
        return float(total.item()) / count if count else float("nan")

    rows: list[dict[str, Any]] = []
    for node, projections in receivers:
        block = mean((node, "block"))
        rows.append({"node": node, "path": "block", "kind": "block", "source": plan.spec.main_input(plan.spec.node_index[node]) or "input",
                     "merge": "", "projection": plan.nodes[node].label, "mean_abs": block, "ratio": 1.0,
                     "elements": sums[(node, "block")][1], "gate": ""})
        for p in projections:
            value = mean((node, p.name))
            rows.append({"node": node, "path": p.name, "kind": "projection", "source": p.source, "merge": p.merge,
                         "projection": p.describe(), "mean_abs": value,
                         "ratio": value / block if block else float("nan"), "elements": sums[(node, p.name)][1],
                         "gate": _gate_value(model, p)})
    return rows


def _gate_value(model: HrNet, p: Any) -> float | str:
    """The current weight of an edge's gate (its ``scale()``), or ``""`` for an ungated edge."""
    if p.gate == "none":
        return ""
    return float(model.gates[p.module_name].scale().detach().item())


def contribution_figure(rows: list[dict[str, Any]], title: str = "", fmt: str = "png") -> bytes:
    """A grouped bar chart like the paper's Fig. 2: per receiving node, the block and each projection.

    Bars of the same source node share a colour across groups, so that one
    edge's share can be followed along the network.
    """
    nodes = list(dict.fromkeys(r["node"] for r in rows))
    sources = list(dict.fromkeys(r["source"] for r in rows if r["kind"] == "projection"))
    colour = {s: PALETTE[1 + i % (len(PALETTE) - 1)] for i, s in enumerate(sources)}
    widest = max((sum(1 for r in rows if r["node"] == n) for n in nodes), default=1)
    fig = new_figure(max(6.5, 3.0 + 0.35 * len(rows) + 0.4 * len(nodes)), 3.8)
    ax = fig.subplots()
    bar = 0.8 / widest
    labelled: set[str] = set()
    for g, node in enumerate(nodes):
        group = [r for r in rows if r["node"] == node]
        start = g - bar * (len(group) - 1) / 2
        for k, r in enumerate(group):
            label = "block path F_i(y_i-1)" if r["kind"] == "block" else f"projection from {r['source']}"
            ax.bar(start + k * bar, r["mean_abs"], width=bar * 0.95,
                   color=PALETTE[0] if r["kind"] == "block" else colour[r["source"]],
                   label=None if label in labelled else label)
            labelled.add(label)
    ax.set_xticks(range(len(nodes)), nodes)
    ax.set(xlabel="receiving node", ylabel="mean |activation|", title=title or "contribution of each connection")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    return figure_bytes(fig, fmt)
