"""``--init-from`` and ``--freeze``: start a run from pretrained weights (see :mod:`hrgraph.io.weights`).

The loop calls :func:`warm_start` right after compiling the model and before
building the optimizer (which then sees only the parameters left trainable).
On resume it runs again and the run's own checkpoint is loaded over it, so the
frozen set is the same in every session of a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import TrainingError
from ..files import write_atomic
from ..io.weights import LoadReport, freeze_loaded, load_weights

__all__ = ["FREEZE_CHOICES", "warm_start", "write_init_report"]

#: ``loaded``: train only what the source did not provide (the new edges, a new head).
FREEZE_CHOICES = ("loaded",)


def warm_start(model: nn.Module, source: Any, *, freeze: str | None = None) -> LoadReport:
    """Load ``source`` into ``model`` (new edges silent); with ``freeze="loaded"`` freeze what was loaded.

    Raises
    ------
    TrainingError
        An unknown ``freeze``, or ``freeze`` with nothing loaded to freeze.
    HrgraphError
        From :func:`hrgraph.io.weights.load_weights` (unreadable source, shapes).
    """
    if freeze is not None and freeze not in FREEZE_CHOICES:
        raise TrainingError(f"unknown --freeze '{freeze}'; choose from {', '.join(FREEZE_CHOICES)}")
    report = load_weights(model, source)
    if freeze == "loaded":
        if freeze_loaded(model, report) == 0:
            raise TrainingError("--freeze loaded: nothing was loaded from the source, so nothing would train differently")
        if not any(p.requires_grad for p in model.parameters()):
            raise TrainingError("--freeze loaded: the source provided every parameter, so nothing is left to train")
    return report


def write_init_report(out: Path, report: LoadReport, freeze: str | None) -> None:
    """``init.json`` in the run folder: what was loaded, what is new, what was unused, what is frozen."""
    payload = {**report.to_dict(), "freeze": freeze}
    write_atomic(out / "init.json", json.dumps(payload, indent=2) + "\n")
