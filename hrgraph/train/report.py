"""Reports on a folder of runs: the HiResNet paper's Table 1 layout, in Markdown and CSV, and a figure.

Reading runs is :mod:`hrgraph.train.runs`, grouping and comparing them
:mod:`hrgraph.train.results`, the statistics :mod:`hrgraph.train.stats`; this
module renders.  For each group (model, network, data set): the parameter
count, test top-1 and top-5 accuracy as mean ± sample standard deviation over
the finished runs (seeds), the comparison with the model's baseline (mean
difference with its 95% CI, Hedges' g, Welch's p and its Holm adjustment over
every comparison of the report, the paired test where seeds match, the
difference the design could detect), and the epochs to reach a validation
accuracy (the paper's "faster learning").  Incomplete, diverged, broken and
smoke (--limit-*) runs are marked, never averaged in silently.  No torch here;
the figure imports matplotlib when drawn.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from ..files import atomic_open
from .results import SEED_COLUMN, Against, Group, Report, build_report, compare_against, seed_cell
from .runs import RunRecord, read_runs
from .stats import welch_ttest

__all__ = [
    "RunRecord",
    "Group",
    "Report",
    "Against",
    "read_runs",
    "build_report",
    "compare_against",
    "render_markdown",
    "render_against",
    "render_csv",
    "plot_curves",
    "welch_ttest",
    "param_labels",
    "CSV_COLUMNS",
]

_VERSION_LABELS = {"original": "Original", "adjusted": "Adjusted", "hiresnet": "HiResNet"}


def param_labels(counts: Sequence[int]) -> dict[int, str]:
    """Short labels for parameter counts, with as many digits as it takes to tell every two apart.

    Examples
    --------
    >>> param_labels([21_382, 21_433, 700_000])
    {21382: '21.38K', 21433: '21.43K', 700000: '0.70M'}
    >>> param_labels([701_178, 713_018])
    {701178: '0.70M', 713018: '0.71M'}
    >>> param_labels([701_178, 701_210])[701_210]
    '701,210'
    """
    distinct = sorted(set(counts))

    def short(count: int, digits: int) -> str:
        if count >= 1e5:
            return f"{count / 1e6:.{digits}f}M"
        return f"{count / 1e3:.{digits}f}K" if count >= 1e3 else str(count)

    for digits in (2, 3, 4):
        labels = {c: short(c, digits) for c in distinct}
        if len(set(labels.values())) == len(distinct):
            return labels
    return {c: f"{c:,}" for c in distinct}  # closer than 4 decimals: the exact counts


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _signed(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:+.{digits}f}"


def _diff_cell(g: Group) -> str:
    c = g.comparison
    if c is None:
        return "—"
    if math.isnan(c.diff_ci_low):
        return _signed(c.diff)
    return f"{_signed(c.diff)} [{c.diff_ci_low:+.2f}, {c.diff_ci_high:+.2f}]"


def _epochs(g: Group) -> str:
    if not g.finished:
        return "—"
    if not g.with_curve:
        return "no val curve"
    reached = len(g.epochs_to_target)
    if not reached:
        return f"not reached (0/{g.with_curve})"
    text = f"{statistics.fmean(g.epochs_to_target):.1f}"
    if reached < g.with_curve:
        return f"{text} ({reached}/{g.with_curve}; {g.with_curve - reached} not reached)"
    return f"{text} ({reached}/{g.with_curve})"


def _version(g: Group) -> str:
    return _VERSION_LABELS.get(g.version.lower(), g.version or "—")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _counts_line(report: Report) -> str:
    runs = report.runs
    by_state = {s: sum(1 for r in runs if r.state == s) for s in ("finished", "unfinished", "diverged", "broken")}
    not_started = sum(g.missing for g in report.groups)
    parts = [f"{by_state['finished']} finished", f"{by_state['unfinished']} unfinished"]
    parts += [f"{by_state[s]} {s}" for s in ("diverged", "broken") if by_state[s]]
    if not_started:
        parts.append(f"{not_started} not started")
    return f"{len(runs)} runs in `{report.runs_dir}`: {', '.join(parts)}."


def _machine_lines(report: Report) -> list[str]:
    machines = report.machines
    if len(machines) <= 1:
        where = next(iter(machines), "not recorded")
        return [f"Machine: {where} (every run).", ""]
    lines = [f"**Different machines**: the runs of this report ran on {len(machines)} machines or thread counts; "
             "CPU results are bit-reproducible only on the same processor with the same threads:", ""]
    for machine, runs in machines.items():
        models = sorted({f"{r.model} on {r.data}" for r in runs})
        lines.append(f"- {machine}: {len(runs)} runs ({', '.join(models)})")
    return lines + [""]


def _warnings(report: Report) -> list[str]:
    lines: list[str] = []
    incomplete = [g for g in report.groups if not g.complete]
    if incomplete:
        lines += [f"**Incomplete**: {len(incomplete)} group(s) do not have all their runs finished; "
                  "their means are over the finished runs only and say so in the n column.", ""]
    smoke = [r for r in report.runs if r.limits]
    if smoke:
        lines += [f"**Smoke runs**: {len(smoke)} run(s) were trained or tested on a subset (--limit-train/--limit-val, "
                  "shown as `smoke:` in the n column): their accuracies are not comparable with full runs.", ""]
    split = sorted({(g.model, g.data) for g in report.groups if g.label != g.model})
    if split:
        lines += ["**Different networks under one name**: " + "; ".join(
            f"{m} on {d} ({', '.join(g.label for g in report.groups if (g.model, g.data) == (m, d))})" for m, d in split)
            + ". Their runs have different spec fingerprints (config.yaml), so each network is a row of its own.", ""]
    return lines


def _explanation(report: Report) -> str:
    splits = sorted({f"{r.data}: {r.test_split}" for r in report.runs if r.test_split != "test"})
    target = f"{report.target_acc * 100:g}%"
    return (
        "Accuracies are test accuracies (%) of each run's best-validation checkpoint"
        f"{' (reported on the val split for ' + ', '.join(splits) + ': no public test labels)' if splits else ''}, "
        "mean ± sample standard deviation over seeds; n counts finished runs only (diverged and broken runs are "
        "listed below, never averaged). Δ: mean top-1 difference from the baseline named in the row, in points, "
        "with its 95% confidence interval (Welch); g: Hedges' g (bias-corrected standardised difference); "
        "p: Welch's two-sided t-test; p Holm: that p adjusted by Holm's method over the "
        f"{report.comparisons} comparison(s) of this report (every model against its baseline on every data set). "
        f"Epochs to {target}: first epoch whose validation accuracy reaches {target}, mean over the seeds that reach it."
    )


def _comparison_lines(report: Report, d: str) -> list[str]:
    lines = []
    for g in (g for g in report.groups if g.data == d):
        c = g.comparison
        if c is None:
            if g.note:
                lines.append(f"- {g.label}: {g.note}.")
            continue
        text = f"- {g.label} − {g.baseline}: "
        if c.n_paired >= 2 and not math.isnan(c.p_paired):
            text += (f"paired over the {c.n_paired} shared seeds {_signed(c.paired_diff)} "
                     f"[{c.paired_ci_low:+.2f}, {c.paired_ci_high:+.2f}], p {_p(c.p_paired)}; ")
        elif c.n_paired >= 2:
            text += f"paired over the {c.n_paired} shared seeds {_signed(c.paired_diff)} (every difference the same: no test); "
        else:
            text += "no shared seeds, no paired test; "
        if math.isnan(c.detectable_diff):
            text += "detectable difference undefined (fewer than two runs each, or no spread)."
        else:
            text += (f"with n={c.n} and {c.n_baseline} and this spread, a true difference of "
                     f"{c.detectable_diff:.2f} points would be detected with 80% power (alpha 0.05, two-sided).")
        lines.append(text)
    if not lines:
        return []
    return ["Paired tests and power (the detectable difference is exact for Student's two-sample t-test, from the "
            "noncentral t distribution, with the pooled standard deviation of the two models; differences smaller "
            "than it are likely to go unseen with this many seeds):", "", *lines, ""]


def _problem_lines(report: Report) -> list[str]:
    lines: list[str] = []
    diverged = [r for r in report.runs if r.state == "diverged"]
    if diverged:
        lines += ["## Diverged runs (not averaged)", ""]
        lines += _table(["Run", "Model", "Data", "Seed", "What"],
                        [[r.path.name, r.model, r.data, str(r.seed), r.problem] for r in diverged]) + [""]
    broken = [r for r in report.runs if r.state == "broken"]
    if broken:
        lines += ["## Broken runs (skipped)", ""]
        lines += _table(["Run", "Reason"], [[r.path.name, r.problem.replace("|", "\\|")] for r in broken]) + [""]
    return lines


def render_markdown(report: Report, *, figure: str | None = None, against: Against | None = None) -> str:
    """The report as Markdown: the Table 1 layout, one detailed table per data set, problems, and a rerun's moves."""
    target = f"{report.target_acc * 100:g}%"
    labels = param_labels([g.params for g in report.groups if g.params is not None])

    def params(g: Group) -> str:
        if g.params is not None:
            return labels[g.params]
        return "mixed" if any(r.params is not None for r in g.runs) else "—"

    lines = [f"# Results: {report.runs_dir.name}", "", _counts_line(report), ""]
    lines += _machine_lines(report) + [_explanation(report), ""] + _warnings(report)
    lines += ["## Top-1 accuracy (%)", ""]
    header = ["Family", "Version", "Model", "#P"] + list(report.data)
    rows = []
    for first in report.labels():
        row = [first.family or "—", _version(first), first.label, params(first)]
        for d in report.data:
            g = report.group(first.label, d)
            if g is None:
                row.append("—")
            else:
                cell = f"{_mean_std(g.top1)} ({g.status})"
                row.append(cell if g.complete else f"**{cell}**")
        rows.append(row)
    lines += _table(header, rows) + [""]
    for d in report.data:
        lines += [f"## {d}", ""]
        header = ["Family", "Version", "Model", "#P", "Top-1 (%)", "Top-5 (%)", "n", "Baseline", "Δ top-1 [95% CI]",
                  "g", "p", "p Holm", f"Epochs to {target}"]
        rows = []
        for g in (g for g in report.groups if g.data == d):
            c = g.comparison
            rows.append([
                g.family or "—", _version(g), g.label, params(g), _mean_std(g.top1), _mean_std(g.top5),
                g.status if g.complete else f"**{g.status}**", g.baseline or "—", _diff_cell(g),
                _signed(c.hedges_g) if c else "—", _p(c.p_welch) if c else "—", _p(c.p_holm) if c else "—", _epochs(g),
            ])
        lines += _table(header, rows) + [""] + _comparison_lines(report, d)
    lines += _problem_lines(report)
    if against is not None:
        lines += render_against(against).splitlines() + [""]
    if figure:
        lines += [f"![Mean validation accuracy per epoch, band ±1 std over seeds]({figure})", ""]
    return "\n".join(lines)


