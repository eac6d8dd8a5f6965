"""``hrgraph train``: train one spec into a run folder.

Registered by :mod:`hrgraph.cli.main`; torch is imported only when a command
runs, so ``hrgraph --help`` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from .common import SpecLoading, finite, handle_errors, spec_loading_options

__all__ = ["train_command"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


def _augment(value: str | None) -> list[str] | None:
    """``--augment`` as the recipe's list (``None``: keep the recipe's)."""
    from ..errors import RecipeError
    from ..train.defaults import parse_augment

    if value is None:
        return None
    try:
        return parse_augment(value)
    except RecipeError as err:
        raise click.BadParameter(err.message.removeprefix("augment: ")) from None


def _reporter():
    from ..train.progress import LineReporter, RichReporter

    # A bar on a terminal; plain lines in a log file or a job array's output.
    return RichReporter() if sys.stderr.isatty() else LineReporter(lambda line: click.echo(line, err=True))


@click.command(name="train")
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--recipe", type=click.Path(dir_okay=False, path_type=Path),
              help="Recipe YAML (default: follows the data: the paper's recipe for cifar10, cifar100, tiny-imagenet; "
                   "recipes/generic.yaml, with no augmentation, for any other data; with --resume, the run's own).")
@click.option("--data", help="Data set: cifar10, cifar100, tiny-imagenet, mnist, fashion-mnist, imagefolder:DIR, synthetic[:N] (docs/training.md says where each is read from).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the data set lives.")
@click.option("--augment", callback=lambda ctx, param, value: _augment(value), metavar="none|crop|flip|crop,flip",
              help="Override the recipe's augmentation: random crop (zero padding, crop_padding pixels) "
                   "and/or horizontal flip.")
@click.option("--download", is_flag=True, help="Fetch a missing data set through torchvision (needs the internet).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's epochs (with --resume: extend a run).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size (split across torchrun processes).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Override the optimizer's learning rate.")
@click.option("--seed", type=int, help="Override the recipe's seed (data split, order, augmentation, initial weights).")
@click.option("--width-mult", type=click.FloatRange(min=0, min_open=True), callback=finite,
              help="Scale every hidden width first (e.g. 0.25). Scale before `hrgraph match`, not after.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--amp", is_flag=True, help="Mixed precision (CUDA only).")
@click.option("--limit-train", type=click.IntRange(min=1), metavar="N", help="At most N training images per epoch, counted after the validation hold-out (smoke runs).")
@click.option("--limit-val", type=click.IntRange(min=1), metavar="N", help="At most N val and test images (smoke runs).")
@click.option("--out", "-o", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The run folder.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint, with its own spec, recipe and options.")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="Pin torch to N CPU threads (CPU runs are bit-identical only for the same N; recorded in config.yaml).")
@click.option("--log-grad-norms", is_flag=True, help="Write grad_norms.csv: per node and projection, per epoch (hrgraph analyze plots it).")
@click.option("--init-from", "init_from", metavar="SOURCE",
              help="Start from pretrained weights: a run folder, an hrgraph checkpoint or a state_dict file "
                   "(hrgraph or torchvision ResNet names); edges it lacks start silent. Report: init.json.")
@click.option("--freeze", type=click.Choice(["loaded"]), help="With --init-from: train only what is new (the added edges, a new head).")
@click.option("--log", "log", multiple=True, type=click.Choice(["tensorboard"]),
              help="Also log each epoch to TensorBoard (event files in --out; pip install 'hrgraph[tensorboard]').")
@spec_loading_options
@handle_errors
def train_command(spec: Path | None, recipe: Path | None, data: str | None, augment: list[str] | None,
                  data_dir: Path | None, download: bool,
                  epochs: int | None, batch_size: int | None, lr: float | None, seed: int | None,
                  width_mult: float | None, device: str, amp: bool, limit_train: int | None, limit_val: int | None,
                  out: Path, resume: bool, threads: int | None, log_grad_norms: bool,
                  loading: SpecLoading, init_from: str | None = None, freeze: str | None = None,
                  log: tuple[str, ...] = ()) -> None:
    """Train SPEC under a recipe into the run folder --out (new or empty).

    The folder gets config.yaml, metrics.csv, summary.json, curves.png and
    checkpoints/{last,best}.pt.  Ctrl-C (or SIGTERM) finishes the current step,
    saves, and exits 130 (143 for SIGTERM); while the data is still being read
    it stops at once.  `hrgraph train -o RUN --resume` continues exactly where
    it stopped, with the run's own spec, recipe and options (SPEC may be left
    out; --epochs extends a finished run).  A loss that turns NaN or infinite
    stops the run (exit 1) and marks it diverged.  For several processes or
    GPUs: torchrun --nproc_per_node N -m hrgraph train ...

    Without --recipe the recipe follows the data: the paper's (random crop +
    horizontal flip) for cifar10, cifar100 and tiny-imagenet, a generic one
    without augmentation for anything else (a flipped digit or letter may be
    another class).  The first lines of the log say which recipe,
    augmentation, optimizer and schedule the run uses.
    """
    from ..errors import TrainingInterrupted
    from ..train.loop import train

    if spec is None and not resume:
        raise click.UsageError("give the SPEC to train (only --resume may leave it out: the run's own spec)")

    flags = {"epochs": epochs, "batch_size": batch_size, "optimizer.lr": lr, "seed": seed, "data": data,
             "augment": augment}
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        summary = train(spec, recipe, out=out, overrides=overrides, resume=resume, device=device, amp=amp,
                        limit_train=limit_train, limit_val=limit_val, width_mult=width_mult, data_dir=data_dir,
                        download=download, command=["hrgraph", *sys.argv[1:]], reporter=_reporter(),
                        log_grad_norms=log_grad_norms, threads=threads, init_from=init_from, freeze=freeze, log=log,
                        **loading.kwargs)
    except TrainingInterrupted as err:
        click.echo(f"interrupted: {err.message}", err=True)
        raise SystemExit(EXIT_TERMINATED if err.signal == signal.SIGTERM else EXIT_INTERRUPTED) from None
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 speaks
    acc = summary.get("test_acc1")
    result = f"test ({summary['test_split']}) top-1 {acc:.2%}" if acc is not None else "no test split"
    click.echo(f"{out}: {summary['epochs_done']} epochs, best val epoch {summary['best_epoch']}, {result}, "
               f"{summary['wall_seconds']:.0f} s")
