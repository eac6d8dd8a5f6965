"""Open a trained run for analysis: its checkpoint, the model rebuilt from it, and the data it was trained on.

A run is read through :func:`hrgraph.train.checkpoint.read_checkpoint`
(``weights_only``: opening a checkpoint from elsewhere runs no code from it).
The model is compiled again from the resolved spec stored in the checkpoint
and given the stored weights; the data set comes from the stored recipe, with
its name and folder overridable (to analyse a model on data it was not
trained on, with the same number of classes).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..build.compiler import HrNet, compile_model
from ..build.compiler import load_checkpoint as load_model_checkpoint
from ..build.shapes import MAX_ACTIVATION
from ..errors import DataError, HrgraphError, TrainingError
from ..spec.models import Spec, load_spec
from ..train.checkpoint import read_checkpoint
from ..train.data import DataSplits, iterate_batches, load_data
from ..train.recipe import Recipe, load_recipe

__all__ = ["Run", "find_checkpoint", "open_run", "load_checkpoint", "refuse_diverged", "load_run_data", "split_batches"]

SPLITS = ("test", "val")


@dataclass
class Run:
    """A trained model ready to analyse.

    ``run_dir`` is the run folder (``None`` for a checkpoint outside one);
    ``payload`` the checkpoint as read (weights included).
    """

    checkpoint: Path
    run_dir: Path | None
    spec: Spec
    recipe: Recipe
    model: HrNet
    payload: dict[str, Any]


def find_checkpoint(path: str | Path, *, which: str | None = None) -> tuple[Path, Path | None]:
    """``(checkpoint, run_dir)`` for a run folder or a checkpoint file.

    A run folder gives ``checkpoints/<which>.pt``; without ``which``, its
    ``best.pt``, else ``last.pt``.  A checkpoint inside ``RUN/checkpoints/``
    belongs to ``RUN``; any other checkpoint file has no run folder.

    Raises
    ------
    TrainingError
        ``path`` does not exist, or is a folder without that checkpoint.
    ValueError
        ``which`` is neither ``"best"`` nor ``"last"``.

    Examples
    --------
    >>> find_checkpoint("no/such/run")
    Traceback (most recent call last):
    ...
    hrgraph.errors.TrainingError: no/such/run: no such run folder or checkpoint file
    """
    if which not in (None, "best", "last"):
        raise ValueError(f"which must be 'best' or 'last', not {which!r}")
    path = Path(path)
    if path.is_dir():
        names = (f"{which}.pt",) if which else ("best.pt", "last.pt")
        for name in names:
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate, path
        looked = " and ".join(f"checkpoints/{n}" for n in names)
        raise TrainingError(
            f"no checkpoint in this folder (looked for {looked}): "
            "give a run folder written by `hrgraph train`, or a checkpoint file",
            path=str(path),
        )
    if not path.is_file():
        raise TrainingError("no such run folder or checkpoint file", path=str(path))
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    return path, run_dir


def open_run(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    which: str | None = None,
    allow_imports: bool = False,
    allow_outside: bool = False,
    max_activation: int = MAX_ACTIVATION,
) -> Run:
    """Read the checkpoint of a run folder or file and rebuild its trained model (in eval mode).

    ``which`` picks a run folder's checkpoint (see :func:`find_checkpoint`);
    ``allow_imports`` and ``allow_outside`` are passed to :func:`hrgraph.load_spec`
    for the stored spec, ``max_activation`` to :func:`~hrgraph.build.compiler.compile_model`.

    Raises
    ------
    TrainingError
        No checkpoint, a file that is not an hrgraph run checkpoint, or
        weights that do not fit the stored spec.
    ShapeError
        A node output of the stored spec above ``max_activation`` elements.
    """
    checkpoint, run_dir = find_checkpoint(path, which=which)
    try:
        payload = read_checkpoint(checkpoint, map_location=device)
    except HrgraphError:
        raise
    except Exception as err:
        # torch.load's legacy reader fails on arbitrary bytes with whatever it meets first
        # (a KeyError for a text file): any of them means the same thing here.
        raise TrainingError(f"not a readable checkpoint ({type(err).__name__}: {err})".split("\n")[0],
                            path=str(checkpoint)) from err
    missing = [k for k in ("spec", "model", "recipe") if not isinstance(payload.get(k), dict)]
    if missing:
        raise TrainingError(f"not an hrgraph run checkpoint: it has no {', '.join(missing)}", path=str(checkpoint))
    try:
        spec = load_spec(payload["spec"], allow_imports=allow_imports, allow_outside=allow_outside)
        recipe = load_recipe(payload["recipe"])
    except HrgraphError as err:
        raise TrainingError(f"the checkpoint's spec or recipe is not valid: {err}", path=str(checkpoint)) from err
    model = compile_model(spec, max_activation=max_activation).to(device)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise TrainingError(
            f"the weights do not fit the checkpoint's spec ({first[1].strip() if len(first) > 1 else first[0]})",
            path=str(checkpoint),
        ) from err
    model.eval()
    return Run(checkpoint, run_dir, spec, recipe, model, payload)


def load_checkpoint(
    path: str | Path,
    *,
    which: str | None = None,
    map_location: Any = "cpu",
    allow_imports: bool = False,
    allow_outside: bool = False,
    max_activation: int = MAX_ACTIVATION,
) -> tuple[HrNet, dict[str, Any]]:
    """The model of a checkpoint, in eval mode, and the checkpoint's metadata: ``(model, payload)``.

    Takes what ``hrgraph compile -o`` writes and what ``hrgraph train``
    writes: a run's checkpoint file or its run folder (``checkpoints/best.pt``
    by default, ``which="last"`` for the last epoch's).  A run's model is
    rebuilt exactly as ``hrgraph analyze`` rebuilds it (:func:`open_run`), so
    both give the same logits; ``payload`` then holds the run's spec, recipe,
    epoch and metrics (``payload["model"]`` its weights).

    Parameters
    ----------
    path : path
        A checkpoint file or a run folder.
    which : {"best", "last"}, optional
        A run folder's checkpoint (default: best, else last).
    map_location : str or torch.device
        Where the weights go.
    allow_imports, allow_outside : bool
        Passed to :func:`hrgraph.load_spec` for the stored spec.
    max_activation : int
        Refuse a stored spec with a node output above this many elements per
        sample, as ``compile_model`` does.

    Raises
    ------
    HrgraphError
        Missing file, a file that is neither kind of checkpoint (a pickle that
        would build other objects is refused unopened), or weights that do not
        fit the stored spec.

    Examples
    --------
    >>> import hrgraph
    >>> hrgraph.load_checkpoint("no/such/run.pt")
    Traceback (most recent call last):
    ...
    hrgraph.errors.HrgraphError: no/such/run.pt: no such checkpoint file
    """
    checkpoint = find_checkpoint(path, which=which)[0] if Path(path).is_dir() else Path(path)
    try:
        with warnings.catch_warnings():  # a plain pickle makes torch warn about its protocol; the error says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = read_checkpoint(checkpoint, map_location=map_location)
    except TrainingError:
        payload = None  # not a run checkpoint: perhaps `hrgraph compile -o`'s (that reader says why not)
    if payload is None or not isinstance(payload.get("model"), dict) or "state_dict" in payload:
        model, payload = load_model_checkpoint(checkpoint, map_location=map_location, max_activation=max_activation,
                                               allow_imports=allow_imports, allow_outside=allow_outside)
        model.eval()
        return model, payload
    run = open_run(checkpoint, device=map_location, allow_imports=allow_imports, allow_outside=allow_outside,
                   max_activation=max_activation)
    return run.model, run.payload


def refuse_diverged(run: Run) -> None:
    """Raise if the run diverged: its ``summary.json`` says ``"diverged": true``, or a stored tensor is not finite.

    Whatever is measured on such weights (or on the best checkpoint of a run
    that went on to diverge) describes no trained network worth reading.

    Raises
    ------
    TrainingError
        Naming the run folder (or the checkpoint) and what gave it away.
    """
    where = str(run.run_dir if run.run_dir is not None else run.checkpoint)
    if run.run_dir is not None and (run.run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run.run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None  # an unreadable summary says nothing either way; the weights are checked below
        if isinstance(summary, dict) and summary.get("diverged") is True:
            raise TrainingError(
                'this run diverged (summary.json says "diverged": true): there is no trained network to analyse',
                path=where,
            )
    bad = [k for k, v in run.payload["model"].items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise TrainingError(
            f"the checkpoint {run.checkpoint.name} holds non-finite values in {', '.join(bad[:3])}{more}: "
            "the run diverged; there is no trained network to analyse",
            path=where,
        )


def load_run_data(run: Run, *, data: str | None = None, data_dir: str | None = None) -> DataSplits:
    """The run's data set (the recipe's, or ``data``/``data_dir``), brought to the spec's input.

    Raises
    ------
    DataError
        From :func:`hrgraph.train.data.load_data`: data missing, or a class
        count other than the model's outputs.
    """
    plan = run.model.plan
    recipe = run.recipe
    return load_data(
        data or recipe.data, root=data_dir if data_dir is not None else (None if data else recipe.data_dir),
        input_shape=plan.input_shape, val_split=recipe.val_split, seed=recipe.seed, fit=recipe.fit,
        train_subset=recipe.train_subset, num_classes=plan.output_shape[0],
    )


def split_batches(
    data: DataSplits, split: str, *, batch_size: int, device: str | torch.device = "cpu", limit: int | None = None,
    normalize: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``split`` in order, never augmented, prepared as training prepared them.

    ``normalize`` is the run's recipe's: with it, images are normalised with the
    training split's statistics, as in training; without it they are fed as
    ``x / 255``, as training fed them (a model must see what it was trained on).

    ``split`` is ``"test"`` (the data set's test split, which for Tiny-ImageNet
    is its val) or ``"val"`` (the held-out or own validation split).

    Raises
    ------
    DataError
        The data set has no such split.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}': use test or val")
    part = data.test if split == "test" else data.val
    if part is None:
        other = "val" if split == "test" else "test"
        raise DataError(f"{data.name} has no {split} split here; try --split {other}")
    if len(part) == 0 or limit == 0:
        raise DataError(f"the {split} split of {data.name} is empty")
    mean, std = (data.mean, data.std) if normalize else (None, None)
    return iterate_batches(part, batch_size, device=device, shuffle=False, seed=0, epoch=0, mean=mean,
                           std=std, limit=limit)
