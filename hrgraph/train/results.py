"""Runs grouped for a report: one group per (model, data set, network), its statistics and comparisons.

Runs are grouped by model (the ``model`` tag an experiment gives them), data
set and **network**: two runs of one model name whose ``config.yaml`` holds
different ``spec_fingerprint`` values trained different networks (a spec edited
between runs), and averaging them would be silently wrong.  They become two
groups, labelled ``model [fingerprint]``, and a comparison whose baseline name
is ambiguous that way is not made (the report says why).

A group's accuracies are over its finished runs only; unfinished, diverged and
broken runs are counted apart.  Every comparison (a model against its baseline
on one data set) gets the statistics of :mod:`hrgraph.train.stats`, and Holm's
adjustment runs over all comparisons of the report.  No torch here.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import HrgraphError, did_you_mean
from .grid import VERSIONS
from .runs import RunRecord, read_runs
from .stats import Comparison, compare, holm

__all__ = ["Group", "Report", "build_report", "Against", "compare_against", "SEED_COLUMN"]

#: The CSV column holding a group's per-seed top-1 accuracies, ``seed:acc`` pairs joined by ``;``.
SEED_COLUMN = "top1_by_seed"


@dataclass
class Group:
    """The runs of one model (one network) on one data set, and their statistics."""

    model: str
    data: str
    fingerprint: str = ""
    family: str = ""
    version: str = ""
    baseline: str = ""
    label: str = ""
    runs: list[RunRecord] = field(default_factory=list)
    expected_seeds: set[int] = field(default_factory=set)
    top1: list[float] = field(default_factory=list)
    top5: list[float] = field(default_factory=list)
    top1_by_seed: dict[int | None, float] = field(default_factory=dict)
    comparison: Comparison | None = None
    note: str = ""  # why there is no comparison although a baseline is named
    epochs_to_target: list[int] = field(default_factory=list)
    with_curve: int = 0  # finished runs with a validation curve (the others cannot reach a target)

    def _count(self, state: str) -> int:
        return sum(1 for r in self.runs if r.state == state)

    @property
    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.finished]

    @property
    def n(self) -> int:
        return len(self.finished)

    @property
    def unfinished(self) -> int:
        return self._count("unfinished")

    @property
    def diverged(self) -> int:
        return self._count("diverged")

    @property
    def broken(self) -> int:
        return self._count("broken")

    @property
    def p_value(self) -> float | None:
        """Welch's p against the baseline (``None`` when there is none or it is undefined)."""
        p = self.comparison.p_welch if self.comparison is not None else math.nan
        return None if math.isnan(p) else p

    @property
    def missing(self) -> int:
        """Seeds expected but with no run folder at all (not started)."""
        return len(self.expected_seeds - {r.seed for r in self.runs})

    @property
    def expected(self) -> int:
        return max(len(self.expected_seeds | {r.seed for r in self.runs}), len(self.runs))

    @property
    def complete(self) -> bool:
        return self.n == self.expected

    @property
    def params(self) -> int | None:
        counts = {r.params for r in self.runs if r.params is not None}
        return counts.pop() if len(counts) == 1 else None

    @property
    def limits(self) -> dict[str, set[int]]:
        """The --limit-train/--limit-val values of the group's runs (empty for full runs)."""
        found: dict[str, set[int]] = {}
        for r in self.runs:
            for key, value in r.limits.items():
                found.setdefault(key, set()).add(value)
        return found

    @property
    def status(self) -> str:
        """``n=3`` when complete, else e.g. ``n=2 of 3, 1 unfinished``; smoke runs say so."""
        parts = [f"n={self.n}" if self.complete else f"n={self.n} of {self.expected}"]
        for count, what in ((self.unfinished, "unfinished"), (self.diverged, "diverged"), (self.broken, "broken"),
                            (self.missing, "not started")):
            if count:
                parts.append(f"{count} {what}")
        limits = self.limits
        if limits:
            parts.append("smoke: " + " ".join(f"--limit-{k} {'/'.join(map(str, sorted(v)))}" for k, v in sorted(limits.items())))
        return ", ".join(parts)


