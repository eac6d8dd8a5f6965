"""Reading run folders for a report: one rule for every file that is broken, diverged or unfinished.

A run folder (see :mod:`hrgraph.train.loop`) is read into a :class:`RunRecord`
whose ``state`` is one of

- ``finished``: summary.json says so, its fields have their types, metrics.csv
  parses and agrees with it, and every loss and accuracy is finite: the only
  runs a report averages;
- ``unfinished``: still training, or stopped (no summary yet, or ``finished`` false);
- ``diverged``: summary.json says ``diverged``, or a test accuracy or loss, or
  a loss in metrics.csv, is NaN or infinite;
- ``broken``: a file that cannot be read as the loop writes it (not JSON, a
  field of the wrong type, a metrics.csv that does not parse, a finished run
  without a test accuracy); ``problem`` says what.

A broken run never stops the report: it is listed with its reason, and filed
under its model where the folder still tells which model that is.  No torch here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HrgraphError
from .experiment import MANIFEST_SUFFIX

__all__ = ["RunRecord", "read_run", "read_runs", "STATES"]

STATES = ("finished", "unfinished", "diverged", "broken")


@dataclass(frozen=True)
class RunRecord:
    """What a report needs of one run folder (``summary.json``, ``metrics.csv``, ``config.yaml``)."""

    path: Path
    model: str
    data: str
    seed: int | None
    family: str = ""
    version: str = ""
    baseline: str = ""
    grid: str = ""
    params: int | None = None
    state: str = "unfinished"
    problem: str = ""
    epochs: int | None = None
    epochs_done: int = 0
    test_split: str = "test"
    test_acc1: float | None = None
    test_acc5: float | None = None
    best_val_acc: float | None = None
    val_curve: tuple[float, ...] = ()
    fingerprint: str = ""
    threads: int | None = None
    cpu: str = ""
    gpu: str = ""
    limits: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    @property
    def machine(self) -> str:
        """``2 threads, AMD EPYC 7B13`` (or ``not recorded`` for runs older than the record)."""
        if self.threads is None and not self.cpu:
            return "not recorded"
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads is not None else "threads ?"
        return ", ".join([threads, self.cpu or "cpu ?"] + ([f"GPU {self.gpu}"] if self.gpu else []))


class _Broken(Exception):
    """A run file that is not as the training loop writes it; the message is the reason shown."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# summary.json: field -> (check, what it must be).  None is allowed for every field (not written yet / no test set).
