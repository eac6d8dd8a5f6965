"""`hrgraph match`, `ablate`, `scale` and `zoo`: new specs derived from old ones (hrgraph.edit).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..files import atomic_dir, safe_filename, write_atomic
from .common import SpecLoading, emit_generated, finite, generated_header, handle_errors, refuse_input, spec_files, spec_loading_options

def _parse_count(text: str) -> int | None:
    """``11350346``, ``11_350_346``, ``11,350,346`` or ``11.35M`` as an int; ``None`` if not a count."""
    import re

    plain = text.strip().replace("_", "").replace(",", "")
    if plain.isdigit():
        count = int(plain)
    elif found := re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG])", plain):
        count = round(float(found.group(1)) * {"k": 1e3, "m": 1e6, "g": 1e9}[found.group(2).lower()])
    elif re.fullmatch(r"\d+(?:\.\d+)?[eE]\+?\d+", plain):
        count = round(float(plain))  # 1e9, 1.135e7
    elif re.fullmatch(r"[-+]?[\d.]+(?:[eE][-+]?\d+)?[kKmMgG]?", plain) and not Path(text).exists():
        # A number, but not a positive count (-5, 0.5): not a file name either.
        raise click.BadParameter(f"{text!r} is not a positive parameter count (e.g. 11350346, 11.35M or 1e7)", param_hint="--to")
    else:
        return None
    if count < 1:
        raise click.BadParameter(f"{text!r} is not a positive parameter count (e.g. 11350346, 11.35M or 1e7)", param_hint="--to")
    return count


def _selectors(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "target", required=True, metavar="TARGET_SPEC_OR_COUNT", help="A spec file, or a count such as 11350346 or 11.35M.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the spec here (default: stdout).")
@click.option("--tolerance", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.005, show_default=True, help="Largest relative difference from the target.")
@click.option("--name", help="Name of the new spec (default: <name>-adjusted).")
@spec_loading_options
@handle_errors
def match(spec: Path, target: str, out: Path | None, tolerance: float, name: str | None, loading: SpecLoading) -> None:
    """Scale SPEC's hidden widths to reach TARGET's parameter count (the paper's "Adjusted" baselines).

    Every hidden width (channels of the stem and stages, never the input or the
    number of classes) is scaled by one common factor and rounded to a whole
    multiple of the cardinality; single widths are then moved if needed to land
    within the tolerance.  Works in both directions (widening and narrowing).
    """
    from ..edit.match import describe_widths, match_params
    from ..build.shapes import count_params

    count = _parse_count(target)
    refuse_input(out, spec, Path(target) if count is None else None)
    source = loading.load(spec)
    goal = count if count is not None else loading.load(Path(target))
    result = match_params(source, goal, tolerance=tolerance, name=name)
    params = count_params(result)
    wanted = count if count is not None else count_params(goal)
    summary = (
        f"{result.name}: {params:,} params, target {wanted:,} ({(params / wanted - 1) * 100:+.2f}%); "
        + ("; ".join(describe_widths(source, result)) or "widths unchanged")
    )
    command = ["hrgraph", "match", str(spec), "--to", target]
    command += [f"--tolerance={tolerance}"] if tolerance != 0.005 else []
    command += ["--name", name] if name else []
    emit_generated(result, command + loading.flags, out, summary)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--drop", multiple=True, metavar="FROM:TO", help="Edges to remove; repeatable or comma-separated; patterns like 'stem:*', '*:stage4'.")
@click.option("--keep", multiple=True, metavar="FROM:TO", help="Edges to keep; all others are removed.")
@click.option("--variant", type=click.Choice(["in", "out", "out-all"]),
              help="'in': keep the edges leaving the first node; 'out' (the paper's HiResNet-Out): the edges entering "
                   "the last stage from residual blocks (not from the first node); 'out-all': every edge entering it.")
@click.option("--sweep", type=click.Choice(["single", "leave-one-out", "powerset"]), help="Write a family of ablations to the folder given by -o.")
@click.option("--over", multiple=True, metavar="FROM:TO", help="With --sweep: sweep only these edges (the others are kept).")
@click.option("--max-variants", type=click.IntRange(min=1), default=256, show_default=True, help="With --sweep: refuse to write more specs than this.")
@click.option("--name", help="Name of the new spec (default: derived from what it removes).")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Output file (default: stdout); with --sweep, a folder.")
@spec_loading_options
@handle_errors
def ablate(
    spec: Path,
    drop: tuple[str, ...],
    keep: tuple[str, ...],
    variant: str | None,
    sweep: str | None,
    over: tuple[str, ...],
    max_variants: int,
    name: str | None,
    out: Path | None,
    loading: SpecLoading,
) -> None:
    """Remove long-range edges from SPEC (structural ablation) and write the new spec(s).

    Give one of --drop, --keep, --variant or --sweep.  Edges are 'from:to' (or
    'from->to'), either side may be a pattern.  A sweep writes one spec per
    variant into the folder -o, each named after what it removes (or keeps,
    if shorter), plus an index file <name>-<sweep>.index.json.
    """
    from ..edit.ablate import ablate as ablate_spec
    from ..edit.ablate import sweep as sweep_spec
    from ..build.shapes import count_params

    given = [flag for flag, value in (("--drop", drop), ("--keep", keep), ("--variant", variant), ("--sweep", sweep)) if value]
    if len(given) != 1:
        raise click.UsageError(f"give exactly one of --drop, --keep, --variant or --sweep (got {', '.join(given) or 'none'})")
    if (over or max_variants != 256) and not sweep:
        raise click.UsageError("--over and --max-variants apply to --sweep only")
    for flag, values in (("--drop", drop), ("--keep", keep), ("--over", over)):
        if values and not _selectors(values):
            raise click.BadParameter("give at least one edge 'from:to' (or a pattern such as 'stem:*')", param_hint=f"'{flag}'")
    if not sweep:
        refuse_input(out, spec)
    base = loading.load(spec)
    command = ["hrgraph", "ablate", str(spec)]
    command += [x for sel in _selectors(drop) for x in ("--drop", sel)]
    command += [x for sel in _selectors(keep) for x in ("--keep", sel)]
    command += ["--variant", variant] if variant else []
    command += ["--sweep", sweep] if sweep else []
    command += [x for sel in _selectors(over) for x in ("--over", sel)]
    command += [f"--max-variants={max_variants}"] if max_variants != 256 else []
    command += ["--name", name] if name else []
    command += loading.flags
    if sweep:
        if out is None:
            raise click.UsageError("--sweep needs -o FOLDER")
        if name:
            raise click.UsageError("--name does not apply to --sweep (each variant is named after what it removes)")
        try:
            specs = sweep_spec(base, sweep, over=_selectors(over) or None, max_variants=max_variants)
        except ValueError as err:  # more variants than --max-variants
            raise click.BadParameter(str(err), param_hint="'--max-variants'") from None
        header = generated_header(command + ["-o", str(out)])
        entries = []
        index_name = safe_filename(f"{base.name or spec.stem}-{sweep}", ".index.json")
        # Spec names become file names: sanitised (no '../', no overlong name), and
        # the whole family is written at once or not at all.
        with atomic_dir(out) as folder:
            for derived in specs:
                kept = {e.key for e in derived.edges}
                file = safe_filename(derived.name, ".yaml")
                refuse_input(out / file, spec)
                write_atomic(folder / file, header + derived.to_yaml())
                entries.append(
                    {
                        "file": file,
                        "name": derived.name,
                        "removed": [e.name for e in base.edges if e.key not in kept],
                        "kept": [e.name for e in derived.edges],
                        "params": count_params(derived),
                    }
                )
            index = {"generated_by": " ".join(command + ["-o", str(out)]), "source": str(spec), "sweep": sweep, "variants": entries}
            write_atomic(folder / index_name, json.dumps(index, indent=2) + "\n")
        click.echo(f"wrote {len(specs)} specs and {out / index_name}")
        return
    derived = ablate_spec(
        base, drop=_selectors(drop) or None, keep=_selectors(keep) or None, variant=variant, name=name
    )
    kept = {e.key for e in derived.edges}  # a set: comparing Edge models pairwise is quadratic
    removed = [e for e in base.edges if e.key not in kept]
    summary = f"{derived.name}: removed {', '.join(e.name for e in removed) or 'no edge'}"
    if removed:
        summary += _param_change(base, derived, removed)
    summary += f"; {len(derived.edges)} edges left, {count_params(derived):,} params"
    emit_generated(derived, command, out, summary)


def _param_change(base, derived, removed) -> str:
    """``: -8,448 params in their projections, -12,345 downstream (concat narrowing)``.

    The edges' own projections, apart from what removing them changed elsewhere:
    a concat edge narrows its target, so every consumer's weights shrink too.
    """
    from ..build.shapes import infer_shapes

    before = infer_shapes(base)
    own = sum(before.projections[e.key].params for e in removed if e.key in before.projections)
    downstream = infer_shapes(derived).params - (before.params - own)
    text = f": -{own:,} params in their projections"
    if downstream:
        text += f", {downstream:+,} downstream (concat narrowing)"
    return text


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the Markdown here instead of stdout.")
@spec_loading_options
@handle_errors
def zoo(paths: tuple[Path, ...], out: Path | None, loading: SpecLoading) -> None:
    """Print the parameter table (#P) of every spec in PATHS (folders or files; default: specs) as Markdown.

    Each spec is put in a family (same layers up to hidden widths and edges)
    and its #P is given relative to the family's original (its member
    without edges and with the fewest parameters).
    """
    from ..edit.zoo import load_zoo, zoo_markdown

    paths = paths or (Path("specs"),)
    refuse_input(out, *spec_files(paths))
    command = ["hrgraph", "zoo", *map(str, paths)] + (["--out", str(out)] if out else [])
    text = zoo_markdown(load_zoo(paths, **loading.kwargs), command=" ".join(command) if out else None)
    if out is None:
        click.echo(text, nl=False)
        return
    write_atomic(out, text)
    click.echo(f"wrote {out}")


@click.command(name="scale")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--width", "factor", required=True, type=click.FloatRange(min=0, min_open=True), callback=finite, help="Multiply every hidden width by this.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the spec here (default: stdout).")
@click.option("--name", help="Name of the new spec (default: <name>-w<factor>).")
@spec_loading_options
@handle_errors
def scale_command(spec: Path, factor: float, out: Path | None, name: str | None, loading: SpecLoading) -> None:
    """Write SPEC with every hidden width scaled by --width (input channels and classes kept).

    Widths are rounded to the multiples the blocks need (a ResNeXt stage's
    cardinality); the same scaling as `hrgraph train --width-mult`.
    """
    from ..edit.match import describe_widths, scale_widths
    from ..build.shapes import count_params

    source = loading.load(spec)
    result = scale_widths(source, factor, name=name)
    summary = f"{result.name}: {count_params(result):,} params; " + ("; ".join(describe_widths(source, result)) or "widths unchanged")
    command = ["hrgraph", "scale", str(spec), "--width", f"{factor:g}"] + (["--name", name] if name else []) + loading.flags
    emit_generated(result, command, out, summary)


__all__ = ["match", "ablate", "zoo", "scale_command"]
