"""docs/results.md against the committed data: its tables are the CSVs', its text not stale.

The page reads the committed reports out loud; a number typed by hand (or left
from an earlier run) would be a claim no data backs.  scripts/results_tables.py
prints the tables from docs/results/*.csv; every row it prints must stand in the
page as printed, and the CSVs must agree with the archived run records.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
PAGE = ROOT / "docs" / "results.md"


def _tables():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(name: str) -> list[dict[str, str]]:
    with (RESULTS / name).open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("table", ["table1", "table1_against_original", "table2", "fig2", "variant_analyses"])
def test_every_table_line_of_the_page_is_the_scripts(table: str) -> None:
    tables = _tables()
    lines = {
        "table1": lambda: tables.table1(_rows(tables.TABLE1)),
        "table1_against_original": lambda: tables.table1_against_original(_rows(tables.TABLE1)),
        "table2": lambda: tables.table2(_rows(tables.TABLE2), _rows(tables.TABLE2_VS_FULL)),
        "fig2": lambda: tables.fig2(RESULTS),
        "variant_analyses": lambda: tables.variant_analyses(RESULTS),
    }[table]()
    page = PAGE.read_text(encoding="utf-8")
    # The per-seed and Holm lines are folded into prose on the page: compare their numbers, not their wrapping.
    flat = " ".join(page.split())
    missing = [line for line in lines if line.startswith("|") and line not in page]
    missing += [line for line in lines if line.startswith("- ") and " ".join(line[2:].split()) not in flat]
    assert not missing, "docs/results.md differs from scripts/results_tables.py:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", ["fashion-mnist-cpu", "fashion-mnist-ablation"])
def test_the_csvs_are_the_archived_runs(name: str) -> None:
    """Each model's per-seed values are the archived summaries', and Welch's p is scipy's on them."""
    rows = {r["model"]: r for r in _rows(f"{name}.csv")}
    runs = RESULTS / "runs" / name
    found: dict[str, dict[int, float]] = {}
    for summary in sorted(runs.glob("*/summary.json")):
        data = json.loads(summary.read_text())
        model, _, seed = summary.parent.name.split("__")
        found.setdefault(model, {})[int(seed[1:])] = round(100 * data["test_acc1"], 2)
    for model, row in rows.items():
        seeds = {int(s): round(float(v), 2) for s, v in (x.split(":") for x in row["top1_by_seed"].split(";"))}
        assert seeds == found[model], model
        if row["baseline"]:
            base = list(found[row["baseline"]].values())
            p = stats.ttest_ind(list(seeds.values()), base, equal_var=False).pvalue
            assert float(row["p_welch"]) == pytest.approx(p, rel=1e-4, abs=1e-6), model


def test_the_page_has_no_stale_status() -> None:
    page = PAGE.read_text(encoding="utf-8").lower()
    for stale in ("has not been run", "not been run yet", "interim", "still training", "under way"):
        assert stale not in page, stale


def test_the_grids_have_the_seeds_the_page_claims() -> None:
    """Table 1: every model at 8 finished seeds; Table 2: its main rows at 8, ResNet (adj.) among them."""
    table1 = _rows("fashion-mnist-cpu.csv")
    assert table1 and all(int(r["n"]) >= 8 and r["n"] == r["expected"] for r in table1)
    table2 = {r["model"]: r for r in _rows("fashion-mnist-ablation.csv")}
    for model in ("resnet18", "resnet18-adjusted", "hiresnet18", "hiresnet18-in", "hiresnet18-out", "hiresnet18-out-all"):
        assert int(table2[model]["n"]) >= 8, model
    assert all(r["n"] == r["expected"] for r in table2.values())


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/contributions.csv")), ids=lambda p: p.parent.name)
def test_every_committed_analysis_has_its_baseline_at_initialisation(path: Path) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"mean_abs_init", "ratio_init", "ratio_change"} <= set(rows[0])
    for r in rows:
        assert float(r["ratio_change"]) == pytest.approx(float(r["ratio"]) - float(r["ratio_init"]), abs=1e-9)
