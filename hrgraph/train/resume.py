"""What a run trains, resolved before anything is written: a new run's inputs, or a resumed run's own.

``hrgraph train -o RUN --resume`` needs nothing else: the run's spec, recipe,
width, limits, threads, data folder and tags are read back from its
``config.yaml`` and ``checkpoints/last.pt``.  An option given on resume that
contradicts the run is refused with its name and both values; only the number
of epochs may change (a finished run is extended).  :func:`resolve_run` does
all of it without writing a file, so that a refusal leaves the folder as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..edit.match import scale_widths
from ..errors import TrainingError
from ..spec.models import Spec, load_spec
from .checkpoint import read_checkpoint
from .defaults import resolve_recipe
from .recipe import Recipe, apply_overrides, load_recipe
from .runfolder import check_new_folder, check_resumable, read_config, read_summary

__all__ = ["RunOptions", "resolve_run", "OPTION_NAMES"]

#: The command-line option of each recipe override (for messages).
OPTION_NAMES = {"epochs": "--epochs", "batch_size": "--batch-size", "optimizer.lr": "--lr", "seed": "--seed",
                "data": "--data"}


@dataclass
class RunOptions:
    """Everything a run trains with, resolved; ``state`` is the checkpoint to continue (``None``: start)."""

    spec: Spec
    recipe: Recipe
    overrides: dict[str, Any]
    width_mult: float | None = None
    limit_train: int | None = None
    limit_val: int | None = None
    threads: int | None = None
    data_dir: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    log_grad_norms: bool = False
    state: dict[str, Any] | None = None
    state_stamp: tuple[int, int] | None = None  # (mtime_ns, size) of last.pt when it was read
    origin: str = ""  # how the recipe was chosen, for the run's opening lines
    init_from: Any = None  # weights to start from (hrgraph.io.weights.load_weights's source)
    freeze: str | None = None  # "loaded": train only what init_from did not provide
    log: list[str] = field(default_factory=list)  # extra trackers ("tensorboard")

    def record(self) -> dict[str, Any]:
        """The options ``config.yaml`` keeps for the next ``--resume``."""
        # A state_dict given in Python cannot be recorded: only a path is (resume then needs it again to freeze).
        init = str(self.init_from) if isinstance(self.init_from, (str, Path)) else None
        return {"width_mult": self.width_mult, "limits": {"train": self.limit_train, "val": self.limit_val},
                "threads": self.threads, "data_dir": self.data_dir, "log_grad_norms": self.log_grad_norms,
                "init_from": init, "freeze": self.freeze, "log": list(self.log)}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _contradiction(option: str, given: Any, run: Any, out: Path) -> TrainingError:
    run_text = "none" if run is None else f"{run:g}" if isinstance(run, float) else str(run)
    given_text = f"{given:g}" if isinstance(given, float) else str(given)
    return TrainingError(
        f"cannot resume: {option} {given_text} contradicts the run, which has {option} {run_text}; "
        f"leave {option} out to use the run's own",
        path=str(out),
    )


def _new_run(spec: Any, recipe: Any, out: Path, overrides: Mapping[str, Any], loading: Mapping[str, bool],
             **options: Any) -> RunOptions:
    if spec is None:
        raise TrainingError("no spec given: name the spec to train (only --resume of a saved run may leave it out)",
                            path=str(out))
    loaded = load_spec(spec, **loading)
    if options["width_mult"] is not None:
        loaded = scale_widths(loaded, options["width_mult"])
    resolved, origin = resolve_recipe(recipe, overrides)
    return RunOptions(loaded, resolved, dict(overrides), origin=origin, **options)


def resolve_run(
    spec: Any,
    recipe: Any,
    *,
    out: Path,
    overrides: Mapping[str, Any],
    resume: bool,
    width_mult: float | None = None,
    limit_train: int | None = None,
    limit_val: int | None = None,
    threads: int | None = None,
    data_dir: str | Path | None = None,
    tags: Mapping[str, str] | None = None,
    log_grad_norms: bool = False,
    init_from: Any = None,
    freeze: str | None = None,
    log: "list[str] | tuple[str, ...]" = (),
    loading: Mapping[str, bool] | None = None,
) -> RunOptions:
    """The spec, recipe and options of the run in ``out``, checked against what the folder holds; writes nothing.

    Without ``resume`` the folder must be missing or empty.  With ``resume``
    and ``checkpoints/last.pt``, every option left out (``spec`` and
    ``recipe`` included) is the run's own, and one given must agree with the
    run, except the number of epochs.

    Raises
    ------
    TrainingError
        ``out`` is in the way (a run without ``resume``, files that are not a
        run's, results without ``last.pt`` on ``resume``), the run diverged, or
        an option contradicts the run (named, with both values).
    SpecError, RecipeError
        A bad spec or recipe.
    """
    out = Path(out)
    options = dict(width_mult=width_mult, limit_train=limit_train, limit_val=limit_val, threads=threads,
                   data_dir=None if data_dir is None else str(data_dir), tags=dict(tags or {}),
                   log_grad_norms=log_grad_norms, init_from=init_from, freeze=freeze, log=list(log or []))
    if not resume:
        check_new_folder(out)
        return _new_run(spec, recipe, out, overrides, loading or {}, **options)
    summary = read_summary(out) or {}
    if summary.get("diverged"):
        raise TrainingError(
            f"cannot resume: the run diverged (a non-finite loss at epoch {summary.get('diverged_epoch')}, step "
            f"{summary.get('diverged_step')}) and would diverge again at the same step; start a new run with "
            "another --out (a lower learning rate, for one)",
            path=str(out),
        )
    if not check_resumable(out):
        if spec is None:
            raise TrainingError("nothing to resume here (no checkpoints/last.pt); give the spec to start the run",
                                path=str(out))
        return _new_run(spec, recipe, out, overrides, loading or {}, **options)
    last = out / "checkpoints" / "last.pt"
    stamp = _stamp(last)
    state = read_checkpoint(last)
    config = read_config(out)
    return _resumed(spec, recipe, out, overrides, state, config, stamp, loading or {}, **options)


def _resumed(spec, recipe, out: Path, overrides: Mapping[str, Any], state: dict[str, Any], config: dict[str, Any],
             stamp: tuple[int, int], loading: Mapping[str, bool], **given: Any) -> RunOptions:
    saved = config.get("options") if isinstance(config.get("options"), dict) else None
    limits = config.get("limits") if isinstance(config.get("limits"), dict) else {}
    run: dict[str, Any] = {
        "width_mult": saved.get("width_mult") if saved else None,
        "limit_train": limits.get("train"), "limit_val": limits.get("val"),
        "threads": saved.get("threads") if saved else None,
        "data_dir": saved.get("data_dir") if saved else None,
        "tags": config.get("tags") if isinstance(config.get("tags"), dict) else {},
        "log_grad_norms": state.get("grad_norms") is not None,
        "init_from": saved.get("init_from") if saved else None,
        "freeze": saved.get("freeze") if saved else None,
        "log": list(saved.get("log") or []) if saved else [],
    }
    names = {"width_mult": "--width-mult", "limit_train": "--limit-train", "limit_val": "--limit-val",
             "threads": "--threads", "freeze": "--freeze"}
    for key, option in names.items():
        # A run recorded before config.yaml kept its options: its width is unknown, so the spec's fingerprint decides.
        if key == "width_mult" and saved is None:
            continue
        if given[key] is not None and given[key] != run[key]:
            raise _contradiction(option, given[key], run[key], out)
    resolved = {key: given[key] if given[key] not in (None, {}, False, []) else run[key] for key in run}
    resolved["tags"] = given["tags"] or run["tags"]

    run_spec = load_spec(state["spec"], **loading)
    if spec is None:
        new_spec = run_spec
    else:
        new_spec = load_spec(spec, **loading)
        if resolved["width_mult"] is not None:
            new_spec = scale_widths(new_spec, resolved["width_mult"])
        if new_spec.fingerprint != state.get("spec_fingerprint"):
            width = resolved["width_mult"]
            scaled = f" scaled by {width:g} (the run's width)" if width is not None else ""
            raise TrainingError(
                f"cannot resume: the spec changed: {spec if isinstance(spec, (str, Path)) else 'the spec'}{scaled} "
                f"has fingerprint {new_spec.fingerprint}, the run's is {state.get('spec_fingerprint')}; leave the "
                "spec out to continue the run's own, or start a new run with another --out",
                path=str(out),
            )
    run_recipe = load_recipe(state["recipe"])
    new_recipe = _resumed_recipe(recipe, run_recipe, overrides, out)
    return RunOptions(new_spec, new_recipe, dict(overrides), state=state, state_stamp=stamp, **resolved)


def _resumed_recipe(recipe: Any, run_recipe: Recipe, overrides: Mapping[str, Any], out: Path) -> Recipe:
    if recipe is None:
        # The run's own recipe; overrides must agree with it, but for the number of epochs.
        new = apply_overrides(run_recipe, overrides)
        before, after = _flat(run_recipe.to_dict()), _flat(new.to_dict())
        for key, value in overrides.items():
            if key != "epochs" and after.get(key) != before.get(key):
                raise _contradiction(OPTION_NAMES.get(key, f"override {key}"), value, before.get(key), out)
        return new
    new = apply_overrides(load_recipe(recipe), overrides)
    before, after = _flat(run_recipe.to_dict()), _flat(new.to_dict())
    changed = sorted(k for k in set(before) | set(after) if k != "epochs" and before.get(k) != after.get(k))
    if changed:
        parts = [f"{k}: the run has {before.get(k)!r}, now {after.get(k)!r}" for k in changed[:4]]
        raise TrainingError(
            f"cannot resume: the recipe changed ({'; '.join(parts)}); only --epochs may change on resume "
            "(leave --recipe out to continue with the run's own)",
            path=str(out),
        )
    return new
