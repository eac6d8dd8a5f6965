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

A spec with ``time`` (docs/spec.md, Feedback and time) runs a node and a
projection once per step of its schedule (:func:`hrgraph.build.unroll.plan_time`),
and each call fires its hook once: the hooks count their calls within one
forward and file the k-th call under the k-th step at which that module runs.
Its rows carry a ``step``.  There an ungated identity edge reads the source's
node-module output at the step it reads (the value before the edges into the
source are added: the same as the final value when the source receives no
edges).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..build.compiler import HrNet
from ..build.unroll import plan_time
from ..errors import TrainingError
from ..spec.kinds import NETWORK_INPUT
from .figures import PALETTE, figure_bytes, new_figure

__all__ = ["contributions", "contribution_figure", "draw_contributions", "add_init_columns", "comparable_with_paper",
           "over_steps", "columns_for", "COLUMNS", "BLOCK_OUTPUTS", "PAPER_RATIO"]

#: What the block row can measure: the node module's output, or the input of its final ReLU.
BLOCK_OUTPUTS = ("post-relu", "pre-relu")

#: The paper's Fig. 2 reading: projections about half the block path (for sum edges).
PAPER_RATIO = 0.5

#: Columns of ``contributions.csv``, in order: the trained model's, then the same at initialisation.
COLUMNS = ["node", "path", "kind", "source", "merge", "projection", "mean_abs", "ratio", "elements", "gate",
           "mean_abs_init", "ratio_init", "ratio_change"]


def columns_for(rows: list[dict[str, Any]]) -> list[str]:
    """:data:`COLUMNS`, with ``step`` after ``path`` when the rows are per step (a spec with ``time``)."""
    if any("step" in r for r in rows):
        return COLUMNS[:2] + ["step"] + COLUMNS[2:]
    return list(COLUMNS)


def _reader(model: HrNet, source: str) -> tuple[Any, str] | None:
    """A module whose first input is ``source``'s final value: ``(module, what)``, or ``None``."""
    spec = model.spec
    # The network input ('input') is what the first node reads (its main input None).
    names = {None, source} if source == NETWORK_INPUT else {source}
    for position, node in enumerate(spec.nodes):
        # A node with a list input reads the merge, not its first input.
        if spec.main_input(position) in names and not isinstance(node.input, list):
            return model.nodes[node.id], f"input of {node.id}"
    for p in model.plan.projections.values():
        if p.source == source and not p.identity:
            return model.projections[p.module_name], f"input of the projection {p.name}"
    return None


