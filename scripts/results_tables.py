"""Print the tables of docs/results.md from the committed report CSVs.

docs/results.md reads the reports out loud; its tables are this script's output,
pasted, so every number there comes from a CSV that `make results results-ablation`
writes.  tests/test_results_doc.py fails if a table row of the page differs from
what this script prints.

    python scripts/results_tables.py [docs/results]

Besides the reports' own rows (each model against the grid's baseline) it prints
what the page adds: HiResNet against the Original in Table 1 (not a row of the
grid's report), with Holm's correction over the six comparisons the page reads
out, and the per-seed values; and the Fig. 2 tables from the committed analyses'
contributions.csv and edgecut.csv.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hrgraph.train.stats import compare, holm  # noqa: E402

TABLE1 = "fashion-mnist-cpu.csv"
TABLE2 = "fashion-mnist-ablation.csv"
TABLE2_VS_FULL = "fashion-mnist-ablation-vs-hiresnet18.csv"
#: Table 2's rows in the order the page reads them: the paper's Table 2, then the single edges.
TABLE2_ORDER = ("resnet18", "resnet18-adjusted", "hiresnet18", "hiresnet18-in", "hiresnet18-out", "hiresnet18-out-all")


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def by_seed(row: dict[str, str]) -> dict[int, float]:
    """``0:87.07;1:86.70`` -> ``{0: 87.07, 1: 86.7}``."""
    return {int(s): float(v) for s, v in (item.split(":") for item in row["top1_by_seed"].split(";") if item)}


def num(text: str, digits: int = 2, sign: bool = False) -> str:
    if text in ("", None) or math.isnan(float(text)):
        return "—"
    return f"{float(text):{'+' if sign else ''}.{digits}f}"


def p(text: str) -> str:
    return num(text, 3)


def ci(row: dict[str, str]) -> str:
    if not row["baseline"]:
        return "—"
    return f"{num(row['diff'], sign=True)} [{num(row['diff_ci_low'], sign=True)}, {num(row['diff_ci_high'], sign=True)}]"


def n_of(row: dict[str, str]) -> str:
    return f"{row['n']} of {row['expected']}"


def top1(row: dict[str, str]) -> str:
    return f"{num(row['top1_mean'])} ± {num(row['top1_std'])}"


def table1(rows: list[dict[str, str]]) -> list[str]:
    out = [
        "| Family | Version | Model | n | Top-1 (%) | Baseline | Δ [95% CI] | g | p | p Holm | detectable Δ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['family']} | {r['version']} | {r['model']} | {n_of(r)} | {top1(r)} | {r['baseline'] or '—'} | {ci(r)} "
            f"| {num(r['hedges_g'], sign=True)} | {p(r['p_welch'])} | {p(r['p_holm'])} | {num(r['detectable_diff'])} |"
        )
    return out


def table1_against_original(rows: list[dict[str, str]]) -> list[str]:
    """HiResNet - Original per family, with Holm over these and the report's own comparisons."""
    extra = []
    for r in rows:
        if r["version"] != "hiresnet":
            continue
        original = next(o for o in rows if o["family"] == r["family"] and o["version"] == "original")
        extra.append((r["model"], original["model"], compare(by_seed(r), by_seed(original))))
    own = [(r["model"], r["baseline"], float(r["p_welch"])) for r in rows if r["baseline"]]
    adjusted = holm([c.p_welch for *_, c in extra] + [pw for *_, pw in own])
    out = [f"Holm over the {len(adjusted)} comparisons the page reads out:"]
    for (a, b, c), ph in zip(extra, adjusted):
        out.append(
            f"- {a} − {b} {c.diff:+.2f} [{c.diff_ci_low:+.2f}, {c.diff_ci_high:+.2f}], Welch p = {c.p_welch:.3f}, "
            f"Holm {ph:.3f} (paired over {c.n_paired} shared seeds p = {c.p_paired:.3f})"
        )
    for (a, b, _), ph in zip(own, adjusted[len(extra):]):
        out.append(f"- {a} vs {b}: Holm {ph:.3f}")
    out.append("")
    out.append("Per seed (test top-1 %):")
    for r in rows:
        seeds = by_seed(r)
        out.append(f"- {r['model']} (seeds {min(seeds)}-{max(seeds)}): " + " / ".join(f"{v:.2f}" for _, v in sorted(seeds.items())))
    return out


