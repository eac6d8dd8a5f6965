"""Reports on a folder of runs: the HiResNet paper's Table 1 layout, in Markdown and CSV, and a figure.

Runs are grouped by model (the ``model`` tag an experiment gives them) and data
set.  For each group: the parameter count, test top-1 and top-5 accuracy as
mean +- sample standard deviation over the finished runs (seeds), Welch's
t-test p-value against the model's baseline, and the number of epochs to reach
a validation accuracy (the paper's "faster learning").  A group whose runs are
not all finished, or that has fewer seeds than the grid asks for (or than
other groups of its data set have), says so in every row: nothing is averaged
silently.  No torch here; the figure imports matplotlib when drawn.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HrgraphError, did_you_mean
from ..files import atomic_open
from .experiment import MANIFEST_SUFFIX
from .grid import VERSIONS

__all__ = [
    "RunRecord",
    "Group",
    "Report",
    "read_runs",
    "build_report",
    "render_markdown",
    "render_csv",
    "plot_curves",
    "welch_ttest",
    "student_t_sf",
]

_VERSION_LABELS = {"original": "Original", "adjusted": "Adjusted", "hiresnet": "HiResNet"}


# -- statistics ------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """The regularised incomplete beta function I_x(a, b); ``y`` is ``1 - x``, given exactly by the caller."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    # The continued fraction converges fast only on this side of the mean; use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t distribution with ``df`` (real, > 0) degrees of freedom.

    Examples
    --------
    >>> round(student_t_sf(2.0, 5), 6)   # scipy.stats.t.sf(2.0, 5)
    0.05097
    >>> student_t_sf(0.0, 3)
    0.5
    """
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    # P(|T| > t) = I_x(df/2, 1/2) with x = df / (df + t^2); 1 - x computed directly keeps
    # its precision when t is small and df large.
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def welch_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's two-sided t-test (unequal variances): ``(t, df, p)``.

    The same as ``scipy.stats.ttest_ind(a, b, equal_var=False)``, without
    scipy.  ``nan`` where the test is undefined: fewer than two values in a
    group, or no variance in either.

    Examples
    --------
    >>> t, df, p = welch_ttest([93.1, 93.4, 93.2], [92.5, 92.9, 92.6])
    >>> round(t, 4), round(df, 3), round(p, 5)   # scipy.stats.ttest_ind(..., equal_var=False)
    (3.8013, 3.67, 0.02233)
    """
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return math.nan, math.nan, math.nan
    m1, m2 = statistics.fmean(a), statistics.fmean(b)
    v1, v2 = statistics.variance(a) / n1, statistics.variance(b) / n2
    if v1 + v2 == 0:
        return math.nan, math.nan, math.nan
    t = (m1 - m2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    return t, df, min(1.0, 2.0 * student_t_sf(abs(t), df))


# -- reading runs ----------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What a report needs of one run folder (``summary.json`` and ``metrics.csv``)."""

    path: Path
    model: str
    data: str
    seed: int | None
    family: str = ""
    version: str = ""
    baseline: str = ""
    grid: str = ""
    params: int | None = None
    finished: bool = False
    epochs: int | None = None
    epochs_done: int = 0
    test_split: str = "test"
    test_acc1: float | None = None
    test_acc5: float | None = None
    best_val_acc: float | None = None
    val_curve: tuple[float, ...] = ()


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _read_curve(path: Path) -> tuple[float, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ()
    values = []
    for row in csv.DictReader(io.StringIO(text)):
        value = _float(row.get("val_acc"))
        if value is None:
            break
        values.append(value)
    return tuple(values)


def _unfinished_summary(config_path: Path) -> dict[str, Any]:
    """What config.yaml tells of a run with no summary yet: its model (tags), data set and seed."""
    import yaml

    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}  # not written yet, or not ours: the run is still counted, under its folder's name
    if not isinstance(config, dict):
        return {}
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    return {"tags": config.get("tags") or {}, "data": recipe.get("data"), "seed": recipe.get("seed"),
            "epochs": recipe.get("epochs")}


def _read_run(folder: Path) -> RunRecord | None:
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        summary = None
    except (OSError, ValueError) as err:
        raise HrgraphError(f"cannot read summary.json: {err}", path=str(folder)) from None
    if summary is None:
        # A run that has not written its first summary yet: known only from a checkpoint or config.
        if not ((folder / "checkpoints").is_dir() or (folder / "config.yaml").is_file()):
            return None
        summary = _unfinished_summary(folder / "config.yaml")
    if not isinstance(summary, dict):
        raise HrgraphError("summary.json is not a JSON object", path=str(folder / "summary.json"))
    tags = summary.get("tags") or {}
    seed = summary.get("seed")
    return RunRecord(
        path=folder,
        model=str(tags.get("model") or summary.get("spec_name") or summary.get("name") or folder.name),
        data=str(summary.get("data") or ""),
        seed=int(seed) if isinstance(seed, int) else None,
        family=str(tags.get("family") or ""),
        version=str(tags.get("version") or ""),
        baseline=str(tags.get("baseline") or ""),
        grid=str(tags.get("grid") or ""),
        params=summary.get("params") if isinstance(summary.get("params"), int) else None,
        finished=summary.get("finished") is True,
        epochs=summary.get("epochs") if isinstance(summary.get("epochs"), int) else None,
        epochs_done=int(summary.get("epochs_done") or 0),
        test_split=str(summary.get("test_split") or "test"),
        test_acc1=_float(summary.get("test_acc1")),
        test_acc5=_float(summary.get("test_acc5")),
        best_val_acc=_float(summary.get("best_val_acc")),
        val_curve=_read_curve(folder / "metrics.csv"),
    )


def read_runs(runs_dir: str | Path) -> tuple[list[RunRecord], list[dict[str, Any]]]:
    """The runs in ``runs_dir`` (one per sub-folder) and the runs the grids there expect.

    Returns
    -------
    (list of RunRecord, list of dict)
        The runs found, sorted by folder name; and the entries of every
        ``*.grid.json`` manifest an experiment wrote (``dir``, ``data``,
        ``seed``, ``tags``).

    Raises
    ------
    HrgraphError
        ``runs_dir`` is not a folder, or a summary or manifest is not valid JSON.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise HrgraphError("no such folder of runs", path=str(runs_dir))
    runs = [r for r in (_read_run(p) for p in sorted(runs_dir.iterdir()) if p.is_dir()) if r is not None]
    expected: list[dict[str, Any]] = []
    for manifest in sorted(runs_dir.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            expected += json.loads(manifest.read_text(encoding="utf-8"))["runs"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise HrgraphError(f"cannot read the grid manifest: {err}", path=str(manifest)) from None
    return runs, expected


# -- groups --------------------------------------------------------------------


@dataclass
class Group:
    """The runs of one model on one data set, and their statistics."""

    model: str
    data: str
    family: str = ""
    version: str = ""
    baseline: str = ""
    runs: list[RunRecord] = field(default_factory=list)
    expected_seeds: set[int] = field(default_factory=set)
    top1: list[float] = field(default_factory=list)
    top5: list[float] = field(default_factory=list)
    p_value: float | None = None
    epochs_to_target: list[int] = field(default_factory=list)

    @property
    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.finished]

    @property
    def n(self) -> int:
        return len(self.finished)

    @property
    def unfinished(self) -> int:
        return sum(1 for r in self.runs if not r.finished)

    @property
    def missing(self) -> int:
        """Seeds expected but with no run folder at all (not started)."""
        seen = {r.seed for r in self.runs}
        return len(self.expected_seeds - seen)

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
    def status(self) -> str:
        """``n=3`` when complete, else e.g. ``n=2 of 3, 1 unfinished``."""
        if self.complete:
            return f"n={self.n}"
        parts = [f"n={self.n} of {self.expected}"]
        if self.unfinished:
            parts.append(f"{self.unfinished} unfinished")
        if self.missing:
            parts.append(f"{self.missing} not started")
        return ", ".join(parts)


@dataclass
class Report:
    """Groups by data set, in the order of the paper's table, and the settings used."""

    runs_dir: Path
    data: list[str]
    groups: list[Group]
    target_acc: float
    runs: list[RunRecord]

    def group(self, model: str, data: str) -> Group | None:
        for g in self.groups:
            if g.model == model and g.data == data:
                return g
        return None

    def models(self) -> list[Group]:
        """One group per model (the first data set it has), in table order."""
        seen: dict[str, Group] = {}
        for g in self.groups:
            seen.setdefault(g.model, g)
        return list(seen.values())


def _order(group: Group, families: list[str], models: list[str]) -> tuple[Any, ...]:
    version = group.version.lower()
    rank = VERSIONS.index(version) if version in VERSIONS else len(VERSIONS)
    return (families.index(group.family), rank, models.index(group.model))


def build_report(runs_dir: str | Path, *, target_acc: float = 0.85, baseline: str | None = None) -> Report:
    """Read the runs in ``runs_dir`` and compute every group's statistics.

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
        No runs in the folder, or a summary cannot be read.
    """
    if not 0 < target_acc <= 1:
        raise ValueError(f"target accuracy must be in (0, 1], not {target_acc}")
    runs_dir = Path(runs_dir)
    runs, expected = read_runs(runs_dir)
    if not runs and not expected:
        raise HrgraphError("no runs here (no sub-folder holds a summary.json, checkpoint or config.yaml)", path=str(runs_dir))
    groups: dict[tuple[str, str], Group] = {}
    order: list[str] = []

    def group_for(model: str, data: str, tags: dict[str, Any]) -> Group:
        if (model, data) not in groups:
            groups[(model, data)] = Group(
                model, data, str(tags.get("family") or ""), str(tags.get("version") or ""), str(tags.get("baseline") or "")
            )
            order.append(model)
        return groups[(model, data)]

    for entry in expected:
        tags = entry.get("tags") or {}
        g = group_for(str(tags.get("model") or entry.get("dir")), str(entry.get("data")), tags)
        if isinstance(entry.get("seed"), int):
            g.expected_seeds.add(entry["seed"])
    for run in runs:
        tags = {"family": run.family, "version": run.version, "baseline": run.baseline}
        g = group_for(run.model, run.data, tags)
        g.runs.append(run)
        g.family = g.family or run.family
        g.version = g.version or run.version
        g.baseline = g.baseline or run.baseline
    # Without a manifest, a group is expected to have every seed any group of its data set has.
    seeds_by_data: dict[str, set[int]] = {}
    for g in groups.values():
        seeds_by_data.setdefault(g.data, set()).update(r.seed for r in g.runs if r.seed is not None)
        seeds_by_data[g.data] |= g.expected_seeds
    for g in groups.values():
        g.expected_seeds |= seeds_by_data[g.data]
        g.runs.sort(key=lambda r: (r.seed is None, r.seed))
        g.top1 = [r.test_acc1 * 100 for r in g.finished if r.test_acc1 is not None]
        g.top5 = [r.test_acc5 * 100 for r in g.finished if r.test_acc5 is not None]
        for r in g.finished:
            reached = next((i + 1 for i, v in enumerate(r.val_curve) if v >= target_acc - 1e-12), None)
            if reached is not None:
                g.epochs_to_target.append(reached)
    if baseline is not None:
        names = sorted({g.model for g in groups.values()})
        if baseline not in names:
            raise HrgraphError(
                f"no model '{baseline}' among the runs{did_you_mean(baseline, names)}; models: {', '.join(names)}",
                path=str(runs_dir),
            )
        for g in groups.values():
            g.baseline = baseline if g.model != baseline else ""
    for g in groups.values():
        base = groups.get((g.baseline, g.data)) if g.baseline else None
        if base is not None:
            p = welch_ttest(g.top1, base.top1)[2]
            g.p_value = None if math.isnan(p) else p
    families = list(dict.fromkeys(g.family for g in groups.values()))
    models = list(dict.fromkeys(order))
    # Data sets in the grid's order where a manifest gives it, else by name.
    data = list(dict.fromkeys([str(e.get("data")) for e in expected] + sorted({g.data for g in groups.values()})))
    ordered = sorted(groups.values(), key=lambda g: (data.index(g.data), *_order(g, families, models)))
    return Report(runs_dir, data, ordered, target_acc, runs)


# -- rendering -----------------------------------------------------------------


def _params(count: int | None) -> str:
    if count is None:
        return "—"
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}K"


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _epochs(g: Group) -> str:
    if not g.finished:
        return "—"
    reached = len(g.epochs_to_target)
    if not reached:
        return f"not reached (0/{g.n})"
    text = f"{statistics.fmean(g.epochs_to_target):.1f}"
    if reached < g.n:
        return f"{text} ({reached}/{g.n}; {g.n - reached} not reached)"
    return f"{text} ({reached}/{g.n})"


