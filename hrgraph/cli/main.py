"""The ``hrgraph`` command group: registers the commands of the family modules.

Each command lives in the module of its family (spec, edit, draw, generate, io,
train, experiment, analysis); they share :mod:`hrgraph.cli.common`.  This module
imports them and nothing imports it, so the command line has no import cycle.
Torch is imported only inside commands that need it.
"""

from __future__ import annotations

import click

from .analysis import analyze_command, summary
from .draw import diff_, gallery, render_
from .edit import ablate, match, scale_command, zoo
from .experiment import experiment_command, report_command
from .generate import generate_command
from .io import export_command, import_command
from .spec import compile_, schema, validate
from .train import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hrgraph")
@click.option("--debug", is_flag=True, help="Show Python tracebacks of internal errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Compile brain-inspired connectivity specs (blocks + long-range edges) into PyTorch models."""
    ctx.obj = {"debug": debug}


for command in (validate, compile_, schema, summary, match, ablate, scale_command, zoo, render_, diff_, gallery,
                generate_command, import_command, export_command, train_command, experiment_command, report_command, analyze_command):
    main.add_command(command)

__all__ = ["main"]
