"""Experiment grids: models x data sets x seeds, each run in its own folder, resumable.

A grid file names one recipe (or one per data set), recipe overrides, the data
sets, the seeds and the models.  A model is a spec file, optionally derived at
run time: adapted to the data set (``classes``, ``input`` of a data entry),
scaled (``width``), ablated (``ablate``) and parameter-matched to another model
of the grid (``match``) -- in that order -- so that a scaled-down grid keeps
the paper's Adjusted baselines matched.  Every run goes to
``RUNS_DIR/<model>__<data>__s<seed>/``; a finished run is skipped, an
interrupted one resumed, so the same command can be rerun until the grid is
done, and ``shard=(i, n)`` splits it over a cluster job array.  No torch here:
the training function is imported only when a run starts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


from ..edit.ablate import ablate as ablate_spec
from ..errors import DivergedError, HrgraphError, RunLockedError
from ..files import write_atomic
from ..edit.match import match_params, scale_widths
from ..build.shapes import count_params
from ..spec.models import Spec, load_spec
from .runfolder import is_held, read_summary
from .grid import Ablation, DataEntry, Grid, GridModel, load_grid, parse_shard, run_dir_name, sanitise_name, select_shard

__all__ = [
    "DataEntry",
    "Ablation",
    "GridModel",
    "Grid",
    "Run",
    "PlannedRun",
    "RunResult",
    "load_grid",
    "plan_runs",
    "select_shard",
    "parse_shard",
    "run_status",
    "derive_spec",
    "run_recipe",
    "RunRecipe",
    "write_manifest",
    "dry_run",
    "run_grid",
    "run_dir_name",
    "MANIFEST_SUFFIX",
]

log = logging.getLogger(__name__)

#: ``RUNS_DIR/<grid name><MANIFEST_SUFFIX>`` lists the grid's runs, so that a
#: report can tell runs not started yet from runs that do not exist.
MANIFEST_SUFFIX = ".grid.json"


# -- runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One run of a grid: a model on a data set with a seed, and its folder."""

    index: int
    model: str
    data: str
    seed: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def plan_runs(grid: Grid, runs_dir: str | Path) -> list[Run]:
    """Every run of the grid, in a stable order: seeds, then data sets, then models.

    Seeds come outermost so that a grid stopped half-way has every model with
    its first seeds done: a report on it already compares all models.  A model
    with its own ``seeds`` runs at those seeds only.

    Examples
    --------
    >>> grid = load_grid({"name": "g", "recipe": "recipes/cpu-fashion-mnist.yaml", "data": ["synthetic"],
    ...                   "seeds": [0, 1], "models": [{"name": "a", "spec": "specs/resnet18.yaml"},
    ...                                               {"name": "b", "spec": "specs/plain18.yaml"}]}, base_dir=".")
    >>> [r.name for r in plan_runs(grid, "runs")]
    ['a__synthetic__s0', 'b__synthetic__s0', 'a__synthetic__s1', 'b__synthetic__s1']
    >>> grid = load_grid({"name": "g", "recipe": "recipes/cpu-fashion-mnist.yaml", "data": ["synthetic"],
    ...                   "seeds": [0, 1, 2], "models": [{"name": "a", "spec": "specs/resnet18.yaml"},
    ...                                                  {"name": "b", "spec": "specs/plain18.yaml", "seeds": [0]}]},
    ...                  base_dir=".")
    >>> [r.name for r in plan_runs(grid, "runs")]
    ['a__synthetic__s0', 'b__synthetic__s0', 'a__synthetic__s1', 'a__synthetic__s2']
    """
    runs_dir = Path(runs_dir)
    runs = []
    for seed in grid.all_seeds:
        for entry in grid.data_entries:
            for model in grid.models:
                if seed not in grid.seeds_of(model):
                    continue
                path = runs_dir / run_dir_name(model.name, entry.name, seed)
                runs.append(Run(len(runs), model.name, entry.name, seed, path))
    return runs


Status = Literal["done", "diverged", "partial", "todo"]


def run_status(path: str | Path, epochs: int) -> Status:
    """``done`` (finished with at least ``epochs`` epochs), ``diverged``, ``partial`` (a checkpoint to resume) or ``todo``.

    A diverged run (summary.json says ``diverged``) is done too, as far as the
    grid goes: resuming it would diverge again at the same step, so the grid
    never retries it; delete its folder to train it again (with another recipe).
    A folder with neither a finished summary nor ``checkpoints/last.pt`` (a run
    stopped before its first checkpoint) has nothing to resume: ``todo``.
    """
    path = Path(path)
    summary = read_summary(path)
    if summary and summary.get("diverged"):
        return "diverged"
    if summary and summary.get("finished") and int(summary.get("epochs_done") or 0) >= epochs:
        return "done"
    if (path / "checkpoints" / "last.pt").is_file():
        return "partial"
    return "todo"


