"""``hrgraph generate``: write a RandWire spec from a random graph model.

Registered by :mod:`hrgraph.cli.main`.  No torch: generating and validating a
spec needs only networkx and the shape arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import emit_generated, handle_errors, parse_shape

__all__ = ["generate_command"]


def _shape_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int, int] | None:
    return parse_shape(value)


def _stages_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """``16,32,32`` as node counts, one per random stage."""
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",")]
    if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise click.BadParameter(f"expected node counts separated by commas, e.g. 16,32,32, not {value!r}")
    return tuple(int(part) for part in parts)


def _command(graph: str, options: dict[str, Any]) -> list[str]:
    """The command line that regenerates a spec, every value spelled out (defaults included).

    Examples
    --------
    >>> " ".join(_command("ws", {"nodes": 32, "k": 4, "p": 0.75, "stages": None, "input": (3, 224, 224)}))
    'hrgraph generate ws --nodes 32 --k 4 --p 0.75 --input 3x224x224'
    """
    command = ["hrgraph", "generate", graph]
    for name, value in options.items():
        if value is None:
            continue
        if name in ("input", "stages"):
            value = ("x" if name == "input" else ",").join(map(str, value))
        command += [f"--{name}", str(value)]
    return command


#: The second header line of a generated RandWire spec: the command writes the same bytes again.
_ADVICE = "Rerun the command to regenerate it: the same arguments give the same bytes (networkx draws the graphs)."


@click.command(name="generate")
@click.argument("graph", type=click.Choice(["ws", "er", "ba"]))
@click.option("--nodes", "-n", type=click.IntRange(min=1), default=32, show_default=True, help="N: nodes of a random stage (the regular regime's first stage has N/2).")
@click.option("--seed", "-s", type=int, default=0, show_default=True, help="Seed of the network; each stage's graph gets its own seed derived from it.")
@click.option("--k", "-k", type=int, help="WS: ring neighbours of each node, even (default 4).")
@click.option("--p", "-p", type=float, help="WS: rewiring probability (default 0.75); ER: edge probability (default 0.2).")
@click.option("--m", "-m", type=int, help="BA: edges from each new node (default 5).")
@click.option("--stages", callback=_stages_option, metavar="N1,N2,...", help="Node counts of the random stages, replacing the regime's (N,N,N) or (N/2,N,N,N).")
@click.option("--channels", "-c", type=click.IntRange(min=1), help="C (default: 78 small, 109 regular).")
@click.option("--regime", type=click.Choice(["small", "regular"]), default="small", show_default=True, help="The paper's Table 1 column: stem and random stages.")
@click.option("--classes", type=click.IntRange(min=1), default=1000, show_default=True, help="Outputs of the final linear layer.")
@click.option("--input", "input_shape", callback=_shape_option, metavar="CxHxW", help="Input shape (default 3x224x224).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the spec here (default: stdout).")
@handle_errors
def generate_command(graph: str, nodes: int, seed: int, k: int | None, p: float | None, m: int | None,
                     stages: tuple[int, ...] | None, channels: int | None, regime: str, classes: int,
                     input_shape: tuple[int, int, int] | None, out: Path | None) -> None:
    """Write a randomly wired network (RandWire, Xie et al. 2019) built from GRAPH: ws, er or ba.

    Each random stage is one networkx graph made a DAG (edges from lower to
    higher index); nodes are sepconv blocks with weighted inputs, the stage's
    first nodes have stride 2, its last ones are averaged.  The same
    arguments always give the same file.  See docs/generate.md.
    """
    from ..generate.randwire import DEFAULTS, REGIMES, RandWireError, randwire
    from ..build.shapes import format_count, infer_shapes
    from ..spec.models import load_spec

    shape = input_shape or (3, 224, 224)
    try:
        data = randwire(graph, nodes=nodes, seed=seed, k=k, p=p, m=m, regime=regime, channels=channels,
                        classes=classes, input=shape, stages=stages)
    except RandWireError as err:  # a combination of options no network exists for: misuse, exit 2
        raise click.UsageError(str(err)) from err
    # The header records every value the spec came from, defaults included, so it regenerates
    # the same file even if a default changes.
    given = {"k": k, "p": p, "m": m}
    params = {name: default if given[name] is None else given[name] for name, default in DEFAULTS[graph].items()}
    options: dict[str, Any] = {"nodes": nodes, "seed": seed, **params, "stages": stages,
                               "channels": channels or REGIMES[regime].channels, "regime": regime,
                               "classes": classes, "input": shape}
    spec = load_spec(data)
    plan = infer_shapes(spec)
    summary = (f"{spec.name}: {len(spec.nodes):,} nodes, {plan.params:,} params ({format_count(plan.params)}), "
               f"{format_count(plan.macs)} MACs")
    emit_generated(spec, _command(graph, options), out, summary, advice=_ADVICE)
