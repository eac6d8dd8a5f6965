"""`hrgraph render`, `diff` and `gallery`: diagrams of specs (hrgraph.draw).  No torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import EXIT_SPEC, SpecLoading, fail, handle_errors, refuse_input, spec_files, spec_loading_options

_diagram_out = click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .svg, .png, .pdf (need Graphviz's dot) or .dot (the DOT source).",
)
_rankdir = click.option(
    "--rankdir", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True,
    help="Main path top to bottom (TB) or left to right (LR).",
)


@click.command(name="render")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@_diagram_out
@_rankdir
@click.option("--show-ablated", "base", type=click.Path(dir_okay=False, path_type=Path), metavar="BASE.yaml",
              help="Draw the edges BASE has and SPEC lacks, dashed grey and labelled '(ablated)'.")
@click.option("--disabled", multiple=True, metavar="FROM:TO",
              help="Draw this edge as disabled at run time (dashed); repeatable.")
@click.option("--collapse", is_flag=True,
              help="One box per group of nodes (ids sharing the prefix before '_': conv3_n12 is in conv3) with its "
                   "totals; links between groups aggregated.  For large networks.")
@click.option("--color-by", "color_by", nargs=2, type=(click.Choice(["contribution", "edgecut"]),
              click.Path(file_okay=False, path_type=Path)), metavar="contribution|edgecut ANALYSIS_DIR",
              help="Colour edges by contributions.csv (ratio) or edgecut.csv (accuracy drop) that "
                   "'hrgraph analyze' wrote to ANALYSIS_DIR.")
@spec_loading_options
@handle_errors
def render_(
    spec: Path, out: Path, rankdir: str, base: Path | None, disabled: tuple[str, ...], collapse: bool,
    color_by: tuple[str, Path] | None, loading: SpecLoading
) -> None:
    """Draw SPEC's architecture diagram (no module is built, torch is not imported).

    The main path is a column of nodes (id, block, output shape, parameters);
    long-range edges are drawn beside it, labelled with the projection they
    insert; delayed (feedback) links are dashed and labelled with their delay.
    In an SVG, hovering over a node or an edge shows its parameters and MACs.
    The format follows OUT's suffix; '-o OUT.dot' needs no Graphviz.
    """
    from ..draw.collapse import collapsed_dot
    from ..draw.render import render, write_diagram

    refuse_input(out, spec, base)
    if collapse and (base is not None or disabled or color_by):
        raise click.UsageError("--collapse draws groups, not single edges: it cannot be combined with "
                               "--show-ablated, --disabled or --color-by")
    loaded = loading.load(spec)
    if collapse:
        write_diagram(collapsed_dot(loaded, rankdir=rankdir.upper()), out)
    else:
        based = loading.load(base) if base is not None else None
        render(loaded, out, rankdir=rankdir.upper(), show_ablated=based, disabled=disabled, color_by=color_by or None)
    click.echo(f"wrote {out}")


@click.command(name="diff")
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw one diagram of both (.svg, .png, .pdf or .dot).")
@_rankdir
@spec_loading_options
@handle_errors
def diff_(a: Path, b: Path, out: Path | None, rankdir: str, loading: SpecLoading) -> None:
    """Show what spec B adds (+), removes (-) and changes (~) relative to spec A.

    Prints one line per difference, then the parameter counts; with -o, also
    draws both in one diagram: added green, removed red (dashed), changed orange.
    """
    from ..edit.diff import diff_specs
    from ..draw.render import diff_diagram, write_diagram

    refuse_input(out, a, b)
    diff = diff_specs(loading.load(a), loading.load(b))
    colours = {"+": "green", "-": "red", "~": "yellow"}
    # The text first: it needs no Graphviz, so a missing `dot` still leaves the diff on screen,
    # followed by the error (and exit 1) that says the drawing was not made.
    for line in diff.summary():
        click.secho(line, fg=colours.get(line[:1]))
    if out is not None:
        write_diagram(diff_diagram(diff, rankdir=rankdir.upper()).source, out)
        click.echo(f"wrote {out}")


@click.command()
@click.argument("spec_dir", default="specs", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "-o", default=Path("docs/gallery"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Directory for the SVGs.")
@click.option("--index", type=click.Path(dir_okay=False, path_type=Path),
              help="The Markdown page (default: OUT with suffix .md, e.g. docs/gallery.md).")
@spec_loading_options
@handle_errors
def gallery(spec_dir: Path, out: Path, index: Path | None, loading: SpecLoading) -> None:
    """Draw every spec in SPEC_DIR (default: specs) to OUT/<name>.svg and write a Markdown page of them all.

    Exits 1 if any spec could not be drawn (it is listed on the page with its error).
    """
    from ..draw.gallery import write_gallery

    refuse_input(index, *spec_files((spec_dir,)))
    entries = write_gallery(spec_dir, out, index, **loading.kwargs)
    failed = [e for e in entries if e.error is not None]
    for entry in failed:
        fail(entry.error)
    page = index or out.with_suffix(".md")
    click.echo(f"wrote {len(entries) - len(failed)} diagrams to {out}/ and {page}")
    if failed:
        raise SystemExit(EXIT_SPEC)


__all__ = ["render_", "diff_", "gallery"]
