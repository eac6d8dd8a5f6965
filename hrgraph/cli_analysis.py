"""Analysis commands of the ``hrgraph`` command line: ``summary`` (cost per node and per edge).

Registered on :data:`hrgraph.cli.main` at the end of :mod:`hrgraph.cli`.  No
torch import on this path: the numbers come from the shape plan.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli import allow_imports_option, handle_errors, parse_shape
from .cost import CostRow, CostTable

__all__ = ["summary"]


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
@allow_imports_option
@handle_errors
def summary(spec: Path, as_json: bool, input_text: str | None, sort: str | None, allow_imports: bool) -> None:
    """Cost of every node and every long-range edge of SPEC, per sample (no module is built).

    Parameters, MACs (multiply-accumulates of convolutions and linear layers)
    and activations (elements of each row's output tensor, and bytes at
    float32), each with its share of the total; then, separately, the work
    that is not MACs: pooling (window elements read), batch norm and residual
    adds (elements).  The rows sum to the totals 'hrgraph compile' prints.
    """
    from .cost import count_cost
    from .shapes import infer_shapes
    from .spec import load_spec

    input_shape = parse_shape(input_text)
    table = count_cost(infer_shapes(load_spec(spec, allow_imports=allow_imports), input_shape=input_shape))
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
    return [r for node in table.nodes for r in (node, *into.get(node.name, ()))]


def _print_cost(table: CostTable, rows: list[CostRow]) -> None:
    from rich.table import Table

    from .shapes import format_count, format_shape

    from rich.console import Console

    # Ten columns: wider than the 120 of the other commands' tables, so that no number is cut.
    console = Console(highlight=False, soft_wrap=False, width=max(140, Console().width))
    total = table.total
    cost = Table(title=f"{table.name or 'spec'}: cost per sample", title_justify="left")
    for col, justify in (
        ("row", "left"), ("block / projection", "left"), ("output", "left"), ("params", "right"), ("%", "right"),
        ("MACs", "right"), ("%", "right"), ("activations", "right"), ("float32", "right"), ("%", "right"),
    ):
        cost.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        name = r.name if r.kind == "node" else f"  {r.name}"
        cost.add_row(
            name, r.label, format_shape(r.out_shape),
            f"{r.cost.params:,}", _percent(table.share(r, "params")),
            format_count(r.cost.macs), _percent(table.share(r, "macs")),
            format_count(r.cost.activations), _bytes(r.cost.activation_bytes), _percent(table.share(r, "activations")),
            style="dim" if r.kind == "projection" else None,
        )
    cost.add_section()
    cost.add_row(
        "total", "", "", f"{total.params:,}", "", format_count(total.macs), "",
        format_count(total.activations), _bytes(total.activation_bytes), "", style="bold",
    )
    console.print(cost)

    other = Table(title="not MACs (elements per sample)", title_justify="left")
    for col, justify in (("row", "left"), ("pooling", "right"), ("batch norm", "right"), ("adds", "right")):
        other.add_column(col, justify=justify)
    for r in rows:
        c = r.cost
        if c.pool or c.bn or c.add:
            name = r.name if r.kind == "node" else f"  {r.name}"
            other.add_row(name, format_count(c.pool), format_count(c.bn), format_count(c.add), style="dim" if r.kind == "projection" else None)
    other.add_section()
    other.add_row("total", format_count(total.pool), format_count(total.bn), format_count(total.add), style="bold")
    console.print(other)

    edges = sum((r.cost for r in table.projections), type(total)())
    n = len(table.projections)
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    totals.add_row(
        "total params", f"{total.params:,} = {total.params - edges.params:,} in nodes + {edges.params:,} in {n} projection{'s' if n != 1 else ''}"
    )
    totals.add_row(
        "MACs per sample", f"{total.macs:,} ({format_count(total.macs)}) = {total.macs - edges.macs:,} in nodes + {edges.macs:,} in projections"
    )
    totals.add_row(
        "projections",
        f"{_percent(edges.macs / total.macs if total.macs else 0)} of MACs, "
        f"{_percent(edges.pool / total.pool if total.pool else 0)} of pooling reads, "
        f"{_percent(edges.add / total.add if total.add else 0)} of adds",
    )
    totals.add_row("counts", "MACs: conv and linear only; pooling, BN and adds are the element counts above")
    console.print(totals)