def contributions(
    model: HrNet, batches: Iterable[tuple[Tensor, Tensor]], *, block_output: str = "post-relu"
) -> list[dict[str, Any]]:
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
    block_output : {"post-relu", "pre-relu"}
        What the block row measures: the node module's output (``post-relu``,
        after the block's final ReLU) or the value that final ReLU receives
        (``pre-relu``: the block's sum ``bn2(conv2(...)) + shortcut``, read by a
        pre-hook on the module its ``final_activation()`` names).  A block
        without a final activation (sepconv, pool, identity) gives its output
        either way.

    Returns
    -------
    list of dict
        Per receiving node in network order: a ``kind="block"`` row (``path``
        is ``"block"``: the block's own path ``F_i(y_{i-1})``), then one
        ``kind="projection"`` row per incoming edge (``path`` is ``"from->to"``).
        ``mean_abs`` is the mean of ``|a|`` over all elements of all images,
        ``ratio`` the row's ``mean_abs`` over the block's, ``elements`` the
        count it averages.  With ``residuals.entry: pre_activation`` the edges
        enter the node module, whose output then includes them.

    Raises
    ------
    ValueError
        ``block_output`` is neither of the two.
    TrainingError
        ``pre-relu`` on a user block that declares a final activation but has
        no ``final_activation()`` method to find it by.

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
    if block_output not in BLOCK_OUTPUTS:
        raise ValueError(f"block_output must be one of {', '.join(BLOCK_OUTPUTS)}, not {block_output!r}")
    plan = model.plan
    off = {tuple(e.split("->")) for e in model.disabled_edges}
    receivers = [(n, [p for p in plan.incoming[n] if p.edge.key not in off]) for n in plan.order]
    receivers = [(n, ps) for n, ps in receivers if ps]
    timed = model.spec.time is not None
    # (node, path) -> the steps of its calls in one forward, in call order (DAG: one call, step None).
    steps_of: dict[tuple[str, str], list[int | None]] = {}
    identity_reads: list[tuple[tuple[str, str], Any, int]] = []  # time: (key, value read, step) of identity edges
    if timed:
        runs = plan_time(model.spec, plan.order, plan.incoming, disabled=off).runs
        for r in runs:
            steps_of.setdefault((r.node, "block"), []).append(r.step)
            for p, v in r.edges:
                steps_of.setdefault((r.node, p.name), []).append(r.step)
                if p.identity and p.gate == "none":
                    identity_reads.append(((r.node, p.name), v, r.step))
    # (node, path, step) -> [float64 sum on the device, element count]
    sums: dict[tuple[str, str, int | None], list] = {}
    calls: dict[tuple[str, str], int] = {}  # calls of each key within the current forward
    values: dict[tuple[str, int], tuple[Tensor, int]] = {}  # time: each source's output per step, this forward
    # node -> (sum, count) of the latest call of its final ReLU; committed when the node's forward ends.
    pending: dict[str, tuple[Tensor, int]] = {}
    handles = []

    def abs_sum(t: Tensor) -> tuple[Tensor, int]:
        # abs() makes one temporary of this tensor's size, freed at once; the sum is kept in float64.
        return t.detach().abs().sum(dtype=torch.float64), t.numel()

    def add(key: tuple[str, str], s: Tensor, n: int, step: int | None = None) -> None:
        if timed and step is None:
            k = calls.get(key, 0)
            calls[key] = k + 1
            step = steps_of[key][k]
        acc = sums.setdefault((*key, step), [None, 0])
        acc[0] = s if acc[0] is None else acc[0] + s
        acc[1] += n

    def output_hook(key):
        return lambda module, args, out: add(key, *abs_sum(out))

    def input_hook(key):
        return lambda module, args: add(key, *abs_sum(args[0]))

    def relu_input_hook(node):
        # The ReLU is in place: its input is read here, before it is overwritten.  A unit
        # calls its ReLU more than once; every call replaces the last, and the final
        # ReLU is the unit's last call.
        return lambda module, args: pending.__setitem__(node, abs_sum(args[0]))

    def commit_hook(key):
        return lambda module, args, out: add(key, *pending.pop(key[0]))

    def value_hook(source):
        def hook(module, args, out):
            k = calls.get((source, "value"), 0)
            calls[(source, "value")] = k + 1
            values[(source, source_steps[source][k])] = abs_sum(out)
        return hook

    def new_forward(module, args):
        calls.clear()
        values.clear()

    def end_forward(module, args, out):
        for key, (source, step_read), step in identity_reads:
            add(key, *values[(source, step_read)], step=step)

    readers: dict[tuple[str, str], str] = {}
    source_steps = {n: [r.step for r in runs if r.node == n] for n in {v[0] for _, v, _ in identity_reads}} if timed else {}
    try:
        if timed:
            handles.append(model.register_forward_pre_hook(new_forward))
            handles.append(model.register_forward_hook(end_forward))
            handles.extend(model.nodes[n].register_forward_hook(value_hook(n)) for n in source_steps)
        for node, projections in receivers:
            handles.append(_block_hook(model, node, block_output, output_hook, relu_input_hook, commit_hook))
            for p in projections:
                key = (node, p.name)
                if p.gate != "none":  # what is summed is the gated term
                    handles.append(model.gates[p.module_name].register_forward_hook(output_hook(key)))
                    continue
                if not p.identity:
                    handles.append(model.projections[p.module_name].register_forward_hook(output_hook(key)))
                    continue
                if timed:
                    continue  # end_forward adds the source's value at each step the edge reads it
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
            for one in h if isinstance(h, tuple) else (h,):
                one.remove()

    def mean(key: tuple[str, str, int | None]) -> float:
        total, count = sums.get(key, (None, 0))
        return float(total.item()) / count if count else float("nan")

    def count(key: tuple[str, str, int | None]) -> int:
        return sums.get(key, (None, 0))[1]

    rows: list[dict[str, Any]] = []
    for node, projections in receivers:
        node_steps = sorted({t for t in steps_of.get((node, "block"), [])}) if timed else [None]
        for step in node_steps:
            at = {} if step is None else {"step": step}
            block = mean((node, "block", step))
            rows.append({"node": node, "path": "block", **at, "kind": "block",
                         "source": plan.spec.main_input(plan.spec.node_index[node]) or "input",
                         "merge": "", "projection": plan.nodes[node].label, "mean_abs": block, "ratio": 1.0,
                         "elements": count((node, "block", step)), "gate": ""})
            for p in projections:
                if timed and step not in steps_of.get((node, p.name), []):
                    continue  # the edge reads nothing at this step (its source has no value yet)
                value = mean((node, p.name, step))
                rows.append({"node": node, "path": p.name, **at, "kind": "projection", "source": p.source,
                             "merge": p.merge, "projection": p.describe(), "mean_abs": value,
                             "ratio": value / block if block else float("nan"),
                             "elements": count((node, p.name, step)), "gate": _gate_value(model, p)})
    return rows


def over_steps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-step rows (a spec with ``time``) merged over the steps: one row per ``(node, path)``.

    ``mean_abs`` is the element-weighted mean over the steps at which the row
    runs (so over all its activations), ``ratio`` that of the projection over
    the block's; the ``*_init`` columns likewise.  Rows without ``step`` come
    back as they are.

    Examples
    --------
    >>> rows = [{"node": "a", "path": "block", "step": 0, "kind": "block", "mean_abs": 1.0, "elements": 2},
    ...         {"node": "a", "path": "block", "step": 1, "kind": "block", "mean_abs": 2.0, "elements": 2},
    ...         {"node": "a", "path": "b->a", "step": 1, "kind": "projection", "mean_abs": 3.0, "elements": 2}]
    >>> [(r["path"], r["mean_abs"], r["ratio"]) for r in over_steps(rows)]
    [('block', 1.5, 1.0), ('b->a', 3.0, 2.0)]
    """
    if not any("step" in r for r in rows):
        return rows
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["node"], r["path"])
        m = merged.setdefault(key, {k: v for k, v in r.items() if k != "step"} | {"_w": {}, "elements": 0})
        m["elements"] += r["elements"]
        for column in ("mean_abs", "mean_abs_init"):
            if column in r:
                total, n = m["_w"].get(column, (0.0, 0))
                m["_w"][column] = (total + r[column] * r["elements"], n + r["elements"])
    for m in merged.values():
        for column, (total, n) in m.pop("_w").items():
            m[column] = total / n if n else float("nan")
    out = list(merged.values())
    blocks = {r["node"]: r for r in out if r["kind"] == "block"}
    for r in out:
        b = blocks.get(r["node"])
        for ratio, column in (("ratio", "mean_abs"), ("ratio_init", "mean_abs_init")):
            if column in r and b is not None:
                r[ratio] = r[column] / b[column] if b[column] else float("nan")
        if "ratio_init" in r:
            r["ratio_change"] = r["ratio"] - r["ratio_init"]
    return out


def _block_hook(model: HrNet, node: str, block_output: str, output_hook, relu_input_hook, commit_hook):
    """The hook handle(s) that measure ``node``'s own path as ``block_output`` defines it."""
    module = model.nodes[node]
    key = (node, "block")
    block = model.spec.nodes[model.spec.node_index[node]]
    if block_output == "post-relu" or not block.has_final_activation:
        return module.register_forward_hook(output_hook(key))
    final = getattr(module, "final_activation", None)
    if final is None:
        raise TrainingError(
            f"--block-output pre-relu: block kind '{block.kind}' declares a final activation but its module has no "
            "final_activation() method naming it; use post-relu, or give the module that method",
            node=node,
        )
    return (final().register_forward_pre_hook(relu_input_hook(node)), module.register_forward_hook(commit_hook(key)))


def _gate_value(model: HrNet, p: Any) -> float | str:
    """The current weight of an edge's gate (its ``scale()``), or ``""`` for an ungated edge."""
    if p.gate == "none":
        return ""
    return float(model.gates[p.module_name].scale().detach().item())


def comparable_with_paper(row: dict[str, Any]) -> bool:
    """Whether a row's ratio may be set against the paper's 0.5: a projection whose edge is summed.

    The paper's ratio compares two terms of one sum; a concat edge's projection
    is appended as channels beside the block's output, not added to it.
    """
    return row["kind"] == "projection" and row["merge"] == "sum"


def add_init_columns(rows: list[dict[str, Any]], init_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with ``mean_abs_init``, ``ratio_init`` and ``ratio_change`` from the same measure at initialisation.

    ``ratio_change`` is ``ratio - ratio_init``: how far training moved the
    ratio, in the ratio's own units (0 for the block rows).  A row without a
    counterpart in ``init_rows`` gets NaN.

    Examples
    --------
    >>> trained = [{"node": "b", "path": "a->b", "mean_abs": 0.6, "ratio": 0.5}]
    >>> init = [{"node": "b", "path": "a->b", "mean_abs": 1.0, "ratio": 0.95}]
    >>> row = add_init_columns(trained, init)[0]
    >>> row["ratio_init"], round(row["ratio_change"], 2)
    (0.95, -0.45)
    """
    init = {(r["node"], r["path"], r.get("step")): r for r in init_rows}
    nan = float("nan")
    out = []
    for r in rows:
        i = init.get((r["node"], r["path"], r.get("step")))
        ratio_init = i["ratio"] if i is not None else nan
        out.append({**r, "mean_abs_init": i["mean_abs"] if i is not None else nan, "ratio_init": ratio_init,
                    "ratio_change": r["ratio"] - ratio_init})
    return out


def contribution_figure(rows: list[dict[str, Any]], title: str = "", fmt: str = "png") -> bytes:
    """:func:`draw_contributions` rendered as ``png`` or ``svg``."""
    return figure_bytes(draw_contributions(rows, title), fmt)


def draw_contributions(rows: list[dict[str, Any]], title: str = "") -> Any:
    """Bar charts like the paper's Fig. 2: per receiving node, the block and each projection; then each edge's ratio.

    Top: mean absolute activation; bars of the same source node share a
    colour across groups, so that one edge's share can be followed along the
    network.  Bottom: each edge's ratio projection / block.  Rows with
    ``*_init`` columns (:func:`add_init_columns`) also show the value at
    initialisation: hollow markers on top, hollow bars beside the trained ones
    below.  The paper's 0.5 is drawn for sum edges only; concat edges are
    labelled as such.
    """
    import textwrap

    nodes = list(dict.fromkeys(r["node"] for r in rows))
    sources = list(dict.fromkeys(r["source"] for r in rows if r["kind"] == "projection"))
    colour = {s: PALETTE[1 + i % (len(PALETTE) - 1)] for i, s in enumerate(sources)}
    edges = [r for r in rows if r["kind"] == "projection"]
    has_init = any("ratio_init" in r for r in rows)
    widest = max((sum(1 for r in rows if r["node"] == n) for n in nodes), default=1)
    width = max(7.0, 3.0 + 0.35 * len(rows) + 0.4 * len(nodes))
    fig = new_figure(width, 7.0)
    top, bottom = fig.subplots(2, 1)
    bar = 0.8 / widest
    labelled: set[str] = set()
    for g, node in enumerate(nodes):
        group = [r for r in rows if r["node"] == node]
        start = g - bar * (len(group) - 1) / 2
        for k, r in enumerate(group):
            label = "block path F_i(y_i-1)" if r["kind"] == "block" else f"projection from {r['source']}"
            x = start + k * bar
            top.bar(x, r["mean_abs"], width=bar * 0.95,
                    color=PALETTE[0] if r["kind"] == "block" else colour[r["source"]],
                    label=None if label in labelled else label)
            labelled.add(label)
            if has_init:
                init_label = "at initialisation"
                top.plot([x], [r["mean_abs_init"]], marker="o", markersize=7, linestyle="none",
                         markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.4,
                         label=None if init_label in labelled else init_label)
                labelled.add(init_label)
    top.set_xticks(range(len(nodes)), nodes)
    top.set(xlabel="receiving node", ylabel="mean |activation|")
    top.grid(axis="y", alpha=0.3)
    top.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them

    half = 0.4 if has_init else 0.8
    for k, r in enumerate(edges):
        x = k - half / 2 if has_init else k
        bottom.bar(x, r["ratio"], width=half * 0.95, color=colour[r["source"]],
                   hatch=None if r["merge"] == "sum" else "//", label="trained" if k == 0 else None)
        if has_init:
            bottom.bar(k + half / 2, r["ratio_init"], width=half * 0.95, facecolor="none",
                       edgecolor=colour[r["source"]], linewidth=1.5, label="at initialisation" if k == 0 else None)
    if any(comparable_with_paper(r) for r in edges):
        bottom.axhline(PAPER_RATIO, color="black", linestyle="--", linewidth=1,
                       label=f"paper's Fig. 2: about {PAPER_RATIO} (sum edges)")
    ticks = [r["path"] if r["merge"] == "sum" else f"{r['path']}\n(concat: not comparable)" for r in edges]
    bottom.set_xticks(range(len(edges)), ticks, rotation=30 if len(edges) > 4 else 0,
                      ha="right" if len(edges) > 4 else "center", fontsize="small")
    bottom.set(xlabel="edge", ylabel="projection / block")
    bottom.grid(axis="y", alpha=0.3)
    if edges:
        bottom.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    # A suptitle wrapped to the figure's width: a long spec name cannot run past the edge.
    text = title or "contribution of each connection"
    fig.suptitle(textwrap.fill(text, width=max(40, int(width * 10))), fontsize="medium")
    return fig
