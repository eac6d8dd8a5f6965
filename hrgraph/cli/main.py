"""The ``hrgraph`` command line: the only module that prints or exits.

Library errors (:class:`~hrgraph.errors.HrgraphError`) become one line on
stderr and exit code 1; misuse (bad options) exits 2; anything unexpected is
reported in one line with exit code 3 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click

from ..errors import HrgraphError
from ..files import atomic_dir, safe_filename, write_atomic

EXIT_SPEC = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


def _fail(err: HrgraphError) -> None:
    click.echo(f"error: {err}", err=True)
    for other in getattr(err, "others", []):
        click.echo(f"error: {other}", err=True)
    omitted = getattr(err, "omitted", 0)
    if omitted:
        click.echo(f"error: ... and {omitted:,} more errors", err=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs (no temporary file is left)."""


@contextmanager
def _signals_raise() -> Iterator[list[int]]:
    """While a command runs, SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated`; yields the signals received.

    Python's default for SIGTERM is to die on the spot, leaving a half-written
    temporary file (hundreds of MB for a checkpoint).  The signals are also
    remembered because a C++ layer in between (``torch.save``) may turn the
    exception into a ``RuntimeError`` on its way up.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield received
        return

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into a message and an exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        with _signals_raise() as received:
            try:
                return func(*args, **kwargs)
            except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
                raise
            except BaseException as err:
                if received or isinstance(err, KeyboardInterrupt):
                    terminated = signal.SIGTERM in received or isinstance(err, Terminated)
                    click.echo("terminated" if terminated else "interrupted", err=True)
                    ctx.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
                if isinstance(err, HrgraphError):
                    _fail(err)
                    ctx.exit(EXIT_SPEC)
                if not isinstance(err, Exception):  # SystemExit, GeneratorExit
                    raise
                if (ctx.find_root().obj or {}).get("debug"):
                    raise
                # The CLI edge: report, do not dump a traceback.
                click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for details)", err=True)
                ctx.exit(EXIT_INTERNAL)

    return wrapper


def _refuse_input(out: Path | None, *inputs: Path | None) -> None:
    """Refuse ``-o`` naming one of the command's input files: writing it would destroy the input."""
    if out is None:
        return
    for source in inputs:
        if source is None:
            continue
        try:
            same = os.path.samefile(out, source)
        except OSError:  # either does not exist (yet): not the same file
            same = False
        if same:
            raise click.BadParameter(
                f"'{out}' is the input file '{source}'; write the result to another file", param_hint="'-o' / '--out'"
            )


