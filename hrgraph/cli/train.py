"""``hrgraph train``: train one spec into a run folder.

Registered by :mod:`hrgraph.cli.main`; torch is imported only when a command
runs, so ``hrgraph --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .common import SpecLoading, handle_errors, spec_loading_options

__all__ = ["train_command"]

EXIT_INTERRUPTED = 130


def _reporter():
    from ..train.progress import LineReporter, RichReporter

    # A bar on a terminal; plain lines in a log file or a job array's output.
    return RichReporter() if sys.stderr.isatty() else LineReporter(lambda line: click.echo(line, err=True))


@click.command(name="train")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--recipe", type=click.Path(dir_okay=False, path_type=Path), help="Recipe YAML (default: recipes/paper-cifar10.yaml).")
@click.option("--data", help="Data set: cifar10, cifar100, tiny-imagenet, mnist, fashion-mnist, imagefolder:DIR, synthetic.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the data set lives.")
@click.option("--download", is_flag=True, help="Fetch a missing data set through torchvision (needs the internet).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's epochs (with --resume: extend a run).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size (split across torchrun processes).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Override the optimizer's learning rate.")
@click.option("--seed", type=int, help="Override the recipe's seed (data split, order, augmentation, initial weights).")
@click.option("--width-mult", type=click.FloatRange(min=0, min_open=True), help="Scale every hidden width first (e.g. 0.25).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--amp", is_flag=True, help="Mixed precision (CUDA only).")
@click.option("--limit-train", type=click.IntRange(min=1), metavar="N", help="At most N training images per epoch (smoke runs).")
@click.option("--limit-val", type=click.IntRange(min=1), metavar="N", help="At most N val and test images (smoke runs).")
@click.option("--out", "-o", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="Pin torch to N CPU threads (CPU runs are bit-identical only for the same N; recorded in config.yaml).")
@click.option("--log-grad-norms", is_flag=True, help="Write grad_norms.csv: per node and projection, per epoch (hrgraph analyze plots it).")
@spec_loading_options
@handle_errors
def train_command(spec: Path, recipe: Path | None, data: str | None, data_dir: Path | None, download: bool,
                  epochs: int | None, batch_size: int | None, lr: float | None, seed: int | None,
                  width_mult: float | None, device: str, amp: bool, limit_train: int | None, limit_val: int | None,
                  out: Path, resume: bool, threads: int | None, log_grad_norms: bool,
                  loading: SpecLoading) -> None:
    """Train SPEC under a recipe into the run folder --out.

    The folder gets config.yaml, metrics.csv, summary.json, curves.png and
    checkpoints/{last,best}.pt.  Ctrl-C (or SIGTERM) finishes the current step,
    saves, and exits 130; --resume continues exactly where it stopped.  For
    several processes or GPUs: torchrun --nproc_per_node N -m hrgraph train ...
    """
    from ..errors import TrainingInterrupted
    from ..train.loop import train

    flags = {"epochs": epochs, "batch_size": batch_size, "optimizer.lr": lr, "seed": seed, "data": data}
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        summary = train(spec, recipe, out=out, overrides=overrides, resume=resume, device=device, amp=amp,
                        limit_train=limit_train, limit_val=limit_val, width_mult=width_mult, data_dir=data_dir,
                        download=download, command=["hrgraph", *sys.argv[1:]], reporter=_reporter(),
                        log_grad_norms=log_grad_norms, threads=threads, **loading.kwargs)
    except TrainingInterrupted as err:
        click.echo(f"interrupted: {err.message}", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 speaks
    acc = summary.get("test_acc1")
    result = f"test ({summary['test_split']}) top-1 {acc:.2%}" if acc is not None else "no test split"
    click.echo(f"{out}: {summary['epochs_done']} epochs, best val epoch {summary['best_epoch']}, {result}, "
               f"{summary['wall_seconds']:.0f} s")
