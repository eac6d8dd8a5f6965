"""``train``: one run of a spec under a recipe, into a run folder that can always be resumed.

A run folder holds everything needed to read, compare and continue the run::

    config.yaml          resolved spec and recipe, their fingerprints, tags, versions, command line
    metrics.csv          one row per epoch: train/val loss and accuracy, lr, seconds, images/s
    summary.json         best val epoch, test top-1/top-5 at the best-val checkpoint, params, MACs, wall time
    checkpoints/last.pt  the whole state after the last finished step (model, optimizer, position, RNGs)
    checkpoints/best.pt  the model at the best validation accuracy
    curves.png           loss and accuracy against epoch, train and val

The loop itself is the bare ``model(x); loss.backward(); opt.step()`` with
what a run needs around it and nothing per step that waits for the device:
metrics are summed on the device and read once per epoch.  The learning rate is
set every step from :func:`hrgraph.train.recipe.lr_at`, so a schedule is a pure
function of (epoch, step) and resuming needs no scheduler state.  SIGINT or
SIGTERM lets the current step finish, writes ``last.pt`` and raises
:class:`~hrgraph.errors.TrainingInterrupted`; ``resume=True`` continues from the
exact step, with bit-identical results on the CPU.

Why one module past 500 lines: the run's steps (start or resume, epochs, evaluation,
checkpoints, the run folder's files) share the run's state; the run-folder files are
the next candidate to move into a module of their own.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..build.compiler import compile_model
from ..errors import TrainingError, TrainingInterrupted
from ..files import write_atomic
from ..edit.match import scale_widths
from ..build.shapes import infer_shapes
from ..spec.models import Spec, load_spec
from . import distributed
from .checkpoint import read_checkpoint, rng_state, set_rng_state, write_checkpoint
from .data import iterate_batches, load_data, num_batches
from .machine import machine_info, set_threads
from .progress import LogReporter, Reporter
from .recipe import Recipe, apply_overrides, load_recipe, lr_at

__all__ = ["train", "evaluate", "METRICS_COLUMNS", "DEFAULT_RECIPE"]

METRICS_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]
#: The recipe used when none is given: the paper's CIFAR-10 recipe.
DEFAULT_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "paper-cifar10.yaml"


# -- stopping on a signal ------------------------------------------------------


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after every step.  A second signal stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def installed(self) -> Iterator["_StopFlag"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, frame: Any) -> None:
            if self.signal is not None:
                raise KeyboardInterrupt  # second signal: the user really means now
            self.signal = signum

        for s in previous:
            signal.signal(s, handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


# -- pieces of a run -----------------------------------------------------------


def _optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    o = recipe.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int,
    device: torch.device,
    mean: Any,
    std: Any,
    ctx: distributed.Context | None = None,
    limit: int | None = None,
    criterion: nn.Module | None = None,
) -> dict[str, float]:
    """Mean loss, top-1 and top-5 accuracy of ``model`` on ``data`` (summed over ranks).

    Returns
    -------
    dict
        ``loss``, ``acc1``, ``acc5`` (fractions) and ``n`` (images seen).
    """
    ctx = ctx or distributed.Context(device=device)
    criterion = criterion or nn.CrossEntropyLoss()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, n
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for x, y in iterate_batches(
            data, batch_size, device=device, shuffle=False, seed=0, epoch=0, mean=mean, std=std,
            rank=ctx.rank, world_size=ctx.world_size, limit=limit,
        ):
            logits = model(x)
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hits = top == y[:, None]
            sums += torch.stack([
                criterion(logits.float(), y).double() * len(y),
                hits[:, 0].sum().double(),
                hits.any(dim=1).sum().double(),
                torch.tensor(float(len(y)), dtype=torch.float64, device=device),
            ])
    model.train(was_training)
    loss, top1, top5, n = distributed.all_sum(ctx, sums).tolist()
    n = max(n, 1.0)
    return {"loss": loss / n, "acc1": top1 / n, "acc5": top5 / n, "n": int(n)}


def _versions() -> dict[str, str]:
    import torchvision

    from .._version import __version__

    return {"python": platform.python_version(), "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "hrgraph": __version__}


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRICS_COLUMNS})
    write_atomic(path, buf.getvalue())


def _recipe_without_epochs(recipe: Recipe) -> dict[str, Any]:
    data = recipe.to_dict()
    data.pop("epochs", None)
    return data


def write_curves(rows: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Loss and accuracy against epoch, train and val, as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    for split, style in (("train", "-"), ("val", "--")):
        points = [(e, r[f"{split}_loss"], r[f"{split}_acc"]) for e, r in zip(epochs, rows) if r.get(f"{split}_loss") is not None]
        if points:
            xs, losses, accs = zip(*points)
            ax_loss.plot(xs, losses, style, marker=".", label=split)
            ax_acc.plot(xs, [100 * a for a in accs], style, marker=".", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())


# -- the run -------------------------------------------------------------------


def train(
    spec: "Spec | str | Path | Mapping[str, Any]",
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
    allow_imports: bool = False,
    allow_outside: bool = False,
) -> dict[str, Any]:
    """Train ``spec`` under ``recipe`` into the run folder ``out``; returns the run's summary.

    Parameters
    ----------
    spec : Spec, path, YAML text or dict
        The network (anything :func:`hrgraph.load_spec` takes).
    recipe : Recipe, path, YAML text or dict, optional
        How to train (default: ``recipes/paper-cifar10.yaml``).
    out : path
        The run folder.  It must not hold a run already unless ``resume``.
    overrides : mapping, optional
        Recipe keys to change, dotted (``{"optimizer.lr": 0.1, "epochs": 3}``).
    resume : bool
        Continue the run in ``out`` from ``checkpoints/last.pt`` (start it if
        there is none).  A larger ``epochs`` extends a finished run; a finished
        run with the same epochs returns its summary at once.
    device : {"auto", "cpu", "cuda", "mps"}
    amp : bool
        Mixed precision (float16 autocast and gradient scaling; CUDA only).
    limit_train, limit_val : int, optional
        Use at most this many images per epoch of the training / val and test
        splits (smoke runs).
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
    allow_imports, allow_outside : bool
        Passed to :func:`hrgraph.load_spec` when ``spec`` is a file, text or dict.

    Returns
    -------
    dict
        The content of ``summary.json``.

    Raises
    ------
    TrainingInterrupted
        SIGINT or SIGTERM arrived; ``last.pt`` holds the state after the last step.
    TrainingError
        ``out`` holds another run (or, on resume, a run of another spec or recipe).
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
    try:
        set_threads(threads)
        ctx = distributed.setup(device)
    except ValueError as err:
        raise TrainingError(str(err)) from None
    try:
        with _StopFlag().installed() as stop:
            summary = _run(spec, recipe, out=Path(out), overrides=overrides or {}, resume=resume, ctx=ctx, amp=amp,
                           limit_train=limit_train, limit_val=limit_val, width_mult=width_mult, data_dir=data_dir,
                           download=download, tags=dict(tags or {}), command=command, reporter=reporter, stop=stop,
                           log_grad_norms=log_grad_norms, loading={"allow_imports": allow_imports, "allow_outside": allow_outside})
        if ctx.distributed:
            # No rank leaves (and tears the group down) while rank 0 still writes or
            # talks to it: gloo aborts the process otherwise (seen as a flaky SIGABRT).
            torch.distributed.barrier()
        return summary
    finally:
        reporter.close()
        if not joined_before:
            distributed.teardown(ctx)


