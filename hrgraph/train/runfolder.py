"""The files of a run folder and the rules that keep them safe: guards, the lock, strict JSON.

:mod:`hrgraph.train.loop` trains; this module owns what a run folder holds
besides checkpoints (``config.yaml``, ``metrics.csv``, ``summary.json``,
``curves.png``), the guards that keep a run from overwriting what is not its
own, and the per-run lock that keeps two processes from training one run.
No torch here: the experiment grid reads run folders through it too.

The lock is an OS advisory lock (``fcntl.flock``) on ``RUN/.lock``: the kernel
drops it when the process ends, however it ends, so a killed run never leaves a
stale lock behind, and the file itself means nothing once nobody holds it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import RunLockedError, TrainingError
from ..files import write_atomic

__all__ = [
    "METRICS_COLUMNS",
    "LOCK_NAME",
    "strict_json",
    "write_summary",
    "read_summary",
    "write_metrics",
    "write_curves",
    "write_config",
    "read_config",
    "run_lock",
    "is_held",
    "check_new_folder",
    "check_resumable",
]

METRICS_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]
#: The lock file of a run folder (see the module docstring); a folder holding only it is empty.
LOCK_NAME = ".lock"


# -- files -----------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def strict_json(data: Any) -> str:
    """``data`` as JSON that every parser reads: non-finite numbers become ``null``, never ``NaN``.

    Examples
    --------
    >>> strict_json({"acc": float("nan"), "n": [1.5, float("inf")]})
    '{\\n  "acc": null,\\n  "n": [\\n    1.5,\\n    null\\n  ]\\n}\\n'
    """
    return json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"


def write_summary(out: Path, summary: Mapping[str, Any]) -> None:
    write_atomic(out / "summary.json", strict_json(summary))


def read_summary(out: Path) -> dict[str, Any] | None:
    """``summary.json`` of ``out`` as a dict, or ``None`` when it is missing or not a JSON object."""
    try:
        data = json.loads((Path(out) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRICS_COLUMNS})
    write_atomic(path, buf.getvalue())


def write_curves(rows: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Loss and accuracy against epoch, train and val, as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    for split, style in (("train", "-"), ("val", "--")):
        points = [(e, r[f"{split}_loss"], r[f"{split}_acc"]) for e, r in zip(epochs, rows) if r.get(f"{split}_loss") is not None]
        if points:
            xs, losses, accs = zip(*points)
            ax_loss.plot(xs, losses, style, marker=".", label=split)
            ax_acc.plot(xs, [100 * a for a in accs], style, marker=".", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())


def _versions() -> dict[str, str]:
    import torch
    import torchvision

    from .._version import __version__

    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__), "hrgraph": __version__}


def _plain(value: Any) -> Any:
    """``value`` as plain dicts and lists (a grid's overrides come as position-keeping YAML types)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def read_config(out: Path) -> dict[str, Any]:
    """``config.yaml`` of ``out`` as a dict (``{}`` when there is none).

    Raises
    ------
    TrainingError
        It exists but is not a YAML mapping.
    """
    path = Path(out) / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise TrainingError(f"cannot read the run's config: {str(err).splitlines()[0]}", path=str(path)) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TrainingError(f"the run's config holds a {type(config).__name__}, not a mapping", path=str(path))
    return config


def write_config(out: Path, *, spec: Any, recipe: Any, overrides: Mapping[str, Any], tags: Mapping[str, str],
                 command: list[str] | None, machine: Mapping[str, Any], device: str, world_size: int,
                 data_notes: list[str], options: Mapping[str, Any], previous: bool) -> None:
    """Write ``config.yaml``: what the run trains and how, with every command line that worked on it.

    ``options`` are the run's own settings outside the recipe (``width_mult``,
    ``limits``, ``threads``, ``data_dir``, ``log_grad_norms``): ``--resume``
    reads them back, so a resumed run needs none of them on its command line.
    """
    commands: list[list[str]] = []
    if previous:
        with contextlib.suppress(Exception):
            commands = list(read_config(out).get("commands", []))
    commands.append(list(command if command is not None else sys.argv))
    limits = options.get("limits") or {}
    config = {
        "spec": spec.to_dict(minimal=False), "spec_fingerprint": spec.fingerprint,
        "recipe": recipe.to_dict(), "recipe_fingerprint": recipe.fingerprint,
        "overrides": _plain(overrides), "tags": _plain(tags), "commands": commands, "versions": _versions(),
        "machine": dict(machine), "device": device, "world_size": world_size, "data_notes": list(data_notes),
        # --limit-train/--limit-val: a smoke run's accuracies are not comparable with full runs; the report marks them.
        "limits": {k: v for k, v in limits.items() if v is not None},
        "options": {k: v for k, v in options.items() if k != "limits"},
    }
    write_atomic(out / "config.yaml", yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100))


