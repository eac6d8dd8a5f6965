"""Experiment grid files: the models x data sets x seeds to train, validated like specs.

:func:`load_grid` reads a grid YAML file (strict keys, did-you-mean, errors at
``file:line:col`` as :class:`~hrgraph.errors.GridError`) and checks what a
single key cannot: unique names and seeds (a model's own ``seeds`` replace the
grid's for that model), ``match`` and ``baseline`` naming
models of the grid, no cycle of ``match``, spec and recipe files that exist.
Running a grid is :mod:`hrgraph.train.experiment`'s job.  No torch here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..spec.diagnostics import fields_of, first_error, pydantic_message
from ..errors import GridError, SpecError, did_you_mean
from ..edit.match import TOLERANCE
from ..spec.source import Mark, locate, parse_yaml
from ..spec.models import InputShape
from .defaults import default_recipe_file

__all__ = ["DataEntry", "Ablation", "GridModel", "Grid", "load_grid", "parse_shard", "run_dir_name", "sanitise_name", "select_shard", "VERSIONS"]

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
    """Edges to remove from a model's spec (exactly one key; see :func:`hrgraph.edit.ablate.ablate`)."""

    drop: list[str] | None = None
    keep: list[str] | None = None
    variant: Literal["in", "out", "out-all"] | None = None


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
    seeds: list[int] | None = Field(
        default=None,
        min_length=1,
        description="Train this model on these seeds instead of the grid's (e.g. fewer for a cheap side variant).",
    )


class Grid(_Frozen):
    """An experiment grid: recipe(s), overrides, data sets, seeds and models."""

    version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    recipe: str | dict[str, str] | None = Field(
        default=None,
        description="A recipe file, or data name -> recipe file (relative to the grid); default: what `hrgraph train` uses.",
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="Recipe keys (dotted) set for every run.")
    data: list[Annotated[DataEntry, BeforeValidator(_data_entry)]] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    models: list[GridModel] = Field(min_length=1)
    limit_train: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="At most this many training images per epoch, after the validation hold-out (smoke runs)."
    )
    limit_val: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="At most this many val and test images (smoke runs)."
    )
    threads: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Pin each run to this many CPU threads (CPU results are bit-identical only for the same count).",
    )
    log: list[Literal["tensorboard"]] = Field(
        default_factory=list,
        description="Also log each run's epochs here (tensorboard: event files in the run folder); metrics.csv either way.",
    )

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

    def seeds_of(self, model: GridModel) -> list[int]:
        """The seeds ``model`` is trained on: its own ``seeds`` if it has them, else the grid's."""
        return list(model.seeds) if model.seeds is not None else list(self.seeds)

    @property
    def all_seeds(self) -> list[int]:
        """Every seed of some model: the grid's, then models' own in order of first appearance."""
        seen = list(self.seeds)
        for model in self.models:
            seen += [s for s in self.seeds_of(model) if s not in seen]
        return seen

    def data_entry(self, name: str) -> DataEntry:
        for entry in self.data_entries:
            if entry.name == name:
                return entry
        raise GridError(f"no data set '{name}' in grid {self.name}")

    def recipe_path(self, data: str) -> Path:
        """The recipe file of ``data``'s runs (without ``recipe``: :func:`hrgraph.train.defaults.default_recipe`)."""
        if self.recipe is None:
            return default_recipe_file(data)
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
    if sanitise_name(grid.name) != grid.name:
        # The name is a folder (runs/<name>) and a file name (<name>.grid.json): nothing may climb out of runs/.
        raise grid.error(f"'{grid.name}' names the grid's folder: use letters, digits, '.', '_' and '-' only "
                         f"(e.g. '{sanitise_name(grid.name)}')", "name")
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
    for m, model in enumerate(grid.models):
        for i, seed in enumerate(model.seeds or []):
            if seed in model.seeds[:i]:
                raise grid.error(f"duplicate seed {seed}", "models", m, "seeds", i)
    dirs: dict[str, tuple[str, str]] = {}
    for model in names:
        for entry in data:
            # Case-folded: on a case-insensitive file system (macOS, Windows) 'HiRes' and 'hires' share a folder.
            key = run_dir_name(model, entry, 0).casefold()
            if key in dirs:
                other = dirs[key]
                raise grid.error(
                    f"model '{model}' on '{entry}' and model '{other[0]}' on '{other[1]}' get the same run folder name"
                    " (names that differ only by case share a folder on case-insensitive file systems)",
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
    elif grid.recipe is not None and not (grid.base_dir / grid.recipe).is_file():
        raise grid.error(f"no such recipe file '{grid.recipe}' (looked in {grid.base_dir})", "recipe")


def sanitise_name(text: str) -> str:
    """``text`` as one safe folder or file name: no separators, no leading dot (so never ``..``).

    Examples
    --------
    >>> sanitise_name("../../escape"), sanitise_name("/abs/path"), sanitise_name("ok-name_1.2")
    ('escape', 'abs-path', 'ok-name_1.2')
    """
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
    return f"{sanitise_name(model)}__{sanitise_name(data)}__s{seed}"


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


def select_shard(runs: Sequence[Any], index: int, count: int) -> list[Any]:
    """Every ``count``-th run starting at the ``index``-th (1-based): the shards partition the grid.

    Examples
    --------
    >>> select_shard(list(range(7)), 2, 3)
    [1, 4]
    """
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: I must be between 1 and N")
    return list(runs[index - 1 :: count])
