"""More than one process: DistributedDataParallel set up from torchrun's environment.

hrgraph has no launcher of its own: ``torchrun --nproc_per_node N -m hrgraph
train ...`` (add ``--nnodes``/``--rdzv-endpoint`` for several machines) sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address, and
:func:`setup` joins the process group: gloo on CPU, nccl on CUDA.  The global
batch is split across ranks by :func:`hrgraph.train.data.iterate_batches`,
sums of metrics are all-reduced, and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "setup", "teardown", "all_sum", "pick_device"]


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the number of processes, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; ``cuda`` uses GPU ``local_rank``.

    Raises
    ------
    ValueError
        The device asked for is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available here (try --device auto or cpu)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError("--device mps: Apple's MPS is not available here (try --device auto or cpu)")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r}: expected auto, cpu, cuda or mps")


def setup(device: str = "auto") -> Context:
    """Join torchrun's process group if ``WORLD_SIZE`` > 1; otherwise a one-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Context(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(ctx: Context, values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over every rank (returns them unchanged in one process)."""
    if ctx.distributed:
        # gloo reduces CPU tensors only; nccl wants them on the GPU.
        values = values.detach().to("cpu" if dist.get_backend() == "gloo" else ctx.device, copy=True)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