@dataclass
class Report:
    """Groups by data set, in the order of the paper's table, and the settings used."""

    runs_dir: Path
    data: list[str]
    groups: list[Group]
    target_acc: float
    runs: list[RunRecord]
    comparisons: int = 0  # the size of the Holm family

    def group(self, model: str, data: str) -> Group | None:
        """The group of ``model`` (a label such as ``m [ab12cd34]``, or a model with one network) on ``data``."""
        matches = [g for g in self.groups if g.data == data and g.label == model]
        matches = matches or [g for g in self.groups if g.data == data and g.model == model]
        return matches[0] if len(matches) == 1 else None

    def labels(self) -> list[Group]:
        """One group per row label (the first data set it has), in table order."""
        seen: dict[str, Group] = {}
        for g in self.groups:
            seen.setdefault(g.label, g)
        return list(seen.values())

    models = labels  # the name the first reports used

    @property
    def machines(self) -> dict[str, list[RunRecord]]:
        """The runs by the machine they ran on (thread count, CPU, GPU)."""
        found: dict[str, list[RunRecord]] = {}
        for r in self.runs:
            found.setdefault(r.machine, []).append(r)
        return found


def _order(group: Group, families: list[str], models: list[str]) -> tuple[Any, ...]:
    version = group.version.lower()
    rank = VERSIONS.index(version) if version in VERSIONS else len(VERSIONS)
    return (families.index(group.family), rank, models.index(group.model), group.fingerprint)


def _group_runs(runs: list[RunRecord], expected: list[dict[str, Any]]) -> tuple[list[Group], list[str]]:
    """Groups by (model, data, fingerprint), with the seeds the manifests and other groups expect; and the model order."""
    groups: dict[tuple[str, str, str], Group] = {}
    order: list[str] = []
    for run in runs:
        if run.state == "broken" and run.model == run.path.name:
            continue  # nothing tells which model it is: listed among the broken runs only
        key = (run.model, run.data, run.fingerprint)
        if key not in groups:
            groups[key] = Group(run.model, run.data, run.fingerprint)
            order.append(run.model)
        g = groups[key]
        g.runs.append(run)
        g.family, g.version, g.baseline = g.family or run.family, g.version or run.version, g.baseline or run.baseline
    expected_by_model: dict[tuple[str, str], set[int]] = {}
    for entry in expected:
        tags = entry.get("tags") if isinstance(entry.get("tags"), dict) else {}
        model, data = str(tags.get("model") or entry.get("dir")), str(entry.get("data"))
        if not any(k[:2] == (model, data) for k in groups):  # a model with no run folder yet
            groups[(model, data, "")] = Group(model, data, "", str(tags.get("family") or ""),
                                              str(tags.get("version") or ""), str(tags.get("baseline") or ""))
            order.append(model)
        if isinstance(entry.get("seed"), int):
            expected_by_model.setdefault((model, data), set()).add(entry["seed"])
    # A model the manifests list is expected at its own seeds (a grid may give models different seeds);
    # without a manifest, a group is expected to have every seed any group of its data set has.
    seeds_by_data: dict[str, set[int]] = {}
    for g in groups.values():
        seeds_by_data.setdefault(g.data, set()).update(r.seed for r in g.runs if r.seed is not None)
        seeds_by_data[g.data] |= expected_by_model.get((g.model, g.data), set())
    networks: dict[tuple[str, str], int] = {}
    for model, data, _ in groups:
        networks[(model, data)] = networks.get((model, data), 0) + 1
    for g in groups.values():
        g.expected_seeds = set(expected_by_model.get((g.model, g.data)) or seeds_by_data[g.data])
        g.label = g.model if networks[(g.model, g.data)] == 1 else f"{g.model} [{g.fingerprint[:8] or 'no fingerprint'}]"
    return list(groups.values()), order


