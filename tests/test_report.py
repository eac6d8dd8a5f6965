"""hrgraph.train.report and `hrgraph report`, on run folders written here in the run-folder format."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from hrgraph.cli import main
from hrgraph.errors import HrgraphError
from hrgraph.train.report import build_report, render_csv, render_markdown, welch_ttest

# test_acc1 per seed (0-1) of three models on one data set; "hi" is compared with "adj", "adj" with "orig".
ACC = {
    "orig": [0.801, 0.812, 0.795],
    "adj": [0.820, 0.815, 0.826],
    "hi": [0.851, 0.842, 0.848],
}
TAGS = {
    "orig": {"family": "ResNet", "version": "original", "baseline": ""},
    "adj": {"family": "ResNet", "version": "adjusted", "baseline": "orig"},
    "hi": {"family": "ResNet", "version": "hiresnet", "baseline": "adj"},
}
PARAMS = {"orig": 700_000, "adj": 713_000, "hi": 712_000}


def write_run(
    root: Path, model: str, seed: int, acc: float, *, data: str = "synthetic", finished: bool = True,
    curve: list[float] | None = None, epochs: int = 4,
) -> Path:
    folder = root / f"{model}__{data}__s{seed}"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.pt").write_bytes(b"")
    curve = curve if curve is not None else [acc * f for f in (0.7, 0.9, 1.0, 1.0)][:epochs]
    done = len(curve) if finished else max(1, len(curve) - 2)
    rows = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s"]
    rows += [f"{i + 1},1.0,0.5,1.0,{v},0.01,1.0,100.0" for i, v in enumerate(curve[:done])]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    summary = {
        "name": folder.name, "spec_name": model, "data": data, "seed": seed,
        "tags": {"model": model, "grid": "g", **TAGS.get(model, {})},
        "params": PARAMS.get(model, 1000), "macs": 1, "epochs": epochs, "epochs_done": done,
        "best_epoch": done, "best_val_acc": max(curve[:done]), "test_split": "test", "test_loss": 1.0,
        "test_acc1": acc if finished else None, "test_acc5": min(1.0, acc + 0.1) if finished else None,
        "wall_seconds": 1.0, "finished": finished,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text("tags: {}\n")
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for model, accs in ACC.items():
        for seed, acc in enumerate(accs):
            write_run(tmp_path, model, seed, acc)
    return tmp_path


def test_means_stds_and_pvalues_match_hand_computation(runs: Path) -> None:
    report = build_report(runs, target_acc=0.75)
    hi = report.group("hi", "synthetic")
    values = [a * 100 for a in ACC["hi"]]
    assert hi.top1 == pytest.approx(values)
    assert statistics.fmean(hi.top1) == pytest.approx(sum(values) / 3)
    # Sample standard deviation by hand: sqrt(sum((x - mean)^2) / (n - 1)).
    mean = sum(values) / 3
    assert statistics.stdev(hi.top1) == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 2))
    # Welch's t by hand for hi vs adj, its p from the t distribution's survival function.
    a, b = values, [x * 100 for x in ACC["adj"]]
    va, vb = statistics.variance(a) / 3, statistics.variance(b) / 3
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    assert hi.p_value == pytest.approx(2 * scipy_stats.t.sf(abs(t), df))
    assert report.group("orig", "synthetic").p_value is None  # no baseline
    md = render_markdown(report)
    assert f"{mean:.2f} ± {statistics.stdev(values):.2f}" in md
    assert f"{hi.p_value:.3f}" in md
    assert "Incomplete" not in md


def test_table_order_and_version_labels(runs: Path) -> None:
    md = render_markdown(build_report(runs))
    table = md.split("## Top-1 accuracy (%)")[1].split("## synthetic")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ResNet")]
    assert [r.split("|")[2].strip() for r in rows] == ["Original", "Adjusted", "HiResNet"]
    # 700,000 / 713,000 / 712,000 parameters: two decimals of M would print 0.71M twice.
    assert [r.split("|")[4].strip() for r in rows] == ["0.700M", "0.713M", "0.712M"]


def test_welch_matches_scipy() -> None:
    cases = [([1.0, 2.0, 3.5], [2.0, 2.5, 4.0, 6.0]), ([80.1, 81.2, 79.5], [82.0, 81.5, 82.6]), ([5, 5.1], [9, 9.3, 9.1])]
    for a, b in cases:
        ref = scipy_stats.ttest_ind(a, b, equal_var=False)
        t, df, p = welch_ttest(a, b)
        assert (t, p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_welch_undefined_cases_are_nan() -> None:
    assert all(math.isnan(x) for x in welch_ttest([1.0], [2.0, 3.0]))
    assert all(math.isnan(x) for x in welch_ttest([1.0, 1.0], [2.0, 2.0]))


def test_incomplete_groups_are_flagged_not_averaged_silently(tmp_path: Path) -> None:
    for seed, acc in enumerate(ACC["orig"]):
        write_run(tmp_path, "orig", seed, acc)
    write_run(tmp_path, "hi", 0, 0.85)
    write_run(tmp_path, "hi", 1, 0.84)
    write_run(tmp_path, "hi", 2, 0.0, finished=False)
    write_run(tmp_path, "adj", 0, 0.82)  # seeds 1 and 2 never started
    report = build_report(tmp_path)
    hi, adj = report.group("hi", "synthetic"), report.group("adj", "synthetic")
    assert (hi.n, hi.expected, hi.unfinished, hi.status) == (2, 3, 1, "n=2 of 3, 1 unfinished")
    assert adj.status == "n=1 of 3, 2 not started"
    assert hi.top1 == pytest.approx([85.0, 84.0])  # the unfinished run is not averaged in
    assert hi.p_value is None  # its baseline has one finished run: no test
    md = render_markdown(report)
    assert "**Incomplete**: 2 group(s)" in md
    assert "**84.50 ± 0.71 (n=2 of 3, 1 unfinished)**" in md


def test_manifest_counts_runs_not_started(tmp_path: Path) -> None:
    write_run(tmp_path, "orig", 0, 0.8)
    manifest = {"grid": "g", "runs": [
        {"dir": f"{m}__synthetic__s{s}", "data": "synthetic", "seed": s, "tags": {"model": m, **TAGS[m]}}
        for s in (0, 1) for m in ("orig", "hi")
    ]}
    (tmp_path / "g.grid.json").write_text(json.dumps(manifest))
    report = build_report(tmp_path)
    assert report.group("orig", "synthetic").status == "n=1 of 2, 1 not started"
    assert report.group("hi", "synthetic").status == "n=0 of 2, 2 not started"
    assert "3 not started" in render_markdown(report)


def test_epochs_to_target(tmp_path: Path) -> None:
    write_run(tmp_path, "orig", 0, 0.9, curve=[0.5, 0.86, 0.9])
    write_run(tmp_path, "orig", 1, 0.9, curve=[0.5, 0.7, 0.85])
    write_run(tmp_path, "orig", 2, 0.8, curve=[0.5, 0.7, 0.8])
    g = build_report(tmp_path, target_acc=0.85).group("orig", "synthetic")
    assert g.epochs_to_target == [2, 3]
    assert "2.5 (2/3; 1 not reached)" in render_markdown(build_report(tmp_path, target_acc=0.85))
    assert "not reached (0/3)" in render_markdown(build_report(tmp_path, target_acc=0.95))


def test_csv_has_one_row_per_group(runs: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(build_report(runs)))))
    assert [r["model"] for r in rows] == ["orig", "adj", "hi"]
    assert float(rows[2]["top1_mean"]) == pytest.approx(statistics.fmean(a * 100 for a in ACC["hi"]), abs=1e-4)
    assert rows[0]["p_welch"] == "" and float(rows[2]["p_welch"]) < 0.05


def test_several_data_sets_are_columns(tmp_path: Path) -> None:
    for data in ("cifar10", "cifar100"):
        for seed in (0, 1):
            write_run(tmp_path, "orig", seed, 0.8 + seed / 100, data=data)
    md = render_markdown(build_report(tmp_path))
    assert "| Family | Version | Model | #P | cifar10 | cifar100 |" in md
    assert "## cifar100" in md


def test_cli_writes_markdown_csv_and_figure(runs: Path, tmp_path: Path) -> None:
    out, table, figure = tmp_path / "r.md", tmp_path / "r.csv", tmp_path / "r.png"
    result = CliRunner().invoke(main, ["report", str(runs), "-o", str(out), "--csv", str(table), "--figure", str(figure),
                                       "--target-acc", "0.8"])
    assert result.exit_code == 0, result.output
    assert "## Top-1 accuracy" in out.read_text()
    assert "r.png" in out.read_text()
    assert table.read_text().startswith("data,family")
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_cli_prints_markdown_and_reports_an_empty_folder(runs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(runs)])
    assert result.exit_code == 0 and "| ResNet | HiResNet | hi |" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["report", str(empty)])
    assert result.exit_code == 1 and "no runs here" in result.output


def test_run_without_summary_yet_counts_as_unfinished_under_its_model(tmp_path: Path) -> None:
    # A run stopped in its first epoch has config.yaml and a checkpoint, no summary.json:
    # the report files it under the model and data set of its config, not as a stray folder.
    for seed, acc in enumerate(ACC["orig"]):
        write_run(tmp_path, "orig", seed, acc)
    folder = tmp_path / "hi__synthetic__s0"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "tags: {model: hi, family: F, version: hiresnet, grid: g}\nrecipe: {data: synthetic, seed: 0, epochs: 4}\n")
    report = build_report(tmp_path)
    hi = report.group("hi", "synthetic")
    assert (hi.n, hi.unfinished) == (0, 1)
    assert [g.model for g in report.models()].count("hi__synthetic__s0") == 0


def test_baseline_option_compares_every_model_with_one(runs: Path) -> None:
    report = build_report(runs, baseline="hi")
    orig, adj, hi = (report.group(m, "synthetic") for m in ("orig", "adj", "hi"))
    assert orig.baseline == adj.baseline == "hi" and hi.baseline == "" and hi.p_value is None
    expected = welch_ttest([a * 100 for a in ACC["orig"]], [a * 100 for a in ACC["hi"]])[2]
    assert orig.p_value == pytest.approx(expected)
    result = CliRunner().invoke(main, ["report", str(runs), "--baseline", "hii"])
    assert result.exit_code == 1 and "no model 'hii' among the runs (did you mean 'hi'?)" in result.output
