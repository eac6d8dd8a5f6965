"""Reusing a finished run of another grid that trained exactly the same thing (``experiment --reuse-from``).

Two grids often share runs: the paper's Table 2 trains ResNet-18, its Adjusted
version and HiResNet-18 again, with the recipe, data and seeds of Table 1.  On
the same kind of machine with the same threads and library versions such a run
gives the same digits (docs/results.md, Reproducing), so training it twice
only costs hours.  :func:`reusable` says whether a run folder of another grid is
that run; :func:`reuse_run` copies it in, with this grid's tags, and writes
``reused.json`` saying where it came from and what was compared.

What must match: the network (the spec with its ``name`` and ``description``
left out, which name the grid it was derived for), the resolved recipe
(fingerprint) and the run's overrides (data, seed), the image limits, the CPU
thread count, the processor model and the torch and torchvision versions; and
the source must have finished all its epochs without diverging.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import HrgraphError
from ..files import write_atomic
from .runfolder import LOCK_NAME, read_config, read_summary, strict_json

__all__ = ["reusable", "reuse_first", "reuse_run", "this_machine", "REUSED_NAME"]

log = logging.getLogger(__name__)

#: The record a reused run folder gets: the source folder, its tags, and what was compared.
REUSED_NAME = "reused.json"


def _network(spec: Mapping[str, Any]) -> dict[str, Any]:
    # name and description say which grid a derived spec was made for; the network is the rest.
    return {k: v for k, v in spec.items() if k not in ("name", "description")}


def this_machine() -> dict[str, str]:
    """``cpu``, ``torch`` and ``torchvision`` of this machine, as a run's config.yaml records them."""
    from .machine import cpu_model
    from .runfolder import _versions

    versions = _versions()
    return {"cpu": cpu_model(), "torch": versions["torch"], "torchvision": versions["torchvision"]}


def reusable(source: Path, *, spec: Any, recipe: Any, overrides: Mapping[str, Any], epochs: int,
             threads: int | None, limits: Mapping[str, int | None], here: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the run folder ``source`` trained exactly what this run would; ``(ok, reason)``.

    Parameters
    ----------
    source : Path
        A run folder of another grid (same run name).
    spec, recipe : Spec, Recipe
        This run's derived spec and resolved recipe.
    overrides : mapping
        This run's overrides (data, seed).
    epochs : int
        The epochs this run trains.
    threads : int or None
        The CPU threads this run is pinned to.
    limits : mapping
        ``{"train": N or None, "val": M or None}``.
    here : mapping
        This machine: ``cpu``, ``torch``, ``torchvision``.

    Returns
    -------
    (bool, str)
        ``True`` and the checks that passed, or ``False`` and the first difference.
    """
    summary = read_summary(source)
    if not summary or not summary.get("finished") or summary.get("diverged"):
        return False, "not a finished run"
    if int(summary.get("epochs_done") or 0) != epochs:
        return False, f"trained {summary.get('epochs_done')} epochs, not {epochs}"
    try:
        config = read_config(source)
    except HrgraphError as err:  # an unreadable source is simply not reused
        return False, f"config.yaml unreadable ({err.message})"
    machine = config.get("machine") or {}
    versions = config.get("versions") or {}
    recorded_limits = {k: v for k, v in (config.get("limits") or {}).items() if v is not None}
    wanted_limits = {k: v for k, v in limits.items() if v is not None}
    if threads is None:
        return False, "no thread count pinned (set the grid's threads key): the digits depend on it"
    # (what, the source's, this run's): the network and recipe are compared whole, shown by name only.
    checks = [
        ("network", _network(config.get("spec") or {}) == _network(spec.to_dict(minimal=False)), None),
        ("recipe", config.get("recipe_fingerprint") == recipe.fingerprint, None),
        ("data and seed", dict(config.get("overrides") or {}), dict(overrides)),
        ("image limits", recorded_limits, wanted_limits),
        ("threads", machine.get("threads"), threads),
        ("cpu", machine.get("cpu"), here.get("cpu")),
        ("torch", versions.get("torch"), here.get("torch")),
        ("torchvision", versions.get("torchvision"), here.get("torchvision")),
    ]
    for name, recorded, wanted in checks:
        same = recorded if wanted is None and isinstance(recorded, bool) else recorded == wanted
        if not same:
            return False, f"{name} differs" if wanted is None else f"{name} differs ({recorded} there, {wanted} here)"
    names = [name if wanted is None or name in ("data and seed", "image limits") else f"{name} {wanted}"
             for name, _, wanted in checks]
    return True, ", ".join(names)


def reuse_run(source: Path, target: Path, tags: Mapping[str, str], checked: str) -> None:
    """Copy the run folder ``source`` to ``target`` (missing or empty), with ``tags`` and ``reused.json``.

    The copy is made beside ``target`` and renamed into place, so an interrupted
    copy leaves no half run behind.  ``summary.json`` and ``config.yaml`` get this
    grid's tags (the report reads baselines from them); the source's are kept in
    ``reused.json``.
    """
    staging = target.with_name(f".{target.name}.reusing")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(LOCK_NAME))
    summary = json.loads((staging / "summary.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((staging / "config.yaml").read_text(encoding="utf-8"))
    record = {"from": str(source.resolve()), "tags": summary.get("tags") or config.get("tags") or {}, "checked": checked}
    summary["tags"] = dict(tags)
    config["tags"] = dict(tags)
    write_atomic(staging / "summary.json", strict_json(summary))
    write_atomic(staging / "config.yaml", yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100))
    write_atomic(staging / REUSED_NAME, strict_json(record))
    if target.exists():
        target.rmdir()  # empty (the grid reuses only into a run that has not started)
    staging.rename(target)


def reuse_first(sources: Sequence[str | Path], target: Path, *, spec: Any, recipe: Any, overrides: Mapping[str, Any],
                threads: int | None, limits: Mapping[str, int | None], tags: Mapping[str, str]) -> bool:
    """Copy into ``target`` the folder of the same name in the first of ``sources`` that trained exactly this run.

    Returns whether one was copied.  A ``target`` that holds anything (a run
    started here) is never replaced; why a source did not qualify is logged.
    """
    if target.exists() and any(p.name != LOCK_NAME for p in target.iterdir()):
        return False
    here = this_machine()
    for source in sources:
        folder = Path(source) / target.name
        if not folder.is_dir():
            continue
        ok, why = reusable(folder, spec=spec, recipe=recipe, overrides=overrides, epochs=recipe.epochs,
                           threads=threads, limits=limits, here=here)
        if ok:
            reuse_run(folder, target, tags, why)
            log.info("%s: reused from %s (%s)", target.name, folder, why)
            return True
        log.info("%s: not reused from %s: %s", target.name, folder, why)
    return False