def table2(rows: list[dict[str, str]], vs_full: list[dict[str, str]]) -> list[str]:
    full = {r["model"]: r for r in vs_full}
    order = [m for m in TABLE2_ORDER if any(r["model"] == m for r in rows)]
    order += sorted(r["model"] for r in rows if r["model"] not in order)
    model = {r["model"]: r for r in rows}
    out = [
        "| Variant | Model | n | Top-1 (%) | Δ vs ResNet-18 [95% CI] | p | p Holm | Δ vs HiResNet-18 [95% CI] | p | p Holm |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        r, f = model[name], full[name]
        out.append(
            f"| {r['version']} | {name} | {n_of(r)} | {top1(r)} | {ci(r)} | {p(r['p_welch'])} | {p(r['p_holm'])} "
            f"| {ci(f)} | {p(f['p_welch'])} | {p(f['p_holm'])} |"
        )
    return out


#: The analyses the page's Fig. 2 tables read: HiResNet-18 (Table 1's runs) and three Table 2 variants.
FIG2_SEEDS = (0, 1, 2)
VARIANTS = ("in", "out", "out-all")
VARIANT_SEEDS = (3, 4, 5)


def _analysis(folder: Path) -> tuple[list[dict[str, str]], dict[str, dict[str, str]]]:
    """The projections of one analysis (in the CSV's order) and its edge cuts by name."""
    projections = [r for r in read(folder / "contributions.csv") if r["kind"] == "projection"]
    return projections, {r["cut"]: r for r in read(folder / "edgecut.csv")}


def _by_edge(runs: list[tuple[list[dict[str, str]], dict[str, dict[str, str]]]]):
    """Each edge with its projection row and its edge cut in every run (the runs must list the same edges)."""
    for i, edge in enumerate(r["path"] for r in runs[0][0]):
        rows = [projections[i] for projections, _ in runs]
        assert all(r["path"] == edge for r in rows), edge
        yield edge, rows, [cuts[edge] for _, cuts in runs]


def _seeds(values: list[float], fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in values)


def fig2(root: Path) -> list[str]:
    runs = [_analysis(root / f"hiresnet18-fashion-mnist-s{s}") for s in FIG2_SEEDS]
    out = [
        "| Edge | ratio trained, s0 / s1 / s2 | at initialisation, s0 / s1 / s2 | change | accuracy with the edge cut (points) |",
        "|---|---|---|---|---|",
    ]
    for edge, rows, cuts in _by_edge(runs):
        out.append(
            f"| {edge} | {_seeds([float(r['ratio']) for r in rows], '.2f')} "
            f"| {_seeds([float(r['ratio_init']) for r in rows], '.2f')} "
            f"| {_seeds([float(r['ratio_change']) for r in rows], '+.2f')} "
            f"| {_seeds([100 * float(c['change']) for c in cuts], '.1f')} |"
        )
    every = [cuts["all"] for _, cuts in runs]
    out.append(f"| all six cut | | | | {_seeds([100 * float(c['change']) for c in every], '.1f')} "
               f"(to {_seeds([100 * float(c['accuracy']) for c in every], '.1f')}%) |")
    return out


def variant_analyses(root: Path) -> list[str]:
    # The variants' names (In, Out, Out-all) are the grid's `version`s, as Table 2 prints them.
    version = {r["model"]: r["version"] for r in read(root / TABLE2)}
    out = [
        "| Variant | Edge | ratio trained (change from init) | cut (points) | all its edges cut (accuracy %) |",
        "|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        runs = [_analysis(root / f"ablation-hiresnet18-{variant}-s{s}") for s in VARIANT_SEEDS]
        every = _seeds([100 * float(cuts["all"]["accuracy"]) for _, cuts in runs], ".1f")
        for i, (edge, rows, cuts) in enumerate(_by_edge(runs)):
            ratios = " / ".join(f"{float(r['ratio']):.2f} ({float(r['ratio_change']):+.2f})" for r in rows)
            cut = _seeds([100 * float(c["change"]) for c in cuts], "+.1f")
            out.append(f"| {version[f'hiresnet18-{variant}']} | {edge} | {ratios} | {cut} | {every if i == 0 else ''} |")
    return out


def main(folder: str = "docs/results") -> None:
    root = Path(folder)
    t1 = read(root / TABLE1)
    print("## Table 1\n")
    print("\n".join(table1(t1)))
    print()
    print("\n".join(table1_against_original(t1)))
    print("\n## Table 2\n")
    print("\n".join(table2(read(root / TABLE2), read(root / TABLE2_VS_FULL))))
    print("\n## Fig. 2, HiResNet-18\n")
    print("\n".join(fig2(root)))
    print("\n## Fig. 2, Table 2 variants\n")
    print("\n".join(variant_analyses(root)))


if __name__ == "__main__":
    main(*sys.argv[1:])
