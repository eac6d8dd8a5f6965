"""``analyze``: contributions, edge cut and gradient reach of a trained run, written into one folder.

Files (each written atomically, so a reader never sees half of one):
``contributions.csv``/``.json``/``.png``/``.svg``, ``edgecut.csv``/``.png``,
``gradients.png`` when the run logged gradient norms, ``analysis.json`` (all
numbers) and ``analysis.md``, which embeds the figures and tables.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..files import write_atomic
from .baseline import initial_model, reestimate_bn
from .contributions import PAPER_RATIO, add_init_columns, columns_for, comparable_with_paper, contribution_figure
from .contributions import over_steps
from .contributions import contributions as measure_contributions
from . import edgecut
from . import gradients as grads
from .run import load_run_data, open_run, refuse_diverged, split_batches

__all__ = ["analyze"]

_STRUCTURAL = (
    "Edge cut measures how much the **trained** model relies on each edge: the edge is switched off at run time "
    "(`model.set_edges(disabled=...)`) while every other weight stays as it was learned *with* the edge. "
    "It is not structural ablation (the paper's Table 2, `hrgraph ablate`), where the network is trained "
    "without the edge and can learn to do without it; a large drop here says nothing about how well a network "
    "trained without the edge would do."
)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _default_out(path: Path, run_dir: Path | None, checkpoint: Path) -> Path:
    if run_dir is not None:
        return run_dir / "analysis"
    return checkpoint.with_name(f"{checkpoint.stem}-analysis")


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}"


def analyze(
    run_or_checkpoint: str | Path,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    limit: int | None = None,
    edges: list[str] | None = None,
    out: str | Path | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    block_output: str = "post-relu",
    bn_batches: int = 20,
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> dict[str, Any]:
    """Analyse a trained run (or checkpoint) on one split of its data set and write the results to ``out``.

    Parameters
    ----------
    run_or_checkpoint : path
        A run folder written by ``hrgraph train`` (its ``checkpoints/best.pt``,
        else ``last.pt``) or a checkpoint file.
    data, data_dir : str, optional
        Another data set or folder than the recipe's (same number of classes).
    split : {"test", "val"}
    limit : int, optional
        Analyse only the first ``limit`` images of the split.
    edges : list of str, optional
        Edge selectors to cut (default: every sum edge); contributions always
        cover every edge.
    out : path, optional
        Default: ``RUN/analysis``, or ``<checkpoint>-analysis`` beside a
        checkpoint outside a run folder.
    batch_size : int, optional
        Default: the recipe's.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    block_output : {"post-relu", "pre-relu"}
        What the block path ``F_i(y_{i-1})`` is: the node's output, after its
        final ReLU (the default), or the input of that ReLU
        (see :func:`~hrgraph.analysis.contributions.contributions`).
    bn_batches : int
        Training batches (of ``batch_size``) over which the BatchNorm
        statistics of the network at initialisation are re-estimated before its
        contributions are measured; 0 keeps them as constructed (mean 0, variance 1).
    allow_imports, allow_outside : bool
        Passed to :func:`hrgraph.load_spec` for the run's stored spec (its
        ``imports`` run only when allowed).

    Returns
    -------
    dict
        What ``analysis.json`` holds: the run, split and image count, the
        ``contributions`` rows (with the ``*_init`` columns: the same measure on
        the run's network at initialisation, same spec and seed), the
        ``edge_cut`` rows, ``gradients`` (rows or ``None``) and ``files`` (the
        paths written).

    Raises
    ------
    TrainingError
        No checkpoint, not an hrgraph run checkpoint, weights that do not fit;
        a run that diverged (``summary.json`` says so, or a stored value is not finite).
    DataError
        Data missing, class count differs, split absent or empty.
    UnknownNodeError, GraphError
        An edge selector names no edge of the model.
    """
    from ..errors import TrainingError
    from ..train.distributed import pick_device

    try:
        dev = pick_device(device)
    except ValueError as err:
        raise TrainingError(str(err)) from None
    run = open_run(run_or_checkpoint, device=dev, allow_imports=allow_imports, allow_outside=allow_outside)
    refuse_diverged(run)
    model = run.model
    cut, skipped = edgecut.cuttable_edges(model, edges)  # unknown names fail before any data is read
    splits = load_run_data(run, data=data, data_dir=data_dir)
    bs = batch_size or run.recipe.batch_size

    def batches():
        return split_batches(splits, split, batch_size=bs, device=dev, limit=limit, normalize=run.recipe.normalize)

    contributions = measure_contributions(model, batches(), block_output=block_output)
    bn_used = 0
    if contributions:
        contributions, bn_used = _with_init_baseline(contributions, run, splits, batches, bs=bs, device=dev,
                                                     block_output=block_output, bn_batches=bn_batches)
    cuts = edgecut.edge_cut(model, batches(), cut) if cut else []
    n_images = cuts[0]["n"] if cuts else sum(len(y) for _, y in batches())
    grad_path = run.run_dir / grads.FILENAME if run.run_dir is not None else None
    grad_rows = grads.read_grad_norms(grad_path) if grad_path is not None and grad_path.is_file() else None

    target = Path(out) if out is not None else _default_out(Path(run_or_checkpoint), run.run_dir, run.checkpoint)
    target.mkdir(parents=True, exist_ok=True)
    name = run.spec.name or "model"
    files: list[str] = []

    def write(filename: str, content: bytes | str) -> None:
        write_atomic(target / filename, content)
        files.append(str(target / filename))

    if contributions:
        write("contributions.csv", _csv(contributions, columns_for(contributions)))
        write("contributions.json", json.dumps(contributions, indent=2) + "\n")
        title = f"{name}: mean |activation| per connection ({split}, {n_images:,} images)"
        if run.spec.time is not None:
            title += ", over all steps"  # the per-step values are in the tables
        for fmt in ("png", "svg"):
            write(f"contributions.{fmt}", contribution_figure(over_steps(contributions), title, fmt))
    if cuts:
        write("edgecut.csv", _csv(cuts, edgecut.COLUMNS))
        write("edgecut.png", edgecut.edge_cut_figure(cuts, chance=1 / len(splits.classes),
                                                      title=f"{name}: edges cut at run time ({split})"))
    if grad_rows:
        edge_names = {p.module_name: p.name for p in model.plan.projections.values()}
        write("gradients.png", grads.gradient_figure(grad_rows, list(model.plan.order), edge_names=edge_names,
                                                     title=f"{name}: gradient norm per node"))
    result = {
        "checkpoint": str(run.checkpoint), "run_dir": str(run.run_dir) if run.run_dir else None,
        "spec_name": run.spec.name, "epoch": run.payload.get("epoch"), "data": splits.name, "split": split,
        "images": n_images, "batch_size": bs, "edges_not_cut": skipped, "block_output": block_output,
        "init": {"seed": run.recipe.seed, "bn_batches": bn_used},
        "contributions": contributions, "edge_cut": cuts, "gradients": grad_rows,
    }
    write("analysis.json", json.dumps(result, indent=2) + "\n")
    write("analysis.md", _markdown(result, run, grad_path))
    result["files"] = files
    result["out"] = str(target)
    return result


def _with_init_baseline(rows, run, splits, batches, *, bs, device, block_output, bn_batches):
    """``rows`` with the init columns, measured on the run's network at initialisation; and the BN batches used."""
    from ..train.data import iterate_batches

    init = initial_model(run.spec, run.recipe.seed, device=device)
    # Not augmented and normalised as the analysed split is (split_batches), in an order drawn from the seed.
    mean, std = (splits.mean, splits.std) if run.recipe.normalize else (None, None)
    train = (iterate_batches(splits.train, bs, device=device, shuffle=True, seed=run.recipe.seed, epoch=0,
                             mean=mean, std=std, limit=bn_batches * bs) if bn_batches else [])
    used = reestimate_bn(init, train)
    init_rows = measure_contributions(init, batches(), block_output=block_output)
    return add_init_columns(rows, init_rows), used


_DEFINITIONS = {
    "post-relu": "the node module's output, after the block's final ReLU (`--block-output post-relu`)",
    "pre-relu": "the input of the block's final ReLU, i.e. the block's sum before that ReLU "
                "(`--block-output pre-relu`; blocks without a final ReLU give their output)",
}

_INIT = (
    "**How to read it.** At initialisation every block and every projection with a 1x1 conv ends in a BatchNorm "
    "with weight 1 and bias 0, and that alone sets their scales: an untrained network's ratios are of order 1 "
    "(the columns at init give this network's). "
    "A trained ratio close to its value at initialisation says nothing was learned about the edge; only the change "
    "(`ratio_change` = trained ratio - ratio at initialisation) says what training did."
)


def _contributions_markdown(result: dict[str, Any], run: Any) -> list[str]:
    rows = result["contributions"]
    if not rows:
        return ["The model has no long-range edges: nothing to compare.", ""]
    init = result["init"]
    lines = [
        "Mean absolute activation over every element of every image, at each node that receives long-range "
        f"edges: the block's own path F_i(y_{{i-1}}), here {_DEFINITIONS[result['block_output']]}, and each "
        "projection P_{j->i}(y_j) (the projection module's output); ratio = projection / block.",
        "",
        f"Beside each trained value, the same measure on the run's network **at initialisation** (same spec, "
        f"seed {init['seed']}: the weights training started from), its BatchNorm statistics re-estimated on "
        f"{init['bn_batches']} training batches" + (" (none: as constructed, mean 0 and variance 1)" if not init["bn_batches"] else "") + ".",
        "",
        _INIT,
        "",
        "![contributions](contributions.png)",
        "",
    ]
    timed = any("step" in r for r in rows)
    if timed:
        lines += _per_step_markdown(rows)
        lines += ["All rows, per step (`step` is the step at which the node and its edges run):", ""]
    lines += [
        "| node | path |" + (" step |" if timed else "") + " projection | mean abs | ratio | mean abs at init | "
        "ratio at init | change | vs the paper's 0.5 |",
        "|---|---|" + ("---:|" if timed else "") + "---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        gate = f" (gate now {r['gate']:.3f}; mean abs after it)" if r.get("gate", "") != "" else ""
        if r["kind"] == "block":
            versus = ""
        else:
            versus = "comparable" if comparable_with_paper(r) else f"not comparable: {r['merge']}"
        step = f" {r['step']} |" if timed else ""
        lines.append(f"| {r['node']} | {r['path']} |{step} {r['projection']}{gate} | {r['mean_abs']:.4g} | {r['ratio']:.3f} | "
                     f"{r['mean_abs_init']:.4g} | {r['ratio_init']:.3f} | {r['ratio_change']:+.3f} | {versus} |")
    summed = [r for r in over_steps(rows) if comparable_with_paper(r) and not math.isnan(r["ratio"])]
    if summed:
        if timed:
            lines += ["", "Over all steps (each edge's activations at every step it runs, against its node's):"]
        ratios = [r["ratio"] for r in summed]
        inits = [r["ratio_init"] for r in summed if not math.isnan(r["ratio_init"])]
        changes = [r["ratio_change"] for r in summed if not math.isnan(r["ratio_change"])]
        lines += ["", f"Sum edges, projection / block path: mean ratio {_mean(ratios):.3f} trained (range "
                      f"{min(ratios):.3f} to {max(ratios):.3f}) against {_mean(inits):.3f} at initialisation, over "
                      f"{len(ratios)} edges."]
        if changes:
            lines.append(f"Training moved the ratios by {min(changes):+.3f} to {max(changes):+.3f} "
                         f"(mean {_mean(changes):+.3f}).")
        lines.append(f"The paper reports about {PAPER_RATIO} (projections about half the residual functions) on the "
                     "Tiny-ImageNet test set; compare the change, not the trained ratio alone.")
    others = list(dict.fromkeys(r["path"] for r in rows if r["kind"] == "projection" and not comparable_with_paper(r)))
    if others:
        lines += ["", f"Not comparable with the paper's {PAPER_RATIO} (concat edges: their projection is appended as "
                      f"channels beside the block's output, not added to it): {', '.join(others)}."]
    if run.spec.residuals.entry == "pre_activation":
        lines += ["", "Note: this spec adds the edges before the block's final ReLU (`residuals.entry: "
                      "pre_activation`), so the block rows are the node's output *including* the edges."]
    lines.append("")
    return lines


def _per_step_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """For a spec with ``time``: each edge's ratio at each step (trained, and at initialisation), and the mean per step."""
    steps = sorted({r["step"] for r in rows})
    edges = list(dict.fromkeys((r["node"], r["path"]) for r in rows if r["kind"] == "projection"))
    at = {(r["node"], r["path"], r["step"]): r for r in rows}
    lines = ["The network runs over steps (a `time` section): every row below is one (node or edge, step); a "
             "feedback edge has no row at the steps before its source has a value. The figure merges the steps.",
             "", "Ratio projection / block at each step (at initialisation in parentheses):", "",
             "| edge | " + " | ".join(f"step {t}" for t in steps) + " |",
             "|---|" + "---:|" * len(steps)]
    for node, path in edges:
        cells = []
        for t in steps:
            r = at.get((node, path, t))
            cells.append("-" if r is None else f"{r['ratio']:.3f} ({r['ratio_init']:.3f})")
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    means = []
    for t in steps:
        ratios = [r["ratio"] for r in rows if r["step"] == t and r["kind"] == "projection" and not math.isnan(r["ratio"])]
        means.append(f"{_mean(ratios):.3f} ({len(ratios)})" if ratios else "-")
    lines += ["| mean (edges) | " + " | ".join(means) + " |", ""]
    return lines


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _markdown(result: dict[str, Any], run: Any, grad_path: Path | None) -> str:
    name = result["spec_name"] or "model"
    epoch = f", epoch {result['epoch']}" if result["epoch"] is not None else ""
    lines = [
        f"# Analysis of {name}",
        "",
        f"Checkpoint `{result['checkpoint']}`{epoch}; data `{result['data']}`, split `{result['split']}`, "
        f"{result['images']:,} images (in order, no augmentation, normalised with the training split's mean and std).",
        "",
        "## Contributions (the paper's Fig. 2)",
        "",
    ]
    lines += _contributions_markdown(result, run)
    lines += ["## Edge cut", "", _STRUCTURAL, ""]
    cuts = result["edge_cut"]
    if not cuts:
        lines += ["No edge can be cut at run time (none, or only concat edges).", ""]
    else:
        lines += ["![edge cut](edgecut.png)", "", "| variant | edges cut | accuracy (%) | change (points) | loss |",
                  "|---|---|---:|---:|---:|"]
        for r in cuts:
            variant = {"none": "intact", "all": "all cut"}.get(r["cut"], f"cut {r['cut']}")
            lines.append(f"| {variant} | {r['disabled'].replace(';', ', ') or '-'} | {_pct(r['accuracy'])} | "
                         f"{100 * r['change']:+.2f} | {r['loss']:.4f} |")
        lines.append("")
    if result["edges_not_cut"]:
        lines += [f"Not cut (concat edges change the target's width): {', '.join(result['edges_not_cut'])}.", ""]
    lines += ["## Gradient reach", ""]
    if result["gradients"]:
        lines += ["L2 norm of each node's parameter gradient against depth: at initialisation (first batch) and the "
                  "mean over each epoch's steps, from `grad_norms.csv`.", "", "![gradients](gradients.png)", ""]
    else:
        where = f"`{grad_path}` does not exist" if grad_path is not None else "this checkpoint has no run folder"
        lines += [f"No gradient log ({where}). Train with `hrgraph train SPEC --log-grad-norms` "
                  "to record the gradient norm of every node and projection at initialisation and per epoch; "
                  "`hrgraph analyze` then plots it here.", ""]
    return "\n".join(lines)