# -- guards ------------------------------------------------------------------------


def _contents(out: Path) -> list[str]:
    """What ``out`` holds (sorted names, the lock file left out); ``[]`` for a missing folder."""
    try:
        return sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise TrainingError("is a file, not a run folder; choose another --out", path=str(out)) from None


def _is_run(out: Path) -> bool:
    return (out / "config.yaml").is_file() or (out / "checkpoints" / "last.pt").is_file()


def check_new_folder(out: Path) -> None:
    """Refuse to start a run in ``out`` unless it is missing or empty.

    Raises
    ------
    TrainingError
        ``out`` holds a run (continue it with ``--resume``), or holds files
        that are not a run's (never overwritten).
    """
    contents = _contents(out)
    if not contents:
        return
    if _is_run(out):
        raise TrainingError("this folder already holds a run; continue it with --resume, or choose another --out",
                            path=str(out))
    shown = ", ".join(contents[:5]) + (f" and {len(contents) - 5} more" if len(contents) > 5 else "")
    raise TrainingError(f"the folder is not empty and is not a run folder (it holds {shown}); "
                        "choose an empty or new --out", path=str(out))


def check_resumable(out: Path) -> bool:
    """Whether ``--resume`` on ``out`` continues a checkpoint (True) or starts the run (False).

    A folder that is missing, empty, or holds only ``config.yaml`` (a run
    stopped before its first checkpoint) starts the run.

    Raises
    ------
    TrainingError
        ``checkpoints/last.pt`` is missing but the folder holds other results
        (a best checkpoint, metrics, a summary, or files that are not a run's):
        starting over would overwrite them.
    """
    if (out / "checkpoints" / "last.pt").is_file():
        return True
    contents = [name for name in _contents(out) if name != "config.yaml"]
    if not contents:
        return False
    held = contents
    if "checkpoints" in contents:
        held = [n for n in contents if n != "checkpoints"] + [f"checkpoints/{p.name}" for p in (out / "checkpoints").iterdir()]
    if not held:
        return False  # an empty checkpoints folder: stopped before its first checkpoint
    raise TrainingError(
        f"cannot resume: checkpoints/last.pt is missing, and the folder holds {', '.join(sorted(held))}; "
        "starting over would overwrite them: move them away, or train into another --out",
        path=str(out),
    )


# -- the lock ----------------------------------------------------------------------


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold the lock of the run folder ``out`` (created if missing) for the ``with`` block.

    Raises
    ------
    RunLockedError
        Another process holds it (its pid is in the message when known).
    """
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise RunLockedError(f"{who} is training this run now (it holds {LOCK_NAME}); leaving it alone",
                                 path=str(out)) from None
        # The pid is for the message above only; the lock is the kernel's.
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_held(out: Path) -> bool:
    """Whether another process holds the lock of the run folder ``out`` now (creates nothing)."""
    import fcntl

    try:
        fd = os.open(Path(out) / LOCK_NAME, os.O_RDONLY)
    except OSError:  # no folder or no lock file: nobody has trained here yet
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