def _spec_files(paths: tuple[Path, ...]) -> list[Path]:
    """The files of ``paths``, folders expanded to their ``*.yaml``."""
    return [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """Parse ``CxHxW`` (e.g. ``3x64x64``)."""
    if text is None:
        return None
    import re

    parts = text.strip().lower().replace("*", "x").split("x")
    # Plain digits only: int() would also read "3_2" as 32 and " 3" as 3.
    values = tuple(int(p) for p in parts) if all(re.fullmatch(r"[0-9]+", p) for p in parts) else ()
    if len(values) != 3 or min(values) < 1:
        raise click.BadParameter(f"expected CxHxW with positive integers, e.g. 3x32x32, not {text!r}")
    return values  # type: ignore[return-value]


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=max(120, Console().width))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hrgraph")
@click.option("--debug", is_flag=True, help="Show Python tracebacks of internal errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Compile brain-inspired connectivity specs (blocks + long-range edges) into PyTorch models."""
    ctx.obj = {"debug": debug}


max_activation_option = click.option(
    "--max-activation", type=click.IntRange(min=1), default=None, metavar="N",
    help="Refuse an input or node output above N elements per sample (default 2^28, 1 GiB of float32).",
)

allow_imports_option = click.option(
    "--allow-imports", is_flag=True, help="Import the Python modules a spec lists under 'imports' (runs their code)."
)
allow_outside_option = click.option(
    "--allow-outside", is_flag=True, help="Let 'extends' read files outside the spec's folder."
)


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@max_activation_option
@allow_imports_option
@allow_outside_option
@click.option("--expand", is_flag=True, help="Show each edge pattern's line and the edges it expanded to.")
@click.option("--yaml", "as_yaml", is_flag=True, help="With --expand: also print the resolved edges as YAML.")
@handle_errors
def validate(
    specs: tuple[Path, ...],
    max_activation: int | None,
    allow_imports: bool,
    allow_outside: bool,
    expand: bool,
    as_yaml: bool,
) -> None:
    """Check SPECS (structure, graph and shapes) without building any module.

    Prints one line per spec; exits 1 if any is invalid.  With --expand, each
    edge pattern follows: where it is, and each edge it made (marked where an
    explicit edge, a later pattern or a child spec overrode it).
    """
    from ..spec.patterns import describe_expansions, recording
    from ..build.shapes import MAX_ACTIVATION, format_count, infer_shapes
    from ..spec.models import load_spec

    failed = 0
    for path in specs:
        try:
            with recording() as expansions:
                loaded = load_spec(path, allow_imports=allow_imports, allow_outside=allow_outside)
            plan = infer_shapes(loaded, max_activation=max_activation or MAX_ACTIVATION)
        except HrgraphError as err:
            failed += 1
            _fail(err)
            continue
        click.echo(
            f"ok {path}: {len(plan.spec.nodes)} nodes, {len(plan.projections)} edges, "
            f"{plan.params:,} params ({format_count(plan.params)})"
        )
        if expand:
            click.echo(describe_expansions(expansions, loaded) or "no edge patterns")
            if as_yaml:
                import yaml

                edges = {"edges": loaded.to_dict()["edges"]}
                click.echo(yaml.safe_dump(edges, sort_keys=False, default_flow_style=None, width=100), nl=False)
    if failed:
        click.echo(f"{failed} of {len(specs)} specs invalid", err=True)
        raise SystemExit(EXIT_SPEC)


@main.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Save state_dict, resolved spec and fingerprint (a .pt file).")
@click.option("--input", "input_text", metavar="CxHxW", help="Override the spec's input shape.")
@click.option("--max-params", type=click.IntRange(min=1), default=None, help="Refuse networks above this many parameters.")
@max_activation_option
@allow_imports_option
@allow_outside_option
@handle_errors
def compile_(
    spec: Path,
    as_json: bool,
    out: Path | None,
    input_text: str | None,
    max_params: int | None,
    max_activation: int | None,
    allow_imports: bool,
    allow_outside: bool,
) -> None:
    """Validate and build SPEC, run one forward on a zero input, and print its table.

    The table lists every node (block, output shape, parameters), then every
    inserted projection, then the totals.
    """
    _refuse_input(out, spec)
    input_shape = parse_shape(input_text)
    from ..build.shapes import MAX_ACTIVATION, MAX_PARAMS, infer_shapes
    from ..spec.models import load_spec

    loaded = load_spec(spec, allow_imports=allow_imports, allow_outside=allow_outside)
    # Shapes and limits first, without torch: an absurd spec or --input is
    # refused before torch is even imported (let alone allocates).
    checked = infer_shapes(
        loaded,
        input_shape=input_shape,
        max_params=max_params or MAX_PARAMS,
        max_activation=max_activation or MAX_ACTIVATION,
    )
    import torch

    from ..build.compiler import compile_model, save_checkpoint

    model = compile_model(checked)
    plan = model.plan
    model.eval()
    with torch.no_grad():
        y = model(torch.zeros(1, *plan.input_shape))
    expected = plan.output_shape
    got = tuple(y.shape[1:])
    if got not in (expected, expected[:1]):
        raise HrgraphError(f"forward gave shape {got}, shapes predicted {expected}", path=str(spec))
    summary = plan.to_dict()
    summary["built_params"] = sum(p.numel() for p in model.parameters())
    summary["forward_output"] = list(y.shape)
    if out is not None:
        save_checkpoint(model, out)
        summary["saved"] = str(out)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


#: Above this many rows a table is printed as plain aligned text: rich measures
#: every cell through its renderer, which took 13 s for a 20,000-edge spec.
RICH_ROWS = 300


def _table(console: Any, title: str, columns: list[tuple[str, str]], rows: list[tuple[str, ...]]) -> None:
    """Print a table: with rich up to RICH_ROWS rows, else as plain columns (linear in the number of cells)."""
    if len(rows) <= RICH_ROWS:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col, justify in columns:
            table.add_column(col, justify=justify)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max([len(col)] + [len(row[i]) for row in rows]) for i, (col, _) in enumerate(columns)]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if justify == "right" else cell.ljust(w) for cell, w, (_, justify) in zip(cells, widths, columns)
        ).rstrip()

    text = [title, line([col for col, _ in columns]), line(["-" * w for w in widths])] + [line(row) for row in rows]
    click.echo("\n".join(text))