def _statistics(g: Group, target_acc: float) -> None:
    g.runs.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))
    done = [r for r in g.finished if r.test_acc1 is not None]
    g.top1 = [r.test_acc1 * 100 for r in done]
    g.top5 = [r.test_acc5 * 100 for r in g.finished if r.test_acc5 is not None]
    g.top1_by_seed = {r.seed: r.test_acc1 * 100 for r in done if r.seed is not None}
    g.with_curve = sum(1 for r in g.finished if r.val_curve)
    g.epochs_to_target = []
    for r in g.finished:
        reached = next((i + 1 for i, v in enumerate(r.val_curve) if v >= target_acc - 1e-12), None)
        if reached is not None:
            g.epochs_to_target.append(reached)


def _compare(groups: list[Group]) -> int:
    """Each group against its baseline on its data set; Holm over all of them.  Returns the family's size."""
    compared: list[Group] = []
    for g in groups:
        if not g.baseline:
            continue
        bases = [b for b in groups if b.model == g.baseline and b.data == g.data]
        if len(bases) > 1:
            g.note = f"baseline {g.baseline} has {len(bases)} different networks on {g.data}: not compared"
            continue
        if not bases:
            g.note = f"baseline {g.baseline} has no runs on {g.data}"
            continue
        seeds_unique = len(g.top1_by_seed) == len(g.top1) and len(bases[0].top1_by_seed) == len(bases[0].top1)
        if seeds_unique:
            g.comparison = compare(g.top1_by_seed, bases[0].top1_by_seed)
        else:  # a seed run twice (or runs without a seed): no pairing
            g.comparison = compare(g.top1, bases[0].top1)
        compared.append(g)
    adjusted = holm([g.comparison.p_welch for g in compared])
    for g, p in zip(compared, adjusted):
        g.comparison = replace(g.comparison, p_holm=p)
    return sum(1 for p in adjusted if not math.isnan(p))


def build_report(runs_dir: str | Path, *, target_acc: float = 0.85, baseline: str | None = None) -> Report:
    """Read the runs in ``runs_dir`` and compute every group's statistics and comparisons.

    Parameters
    ----------
    runs_dir : str or Path
    target_acc : float
        Validation accuracy (0-1) whose first epoch is reported.
    baseline : str, optional
        Compare every model with this one (a model name of the grid) instead of
        each with its own ``baseline`` tag: e.g. every ablation against the full
        HiResNet rather than against the ResNet it was built on.

    Returns
    -------
    Report

    Raises
    ------
    HrgraphError
        No runs in the folder, an unknown ``baseline``, or an unreadable grid
        manifest.  A broken run never raises: it is listed in the report.
    """
    if not 0 < target_acc <= 1:
        raise ValueError(f"target accuracy must be in (0, 1], not {target_acc}")
    runs_dir = Path(runs_dir)
    runs, expected = read_runs(runs_dir)
    if not runs and not expected:
        raise HrgraphError("no runs here (no sub-folder holds a summary.json, checkpoint or config.yaml)", path=str(runs_dir))
    groups, order = _group_runs(runs, expected)
    for g in groups:
        _statistics(g, target_acc)
    if baseline is not None:
        names = sorted({g.model for g in groups})
        if baseline not in names:
            raise HrgraphError(
                f"no model '{baseline}' among the runs{did_you_mean(baseline, names)}; models: {', '.join(names)}",
                path=str(runs_dir),
            )
        for g in groups:
            g.baseline = baseline if g.model != baseline else ""
    family_size = _compare(groups)
    families = list(dict.fromkeys(g.family for g in groups))
    models = list(dict.fromkeys(order))
    # Data sets in the grid's order where a manifest gives it, else by name.
    data = list(dict.fromkeys([str(e.get("data")) for e in expected] + sorted({g.data for g in groups})))
    ordered = sorted(groups, key=lambda g: (data.index(g.data), *_order(g, families, models)))
    return Report(runs_dir, data, ordered, target_acc, runs, family_size)