def _version(g: Group) -> str:
    return _VERSION_LABELS.get(g.version.lower(), g.version or "—")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(report: Report, *, figure: str | None = None) -> str:
    """The report as Markdown: the Table 1 layout, then one detailed table per data set."""
    runs = report.runs
    finished = sum(r.finished for r in runs)
    not_started = sum(g.missing for g in report.groups)
    incomplete = [g for g in report.groups if not g.complete]
    splits = sorted({f"{r.data}: {r.test_split}" for r in runs if r.test_split != "test"})
    target = f"{report.target_acc * 100:g}%"
    lines = [
        f"# Results: {report.runs_dir.name}",
        "",
        f"{len(runs)} runs in `{report.runs_dir}`: {finished} finished, {len(runs) - finished} unfinished"
        f"{f', {not_started} not started' if not_started else ''}.",
        "Accuracies are test accuracies (%) of each run's best-validation checkpoint"
        f"{' (reported on the val split for ' + ', '.join(splits) + ': no public test labels)' if splits else ''}, "
        "mean ± sample standard deviation over seeds; n counts finished runs only. "
        "p: Welch's two-sided t-test of top-1 against the baseline named in the row. "
        f"Epochs to {target}: first epoch whose validation accuracy reaches {target}, mean over the seeds that reach it.",
        "",
    ]
    if incomplete:
        lines += [
            f"**Incomplete**: {len(incomplete)} group(s) do not have all their runs finished; "
            "their means are over the finished runs only and say so in the n column.",
            "",
        ]
    lines += ["## Top-1 accuracy (%)", ""]
    header = ["Family", "Version", "Model", "#P"] + [f"{d}" for d in report.data]
    rows = []
    for first in report.models():
        row = [first.family or "—", _version(first), first.model, _params(first.params)]
        for d in report.data:
            g = report.group(first.model, d)
            if g is None:
                row.append("—")
            else:
                cell = f"{_mean_std(g.top1)} ({g.status})"
                row.append(cell if g.complete else f"**{cell}**")
        rows.append(row)
    lines += _table(header, rows) + [""]
    for d in report.data:
        lines += [f"## {d}", ""]
        header = ["Family", "Version", "Model", "#P", "Top-1 (%)", "Top-5 (%)", "n", "Baseline", "p", f"Epochs to {target}"]
        rows = []
        for g in (g for g in report.groups if g.data == d):
            rows.append(
                [g.family or "—", _version(g), g.model, _params(g.params), _mean_std(g.top1), _mean_std(g.top5),
                 g.status if g.complete else f"**{g.status}**", g.baseline or "—", _p(g.p_value), _epochs(g)]
            )
        lines += _table(header, rows) + [""]
    if figure:
        lines += [f"![Mean validation accuracy per epoch, band ±1 std over seeds]({figure})", ""]
    return "\n".join(lines)


