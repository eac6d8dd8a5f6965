"""`hrgraph validate`, `compile` and `schema`: check a spec, build it and print its table.

Torch is imported only when `compile` builds the model, so `validate` and `--help` stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import HrgraphError
from ..files import write_atomic
from .common import RICH_ROWS as COMMON_RICH_ROWS
from .common import (
    print_table,
    EXIT_SPEC,
    rich_console,
    fail,
    handle_errors,
    max_activation_option,
    parse_shape,
    print_time,
    refuse_input,
    SpecLoading,
    spec_loading_options,
)

@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@max_activation_option
@spec_loading_options
@click.option("--expand", is_flag=True, help="Show each edge pattern's line and the edges it expanded to.")
@click.option("--yaml", "as_yaml", is_flag=True, help="With --expand: also print the resolved edges as YAML.")
@handle_errors
def validate(
    specs: tuple[Path, ...],
    max_activation: int | None,
    loading: SpecLoading,
    expand: bool,
    as_yaml: bool,
) -> None:
    """Check SPECS (structure, graph and shapes) without building any module.

    SPECS are files or folders; a folder's *.yaml and *.yml are checked, its
    subfolders' too (as the gallery draws them).  Prints one line per spec;
    exits 1 if any is invalid.  With --expand, each
    edge pattern follows: where it is, and each edge it made (marked where an
    explicit edge, a later pattern or a child spec overrode it).
    """
    from ..spec.patterns import describe_expansions, recording
    from ..build.shapes import MAX_ACTIVATION, format_count, infer_shapes

    files = [f for p in specs for f in (_folder_specs(p) if p.is_dir() else [p])]
    if not files:
        raise click.BadParameter(f"no *.yaml spec in {', '.join(map(str, specs))}", param_hint="SPECS")
    failed = 0
    for path in files:
        try:
            with recording() as expansions:
                loaded = loading.load(path)
            plan = infer_shapes(loaded, max_activation=max_activation or MAX_ACTIVATION)
        except HrgraphError as err:
            failed += 1
            fail(err)
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
        click.echo(f"{failed} of {len(files)} specs invalid", err=True)
        raise SystemExit(EXIT_SPEC)


def _folder_specs(folder: Path) -> list[Path]:
    """A folder's specs, its own first, then its subfolders' (the gallery's order)."""
    found = [p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(found, key=lambda p: (len(p.relative_to(folder).parts), p.relative_to(folder).as_posix()))


@click.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Save state_dict, resolved spec and fingerprint (a .pt file).")
@click.option("--input", "input_text", metavar="CxHxW", help="Override the spec's input shape.")
@click.option("--max-params", type=click.IntRange(min=1), default=None, help="Refuse networks above this many parameters.")
@max_activation_option
@spec_loading_options
@handle_errors
def compile_(
    spec: Path,
    as_json: bool,
    out: Path | None,
    input_text: str | None,
    max_params: int | None,
    max_activation: int | None,
    loading: SpecLoading,
) -> None:
    """Validate and build SPEC, run one forward on a zero input, and print its table.

    The table lists every node (block, output shape, parameters), then every
    inserted projection, then the totals.
    """
    refuse_input(out, spec)
    input_shape = parse_shape(input_text)
    from ..build.shapes import MAX_ACTIVATION, MAX_PARAMS, infer_shapes

    loaded = loading.load(spec)
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


#: See :data:`hrgraph.cli.common.RICH_ROWS` (a module attribute here so that tests can lower it).
RICH_ROWS = COMMON_RICH_ROWS


def _table(console: Any, title: str, columns: list[tuple[str, str]], rows: list[tuple[str, ...]]) -> None:
    print_table(console, title, columns, rows, rich_rows=RICH_ROWS)


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


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from ..build.shapes import format_count, format_shape

    console = rich_console()
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
        print_time(summary["time"])
    if "saved" in summary:
        console.print(f"saved {summary['saved']}")


@click.command()
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


__all__ = ["validate", "compile_", "schema"]
