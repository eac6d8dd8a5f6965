"""`hrgraph experiment` and `hrgraph report`: run a grid of trainings, and compare what they gave.

Registered by :mod:`hrgraph.cli.main`; torch is imported
only when a run starts, so ``--help`` and ``--dry-run`` stay fast.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from .common import SpecLoading, handle_errors, spec_loading_options
from .slurm import slurm_options, submit_slurm
from ..errors import TrainingInterrupted
from ..files import write_atomic


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int]:
    from ..train.experiment import parse_shard

    if value is None:
        return (1, 1)
    try:
        return parse_shard(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.command(name="experiment")
@click.argument("grid_file", metavar="GRID.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the run folders go (default: runs/<grid name>).")
@click.option("--shard", metavar="I/N", callback=_shard, help="Only every N-th run, starting at the I-th (1-based): one job of a job array.")
@click.option("--dry-run", is_flag=True, help="Validate every spec, model derivation and recipe; list the runs and their status; train nothing.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--amp", is_flag=True, help="Mixed precision (CUDA).")
@click.option("--limit-train", type=click.IntRange(min=1),
              help="At most this many training images per epoch, after the validation hold-out (smoke runs; "
                   "overrides the grid's limit_train).")
@click.option("--limit-val", type=click.IntRange(min=1),
              help="At most this many val/test images (smoke runs; overrides the grid's limit_val).")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="Pin each run to N CPU threads (overrides the grid's threads key).")
@click.option("--log", "log", multiple=True, type=click.Choice(["tensorboard"]),
              help="Also log each run to TensorBoard (overrides the grid's log key).")
@click.option("--reuse-from", "reuse_from", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Runs folder of another grid: a run not started here whose folder of the same name there trained "
                   "exactly the same network, recipe, data, seed, threads, CPU and versions is copied (with "
                   "reused.json saying from where), not trained. Repeatable.")
@slurm_options
@spec_loading_options
@handle_errors
def experiment_command(
    grid_file: Path, runs_dir: Path | None, shard: tuple[int, int], dry_run: bool, device: str, amp: bool,
    limit_train: int | None, limit_val: int | None, threads: int | None, loading: SpecLoading,
    log: tuple[str, ...] = (), slurm: dict | None = None, reuse_from: tuple[Path, ...] = (),
) -> None:
    """Train every model x data set x seed of GRID.yaml, each in RUNS_DIR/<model>__<data>__s<seed>/.

    Rerun the same command to go on: finished runs are skipped, interrupted
    ones resumed from their last checkpoint, diverged ones left as they are;
    a run another process is training (it holds the run's lock) is skipped,
    so several processes can share one runs folder.  Models may be derived at run
    time (width scaling, ablation, parameter matching to another model of the
    grid); see docs/experiments.md.
    """
    from ..train.experiment import dry_run as plan, load_grid, run_grid

    grid = load_grid(grid_file)
    runs_dir = runs_dir or Path("runs") / grid.name
    if dry_run:
        rows = plan(grid, runs_dir, shard=shard, **loading.kwargs)
        width = max(len(r.run.name) for r in rows) if rows else 0
        click.echo(f"{grid.name}: {len(rows)} runs" + (f" (shard {shard[0]}/{shard[1]})" if shard != (1, 1) else "")
                   + f" in {runs_dir}")
        for r in rows:
            click.echo(f"  {r.run.name:<{width}}  {r.params:>12,} params  {r.epochs:>4} epochs  {r.status}")
        counts = {s: sum(r.status == s for r in rows) for s in ("done", "diverged", "partial", "todo")}
        click.echo(f"{counts['done']} done, " + (f"{counts['diverged']} diverged, " if counts["diverged"] else "")
                   + f"{counts['partial']} partial, {counts['todo']} to do; every spec, derivation and recipe is valid")
        return

    if slurm is not None:
        options = {"amp": amp, "limit_train": limit_train, "limit_val": limit_val,
                   **({"threads": threads} if threads is not None else {}), **({"log": list(log)} if log else {}),
                   **({"reuse_from": [str(p.resolve()) for p in reuse_from]} if reuse_from else {})}
        submit_slurm(grid_file, runs_dir, slurm, device=device, **options)
        return

    def on_run(run, status: str, position: int, total: int) -> None:
        what = {"done": "done, skipped", "diverged": "diverged earlier, skipped (delete its folder to retry)",
                "held": "held by another process, skipped", "partial": "resuming", "todo": "starting",
                "reused": "reused (the same run, finished in --reuse-from; reused.json)"}[status]
        click.echo(f"[{position}/{total}] {run.name}: {what}", err=True)

    def on_result(result, position: int, total: int) -> None:
        if result.action not in ("trained", "resumed", "diverged") or not result.seconds:
            return  # a skipped run was already announced
        summary = result.summary
        if result.action == "diverged":
            what = f"diverged at epoch {summary.get('diverged_epoch')}, step {summary.get('diverged_step')}"
        else:
            acc = summary.get("test_acc1")
            what = f"test top-1 {acc:.2%}" if isinstance(acc, (int, float)) else "no test split"
        click.echo(f"[{position}/{total}] {result.run.name}: {what}, {result.seconds:.0f} s", err=True)

    try:
        results = run_grid(grid, runs_dir, shard=shard, device=device, on_run=on_run, on_result=on_result,
                           command=sys.argv, amp=amp, limit_train=limit_train, limit_val=limit_val, **loading.kwargs,
                           reuse_from=reuse_from,
                           **({"threads": threads} if threads is not None else {}),
                           **({"log": list(log)} if log else {}))
    except TrainingInterrupted as err:
        click.echo(f"error: {err}", err=True)
        click.echo(f"rerun the same command to resume: {shlex.join(['hrgraph', *sys.argv[1:]])}", err=True)
        raise SystemExit(130) from None
    count = {a: sum(r.action == a for r in results) for a in ("trained", "resumed", "skipped", "diverged", "held", "reused")}
    parts = [f"{count['trained'] + count['resumed']} runs trained", f"{count['skipped']} already done"]
    parts += [f"{count['reused']} reused"] if count["reused"] else []
    parts += [f"{count['diverged']} diverged"] if count["diverged"] else []
    parts += [f"{count['held']} held by another process"] if count["held"] else []
    click.echo(f"{grid.name}: {', '.join(parts)}; `hrgraph report {runs_dir}` compares them")


def _refuse_inside(path: Path | None, runs_dir: Path, option: str) -> None:
    """Refuse an output inside the runs folder the report reads: it would become part of what the next report reads."""
    if path is None:
        return
    try:
        path.resolve().relative_to(runs_dir.resolve())
    except ValueError:
        return
    raise click.BadParameter(f"'{path}' is inside the runs folder '{runs_dir}' the report reads; write it elsewhere",
                             param_hint=option)


@click.command(name="report")
@click.argument("runs_dir", metavar="RUNS_DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the Markdown here (default: stdout).")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table as CSV.")
@click.option("--figure", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw mean validation accuracy curves with a ±std band (.png, .svg, .pdf).")
@click.option("--target-acc", type=click.FloatRange(min=0, max=1, min_open=True), default=0.85, show_default=True,
              help="Report the first epoch whose validation accuracy reaches this (0-1).")
@click.option("--baseline", metavar="MODEL", help="Compare every model with MODEL (default: each with its grid baseline).")
@click.option("--against", "committed", metavar="COMMITTED.csv", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Compare the runs' per-seed top-1 with a CSV an earlier report wrote: which runs moved, by how much.")
@handle_errors
def report_command(
    runs_dir: Path, out: Path | None, csv_out: Path | None, figure: Path | None, target_acc: float, baseline: str | None,
    committed: Path | None,
) -> None:
    """Compare the runs in RUNS_DIR in the layout of the HiResNet paper's Table 1.

    Top-1 (and top-5) test accuracy per model and data set as mean ± std over
    seeds; against each model's baseline the mean difference with its 95% CI,
    Hedges' g, Welch's p and its Holm adjustment over all comparisons of the
    report, the paired test where seeds match and the difference the design
    could detect; epochs to reach --target-acc.  Unfinished, missing, diverged,
    broken and smoke runs are marked and never averaged in.
    """
    from ..train.report import build_report, compare_against, plot_curves, render_csv, render_markdown

    for option, path in (("'-o' / '--out'", out), ("'--csv'", csv_out), ("'--figure'", figure)):
        _refuse_inside(path, runs_dir, option)
    report = build_report(runs_dir, target_acc=target_acc, baseline=baseline)
    against = compare_against(report, committed) if committed is not None else None
    if figure is not None:
        plot_curves(report, figure)
    link = None
    if figure is not None:
        try:
            link = str(figure.resolve().relative_to(out.resolve().parent)) if out else str(figure)
        except ValueError:
            link = str(figure.resolve())
    text = render_markdown(report, figure=link, against=against)
    if csv_out is not None:
        write_atomic(csv_out, render_csv(report))
    if out is None:
        click.echo(text)
    else:
        write_atomic(out, text)
        click.echo(f"wrote {out}" + (f", {csv_out}" if csv_out else "") + (f", {figure}" if figure else ""), err=True)


__all__ = ["experiment_command", "report_command"]