# -- deriving models and recipes ------------------------------------------------


def _adapt(spec: Spec, entry: DataEntry) -> Spec:
    changes: dict[str, Any] = {}
    if entry.input is not None:
        changes["input"] = entry.input
    if entry.classes is not None:
        nodes = []
        for node in spec.nodes:
            if "classes" in type(node).model_fields:
                data = node.model_dump(by_alias=True)
                data["classes"] = entry.classes
                node = type(node).model_validate(data)
            nodes.append(node)
        changes["nodes"] = nodes
    return spec.replace(**changes) if changes else spec


def derive_spec(
    grid: Grid,
    model: str,
    data: str,
    *,
    cache: dict[tuple[str, str], Spec] | None = None,
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> Spec:
    """The spec a run of ``model`` on ``data`` trains: adapted, scaled, ablated, matched, named ``model``.

    Parameters
    ----------
    grid : Grid
    model, data : str
        A model name and a data name of the grid.
    cache : dict, optional
        Derived specs by (model, data), shared between calls (matching costs a
        few hundred parameter counts).
    allow_imports, allow_outside : bool
        Passed to :func:`~hrgraph.spec.models.load_spec` for the model's spec file.

    Raises
    ------
    GridError
        The spec file is invalid, or a derivation step fails (an unknown edge
        to ablate, a count that cannot be matched); located at the grid key.

    Examples
    --------
    >>> grid = load_grid({"name": "g", "recipe": "recipes/cpu-fashion-mnist.yaml", "data": ["synthetic"],
    ...     "seeds": [0], "models": [
    ...         {"name": "hi", "spec": "specs/hiresnet18.yaml", "width": 0.25},
    ...         {"name": "adj", "spec": "specs/resnet18.yaml", "width": 0.25, "match": "hi"}]}, base_dir=".")
    >>> hi, adj = derive_spec(grid, "hi", "synthetic"), derive_spec(grid, "adj", "synthetic")
    >>> adj.name, abs(count_params(adj) / count_params(hi) - 1) < 0.005
    ('adj', True)
    """
    cache = {} if cache is None else cache
    key = (model, data)
    if key in cache:
        return cache[key]
    entry = grid.data_entry(data)
    i = [m.name for m in grid.models].index(model)
    spec_model = grid.model(model)

    def step(what: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except HrgraphError as err:
            raise grid.error(f"{err}", "models", i, what) from err
        except ValueError as err:
            raise grid.error(str(err), "models", i, what) from err

    loading = {"allow_imports": allow_imports, "allow_outside": allow_outside}
    spec = step("spec", lambda: load_spec(grid.base_dir / spec_model.spec, **loading))
    spec = step("spec", lambda: _adapt(spec, entry))
    if spec_model.width is not None:
        spec = step("width", lambda: scale_widths(spec, spec_model.width))
    if spec_model.ablate is not None:
        a = spec_model.ablate
        spec = step("ablate", lambda: ablate_spec(spec, a.drop, keep=a.keep, variant=a.variant))
    if spec_model.match is not None:
        target = count_params(derive_spec(grid, spec_model.match, data, cache=cache, **loading))
        spec = step("match", lambda: match_params(spec, target, tolerance=spec_model.tolerance))
        spec = spec.replace(description=f"{spec.description} Matched to model {spec_model.match} of grid {grid.name}.")
    spec = spec.replace(name=model)
    # Shapes are checked here, not at the first epoch: an input the spec cannot take fails the dry run.
    step("spec", lambda: count_params(spec))
    cache[key] = spec
    return spec


@dataclass(frozen=True)
class RunRecipe:
    """The recipe of a run as train takes it, the overrides it applies, and the two combined."""

    recipe: Any
    overrides: dict[str, Any]
    resolved: Any


def run_recipe(grid: Grid, run: Run) -> RunRecipe:
    """The recipe of ``run`` (the grid's recipe for its data set) and the overrides train applies.

    The overrides are the grid's, plus the run's ``data`` and ``seed``.

    Raises
    ------
    RecipeError
        The recipe file is invalid (located in the recipe file).
    GridError
        An override is not a recipe key or not a valid value (located at ``overrides``).
    """
    from .recipe import apply_overrides, load_recipe

    recipe = load_recipe(grid.recipe_path(run.data))
    # Applied in two steps so that an error points at the grid key that caused it.
    try:
        resolved = apply_overrides(recipe, grid.overrides)
    except HrgraphError as err:
        key, _, message = err.message.removeprefix("override ").partition(": ")
        raise grid.error(message, "overrides", key) from err
    per_run = {"data": run.data, "seed": run.seed}
    try:
        resolved = apply_overrides(resolved, per_run)
    except HrgraphError as err:
        message = err.message.removeprefix("override ").partition(": ")[2]
        raise grid.error(message, "data", [d.name for d in grid.data_entries].index(run.data)) from err
    return RunRecipe(recipe, {**grid.overrides, **per_run}, resolved)


@dataclass(frozen=True)
class PlannedRun:
    """A run with what the dry run found: its parameter count, epochs and status."""

    run: Run
    params: int
    epochs: int
    status: Status


def dry_run(
    grid: Grid,
    runs_dir: str | Path,
    *,
    shard: tuple[int, int] = (1, 1),
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> list[PlannedRun]:
    """Validate every model (on every data set) and every recipe, and list the shard's runs with their status.

    Nothing is trained and no file is written.  ``allow_imports`` and
    ``allow_outside`` are passed to :func:`derive_spec`.

    Raises
    ------
    GridError, RecipeError, SpecError
        The first invalid model, recipe or override.
    """
    cache: dict[tuple[str, str], Spec] = {}
    runs = plan_runs(grid, runs_dir)
    epochs: dict[tuple[str, int], int] = {}
    for run in runs:
        derive_spec(grid, run.model, run.data, cache=cache, allow_imports=allow_imports, allow_outside=allow_outside)
        if (run.data, run.seed) not in epochs:
            epochs[(run.data, run.seed)] = run_recipe(grid, run).resolved.epochs
    planned = []
    for run in select_shard(runs, *shard):
        n = epochs[(run.data, run.seed)]
        planned.append(PlannedRun(run, count_params(cache[(run.model, run.data)]), n, run_status(run.path, n)))
    return planned


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_grid` did with one run.

    ``skipped`` (already done), ``trained``, ``resumed``, ``diverged`` (now or
    in an earlier session: never retried), ``held`` (another process is
    training it: left alone) or ``reused`` (copied from ``reuse_from``).
    """

    run: Run
    action: Literal["skipped", "trained", "resumed", "diverged", "held", "reused"]
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _tags(grid: Grid, run: Run) -> dict[str, str]:
    model = grid.model(run.model)
    return {
        "model": model.name,
        "family": model.family,
        "version": model.version,
        "baseline": model.baseline or "",
        "grid": grid.name,
    }


def write_manifest(grid: Grid, runs_dir: str | Path) -> Path:
    """Write ``RUNS_DIR/<grid name>.grid.json``: every run of the grid with its tags (for the report)."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    runs = [
        {"dir": r.name, "data": r.data, "seed": r.seed, "tags": _tags(grid, r)} for r in plan_runs(grid, runs_dir)
    ]
    path = runs_dir / f"{sanitise_name(grid.name)}{MANIFEST_SUFFIX}"
    write_atomic(path, json.dumps({"grid": grid.name, "path": grid.path, "runs": runs}, indent=1) + "\n")
    return path


def run_grid(
    grid: Grid,
    runs_dir: str | Path,
    *,
    shard: tuple[int, int] = (1, 1),
    device: str = "auto",
    train_fn: Callable[..., dict[str, Any]] | None = None,
    on_run: Callable[[Run, str, int, int], None] | None = None,
    on_result: Callable[[RunResult, int, int], None] | None = None,
    command: list[str] | None = None,
    allow_imports: bool = False,
    allow_outside: bool = False,
    reuse_from: Sequence[str | Path] = (),
    **train_options: Any,
) -> list[RunResult]:
    """Train the shard's runs that are not done; resume those that were interrupted.

    Parameters
    ----------
    grid : Grid
    runs_dir : str or Path
        Each run goes to ``runs_dir/<model>__<data>__s<seed>/``.
    shard : (int, int)
        ``(i, n)``: only every n-th run, starting at the i-th (1-based).
    device : str
        Passed to the training function.
    train_fn : callable, optional
        ``train(spec, recipe, *, out, overrides, resume, device, tags, command, **train_options)``;
        default :func:`hrgraph.train.loop.train`.
    on_run : callable, optional
        Called as ``on_run(run, status, position, total)`` before each run
        (status ``done``, ``diverged``, ``partial``, ``todo``, ``held`` or ``reused``), for progress output.
    on_result : callable, optional
        Called as ``on_result(result, position, total)`` as each run ends.
    command : list of str, optional
        The command line, recorded in each run's config.
    allow_imports, allow_outside : bool
        Passed to :func:`derive_spec` (the training function gets the loaded spec).
    reuse_from : sequence of path
        Runs folders of other grids: a run not started here whose folder of the
        same name there trained exactly the same thing (:mod:`hrgraph.train.reuse`)
        is copied, not trained.
    **train_options
        Passed on to the training function (``limit_train``, ``limit_val``, ``amp``, ...); ``limit_train``,
        ``limit_val`` and ``threads`` default to the grid's keys.

    Returns
    -------
    list of RunResult

    Raises
    ------
    HrgraphError
        From validation or training; ``TrainingInterrupted`` stops the grid
        after the interrupted run saved its checkpoint (rerun to resume).  A
        run that diverges (``DivergedError``) or is held by another process
        (``RunLockedError``) does not stop the grid.
    """
    if train_fn is None:
        from .loop import train as train_fn
    runs = select_shard(plan_runs(grid, runs_dir), *shard)
    write_manifest(grid, runs_dir)
    for key in ("limit_train", "limit_val", "threads"):
        if getattr(grid, key) is not None and train_options.get(key) is None:
            train_options[key] = getattr(grid, key)
    if grid.log and not train_options.get("log"):
        train_options["log"] = list(grid.log)
    cache: dict[tuple[str, str], Spec] = {}
    results = []
    for position, run in enumerate(runs, 1):
        recipe = run_recipe(grid, run)
        status = "held" if is_held(run.path) else run_status(run.path, recipe.resolved.epochs)
        reused = None
        if status == "todo" and reuse_from:
            reused = _reuse(grid, run, recipe, reuse_from, train_options, cache, allow_imports, allow_outside)
        if on_run is not None:
            on_run(run, "reused" if reused else status, position, len(runs))
        if reused is not None:
            result = reused
        elif status in ("done", "diverged", "held"):
            action = {"done": "skipped", "diverged": "diverged", "held": "held"}[status]
            result = RunResult(run, action, read_summary(run.path) or {})
        else:
            spec = derive_spec(grid, run.model, run.data, cache=cache, allow_imports=allow_imports,
                               allow_outside=allow_outside)
            log.info("%s run %s (%d/%d)", "resuming" if status == "partial" else "starting", run.name, position, len(runs))
            result = _train_run(train_fn, grid, run, spec, recipe, status, device=device, command=command,
                                **train_options)
        results.append(result)
        if on_result is not None:
            on_result(result, position, len(runs))
    return results


def _reuse(grid: Grid, run: Run, recipe: RunRecipe, sources: Sequence[str | Path], options: dict[str, Any],
           cache: dict[tuple[str, str], Spec], allow_imports: bool, allow_outside: bool) -> RunResult | None:
    """Copy ``run`` from the first of ``sources`` that trained exactly it (:mod:`hrgraph.train.reuse`)."""
    from .reuse import reuse_first

    spec = derive_spec(grid, run.model, run.data, cache=cache, allow_imports=allow_imports, allow_outside=allow_outside)
    limits = {"train": options.get("limit_train"), "val": options.get("limit_val")}
    if reuse_first(sources, run.path, spec=spec, recipe=recipe.resolved, overrides=recipe.overrides,
                   threads=options.get("threads"), limits=limits, tags=_tags(grid, run)):
        return RunResult(run, "reused", read_summary(run.path) or {})
    return None


def _train_run(train_fn: Callable[..., dict[str, Any]], grid: Grid, run: Run, spec: Spec, recipe: RunRecipe,
               status: str, **options: Any) -> RunResult:
    """Train one run; a divergence or another process's lock is its result, not the grid's end."""
    start = time.perf_counter()
    try:
        summary = train_fn(
            spec,
            recipe.recipe,
            out=run.path,
            overrides=recipe.overrides,
            resume=True,  # train starts a run that has no checkpoint yet, resumes one that has
            tags=_tags(grid, run),
            **options,
        )
    except DivergedError as err:
        log.warning("%s: %s", run.name, err)
        return RunResult(run, "diverged", read_summary(run.path) or {}, time.perf_counter() - start)
    except RunLockedError as err:
        log.warning("%s: %s", run.name, err)
        return RunResult(run, "held", {}, time.perf_counter() - start)
    action = "resumed" if status == "partial" else "trained"
    return RunResult(run, action, dict(summary or {}), time.perf_counter() - start)