def _inputs_cell(node: dict[str, Any]) -> str:
    """The nodes table's input column: ``a``, or ``weighted: a, b, +3`` for a list input."""
    delays = node.get("delays")
    if "inputs" not in node:
        return (node["input"] or "(input)") + (f" (delay {delays[0]})" if delays else "")
    shown = [f"{i} (delay {d})" if d else i for i, d in zip(node["inputs"], delays or [0] * len(node["inputs"]))][:3]
    more = f", +{len(node['inputs']) - 3}" if len(node["inputs"]) > 3 else ""
    return f"{node['aggregate']}: {', '.join(shown)}{more}"


def _projections_cell(descriptions: list[str]) -> str:
    """``2 identity, 1 avgpool 2 -> 1x1 conv 16->32 + BN, 577 params``: each kind once, with its count."""
    counts: dict[str, int] = {}
    for d in descriptions:
        counts[d] = counts.get(d, 0) + 1
    return "; ".join(f"{n} x {d}" if n > 1 else d for d, n in counts.items())


def _print_time(time: dict[str, Any]) -> None:
    """The unrolling of a spec with ``time`` (issue 17): scheme, runs per node, delayed links, MACs per step."""
    from ..build.shapes import format_count

    steps = f"{time['steps']} steps, readout {time['readout']}" if time["scheme"] == "biological" else "steps per node"
    click.echo(f"time: {time['scheme']}, {steps}")
    own = time["node_steps"]
    click.echo(
        "runs per node: "
        + ", ".join(f"{n} {r}" + (f"/{own[n]}" if r != own[n] else "") for n, r in time["node_runs"].items())
    )
    if time["delayed"]:
        click.echo("delayed: " + ", ".join(f"{d['from']}->{d['to']} ({d['role']}, delay {d['delay']})" for d in time["delayed"]))
    click.echo("MACs per step: " + ", ".join(f"{k}: {format_count(v)}" for k, v in time["step_macs"].items()))


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from ..build.shapes import format_count, format_shape

    console = _console()
    title = summary["name"] or "spec"
    _table(
        console,
        f"{title}: nodes",
        [("node", "left"), ("block", "left"), ("input", "left"), ("output", "left"), ("params", "right")],
        [(n["id"], n["block"], _inputs_cell(n), format_shape(n["out_shape"]), f"{n['params']:,}") for n in summary["nodes"]],
    )
    merges = summary.get("merges", [])
    if merges:
        _table(
            console,
            "merges (list inputs, before the block)",
            [("node", "left"), ("aggregate", "left"), ("inputs", "left"), ("projections", "left"), ("shape", "left"), ("params", "right")],
            [
                (m["node"], m["aggregate"], ", ".join(m["inputs"]), _projections_cell(m["projections"]), format_shape(m["out_shape"]), f"{m['params']:,}")
                for m in merges
            ],
        )
    if summary["projections"]:
        rows = []
        for p in summary["projections"]:
            pool = "-" if p["pool"] is None else (f"{p['pool']} {'x'.join(map(str, p['pool_kernel']))}" if p["pool_kernel"] else p["pool"])
            conv = "-" if p["conv"] is None else f"1x1 {p['conv'][0]}->{p['conv'][1]} + BN"
            merge = p["merge"] + (f", {p['gate']} gate" if "gate" in p else "") + (f", delay {p['delay']}" if "delay" in p else "")
            if p["description"].split(" ")[1:2] == ["upsample"]:
                pool = " ".join(p["description"].split(" ")[:3])
            rows.append((p["edge"], merge, pool, conv, f"{format_shape(p['in_shape'])} -> {format_shape(p['out_shape'])}", f"{p['params']:,}"))
        _table(
            console,
            "projections (long-range edges)",
            [("edge", "left"), ("merge", "left"), ("pooling", "left"), ("conv", "left"), ("shape", "left"), ("params", "right")],
            rows,
        )
    else:
        console.print("projections: none")
    edge_params = sum(p["params"] for p in summary["projections"])
    merge_params = sum(m["params"] for m in merges)
    n_proj = len(summary["projections"])
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    in_merges = f" + {merge_params:,} in {len(merges)} merge{'s' if len(merges) != 1 else ''}" if merges else ""
    totals.add_row(
        "total params",
        f"{summary['params']:,} ({format_count(summary['params'])}) = {summary['params'] - edge_params - merge_params:,} in nodes"
        f" + {edge_params:,} in {n_proj} projection{'s' if n_proj != 1 else ''}{in_merges}",
    )
    totals.add_row("MACs per sample", format_count(summary["macs"]))
    totals.add_row(
        "forward",
        f"{format_shape(summary['input'])} -> {format_shape(summary['forward_output'][1:])} (checked on a zero input)",
    )
    totals.add_row("fingerprint", summary["fingerprint"])
    console.print(totals)
    if "time" in summary:
        _print_time(summary["time"])
    if "saved" in summary:
        console.print(f"saved {summary['saved']}")


