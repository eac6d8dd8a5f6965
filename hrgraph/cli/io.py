"""``hrgraph import``: a spec from a GraphML, GML or adjacency CSV file.

Registered by :mod:`hrgraph.cli.main`; no torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import allow_imports_option, emit_generated, refuse_input, handle_errors, parse_shape

__all__ = ["import_command"]


@click.command(name="import")
@click.argument("graph", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the spec here (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["graphml", "gml", "csv"]), help="File format (default: from the suffix).")
@click.option("--break-cycles", type=click.Choice(["order"]), help="Drop the edges that go backwards in the file's node order within a cycle (each reported).")
@click.option("--kind", "default_kind", default="sepconv", show_default=True, help="Block kind of nodes without a 'kind' attribute.")
@click.option("--channels", "default_channels", type=click.IntRange(min=1), default=32, show_default=True, help="Channels of nodes that do not give them.")
@click.option("--aggregate", type=click.Choice(["sum", "mean", "concat", "weighted"]), default="sum", show_default=True, help="How a node with several inputs merges them.")
@click.option("--input", "input_text", metavar="CxHxW", help="Input shape (default: the graph's input_* attributes, else 3x32x32).")
@click.option("--classes", type=click.IntRange(min=1), default=10, show_default=True, help="Classes of the classifier head added after the last node (unless it is a classifier).")
@click.option("--name", help="Name of the spec (default: the graph's name, else the file's stem).")
@click.option("--ignore", multiple=True, metavar="ATTR", help="Attribute (or CSV column) to leave out, e.g. a connectome's weight; repeatable.")
# Only --allow-imports of the loading options: an imported graph names no 'extends' file, so no
# message of this command can ask for --allow-outside.
@allow_imports_option
@handle_errors
def import_command(
    graph: Path,
    out: Path | None,
    fmt: str | None,
    break_cycles: str | None,
    default_kind: str,
    default_channels: int,
    aggregate: str,
    input_text: str | None,
    classes: int,
    name: str | None,
    ignore: tuple[str, ...],
    allow_imports: bool,
) -> None:
    """Make a spec of the graph in GRAPH (.graphml, .gml or .csv; see docs/import.md).

    Node attributes set each block's kind and fields (kind, channels, stride,
    ...); nodes without them are DEFAULT_KIND blocks of --channels channels.
    An unknown attribute is an error (skip it with --ignore).  Nodes follow a
    topological order; a node with several predecessors takes them all as
    inputs, merged by --aggregate.  A graph with a cycle is refused, naming the
    cycle, unless --break-cycles order.  Node names that are not valid ids are
    renamed, each renaming reported on stderr.
    """
    from ..io.graphfiles import import_graph

    refuse_input(out, graph)
    shape = parse_shape(input_text)
    result = import_graph(
        graph,
        format=fmt,
        name=name,
        input=shape,
        classes=classes,
        default_kind=default_kind,
        default_channels=default_channels,
        aggregate=aggregate,
        break_cycles=break_cycles,
        ignore=ignore,
        allow_imports=allow_imports,
    )
    for original, new in result.renamed.items():
        click.echo(f"renamed node {original!r} -> {new}", err=True)
    for u, v in result.dropped:
        click.echo(f"dropped edge {u} -> {v} (it goes backwards in the file's order, closing a cycle)", err=True)
    spec = result.spec
    summary = (
        f"{spec.name}: {len(spec.nodes)} nodes, {len(spec.edges)} long-range edges"
        + (f"; added {', '.join(result.added)}" if result.added else "")
        + (f"; {len(result.renamed)} renamed" if result.renamed else "")
        + (f"; {len(result.dropped)} edges dropped" if result.dropped else "")
    )
    command = ["hrgraph", "import", str(graph)]
    for option, value, default in (
        ("--format", fmt, None),
        ("--break-cycles", break_cycles, None),
        ("--kind", default_kind, "sepconv"),
        ("--channels", default_channels, 32),
        ("--aggregate", aggregate, "sum"),
        ("--input", input_text, None),
        ("--classes", classes, 10),
        ("--name", name, None),
    ):
        if value != default:
            command += [option, str(value)]
    for attr in ignore:
        command += ["--ignore", attr]
    command += ["--allow-imports"] if allow_imports else []
    emit_generated(spec, command, out, summary)