def _run(spec, recipe, *, out: Path, overrides, resume, ctx, amp, limit_train, limit_val, width_mult, data_dir, download,
         tags, command, reporter: Reporter, stop: _StopFlag, log_grad_norms: bool, loading: dict[str, bool]) -> dict[str, Any]:
    t_start = time.perf_counter()
    spec = load_spec(spec, **loading)
    if width_mult is not None:
        spec = scale_widths(spec, width_mult)
    recipe = apply_overrides(load_recipe(recipe if recipe is not None else DEFAULT_RECIPE), overrides)
    plan = infer_shapes(spec)
    device = ctx.device
    if amp and device.type != "cuda":
        raise TrainingError(f"--amp needs a CUDA device (this run is on {device.type})")

    ckpt_dir = out / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    state: dict[str, Any] | None = None
    if resume and last_path.exists():
        state = read_checkpoint(last_path, map_location=device)
        _check_same_run(state, spec, recipe, last_path)
        done = out / "summary.json"
        if state["epoch"] >= recipe.epochs and state["step"] == 0 and done.exists():
            if ctx.main:
                reporter.message(f"{out}: finished ({state['epoch']} epochs); nothing to do")
            return json.loads(done.read_text())
    # With resume, a run stopped before its first checkpoint simply starts again.
    elif not resume and ((out / "config.yaml").exists() or last_path.exists()):
        raise TrainingError(
            "this folder already holds a run; continue it with --resume, or choose another --out",
            path=str(out),
        )

    data = load_data(
        recipe.data, root=data_dir or recipe.data_dir, input_shape=plan.input_shape, val_split=recipe.val_split,
        seed=recipe.seed, fit=recipe.fit, train_subset=recipe.train_subset, download=download,
        num_classes=plan.output_shape[0],
    )
    if ctx.main:
        for note in data.notes:
            reporter.message(f"data: {note}")

    # The same seed gives the same initial weights, whatever ran before.
    torch.manual_seed(recipe.seed)
    model = compile_model(spec).to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = _optimizer(recipe, model)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    # Under torchrun, ranks' slices of a global batch may differ in size (even be
    # empty): each rank's loss is its sum over the global batch size, times the
    # world size that DDP's gradient averaging divides by, so that the gradient
    # is exactly the global batch's mean.
    criterion_sum = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, reduction="sum")
    n_train = len(data.train) if limit_train is None else min(len(data.train), limit_train)
    scaler = torch.amp.GradScaler("cuda") if amp else None

    rows: list[dict[str, Any]] = []
    grad = _GradNorms(model) if log_grad_norms else None
    epoch, start_step, best = 0, 0, {"epoch": 0, "acc": -1.0}
    partial = torch.zeros(3, dtype=torch.float64)  # train loss sum, correct, images of an unfinished epoch
    prior_wall = 0.0  # seconds spent in earlier sessions of this run
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        epoch, start_step, rows, best = state["epoch"], state["step"], list(state["rows"]), dict(state["best"])
        if grad is not None:
            grad.load(state.get("grad_norms"))
        # The saved sums are over all ranks already: count them once.
        partial = state["partial"].double() if ctx.main else torch.zeros(3, dtype=torch.float64)
        prior_wall = float(state.get("wall_seconds", 0.0))
        if ctx.main:
            where = f"epoch {epoch + 1}, step {start_step}" if start_step else f"the end of epoch {epoch}"
            reporter.message(f"resuming {out} from {where}")

    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(exist_ok=True)
        _write_config(out, spec, recipe, overrides, tags, command, ctx, data, previous=state is not None,
                      limits={"train": limit_train, "val": limit_val})

    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    steps = num_batches(data.train, recipe.batch_size, limit_train)
    # normalize: false feeds x / 255 as it is.
    mean, std = (data.mean, data.std) if recipe.normalize else (None, None)
    eval_kw = dict(batch_size=recipe.batch_size, device=device, mean=mean, std=std, ctx=ctx, criterion=criterion)

    def save_last(at_epoch: int, at_step: int, partial_sums: torch.Tensor) -> None:
        """Write last.pt (on rank 0); ``partial_sums`` must already be summed over ranks."""
        if ctx.main:
            write_checkpoint(last_path, {
                "spec": spec.to_dict(minimal=False), "spec_fingerprint": spec.fingerprint,
                "recipe": recipe.to_dict(), "recipe_fingerprint": recipe.fingerprint,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "epoch": at_epoch, "step": at_step, "rows": rows, "best": best, "partial": partial_sums.cpu(),
                "grad_norms": grad.state() if grad is not None else None,
                "rng": rng_state(), "wall_seconds": prior_wall + time.perf_counter() - t_start,
            })

    def interrupted(at_epoch: int, at_step: int, partial_sums: torch.Tensor) -> TrainingInterrupted:
        save_last(at_epoch, at_step, distributed.all_sum(ctx, partial_sums))
        how = f"hrgraph train {spec.path or '<spec>'} --out {out} --resume"
        return TrainingInterrupted(
            f"interrupted by {signal.Signals(stop.signal).name} at epoch {at_epoch + 1}, step {at_step} of {steps}; "
            f"the run is saved: continue it with `{how}`",
            resume=how, path=str(out),
        )

    net.train()
    while epoch < recipe.epochs:
        if ctx.main:
            reporter.start_epoch(epoch + 1, recipe.epochs, steps, start_step)
        sums = partial.to(device)
        t0, images = time.perf_counter(), 0
        step = start_step
        for x, y in iterate_batches(
            data.train, recipe.batch_size, device=device, shuffle=True, seed=recipe.seed, epoch=epoch,
            start_step=start_step, augment=recipe.augment, crop_padding=recipe.crop_padding, mean=mean,
            std=std, rank=ctx.rank, world_size=ctx.world_size, limit=limit_train,
        ):
            lr = lr_at(recipe, epoch + step / steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device_type="cuda", dtype=torch.float16) if amp else contextlib.nullcontext():
                logits = net(x)
                if ctx.distributed:
                    global_n = min(recipe.batch_size, n_train - step * recipe.batch_size)
                    loss = criterion_sum(logits, y) * (ctx.world_size / global_n)
                else:
                    loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if grad is not None:
                    scaler.unscale_(optimizer)
                    grad.add(epoch, step)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if grad is not None:
                    grad.add(epoch, step)
                optimizer.step()
            with torch.no_grad():
                local_sum = loss.detach().double() * (global_n / ctx.world_size if ctx.distributed else len(y))
                sums += torch.stack([local_sum, (logits.argmax(1) == y).sum().double(),
                                     torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
            step += 1
            images += len(y)
            if ctx.main:
                reporter.step(len(y) * ctx.world_size, lambda: (sums[0] / sums[2].clamp(min=1)).item())
            if _any_rank(ctx, bool(stop)):
                raise interrupted(epoch, step, sums)
        seconds = time.perf_counter() - t0
        train_loss, train_correct, train_n = distributed.all_sum(ctx, sums).tolist()
        row: dict[str, Any] = {
            "epoch": epoch + 1, "train_loss": train_loss / max(train_n, 1), "train_acc": train_correct / max(train_n, 1),
            "val_loss": None, "val_acc": None, "lr": lr_at(recipe, epoch),
            "seconds": round(seconds, 3), "images_per_s": round(images * ctx.world_size / max(seconds, 1e-9), 1),
        }
        if data.val is not None:
            result = evaluate(net, data.val, limit=limit_val, **eval_kw)
            row["val_loss"], row["val_acc"] = result["loss"], result["acc1"]
        rows.append(row)
        epoch, start_step, partial = epoch + 1, 0, torch.zeros(3, dtype=torch.float64)
        score = row["val_acc"] if row["val_acc"] is not None else row["train_acc"]
        if ctx.main:
            reporter.end_epoch(row, recipe.epochs)
            if score > best["acc"]:
                best = {"epoch": epoch, "acc": score}
                write_checkpoint(ckpt_dir / "best.pt", {
                    "spec": spec.to_dict(minimal=False), "spec_fingerprint": spec.fingerprint,
                    "recipe": recipe.to_dict(), "recipe_fingerprint": recipe.fingerprint,
                    "model": model.state_dict(), "epoch": epoch, "val_acc": row["val_acc"],
                })
            if grad is not None:
                grad.write(out / "grad_norms.csv", epoch)  # closes the epoch's sums before they are saved
            save_last(epoch, 0, partial)
            _write_metrics(out / "metrics.csv", rows)
            write_curves(rows, out / "curves.png", title=spec.name)
        best = _broadcast_best(ctx, best)
        if _any_rank(ctx, bool(stop)) and epoch < recipe.epochs:
            raise interrupted(epoch, 0, partial)

    # Test at the best-val checkpoint (the paper's protocol: select on val, report test).
    test = {"loss": None, "acc1": None, "acc5": None}
    if data.test is not None:
        if ctx.distributed:
            torch.distributed.barrier()  # rank 0 has written best.pt
        best_state = read_checkpoint(ckpt_dir / "best.pt", map_location=device)
        model.load_state_dict(best_state["model"])
        test = evaluate(net, data.test, limit=limit_val, **eval_kw)
    summary = {
        "name": tags.get("model") or spec.name, "spec_name": spec.name, "data": recipe.data, "seed": recipe.seed,
        "tags": tags, "params": params, "macs": plan.macs, "epochs": recipe.epochs, "epochs_done": len(rows),
        "best_epoch": best["epoch"], "best_val_acc": rows[best["epoch"] - 1]["val_acc"] if rows else None,
        "test_split": data.test_split, "test_loss": test["loss"], "test_acc1": test["acc1"], "test_acc5": test["acc5"],
        "wall_seconds": round(prior_wall + time.perf_counter() - t_start, 1),
        "finished": True,
    }
    if ctx.main:
        write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


class _GradNorms:
    """Per-module gradient norms: at initialisation, then the mean of each epoch (summed on the device)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = [(f"nodes.{k}", "node", m) for k, m in model.nodes.items()]
        self.modules += [(f"projections.{k}", "projection", m) for k, m in model.projections.items()]
        self.modules = [(n, k, [p for p in m.parameters() if p.requires_grad]) for n, k, m in self.modules]
        self.modules = [(n, k, ps) for n, k, ps in self.modules if ps]
        self.rows: list[tuple[int, str, str, float]] = []  # finished epochs
        self.sums: torch.Tensor | None = None
        self.steps = 0

    def _norms(self) -> torch.Tensor:
        return torch.stack([
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in ps if p.grad is not None]))
            for _, _, ps in self.modules
        ]).double()

    def add(self, epoch: int, step: int) -> None:
        norms = self._norms()
        if epoch == 0 and step == 0:
            self.rows += [(0, n, k, v) for (n, k, _), v in zip(self.modules, norms.tolist())]
        self.sums = norms if self.sums is None else self.sums + norms
        self.steps += 1

    def write(self, path: Path, epoch: int) -> None:
        """Close ``epoch`` (1-based) and write every row so far."""
        if self.sums is not None:
            means = (self.sums / self.steps).tolist()
            self.rows += [(epoch, n, k, v) for (n, k, _), v in zip(self.modules, means)]
        self.sums, self.steps = None, 0
        lines = ["epoch,module,kind,norm"] + [f"{e},{n},{k},{v:.6g}" for e, n, k, v in self.rows]
        write_atomic(path, "\n".join(lines) + "\n")

    def state(self) -> dict[str, Any]:
        return {"rows": [list(r) for r in self.rows], "sums": self.sums, "steps": self.steps}

    def load(self, state: dict[str, Any] | None) -> None:
        if state:
            self.rows = [tuple(r) for r in state["rows"]]
            self.sums, self.steps = state["sums"], state["steps"]


def _any_rank(ctx: distributed.Context, flag: bool) -> bool:
    """True when any rank was asked to stop: all ranks stop at the same step."""
    if not ctx.distributed:
        return flag
    return bool(distributed.all_sum(ctx, torch.tensor([float(flag)])).item())


def _broadcast_best(ctx: distributed.Context, best: dict[str, Any]) -> dict[str, Any]:
    if not ctx.distributed:
        return best
    holder = [best]
    torch.distributed.broadcast_object_list(holder, src=0)
    return holder[0]


def _check_same_run(state: dict[str, Any], spec: Spec, recipe: Recipe, path: Path) -> None:
    if state.get("spec_fingerprint") != spec.fingerprint:
        raise TrainingError(
            f"cannot resume: the spec changed (fingerprint {spec.fingerprint}, the run's is "
            f"{state.get('spec_fingerprint')}); start a new run with another --out",
            path=str(path),
        )
    saved = load_recipe(state["recipe"])
    if _recipe_without_epochs(saved) != _recipe_without_epochs(recipe):
        changed = sorted(k for k in set(saved.to_dict()) | set(recipe.to_dict())
                         if k != "epochs" and saved.to_dict().get(k) != recipe.to_dict().get(k))
        raise TrainingError(
            f"cannot resume: the recipe changed ({', '.join(changed)}); only --epochs may change on resume",
            path=str(path),
        )


def _write_config(out: Path, spec: Spec, recipe: Recipe, overrides, tags, command, ctx, data, previous: bool,
                  limits: Mapping[str, int | None] | None = None) -> None:
    config_path = out / "config.yaml"
    commands: list[list[str]] = []
    if previous and config_path.exists():
        with contextlib.suppress(Exception):
            commands = list(yaml.safe_load(config_path.read_text()).get("commands", []))
    commands.append(list(command if command is not None else sys.argv))
    config = {
        "spec": spec.to_dict(minimal=False), "spec_fingerprint": spec.fingerprint,
        "recipe": recipe.to_dict(), "recipe_fingerprint": recipe.fingerprint,
        "overrides": dict(overrides), "tags": tags, "commands": commands, "versions": _versions(),
        "machine": machine_info(ctx.device), "device": str(ctx.device), "world_size": ctx.world_size, "data_notes": list(data.notes),
        # --limit-train/--limit-val: a smoke run's accuracies are not comparable with full runs; the report marks them.
        "limits": {k: v for k, v in (limits or {}).items() if v is not None},
    }
    write_atomic(config_path, yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100))