@main.command()
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
@handle_errors
def schema(out: Path | None) -> None:
    """Print the JSON Schema of spec files (for editor checking and completion)."""
    from ..spec.schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        write_atomic(out, text)


# -- spec derivation: match, ablate, zoo (hrgraph.edit.match, hrgraph.edit.ablate, hrgraph.edit.zoo) --------------------


def _shell_word(arg: str) -> str:
    """``arg`` quoted for a POSIX shell, on one line: control characters as bash's ``$'\\n'`` escapes."""
    import shlex

    if arg.isprintable():
        return shlex.quote(arg)
    escaped = "".join(
        ("\\" + ch if ch in "\\'" else ch) if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in arg
    )
    return f"$'{escaped}'"


def _generated_header(command: list[str], advice: str = "Change the source spec and rerun the command.") -> str:
    r"""The comment on top of a generated spec; every argument stays on its line, whatever it contains.

    ``advice`` is its second line: how to regenerate the file.

    Examples
    --------
    >>> print(_generated_header(["hrgraph", "match", "a.yaml", "--name", "x\nname: it's"]), end="")
    # Generated by `hrgraph match a.yaml --name $'x\nname: it\'s'`; do not edit.
    # Change the source spec and rerun the command.
    """
    return (
        f"# Generated by `{' '.join(map(_shell_word, command))}`; do not edit.\n"
        f"# {advice}\n"
    )


def _emit_generated(spec: Any, command: list[str], out: Path | None, summary: str, **header: str) -> None:
    """Print a generated spec (summary on stderr) or write it atomically to ``out``.

    ``header`` is passed to :func:`_generated_header` (its ``advice`` line).
    """
    if out is None:
        click.echo(_generated_header(command, **header) + spec.to_yaml(), nl=False)
        click.echo(summary, err=True)
        return
    write_atomic(out, _generated_header(command + ["-o", str(out)], **header) + spec.to_yaml())
    click.echo(f"wrote {out}: {summary}")


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


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "target", required=True, metavar="TARGET_SPEC_OR_COUNT", help="A spec file, or a count such as 11350346 or 11.35M.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the spec here (default: stdout).")
@click.option("--tolerance", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.005, show_default=True, help="Largest relative difference from the target.")
@click.option("--name", help="Name of the new spec (default: <name>-adjusted).")
@handle_errors
def match(spec: Path, target: str, out: Path | None, tolerance: float, name: str | None) -> None:
    """Scale SPEC's hidden widths to reach TARGET's parameter count (the paper's "Adjusted" baselines).

    Every hidden width (channels of the stem and stages, never the input or the
    number of classes) is scaled by one common factor and rounded to a whole
    multiple of the cardinality; single widths are then moved if needed to land
    within the tolerance.  Works in both directions (widening and narrowing).
    """
    from ..edit.match import describe_widths, match_params
    from ..build.shapes import count_params
    from ..spec.models import load_spec

    count = _parse_count(target)
    _refuse_input(out, spec, Path(target) if count is None else None)
    source = load_spec(spec)
    goal = count if count is not None else load_spec(Path(target))
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
    _emit_generated(result, command, out, summary)