def render_against(against: Against) -> str:
    """A rerun against committed per-seed results: every matched run, what moved, and a summary."""
    lines = [f"## Rerun against `{against.source}`", ""]
    if not against.rows:
        lines.append("No run of this report matches a (data set, model, seed) of the committed results.")
    else:
        lines += _table(["Data", "Model", "Seed", "Committed top-1 (%)", "Rerun top-1 (%)", "Difference"],
                        [[m.data, m.model, str(m.seed), f"{m.committed:.2f}", f"{m.rerun:.2f}", _signed(m.diff)]
                         for m in against.rows]) + [""]
        outside = against.outside_spread()
        unknown = [m for m in against.rows if math.isnan(m.spread)]
        if outside:
            verdict = f"{len(outside)} run(s) moved by more than the seed spread ({', '.join(f'{m.model} s{m.seed}' for m in outside)})."
        elif unknown:
            verdict = (f"no run moved by more than the seed spread where it is known; for {len(unknown)} run(s) the "
                       "committed results give no spread (no top1_std), so nothing is said of them.")
        else:
            verdict = "every move is within the seed spread."
        lines.append(
            f"{against.identical} of {len(against.rows)} runs identical; largest |difference| {against.max_abs_diff:.2f} points; "
            + verdict
            + " A move is within the seed spread when |difference| ≤ 1.96·√2·σ, σ the committed group's seed standard "
            "deviation: the 95% band of the difference between two runs that differ by noise alone.")
    for what, keys in (("only in the committed results", against.only_committed), ("only in the rerun", against.only_rerun)):
        if keys:
            lines += ["", f"Runs {what}: " + ", ".join(f"{m} on {d} s{s}" for d, m, s in keys) + "."]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = [
    "data", "family", "version", "model", "label", "spec_fingerprint", "params", "n", "expected", "unfinished",
    "diverged", "broken", "not_started", "limits", "top1_mean", "top1_std", "top5_mean", "top5_std", "baseline",
    "diff", "diff_ci_low", "diff_ci_high", "hedges_g", "p_welch", "p_holm", "holm_family", "n_paired", "paired_diff",
    "paired_ci_low", "paired_ci_high", "p_paired", "detectable_diff", "target_acc", "epochs_to_target_mean",
    "reached_target", SEED_COLUMN,
]


