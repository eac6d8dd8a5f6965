"""Training: recipes, data, the training loop, checkpoints, experiments and reports.

``hrgraph.train.train(spec, recipe, out=...)`` runs one training run (see
:mod:`hrgraph.train.loop`); recipes load without torch (:mod:`hrgraph.train.recipe`),
everything else imports it on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train", "evaluate", "load_recipe", "apply_overrides", "Recipe", "load_data", "iterate_batches"]

_LAZY = {
    "train": "loop",
    "evaluate": "loop",
    "load_recipe": "recipe",
    "apply_overrides": "recipe",
    "Recipe": "recipe",
    "load_data": "data",
    "iterate_batches": "data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hrgraph.train' has no attribute '{name}'")
