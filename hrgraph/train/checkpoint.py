"""Training checkpoints: the whole state of a run, written atomically, read without unpickling code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts
(the resolved spec and recipe as data, never as Python objects), so that
:func:`read_checkpoint` can use ``torch.load(weights_only=True)``: a file
downloaded from elsewhere cannot run code when it is opened.  It is written to
a temporary file beside the target and renamed over it (hrgraph/files.py), so a
crash or a full disk while writing leaves the previous checkpoint intact.

Every random number generator is saved too (Python, NumPy when installed,
torch on the CPU and on CUDA).  The data order and augmentation need no state:
they are drawn from generators seeded by (seed, epoch, step) (see
:func:`hrgraph.train.data.iterate_batches`).
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import torch

from ..errors import OutputError, TrainingError
from ..files import atomic_open

__all__ = ["FORMAT", "write_checkpoint", "read_checkpoint", "rng_state", "set_rng_state"]

FORMAT = "hrgraph-run-1"


def rng_state() -> dict[str, Any]:
    """The state of every global random number generator, as plain data and tensors."""
    version, state, gauss = random.getstate()
    out: dict[str, Any] = {"python": [version, list(state), gauss], "torch": torch.get_rng_state()}
    try:
        import numpy as np
    except ImportError:  # numpy is optional for torch
        pass
    else:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        out["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached)]
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (generators it lacks are left alone)."""
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:
            pass
        else:
            kind, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format tag) to ``path`` atomically.

    Raises
    ------
    TrainingError
        The file cannot be written (for example the disk is full); the
        previous file at ``path``, if any, is left as it was.
    """
    path = Path(path)
    try:
        with atomic_open(path) as fh:
            torch.save({"format": FORMAT, **payload}, fh)
    except (OSError, OutputError) as err:
        # atomic_open reports a failed write as an OutputError caused by the OSError.
        cause = err.__cause__ if isinstance(err, OutputError) and isinstance(err.__cause__, OSError) else err
        reason = getattr(cause, "strerror", None) or cause
        raise TrainingError(f"cannot write checkpoint: {reason}; the previous one is kept", path=str(path)) from err


def read_checkpoint(path: str | Path, *, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`write_checkpoint` without running any code from it.

    Raises
    ------
    TrainingError
        The file is missing, is not a torch file, holds anything but tensors
        and plain data (a pickle that would run code is refused unopened), or
        is not an hrgraph run checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError("no such checkpoint file", path=str(path))
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses any global it does not know: this is where a
        # malicious pickle ends, before anything of it runs.
        raise TrainingError(
            "not an hrgraph checkpoint: it holds Python objects other than tensors and plain data "
            "(refused without running them)",
            path=str(path),
        ) from err
    except Exception as err:  # torch.load on a foreign file raises almost anything (KeyError on plain text)
        raise TrainingError(f"not a readable checkpoint ({type(err).__name__}: {err})".split("\n")[0], path=str(path)) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainingError("not an hrgraph run checkpoint (no 'format: hrgraph-run-1' in it)", path=str(path))
    return payload
