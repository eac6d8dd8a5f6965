"""hrgraph.train.report and `hrgraph report`, on run folders written here in the run-folder format."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from scipy import stats as scipy_stats

from hrgraph.cli.main import main
from hrgraph.errors import HrgraphError
from hrgraph.train.report import build_report, render_csv, render_markdown, welch_ttest
from hrgraph.train.stats import holm

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


MACHINE = {"threads": 2, "cpu": "Test CPU 9000", "gpu": None, "torch": "2.0"}


def write_run(
    root: Path, model: str, seed: int, acc: float, *, data: str = "synthetic", finished: bool = True,
    curve: list[float] | None = None, epochs: int = 4, fingerprint: str = "", machine: dict | None = None,
    limits: dict | None = None, params: int | None = None,
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
        "params": params or PARAMS.get(model, 1000), "macs": 1, "epochs": epochs, "epochs_done": done,
        "best_epoch": done, "best_val_acc": max(curve[:done]), "test_split": "test", "test_loss": 1.0,
        "test_acc1": acc if finished else None, "test_acc5": min(1.0, acc + 0.1) if finished else None,
        "wall_seconds": 1.0, "finished": finished,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    config = {"spec_fingerprint": fingerprint or f"fp-{model}", "tags": summary["tags"],
              "recipe": {"data": data, "seed": seed, "epochs": epochs}, "commands": [["hrgraph", "experiment", "g.yaml"]],
              "machine": machine or MACHINE, **({"limits": limits} if limits else {})}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for model, accs in ACC.items():
        for seed, acc in enumerate(accs):
            write_run(tmp_path / "runs", model, seed, acc)
    return tmp_path / "runs"


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


def test_manifest_seeds_are_per_model(tmp_path: Path) -> None:
    """A grid that gives one model fewer seeds (a per-model ``seeds`` key) does not count the rest as missing."""
    for s in range(3):
        write_run(tmp_path, "orig", s, 0.8)
    write_run(tmp_path, "hi", 0, 0.8)
    plan = [("orig", s) for s in range(3)] + [("hi", 0)]
    manifest = {"grid": "g", "runs": [
        {"dir": f"{m}__synthetic__s{s}", "data": "synthetic", "seed": s, "tags": {"model": m, **TAGS[m]}} for m, s in plan
    ]}
    (tmp_path / "g.grid.json").write_text(json.dumps(manifest))
    report = build_report(tmp_path)
    assert report.group("orig", "synthetic").status == "n=3"
    assert report.group("hi", "synthetic").status == "n=1"
    assert "not started" not in render_markdown(report)


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


# -- statistics a reviewer asks for ----------------------------------------------------


def _csv_rows(runs: Path, tmp_path: Path, *args: str) -> dict[str, dict[str, str]]:
    table = tmp_path / "r.csv"
    result = CliRunner().invoke(main, ["report", str(runs), "--csv", str(table), *args])
    assert result.exit_code == 0, result.output
    return {r["label"]: r for r in csv.DictReader(io.StringIO(table.read_text()))}


def test_csv_has_ci_and_holm_columns_and_welch_p_is_scipys(runs: Path, tmp_path: Path) -> None:
    rows = _csv_rows(runs, tmp_path)
    columns = list(rows["hi"])
    assert {"diff_ci_low", "diff_ci_high", "paired_ci_low", "paired_ci_high"} <= set(columns)
    assert {"p_holm", "holm_family"} <= set(columns)
    for model, base in (("hi", "adj"), ("adj", "orig")):
        a, b = ACC[model], ACC[base]
        ref = scipy_stats.ttest_ind(a, b, equal_var=False)
        assert float(rows[model]["p_welch"]) == pytest.approx(ref.pvalue, rel=1e-5)
        # The interval is scipy's, in points (test accuracies in %).
        ci = scipy_stats.ttest_ind([x * 100 for x in a], [x * 100 for x in b], equal_var=False).confidence_interval()
        assert float(rows[model]["diff_ci_low"]) == pytest.approx(ci.low, abs=1e-4)
        assert float(rows[model]["diff_ci_high"]) == pytest.approx(ci.high, abs=1e-4)
        # Same seeds 0, 1, 2: the paired test is scipy's ttest_rel.
        assert float(rows[model]["p_paired"]) == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue, rel=1e-5)
        assert rows[model]["n_paired"] == "3"
    assert rows["orig"]["p_welch"] == rows["orig"]["p_holm"] == rows["orig"]["diff_ci_low"] == ""


def test_holm_against_a_hand_computed_example() -> None:
    # m = 4. Sorted: 0.005*4 = 0.02; 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> raised to 0.06 (monotone).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert math.isnan(holm([0.2, math.nan])[1]) and holm([0.2, math.nan])[0] == pytest.approx(0.2)  # family of one


def test_report_holm_covers_every_comparison_and_says_so(runs: Path) -> None:
    report = build_report(runs)
    hi, adj = report.group("hi", "synthetic"), report.group("adj", "synthetic")
    ps = sorted([hi.comparison.p_welch, adj.comparison.p_welch])
    expected = {ps[0]: min(1, 2 * ps[0]), ps[1]: max(min(1, 2 * ps[0]), ps[1])}
    assert hi.comparison.p_holm == pytest.approx(expected[hi.comparison.p_welch])
    assert adj.comparison.p_holm == pytest.approx(expected[adj.comparison.p_welch])
    assert report.comparisons == 2
    md = render_markdown(report)
    assert "Holm's method over the 2 comparison(s) of this report" in md
    c = hi.comparison
    assert f"{c.diff:+.2f} [{c.diff_ci_low:+.2f}, {c.diff_ci_high:+.2f}]" in md
    assert f"{c.p_holm:.3f}" in md


def test_hedges_g_and_detectable_difference(runs: Path) -> None:
    c = build_report(runs).group("hi", "synthetic").comparison
    a, b = [x * 100 for x in ACC["hi"]], [x * 100 for x in ACC["adj"]]
    sd = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)
    d = (statistics.fmean(a) - statistics.fmean(b)) / sd
    assert c.hedges_g == pytest.approx(d * (1 - 3 / (4 * 4 - 1)), rel=0.01)  # the usual approximation of J
    # At the detectable difference, a two-sided 5% Student t-test has 80% power (noncentral t, computed here anew).
    df, nc = 4, c.detectable_diff / (sd * math.sqrt(2 / 3))
    crit = scipy_stats.t.ppf(0.975, df)
    assert scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc) == pytest.approx(0.8, abs=1e-6)
    md = render_markdown(build_report(runs))
    assert f"a true difference of {c.detectable_diff:.2f} points would be detected with 80% power" in md


def test_paired_test_only_where_seeds_are_shared(tmp_path: Path) -> None:
    for seed, acc in enumerate(ACC["adj"]):
        write_run(tmp_path, "adj", seed, acc)
    for seed, acc in zip((5, 6, 7), ACC["hi"]):
        write_run(tmp_path, "hi", seed, acc)
    report = build_report(tmp_path)
    c = report.group("hi", "synthetic").comparison
    assert c.n_paired == 0 and math.isnan(c.p_paired) and not math.isnan(c.p_welch)
    assert "no shared seeds, no paired test" in render_markdown(report)


# -- runs that must not be averaged ----------------------------------------------------


def test_diverged_runs_are_listed_apart_and_never_averaged(tmp_path: Path) -> None:
    for seed, acc in enumerate(ACC["adj"]):
        write_run(tmp_path, "adj", seed, acc)
    write_run(tmp_path, "hi", 0, 0.85)
    write_run(tmp_path, "hi", 1, 0.84)
    flagged = write_run(tmp_path, "hi", 2, 0.1)
    summary = json.loads((flagged / "summary.json").read_text())
    (flagged / "summary.json").write_text(json.dumps({**summary, "diverged": True, "diverged_epoch": 3, "diverged_step": 17}))
    nan_acc = write_run(tmp_path, "hi", 3, 0.1)
    (nan_acc / "summary.json").write_text((nan_acc / "summary.json").read_text().replace('"test_acc1": 0.1', '"test_acc1": NaN'))
    nan_loss = write_run(tmp_path, "adj", 3, 0.5)
    (nan_loss / "metrics.csv").write_text((nan_loss / "metrics.csv").read_text().replace("\n3,1.0", "\n3,nan"))
    report = build_report(tmp_path)
    hi, adj = report.group("hi", "synthetic"), report.group("adj", "synthetic")
    assert hi.top1 == pytest.approx([85.0, 84.0]) and (hi.n, hi.diverged) == (2, 2)
    assert adj.top1 == pytest.approx([a * 100 for a in ACC["adj"]]) and adj.diverged == 1
    assert hi.status == "n=2 of 4, 2 diverged"
    md = render_markdown(report)
    section = md.split("## Diverged runs (not averaged)")[1]
    assert "diverged at epoch 3, step 17 (summary.json)" in section
    assert "test_acc1 not finite (summary.json)" in section
    assert "train_loss not finite at epoch 3 (metrics.csv)" in section
    rows = {r["label"]: r for r in csv.DictReader(io.StringIO(render_csv(report)))}
    assert rows["hi"]["diverged"] == "2" and rows["hi"]["n"] == "2"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "metrics.csv").write_bytes(b"\x00\x01garbage\xff\n"), "metrics.csv"),
        (lambda f: (f / "metrics.csv").write_text("epoch,val_acc\n1,0.5\nx,0.6\n"), "metrics.csv line 3"),
        (lambda f: (f / "metrics.csv").write_text("a,b\n1,2\n"), "no header with epoch and val_acc"),
        (lambda f: (f / "summary.json").write_text("{not json"), "summary.json is not valid JSON"),
        (lambda f: (f / "summary.json").write_text("[1, 2]"), "summary.json is a JSON list"),
        (lambda f: _edit_summary(f, epochs_done="x"), 'epochs_done is "x", not a count'),
        (lambda f: _edit_summary(f, test_acc1="high"), 'test_acc1 is "high", not a number'),
        (lambda f: _edit_summary(f, test_acc1=87.5), "test_acc1 is 87.5, not an accuracy in [0, 1]"),
        (lambda f: _edit_summary(f, finished="yes"), 'finished is "yes", not true or false'),
        (lambda f: _edit_summary(f, test_acc1=None), "finished but test_acc1 is null"),
        (lambda f: _edit_summary(f, epochs_done=9), "metrics.csv has 4 epochs, summary.json says epochs_done 9"),
    ],
    ids=["binary-metrics", "bad-epoch", "no-header", "bad-json", "json-list", "str-count", "str-acc", "percent-acc",
         "str-flag", "no-test-acc", "epochs-disagree"],
)
def test_a_broken_run_is_skipped_and_listed_never_aborting_the_report(tmp_path: Path, damage, reason: str) -> None:
    for seed, acc in enumerate(ACC["orig"]):
        write_run(tmp_path, "orig", seed, acc)
    for seed, acc in enumerate(ACC["hi"]):
        folder = write_run(tmp_path, "hi", seed, acc)
    damage(folder)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    section = result.output.split("## Broken runs (skipped)")[1]
    assert folder.name in section and reason in section
    hi = build_report(tmp_path).group("hi", "synthetic")
    assert hi.top1 == pytest.approx([a * 100 for a in ACC["hi"][:2]])  # the broken run is not averaged in
    assert hi.status == "n=2 of 3, 1 broken"  # filed under its model (config.yaml still says which), not "not started"
    # Epochs to the target count the two valid runs only: the broken one is not shown as "not reached".
    detail = render_markdown(build_report(tmp_path, target_acc=0.5)).split("## synthetic")[1]
    assert next(line for line in detail.splitlines() if "| hi |" in line).endswith("| 1.0 (2/2) |")


def _edit_summary(folder: Path, **changes) -> None:
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, **changes}))


def test_same_model_name_with_different_networks_is_two_rows(tmp_path: Path) -> None:
    for seed, acc in enumerate(ACC["orig"]):
        write_run(tmp_path, "orig", seed, acc)
    write_run(tmp_path, "hi", 0, 0.85, fingerprint="aaaaaaaa1111", params=21_382)
    write_run(tmp_path, "hi", 1, 0.84, fingerprint="aaaaaaaa1111", params=21_382)
    write_run(tmp_path, "hi", 2, 0.70, fingerprint="bbbbbbbb2222", params=21_433)
    report = build_report(tmp_path, baseline="orig")
    a, b = report.group("hi [aaaaaaaa]", "synthetic"), report.group("hi [bbbbbbbb]", "synthetic")
    assert a.top1 == pytest.approx([85.0, 84.0]) and b.top1 == pytest.approx([70.0])
    assert report.group("hi", "synthetic") is None  # ambiguous: no single group answers to the bare name
    md = render_markdown(report)
    assert "**Different networks under one name**: hi on synthetic" in md
    assert "| hi [aaaaaaaa] | 21.38K |" in md and "| hi [bbbbbbbb] | 21.43K |" in md
    # Compared with the baseline each on its own; the other way round the baseline name is ambiguous.
    assert a.comparison is not None and a.comparison.n == 2
    report = build_report(tmp_path, baseline="hi")
    assert report.group("orig", "synthetic").comparison is None
    assert "baseline hi has 2 different networks on synthetic: not compared" in render_markdown(report)


# -- what the reader must know about the runs ------------------------------------------


def test_params_shown_with_enough_digits_to_tell_models_apart(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_run(tmp_path, "orig", seed, 0.8, params=21_382)
        write_run(tmp_path, "hi", seed, 0.8, params=21_433)
    md = render_markdown(build_report(tmp_path))
    assert "| orig | 21.38K |" in md and "| hi | 21.43K |" in md
    assert "21.4K" not in md


def test_one_epoch_curves_are_drawn_with_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.axes import Axes

    from hrgraph.train.report import plot_curves

    for seed in (0, 1):
        write_run(tmp_path / "runs", "orig", seed, 0.8, curve=[0.8 + seed / 100], epochs=1)
    drawn = []
    original = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **kw: drawn.append((a, kw)) or original(self, *a, **kw))
    plot_curves(build_report(tmp_path / "runs"), tmp_path / "c.png")
    (args, kwargs), = drawn
    assert args[0] == [1] and kwargs["marker"] == "o"  # a single point: without a marker the axes look empty


def test_smoke_runs_are_marked(tmp_path: Path) -> None:
    write_run(tmp_path, "orig", 0, 0.8, limits={"train": 96, "val": 48})
    folder = write_run(tmp_path, "orig", 1, 0.8)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["commands"] = [["hrgraph", "experiment", "g.yaml", "--limit-train", "96"]]  # runs from before 'limits'
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    report = build_report(tmp_path)
    assert report.group("orig", "synthetic").status == "n=2, smoke: --limit-train 96 --limit-val 48"
    assert "**Smoke runs**: 2 run(s)" in render_markdown(report)


def test_machine_line_and_warning_for_mixed_machines(runs: Path, tmp_path: Path) -> None:
    assert "Machine: 2 threads, Test CPU 9000 (every run)." in render_markdown(build_report(runs))
    write_run(tmp_path, "orig", 0, 0.8)
    write_run(tmp_path, "orig", 1, 0.8, machine={"threads": 1, "cpu": "Other CPU"})
    md = render_markdown(build_report(tmp_path))
    assert "**Different machines**" in md
    assert "- 1 thread, Other CPU: 1 runs (orig on synthetic)" in md


@pytest.mark.parametrize("option", ["-o", "--csv", "--figure"])
def test_outputs_inside_the_runs_folder_are_refused(runs: Path, option: str) -> None:
    target = runs / "orig__synthetic__s0" / "report.png"
    result = CliRunner().invoke(main, ["report", str(runs), option, str(target)])
    assert result.exit_code == 2 and "inside the runs folder" in result.output
    assert not target.exists()


def test_against_a_committed_csv_says_which_runs_moved(runs: Path, tmp_path: Path) -> None:
    committed = tmp_path / "committed.csv"
    result = CliRunner().invoke(main, ["report", str(runs), "--csv", str(committed)])
    assert result.exit_code == 0, result.output
    row = next(r for r in csv.DictReader(committed.open()) if r["model"] == "hi")
    assert row["top1_by_seed"] == "0:85.1000;1:84.2000;2:84.8000"
    _edit_summary(runs / "hi__synthetic__s1", test_acc1=0.845)  # a rerun moves one run by 0.3 points
    result = CliRunner().invoke(main, ["report", str(runs), "--against", str(committed)])
    assert result.exit_code == 0, result.output
    section = result.output.split("## Rerun against")[1]
    assert "| synthetic | hi | 1 | 84.20 | 84.50 | +0.30 |" in section
    assert "8 of 9 runs identical; largest |difference| 0.30 points; every move is within the seed spread" in section
    _edit_summary(runs / "hi__synthetic__s1", test_acc1=0.90)  # 5.8 points: far outside a 0.46-point spread
    result = CliRunner().invoke(main, ["report", str(runs), "--against", str(committed)])
    assert "1 run(s) moved by more than the seed spread (hi s1)" in result.output


def test_against_an_old_csv_without_per_seed_results_is_an_error(runs: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.csv"
    old.write_text("data,family,version,model,params,n,top1_mean\nsynthetic,ResNet,original,orig,1,3,80.0\n")
    result = CliRunner().invoke(main, ["report", str(runs), "--against", str(old)])
    assert result.exit_code == 1 and "no per-seed results" in result.output


def test_against_a_csv_without_spreads_does_not_claim_the_moves_are_noise(runs: Path, tmp_path: Path) -> None:
    committed = tmp_path / "committed.csv"
    committed.write_text("data,model,top1_by_seed\nsynthetic,hi,0:85.1000;1:80.0000;2:84.8000\n")
    result = CliRunner().invoke(main, ["report", str(runs), "--against", str(committed)])
    assert result.exit_code == 0, result.output
    section = result.output.split("## Rerun against")[1]
    assert "every move is within the seed spread" not in section
    assert "for 3 run(s) the committed results give no spread" in section