# -- a rerun against committed results ---------------------------------------------


@dataclass(frozen=True)
class Moved:
    """One run's committed and rerun top-1 accuracy (%)."""

    data: str
    model: str
    seed: int
    committed: float
    rerun: float
    spread: float  # the committed group's seed standard deviation (nan if unknown)

    @property
    def diff(self) -> float:
        return self.rerun - self.committed


@dataclass(frozen=True)
class Against:
    """A rerun's per-seed results against a committed CSV."""

    source: Path
    rows: list[Moved]
    only_committed: list[tuple[str, str, int]]
    only_rerun: list[tuple[str, str, int]]

    #: Two runs that differ by noise alone differ by sqrt(2) seed standard deviations on average;
    #: a move is within the seed spread when it is inside the 95% band of that difference.
    BAND = 1.96 * math.sqrt(2)

    @property
    def identical(self) -> int:
        return sum(1 for m in self.rows if abs(m.diff) < 5e-5)  # the CSV keeps 4 decimals of a percentage

    @property
    def max_abs_diff(self) -> float:
        return max((abs(m.diff) for m in self.rows), default=math.nan)

    def outside_spread(self) -> list[Moved]:
        return [m for m in self.rows if not math.isnan(m.spread) and abs(m.diff) > self.BAND * m.spread]


def _parse_seeds(text: str, where: str) -> dict[int, float]:
    values: dict[int, float] = {}
    for item in filter(None, (t.strip() for t in text.split(";"))):
        seed, _, acc = item.partition(":")
        try:
            values[int(seed)] = float(acc)
        except ValueError:
            raise HrgraphError(f"{SEED_COLUMN} entry {item!r} is not seed:accuracy", path=where) from None
    return values


def compare_against(report: Report, committed_csv: str | Path) -> Against:
    """Match the report's per-seed top-1 with a CSV that ``hrgraph report --csv`` wrote (on (data, model, seed)).

    Raises
    ------
    HrgraphError
        The CSV cannot be read, or has no ``top1_by_seed`` column (written by
        reports since per-seed results were added; rerun the report on the
        committed runs to get one).
    """
    path = Path(committed_csv)
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise HrgraphError(f"cannot read the committed results: {err}", path=str(path)) from None
    if not rows or SEED_COLUMN not in rows[0] or "model" not in rows[0] or "data" not in rows[0]:
        raise HrgraphError(
            f"no per-seed results: the CSV has no {SEED_COLUMN} column (it predates them); "
            "regenerate it with `hrgraph report RUNS --csv` on the runs it came from", path=str(path))
    committed: dict[tuple[str, str, int], tuple[float, float]] = {}
    for row in rows:
        try:
            spread = float(row.get("top1_std") or "nan")
        except ValueError:
            spread = math.nan
        label = row.get("label") or row["model"]
        for seed, acc in _parse_seeds(row.get(SEED_COLUMN) or "", str(path)).items():
            committed[(row["data"], label, seed)] = (acc, spread)
    rerun = {(g.data, g.label, s): round(v, 4) for g in report.groups for s, v in g.top1_by_seed.items() if s is not None}
    moved = [Moved(d, m, s, committed[(d, m, s)][0], rerun[(d, m, s)], committed[(d, m, s)][1])
             for (d, m, s) in sorted(set(committed) & set(rerun))]
    return Against(path, moved, sorted(set(committed) - set(rerun)), sorted(set(rerun) - set(committed)))


def seed_cell(g: Group) -> str:
    """``0:86.9100;1:87.2300`` for the CSV: a group's per-seed top-1 (%)."""
    return ";".join(f"{s}:{v:.4f}" for s, v in sorted(g.top1_by_seed.items()))