_SUMMARY_FIELDS: dict[str, tuple[Any, str]] = {
    "tags": (lambda v: isinstance(v, dict), "a mapping"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "params": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a count"),
    "epochs": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a count"),
    "epochs_done": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a count"),
    "finished": (lambda v: isinstance(v, bool), "true or false"),
    "diverged": (lambda v: isinstance(v, bool), "true or false"),
    "test_acc1": (_number, "a number"),
    "test_acc5": (_number, "a number"),
    "best_val_acc": (_number, "a number"),
    "test_loss": (_number, "a number"),
    "data": (lambda v: isinstance(v, str), "a string"),
    "test_split": (lambda v: isinstance(v, str), "a string"),
}


def _check_summary(summary: Any) -> dict[str, Any]:
    if not isinstance(summary, dict):
        raise _Broken(f"summary.json is a JSON {type(summary).__name__}, not an object")
    for key, (ok, what) in _SUMMARY_FIELDS.items():
        value = summary.get(key)
        if value is not None and not ok(value):
            raise _Broken(f"summary.json: {key} is {json.dumps(value)[:40]}, not {what}")
    for key in ("test_acc1", "test_acc5", "best_val_acc"):
        value = summary.get(key)
        if value is not None and math.isfinite(value) and not 0 <= value <= 1:
            raise _Broken(f"summary.json: {key} is {value}, not an accuracy in [0, 1]")
    return summary


def _read_metrics(path: Path) -> tuple[tuple[float, ...], int, str]:
    """The validation curve, the number of epochs and a divergence note ('' if none) of metrics.csv."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return (), 0, ""
    except (OSError, UnicodeDecodeError) as err:
        raise _Broken(f"metrics.csv cannot be read: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"epoch", "val_acc"} <= set(reader.fieldnames):
        raise _Broken("metrics.csv has no header with epoch and val_acc columns")
    curve: list[float] = []
    diverged = ""
    epochs = 0
    for line, row in enumerate(reader, start=2):
        if None in row or None in row.values():
            raise _Broken(f"metrics.csv line {line}: {len(row) - (None in row)} columns, not {len(reader.fieldnames)}")
        try:
            epoch = int(row["epoch"])
            values = {k: float(v) for k, v in row.items() if k != "epoch" and v not in ("", None)}
        except ValueError as err:
            raise _Broken(f"metrics.csv line {line}: {err}") from None
        if epoch != epochs + 1:
            raise _Broken(f"metrics.csv line {line}: epoch {epoch} after epoch {epochs}")
        epochs = epoch
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad and not diverged:
            diverged = f"{', '.join(bad)} not finite at epoch {epoch} (metrics.csv)"
        acc = values.get("val_acc")
        if acc is not None and math.isfinite(acc):
            if not 0 <= acc <= 1:
                raise _Broken(f"metrics.csv line {line}: val_acc {acc} is not an accuracy in [0, 1]")
            if len(curve) == epoch - 1:  # a curve is the unbroken run of epochs with a validation accuracy
                curve.append(acc)
    return tuple(curve), epochs, diverged


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise _Broken(f"config.yaml cannot be read: {str(err).splitlines()[0]}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise _Broken(f"config.yaml holds a {type(config).__name__}, not a mapping")
    return config


def _limits(config: dict[str, Any]) -> dict[str, int]:
    """``{"train": N, "val": M}`` of a run made with --limit-train/--limit-val (config's ``limits``, else its command lines)."""
    recorded = config.get("limits")
    if isinstance(recorded, dict):
        return {k: v for k, v in recorded.items() if isinstance(v, int) and not isinstance(v, bool)}
    limits: dict[str, int] = {}
    for command in config.get("commands") or []:
        if not isinstance(command, list):
            continue
        words = [str(w) for w in command]
        for i, word in enumerate(words):
            for which in ("train", "val"):
                flag = f"--limit-{which}"
                value = words[i + 1] if word == flag and i + 1 < len(words) else word[len(flag) + 1:] if word.startswith(flag + "=") else None
                if value is not None and value.isdigit():
                    limits[which] = int(value)
    return limits


def _identity(folder: Path, summary: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Model, data set, seed and tags: from summary.json, else config.yaml, else the folder's name."""
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    tags = summary.get("tags") if isinstance(summary.get("tags"), dict) else None
    if tags is None:
        tags = config.get("tags") if isinstance(config.get("tags"), dict) else {}
    seed = summary.get("seed") if "seed" in summary else recipe.get("seed")
    data = summary.get("data") if isinstance(summary.get("data"), str) else recipe.get("data")
    model = tags.get("model") or summary.get("spec_name") or summary.get("name") or folder.name
    return {
        "model": str(model), "data": str(data or ""), "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "family": str(tags.get("family") or ""), "version": str(tags.get("version") or ""),
        "baseline": str(tags.get("baseline") or ""), "grid": str(tags.get("grid") or ""),
    }


def _machine(config: dict[str, Any]) -> dict[str, Any]:
    machine = config.get("machine") if isinstance(config.get("machine"), dict) else {}
    threads = machine.get("threads")
    return {
        "threads": threads if isinstance(threads, int) and not isinstance(threads, bool) else None,
        "cpu": str(machine.get("cpu") or ""), "gpu": str(machine.get("gpu") or ""),
    }


def _diverged_note(summary: dict[str, Any]) -> str:
    """Why a summary is diverged ('' if it is not): the flag (with where, if said), or a non-finite test value."""
    if summary.get("diverged") is True:
        where = [f"{k.removeprefix('diverged_')} {summary[k]}" for k in sorted(summary)
                 if k.startswith("diverged_") and isinstance(summary[k], (int, float, str))]
        return "diverged" + (f" at {', '.join(where)}" if where else "") + " (summary.json)"
    bad = [k for k in ("test_acc1", "test_acc5", "test_loss", "best_val_acc") if _number(summary.get(k)) and not math.isfinite(summary[k])]
    return f"{', '.join(bad)} not finite (summary.json)" if bad else ""


def read_run(folder: str | Path) -> RunRecord | None:
    """The run in ``folder``, whatever state its files are in; ``None`` if the folder holds no run at all."""
    folder = Path(folder)
    has_summary = (folder / "summary.json").is_file()
    if not (has_summary or (folder / "checkpoints").is_dir() or (folder / "config.yaml").is_file()):
        return None
    summary: dict[str, Any] = {}
    config: dict[str, Any] = {}
    problems: list[str] = []
    try:
        config = _read_config(folder / "config.yaml")
    except _Broken as err:
        problems.append(str(err))
    if has_summary:
        raw: Any = None
        try:
            raw = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
            summary = _check_summary(raw)
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"summary.json cannot be read: {err}")
        except ValueError as err:  # json.JSONDecodeError
            problems.append(f"summary.json is not valid JSON: {err}")
        except _Broken as err:
            problems.append(str(err))
            summary = raw if isinstance(raw, dict) else {}  # still tells which model the broken run belongs to
    curve: tuple[float, ...] = ()
    rows, metrics_diverged = 0, ""
    try:
        curve, rows, metrics_diverged = _read_metrics(folder / "metrics.csv")
    except _Broken as err:
        problems.append(str(err))
    identity = _identity(folder, summary, config)
    record: dict[str, Any] = dict(identity, path=folder, fingerprint=str(config.get("spec_fingerprint") or ""),
                                  limits=_limits(config), **_machine(config), val_curve=curve)
    if problems:
        return RunRecord(state="broken", problem="; ".join(problems), **record)
    finished = summary.get("finished") is True
    diverged = _diverged_note(summary) or metrics_diverged
    if finished and not diverged:
        if summary.get("test_acc1") is None:
            return RunRecord(state="broken", problem="summary.json: finished but test_acc1 is null", **record)
        if (folder / "metrics.csv").is_file() and rows != summary.get("epochs_done"):
            problem = f"metrics.csv has {rows} epochs, summary.json says epochs_done {summary.get('epochs_done')}"
            return RunRecord(state="broken", problem=problem, **record)
    state = "diverged" if diverged else "finished" if finished else "unfinished"

    def accuracy(key: str) -> float | None:
        value = summary.get(key)
        return float(value) if _number(value) and math.isfinite(value) else None

    epochs = summary.get("epochs")
    if epochs is None:
        recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
        epochs = recipe.get("epochs") if isinstance(recipe.get("epochs"), int) else None
    return RunRecord(
        state=state, problem=diverged, params=summary.get("params"), epochs=epochs,
        epochs_done=summary.get("epochs_done") or rows, test_split=summary.get("test_split") or "test",
        test_acc1=accuracy("test_acc1"), test_acc5=accuracy("test_acc5"), best_val_acc=accuracy("best_val_acc"),
        **record,
    )


def read_runs(runs_dir: str | Path) -> tuple[list[RunRecord], list[dict[str, Any]]]:
    """The runs in ``runs_dir`` (one per sub-folder) and the runs the grids there expect.

    Returns
    -------
    (list of RunRecord, list of dict)
        The runs found, sorted by folder name, broken ones included (with
        their ``problem``); and the entries of every ``*.grid.json`` manifest
        an experiment wrote (``dir``, ``data``, ``seed``, ``tags``).

    Raises
    ------
    HrgraphError
        ``runs_dir`` is not a folder, or a grid manifest is not valid: it
        describes the whole grid, so no report can say what is missing without it.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise HrgraphError("no such folder of runs", path=str(runs_dir))
    runs = [r for r in (read_run(p) for p in sorted(runs_dir.iterdir()) if p.is_dir()) if r is not None]
    expected: list[dict[str, Any]] = []
    for manifest in sorted(runs_dir.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            entries = json.loads(manifest.read_text(encoding="utf-8"))["runs"]
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise TypeError("'runs' is not a list of objects")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise HrgraphError(f"cannot read the grid manifest: {err}", path=str(manifest)) from None
        expected += entries
    return runs, expected