@main.command()
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
    from ..spec.models import load_spec

    given = [flag for flag, value in (("--drop", drop), ("--keep", keep), ("--variant", variant), ("--sweep", sweep)) if value]
    if len(given) != 1:
        raise click.UsageError(f"give exactly one of --drop, --keep, --variant or --sweep (got {', '.join(given) or 'none'})")
    if (over or max_variants != 256) and not sweep:
        raise click.UsageError("--over and --max-variants apply to --sweep only")
    for flag, values in (("--drop", drop), ("--keep", keep), ("--over", over)):
        if values and not _selectors(values):
            raise click.BadParameter("give at least one edge 'from:to' (or a pattern such as 'stem:*')", param_hint=f"'{flag}'")
    if not sweep:
        _refuse_input(out, spec)
    base = load_spec(spec)
    command = ["hrgraph", "ablate", str(spec)]
    command += [x for sel in _selectors(drop) for x in ("--drop", sel)]
    command += [x for sel in _selectors(keep) for x in ("--keep", sel)]
    command += ["--variant", variant] if variant else []
    command += ["--sweep", sweep] if sweep else []
    command += [x for sel in _selectors(over) for x in ("--over", sel)]
    command += [f"--max-variants={max_variants}"] if max_variants != 256 else []
    command += ["--name", name] if name else []
    if sweep:
        if out is None:
            raise click.UsageError("--sweep needs -o FOLDER")
        if name:
            raise click.UsageError("--name does not apply to --sweep (each variant is named after what it removes)")
        try:
            specs = sweep_spec(base, sweep, over=_selectors(over) or None, max_variants=max_variants)
        except ValueError as err:  # more variants than --max-variants
            raise click.BadParameter(str(err), param_hint="'--max-variants'") from None
        header = _generated_header(command + ["-o", str(out)])
        entries = []
        index_name = safe_filename(f"{base.name or spec.stem}-{sweep}", ".index.json")
        # Spec names become file names: sanitised (no '../', no overlong name), and
        # the whole family is written at once or not at all.
        with atomic_dir(out) as folder:
            for derived in specs:
                kept = {e.key for e in derived.edges}
                file = safe_filename(derived.name, ".yaml")
                _refuse_input(out / file, spec)
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
    removed = [e.name for e in base.edges if e.key not in kept]
    summary = f"{derived.name}: removed {', '.join(removed) or 'no edge'}; {len(derived.edges)} edges left, {count_params(derived):,} params"
    _emit_generated(derived, command, out, summary)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the Markdown here instead of stdout.")
@handle_errors
def zoo(paths: tuple[Path, ...], out: Path | None) -> None:
    """Print the parameter table (#P) of every spec in PATHS (folders or files; default: specs) as Markdown.

    Each spec is put in a family (same layers up to hidden widths and edges)
    and its #P is given relative to the family's original (its member
    without edges and with the fewest parameters).
    """
    from ..edit.zoo import load_zoo, zoo_markdown

    paths = paths or (Path("specs"),)
    _refuse_input(out, *_spec_files(paths))
    command = ["hrgraph", "zoo", *map(str, paths)] + (["--out", str(out)] if out else [])
    text = zoo_markdown(load_zoo(paths), command=" ".join(command) if out else None)
    if out is None:
        click.echo(text, nl=False)
        return
    write_atomic(out, text)
    click.echo(f"wrote {out}")


_diagram_out = click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .svg, .png, .pdf (need Graphviz's dot) or .dot (the DOT source).",
)
_rankdir = click.option(
    "--rankdir", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True,
    help="Main path top to bottom (TB) or left to right (LR).",
)


@main.command(name="render")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@_diagram_out
@_rankdir
@click.option("--show-ablated", "base", type=click.Path(dir_okay=False, path_type=Path), metavar="BASE.yaml",
              help="Draw the edges BASE has and SPEC lacks, dashed grey and labelled '(ablated)'.")
