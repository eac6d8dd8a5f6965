"""Training recipes: how a network is trained, as a validated YAML file.

A recipe holds everything about a run except the network: the data set, the
optimizer and its learning-rate schedule, epochs, batch size, augmentation,
the validation split and the seed.  It is validated like a spec: unknown keys
get a did-you-mean, values are strict (``epochs: "80"`` is an error, not 80;
``normalize: 1`` is not a boolean) and every error names ``file:line:col``::

    recipes/mine.yaml:7:3: optimizer: unknown key 'lrr' (did you mean 'lr'?)

``extends: other.yaml`` (relative to the recipe's folder) starts from another
recipe: the child's keys replace the parent's, and nested mappings
(``optimizer``, ``schedule``) merge key by key, so a child may change
``optimizer.lr`` alone.  Lists (``augment``) are replaced whole.

:func:`apply_overrides` changes keys by dotted name (command-line flags map to
them through :data:`FLAG_KEYS`), and :func:`lr_at` is the one definition of the
learning rate at any point of a run.  See ``docs/recipes.md``.  No torch here.

Why one module past 500 lines: the recipe's pydantic models (optimizer, schedule,
augmentation), its loading with extends and overrides, and the learning-rate
schedule it defines are read together; half the length is field documentation.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..spec.diagnostics import Located, fields_of, first_error, pydantic_message
from ..errors import RecipeError, SpecError, did_you_mean
from ..spec.source import LDict, Mark, locate, parse_yaml, read_yaml

__all__ = [
    "DATA_NAMES",
    "FLAG_KEYS",
    "Optimizer",
    "Recipe",
    "Schedule",
    "apply_overrides",
    "load_recipe",
    "lr_at",
]

#: The data sets a recipe may name (``imagefolder:DIR`` comes on top); see hrgraph.train.data.
DATA_NAMES = ("cifar10", "cifar100", "tiny-imagenet", "mnist", "fashion-mnist", "synthetic")

#: Command-line flag (without ``--``, dashes as underscores) -> the recipe key it overrides.
FLAG_KEYS = {
    "lr": "optimizer.lr",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "seed": "seed",
    "data": "data",
    "weight_decay": "optimizer.weight_decay",
    "augment": "augment",
}

# Numbers that must be finite: ``.inf`` or ``.nan`` in YAML is a float too.
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Beta = Annotated[float, Field(ge=0, lt=1), Strict()]


class _Strict(BaseModel):
    # strict: YAML already gives typed values, so "16" for an integer or 1 for a
    # boolean is a mistake to report, not to convert.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _conflict(message: str, key: str) -> PydanticCustomError:
    """A cross-field error; ``key`` (dotted) is where the error is reported in the file."""
    return PydanticCustomError("recipe_conflict", "{message}", {"message": message, "key": key})


class Optimizer(_Strict):
    """The optimizer: ``adam`` (the paper's), ``adamw`` or ``sgd``.

    ``weight_decay`` is torch's: an L2 term in the gradient for ``adam`` and
    ``sgd``, decoupled decay for ``adamw``.  ``momentum`` and ``nesterov``
    apply to ``sgd`` only, ``betas`` to ``adam`` and ``adamw`` only.
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: Annotated[_Finite, Field(gt=0)] = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False
    weight_decay: Annotated[_Finite, Field(ge=0)] = 0.0
    # A YAML list arrives as a list; strict mode would accept only a tuple.
    betas: Annotated[tuple[_Beta, _Beta], Field(strict=False)] = (0.9, 0.999)

    @model_validator(mode="after")
    def _nesterov_needs_sgd(self) -> Optimizer:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise _conflict("nesterov applies to sgd with momentum > 0 only", "nesterov")
        return self


class Schedule(_Strict):
    """The learning-rate schedule; :func:`lr_at` defines it exactly.

    ``step`` multiplies the rate by ``factor`` every ``every`` epochs (counted
    from the start of the run); ``cosine`` anneals it from ``optimizer.lr`` to
    ``min_lr`` over the epochs after the warm-up; ``constant`` keeps it.  With
    ``warmup_epochs`` > 0 the rate of the first epochs is scaled by a factor
    that rises linearly from ``warmup_factor`` (at the start) to 1 (at the end
    of the warm-up).
    """

    name: Literal["step", "cosine", "constant"] = "step"
    every: Annotated[int, Field(ge=1)] = 20
    factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    warmup_factor: Annotated[float, Field(gt=0, le=1)] = 0.1
    min_lr: Annotated[_Finite, Field(ge=0)] = 0.0


class Recipe(_Strict, Located):
    """A training recipe.  Build one with :func:`load_recipe`; derive one with :func:`apply_overrides`.

    The defaults are the HiResNet paper's CIFAR-10 recipe (Adam, lr 0.01 halved
    every 20 epochs, batch 100, 80 epochs, 10% of the training set held out)
    plus the usual choices where the paper is silent (random crop with 4-pixel
    padding and horizontal flip, per-channel normalisation, no weight decay,
    no label smoothing).  ``docs/recipes.md`` describes every key.
    """

    version: Literal[1] = 1
    name: str = ""
    description: str = ""
    data: str = Field(default="cifar10", description="A name of DATA_NAMES, synthetic:N or imagefolder:DIR.")
    data_dir: str | None = Field(default=None, description="Where the data lives (default: per data set).")
    epochs: Annotated[int, Field(ge=1)] = 80
    batch_size: Annotated[int, Field(ge=1)] = 100
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    augment: list[Literal["random_crop", "hflip"]] = ["random_crop", "hflip"]
    crop_padding: Annotated[int, Field(ge=0)] = 4
    normalize: bool = Field(default=True, description="Per-channel mean/std of the training split.")
    fit: Literal["none", "pad", "resize"] = Field(
        default="none", description="How images whose H, W differ from the spec's input are brought to it."
    )
    val_split: Annotated[float, Field(ge=0, lt=1)] = 0.1
    train_subset: Annotated[int, Field(ge=1)] | None = None
    # numpy's legacy seeding takes 32 bits; a larger seed would fail at the start of a run.
    seed: Annotated[int, Field(ge=0, lt=1 << 32)] = 0

    @field_validator("data")
    @classmethod
    def _known_data(cls, value: str) -> str:
        # The grammar of hrgraph.train.data.load_data, checked here so a typo is reported at its line.
        kind, colon, arg = value.partition(":")
        if kind == "imagefolder" and arg.strip():
            return value
        if kind == "synthetic" and (not colon or (arg.isascii() and arg.isdigit() and int(arg) > 0)):
            return value
        if kind in DATA_NAMES and kind != "synthetic" and not colon:
            return value
        if kind == "synthetic":
            raise PydanticCustomError(
                "data_name", "synthetic:N takes N a positive whole number of training images, not '{arg}'",
                {"arg": arg})
        if kind == "imagefolder":
            raise PydanticCustomError("data_name", "imagefolder:DIR needs a folder after the colon", {})
        if kind in DATA_NAMES:
            raise PydanticCustomError("data_name", "{kind} takes nothing after a colon (write '{kind}')",
                                      {"kind": kind})
        known = ", ".join(DATA_NAMES)
        raise PydanticCustomError(
            "data_name",
            "unknown data set '{name}'{hint}; known: {known} (or synthetic:N), or imagefolder:DIR",
            {"name": value, "hint": did_you_mean(kind, [*DATA_NAMES, "imagefolder"]), "known": known},
        )

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if len(set(self.augment)) != len(self.augment):
            raise _conflict("augment lists an augmentation twice", "augment")
        if self.schedule.warmup_epochs >= self.epochs and self.schedule.warmup_epochs > 0:
            raise _conflict(
                f"warmup_epochs ({self.schedule.warmup_epochs}) must be less than epochs ({self.epochs})",
                "schedule.warmup_epochs",
            )
        if self.schedule.name == "cosine" and self.schedule.min_lr > self.optimizer.lr:
            raise _conflict(
                f"min_lr ({self.schedule.min_lr}) is above optimizer.lr ({self.optimizer.lr})", "schedule.min_lr"
            )
        return self

    # -- serialisation ----------------------------------------------------------

    def to_dict(self, *, minimal: bool = False) -> dict[str, Any]:
        """The recipe as plain data (loadable by :func:`load_recipe`).

        Every key by default, so that a run's ``config.yaml`` still says what
        was used if the defaults change; ``minimal`` leaves out keys at their defaults.

        Examples
        --------
        >>> Recipe(epochs=3).to_dict(minimal=True)
        {'version': 1, 'epochs': 3}
        """
        data = self.model_dump(mode="json", exclude_defaults=minimal)
        data.pop("version", None)
        return {"version": self.version, **data}

    @cached_property
    def fingerprint(self) -> str:
        """A hash of every key that can change what training computes.

        ``name``, ``description`` and ``data_dir`` are left out: renaming a
        recipe or moving its data does not make a run resumed with it a different run.

        Examples
        --------
        >>> Recipe().fingerprint == Recipe(name="renamed", data_dir="/data").fingerprint
        True
        >>> Recipe().fingerprint == Recipe(seed=1).fingerprint
        False
        """
        data = self.to_dict()
        for key in ("name", "description", "data_dir"):
            data.pop(key)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        # Content only: where a recipe was loaded from does not make it another recipe.
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


# -- the learning rate ---------------------------------------------------------------


def lr_at(recipe: Recipe, epoch: float) -> float:
    """The learning rate after ``epoch`` epochs of training (fractional: 2.5 is half-way through the third).

    The training loop sets the rate before every step from this function, with
    ``epoch = completed_epochs + step / steps_per_epoch``; this is the only
    definition of the schedule.

    - ``step``: ``lr * factor ** floor(epoch / every)``;
    - ``cosine``: ``lr * w + min_lr * (1 - w)`` with ``w = (1 + cos(pi * p)) / 2`` and
      ``p = (epoch - warmup_epochs) / (epochs - warmup_epochs)`` clipped to [0, 1];
    - ``constant``: ``lr``;
    - warm-up: for ``epoch < warmup_epochs`` the rate above is multiplied by
      ``warmup_factor + (1 - warmup_factor) * epoch / warmup_epochs``.

    Parameters
    ----------
    recipe : Recipe
    epoch : float
        Epochs completed, >= 0.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``epoch`` is negative or not finite.

    Examples
    --------
    The paper's schedule, 0.01 halved every 20 epochs:

    >>> paper = Recipe()
    >>> [lr_at(paper, e) for e in (0, 19.99, 20, 40, 79.5)]
    [0.01, 0.01, 0.005, 0.0025, 0.00125]

    Cosine over 10 epochs after a 2-epoch warm-up that starts at a tenth of the rate:

    >>> cosine = Recipe(epochs=12, schedule={"name": "cosine", "warmup_epochs": 2})
    >>> [round(lr_at(cosine, e), 6) for e in (0, 1, 2, 7, 12)]
    [0.001, 0.0055, 0.01, 0.005, 0.0]
    >>> lr_at(Recipe(schedule={"name": "constant"}), 50)
    0.01
    """
    if not (epoch >= 0 and math.isfinite(epoch)):
        raise ValueError(f"epoch must be a finite number >= 0, not {epoch!r}")
    opt, sched = recipe.optimizer, recipe.schedule
    if sched.name == "step":
        lr = opt.lr * sched.factor ** math.floor(epoch / sched.every)
    elif sched.name == "cosine":
        progress = (epoch - sched.warmup_epochs) / (recipe.epochs - sched.warmup_epochs)
        progress = min(max(progress, 0.0), 1.0)
        weight = 0.5 * (1.0 + math.cos(math.pi * progress))
        # Written as a blend, not min_lr + (lr - min_lr) * w, so that the first and last rates are exact.
        lr = opt.lr * weight + sched.min_lr * (1.0 - weight)
    else:
        lr = opt.lr
    if epoch < sched.warmup_epochs:
        lr *= sched.warmup_factor + (1.0 - sched.warmup_factor) * epoch / sched.warmup_epochs
    return lr


# -- errors ----------------------------------------------------------------------------

_MODELS: dict[tuple[str, ...], type[BaseModel]] = {(): Recipe, ("optimizer",): Optimizer, ("schedule",): Schedule}
_ONLY_IN_FILES = ("extends",)
_NOT_A_MAPPING = "a recipe must be a mapping of keys such as 'epochs' and 'optimizer'"
# Error types whose message says what was expected but not what was written.
_SAY_WRITTEN = re.compile(r"_type$|^literal_error$|^(greater|less)_than(_equal)?$|^finite_number$|^too_long$")


def _allowed_keys(loc: tuple[Any, ...]) -> list[str] | None:
    model = _MODELS.get(tuple(loc))
    if model is None:
        return None
    return fields_of(model) + (list(_ONLY_IN_FILES) if model is Recipe else [])


def _written(value: Any) -> str:
    """How a wrong value was written, with a hint for YAML's usual surprises."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = f"the string {value!r}"
        try:
            number = float(value)
        except ValueError:
            return text
        if re.fullmatch(r"[+-]?\d+", value.strip()):
            return f"{text} (write {int(number)} without quotes)"
        # A quoted number ('1e-3'); unquoted, hrgraph.spec.source reads it as YAML 1.2 does: a float.
        return f"{text} (write {number!r} for a number)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__


def _recipe_error(err: dict[str, Any], data: Any, path: str | None, prefix: str = "") -> RecipeError:
    loc = tuple(err["loc"])
    if err["type"] == "recipe_conflict":
        loc = tuple(err["ctx"]["key"].split("."))
        if loc[0] not in _MODELS[()].model_fields:  # a key of a nested model, reported from inside it
            loc = tuple(err["loc"]) + loc
    mark = locate(data, loc)[0] if isinstance(data, LDict) else None
    msg = pydantic_message(err, _allowed_keys)
    where = loc
    if err["type"] == "extra_forbidden":
        where = loc[:-1]
    elif err["type"] == "missing" and loc and isinstance(loc[-1], int):
        # A list too short for a fixed-length pair (betas).
        msg, where = f"needs {loc[-1] + 1} items, not {len(err['input'])}", loc[:-1]
    elif _SAY_WRITTEN.search(err["type"]):
        msg = f"{msg}, not {_written(err['input'])}"
        if err["type"] == "literal_error" and isinstance(err["input"], str):
            msg += did_you_mean(err["input"], re.findall(r"'([^']*)'", err["ctx"]["expected"]))
    text = ".".join(str(k) for k in where)
    message = f"{prefix}{text}: {msg}" if text else f"{prefix.rstrip()}{': ' if prefix else ''}{msg}"
    return RecipeError(
        message,
        path=mark.path if mark else path,
        line=mark.line if mark else None,
        column=mark.column if mark else None,
    )


def _as_recipe_error(err: SpecError) -> RecipeError:
    """A YAML or file error from :mod:`hrgraph.spec.source`, worded for a recipe."""
    message = err.message
    if message.startswith("a spec must be a mapping"):
        value = message.partition("not the single value ")[2]
        message = _NOT_A_MAPPING + (f", not {value}" if value else "")
    else:
        message = re.sub(r"\bspec\b", "recipe", message)
    return RecipeError(message, path=err.path, line=err.line, column=err.column)


def _located(message: str, mark: Mark | None, path: str | None) -> RecipeError:
    if mark is None:
        return RecipeError(message, path=path)
    return RecipeError(message, path=mark.path or path, line=mark.line, column=mark.column)


# -- loading ------------------------------------------------------------------------------


def _read(path: str) -> Any:
    try:
        return read_yaml(path)
    except SpecError as err:
        raise _as_recipe_error(err) from None


def _display_path(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _merge(parent: Mapping[str, Any], child: Mapping[str, Any]) -> LDict:
    """``child`` over ``parent``: nested mappings merge key by key, anything else is replaced."""
    out = LDict(parent, mark=getattr(child, "mark", None) or getattr(parent, "mark", None))
    out.marks = dict(getattr(parent, "marks", {}))
    child_marks = getattr(child, "marks", {})
    for key, value in child.items():
        old = out.get(key)
        out[key] = _merge(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
        if key in child_marks:
            out.marks[key] = child_marks[key]
        else:
            out.marks.pop(key, None)  # the parent's position would point at the value we replaced
    return out


def _resolve_extends(data: Any, path: str | None, base_dir: Path, chain: tuple[str, ...]) -> Any:
    if not isinstance(data, Mapping) or "extends" not in data:
        return data
    mark = getattr(data, "marks", {}).get("extends")
    ref = data["extends"]
    if not isinstance(ref, str) or not ref.strip():
        raise _located("extends must be the path of another recipe file", mark, path)
    parent_path = (base_dir / ref).resolve()
    if str(parent_path) in chain:
        cycle = " -> ".join([Path(c).name for c in chain] + [parent_path.name])
        raise _located(f"extends forms a cycle: {cycle}", mark, path)
    if not parent_path.is_file():
        raise _located(f"extends: no such recipe file '{ref}' (looked in {base_dir})", mark, path)
    parent_name = _display_path(parent_path)
    parent = _read(parent_name)
    if not isinstance(parent, Mapping):
        raise _located("the parent recipe is not a mapping", getattr(parent, "mark", None), parent_name)
    parent = _resolve_extends(parent, parent_name, parent_path.parent, chain + (str(parent_path),))
    child = LDict({k: v for k, v in data.items() if k != "extends"}, mark=getattr(data, "mark", None))
    child.marks = {k: m for k, m in getattr(data, "marks", {}).items() if k != "extends"}
    return _merge(parent, child)


def _validate(data: Any, path: str | None) -> Recipe:
    if not isinstance(data, Mapping):
        raise _located(_NOT_A_MAPPING, getattr(data, "mark", None), path)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, lambda e: _recipe_error(e, data, path)) from None
    recipe._path = path
    recipe._data = data
    return recipe


def _looks_like_path(text: str) -> bool:
    # One line without "key: value" is a file name: "recipes/x.yaml" or a typo of one.
    return "\n" not in text and (text.endswith((".yaml", ".yml")) or Path(text).is_file() or ": " not in text)


def load_recipe(source: str | Path | Mapping[str, Any] | Recipe, *, base_dir: str | Path | None = None) -> Recipe:
    """Load and validate a recipe from a file, YAML text or a dict.

    Parameters
    ----------
    source : str, Path, dict or Recipe
        A path to a ``.yaml`` file, YAML text, or parsed data.  A :class:`Recipe` is returned as is.
    base_dir : str or Path, optional
        Where ``extends`` paths are resolved for text and dicts (default: the
        current directory; for files, the file's folder).

    Returns
    -------
    Recipe

    Raises
    ------
    RecipeError
        Unreadable file, invalid YAML, an unknown key or a wrong value; the
        error names the file, line and column.

    Examples
    --------
    >>> recipe = load_recipe("recipes/paper-cifar100.yaml")
    >>> recipe.data, recipe.epochs, recipe.optimizer.lr, recipe.schedule.every
    ('cifar100', 100, 0.01, 20)
    >>> load_recipe("epochs: 10\\noptimizer: {name: adam, lrr: 0.1}\\n")
    Traceback (most recent call last):
    ...
    hrgraph.errors.RecipeError: <recipe>:2:25: optimizer: unknown key 'lrr' (did you mean 'lr'?)
    """
    if isinstance(source, Recipe):
        return source
    path: str | None = None
    chain: tuple[str, ...] = ()
    directory = Path(base_dir) if base_dir is not None else Path.cwd()
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = str(source)
        data = _read(path)
        directory = Path(path).resolve().parent
        chain = (str(Path(path).resolve()),)
    elif isinstance(source, str):
        try:
            data = parse_yaml(source, None)
        except SpecError as err:
            raise _as_recipe_error(err) from None
    elif isinstance(source, Mapping):
        data = source
    else:
        raise TypeError(f"load_recipe takes a path, YAML text or a mapping, not {type(source).__name__}")
    data = _resolve_extends(data, path, directory, chain)
    return _validate(data, path)


# -- overrides -------------------------------------------------------------------------------


def _dotted_keys(model: type[BaseModel] = Recipe, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += _dotted_keys(field.annotation, f"{prefix}{name}.")
    return keys


def _unknown_override(key: str) -> RecipeError:
    keys = _dotted_keys()
    by_leaf = [k for k in keys if k.rpartition(".")[2] == key]
    hint = f" (did you mean '{by_leaf[0]}'?)" if len(by_leaf) == 1 and by_leaf[0] != key else did_you_mean(key, keys)
    return RecipeError(f"override {key}: unknown recipe key{hint}")


def apply_overrides(recipe: Recipe, overrides: Mapping[str, Any] | None) -> Recipe:
    """A new recipe with keys changed by dotted name, validated like a file.

    A mapping given for ``optimizer`` or ``schedule`` merges key by key, as
    ``extends`` does.  Command-line flags map to keys through :data:`FLAG_KEYS`.

    Parameters
    ----------
    recipe : Recipe
    overrides : mapping of str to value
        ``{"optimizer.lr": 0.1, "epochs": 3}``; ``None`` or empty returns ``recipe``.

    Returns
    -------
    Recipe

    Raises
    ------
    RecipeError
        An unknown key (with a did-you-mean) or a value the key does not take.

    Examples
    --------
    >>> fast = apply_overrides(Recipe(), {"optimizer.lr": 0.1, "epochs": 3})
    >>> fast.optimizer.lr, fast.epochs, fast.batch_size
    (0.1, 3, 100)
    >>> apply_overrides(Recipe(), {"lr": 0.1})
    Traceback (most recent call last):
    ...
    hrgraph.errors.RecipeError: override lr: unknown recipe key (did you mean 'optimizer.lr'?)
    >>> apply_overrides(Recipe(), {"epochs": 0})
    Traceback (most recent call last):
    ...
    hrgraph.errors.RecipeError: override epochs: Input should be greater than or equal to 1, not the integer 0
    """
    if not overrides:
        return recipe
    known = set(_dotted_keys())
    data = recipe.to_dict()
    for key, value in overrides.items():
        if not isinstance(key, str) or key not in known:
            raise _unknown_override(str(key))
        *parents, leaf = key.split(".")
        target = data
        for part in parents:
            target = target[part]
        old = target.get(leaf)
        target[leaf] = _merge(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
    try:
        new = Recipe.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, lambda e: _recipe_error(e, None, None, prefix="override ")) from None
    new._path = recipe.path
    return new


#: The paper's CIFAR-10 recipe (the data-aware default is :func:`hrgraph.train.defaults.default_recipe`).
DEFAULT_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "paper-cifar10.yaml"
