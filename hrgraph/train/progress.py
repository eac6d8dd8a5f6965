"""How a run reports its progress: log lines, or a rich progress bar on a terminal.

The training loop only calls a :class:`Reporter`; it never prints.  The
library default, :class:`LogReporter`, writes one ``logging`` line per epoch
(logger ``hrgraph.train``).  The CLI passes :class:`RichReporter` when its
output is a terminal (a bar per epoch with images/s, loss and ETA) and
:class:`LineReporter` otherwise (plain lines, for log files and job arrays).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Reporter", "LogReporter", "LineReporter", "RichReporter", "format_row"]

log = logging.getLogger("hrgraph.train")


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One line of an epoch's metrics.

    Examples
    --------
    >>> format_row({"epoch": 3, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.75,
    ...             "lr": 0.01, "seconds": 12.0, "images_per_s": 850.0}, 10)
    'epoch 3/10  train loss 0.5000 acc 80.00%  val loss 0.6000 acc 75.00%  lr 0.01  12.0 s  850 img/s'
    """
    parts = [f"epoch {row['epoch']}/{epochs}", f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%}"]
    if row.get("val_loss") not in (None, ""):
        parts.append(f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.2%}")
    parts += [f"lr {row['lr']:.3g}", f"{row['seconds']:.1f} s", f"{row['images_per_s']:.0f} img/s"]
    return "  ".join(parts)


class Reporter:
    """Receives a run's events; every method does nothing by default."""

    def message(self, text: str) -> None:
        """A line worth telling the user (data notes, resume hints)."""

    def start_epoch(self, epoch: int, epochs: int, steps: int, start_step: int) -> None:
        """Epoch ``epoch`` (1-based) starts, with ``steps`` steps of which ``start_step`` are already done."""

    def step(self, images: int, loss: Callable[[], float]) -> None:
        """One optimizer step over ``images`` images; ``loss()`` gives the running mean loss (costs a sync)."""

    def end_epoch(self, row: dict[str, Any], epochs: int) -> None:
        """The epoch's metrics row (see ``metrics.csv``)."""

    def close(self) -> None:
        """The run ended (finished, failed or interrupted)."""


class LogReporter(Reporter):
    """Log lines through :mod:`logging` (the library default)."""

    def message(self, text: str) -> None:
        log.info(text)

    def end_epoch(self, row: dict[str, Any], epochs: int) -> None:
        log.info(format_row(row, epochs))


class LineReporter(Reporter):
    """Plain lines to a writer (``click.echo``), for output that is not a terminal."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def message(self, text: str) -> None:
        self.write(text)

    def end_epoch(self, row: dict[str, Any], epochs: int) -> None:
        self.write(format_row(row, epochs))


class RichReporter(Reporter):
    """A rich progress bar per epoch: images/s, running loss, ETA; a line per finished epoch."""

    # Reading the loss forces a device sync: do it a few times a second, not every step.
    REFRESH_SECONDS = 0.5

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6.0f} img/s  loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task: Any = None
        self._started = False

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def start_epoch(self, epoch: int, epochs: int, steps: int, start_step: int) -> None:
        if not self._started:
            self.progress.start()
            self._started = True
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"epoch {epoch}/{epochs}", total=steps, completed=start_step, rate=0.0, loss=float("nan"))
        self._t0, self._images, self._last = time.perf_counter(), 0, 0.0

    def step(self, images: int, loss: Callable[[], float]) -> None:
        self._images += images
        now = time.perf_counter()
        fields: dict[str, Any] = {}
        if now - self._last >= self.REFRESH_SECONDS:
            fields = {"rate": self._images / max(now - self._t0, 1e-9), "loss": loss()}
            self._last = now
        self.progress.update(self.task, advance=1, **fields)

    def end_epoch(self, row: dict[str, Any], epochs: int) -> None:
        self.console.print(format_row(row, epochs), highlight=False)

    def close(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False
