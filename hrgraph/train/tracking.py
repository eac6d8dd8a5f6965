"""Training logs where people look: TensorBoard scalars beside ``metrics.csv``.

``metrics.csv`` stays the source of truth (``hrgraph report`` reads it); a
tracker only mirrors each finished epoch's row, plus what a CSV row cannot
hold, into another tool.  ``train(..., log=["tensorboard"])`` (``hrgraph train
--log tensorboard``, a grid's ``log: [tensorboard]``) writes event files into
the run folder itself, so ``tensorboard --logdir runs/`` shows every run of a
grid side by side.  Scalars, with the epoch as step:

* ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``
* ``lr`` (at the epoch's end), ``images_per_s``
* ``gates/<from>-><to>``: each gated edge's current weight (``w`` or ``2*sigmoid(w)``)

TensorBoard is optional: ``pip install hrgraph[tensorboard]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import TrainingError

__all__ = ["TRACKERS", "Tracker", "TensorBoardTracker", "make_trackers"]

_MISSING = "--log tensorboard needs the tensorboard package: pip install 'hrgraph[tensorboard]'"


class Tracker:
    """Receives each finished epoch; :class:`TensorBoardTracker` is the one built in."""

    def log_epoch(self, row: Mapping[str, Any], model: nn.Module) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release files (called when the run ends, finished or not)."""


class TensorBoardTracker(Tracker):
    """Scalars of every epoch into TensorBoard event files in ``folder``.

    Raises
    ------
    TrainingError
        ``tensorboard`` is not installed (one line naming the extra).
    """

    def __init__(self, folder: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's wrapper imports the tensorboard package, which is optional
            raise TrainingError(_MISSING) from None
        # The writer (and its event file) is made at the first epoch: a run that
        # fails to start leaves no file in a folder that may not exist yet.
        self._make = lambda: SummaryWriter(log_dir=str(folder))
        self.writer: Any = None

    def log_epoch(self, row: Mapping[str, Any], model: nn.Module) -> None:
        if self.writer is None:
            self.writer = self._make()
        step = int(row["epoch"])
        names = {"train_loss": "train/loss", "train_acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc",
                 "lr": "lr", "images_per_s": "images_per_s"}
        for key, tag in names.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, float(row[key]), step)
        for edge, value in _gate_values(model).items():
            self.writer.add_scalar(f"gates/{edge}", value, step)
        self.writer.flush()  # a run killed between epochs keeps what it logged

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _gate_values(model: nn.Module) -> dict[str, float]:
    """``{"from->to": weight}`` of every gated edge of a compiled model (none for other models)."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    gates = getattr(model, "gates", None)
    plan = getattr(model, "plan", None)
    if not gates or plan is None:
        return {}
    names = {p.module_name: p.name for p in plan.projections.values()}
    return {names.get(key, key): float(gate.scale().detach().reshape(-1)[0]) for key, gate in gates.items()}


#: ``--log`` choices.
TRACKERS = {"tensorboard": TensorBoardTracker}


def check_trackers(names: Iterable[str]) -> None:
    """Refuse an unknown tracker or one whose package is missing, writing nothing (before a run starts).

    Raises
    ------
    TrainingError
        An unknown name, or a tracker whose package is missing.
    """
    make_trackers(names, Path("unused"))  # trackers make their files at the first epoch only


def make_trackers(names: Iterable[str], out: str | Path) -> list[Tracker]:
    """One tracker per name, writing into the run folder ``out``.

    Raises
    ------
    TrainingError
        An unknown name, or a tracker whose package is missing.
    """
    trackers = []
    for name in dict.fromkeys(names):  # once each, in order
        if name not in TRACKERS:
            raise TrainingError(f"unknown --log '{name}'; choose from {', '.join(TRACKERS)}")
        trackers.append(TRACKERS[name](out))
    return trackers