@click.option("--disabled", multiple=True, metavar="FROM:TO",
              help="Draw this edge as disabled at run time (dashed); repeatable.")
@allow_imports_option
@allow_outside_option
@handle_errors
def render_(
    spec: Path, out: Path, rankdir: str, base: Path | None, disabled: tuple[str, ...], allow_imports: bool, allow_outside: bool
) -> None:
    """Draw SPEC's architecture diagram (no module is built, torch is not imported).

    The main path is a column of nodes (id, block, output shape, parameters);
    long-range edges are drawn beside it, labelled with the projection they
    insert.  The format follows OUT's suffix; '-o OUT.dot' needs no Graphviz.
    """
    from ..draw.render import render
    from ..spec.models import load_spec

    _refuse_input(out, spec, base)
    loaded = load_spec(spec, allow_imports=allow_imports, allow_outside=allow_outside)
    based = load_spec(base, allow_imports=allow_imports, allow_outside=allow_outside) if base is not None else None
    render(loaded, out, rankdir=rankdir.upper(), show_ablated=based, disabled=disabled)
    click.echo(f"wrote {out}")


@main.command(name="diff")
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw one diagram of both (.svg, .png, .pdf or .dot).")
@_rankdir
@allow_imports_option
@allow_outside_option
@handle_errors
def diff_(a: Path, b: Path, out: Path | None, rankdir: str, allow_imports: bool, allow_outside: bool) -> None:
    """Show what spec B adds (+), removes (-) and changes (~) relative to spec A.

    Prints one line per difference, then the parameter counts; with -o, also
    draws both in one diagram: added green, removed red (dashed), changed orange.
    """
    from ..edit.diff import diff_specs
    from ..draw.render import diff_diagram, write_diagram
    from ..spec.models import load_spec

    _refuse_input(out, a, b)
    options = {"allow_imports": allow_imports, "allow_outside": allow_outside}
    diff = diff_specs(load_spec(a, **options), load_spec(b, **options))
    if out is not None:  # draw first: a failure must not follow a summary that looks complete
        write_diagram(diff_diagram(diff, rankdir=rankdir.upper()).source, out)
    colours = {"+": "green", "-": "red", "~": "yellow"}
    for line in diff.summary():
        click.secho(line, fg=colours.get(line[:1]))
    if out is not None:
        click.echo(f"wrote {out}")


@main.command()
@click.argument("spec_dir", default="specs", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "-o", default=Path("docs/gallery"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Directory for the SVGs.")
@click.option("--index", type=click.Path(dir_okay=False, path_type=Path),
              help="The Markdown page (default: OUT with suffix .md, e.g. docs/gallery.md).")
@allow_imports_option
@handle_errors
def gallery(spec_dir: Path, out: Path, index: Path | None, allow_imports: bool) -> None:
    """Draw every spec in SPEC_DIR (default: specs) to OUT/<name>.svg and write a Markdown page of them all.

    Exits 1 if any spec could not be drawn (it is listed on the page with its error).
    """
    from ..draw.gallery import write_gallery

    _refuse_input(index, *_spec_files((spec_dir,)))
    entries = write_gallery(spec_dir, out, index, allow_imports=allow_imports)
    failed = [e for e in entries if e.error is not None]
    for entry in failed:
        _fail(entry.error)
    page = index or out.with_suffix(".md")
    click.echo(f"wrote {len(entries) - len(failed)} diagrams to {out}/ and {page}")
    if failed:
        raise SystemExit(EXIT_SPEC)


# Command families in their own modules (each imports torch only when it runs).
from .train import scale_command, train_command  # noqa: E402  (they need handle_errors above)

main.add_command(train_command)
main.add_command(scale_command)


from .analysis import analyze_command, summary  # noqa: E402  (they need handle_errors above)

main.add_command(summary)
main.add_command(analyze_command)

from .experiment import experiment_command, report_command  # noqa: E402  (they need handle_errors above)

main.add_command(experiment_command)
main.add_command(report_command)

from .generate import generate_command  # noqa: E402  (it needs handle_errors above)
from .io import import_command  # noqa: E402

main.add_command(generate_command)
main.add_command(import_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
