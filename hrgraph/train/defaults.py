"""The recipe a run uses when none is given, ``--augment``, and the lines a run starts with to say which recipe it uses.

The default follows the data: the paper's recipes for CIFAR-10/100 and
Tiny-ImageNet; for any other data a generic recipe without augmentation that
could change a label (a flipped digit or letter is another one).  Recipe files
themselves are :mod:`hrgraph.train.recipe`'s.  No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import RecipeError, did_you_mean
from .recipe import Recipe, _display_path, apply_overrides, load_recipe

__all__ = ["RECIPES_DIR", "AUGMENT_CHOICES", "default_recipe", "default_recipe_file", "parse_augment", "describe_recipe", "resolve_recipe"]

#: The recipe files shipped with hrgraph.
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
#: Data sets with a paper recipe of their own; any other data gets ``recipes/generic.yaml``.
_PAPER_RECIPES = {"cifar10": "paper-cifar10.yaml", "cifar100": "paper-cifar100.yaml",
                  "tiny-imagenet": "paper-tiny-imagenet.yaml"}


def default_recipe(data: str) -> Recipe:
    """The recipe a run on ``data`` uses when none is given: the paper's for its data sets, else a generic one.

    ``cifar10``, ``cifar100`` and ``tiny-imagenet`` get ``recipes/paper-<name>.yaml``
    (random crop with 4-pixel padding + horizontal flip: natural photos stay
    what they are when mirrored).  Any other data (MNIST, Fashion-MNIST, an
    ImageFolder, synthetic images) gets ``recipes/generic.yaml``: the paper's
    optimizer and schedule with **no augmentation**, since a mirrored or
    shifted digit, letter or glyph may be another class (a flipped "b" is a
    "d") and nothing is known about an arbitrary folder.  The grid code and
    the training loop both call this function; there is no other default.

    Parameters
    ----------
    data : str
        A data name as in a recipe's ``data`` (``mnist``, ``imagefolder:DIR``, ``synthetic:500``...).

    Returns
    -------
    Recipe
        With ``data`` set to ``data``.

    Raises
    ------
    RecipeError
        ``data`` is not a data name.

    Examples
    --------
    >>> default_recipe("cifar100").name, default_recipe("cifar100").augment
    ('paper-cifar100', ['random_crop', 'hflip'])
    >>> mnist = default_recipe("mnist")
    >>> mnist.name, mnist.data, mnist.augment, mnist.optimizer.lr, mnist.epochs
    ('generic', 'mnist', [], 0.01, 80)
    """
    recipe = load_recipe(default_recipe_file(data))
    return recipe if recipe.data == data else apply_overrides(recipe, {"data": data})


def default_recipe_file(data: str) -> Path:
    """The file of :func:`default_recipe` for ``data`` (a grid without ``recipe`` loads it and sets the data).

    Examples
    --------
    >>> default_recipe_file("tiny-imagenet").name, default_recipe_file("imagefolder:/data/x").name
    ('paper-tiny-imagenet.yaml', 'generic.yaml')
    """
    return RECIPES_DIR / _PAPER_RECIPES.get(str(data).partition(":")[0], "generic.yaml")


#: ``--augment`` words and the recipe's augmentations they stand for.
AUGMENT_CHOICES = {"crop": "random_crop", "random_crop": "random_crop", "flip": "hflip", "hflip": "hflip"}


def parse_augment(text: str) -> list[str]:
    """The recipe's ``augment`` list from ``none`` or comma-separated ``crop`` / ``flip`` (``--augment``).

    Raises
    ------
    RecipeError
        An unknown word (with a did-you-mean) or one given twice.

    Examples
    --------
    >>> parse_augment("none"), parse_augment("crop,flip"), parse_augment("flip")
    ([], ['random_crop', 'hflip'], ['hflip'])
    >>> parse_augment("crop,flp")
    Traceback (most recent call last):
    ...
    hrgraph.errors.RecipeError: augment: unknown augmentation 'flp' (did you mean 'flip'?); write none, crop, flip or crop,flip
    """
    words = [w.strip() for w in text.split(",")]
    if words == ["none"]:
        return []
    out = []
    for word in words:
        if word not in AUGMENT_CHOICES:
            raise RecipeError(f"augment: unknown augmentation '{word}'{did_you_mean(word, ['none', 'crop', 'flip'])}; "
                              "write none, crop, flip or crop,flip")
        if AUGMENT_CHOICES[word] in out:
            raise RecipeError(f"augment: '{word}' is given twice")
        out.append(AUGMENT_CHOICES[word])
    return out


def describe_recipe(recipe: Recipe, origin: str) -> list[str]:
    """Lines that say which recipe a run uses and what it does, for the first lines of a run's log.

    Parameters
    ----------
    recipe : Recipe
    origin : str
        How the recipe was chosen (``"the default for mnist"``, ``"--recipe"``).

    Examples
    --------
    >>> for line in describe_recipe(default_recipe("mnist"), "the default for mnist"):
    ...     print(line)
    recipe: generic (recipes/generic.yaml, the default for mnist)
    augment: none
    optimizer: adam, lr 0.01, betas (0.9, 0.999), weight decay 0
    schedule: step, lr x0.5 every 20 epochs; 80 epochs of batch 100, seed 0
    """
    where = _display_path(Path(recipe.path)) if recipe.path else ""
    if where and RECIPES_DIR in Path(recipe.path).resolve().parents:
        where = f"recipes/{Path(recipe.path).name}"
    source = ", ".join(x for x in (where, origin) if x)
    lines = [f"recipe: {recipe.name or '(unnamed)'}" + (f" ({source})" if source else "")]
    names = {"random_crop": f"random crop ({recipe.crop_padding}-pixel zero padding)", "hflip": "horizontal flip"}
    lines.append("augment: " + (", ".join(names[a] for a in recipe.augment) or "none"))
    o, s = recipe.optimizer, recipe.schedule
    opt = f"optimizer: {o.name}, lr {o.lr:g}"
    opt += (f", momentum {o.momentum:g}" + (" (nesterov)" if o.nesterov else "")) if o.name == "sgd" else \
        f", betas ({o.betas[0]:g}, {o.betas[1]:g})"
    lines.append(opt + f", weight decay {o.weight_decay:g}" +
                 (f", label smoothing {recipe.label_smoothing:g}" if recipe.label_smoothing else ""))
    sched = {"step": f"step, lr x{s.factor:g} every {s.every} epochs",
             "cosine": f"cosine to {s.min_lr:g}", "constant": "constant"}[s.name]
    if s.warmup_epochs:
        sched += f" after a {s.warmup_epochs}-epoch warm-up from x{s.warmup_factor:g}"
    lines.append(f"schedule: {sched}; {recipe.epochs} epochs of batch {recipe.batch_size}, seed {recipe.seed}")
    return lines


def resolve_recipe(source: "Recipe | str | Path | Mapping[str, Any] | None",
                   overrides: Mapping[str, Any] | None = None) -> tuple[Recipe, str]:
    """The recipe of a run, and how it was chosen (for :func:`describe_recipe`).

    ``source`` ``None`` means the default for the data: :func:`default_recipe`
    of ``overrides["data"]`` (``--data``), else of ``cifar10``.  The overrides
    are applied on top either way.

    Examples
    --------
    >>> recipe, origin = resolve_recipe(None, {"data": "fashion-mnist", "epochs": 2})
    >>> recipe.name, recipe.augment, recipe.epochs, origin
    ('generic', [], 2, 'the default for fashion-mnist; overridden: data, epochs')
    """
    overrides = dict(overrides or {})
    if source is None:
        data = overrides.get("data", Recipe().data)
        base = default_recipe(data if isinstance(data, str) else str(data))
        origin = f"the default for {base.data.partition(':')[0]}"
    else:
        base = load_recipe(source)
        origin = ""
    if overrides:
        origin += ("; " if origin else "") + "overridden: " + ", ".join(overrides)
    return apply_overrides(base, overrides), origin
