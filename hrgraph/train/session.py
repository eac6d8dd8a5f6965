"""A session of a training run: the model, optimizer and position, and the steps that train them.

:func:`hrgraph.train.loop.train` resolves and checks a run, takes its lock and
hands it to a :class:`Session`, built fresh or loaded from ``last.pt``:
:meth:`Session.train_epochs` trains to the recipe's last epoch (saving after
each, stopping on a signal or a non-finite loss) and :meth:`Session.finish`
tests the best model and writes ``summary.json``.  Split from the loop so that
each file reads top to bottom: the loop decides what runs, the session runs it.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..build.compiler import compile_model
from ..build.shapes import ShapePlan
from ..errors import TrainingError, DivergedError, TrainingInterrupted
from ..files import write_atomic
from . import distributed
from .checkpoint import read_checkpoint, rng_state, set_rng_state, write_checkpoint
from .data import DataSplits, iterate_batches, num_batches
from .progress import Reporter
from .recipe import Recipe, lr_at
from .resume import RunOptions
from .runfolder import write_curves, write_metrics, write_summary
from .tracking import make_trackers
from .warmstart import warm_start

__all__ = ["Session", "Diverged", "evaluate", "CHECK_EVERY"]

#: On an accelerator, how many steps pass between reads of the loss check (each read waits for the device).
CHECK_EVERY = 25


# -- pieces of a session -----------------------------------------------------------


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


class Diverged(Exception):
    """Internal: the first non-finite value, at ``epoch`` and ``step`` (1-based), in ``what``."""

    def __init__(self, epoch: int, step: int, what: str) -> None:
        super().__init__(what)
        self.epoch, self.step, self.what = epoch, step, what


class Session:
    """One session of a run: the model, optimizer and position, and the steps of training them.

    Built fresh or loaded from ``last.pt``; :meth:`train_epochs` runs the
    remaining epochs, :meth:`finish` tests the best model and writes the summary.
    """

    def __init__(self, opts: RunOptions, plan: ShapePlan, data: DataSplits, *, out: Path, ctx: distributed.Context,
                 amp: bool, reporter: Reporter, stop: Any, t_start: float) -> None:
        self.opts, self.plan, self.data, self.out, self.ctx = opts, plan, data, out, ctx
        self.spec, self.recipe = opts.spec, opts.recipe
        self.reporter, self.stop, self.t_start, self.amp = reporter, stop, t_start, amp
        self.device = device = ctx.device
        recipe = self.recipe
        # The same seed gives the same initial weights, whatever ran before.
        torch.manual_seed(recipe.seed)
        self.model = compile_model(plan).to(device)
        if opts.freeze is not None and opts.init_from is None:
            raise TrainingError("--freeze needs --init-from (what to freeze is what was loaded)")
        # Before the optimizer, which then sees only what stays trainable; on resume the checkpoint is loaded over it.
        self.init = warm_start(self.model, opts.init_from, freeze=opts.freeze) if opts.init_from is not None else None
        self.trackers = make_trackers(opts.log, out) if ctx.main else []
        self.params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = _optimizer(recipe, self.model)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        # Under torchrun, ranks' slices of a global batch may differ in size (even be
        # empty): each rank's loss is its sum over the global batch size, times the
        # world size that DDP's gradient averaging divides by, so that the gradient
        # is exactly the global batch's mean.
        self.criterion_sum = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, reduction="sum")
        self.n_train = len(data.train) if opts.limit_train is None else min(len(data.train), opts.limit_train)
        self.scaler = torch.amp.GradScaler("cuda") if amp else None
        self.grad = _GradNorms(self.model) if opts.log_grad_norms else None
        self.rows: list[dict[str, Any]] = []
        self.epoch, self.start_step, self.best = 0, 0, {"epoch": 0, "acc": -1.0}
        self.partial = torch.zeros(3, dtype=torch.float64)  # train loss sum, correct, images of an unfinished epoch
        self.prior_wall = 0.0  # seconds spent in earlier sessions of this run
        self.net: nn.Module = self.model
        if ctx.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.steps = num_batches(data.train, recipe.batch_size, opts.limit_train)
        # normalize: false feeds x / 255 as it is.
        self.mean, self.std = (data.mean, data.std) if recipe.normalize else (None, None)
        self.eval_kw = dict(batch_size=recipe.batch_size, device=device, mean=self.mean, std=self.std, ctx=ctx,
                            criterion=self.criterion)
        self.check_every = 1 if device.type == "cpu" or ctx.distributed else CHECK_EVERY

    # -- state --

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch, self.start_step = state["epoch"], state["step"]
        self.rows, self.best = list(state["rows"]), dict(state["best"])
        if self.grad is not None:
            self.grad.load(state.get("grad_norms"))
        # The saved sums are over all ranks already: count them once.
        self.partial = state["partial"].double() if self.ctx.main else torch.zeros(3, dtype=torch.float64)
        self.prior_wall = float(state.get("wall_seconds", 0.0))
        if self.ctx.main:
            where = f"epoch {self.epoch + 1}, step {self.start_step}" if self.start_step else f"the end of epoch {self.epoch}"
            self.reporter.message(f"resuming {self.out} from {where}")

    def _identity(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(minimal=False), "spec_fingerprint": self.spec.fingerprint,
                "recipe": self.recipe.to_dict(), "recipe_fingerprint": self.recipe.fingerprint}

    def save_last(self, at_epoch: int, at_step: int, partial_sums: torch.Tensor) -> None:
        """Write last.pt (on rank 0); ``partial_sums`` must already be summed over ranks."""
        if self.ctx.main:
            write_checkpoint(self.out / "checkpoints" / "last.pt", {
                **self._identity(),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "epoch": at_epoch, "step": at_step, "rows": self.rows, "best": self.best,
                "partial": partial_sums.cpu(), "grad_norms": self.grad.state() if self.grad is not None else None,
                "rng": rng_state(), "wall_seconds": self._wall(),
            })

    def _wall(self) -> float:
        return self.prior_wall + time.perf_counter() - self.t_start

    # -- training --

    def train_epochs(self) -> None:
        """Train from the current position to the recipe's last epoch, saving after each."""
        self.net.train()
        while self.epoch < self.recipe.epochs:
            row = self._train_epoch()
            self._validate(row)
            self._end_epoch(row)
            if _poll(self.ctx, bool(self.stop), None)[0] and self.epoch < self.recipe.epochs:
                raise self._interrupted(self.epoch, 0, self.partial)

    def _train_epoch(self) -> dict[str, Any]:
        """One epoch of steps from ``start_step``; the epoch's metrics row (validation not yet in it)."""
        recipe, ctx, device, epoch = self.recipe, self.ctx, self.device, self.epoch
        if ctx.main:
            self.reporter.start_epoch(epoch + 1, recipe.epochs, self.steps, self.start_step)
        sums = self.partial.to(device)
        first_bad = torch.full((), -1, dtype=torch.long, device=device)  # the first step with a non-finite loss
        t0, images, step = time.perf_counter(), 0, self.start_step
        for x, y in iterate_batches(
            self.data.train, recipe.batch_size, device=device, shuffle=True, seed=recipe.seed, epoch=epoch,
            start_step=self.start_step, augment=recipe.augment, crop_padding=recipe.crop_padding, mean=self.mean,
            std=self.std, rank=ctx.rank, world_size=ctx.world_size, limit=self.opts.limit_train,
        ):
            loss, logits, local_sum = self._step(x, y, epoch, step)
            with torch.no_grad():
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
                sums += torch.stack([local_sum, (logits.argmax(1) == y).sum().double(),
                                     torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
            step += 1
            images += len(y)
            if ctx.main:
                self.reporter.step(len(y) * ctx.world_size, lambda: (sums[0] / sums[2].clamp(min=1)).item())
            if bool(self.stop) or ctx.distributed or step % self.check_every == 0 or step == self.steps:
                stopping, bad = _poll(ctx, bool(self.stop), first_bad)
                if bad is not None:
                    raise Diverged(epoch + 1, bad + 1, "the training loss")
                if stopping:
                    raise self._interrupted(epoch, step, sums)
        seconds = time.perf_counter() - t0
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise Diverged(epoch + 1, step, "the weights after the epoch's last step")
        train_loss, train_correct, train_n = distributed.all_sum(ctx, sums).tolist()
        return {
            "epoch": epoch + 1, "train_loss": train_loss / max(train_n, 1), "train_acc": train_correct / max(train_n, 1),
            "val_loss": None, "val_acc": None, "lr": lr_at(recipe, epoch),
            "seconds": round(seconds, 3), "images_per_s": round(images * ctx.world_size / max(seconds, 1e-9), 1),
        }

    def _step(self, x: torch.Tensor, y: torch.Tensor, epoch: int, step: int):
        """One optimizer step; returns the loss, the logits and the loss summed over this rank's images."""
        recipe, ctx = self.recipe, self.ctx
        lr = lr_at(recipe, epoch + step / self.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        global_n = min(recipe.batch_size, self.n_train - step * recipe.batch_size)
        with torch.autocast(device_type="cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext():
            logits = self.net(x)
            if ctx.distributed:
                loss = self.criterion_sum(logits, y) * (ctx.world_size / global_n)
            else:
                loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad is not None:
                self.scaler.unscale_(self.optimizer)
                self.grad.add(epoch, step)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad is not None:
                self.grad.add(epoch, step)
            self.optimizer.step()
        local_sum = loss.detach().double() * (global_n / ctx.world_size if ctx.distributed else len(y))
        return loss, logits, local_sum

    def _validate(self, row: dict[str, Any]) -> None:
        if self.data.val is None:
            return
        result = evaluate(self.net, self.data.val, limit=self.opts.limit_val, **self.eval_kw)
        if not torch.isfinite(torch.tensor(result["loss"])):
            raise Diverged(row["epoch"], self.steps, "the validation loss")
        row["val_loss"], row["val_acc"] = result["loss"], result["acc1"]

    def _end_epoch(self, row: dict[str, Any]) -> None:
        """Record the epoch, keep the best model, and save (rank 0)."""
        self.rows.append(row)
        self.epoch, self.start_step, self.partial = self.epoch + 1, 0, torch.zeros(3, dtype=torch.float64)
        score = row["val_acc"] if row["val_acc"] is not None else row["train_acc"]
        if self.ctx.main:
            self.reporter.end_epoch(row, self.recipe.epochs)
            for tracker in self.trackers:
                tracker.log_epoch(row, self.model)
            if score > self.best["acc"]:
                self.best = {"epoch": self.epoch, "acc": score}
                write_checkpoint(self.out / "checkpoints" / "best.pt", {
                    **self._identity(), "model": self.model.state_dict(), "epoch": self.epoch,
                    "val_acc": row["val_acc"],
                })
            if self.grad is not None:
                self.grad.write(self.out / "grad_norms.csv", self.epoch)  # closes the epoch's sums before they are saved
            self.save_last(self.epoch, 0, self.partial)
            write_metrics(self.out / "metrics.csv", self.rows)
            write_curves(self.rows, self.out / "curves.png", title=self.spec.name)
        self.best = _broadcast_best(self.ctx, self.best)

    def _interrupted(self, at_epoch: int, at_step: int, partial_sums: torch.Tensor) -> TrainingInterrupted:
        self.save_last(at_epoch, at_step, distributed.all_sum(self.ctx, partial_sums))
        # The run remembers its spec, recipe and options: the folder is all --resume needs.
        how = shlex.join(["hrgraph", "train", "--out", str(self.out), "--resume"])
        return TrainingInterrupted(
            f"interrupted by {signal.Signals(self.stop.signal).name} at epoch {at_epoch + 1}, step {at_step} of "
            f"{self.steps}; the run is saved: continue it with `{how}`",
            resume=how, path=str(self.out), signal=self.stop.signal,
        )

    # -- the end --

    def _summary(self, test: Mapping[str, Any]) -> dict[str, Any]:
        rows, best, recipe = self.rows, self.best, self.recipe
        return {
            "name": self.opts.tags.get("model") or self.spec.name, "spec_name": self.spec.name, "data": recipe.data,
            "seed": recipe.seed, "tags": self.opts.tags, "params": self.params, "macs": self.plan.macs,
            "epochs": recipe.epochs, "epochs_done": len(rows), "best_epoch": best["epoch"],
            "best_val_acc": rows[best["epoch"] - 1]["val_acc"] if rows and best["epoch"] else None,
            "test_split": self.data.test_split, "test_loss": test.get("loss"), "test_acc1": test.get("acc1"),
            "test_acc5": test.get("acc5"), "wall_seconds": round(self._wall(), 1), "finished": True,
        }

    def finish(self) -> dict[str, Any]:
        """Test at the best-val checkpoint (the paper's protocol: select on val, report test); write summary.json."""
        test: dict[str, Any] = {}
        if self.data.test is not None:
            if self.ctx.distributed:
                torch.distributed.barrier()  # rank 0 has written best.pt
            best_state = read_checkpoint(self.out / "checkpoints" / "best.pt", map_location=self.device)
            self.model.load_state_dict(best_state["model"])
            test = evaluate(self.net, self.data.test, limit=self.opts.limit_val, **self.eval_kw)
        summary = self._summary(test)
        if self.ctx.main:
            write_summary(self.out, summary)
        return summary

    def close(self) -> None:
        """Close the trackers' files (also after an interrupt or divergence)."""
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []

    def diverged(self, d: Diverged) -> DivergedError:
        """Mark the run diverged in summary.json (the checkpoints keep the last finite state); the error to raise."""
        summary = {**self._summary({}), "finished": False, "diverged": True, "diverged_epoch": d.epoch,
                   "diverged_step": d.step}
        if self.ctx.main:
            write_summary(self.out, summary)
        kept = f"the checkpoints keep the state at the end of epoch {self.epoch}" if self.epoch else \
            "no checkpoint was saved (it diverged in its first epoch)"
        return DivergedError(
            f"diverged: {d.what} is not finite at epoch {d.epoch}, step {d.step} of {self.steps}; {kept}; "
            f"lower the learning rate (optimizer.lr is {self.recipe.optimizer.lr:g}) and train into another --out",
            epoch=d.epoch, step=d.step, path=str(self.out),
        )


def _poll(ctx: distributed.Context, stop: bool, first_bad: torch.Tensor | None) -> tuple[bool, int | None]:
    """(any rank asked to stop, the first step with a non-finite loss or None): all ranks act at the same step."""
    bad = -1 if first_bad is None else first_bad
    if not ctx.distributed:
        value = int(bad) if first_bad is not None else -1
        return stop, (value if value >= 0 else None)
    # Polled every step under torchrun: a bad step is the current one on whichever rank saw it.
    flags = torch.tensor([float(stop), float(int(bad) >= 0), float(max(int(bad), 0))], dtype=torch.float64)
    total = distributed.all_sum(ctx, flags).tolist()
    return total[0] > 0, (round(total[2] / total[1]) if total[1] > 0 else None)


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


def _broadcast_best(ctx: distributed.Context, best: dict[str, Any]) -> dict[str, Any]:
    if not ctx.distributed:
        return best
    holder = [best]
    torch.distributed.broadcast_object_list(holder, src=0)
    return holder[0]


