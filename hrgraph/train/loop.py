"""``train``: one run of a spec under a recipe, into a run folder that can always be resumed.

A run folder holds everything needed to read, compare and continue the run::

    config.yaml          resolved spec and recipe, their fingerprints, options, tags, versions, command lines
    metrics.csv          one row per epoch: train/val loss and accuracy, lr, seconds, images/s
    summary.json         best val epoch, test top-1/top-5 at the best-val checkpoint, params, MACs, wall time
    checkpoints/last.pt  the whole state after the last finished step (model, optimizer, position, RNGs)
    checkpoints/best.pt  the model at the best validation accuracy
    curves.png           loss and accuracy against epoch, train and val

The loop itself is the bare ``model(x); loss.backward(); opt.step()`` with
what a run needs around it and nothing per step that waits for an accelerator:
metrics are summed on the device and read once per epoch, and the loss is
checked for NaN or infinity on the device, read every step on the CPU (free
there) and every :data:`CHECK_EVERY` steps elsewhere.  The learning rate is set
every step from :func:`hrgraph.train.recipe.lr_at`, so a schedule is a pure
function of (epoch, step) and resuming needs no scheduler state.  SIGINT or
SIGTERM lets the current step finish, writes ``last.pt`` and raises
:class:`~hrgraph.errors.TrainingInterrupted`; ``resume=True`` continues from the
exact step, with bit-identical results on the CPU.  A non-finite loss stops the
run with :class:`~hrgraph.errors.DivergedError`; no non-finite weights are ever
saved.  What a run trains is resolved by :mod:`hrgraph.train.resume`; the
files besides checkpoints and the run lock are :mod:`hrgraph.train.runfolder`'s.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..build.shapes import ShapePlan, infer_shapes
from ..errors import TrainingError
from . import distributed
from .checkpoint import read_checkpoint
from .data import DataSplits, check_crop_padding, load_data
from .defaults import describe_recipe
from .machine import machine_info, set_threads
from .progress import LogReporter, Reporter
from .recipe import DEFAULT_RECIPE, Recipe
from .resume import RunOptions, resolve_run
from .runfolder import METRICS_COLUMNS, check_new_folder, read_summary, run_lock, write_config, write_curves
from .tracking import check_trackers
from .warmstart import write_init_report
from .session import CHECK_EVERY, Diverged, Session, evaluate

__all__ = ["train", "evaluate", "METRICS_COLUMNS", "DEFAULT_RECIPE", "CHECK_EVERY", "write_curves"]

#: What :func:`hrgraph.edit.match.match_params` and a grid's ``match`` write into a spec's description.
_MATCHED = re.compile(r"to match |Matched to model ")


# -- stopping on a signal ------------------------------------------------------


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after every step.  A second signal stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        # Until the first training step nothing is worth saving, and reading the data may take
        # minutes: a signal then stops at once, through the handler that was there before.
        self.deferring = False

    def __bool__(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def installed(self) -> Iterator["_StopFlag"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, frame: Any) -> None:
            if self.signal is not None or not self.deferring:  # a second signal: the user really means now
                _stop_now(previous[signum], signum, frame)
            self.signal = signum

        for s in previous:
            signal.signal(s, handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _stop_now(handler: Any, signum: int, frame: Any) -> None:
    """Stop at once as the handler in force before the run would (the CLI's maps SIGTERM to exit 143)."""
    if callable(handler):
        handler(signum, frame)
    raise KeyboardInterrupt


# -- the run -------------------------------------------------------------------


def train(
    spec: "Any | None" = None,
    recipe: "Recipe | str | Path | Mapping[str, Any] | None" = None,
    *,
    out: str | Path,
    overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
    device: str = "auto",
    amp: bool = False,
    limit_train: int | None = None,
    limit_val: int | None = None,
    width_mult: float | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
    tags: Mapping[str, str] | None = None,
    command: list[str] | None = None,
    reporter: Reporter | None = None,
    log_grad_norms: bool = False,
    threads: int | None = None,
    init_from: Any = None,
    freeze: str | None = None,
    log: "Sequence[str]" = (),
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> dict[str, Any]:
    """Train ``spec`` under ``recipe`` into the run folder ``out``; returns the run's summary.

    Parameters
    ----------
    spec : Spec, path, YAML text or dict, optional
        The network (anything :func:`hrgraph.load_spec` takes).  With
        ``resume`` it may be left out: the run's own spec.
    recipe : Recipe, path, YAML text or dict, optional
        How to train (default: :func:`hrgraph.train.defaults.default_recipe`; with
        ``resume``, the run's own recipe).
    out : path
        The run folder: missing or empty unless ``resume``.
    overrides : mapping, optional
        Recipe keys to change, dotted (``{"optimizer.lr": 0.1, "epochs": 3}``).
        On resume only ``epochs`` may differ from the run's.
    resume : bool
        Continue the run in ``out`` from ``checkpoints/last.pt`` (start it if
        the folder is missing, empty or holds only ``config.yaml``).  Every
        option left out is the run's own; one given must agree with the run.
        A larger ``epochs`` extends a finished run; otherwise a finished run
        returns its summary at once.
    device : {"auto", "cpu", "cuda", "mps"}
    amp : bool
        Mixed precision (float16 autocast and gradient scaling; CUDA only).
    limit_train, limit_val : int, optional
        Use at most this many images per epoch of the training split (after the
        validation hold-out) / of the val and test splits (smoke runs).
    width_mult : float, optional
        Scale every hidden width first (:func:`hrgraph.edit.match.scale_widths`).
    data_dir : path, optional
        Where the data set lives (default: the recipe's ``data_dir``, then the
        data set's default places).
    download : bool
        Fetch a missing data set through torchvision.
    tags : mapping, optional
        Labels stored in ``config.yaml`` and ``summary.json`` (an experiment's
        model, family, version...).
    command : list of str, optional
        The command line to record (the CLI passes ``sys.argv``).
    reporter : Reporter, optional
        Progress events (default: log lines through :mod:`logging`).
    log_grad_norms : bool
        Write ``grad_norms.csv``: per node and projection, the L2 norm of its
        parameters' gradient at initialisation (epoch 0, the first batch) and
        its mean over the steps of every epoch (how far the loss reaches back).
    threads : int, optional
        Pin torch's CPU threads to this many for the run (default: leave
        torch's choice).  CPU results are bit-identical only for the same
        thread count; ``config.yaml`` records the count in force either way.
    init_from : state_dict, path or run folder, optional
        Start from these weights (:func:`hrgraph.load_weights`: hrgraph or
        torchvision names; edges the source lacks start silent); the report
        goes to ``init.json``.  A path is recorded, and resume reuses it.
    freeze : {"loaded"}, optional
        With ``init_from``: train only the parameters the source did not provide.
    log : sequence of str
        Mirror each epoch into these trackers too (``"tensorboard"``: event
        files in ``out``, see :mod:`hrgraph.train.tracking`); ``metrics.csv``
        is written either way.
    allow_imports, allow_outside : bool
        Passed to :func:`hrgraph.load_spec` when ``spec`` is a file, text or
        dict (and, on resume, for the run's own spec).

    Returns
    -------
    dict
        The content of ``summary.json``.

    Raises
    ------
    TrainingInterrupted
        SIGINT or SIGTERM arrived; ``last.pt`` holds the state after the last step.
    DivergedError
        The training loss (or the weights, or the validation loss) became NaN
        or infinite; ``summary.json`` says ``diverged`` with the epoch and step,
        the checkpoints hold the last finite state.
    RunLockedError
        Another process is training the run in ``out``.
    TrainingError
        ``out`` is in the way, or an option contradicts the run on resume.
    HrgraphError
        A bad spec, recipe or data set (``SpecError``, ``RecipeError``, ``DataError``).

    Examples
    --------
    >>> import tempfile, hrgraph.train
    >>> summary = hrgraph.train.train(
    ...     "specs/resnet18.yaml", {"data": "synthetic", "epochs": 1, "batch_size": 50},
    ...     out=tempfile.mkdtemp(), width_mult=0.125, limit_train=100, limit_val=100, device="cpu")
    >>> summary["finished"], summary["epochs_done"], 0.0 <= summary["test_acc1"] <= 1.0
    (True, 1, True)
    """
    reporter = reporter or LogReporter()
    joined_before = torch.distributed.is_initialized()
    ctx = None
    try:
        opts = resolve_run(spec, recipe, out=Path(out), overrides=overrides or {}, resume=resume,
                           width_mult=width_mult, limit_train=limit_train, limit_val=limit_val, threads=threads,
                           data_dir=data_dir, tags=tags, log_grad_norms=log_grad_norms, init_from=init_from,
                           freeze=freeze, log=log, loading={"allow_imports": allow_imports, "allow_outside": allow_outside})
        try:
            set_threads(opts.threads)
            ctx = distributed.setup(device)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        with _StopFlag().installed() as stop:
            summary = _run(opts, out=Path(out), ctx=ctx, amp=amp, download=download, command=command,
                           reporter=reporter, stop=stop)
        if ctx.distributed:
            # No rank leaves (and tears the group down) while rank 0 still writes or
            # talks to it: gloo aborts the process otherwise (seen as a flaky SIGABRT).
            torch.distributed.barrier()
        return summary
    finally:
        reporter.close()
        if ctx is not None and not joined_before:
            distributed.teardown(ctx)


def _run(opts: RunOptions, *, out: Path, ctx: distributed.Context, amp: bool, download: bool,
         command: list[str] | None, reporter: Reporter, stop: "_StopFlag") -> dict[str, Any]:
    """Check everything, then (holding the run's lock) load or start the state, train, and finish."""
    t_start = time.perf_counter()
    plan, data = _prepare(opts, ctx, amp, download, reporter)
    # Nothing is written before this point: a bad recipe, spec or data set leaves no half-made folder.
    with run_lock(out) if ctx.main else contextlib.nullcontext():
        state = _state_under_lock(opts, out, ctx)
        finished = _finished_summary(opts, state, out)
        if finished is not None:
            if ctx.main:
                reporter.message(f"{out}: finished ({state['epoch']} epochs); nothing to do"
                                 + (f" (--epochs {opts.recipe.epochs} asks for no more)" if state["epoch"] > opts.recipe.epochs else ""))
            return finished
        session = Session(opts, plan, data, out=out, ctx=ctx, amp=amp, reporter=reporter, stop=stop, t_start=t_start)
        if state is not None:
            session.load(state)
        if ctx.main:
            (out / "checkpoints").mkdir(parents=True, exist_ok=True)
            write_config(out, spec=opts.spec, recipe=opts.recipe, overrides=opts.overrides, tags=opts.tags,
                         command=command, machine=machine_info(ctx.device), device=str(ctx.device),
                         world_size=ctx.world_size, data_notes=data.notes, options=opts.record(),
                         previous=state is not None)
            if session.init is not None:
                write_init_report(out, session.init, opts.freeze)
                if state is None:
                    reporter.message(f"init: {session.init.describe()}")
        stop.deferring = True  # from here a signal lets the step finish, and the run saves
        try:
            session.train_epochs()
        except Diverged as d:
            raise session.diverged(d) from None
        finally:
            session.close()  # the trackers' files, also after an interrupt or divergence
        return session.finish()


def _prepare(opts: RunOptions, ctx: distributed.Context, amp: bool, download: bool,
             reporter: Reporter) -> tuple[ShapePlan, DataSplits]:
    """Check the spec's shapes, the device and the data set, and tell what is worth telling; writes nothing."""
    plan = infer_shapes(opts.spec)
    check_trackers(opts.log)  # a missing package fails before anything is written
    if "random_crop" in opts.recipe.augment:
        check_crop_padding(opts.recipe.crop_padding, plan.input_shape)
    if ctx.main:
        for line in describe_recipe(opts.recipe, opts.origin or "the run's own (config.yaml)"):
            reporter.message(line)
    if amp and ctx.device.type != "cuda":
        raise TrainingError(f"--amp needs a CUDA device (this run is on {ctx.device.type})")
    recipe = opts.recipe
    data = load_data(
        recipe.data, root=opts.data_dir or recipe.data_dir, input_shape=plan.input_shape, val_split=recipe.val_split,
        seed=recipe.seed, fit=recipe.fit, train_subset=recipe.train_subset, download=download,
        num_classes=plan.output_shape[0],
    )
    if ctx.main:
        for note in data.notes:
            reporter.message(f"data: {note}")
        if opts.limit_train is not None and opts.limit_train > len(data.train):
            reporter.message(f"--limit-train {opts.limit_train}: there are {len(data.train):,} training images after "
                             "the validation hold-out; using all of them")
        if opts.width_mult is not None and opts.state is None and _MATCHED.search(opts.spec.description or ""):
            reporter.message(
                f"warning: the spec was parameter-matched (its description says so) and is now scaled by "
                f"--width-mult {opts.width_mult:g}: the match no longer holds (widths round differently); scale "
                "first, then match (`hrgraph scale`, then `hrgraph match`), as experiment grids do")
    return plan, data


def _state_under_lock(opts: RunOptions, out: Path, ctx: distributed.Context) -> dict[str, Any] | None:
    """The checkpoint to continue, read again if another process changed the folder since it was resolved."""
    last = out / "checkpoints" / "last.pt"
    if opts.state is None:
        if ctx.main and last.is_file():
            # Another process started this run while this one loaded its data: it is that run's now.
            check_new_folder(out)
        return None
    st = last.stat()
    if (st.st_mtime_ns, st.st_size) != opts.state_stamp:
        opts.state = read_checkpoint(last)
        if opts.state.get("spec_fingerprint") != opts.spec.fingerprint:
            raise TrainingError("the run changed while this process was getting ready (another process trained it)",
                                path=str(out))
    return opts.state


def _finished_summary(opts: RunOptions, state: dict[str, Any] | None, out: Path) -> dict[str, Any] | None:
    """The run's summary when it is finished and asked for no more epochs, else ``None``."""
    if state is None or state["step"] != 0 or state["epoch"] < opts.recipe.epochs:
        return None
    summary = read_summary(out)
    return summary if summary and summary.get("finished") else None


