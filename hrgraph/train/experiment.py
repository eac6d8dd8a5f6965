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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..ablate import ablate as ablate_spec
from ..diagnostics import fields_of, first_error, pydantic_message
from ..errors import GridError, HrgraphError, SpecError, did_you_mean
from ..files import write_atomic
from ..match import TOLERANCE, match_params, scale_widths
from ..shapes import count_params
from ..source import Mark, locate, parse_yaml
from ..spec import InputShape, Spec, load_spec

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

#: Where ``version`` is one of these, the report orders and labels rows as the paper's Table 1.
VERSIONS = ("original", "adjusted", "hiresnet")


class _Frozen(BaseModel):
    # strict: a quoted "0.25" or a boolean seed is a mistake in a grid file, not something to coerce.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class DataEntry(_Frozen):
    """A data set of the grid; ``classes`` and ``input`` adapt every model's spec to it."""

    name: str = Field(min_length=1, description="A data name as recipes take it: cifar10, fashion-mnist, synthetic, ...")
    classes: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="Set the classifier's number of classes (e.g. 100 for cifar100)."
    )
    input: InputShape | None = Field(default=None, description="Set the spec's input shape (e.g. 64x64 for tiny-imagenet).")


class Ablation(_Frozen):
    """Edges to remove from a model's spec (exactly one key; see :func:`hrgraph.ablate.ablate`)."""

    drop: list[str] | None = None
    keep: list[str] | None = None
    variant: Literal["in", "out"] | None = None


def _data_entry(value: Any) -> Any:
    # A bare name is the common case: ``data: [cifar10]``.
    return {"name": value} if isinstance(value, str) else value


class GridModel(_Frozen):
    """One model of the grid: a spec, and how to derive the trained network from it."""

    name: str = Field(min_length=1)
    spec: str = Field(min_length=1, description="Spec file, relative to the grid file.")
    width: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Scale every hidden width by this factor (cardinality multiples kept)."
    )
    ablate: Ablation | None = None
    match: str | None = Field(default=None, description="Match the parameter count of this model of the grid.")
    tolerance: Annotated[float, Field(gt=0, lt=1)] = TOLERANCE
    family: str = ""
    version: str = Field(default="", description="original | adjusted | hiresnet | free text")
    baseline: str | None = Field(default=None, description="The model this one is compared against in the report.")


