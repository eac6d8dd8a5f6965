"""``hrgraph experiment --slurm``: a grid as a Slurm job array, through submitit.

Each array task trains one shard of the grid (``run_grid(shard=(i, n))``,
exactly what ``--shard i/n`` does on other schedulers).  Runs resume from their
last checkpoint, so preemption costs at most the steps since it: when Slurm
preempts or times out a task, submitit calls :meth:`ShardTask.checkpoint`,
which resubmits the same shard (requeue); the new attempt skips finished runs
and resumes the interrupted one.  submitit is optional:
``pip install 'hrgraph[slurm]'``.

The pickled task holds only paths and options (the grid is read again by each
task), so a grid edited between requeues is validated again as on any rerun.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GridError, TrainingError, TrainingInterrupted

__all__ = ["ShardTask", "SlurmSubmission", "parse_time", "submit_grid"]

_MISSING = "--slurm needs the submitit package: pip install 'hrgraph[slurm]'"


def parse_time(text: str) -> int:
    """Minutes of a Slurm time limit ``HH:MM``, ``D-HH:MM`` or ``MM``.

    Examples
    --------
    >>> parse_time("02:30"), parse_time("1-00:00"), parse_time("45")
    (150, 1440, 45)
    """
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+)", text.strip())
    if not match:
        raise ValueError(f"expected a time limit as HH:MM (or D-HH:MM, or minutes), not {text!r}")
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    total = days * 1440 + hours * 60 + minutes
    if total < 1:
        raise ValueError(f"a time limit must be at least one minute, not {text!r}")
    return total


@dataclass
class ShardTask:
    """One array task: train shard ``index`` of ``count`` of the grid; requeued on preemption."""

    grid_path: str
    runs_dir: str
    count: int
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)
    command: list[str] | None = None

    def __call__(self, index: int) -> list[dict[str, Any]]:
        from .experiment import load_grid, run_grid

        grid = load_grid(self.grid_path)
        try:
            results = run_grid(grid, self.runs_dir, shard=(index, self.count), device=self.device,
                               command=self.command, **self.options)
        except TrainingInterrupted:
            raise  # SIGTERM before preemption: the run is saved; submitit requeues through checkpoint()
        return [{"run": r.run.name, "action": r.action, "test_acc1": r.summary.get("test_acc1")} for r in results]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on preemption or timeout: run the same shard again (it resumes)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


@dataclass(frozen=True)
class SlurmSubmission:
    """What :func:`submit_grid` submitted: the array's job id, one job per shard, and where logs go."""

    job_id: str
    jobs: list[Any]
    log_folder: Path


def submit_grid(
    grid_path: str | Path,
    runs_dir: str | Path,
    *,
    log_folder: str | Path | None = None,
    shards: int | None = None,
    partition: str | None = None,
    gpus_per_run: int = 0,
    time: str = "24:00",
    cpus_per_task: int | None = None,
    mem: str | None = None,
    device: str = "auto",
    cluster: str | None = "slurm",
    command: list[str] | None = None,
    **train_options: Any,
) -> SlurmSubmission:
    """Submit the grid as a job array of ``shards`` tasks (default: one per run).

    Parameters
    ----------
    grid_path, runs_dir : path
        As for ``hrgraph experiment``.
    log_folder : path, optional
        submitit's folder (each task's stdout/stderr and pickles; default ``RUNS_DIR/slurm``).
    shards : int, optional
        Array size; each task trains every ``shards``-th run.
    partition, gpus_per_run, time, cpus_per_task, mem
        Slurm resources per task (``time`` as ``HH:MM``; ``mem`` as Slurm's ``--mem``, e.g. ``16G``).
    cluster : {"slurm", "local", "debug"}, optional
        submitit's executor (``"local"``: subprocesses on this machine, for testing).
    **train_options
        Passed to every run (``limit_train``, ``amp``, ``log``...).

    Raises
    ------
    TrainingError
        submitit is not installed.
    GridError
        The grid is not valid, or has no run.
    """
    try:
        import submitit
    except ImportError:
        raise TrainingError(_MISSING) from None
    from .experiment import load_grid, plan_runs

    grid = load_grid(grid_path)  # validated here, before anything is queued
    runs_dir = Path(runs_dir)
    total = len(plan_runs(grid, runs_dir))
    if total == 0:
        raise GridError("the grid has no run to submit", path=str(grid_path))
    count = min(shards or total, total)
    folder = Path(log_folder) if log_folder is not None else runs_dir / "slurm"
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    params: dict[str, Any] = {"timeout_min": parse_time(time), "name": f"hrgraph-{grid.name}",
                              "slurm_additional_parameters": {"requeue": True}}
    if gpus_per_run:
        params["gpus_per_node"] = gpus_per_run
    if cpus_per_task:
        params["cpus_per_task"] = cpus_per_task
    if partition:
        params["slurm_partition"] = partition
    if mem:
        params["slurm_mem"] = mem
    executor.update_parameters(**params)
    task = ShardTask(str(Path(grid_path).resolve()), str(runs_dir.resolve()), count, device, dict(train_options), command)
    jobs = executor.map_array(task, range(1, count + 1))
    job_id = str(jobs[0].job_id).split("_")[0] if jobs else ""
    return SlurmSubmission(job_id, jobs, folder)