def render_csv(report: Report) -> str:
    """One row per (data set, model, network); accuracies and differences in %, empty where undefined.

    Six decimals, so that a table printed from the CSV rounds to the same two digits as the Markdown
    report (four decimals would round 0.64496 to 0.6450 and then to 0.65).
    """

    def num(values: Sequence[float], std: bool = False) -> str:
        if not values or (std and len(values) < 2):
            return ""
        return f"{statistics.stdev(values) if std else statistics.fmean(values):.6f}"

    def stat(value: float, digits: str = ".6f") -> str:
        return "" if math.isnan(value) else format(value, digits)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for g in report.groups:
        c = g.comparison
        compared = [] if c is None else [
            stat(c.diff), stat(c.diff_ci_low), stat(c.diff_ci_high), stat(c.hedges_g), stat(c.p_welch, ".6g"),
            stat(c.p_holm, ".6g"), report.comparisons, c.n_paired, stat(c.paired_diff), stat(c.paired_ci_low),
            stat(c.paired_ci_high), stat(c.p_paired, ".6g"), stat(c.detectable_diff),
        ]
        limits = " ".join(f"{k}={'/'.join(map(str, sorted(v)))}" for k, v in sorted(g.limits.items()))
        writer.writerow([
            g.data, g.family, g.version, g.model, g.label, g.fingerprint, g.params if g.params is not None else "",
            g.n, g.expected, g.unfinished, g.diverged, g.broken, g.missing, limits, num(g.top1), num(g.top1, True),
            num(g.top5), num(g.top5, True), g.baseline,
            *(compared or [""] * 13), report.target_acc,
            f"{statistics.fmean(g.epochs_to_target):.4f}" if g.epochs_to_target else "", len(g.epochs_to_target),
            seed_cell(g),
        ])
    return out.getvalue()


def plot_curves(report: Report, path: str | Path) -> None:
    """Mean validation accuracy per epoch of each model, with a ±1 std band over its finished seeds.

    One panel per data set; a model's curve runs as far as all its finished
    runs go, with a marker at every epoch (so that one-epoch runs are seen).
    The file type follows the suffix (``.png``, ``.svg``, ``.pdf``).
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
            (line,) = ax.plot(epochs, mean, style, marker="o", markersize=3, label=f"{g.label} (n={len(curves)})")
            if length > 1:
                ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                                color=line.get_color(), alpha=0.2, linewidth=0)
            else:  # a band of one epoch has no width: an error bar shows the spread instead
                ax.errorbar(epochs, mean, yerr=std, fmt="none", ecolor=line.get_color(), capsize=3)
        ax.axhline(report.target_acc * 100, color="grey", linewidth=0.8, linestyle=(0, (1, 3)))
        ax.set_title(d)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path) as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
