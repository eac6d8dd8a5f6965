"""The ``hrgraph`` command line: the only module that prints or exits.

Library errors (:class:`~hrgraph.errors.HrgraphError`) become one line on
stderr and exit code 1; misuse (bad options) exits 2; anything unexpected is
reported in one line with exit code 3 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from .errors import HrgraphError

EXIT_SPEC = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


def _fail(err: HrgraphError) -> None:
    click.echo(f"error: {err}", err=True)
    for other in getattr(err, "others", []):
        click.echo(f"error: {other}", err=True)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into a message and an exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return func(*args, **kwargs)
        except HrgraphError as err:
            _fail(err)
            ctx.exit(EXIT_SPEC)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as err:  # the CLI edge: report, do not dump a traceback
            if (ctx.find_root().obj or {}).get("debug"):
                raise
            click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for details)", err=True)
            ctx.exit(EXIT_INTERNAL)

    return wrapper


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """Parse ``CxHxW`` (e.g. ``3x64x64``)."""
    if text is None:
        return None
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
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


allow_imports_option = click.option(
    "--allow-imports", is_flag=True, help="Import the Python modules a spec lists under 'imports' (runs their code)."
)


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@allow_imports_option
@handle_errors
def validate(specs: tuple[Path, ...], allow_imports: bool) -> None:
    """Check SPECS (structure, graph and shapes) without building any module.

    Prints one line per spec; exits 1 if any is invalid.
    """
    from .shapes import format_count, infer_shapes
    from .spec import load_spec

    failed = 0
    for path in specs:
        try:
            plan = infer_shapes(load_spec(path, allow_imports=allow_imports))
        except HrgraphError as err:
            failed += 1
            _fail(err)
            continue
        click.echo(
            f"ok {path}: {len(plan.spec.nodes)} nodes, {len(plan.projections)} edges, "
            f"{plan.params:,} params ({format_count(plan.params)})"
        )
    if failed:
        click.echo(f"{failed} of {len(specs)} specs invalid", err=True)
        raise SystemExit(EXIT_SPEC)


@main.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Save state_dict, resolved spec and fingerprint (a .pt file).")
@click.option("--input", "input_text", metavar="CxHxW", help="Override the spec's input shape.")
@click.option("--max-params", type=click.IntRange(min=1), default=None, help="Refuse networks above this many parameters.")
@allow_imports_option
@handle_errors
def compile_(spec: Path, as_json: bool, out: Path | None, input_text: str | None, max_params: int | None, allow_imports: bool) -> None:
    """Validate and build SPEC, run one forward on a zero input, and print its table.

    The table lists every node (block, output shape, parameters), then every
    inserted projection, then the totals.
    """
    input_shape = parse_shape(input_text)
    from .shapes import MAX_PARAMS
    from .spec import load_spec

    loaded = load_spec(spec, allow_imports=allow_imports)
    import torch

    from .compiler import compile_model, save_checkpoint

    model = compile_model(loaded, input_shape=input_shape, max_params=max_params or MAX_PARAMS)
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


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from .shapes import format_count

    console = _console()
    shape = lambda s: "x".join(str(v) for v in s)  # noqa: E731
    title = summary["name"] or "spec"
    nodes = Table(title=f"{title}: nodes", title_justify="left")
    for col, justify in (("node", "left"), ("block", "left"), ("input", "left"), ("output", "left"), ("params", "right")):
        nodes.add_column(col, justify=justify)
    for n in summary["nodes"]:
        nodes.add_row(n["id"], n["block"], n["input"] or "(input)", shape(n["out_shape"]), f"{n['params']:,}")
    console.print(nodes)
    if summary["projections"]:
        proj = Table(title="projections (long-range edges)", title_justify="left")
        for col, justify in (("edge", "left"), ("merge", "left"), ("pooling", "left"), ("conv", "left"), ("shape", "left"), ("params", "right")):
            proj.add_column(col, justify=justify)
        for p in summary["projections"]:
            pool = "-" if p["pool"] is None else (f"{p['pool']} {'x'.join(map(str, p['pool_kernel']))}" if p["pool_kernel"] else p["pool"])
            conv = "-" if p["conv"] is None else f"1x1 {p['conv'][0]}->{p['conv'][1]} + BN"
            proj.add_row(p["edge"], p["merge"], pool, conv, f"{shape(p['in_shape'])} -> {shape(p['out_shape'])}", f"{p['params']:,}")
        console.print(proj)
    else:
        console.print("projections: none")
    edge_params = sum(p["params"] for p in summary["projections"])
    console.print(
        f"total: {summary['params']:,} params ({format_count(summary['params'])}): "
        f"{summary['params'] - edge_params:,} in nodes + {edge_params:,} in {len(summary['projections'])} projections; "
        f"{format_count(summary['macs'])} MACs per sample; "
        f"input {shape(summary['input'])} -> output {shape(summary['forward_output'][1:])}; fingerprint {summary['fingerprint']}"
    )
    if "saved" in summary:
        console.print(f"saved {summary['saved']}")


@main.command()
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
@handle_errors
def schema(out: Path | None) -> None:
    """Print the JSON Schema of spec files (for editor checking and completion)."""
    from .spec import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(out, text)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, so no half-written file is left."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
