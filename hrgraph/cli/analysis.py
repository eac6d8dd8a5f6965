"""Analysis commands of the ``hrgraph`` command line: ``summary`` (cost per node and per edge) and ``analyze``.

Registered by :mod:`hrgraph.cli.main`.  No
torch import on the ``summary`` path: the numbers come from the shape plan;
``analyze`` imports torch when it runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import SpecLoading, handle_errors, parse_shape, print_table, print_time, spec_loading_options
from ..build.cost import CostRow, CostTable

__all__ = ["summary", "analyze_command"]


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _percent(x: float) -> str:
    return f"{x:.1%}"


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.option("--input", "input_text", metavar="CxHxW", help="Override the spec's input shape.")
@click.option("--sort", type=click.Choice(["params", "macs"]), help="Order rows by this, largest first (default: nodes in order, each followed by the edges into it).")
@spec_loading_options
@handle_errors
def summary(spec: Path, as_json: bool, input_text: str | None, sort: str | None, loading: SpecLoading) -> None:
    """Cost of every node and every long-range edge of SPEC, per sample (no module is built).

    Parameters, MACs (multiply-accumulates of convolutions and linear layers)
    and activations (elements of each row's output tensor, and bytes at
    float32), each with its share of the total; then, separately, the work
    that is not MACs: pooling (window elements read), batch norm and residual
    adds (elements).  The rows sum to the totals 'hrgraph compile' prints.
    """
    from ..build.cost import count_cost
    from ..build.shapes import infer_shapes

    input_shape = parse_shape(input_text)
    table = count_cost(infer_shapes(loading.load(spec), input_shape=input_shape))
    if as_json:
        click.echo(json.dumps(table.to_dict(), indent=2))
        return
    _print_cost(table, _ordered(table, sort))


def _ordered(table: CostTable, sort: str | None) -> list[CostRow]:
    if sort is not None:
        return sorted(table.rows, key=lambda r: getattr(r.cost, sort), reverse=True)
    into: dict[str, list[CostRow]] = {}
    for row in table.projections:
        into.setdefault(row.name.split("->")[1], []).append(row)
    # A merge's rows come before its node (the merge runs first), an edge's after it.
    before: dict[str, list[CostRow]] = {}
    for row in table.merges:
        target = row.name.split("->")[1] if row.kind == "input" else row.name
        before.setdefault(target.split(" (")[0], []).append(row)
    return [r for node in table.nodes for r in (*before.get(node.name, ()), node, *into.get(node.name, ()))]


def _print_cost(table: CostTable, rows: list[CostRow]) -> None:
    from rich.table import Table

    from ..build.shapes import format_count, format_shape

    from rich.console import Console

    # Ten columns: wider than the 120 of the other commands' tables, so that no number is cut.
    console = Console(highlight=False, soft_wrap=False, width=max(140, Console().width))
    total = table.total
    shares = {what: [table.share(r, what) for r in rows] for what in ("params", "macs", "activations")}
    print_table(
        console,
        f"{table.name or 'spec'}: cost per sample",
        [("row", "left"), ("block / projection", "left"), ("output", "left"), ("params", "right"), ("%", "right"),
         ("MACs", "right"), ("%", "right"), ("activations", "right"), ("float32", "right"), ("%", "right")],
        [
            (r.name if r.kind == "node" else f"  {r.name}", r.label, format_shape(r.out_shape),
             f"{r.cost.params:,}", _percent(shares["params"][i]),
             format_count(r.cost.macs), _percent(shares["macs"][i]),
             format_count(r.cost.activations), _bytes(r.cost.activation_bytes), _percent(shares["activations"][i]))
            for i, r in enumerate(rows)
        ],
        styles=[None if r.kind == "node" else "dim" for r in rows],
        total=("total", "", "", f"{total.params:,}", "", format_count(total.macs), "",
               format_count(total.activations), _bytes(total.activation_bytes), ""),
    )
    other_rows = [r for r in rows if r.cost.pool or r.cost.bn or r.cost.add]
    print_table(
        console,
        "not MACs (elements per sample)",
        [("row", "left"), ("pooling", "right"), ("batch norm", "right"), ("adds", "right")],
        [(r.name if r.kind == "node" else f"  {r.name}", format_count(r.cost.pool), format_count(r.cost.bn),
          format_count(r.cost.add)) for r in other_rows],
        styles=[None if r.kind == "node" else "dim" for r in other_rows],
        total=("total", format_count(total.pool), format_count(total.bn), format_count(total.add)),
    )
    if table.time is not None:
        print_time(table.time)

    edges = sum((r.cost for r in table.projections), type(total)())
    merged = sum((r.cost for r in table.merges), type(total)())
    n = len(table.projections)
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    nodes = total.params - edges.params - merged.params
    in_merges = f" + {merged.params:,} in merges of list inputs" if table.merges else ""
    totals.add_row(
        "total params", f"{total.params:,} = {nodes:,} in nodes + {edges.params:,} in {n} projection{'s' if n != 1 else ''}{in_merges}"
    )
    in_merges = f" + {merged.macs:,} in merges" if table.merges else ""
    totals.add_row(
        "MACs per sample",
        f"{total.macs:,} ({format_count(total.macs)}) = {total.macs - edges.macs - merged.macs:,} in nodes + {edges.macs:,} in projections{in_merges}",
    )
    totals.add_row(
        "projections",
        f"{_percent(edges.macs / total.macs if total.macs else 0)} of MACs, "
        f"{_percent(edges.pool / total.pool if total.pool else 0)} of pooling reads, "
        f"{_percent(edges.add / total.add if total.add else 0)} of adds",
    )
    totals.add_row("counts", "MACs: conv and linear only; pooling, BN and adds are the element counts above")
    console.print(totals)


@click.command("analyze")
@click.argument("run", metavar="RUN_DIR_OR_CHECKPOINT", type=click.Path(path_type=Path))
@click.option("--data", help="Data set to use instead of the recipe's (same number of classes), e.g. fashion-mnist.")
@click.option("--data-dir", help="Where the data set lives (default: the recipe's, then the data set's default places).")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images of the split.")
@click.option("--edges", metavar="A:B,...", help="Edges to cut, comma-separated (patterns: 'stem:*'); default: every edge.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the recipe's.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--block-output", type=click.Choice(["post-relu", "pre-relu"]), default="post-relu", show_default=True,
              help="The block path F_i: the node's output after its final ReLU, or the input of that ReLU.")
@click.option("--bn-batches", type=click.IntRange(min=0), default=20, show_default=True,
              help="Training batches to re-estimate the BatchNorm statistics of the network at initialisation on "
                   "(0: keep them as constructed).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: RUN_DIR/analysis).")
@spec_loading_options
@handle_errors
def analyze_command(run: Path, data: str | None, data_dir: str | None, split: str, limit: int | None, edges: str | None,
                    batch_size: int | None, device: str, block_output: str, bn_batches: int, out: Path | None,
                    loading: SpecLoading) -> None:
    """What each long-range edge of a trained run does, on one split of its data.

    RUN_DIR_OR_CHECKPOINT is a folder written by 'hrgraph train' (its
    checkpoints/best.pt, else last.pt) or a checkpoint file.  Writes into the
    output folder: contributions (mean absolute activation of each receiving
    block's own path and of each projection into it, the paper's Fig. 2, each
    beside the same measure on the run's network at initialisation: same spec
    and seed, BatchNorm statistics re-estimated on --bn-batches training
    batches) as CSV, JSON, PNG and SVG; edge cut (accuracy with each edge switched off at
    run time, and all at once: the trained model's reliance on it, not
    training without it) as CSV and PNG; the gradient norm per node when the
    run was trained with --log-grad-norms; and analysis.md with all of them.
    """
    from ..analysis import analyze

    selectors = [e.strip() for e in edges.split(",") if e.strip()] if edges else None
    result = analyze(run, data=data, data_dir=data_dir, split=split, limit=limit, edges=selectors, out=out,
                     batch_size=batch_size, device=device, block_output=block_output, bn_batches=bn_batches,
                     **loading.kwargs)
    _print_analysis(result)


def _print_analysis(result: dict) -> None:
    click.echo(f"{result['spec_name'] or 'model'} on {result['data']} {result['split']} ({result['images']:,} images)")
    projections = [r for r in result["contributions"] if r["kind"] == "projection"]
    if projections:
        click.echo(f"contributions (mean |activation|, projection / block; block path {result['block_output']}; "
                   "at init: same spec and seed, untrained):")
        for r in projections:
            note = "" if r["merge"] == "sum" else f"  (not comparable with the paper's 0.5: {r['merge']})"
            click.echo(f"  {r['path']:<28} {r['mean_abs']:10.4g}  ratio {r['ratio']:.3f}  at init {r['ratio_init']:.3f}"
                       f"  change {r['ratio_change']:+.3f}{note}")
    if result["edge_cut"]:
        click.echo("edge cut (accuracy of the trained model with edges switched off):")
        for r in result["edge_cut"]:
            label = {"none": "intact", "all": "all edges cut"}.get(r["cut"], f"cut {r['cut']}")
            click.echo(f"  {label:<28} {100 * r['accuracy']:6.2f}%  ({100 * r['change']:+.2f})")
    click.echo(f"wrote {len(result['files'])} files to {result['out']}/ (see analysis.md)")
