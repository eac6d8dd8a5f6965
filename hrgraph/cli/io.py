"""``hrgraph import``: a spec from a GraphML, GML or adjacency CSV file; ``hrgraph export``: a model to ONNX, .pt2, TorchScript.

Registered by :mod:`hrgraph.cli.main`; torch only inside ``export``.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import SpecLoading, allow_imports_option, emit_generated, handle_errors, parse_shape, refuse_input, spec_loading_options

__all__ = ["import_command", "export_command"]


@click.command(name="import")
@click.argument("graph", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the spec here (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["graphml", "gml", "csv"]), help="File format (default: from the suffix).")
@click.option("--break-cycles", type=click.Choice(["order"]), help="Drop the edges that go backwards in the file's node order within a cycle (each reported).")
@click.option("--cycles", type=click.Choice(["feedback"]), help="Keep the edges --break-cycles order would drop as delay-1 feedback and add a time section (each reported).")
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True, help="Steps of the time section --cycles feedback adds.")
@click.option("--weights", type=click.Choice(["keep", "gate"]), default="keep", show_default=True, help="Weighted edges keep their weight; 'gate' also starts a scalar gate at weight/max(weight).")
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
    cycles: str | None,
    steps: int,
    weights: str,
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
    cycle, unless --break-cycles order (drop the closing edges) or --cycles
    feedback (delay them by one step, under a time section of --steps steps).
    Edges with a weight (a connectome's synapse counts) become long-range edges
    keeping it, except each node's strongest input.  Node names that are not
    valid ids are renamed, each renaming reported on stderr.
    """
    if break_cycles and cycles:
        raise click.UsageError("--break-cycles and --cycles are two ways of handling the same cycles: give one")
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
        break_cycles=break_cycles or cycles,
        steps=steps,
        weights=weights,
        ignore=ignore,
        allow_imports=allow_imports,
    )
    for original, new in result.renamed.items():
        click.echo(f"renamed node {original!r} -> {new}", err=True)
    for u, v in result.dropped:
        click.echo(f"dropped edge {u} -> {v} (it goes backwards in the file's order, closing a cycle)", err=True)
    for u, v in result.delayed:
        click.echo(f"delayed edge {u} -> {v} by 1 step (it goes backwards in the file's order, closing a cycle)", err=True)
    spec = result.spec
    summary = (
        f"{spec.name}: {len(spec.nodes)} nodes, {len(spec.edges)} long-range edges"
        + (f"; added {', '.join(result.added)}" if result.added else "")
        + (f"; {len(result.renamed)} renamed" if result.renamed else "")
        + (f"; {len(result.dropped)} edges dropped" if result.dropped else "")
        + (f"; {len(result.delayed)} edges delayed, {spec.time.steps} steps" if result.delayed else "")
    )
    command = ["hrgraph", "import", str(graph)]
    for option, value, default in (
        ("--format", fmt, None),
        ("--break-cycles", break_cycles, None),
        ("--cycles", cycles, None),
        ("--steps", steps, 3),
        ("--weights", weights, "keep"),
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


def _model_to_export(source: Path, shape: tuple[int, int, int] | None, loading: SpecLoading):
    """``(model, what)``: a spec compiled with seeded random weights, or a run's / checkpoint's trained model."""
    import torch

    from ..build.compiler import compile_model, load_checkpoint

    if source.is_dir() or source.suffix in (".pt", ".pth"):
        from ..analysis.run import open_run
        from ..errors import TrainingError

        try:
            run = open_run(source, **loading.kwargs)
            spec, weights, what = run.spec, run.model.state_dict(), f"{run.checkpoint}"
        except TrainingError:
            if source.is_dir():
                raise
            trained, _ = load_checkpoint(source, **loading.kwargs)  # save_checkpoint's format
            spec, weights, what = trained.spec, trained.state_dict(), str(source)
        model = compile_model(spec, input_shape=shape)
        model.load_state_dict(weights)
        return model, f"trained weights from {what}"
    torch.manual_seed(0)
    return compile_model(loading.load(source), input_shape=shape), "random weights (seed 0)"


@click.command(name="export")
@click.argument("source", metavar="SPEC_OR_RUN", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file: .onnx, .pt2 (torch.export) or .ts / .torchscript.pt (TorchScript).")
@click.option("--input", "input_text", metavar="CxHxW", help="Input shape (default: the spec's).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size of the example input.")
@click.option("--dynamic-batch", is_flag=True, help="Let the exported model take any batch size.")
@spec_loading_options
@handle_errors
def export_command(source: Path, out: Path, input_text: str | None, batch: int, dynamic_batch: bool,
                   loading: SpecLoading) -> None:
    """Export SPEC_OR_RUN for deployment; the format follows --out's suffix (see docs/export.md).

    A spec is exported with seeded random weights (its architecture); a run
    folder exports its best checkpoint (else its last); a checkpoint file its
    weights.  The model is exported in eval mode.  What the exporter cannot
    capture is an error (exit 1) and leaves no file behind.
    """
    from ..io.export import export_format, export_model

    refuse_input(out, source if source.is_file() else None)
    shape = parse_shape(input_text)
    export_format(out)  # an unknown suffix fails before anything is compiled
    model, what = _model_to_export(source, shape, loading)
    fmt = export_model(model, out, input_shape=shape, batch=batch, dynamic_batch=dynamic_batch)
    c, h, w = shape or model.plan.input_shape
    batch_text = "any batch" if dynamic_batch or fmt == "torchscript" else f"batch {batch}"
    click.echo(f"wrote {out} ({fmt}; input {batch_text} x {c}x{h}x{w}; {what})", err=True)