class Grid(_Frozen):
    """An experiment grid: recipe(s), overrides, data sets, seeds and models."""

    version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    recipe: str | dict[str, str] = Field(description="A recipe file, or data name -> recipe file (relative to the grid).")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Recipe keys (dotted) set for every run.")
    data: list[Annotated[DataEntry, BeforeValidator(_data_entry)]] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    models: list[GridModel] = Field(min_length=1)

    _path: str | None = None
    _base_dir: Path = Path(".")
    _raw: Any = None

    @property
    def path(self) -> str | None:
        """The grid file, if loaded from one."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """Where the grid's spec and recipe paths start: the grid file's folder."""
        return self._base_dir

    @property
    def data_entries(self) -> list[DataEntry]:
        return list(self.data)

    def model(self, name: str) -> GridModel:
        for model in self.models:
            if model.name == name:
                return model
        raise GridError(f"no model '{name}' in grid {self.name}{did_you_mean(name, [m.name for m in self.models])}")

    def data_entry(self, name: str) -> DataEntry:
        for entry in self.data_entries:
            if entry.name == name:
                return entry
        raise GridError(f"no data set '{name}' in grid {self.name}")

    def recipe_path(self, data: str) -> Path:
        ref = self.recipe if isinstance(self.recipe, str) else self.recipe[data]
        return self.base_dir / ref

    def mark(self, *loc: Any) -> Mark | None:
        """Source position of ``loc`` in the grid file (or the closest enclosing key)."""
        return locate(self._raw, loc)[0] if self._raw is not None else None

    def error(self, message: str, *loc: Any) -> GridError:
        """A :class:`GridError` located at ``loc`` of the grid file."""
        mark = self.mark(*loc)
        where = _where(self._raw, loc)
        text = f"{where}: {message}" if where else message
        if mark is None:
            return GridError(text, path=self._path)
        return GridError(text, path=mark.path or self._path, line=mark.line, column=mark.column)


# -- loading -------------------------------------------------------------------


def _where(raw: Any, loc: Sequence[Any]) -> str:
    """``models[hiresnet18].width`` for ``("models", 3, "width")``: items named by their name where they have one."""
    parts: list[str] = []
    current = raw
    for key in loc:
        item = None
        if isinstance(key, int) and isinstance(current, list) and 0 <= key < len(current):
            item = current[key]
            name = item.get("name") if isinstance(item, Mapping) else item if isinstance(item, str) else None
            parts[-1:] = [f"{parts[-1] if parts else ''}[{name if isinstance(name, str) else key}]"]
        else:
            if isinstance(current, Mapping) and isinstance(key, str):
                item = current.get(key)
            parts.append(str(key))
        current = item
    return ".".join(parts)


def _fields_at(loc: Sequence[Any]) -> list[str]:
    """Allowed keys of the model at ``loc`` (for "did you mean")."""
    model: type[BaseModel] = Grid
    keys = [k for k in loc if isinstance(k, str)]
    for key in keys:
        nested = {"models": GridModel, "ablate": Ablation, "data": DataEntry, "input": InputShape}.get(key)
        if nested is None:
            break
        model = nested
    return fields_of(model)


def _present(raw: Any, loc: Sequence[Any]) -> tuple[Any, ...]:
    """The keys of ``loc`` that exist in ``raw`` (pydantic adds union and validator tags that do not)."""
    kept = []
    current = raw
    for key in loc:
        if isinstance(current, Mapping) and isinstance(key, str) and key in current:
            current = current[key]
        elif isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current):
            current = current[key]
        else:
            continue
        kept.append(key)
    return tuple(kept)


def _from_pydantic(raw: Any, path: str | None, err: dict[str, Any]) -> GridError:
    present = _present(raw, tuple(err["loc"]))
    mark, _ = locate(raw, present)
    msg = pydantic_message(err, lambda loc: _fields_at(_present(raw, loc)))
    if err["type"] == "extra_forbidden":
        present = present[:-1]  # the message names the key; the location is its mapping's
    where = _where(raw, present)
    text = f"{where}: {msg}" if where else msg
    if mark is None:
        return GridError(text, path=path)
    return GridError(text, path=mark.path or path, line=mark.line, column=mark.column)


def load_grid(source: str | Path | Mapping[str, Any], *, base_dir: str | Path | None = None) -> Grid:
    """Load and check an experiment grid.

    Parameters
    ----------
    source : str, Path or dict
        A grid file (``.yaml``), YAML text, or parsed data.
    base_dir : str or Path, optional
        Where relative spec and recipe paths start for text and dicts (default:
        the current directory; for files, the file's directory).

    Returns
    -------
    Grid

    Raises
    ------
    GridError
        Unreadable file, invalid YAML, unknown or missing keys (with "did you
        mean"), duplicate model or data names, ``match``/``baseline`` naming no
        model of the grid, a cycle of ``match``, a recipe mapping without an
        entry for some data set, a spec or recipe file that does not exist.
        Every error names the grid file, line and column.

    Examples
    --------
    >>> grid = load_grid('''
    ... name: demo
    ... recipe: recipes/cpu-fashion-mnist.yaml
    ... data: [synthetic]
    ... seeds: [0, 1]
    ... models:
    ...   - {name: resnet18, spec: specs/resnet18.yaml, width: 0.25, family: ResNet, version: original}
    ...   - {name: hiresnet18, spec: specs/hiresnet18.yaml, width: 0.25, family: ResNet, version: hiresnet,
    ...      baseline: resnet18}
    ... ''', base_dir=".")
    >>> [m.name for m in grid.models], grid.seeds
    (['resnet18', 'hiresnet18'], [0, 1])
    >>> load_grid({"name": "x", "recipe": "r.yaml", "data": ["synthetic"], "seeds": [0], "modles": []})
    Traceback (most recent call last):
    ...
    hrgraph.errors.GridError: unknown key 'modles' (did you mean 'models'?)
    """
    path: str | None = None
    if isinstance(source, Mapping):
        raw = source
    else:
        text = str(source)
        if isinstance(source, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
            path = text
            try:
                text = Path(path).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise GridError("no such grid file", path=path) from None
            except (OSError, UnicodeDecodeError) as err:
                raise GridError(f"cannot read the grid file: {err}", path=path) from None
        try:
            raw = parse_yaml(text, path)
        except SpecError as err:
            message = err.message.replace("a spec", "a grid").replace("the spec", "the grid")
            raise GridError(message, path=err.path, line=err.line, column=err.column) from None
    if not isinstance(raw, Mapping):
        raise GridError("a grid must be a mapping with name, recipe, data, seeds and models", path=path)
    try:
        grid = Grid.model_validate(dict(raw))
    except ValidationError as err:
        raise first_error(err, lambda e: _from_pydantic(raw, path, e)) from None
    grid._path = path
    grid._base_dir = Path(path).parent if path is not None else Path(base_dir if base_dir is not None else ".")
    grid._raw = raw
    _check(grid)
    return grid


def _check(grid: Grid) -> None:
    names = [m.name for m in grid.models]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise grid.error(f"duplicate model name '{name}'", "models", i, "name")
    data = [d.name for d in grid.data_entries]
    for i, name in enumerate(data):
        if name in data[:i]:
            raise grid.error(f"duplicate data set '{name}'", "data", i)
    for i, seed in enumerate(grid.seeds):
        if seed in grid.seeds[:i]:
            raise grid.error(f"duplicate seed {seed}", "seeds", i)
    dirs: dict[str, tuple[str, str]] = {}
    for model in names:
        for entry in data:
            key = run_dir_name(model, entry, 0)
            if key in dirs:
                other = dirs[key]
                raise grid.error(
                    f"model '{model}' on '{entry}' and model '{other[0]}' on '{other[1]}' get the same run folder name",
                    "models",
                    names.index(model),
                    "name",
                )
            dirs[key] = (model, entry)
    for i, model in enumerate(grid.models):
        for key in ("match", "baseline"):
            ref = getattr(model, key)
            if ref is not None and ref not in names:
                raise grid.error(f"no model '{ref}' in the grid{did_you_mean(ref, names)}", "models", i, key)
        if model.match == model.name:
            raise grid.error("a model cannot be matched to itself", "models", i, "match")
        if model.ablate is not None:
            given = [k for k in ("drop", "keep", "variant") if getattr(model.ablate, k) is not None]
            if len(given) != 1:
                raise grid.error(f"give exactly one of drop, keep or variant (got {', '.join(given) or 'none'})", "models", i, "ablate")
        if not (grid.base_dir / model.spec).is_file():
            raise grid.error(f"no such spec file '{model.spec}' (looked in {grid.base_dir})", "models", i, "spec")
    # A cycle of match references would recurse forever at run time.
    for i, model in enumerate(grid.models):
        seen = [model.name]
        current = model
        while current.match is not None:
            if current.match in seen:
                cycle = " -> ".join(seen + [current.match])
                raise grid.error(f"match forms a cycle: {cycle}", "models", i, "match")
            seen.append(current.match)
            current = grid.model(current.match)
    if isinstance(grid.recipe, dict):
        for name in grid.recipe:
            if name not in data:
                raise grid.error(f"recipe for '{name}', which is not a data set of the grid{did_you_mean(name, data)}", "recipe", name)
        for i, name in enumerate(data):
            if name not in grid.recipe:
                raise grid.error(f"no recipe for data set '{name}' (the recipe mapping has {', '.join(grid.recipe)})", "recipe")
        for name, ref in grid.recipe.items():
            if not (grid.base_dir / ref).is_file():
                raise grid.error(f"no such recipe file '{ref}' (looked in {grid.base_dir})", "recipe", name)
    elif not (grid.base_dir / grid.recipe).is_file():
        raise grid.error(f"no such recipe file '{grid.recipe}' (looked in {grid.base_dir})", "recipe")


# -- runs ----------------------------------------------------------------------


def _sanitise(text: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return clean or "x"


def run_dir_name(model: str, data: str, seed: int) -> str:
    """The folder name of one run: ``<model>__<data>__s<seed>``, safe on every file system.

    Examples
    --------
    >>> run_dir_name("hiresnet18", "cifar10", 2)
    'hiresnet18__cifar10__s2'
    >>> run_dir_name("my model", "imagefolder:/data/birds", 0)
    'my-model__imagefolder-data-birds__s0'
    """
    return f"{_sanitise(model)}__{_sanitise(data)}__s{seed}"


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
    its first seeds done: a report on it already compares all models.

    Examples
    --------
    >>> grid = load_grid({"name": "g", "recipe": "recipes/cpu-fashion-mnist.yaml", "data": ["synthetic"],
    ...                   "seeds": [0, 1], "models": [{"name": "a", "spec": "specs/resnet18.yaml"},
    ...                                               {"name": "b", "spec": "specs/plain18.yaml"}]}, base_dir=".")
    >>> [r.name for r in plan_runs(grid, "runs")]
    ['a__synthetic__s0', 'b__synthetic__s0', 'a__synthetic__s1', 'b__synthetic__s1']
    """
    runs_dir = Path(runs_dir)
    runs = []
    for seed in grid.seeds:
        for entry in grid.data_entries:
            for model in grid.models:
                path = runs_dir / run_dir_name(model.name, entry.name, seed)
                runs.append(Run(len(runs), model.name, entry.name, seed, path))
    return runs


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: the 2nd of 4 shards (1-based, as job arrays count ``1..N``).

    Raises
    ------
    ValueError
        Not ``I/N`` with ``1 <= I <= N``.

    Examples
    --------
    >>> parse_shard("2/4")
    (2, 4)
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"expected I/N (e.g. 1/4), not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: I must be between 1 and N")
    return index, count


def select_shard(runs: Sequence[Run], index: int, count: int) -> list[Run]:
    """Every ``count``-th run starting at the ``index``-th (1-based): the shards partition the grid.

    Examples
    --------
    >>> select_shard(list(range(7)), 2, 3)
    [1, 4]
    """
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: I must be between 1 and N")
    return list(runs[index - 1 :: count])


def run_status(path: str | Path, epochs: int) -> Literal["done", "partial", "todo"]:
    """``done`` (finished with at least ``epochs`` epochs), ``partial`` (a checkpoint to resume) or ``todo``.

    A folder with neither a finished summary nor ``checkpoints/last.pt`` (a run
    stopped before its first checkpoint) has nothing to resume: ``todo``.
    """
    path = Path(path)
    summary = _read_summary(path)
    if summary and summary.get("finished") and int(summary.get("epochs_done") or 0) >= epochs:
        return "done"
    if (path / "checkpoints" / "last.pt").is_file():
        return "partial"
    return "todo"


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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


def derive_spec(grid: Grid, model: str, data: str, *, cache: dict[tuple[str, str], Spec] | None = None) -> Spec:
    """The spec a run of ``model`` on ``data`` trains: adapted, scaled, ablated, matched, named ``model``.

    Parameters
    ----------
    grid : Grid
    model, data : str
        A model name and a data name of the grid.
    cache : dict, optional
        Derived specs by (model, data), shared between calls (matching costs a
        few hundred parameter counts).

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

    spec = step("spec", lambda: load_spec(grid.base_dir / spec_model.spec))
    spec = step("spec", lambda: _adapt(spec, entry))
    if spec_model.width is not None:
        spec = step("width", lambda: scale_widths(spec, spec_model.width))
    if spec_model.ablate is not None:
        a = spec_model.ablate
        spec = step("ablate", lambda: ablate_spec(spec, a.drop, keep=a.keep, variant=a.variant))
    if spec_model.match is not None:
        target = count_params(derive_spec(grid, spec_model.match, data, cache=cache))
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
    status: Literal["done", "partial", "todo"]


def dry_run(grid: Grid, runs_dir: str | Path, *, shard: tuple[int, int] = (1, 1)) -> list[PlannedRun]:
    """Validate every model (on every data set) and every recipe, and list the shard's runs with their status.

    Nothing is trained and no file is written.

    Raises
    ------
    GridError, RecipeError, SpecError
        The first invalid model, recipe or override.
    """
    cache: dict[tuple[str, str], Spec] = {}
    runs = plan_runs(grid, runs_dir)
    epochs: dict[tuple[str, int], int] = {}
    for run in runs:
        derive_spec(grid, run.model, run.data, cache=cache)
        if (run.data, run.seed) not in epochs:
            epochs[(run.data, run.seed)] = run_recipe(grid, run).resolved.epochs
    planned = []
    for run in select_shard(runs, *shard):
        n = epochs[(run.data, run.seed)]
        planned.append(PlannedRun(run, count_params(cache[(run.model, run.data)]), n, run_status(run.path, n)))
    return planned


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_grid` did with one run: ``skipped`` (already done), ``trained`` or ``resumed``."""

    run: Run
    action: Literal["skipped", "trained", "resumed"]
    summary: dict[str, Any] = field(default_factory=dict)


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
    path = runs_dir / f"{_sanitise(grid.name)}{MANIFEST_SUFFIX}"
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
    command: list[str] | None = None,
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
        (status ``done``, ``partial`` or ``todo``), for progress output.
    command : list of str, optional
        The command line, recorded in each run's config.
    **train_options
        Passed on to the training function (``limit_train``, ``limit_val``, ``amp``, ...).

    Returns
    -------
    list of RunResult

    Raises
    ------
    HrgraphError
        From validation or training; ``TrainingInterrupted`` stops the grid
        after the interrupted run saved its checkpoint (rerun to resume).
    """
    if train_fn is None:
        from .loop import train as train_fn
    runs = select_shard(plan_runs(grid, runs_dir), *shard)
    write_manifest(grid, runs_dir)
    cache: dict[tuple[str, str], Spec] = {}
    results = []
    for position, run in enumerate(runs, 1):
        recipe = run_recipe(grid, run)
        status = run_status(run.path, recipe.resolved.epochs)
        if on_run is not None:
            on_run(run, status, position, len(runs))
        if status == "done":
            results.append(RunResult(run, "skipped", _read_summary(run.path) or {}))
            continue
        spec = derive_spec(grid, run.model, run.data, cache=cache)
        log.info("%s run %s (%d/%d)", "resuming" if status == "partial" else "starting", run.name, position, len(runs))
        summary = train_fn(
            spec,
            recipe.recipe,
            out=run.path,
            overrides=recipe.overrides,
            resume=True,  # train starts a run that has no checkpoint yet, resumes one that has
            device=device,
            tags=_tags(grid, run),
            command=command,
            **train_options,
        )
        results.append(RunResult(run, "resumed" if status == "partial" else "trained", dict(summary or {})))
    return results