CSV_COLUMNS = [
    "data", "family", "version", "model", "params", "n", "expected", "unfinished", "not_started",
    "top1_mean", "top1_std", "top5_mean", "top5_std", "baseline", "p_value",
    "target_acc", "epochs_to_target_mean", "reached_target",
]


def render_csv(report: Report) -> str:
    """One row per (data set, model); accuracies in %, empty where undefined."""

    def num(values: Sequence[float], std: bool = False) -> str:
        if not values or (std and len(values) < 2):
            return ""
        return f"{statistics.stdev(values) if std else statistics.fmean(values):.4f}"

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for g in report.groups:
        writer.writerow([
            g.data, g.family, g.version, g.model, g.params if g.params is not None else "", g.n, g.expected,
            g.unfinished, g.missing, num(g.top1), num(g.top1, True), num(g.top5), num(g.top5, True), g.baseline,
            "" if g.p_value is None else f"{g.p_value:.6g}", report.target_acc,
            f"{statistics.fmean(g.epochs_to_target):.4f}" if g.epochs_to_target else "", len(g.epochs_to_target),
        ])
    return out.getvalue()


def plot_curves(report: Report, path: str | Path) -> None:
    """Mean validation accuracy per epoch of each model, with a ±1 std band over its finished seeds.

    One panel per data set; a model's curve runs as far as all its finished
    runs go.  The file type follows the suffix (``.png``, ``.svg``, ``.pdf``).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    panels = report.data
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, d in zip(axes[0], panels):
        for g in (g for g in report.groups if g.data == d):
            curves = [r.val_curve for r in g.finished if r.val_curve]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            epochs = list(range(1, length + 1))
            columns = [[c[i] * 100 for c in curves] for i in range(length)]
            mean = [statistics.fmean(v) for v in columns]
            std = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in columns]
            style = "--" if g.version.lower() == "original" else ":" if g.version.lower() == "adjusted" else "-"
            (line,) = ax.plot(epochs, mean, style, label=f"{g.model} (n={len(curves)})")
            ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axhline(report.target_acc * 100, color="grey", linewidth=0.8, linestyle=(0, (1, 3)))
        ax.set_title(d)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path) as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
