"""``hrgraph experiment --slurm``'s options and submission (the options are added to ``experiment``).

Kept apart from :mod:`hrgraph.cli.experiment` so that the Slurm path is one
call from it; torch and submitit are imported only when submitting.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

__all__ = ["slurm_options", "submit_slurm"]


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from ..train.slurm import parse_time

    if value is not None:
        try:
            parse_time(value)
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return value


_OPTIONS = [
    click.option("--slurm", is_flag=True, help="Submit the grid as a Slurm job array (one task per shard; preempted "
                 "tasks requeue and resume) through submitit, then return. pip install 'hrgraph[slurm]'."),
    click.option("--shards", type=click.IntRange(min=1), help="With --slurm: array size (default: one task per run)."),
    click.option("--partition", help="With --slurm: the Slurm partition."),
    click.option("--gpus-per-run", type=click.IntRange(min=0), default=0, show_default=True, help="With --slurm: GPUs per task."),
    click.option("--time", "time_limit", metavar="HH:MM", callback=_time, default="24:00", show_default=True,
                 help="With --slurm: time limit per task (a timed-out task requeues and resumes)."),
    click.option("--cpus-per-task", type=click.IntRange(min=1), help="With --slurm: CPUs per task."),
    click.option("--mem", help="With --slurm: memory per task, as Slurm's --mem (e.g. 16G)."),
    click.option("--slurm-logs", type=click.Path(file_okay=False, path_type=Path),
                 help="With --slurm: submitit's folder for logs (default: RUNS_DIR/slurm)."),
]


def slurm_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``--slurm`` options to a command; they arrive as one ``slurm`` dict keyword (``None`` without --slurm)."""

    @functools.wraps(func)
    def wrapper(*args: Any, slurm: bool, shards, partition, gpus_per_run, time_limit, cpus_per_task, mem, slurm_logs,
                **kwargs: Any) -> Any:
        given = dict(shards=shards, partition=partition, cpus_per_task=cpus_per_task, mem=mem, log_folder=slurm_logs)
        if not slurm:
            extra = [k for k, v in given.items() if v is not None] + (["gpus_per_run"] if gpus_per_run else [])
            if extra:
                names = ", ".join("--" + ("slurm-logs" if k == "log_folder" else k.replace("_", "-")) for k in extra)
                raise click.UsageError(f"{names} only apply with --slurm")
            return func(*args, slurm=None, **kwargs)
        return func(*args, slurm={**given, "gpus_per_run": gpus_per_run, "time": time_limit}, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def submit_slurm(grid_file: Path, runs_dir: Path, slurm: dict[str, Any], *, device: str, cluster: str = "slurm",
                 **train_options: Any) -> None:
    """Submit, then print the array's job id and where the logs go."""
    from ..train.slurm import submit_grid

    submission = submit_grid(grid_file, runs_dir, device=device, cluster=cluster, command=sys.argv,
                             **{k: v for k, v in slurm.items() if v is not None}, **train_options)
    click.echo(f"submitted job array {submission.job_id}: {len(submission.jobs)} tasks, runs in {runs_dir}")
    click.echo(f"logs: {submission.log_folder}/<job id>/ (squeue -j {submission.job_id}; rerun without --slurm, "
               f"or `hrgraph report {runs_dir}`, once it is done)")
